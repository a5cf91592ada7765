// SPDX-License-Identifier: Apache-2.0
// TensorFlow tensors <-> cc/core views, and the TF dtype <-> wire type table
// of the C++ side.
#ifndef TF_GRAPHPIPE_CC_OPS_TF_TENSOR_VIEWS_H_
#define TF_GRAPHPIPE_CC_OPS_TF_TENSOR_VIEWS_H_

#include <string>

#include "absl/status/status.h"
#include "cc/core/tensor_view.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"

namespace tf_graphpipe {

// kNull for TensorFlow types no protocol carries (complex, resource...).
// bool and bfloat16 map to kBool / kBfloat16, which only v2 carries.
DType WireTypeOf(tensorflow::DataType type);
tensorflow::DataType TfTypeOf(DType type);

// A view borrowing `tensor`'s buffer (or its strings): no copy.
// InvalidArgument naming `what` for a dtype with no wire type.
absl::Status ViewOfTensor(const tensorflow::Tensor& tensor, const std::string& what,
                          TensorView* view);

// Copies a decoded view into `tensor`, which has the view's dtype and shape.
void CopyViewToTensor(const TensorView& view, tensorflow::Tensor* tensor);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_OPS_TF_TENSOR_VIEWS_H_
