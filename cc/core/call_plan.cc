// SPDX-License-Identifier: Apache-2.0
#include "cc/core/call_plan.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "cc/core/graphpipe_answer.h"
#include "cc/core/v2_answer.h"

namespace tf_graphpipe {
namespace {

// A retry waits this long, doubling per attempt up to kMaxBackoff.
constexpr auto kFirstBackoff = std::chrono::milliseconds(50);
constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);

std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Every request of a call starts here: its deadline and limits, its TLS
// files, its headers with the bearer token read now, and its traceparent.
// `retries` are the transport's (the call plan's own attempts pass 0).
Status BaseRequest(std::string url, const CallOptions& options, Clock::time_point deadline,
                   const std::string& traceparent, int retries, HttpRequest* request) {
  *request = HttpRequest();
  request->url = std::move(url);
  request->deadline = deadline;
  request->retries = retries;
  request->max_response_bytes = options.max_response_bytes;
  request->tls = options.credentials.tls;
  TF_GRAPHPIPE_RETURN_IF_ERROR(CredentialHeaders(options.credentials, &request->extra_headers));
  request->extra_headers.push_back("traceparent: " + traceparent);
  return Status::Ok();
}

std::vector<std::string> InputNamesOf(const ModelMetadata& metadata) {
  std::vector<std::string> names;
  names.reserve(metadata.inputs.size());
  for (const IOMetadata& input : metadata.inputs) names.push_back(input.name);
  return names;
}

}  // namespace

Status ParseProtocolChoice(std::string_view name, ProtocolChoice* out) {
  if (name == "graphpipe") *out = ProtocolChoice::kGraphPipe;
  else if (name == "v2") *out = ProtocolChoice::kV2;
  else if (name == "auto") *out = ProtocolChoice::kAuto;
  else {
    return Status(Code::kInvalidArgument, "unsupported protocol '" + std::string(name) +
                                              "' (expected 'graphpipe', 'v2' or 'auto')");
  }
  return Status::Ok();
}

const char* ProtocolName(Protocol protocol) {
  return protocol == Protocol::kV2 ? "v2" : "graphpipe";
}

Status ResolveTarget(std::string_view url, ProtocolChoice choice, CallTarget* out) {
  out->url = std::string(url);
  out->v2 = V2ModelUrl();
  const bool names_v2_model = ParseV2ModelUrl(url, &out->v2);
  if (choice == ProtocolChoice::kGraphPipe || (choice == ProtocolChoice::kAuto && !names_v2_model)) {
    out->protocol = Protocol::kGraphPipe;
    return Status::Ok();
  }
  if (!names_v2_model) {
    return Status(Code::kInvalidArgument,
                  "a v2 URL names its model: http://HOST:PORT/v2/models/NAME[/versions/V], got '" +
                      out->url + "'");
  }
  out->protocol = Protocol::kV2;
  return Status::Ok();
}

V2InputNames& V2InputNames::Shared() {
  static V2InputNames* shared = new V2InputNames();
  return *shared;
}

bool V2InputNames::Find(const std::string& metadata_url, std::vector<std::string>* names) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = names_.find(metadata_url);
  if (it == names_.end()) return false;
  *names = it->second;
  return true;
}

void V2InputNames::Store(const std::string& metadata_url, std::vector<std::string> names) {
  std::lock_guard<std::mutex> lock(mu_);
  names_[metadata_url] = std::move(names);
}

void V2InputNames::Forget(const std::string& metadata_url) {
  std::lock_guard<std::mutex> lock(mu_);
  names_.erase(metadata_url);
}

Clock::time_point DeadlineAfter(double seconds) {
  if (!(seconds > 0) || std::isinf(seconds)) return Clock::time_point::max();
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

uint64_t MicrosecondsLeft(Clock::time_point deadline, Clock::time_point at) {
  if (deadline == Clock::time_point::max()) return 0;
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - at).count();
  return left < 1 ? 1 : static_cast<uint64_t>(left);
}

