// SPDX-License-Identifier: Apache-2.0
#include "cc/ops/endpoint.h"

#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"

namespace tf_graphpipe {

absl::Status ResolveUrl(tensorflow::OpKernelContext* ctx, int index, std::string* url) {
  const tensorflow::ResourceHandle& handle = tensorflow::HandleFromInput(ctx, index);
  if (handle.container() == kEndpointContainer) {
    *url = handle.name();
  } else {
    tensorflow::core::RefCountPtr<tensorflow::Var> variable;
    absl::Status found = tensorflow::LookupResource(ctx, handle, &variable);
    if (!found.ok()) {
      return absl::InvalidArgumentError(
          "the endpoint must be a GraphPipeEndpoint or a string variable holding the URL: " +
          std::string(found.message()));
    }
    tensorflow::tf_shared_lock lock(*variable->mu());
    const tensorflow::Tensor* value = variable->tensor();
    if (value->dtype() != tensorflow::DT_STRING || value->NumElements() != 1) {
      return absl::InvalidArgumentError(
          "the URL variable must be a scalar string, got " +
          tensorflow::DataTypeString(value->dtype()) + " " + value->shape().DebugString());
    }
    *url = std::string(value->flat<tensorflow::tstring>()(0));
  }
  if (url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0) {
    return absl::InvalidArgumentError("url must start with http:// or https://, got '" +
                                      *url + "'");
  }
  return absl::OkStatus();
}

}  // namespace tf_graphpipe
