// SPDX-License-Identifier: Apache-2.0
#include "cc/ops/graphpipe_kernel.h"

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cc/core/cancel_token.h"
#include "cc/core/http_client.h"
#include "cc/ops/answer_tensors.h"
#include "cc/ops/endpoint.h"
#include "cc/ops/tf_status.h"
#include "cc/ops/tf_tensor_views.h"
#include "tensorflow/core/framework/cancellation.h"
#include "tensorflow/core/platform/threadpool.h"

namespace tf_graphpipe {

namespace tf = ::tensorflow;

namespace {

absl::Status ReadCallOptions(tf::OpKernelConstruction* ctx, CallOptions* options,
                             float* timeout_seconds) {
  std::string protocol;
  int retries = 0;
  TF_RETURN_IF_ERROR(ctx->GetAttr("input_names", &options->input_names));
  TF_RETURN_IF_ERROR(ctx->GetAttr("output_names", &options->output_names));
  TF_RETURN_IF_ERROR(ctx->GetAttr("config", &options->config));
  TF_RETURN_IF_ERROR(ctx->GetAttr("timeout_seconds", timeout_seconds));
  TF_RETURN_IF_ERROR(ctx->GetAttr("retries", &retries));
  TF_RETURN_IF_ERROR(ctx->GetAttr("protocol", &protocol));
  TF_RETURN_IF_ERROR(ctx->GetAttr("v2_binary", &options->v2_binary));
  CallCredentials& credentials = options->credentials;
  TF_RETURN_IF_ERROR(ctx->GetAttr("headers", &credentials.headers));
  TF_RETURN_IF_ERROR(ctx->GetAttr("auth_token_env", &credentials.auth_token_env));
  TF_RETURN_IF_ERROR(ctx->GetAttr("auth_token_file", &credentials.auth_token_file));
  TF_RETURN_IF_ERROR(ctx->GetAttr("ca_file", &credentials.tls.ca_file));
  TF_RETURN_IF_ERROR(ctx->GetAttr("client_cert", &credentials.tls.client_cert));
  TF_RETURN_IF_ERROR(ctx->GetAttr("client_key", &credentials.tls.client_key));
  options->retries = retries;
  return ToTfStatus(ParseProtocolChoice(protocol, &options->protocol));
}

absl::Status ReadDeclaredOutputs(tf::OpKernelConstruction* ctx,
                                 std::unique_ptr<const DeclaredOutputs>* out) {
  tf::DataTypeVector types;
  std::vector<tf::PartialTensorShape> shapes;
  TF_RETURN_IF_ERROR(ctx->GetAttr("Tout", &types));
  TF_RETURN_IF_ERROR(ctx->GetAttr("output_shapes", &shapes));
  *out = std::make_unique<DeclaredOutputs>(std::move(types), std::move(shapes));
  return absl::OkStatus();
}

absl::Status InputViews(tf::OpKernelContext* ctx, std::vector<TensorView>* views) {
  tf::OpInputList inputs;
  TF_RETURN_IF_ERROR(ctx->input_list("inputs", &inputs));
  views->resize(inputs.size());
  for (int i = 0; i < inputs.size(); ++i) {
    TF_RETURN_IF_ERROR(ViewOfTensor(inputs[i], "input " + std::to_string(i), &(*views)[i]));
  }
  return absl::OkStatus();
}

}  // namespace

GraphPipeCallOp::GraphPipeCallOp(tf::OpKernelConstruction* ctx, HttpTransport* transport)
    : AsyncOpKernel(ctx),
      transport_(transport),
      reports_status_(ctx->def().op() == "GraphPipeCallWithStatus") {
  auto options = std::make_shared<CallOptions>();
  OP_REQUIRES_OK(ctx, ReadCallOptions(ctx, options.get(), &timeout_seconds_));
  OP_REQUIRES_OK(ctx, ReadDeclaredOutputs(ctx, &declared_));
  OP_REQUIRES_OK(ctx, declared_->Validate(options->protocol == ProtocolChoice::kGraphPipe));
  options_ = std::move(options);
}

GraphPipeCallOp::GraphPipeCallOp(tf::OpKernelConstruction* ctx) : GraphPipeCallOp(ctx, nullptr) {}

void GraphPipeCallOp::ComputeAsync(tf::OpKernelContext* ctx, DoneCallback done) {
  std::string url;
  std::vector<TensorView> inputs;
  absl::Status ready = ResolveUrl(ctx, 0, &url);
  if (ready.ok()) ready = InputViews(ctx, &inputs);
  if (!ready.ok()) {
    Finish(ctx, ready);
    done();
    return;
  }
  auto call = std::make_shared<RemoteCall>(options_, std::move(url), std::move(inputs),
                                           DeadlineAfter(timeout_seconds_));
  // Cancellation: the step's manager cancels the call's token, which aborts
  // its transfers (http_transport.h). The relay holds only the token, so it
  // may run late (during or after the completion) harmlessly; it is
  // deregistered without waiting. done() runs once, from the completion.
  auto cancel = std::make_shared<CancelToken>();
  call->set_cancel_token(cancel);
  tf::CancellationManager* step = ctx->cancellation_manager();
  tf::CancellationToken registration = tf::CancellationManager::kInvalidToken;
  if (step != nullptr) {
    registration = step->get_cancellation_token();
    if (!step->RegisterCallback(registration, [cancel] { cancel->Cancel(); })) {
      ctx->SetStatus(absl::CancelledError("remote call not started: the step was cancelled"));
      done();
      return;
    }
  }
  tf::thread::ThreadPool* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  HttpTransport* transport = transport_ != nullptr ? transport_ : &HttpClient::Shared();
  RemoteCall::Start(
      call, transport, [workers](std::function<void()> work) { workers->Schedule(std::move(work)); },
      [this, ctx, done = std::move(done), call, workers, cancel, step,
       registration](Status status) {
        if (step != nullptr) step->TryDeregisterCallback(registration);
        if (cancel->cancelled()) {
          // Never soft: the step is ending, nobody reads these outputs.
          ctx->SetStatus(absl::CancelledError(
              status.code() == Code::kCancelled ? status.message()
                                                : "call cancelled: the step was cancelled"));
          done();
          return;
        }
        if (!status.ok()) {
          Finish(ctx, ToTfStatus(status));
          done();
          return;
        }
        // The answer's bytes move out of the call and into the outputs that
        // view them (answer_tensors.h): they outlive the call and later calls.
        auto answer = std::make_shared<const AnswerBytes>(call->TakeAnswerBytes());
        auto viewed = std::make_shared<const std::vector<bool>>(
            ViewableOutputs(call->outputs(), *answer));
        auto fill = [this, ctx, done, call, answer, viewed] {
          Finish(ctx, FillOutputs(ctx, *call, answer, *viewed));
          done();
        };
        // An answer read in place completes on the transfer thread: filling
        // outputs that view it costs nothing there, but copies of megabytes
        // belong on TensorFlow's pool.
        if (BytesToCopy(call->outputs(), *viewed) > RemoteCall::kReadInlineBytes) {
          workers->Schedule(std::move(fill));
        } else {
          fill();
        }
      });
}

// Returns the status instead of using OP_REQUIRES: TensorFlow forbids the
// synchronous macros in an AsyncOpKernel.
absl::Status GraphPipeCallOp::FillOutputs(tf::OpKernelContext* ctx, const RemoteCall& call,
                                          std::shared_ptr<const AnswerBytes> answer,
                                          const std::vector<bool>& viewed) const {
  std::vector<tf::TensorShape> shapes;
  const std::vector<TensorView>& views = call.outputs();
  TF_RETURN_IF_ERROR(declared_->Check(call.request_url(), views, &shapes));
  int64_t copied = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const int index = static_cast<int>(i);
    if (viewed[i]) {
      ctx->set_output(index, TensorOverAnswer(answer, views[i], ctx->expected_output_dtype(index),
                                              shapes[i]));
      continue;
    }
    tf::Tensor* output = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(index, shapes[i], &output));
    CopyViewToTensor(views[i], output);
    ++copied;
  }
  NoteFilledOutputs(*answer, static_cast<int64_t>(shapes.size()) - copied, copied);
  return absl::OkStatus();
}