RemoteCall::RemoteCall(std::shared_ptr<const CallOptions> options, std::string url,
                       std::vector<TensorView> inputs, Clock::time_point deadline,
                       V2InputNames* input_names, ReplicaHealth* health)
    : options_(std::move(options)),
      url_(std::move(url)),
      inputs_(std::move(inputs)),
      deadline_(deadline),
      cache_(input_names),
      health_(health) {}

Status RemoteCall::Resolve() {
  TF_GRAPHPIPE_RETURN_IF_ERROR(SplitReplicas(url_, &replicas_));
  if (replicas_.size() == 1) {
    TF_GRAPHPIPE_RETURN_IF_ERROR(ResolveTarget(replicas_[0], options_->protocol, &target_));
  } else {
    // Every replica is checked before anything is sent, in this call's order.
    std::vector<std::string> ordered;
    for (size_t i : health_->Order(url_, replicas_)) ordered.push_back(std::move(replicas_[i]));
    replicas_ = std::move(ordered);
    targets_.resize(replicas_.size());
    for (size_t i = 0; i < replicas_.size(); ++i) {
      TF_GRAPHPIPE_RETURN_IF_ERROR(ResolveTarget(replicas_[i], options_->protocol, &targets_[i]));
      if (targets_[i].protocol != targets_[0].protocol) {
        return Status(Code::kInvalidArgument,
                      "the replicas of '" + url_ + "' speak different protocols ('" +
                          replicas_[0] + "': " + ProtocolName(targets_[0].protocol) + ", '" +
                          replicas_[i] + "': " + ProtocolName(targets_[i].protocol) + ")");
      }
    }
    target_ = targets_[0];
  }
  TF_GRAPHPIPE_RETURN_IF_ERROR(Traceparent(options_->traceparent, &traceparent_));
  request_url_ = target_.protocol == Protocol::kV2 ? target_.v2.infer_url : target_.url;
  if (target_.protocol == Protocol::kGraphPipe) return Status::Ok();
  if (!options_->config.empty()) {
    return Status(Code::kInvalidArgument,
                  "config is a GraphPipe feature; the v2 protocol has none");
  }
  if (!options_->input_names.empty()) {
    v2_input_names_ = options_->input_names;
  } else if (cache_->Find(target_.v2.metadata_url, &v2_input_names_)) {
    v2_names_from_metadata_ = true;
  }
  return Status::Ok();
}

void RemoteCall::UseReplica(size_t index) {
  replica_ = index;
  target_ = targets_[index];
  request_url_ = target_.protocol == Protocol::kV2 ? target_.v2.infer_url : target_.url;
}

bool RemoteCall::NeedsV2InputNames() const {
  return target_.protocol == Protocol::kV2 && options_->input_names.empty() &&
         !v2_names_from_metadata_;
}

Status RemoteCall::MetadataRequest(Clock::time_point not_before, HttpRequest* request) const {
  TF_GRAPHPIPE_RETURN_IF_ERROR(
      BaseRequest(target_.v2.metadata_url, *options_, deadline_, traceparent_, 0, request));
  request->post = false;
  request->not_before = not_before;
  request->cancel = cancel_;
  return Status::Ok();
}

bool RemoteCall::NextAttempt(const Status& sent, const HttpResponse& response,
                             Clock::time_point* not_before) {
  const bool unavailable =
      sent.code() == Code::kUnavailable || (sent.ok() && response.status == 503);
  const size_t count = replicas_.size();
  if (!unavailable) {
    if (count > 1 && sent.ok()) health_->MarkUp(replicas_[replica_]);
    return false;
  }
  if (count > 1) {
    health_->MarkDown(replicas_[replica_]);
    if (tried_ < count) {  // the next replica, at once
      if (Clock::now() >= deadline_) return false;
      UseReplica((replica_ + 1) % count);
      ++tried_;
      *not_before = Clock::time_point();
      return true;
    }
  }
  if (attempt_ >= options_->retries || !sent.worth_retrying()) return false;
  const Clock::duration backoff =
      std::min<Clock::duration>(kFirstBackoff * (1 << std::min(attempt_, 10)), kMaxBackoff);
  const Clock::time_point at = Clock::now() + backoff;
  if (at >= deadline_) return false;
  ++attempt_;
  if (count > 1) {  // every replica failed: a new round, from the next one
    UseReplica((replica_ + 1) % count);
    tried_ = 1;
  }
  *not_before = at;
  return true;
}

