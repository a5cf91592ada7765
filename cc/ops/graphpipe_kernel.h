// SPDX-License-Identifier: Apache-2.0
// GraphPipeCall's kernel: a thin adapter between TensorFlow and the call plan
// (cc/core/call_plan.h), which decides the protocol, the v2 input names and
// the request, and reads the answer. The kernel views its input tensors
// (large ones are sent from their memory: TensorFlow keeps an async kernel's
// inputs alive until done() runs), starts the call and returns; the
// completion checks the answer against the declared outputs, hands them the
// answer's memory where it is aligned (answer_tensors.h; else one copy) and
// calls done(). No TensorFlow thread waits on the network.
//
// GraphPipeCallWithStatus runs the same kernel: a call's failure becomes its
// two status outputs (and zero outputs) instead of the step's error.
//
// When TensorFlow cancels the step (another op failed, a tf.data iterator
// went away, a cancellation manager fired), the call's transfers are aborted
// and their connections closed, and the kernel fails with Cancelled (in
// either op: a cancelled step reads no status).
//
// The HTTP transport is a seam: the registered kernel sends through the
// process's shared HttpClient (looked up per call, so a forked child uses its
// own); a test may construct the kernel with a transport of its own.
#ifndef TF_GRAPHPIPE_CC_OPS_GRAPHPIPE_KERNEL_H_
#define TF_GRAPHPIPE_CC_OPS_GRAPHPIPE_KERNEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cc/core/call_plan.h"
#include "cc/core/http_transport.h"
#include "cc/ops/declared_outputs.h"
#include "tensorflow/core/framework/op_kernel.h"

namespace tf_graphpipe {

// Thread-safety: ComputeAsync may run concurrently for many steps; the
// kernel's state is immutable after construction.
class GraphPipeCallOp : public tensorflow::AsyncOpKernel {
 public:
  // `transport` null: the process's shared HttpClient. Otherwise it outlives
  // the kernel and every call the kernel started.
  GraphPipeCallOp(tensorflow::OpKernelConstruction* ctx, HttpTransport* transport);
  explicit GraphPipeCallOp(tensorflow::OpKernelConstruction* ctx);

  void ComputeAsync(tensorflow::OpKernelContext* ctx, DoneCallback done) override;

 private:
  // `viewed`: ViewableOutputs of the call's outputs over `answer`, the bytes
  // taken from the call.
  absl::Status FillOutputs(tensorflow::OpKernelContext* ctx, const RemoteCall& call,
                           std::shared_ptr<const AnswerBytes> answer,
                           const std::vector<bool>& viewed) const;
  // Every run ends here, once, with the call's status: the step's status,
  // or for GraphPipeCallWithStatus the status outputs.
  void Finish(tensorflow::OpKernelContext* ctx, const absl::Status& status) const;
  absl::Status ReportStatus(tensorflow::OpKernelContext* ctx, const absl::Status& status) const;

  HttpTransport* const transport_;
  const bool reports_status_;  // GraphPipeCallWithStatus
  float timeout_seconds_ = 30.0f;
  // Set once by the constructor; every call shares them.
  std::shared_ptr<const CallOptions> options_;
  std::unique_ptr<const DeclaredOutputs> declared_;
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_OPS_GRAPHPIPE_KERNEL_H_
