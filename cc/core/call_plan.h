// SPDX-License-Identifier: Apache-2.0
// The call plan: how one call of a remote model is made, the same for the op
// kernel (asynchronous) and the Python Client (blocking), so the two cannot
// drift apart. It decides
//   - which protocol the URL speaks (ResolveTarget: the one rule),
//   - the v2 input names: given, else the model's metadata input order,
//     fetched on the first call within that call's own deadline and cached
//     process-wide per model (V2InputNames),
//   - the request: encoded once, large inputs referenced, not copied, with
//     its URL, Content-Type, Inference-Header-Content-Length and deadline,
//   - the attempts: a call retries kUnavailable (refused, reset, HTTP 503)
//     itself, with backoff, and each attempt tells the server how long the
//     caller still waits, as of that attempt (GraphPipe: the
//     GraphPipe-Timeout header; v2: the `timeout` parameter),
//   - and reads the answer into views (graphpipe_answer.h, v2_answer.h).
// It sends through an HttpTransport it is given (http_transport.h): the op
// and the Client pass HttpClient::Shared(), tests a transport of their own.
//
// Status codes: those of HttpTransport and of the answer readers, plus
// kInvalidArgument for a call that cannot be made as given (a protocol the
// URL does not speak, `config` for v2, a v2 call whose input count differs
// from the model's, an input with no wire type); a failed metadata fetch
// keeps its code, with context saying how to skip it.
#ifndef TF_GRAPHPIPE_CC_CORE_CALL_PLAN_H_
#define TF_GRAPHPIPE_CC_CORE_CALL_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cc/core/byte_buffer.h"
#include "cc/core/call_credentials.h"
#include "cc/core/cancel_token.h"
#include "cc/core/codec.h"
#include "cc/core/encoded_message.h"
#include "cc/core/http_transport.h"
#include "cc/core/status.h"
#include "cc/core/tensor_view.h"
#include "cc/core/v2_codec.h"

namespace tf_graphpipe {

enum class Protocol { kGraphPipe, kV2 };
enum class ProtocolChoice { kGraphPipe, kV2, kAuto };

// "graphpipe", "v2" or "auto"; kInvalidArgument for anything else.
Status ParseProtocolChoice(std::string_view name, ProtocolChoice* out);
const char* ProtocolName(Protocol protocol);  // "graphpipe" / "v2"

// Where a call goes and in which protocol.
struct CallTarget {
  Protocol protocol = Protocol::kGraphPipe;
  std::string url;  // the URL as given (GraphPipe posts here)
  V2ModelUrl v2;    // kV2 only: the model's metadata and infer URLs
};

// kAuto speaks v2 exactly when the URL's path names a v2 model
// (ParseV2ModelUrl), GraphPipe otherwise. kInvalidArgument when kV2 is
// chosen for a URL that names no v2 model.
Status ResolveTarget(std::string_view url, ProtocolChoice choice, CallTarget* out);

// The input order of v2 models, by metadata URL, as their metadata said.
// Thread-safe. An entry is replaced whenever the metadata is read again
// (Client.metadata(), or a call after Forget()), and forgotten when the
// server refuses a call made with it, so a model redeployed with other inputs
// is re-read on the next call rather than refused forever.
class V2InputNames {
 public:
  // The process-wide cache the op and the Client share. Never destroyed.
  static V2InputNames& Shared();

  bool Find(const std::string& metadata_url, std::vector<std::string>* names) const;
  void Store(const std::string& metadata_url, std::vector<std::string> names);
  void Forget(const std::string& metadata_url);

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::string>> names_;  // guarded by mu_
};

// What stays the same for every call of one Client or op node. Immutable
// once shared between calls.
struct CallOptions {
  ProtocolChoice protocol = ProtocolChoice::kAuto;
  std::vector<std::string> input_names;   // empty: the server's input order
  std::vector<std::string> output_names;  // empty: every output, the server's order
  std::string config;                     // GraphPipe only
  bool v2_binary = true;                  // v2: tensors as raw bytes, else JSON
  int retries = 2;                        // extra attempts on kUnavailable
  size_t max_response_bytes = size_t{4} << 30;
  // Headers, the bearer token's source (read at each call) and TLS files;
  // every request of a call carries them (call_credentials.h).
  CallCredentials credentials;
  // The W3C traceparent every request of a call carries; empty: a new trace
  // per call (the op), else the caller's (the Client passes its context's).
  std::string traceparent;
};

// The deadline `seconds` from now; none for 0, a negative number or infinity.
Clock::time_point DeadlineAfter(double seconds);

// The header a GraphPipe request carries the caller's remaining time in:
// microseconds, a decimal integer (docs/protocol/SPEC.md). A v2 request
// carries the same number as its `timeout` parameter instead.
inline constexpr char kTimeoutHeader[] = "GraphPipe-Timeout";

// Microseconds from `at` to `deadline`, at least 1; 0 when there is none.
uint64_t MicrosecondsLeft(Clock::time_point deadline, Clock::time_point at);

// Runs work off the transport's thread (the op gives TensorFlow's CPU pool).
using Executor = std::function<void(std::function<void()>)>;

// The bytes a finished call's outputs view: the received body, and the
// tensors a v2 answer carried as JSON, decoded. Moving them keeps every
// address, so views stay valid in the new owner.
struct AnswerBytes {
  ByteBuffer body;
  std::vector<ByteBuffer> storage;
};

// One call. Not thread-safe: one thread (or one chain of callbacks) drives it.
class RemoteCall {
 public:
  // Answers read in time that does not grow with their tensors' bytes are
  // read on the transport's thread (that takes less than a hand-off to the
  // executor, a thread wake-up): errors, answers up to this size, GraphPipe
  // answers and v2 binary answers whose JSON header is up to this size
  // (offsets checked, then views). v2 JSON data larger than this is decoded
  // on the executor.
  static constexpr size_t kReadInlineBytes = size_t{64} << 10;

