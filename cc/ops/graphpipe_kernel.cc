// SPDX-License-Identifier: Apache-2.0
// GraphPipeCall's kernel: encodes the inputs (large ones referenced, not
// copied), starts the HTTP call on the shared client and returns. libcurl's
// completion checks the answer against the declared outputs, copies it into
// the outputs (one copy) and calls done(): on libcurl's thread for a small
// answer or an error, on TensorFlow's CPU worker pool for a large one. No
// TensorFlow thread ever waits on the network.
//
// The `protocol` attr picks the wire: GraphPipe, the Open Inference Protocol
// (v2), or "auto" (per call, from the URL: see ParseV2ModelUrl). v2 needs
// input names; when the op has none, the kernel fetches the model's metadata
// (asynchronously, like the call) and caches its input order per metadata
// URL for the kernel's lifetime. Concurrent first calls may each fetch it.
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cc/core/codec.h"
#include "cc/core/graphpipe_answer.h"
#include "cc/core/http_client.h"
#include "cc/core/v2_answer.h"
#include "cc/core/v2_codec.h"
#include "cc/ops/endpoint.h"
#include "cc/ops/tf_status.h"
#include "cc/ops/tf_tensor_views.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/platform/threadpool.h"

namespace tf_graphpipe {

namespace tf = ::tensorflow;

namespace {

// Answers up to this size are finished on the transfer thread itself: the
// copy takes less than handing it to TensorFlow's pool (a thread wake-up,
// ~50-100 us on a small VM). done() only queues the graph's next nodes on
// that pool, so the transfer thread never runs them.
constexpr size_t kFinishInlineBytes = size_t{64} << 10;

// What outlives ComputeAsync: the request bytes libcurl sends from, and the
// answer until it is copied out.
struct PendingCall {
  std::string url;  // where the call goes (the v2 infer URL for v2)
  bool v2 = false;
  V2ModelUrl v2_url;
  EncodedMessage request;
  V2Message v2_request;
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
    OP_REQUIRES_OK(ctx, ctx->GetAttr("protocol", &protocol_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("v2_binary", &v2_binary_));
    OP_REQUIRES(ctx, protocol_ == "graphpipe" || protocol_ == "v2" || protocol_ == "auto",
                absl::InvalidArgumentError("unsupported protocol '" + protocol_ +
                                           "' (expected 'graphpipe', 'v2' or 'auto')"));
    OP_REQUIRES(ctx, output_shapes_.empty() || output_shapes_.size() == output_types_.size(),
                absl::InvalidArgumentError("output_shapes needs one entry per output"));
    for (size_t i = 0; i < output_types_.size(); ++i) {
      const DType type = WireTypeOf(output_types_[i]);
      const bool graphpipe_only = protocol_ == "graphpipe";
      OP_REQUIRES(ctx,
                  type != DType::kNull &&
                      (!graphpipe_only || IsTensorType(static_cast<uint8_t>(type))),
                  absl::InvalidArgumentError(
                      "output " + std::to_string(i) + ": dtype " +
                      tf::DataTypeString(output_types_[i]) +
                      (graphpipe_only ? " has no GraphPipe wire type"
                                      : " has no GraphPipe wire type nor v2 datatype")));
    }
  }

  void ComputeAsync(tf::OpKernelContext* ctx, DoneCallback done) override {
    auto call = std::make_shared<PendingCall>();
    OP_REQUIRES_OK_ASYNC(ctx, ResolveUrl(ctx, 0, &call->url), done);
    const bool is_v2_url = ParseV2ModelUrl(call->url, &call->v2_url);
    call->v2 = protocol_ == "v2" || (protocol_ == "auto" && is_v2_url);
    if (!call->v2) {
      StartGraphPipe(ctx, std::move(done), call);
      return;
    }
    OP_REQUIRES_ASYNC(ctx, is_v2_url,
                      absl::InvalidArgumentError(
                          "a v2 URL names its model: http://HOST:PORT/v2/models/NAME"
                          "[/versions/V], got '" + call->url + "'"),
                      done);
    OP_REQUIRES_ASYNC(ctx, config_.empty(),
                      absl::InvalidArgumentError(
                          "config is a GraphPipe feature; the v2 protocol has none"),
                      done);
    if (!input_names_.empty()) {
      StartV2(ctx, std::move(done), call, input_names_);
      return;
    }
    std::vector<std::string> names;
    bool cached = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = input_names_by_url_.find(call->v2_url.metadata_url);
      if (it != input_names_by_url_.end()) {
        names = it->second;
        cached = true;
      }
    }
    if (cached) {
      StartV2(ctx, std::move(done), call, names);
    } else {
      FetchInputNamesThenStartV2(ctx, std::move(done), call);
    }
  }

