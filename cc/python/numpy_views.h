// SPDX-License-Identifier: Apache-2.0
// NumPy arrays <-> TensorView, without copying tensor bytes where possible.
// Call with the GIL held.
#ifndef TF_GRAPHPIPE_CC_PYTHON_NUMPY_VIEWS_H_
#define TF_GRAPHPIPE_CC_PYTHON_NUMPY_VIEWS_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "cc/core/tensor_view.h"

namespace tf_graphpipe {

// A view of `array` as wire type `type`. Numeric arrays must be C-contiguous
// and little-endian (tf_graphpipe.dtypes normalises them); String arrays are
// object arrays of bytes or str (str travels as UTF-8). The view borrows the
// array's memory and its elements' bytes: keep `array` alive while it is used.
// Raises TypeError / ValueError naming `what` for anything else.
TensorView ViewOfArray(const pybind11::array& array, DType type,
                       const std::string& what);

// Views of a list of arrays, and the arrays they borrow from. An item that
// is not an ndarray (a list, a scalar) is converted, and the converted array
// lives here, not in the caller's list: keep the whole struct alive while
// the views are used (for a call, until it has completed). Holding the
// arrays also keeps them alive if another thread empties the list while
// the GIL is released. Destroy it with the GIL held.
struct ArrayViews {
  std::vector<pybind11::array> arrays;
  std::vector<TensorView> views;
};

// Views for a list of arrays with their wire type ids.
ArrayViews ViewsOfArrays(const pybind11::list& arrays, const pybind11::list& wire_types);

// A NumPy array for a decoded view. Numeric data is viewed in place (with
// `owner` as the array's base) when it is aligned for its element type, and
// copied once otherwise; strings become an object array of bytes.
pybind11::array ArrayOfView(const TensorView& view, pybind11::handle owner,
                            bool writeable);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_PYTHON_NUMPY_VIEWS_H_