void GraphPipeCallOp::Finish(tf::OpKernelContext* ctx, const absl::Status& status) const {
  ctx->SetStatus(reports_status_ ? ReportStatus(ctx, status) : status);
}

// The answer's outputs are already set when `status` is OK; otherwise none
// is (FillOutputs checks the answer before allocating any), and they become
// zeros of FailureShape. Only a failure to allocate fails the step.
absl::Status GraphPipeCallOp::ReportStatus(tf::OpKernelContext* ctx,
                                           const absl::Status& status) const {
  const int data_outputs = static_cast<int>(declared_->size());
  if (!status.ok()) {
    for (int i = 0; i < data_outputs; ++i) {
      tf::Tensor* output = nullptr;
      TF_RETURN_IF_ERROR(ctx->allocate_output(i, declared_->FailureShape(i), &output));
      // tstrings are constructed empty; every other type's zero is all zero bytes.
      if (declared_->type(i) != tf::DT_STRING && output->NumElements() > 0) {
        std::memset(output->data(), 0, output->TotalBytes());
      }
    }
  }
  tf::Tensor* code = nullptr;
  TF_RETURN_IF_ERROR(ctx->allocate_output(data_outputs, tf::TensorShape({}), &code));
  code->scalar<int32_t>()() = static_cast<int32_t>(status.code());
  tf::Tensor* message = nullptr;
  TF_RETURN_IF_ERROR(ctx->allocate_output(data_outputs + 1, tf::TensorShape({}), &message));
  message->scalar<tf::tstring>()() = std::string(status.message());
  return absl::OkStatus();
}

REGISTER_KERNEL_BUILDER(Name("GraphPipeCall").Device(tf::DEVICE_CPU), GraphPipeCallOp);
REGISTER_KERNEL_BUILDER(Name("GraphPipeCallWithStatus").Device(tf::DEVICE_CPU), GraphPipeCallOp);

}  // namespace tf_graphpipe