 private:
  HttpRequest NewRequest(const std::string& url) const {
    HttpRequest request;
    request.url = url;
    request.retries = retries_;
    if (timeout_seconds_ > 0) {
      request.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(timeout_seconds_));
    }
    return request;
  }

  static tf::thread::ThreadPool* Workers(tf::OpKernelContext* ctx) {
    return ctx->device()->tensorflow_cpu_worker_threads()->workers;
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

  // Sends `request`; finishes the op when the answer is in.
  void Send(tf::OpKernelContext* ctx, DoneCallback done, std::shared_ptr<PendingCall> call,
            HttpRequest request) {
    tf::thread::ThreadPool* workers = Workers(ctx);
    HttpClient::Shared().Start(
        std::move(request), [this, ctx, done, call, workers](Status status, HttpResponse answer) {
          call->transport = std::move(status);
          call->response = std::move(answer);
          auto finish = [this, ctx, done, call] {
            ctx->SetStatus(Finish(ctx, *call));
            done();
          };
          // Copying out megabytes belongs on TensorFlow's threads, not on the
          // one thread that drives every transfer.
          if (call->response.body.size() <= kFinishInlineBytes) {
            finish();
          } else {
            workers->Schedule(std::move(finish));
          }
        });
  }

  void StartGraphPipe(tf::OpKernelContext* ctx, DoneCallback done,
                      std::shared_ptr<PendingCall> call) {
    InferRequestSpec spec;
    spec.config = config_;
    spec.input_names.assign(input_names_.begin(), input_names_.end());
    spec.output_names.assign(output_names_.begin(), output_names_.end());
    OP_REQUIRES_OK_ASYNC(ctx, InputViews(ctx, &spec.inputs), done);
    // Large inputs are referenced, not copied: TensorFlow keeps an async
    // kernel's inputs alive until done() runs.
    OP_REQUIRES_OK_ASYNC(
        ctx, ToTfStatus(EncodeInferRequest(spec, TensorBytes::kReference, &call->request)), done);
    HttpRequest request = NewRequest(call->url);
    request.body = call->request.Parts();
    Send(ctx, std::move(done), call, std::move(request));
  }

  void StartV2(tf::OpKernelContext* ctx, DoneCallback done, std::shared_ptr<PendingCall> call,
               const std::vector<std::string>& input_names) {
    V2InferRequestSpec spec;
    spec.binary = v2_binary_;
    OP_REQUIRES_OK_ASYNC(ctx, InputViews(ctx, &spec.inputs), done);
    if (input_names.size() != spec.inputs.size()) {
      std::string names;
      for (const std::string& n : input_names) names += (names.empty() ? "" : ", ") + n;
      ctx->SetStatus(absl::InvalidArgumentError(
          "model '" + call->v2_url.model + "' at " + call->v2_url.metadata_url + " has " +
          std::to_string(input_names.size()) + " inputs (" + names + "), the call gives " +
          std::to_string(spec.inputs.size())));
      done();
      return;
    }
    // The views of `input_names` are needed while encoding only.
    spec.input_names.assign(input_names.begin(), input_names.end());
    spec.output_names.assign(output_names_.begin(), output_names_.end());
    OP_REQUIRES_OK_ASYNC(
        ctx, ToTfStatus(EncodeV2InferRequest(spec, TensorBytes::kReference, &call->v2_request)),
        done);
    call->url = call->v2_url.infer_url;
    HttpRequest request = NewRequest(call->url);
    request.body = call->v2_request.Parts();
    request.content_type = call->v2_request.content_type();
    if (call->v2_request.has_blobs()) {
      request.extra_headers.push_back("Inference-Header-Content-Length: " +
                                      std::to_string(call->v2_request.json_size()));
    }
    Send(ctx, std::move(done), call, std::move(request));
  }

  void FetchInputNamesThenStartV2(tf::OpKernelContext* ctx, DoneCallback done,
                                  std::shared_ptr<PendingCall> call) {
    HttpRequest request = NewRequest(call->v2_url.metadata_url);
    request.post = false;
    tf::thread::ThreadPool* workers = Workers(ctx);
    HttpClient::Shared().Start(
        std::move(request), [this, ctx, done, call, workers](Status status, HttpResponse answer) {
          auto response = std::make_shared<HttpResponse>(std::move(answer));
          workers->Schedule([this, ctx, done, call, status, response] {
            ModelMetadata metadata;
            Status read = status.ok() ? ReadV2MetadataAnswer(call->v2_url.metadata_url,
                                                             *response, &metadata)
                                      : status;
            if (!read.ok()) {
              ctx->SetStatus(ToTfStatus(
                  read.WithContext("reading the input names of the v2 model (pass input_names "
                                   "to skip this)")));
              done();
              return;
            }
            std::vector<std::string> names;
            for (const IOMetadata& input : metadata.inputs) names.push_back(input.name);
            {
              std::lock_guard<std::mutex> lock(mu_);
              input_names_by_url_[call->v2_url.metadata_url] = names;
            }
            StartV2(ctx, done, call, names);
          });
        });
  }

  // Returns the status instead of using OP_REQUIRES: TensorFlow forbids the
  // synchronous macros in an AsyncOpKernel.
  absl::Status Finish(tf::OpKernelContext* ctx, const PendingCall& call) {
    if (!call.transport.ok()) return ToTfStatus(call.transport);
    InferResponseView graphpipe_answer;
    V2InferResponse v2_answer;
    const std::vector<TensorView>* outputs = nullptr;
    if (call.v2) {
      const std::vector<std::string_view> requested(output_names_.begin(), output_names_.end());
      TF_RETURN_IF_ERROR(
          ToTfStatus(ReadV2InferAnswer(call.url, call.response, requested, &v2_answer)));
      outputs = &v2_answer.outputs;
    } else {
      TF_RETURN_IF_ERROR(ToTfStatus(ReadInferAnswer(call.url, call.response, &graphpipe_answer)));
      outputs = &graphpipe_answer.outputs;
    }
    if (outputs->size() != output_types_.size()) {
      return absl::InvalidArgumentError(call.url + " returned " +
                                        std::to_string(outputs->size()) +
                                        " outputs, expected " +
                                        std::to_string(output_types_.size()));
    }
    // Check every output before allocating any, so a bad answer leaves no
    // output half set.
    std::vector<tf::TensorShape> shapes(outputs->size());
    for (size_t i = 0; i < outputs->size(); ++i) {
      const TensorView& view = (*outputs)[i];
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
    for (size_t i = 0; i < outputs->size(); ++i) {
      tf::Tensor* output = nullptr;
      TF_RETURN_IF_ERROR(ctx->allocate_output(static_cast<int>(i), shapes[i], &output));
      CopyViewToTensor((*outputs)[i], output);
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
  std::string protocol_;
  bool v2_binary_ = true;

  std::mutex mu_;
  // v2 input names read from metadata, by metadata URL. Guarded by mu_.
  std::unordered_map<std::string, std::vector<std::string>> input_names_by_url_;
};

REGISTER_KERNEL_BUILDER(Name("GraphPipeCall").Device(tf::DEVICE_CPU), GraphPipeCallOp);

}  // namespace tf_graphpipe
