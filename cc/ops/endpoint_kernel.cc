// SPDX-License-Identifier: Apache-2.0
#include "cc/ops/endpoint.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_handle.h"

namespace tf_graphpipe {

class GraphPipeEndpointOp : public tensorflow::OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& url = ctx->input(0);
    OP_REQUIRES(ctx, tensorflow::TensorShapeUtils::IsScalar(url.shape()),
                absl::InvalidArgumentError("url must be a scalar string, got shape " +
                                           url.shape().DebugString()));
    tensorflow::Tensor* out = nullptr;
    tensorflow::AllocatorAttributes host;
    host.set_on_host(true);
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, tensorflow::TensorShape({}), &out, host));
    out->scalar<tensorflow::ResourceHandle>()() =
        MakeEndpointHandle(ctx->device()->name(), url.scalar<tensorflow::tstring>()());
  }
};

REGISTER_KERNEL_BUILDER(Name("GraphPipeEndpoint").Device(tensorflow::DEVICE_CPU),
                        GraphPipeEndpointOp);

}  // namespace tf_graphpipe