Status RemoteCall::UseV2Metadata(Status fetched, const HttpResponse& response) {
  ModelMetadata metadata;
  if (fetched.ok()) fetched = ReadV2MetadataAnswer(target_.v2.metadata_url, response, &metadata);
  if (!fetched.ok()) {
    return fetched.WithContext(
        "reading the input names of the v2 model (pass input_names to skip this)");
  }
  v2_input_names_ = InputNamesOf(metadata);
  v2_names_from_metadata_ = true;
  cache_->Store(target_.v2.metadata_url, v2_input_names_);
  return Status::Ok();
}

Status RemoteCall::Assemble(Clock::time_point not_before, HttpRequest* request) {
  TF_GRAPHPIPE_RETURN_IF_ERROR(
      BaseRequest(request_url_, *options_, deadline_, traceparent_, 0, request));
  request->not_before = not_before;
  request->cancel = cancel_;
  // How long the caller still waits when this attempt goes out.
  const uint64_t left_us = MicrosecondsLeft(deadline_, std::max(Clock::now(), not_before));
  const std::vector<std::string_view> output_names(options_->output_names.begin(),
                                                   options_->output_names.end());
  if (target_.protocol == Protocol::kGraphPipe) {
    if (!encoded_) {
      InferRequestSpec spec;
      spec.config = options_->config;
      spec.input_names.assign(options_->input_names.begin(), options_->input_names.end());
      spec.inputs = inputs_;
      spec.output_names = output_names;
      TF_GRAPHPIPE_RETURN_IF_ERROR(
          EncodeInferRequest(spec, TensorBytes::kReference, &graphpipe_request_));
      encoded_ = true;
    }
    request->body = graphpipe_request_.Parts();
    if (left_us > 0) {
      request->extra_headers.push_back(std::string(kTimeoutHeader) + ": " + std::to_string(left_us));
    }
    return Status::Ok();
  }
  if (!v2_names_from_metadata_ && v2_input_names_.size() != inputs_.size()) {
    return Status(Code::kInvalidArgument,
                  "input_names has " + std::to_string(v2_input_names_.size()) + " names (" +
                      Joined(v2_input_names_) + "), the call gives " +
                      std::to_string(inputs_.size()) + " tensors");
  }
  if (v2_input_names_.size() != inputs_.size()) {
    return Status(Code::kInvalidArgument,
                  "model '" + target_.v2.model + "' at " + target_.v2.metadata_url + " has " +
                      std::to_string(v2_input_names_.size()) + " inputs (" +
                      Joined(v2_input_names_) + "), the call gives " +
                      std::to_string(inputs_.size()) +
                      ": pass one tensor per input, or name them (input_names)");
  }
  // The remaining time is in the JSON header, so an attempt with a deadline
  // encodes it again (large inputs are referenced: only the header is made).
  if (!encoded_ || left_us > 0) {
    V2InferRequestSpec spec;
    spec.binary = options_->v2_binary;
    spec.input_names.assign(v2_input_names_.begin(), v2_input_names_.end());
    spec.inputs = inputs_;
    spec.output_names = output_names;
    spec.timeout_us = left_us;
    TF_GRAPHPIPE_RETURN_IF_ERROR(EncodeV2InferRequest(spec, TensorBytes::kReference, &v2_request_));
    encoded_ = true;
  }
  request->body = v2_request_.Parts();
  request->content_type = v2_request_.content_type();
  // The first output blob follows the JSON header: received aligned, it is
  // viewed in place (the op's outputs, the Client's arrays).
  request->aligned_offset_header = "inference-header-content-length";
  if (v2_request_.has_blobs()) {
    request->extra_headers.push_back("Inference-Header-Content-Length: " +
                                     std::to_string(v2_request_.json_size()));
  }
  return Status::Ok();
}

