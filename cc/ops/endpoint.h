// SPDX-License-Identifier: Apache-2.0
// The endpoint handle: a ResourceHandle whose container marks it as ours and
// whose name is the URL. No resource is registered anywhere; the handle is a
// value. GraphPipeCall also accepts a string variable's handle instead.
#ifndef TF_GRAPHPIPE_CC_OPS_ENDPOINT_H_
#define TF_GRAPHPIPE_CC_OPS_ENDPOINT_H_

#include <string>

#include "absl/status/status.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_handle.h"

namespace tf_graphpipe {

inline constexpr char kEndpointContainer[] = "_tf_graphpipe_endpoint";

inline tensorflow::ResourceHandle MakeEndpointHandle(const std::string& device,
                                                     const std::string& url) {
  tensorflow::ResourceHandle handle;
  handle.set_device(device);
  handle.set_container(kEndpointContainer);
  handle.set_name(url);
  handle.set_maybe_type_name("GraphPipeEndpoint");
  return handle;
}

// The URL named by input `index` of `ctx`: an endpoint handle, or a scalar
// string variable (read under its lock, so a concurrent re-point is safe).
absl::Status ResolveUrl(tensorflow::OpKernelContext* ctx, int index, std::string* url);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_OPS_ENDPOINT_H_
