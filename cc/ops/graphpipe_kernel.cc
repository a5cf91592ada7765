// SPDX-License-Identifier: Apache-2.0
// GraphPipeCall's kernel: encodes the inputs (one copy into the request),
// starts the HTTP call on the shared client and returns. libcurl's completion
// hands the answer to TensorFlow's CPU worker pool, which checks it against
// the declared outputs, copies it into the outputs (one copy) and calls
// done(). No TensorFlow thread ever waits on the network.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cc/core/codec.h"
#include "cc/core/graphpipe_answer.h"
#include "cc/core/http_client.h"
#include "cc/ops/endpoint.h"
#include "cc/ops/tf_status.h"
#include "cc/ops/tf_tensor_views.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/platform/threadpool.h"

namespace tf_graphpipe {

namespace tf = ::tensorflow;

namespace {

// What outlives ComputeAsync: the request bytes libcurl sends from, and the
// answer until it is copied out.
struct PendingCall {
  std::string url;
  EncodedMessage request;
  HttpResponse response;
  Status transport;
};

}  // namespace

class GraphPipeCallOp : public tf::AsyncOpKernel {
 public:
  explicit GraphPipeCallOp(tf::OpKernelConstruction* ctx) : AsyncOpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("Tout", &output_types_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_shapes", &output_shapes_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("input_names", &input_names_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_names", &output_names_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("config", &config_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("timeout_seconds", &timeout_seconds_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("retries", &retries_));
    std::string protocol;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("protocol", &protocol));
    OP_REQUIRES(ctx, protocol == "graphpipe",
                absl::InvalidArgumentError("unsupported protocol '" + protocol + "'"));
    OP_REQUIRES(ctx, output_shapes_.empty() || output_shapes_.size() == output_types_.size(),
                absl::InvalidArgumentError("output_shapes needs one entry per output"));
    for (size_t i = 0; i < output_types_.size(); ++i) {
      OP_REQUIRES(ctx, WireTypeOf(output_types_[i]) != DType::kNull,
                  absl::InvalidArgumentError(
                      "output " + std::to_string(i) + ": dtype " +
                      tf::DataTypeString(output_types_[i]) + " has no GraphPipe wire type"));
    }
  }

  void ComputeAsync(tf::OpKernelContext* ctx, DoneCallback done) override {
    auto call = std::make_shared<PendingCall>();
    OP_REQUIRES_OK_ASYNC(ctx, ResolveUrl(ctx, 0, &call->url), done);
    tf::OpInputList inputs;
    OP_REQUIRES_OK_ASYNC(ctx, ctx->input_list("inputs", &inputs), done);

    InferRequestSpec spec;
    spec.config = config_;
    spec.input_names.assign(input_names_.begin(), input_names_.end());
    spec.output_names.assign(output_names_.begin(), output_names_.end());
    spec.inputs.resize(inputs.size());
    for (int i = 0; i < inputs.size(); ++i) {
      OP_REQUIRES_OK_ASYNC(
          ctx, ViewOfTensor(inputs[i], "input " + std::to_string(i), &spec.inputs[i]), done);
    }
    // Large inputs are referenced, not copied: TensorFlow keeps an async
    // kernel's inputs alive until done() runs.
    OP_REQUIRES_OK_ASYNC(
        ctx, ToTfStatus(EncodeInferRequest(spec, TensorBytes::kReference, &call->request)), done);

    HttpRequest request;
    request.url = call->url;
    request.body = call->request.Parts();
    request.retries = retries_;
    if (timeout_seconds_ > 0) {
      request.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(timeout_seconds_));
    }
    tf::thread::ThreadPool* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    HttpClient::Shared().Start(
        std::move(request), [this, ctx, done, call, workers](Status status, HttpResponse answer) {
          call->transport = std::move(status);
          call->response = std::move(answer);
          // Copying out megabytes belongs on TensorFlow's threads, not on the
          // one thread that drives every transfer.
          workers->Schedule([this, ctx, done, call] {
            ctx->SetStatus(Finish(ctx, *call));
            done();
          });
        });
  }

 private:
  // Returns the status instead of using OP_REQUIRES: TensorFlow forbids the
  // synchronous macros in an AsyncOpKernel.
  absl::Status Finish(tf::OpKernelContext* ctx, const PendingCall& call) {
    if (!call.transport.ok()) return ToTfStatus(call.transport);
    InferResponseView answer;
    TF_RETURN_IF_ERROR(ToTfStatus(ReadInferAnswer(call.url, call.response, &answer)));
    if (answer.outputs.size() != output_types_.size()) {
      return absl::InvalidArgumentError(call.url + " returned " +
                                        std::to_string(answer.outputs.size()) +
                                        " outputs, expected " +
                                        std::to_string(output_types_.size()));
    }
    // Check every output before allocating any, so a bad answer leaves no
    // output half set.
    std::vector<tf::TensorShape> shapes(answer.outputs.size());
    for (size_t i = 0; i < answer.outputs.size(); ++i) {
      const TensorView& view = answer.outputs[i];
      const std::string what = "output " + std::to_string(i) + " of " + call.url;
      if (TfTypeOf(view.type) != output_types_[i]) {
        return absl::InvalidArgumentError(what + ": expected dtype " +
                                          tf::DataTypeString(output_types_[i]) + ", got " +
                                          DTypeName(view.type));
      }
      TF_RETURN_IF_ERROR(tf::TensorShape::BuildTensorShape(view.shape, &shapes[i]));
      if (!output_shapes_.empty() && !output_shapes_[i].IsCompatibleWith(shapes[i])) {
        return absl::InvalidArgumentError(what + ": expected shape " +
                                          output_shapes_[i].DebugString() + ", got " +
                                          shapes[i].DebugString());
      }
    }
    for (size_t i = 0; i < answer.outputs.size(); ++i) {
      tf::Tensor* output = nullptr;
      TF_RETURN_IF_ERROR(ctx->allocate_output(static_cast<int>(i), shapes[i], &output));
      CopyViewToTensor(answer.outputs[i], output);
    }
    return absl::OkStatus();
  }

  tf::DataTypeVector output_types_;
  std::vector<tf::PartialTensorShape> output_shapes_;
  std::vector<std::string> input_names_;
  std::vector<std::string> output_names_;
  std::string config_;
  float timeout_seconds_ = 30.0f;
  int retries_ = 2;
};

REGISTER_KERNEL_BUILDER(Name("GraphPipeCall").Device(tf::DEVICE_CPU), GraphPipeCallOp);

}  // namespace tf_graphpipe