Status RemoteCall::ReadAnswer(Status transport) {
  if (!transport.ok()) return transport;
  if (target_.protocol == Protocol::kGraphPipe) {
    InferResponseView answer;
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadInferAnswer(request_url_, response_, &answer));
    outputs_ = std::move(answer.outputs);
    return Status::Ok();
  }
  const std::vector<std::string_view> requested(options_->output_names.begin(),
                                                options_->output_names.end());
  Status read = ReadV2InferAnswer(request_url_, response_, requested, &v2_answer_);
  if (!read.ok()) {
    // Names from metadata the server now refuses: the model may have been
    // redeployed with other inputs; the next call reads its metadata again.
    if (v2_names_from_metadata_ && read.is_remote() && read.code() == Code::kInvalidArgument) {
      cache_->Forget(target_.v2.metadata_url);
    }
    return read;
  }
  outputs_ = std::move(v2_answer_.outputs);
  return Status::Ok();
}

Status RemoteCall::Run(HttpTransport* transport) {
  TF_GRAPHPIPE_RETURN_IF_ERROR(Resolve());
  Clock::time_point not_before{};
  if (NeedsV2InputNames()) {
    HttpResponse metadata;
    Status fetched;
    do {
      HttpRequest request;
      TF_GRAPHPIPE_RETURN_IF_ERROR(MetadataRequest(not_before, &request));
      metadata = HttpResponse();
      fetched = transport->Call(std::move(request), &metadata);
    } while (NextAttempt(fetched, metadata, &not_before));
    TF_GRAPHPIPE_RETURN_IF_ERROR(UseV2Metadata(std::move(fetched), metadata));
  }
  Status sent;
  do {
    HttpRequest request;
    TF_GRAPHPIPE_RETURN_IF_ERROR(Assemble(not_before, &request));
    response_ = HttpResponse();  // an answer per attempt
    sent = transport->Call(std::move(request), &response_);
  } while (NextAttempt(sent, response_, &not_before));
  return ReadAnswer(std::move(sent));
}

void RemoteCall::Start(std::shared_ptr<RemoteCall> call, HttpTransport* transport,
                       Executor executor, std::function<void(Status)> done) {
  Status resolved = call->Resolve();
  if (!resolved.ok()) {
    done(std::move(resolved));
    return;
  }
  if (!call->NeedsV2InputNames()) {
    Send(std::move(call), transport, std::move(executor), std::move(done), {});
    return;
  }
  FetchMetadata(std::move(call), transport, std::move(executor), std::move(done), {});
}

void RemoteCall::FetchMetadata(std::shared_ptr<RemoteCall> call, HttpTransport* transport,
                               Executor executor, std::function<void(Status)> done,
                               Clock::time_point not_before) {
  HttpRequest request;
  Status assembled = call->MetadataRequest(not_before, &request);
  if (!assembled.ok()) {
    done(std::move(assembled));
    return;
  }
  transport->Start(std::move(request), [call, transport, executor, done](
                                           Status fetched, HttpResponse response) mutable {
    Clock::time_point again;
    if (call->NextAttempt(fetched, response, &again)) {
      FetchMetadata(std::move(call), transport, std::move(executor), std::move(done), again);
      return;
    }
    auto answer = std::make_shared<HttpResponse>(std::move(response));
    executor([call, transport, executor, done, fetched, answer]() mutable {
      Status used = call->UseV2Metadata(std::move(fetched), *answer);
      if (!used.ok()) {
        done(std::move(used));
        return;
      }
      Send(std::move(call), transport, std::move(executor), std::move(done), {});
    });
  });
}

bool RemoteCall::ReadsInPlace() const {
  if (response_.body.size() <= kReadInlineBytes || response_.status != 200 ||
      target_.protocol == Protocol::kGraphPipe) {
    return true;
  }
  const std::string* json = response_.Header("inference-header-content-length");
  if (json == nullptr || json->empty() || json->size() > 6) return false;
  size_t json_size = 0;
  for (char c : *json) {
    if (c < '0' || c > '9') return false;
    json_size = json_size * 10 + static_cast<size_t>(c - '0');
  }
  return json_size <= kReadInlineBytes;
}

