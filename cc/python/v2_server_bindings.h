// SPDX-License-Identifier: Apache-2.0
// The server side of the v2 codec in tf_graphpipe._native (see the .cc).
#ifndef TF_GRAPHPIPE_CC_PYTHON_V2_SERVER_BINDINGS_H_
#define TF_GRAPHPIPE_CC_PYTHON_V2_SERVER_BINDINGS_H_

#include <pybind11/pybind11.h>

namespace tf_graphpipe {

// Adds decode_v2_request, decode_v2_raw_binary_request and encode_v2_answer.
void RegisterV2Server(pybind11::module_& m);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_PYTHON_V2_SERVER_BINDINGS_H_