  // `inputs` borrow the caller's tensors, which stay alive and unchanged until
  // the call completes: large ones are sent from their memory.
  RemoteCall(std::shared_ptr<const CallOptions> options, std::string url,
             std::vector<TensorView> inputs, Clock::time_point deadline,
             V2InputNames* input_names = &V2InputNames::Shared());

  // Makes the call on the calling thread; returns when it is done.
  Status Run(HttpTransport* transport);

  // Makes the call asynchronously; `call` is kept alive until `done` has run.
  // `done` runs once: on the calling thread for a call refused before
  // anything is sent, on the transport's thread for an error or an answer
  // read in place (kReadInlineBytes), else on `executor`. A v2 call that reads metadata
  // first encodes its request on `executor`, never on the transport's thread.
  static void Start(std::shared_ptr<RemoteCall> call, HttpTransport* transport,
                    Executor executor, std::function<void(Status)> done);

  // After an OK completion: the outputs (the requested ones in the requested
  // order when output_names were given), viewing answer bytes this call owns.
  const std::vector<TensorView>& outputs() const { return outputs_; }
  // Every request of the call carries `token` (HttpRequest::cancel):
  // cancelling it ends the call with kCancelled. Set before Start.
  void set_cancel_token(std::shared_ptr<CancelToken> token) { cancel_ = std::move(token); }
  // Where the request went (the v2 infer URL for v2), for messages.
  const std::string& request_url() const { return request_url_; }
  // The bytes outputs() views; the call keeps its views, now into them.
  AnswerBytes TakeAnswerBytes();

 private:
  // What has to be known before a request can be sent.
  Status Resolve();
  bool NeedsV2InputNames() const;
  Status UseV2Metadata(Status fetched, const HttpResponse& response);
  Status Assemble(Clock::time_point not_before, HttpRequest* request);
  Status MetadataRequest(Clock::time_point not_before, HttpRequest* request) const;
  Status ReadAnswer(Status transport);
  // Whether the attempt that ended with `sent` / `response` is made again
  // (kUnavailable or HTTP 503, attempts and deadline left), and not before when.
  bool NextAttempt(const Status& sent, const HttpResponse& response, Clock::time_point* not_before);
  static void FetchMetadata(std::shared_ptr<RemoteCall> call, HttpTransport* transport,
                            Executor executor, std::function<void(Status)> done,
                            Clock::time_point not_before);
  bool ReadsInPlace() const;
  static void Send(std::shared_ptr<RemoteCall> call, HttpTransport* transport,
                   Executor executor, std::function<void(Status)> done,
                   Clock::time_point not_before);

  std::shared_ptr<const CallOptions> options_;
  std::string url_;
  std::vector<TensorView> inputs_;
  Clock::time_point deadline_;
  V2InputNames* cache_;

  CallTarget target_;
  std::string traceparent_;  // the call's, on each of its requests
  std::vector<std::string> v2_input_names_;
  bool v2_names_from_metadata_ = false;
  std::string request_url_;
  int attempt_ = 0;  // attempts made after the first
  bool encoded_ = false;  // the request's bytes below are made
  // The request's own bytes; libcurl sends from them until the call is done.
  EncodedMessage graphpipe_request_;
  V2Message v2_request_;
  std::shared_ptr<CancelToken> cancel_;
  HttpResponse response_;
  V2InferResponse v2_answer_;
  std::vector<TensorView> outputs_;
};

// The model's metadata (GraphPipe: a MetadataRequest; v2: GET on the model's
// URL, whose input order then goes into `input_names`), on the calling thread.
// Uses the protocol, retries and response limit of `options`.
Status ReadModelMetadata(HttpTransport* transport, std::string_view url,
                         const CallOptions& options, Clock::time_point deadline,
                         ModelMetadata* out, V2InputNames* input_names = &V2InputNames::Shared());

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_CALL_PLAN_H_