void RemoteCall::Send(std::shared_ptr<RemoteCall> call, HttpTransport* transport,
                      Executor executor, std::function<void(Status)> done,
                      Clock::time_point not_before) {
  HttpRequest request;
  Status assembled = call->Assemble(not_before, &request);
  if (!assembled.ok()) {
    done(std::move(assembled));
    return;
  }
  transport->Start(std::move(request), [call, transport, executor, done](
                                           Status sent, HttpResponse response) mutable {
    Clock::time_point again;
    if (call->NextAttempt(sent, response, &again)) {
      // A retry's request is made here, on the transport's thread: GraphPipe
      // reuses its encoded bytes; v2 writes its JSON header again.
      Send(std::move(call), transport, std::move(executor), std::move(done), again);
      return;
    }
    call->response_ = std::move(response);
    if (!sent.ok() || call->ReadsInPlace()) {
      done(call->ReadAnswer(std::move(sent)));
      return;
    }
    // Decoding megabytes of JSON belongs off the one thread that drives
    // every transfer.
    executor([call, done, sent]() mutable { done(call->ReadAnswer(std::move(sent))); });
  });
}

AnswerBytes RemoteCall::TakeAnswerBytes() {
  AnswerBytes bytes;
  bytes.body = std::move(response_.body);
  bytes.storage = std::move(v2_answer_.storage);
  return bytes;
}

namespace {

Status ReadOneModelMetadata(HttpTransport* transport, std::string_view url,
                            const CallOptions& options, int retries, Clock::time_point deadline,
                            ModelMetadata* out, V2InputNames* input_names) {
  CallTarget target;
  TF_GRAPHPIPE_RETURN_IF_ERROR(ResolveTarget(url, options.protocol, &target));
  std::string traceparent;
  TF_GRAPHPIPE_RETURN_IF_ERROR(Traceparent(options.traceparent, &traceparent));
  HttpResponse response;
  HttpRequest request;
  if (target.protocol == Protocol::kGraphPipe) {
    TF_GRAPHPIPE_RETURN_IF_ERROR(BaseRequest(target.url, options, deadline, traceparent, retries, &request));
    EncodedMessage message = EncodeMetadataRequest();
    request.body = message.Parts();
    TF_GRAPHPIPE_RETURN_IF_ERROR(transport->Call(std::move(request), &response));
    return ReadMetadataAnswer(target.url, response, out);
  }
  TF_GRAPHPIPE_RETURN_IF_ERROR(
      BaseRequest(target.v2.metadata_url, options, deadline, traceparent, retries, &request));
  request.post = false;
  TF_GRAPHPIPE_RETURN_IF_ERROR(transport->Call(std::move(request), &response));
  TF_GRAPHPIPE_RETURN_IF_ERROR(ReadV2MetadataAnswer(target.v2.metadata_url, response, out));
  input_names->Store(target.v2.metadata_url, InputNamesOf(*out));
  return Status::Ok();
}

}  // namespace

Status ReadModelMetadata(HttpTransport* transport, std::string_view url,
                         const CallOptions& options, Clock::time_point deadline,
                         ModelMetadata* out, V2InputNames* input_names, ReplicaHealth* health) {
  std::vector<std::string> replicas;
  TF_GRAPHPIPE_RETURN_IF_ERROR(SplitReplicas(url, &replicas));
  if (replicas.size() == 1) {
    return ReadOneModelMetadata(transport, replicas[0], options, options.retries, deadline, out,
                                input_names);
  }
  // One attempt per replica (the next one rather than a backoff), then the
  // retries on the last one tried.
  const std::vector<size_t> order = health->Order(std::string(url), replicas);
  Status read;
  for (size_t k = 0; k < order.size(); ++k) {
    const std::string& one = replicas[order[k]];
    const int retries = k + 1 == order.size() ? options.retries : 0;
    read = ReadOneModelMetadata(transport, one, options, retries, deadline, out, input_names);
    if (read.code() != Code::kUnavailable) {
      if (read.ok() || read.is_remote()) health->MarkUp(one);
      return read;
    }
    health->MarkDown(one);
  }
  return read;
}

}  // namespace tf_graphpipe
