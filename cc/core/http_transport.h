// SPDX-License-Identifier: Apache-2.0
// The seam between a call and the network: what an HTTP request and answer
// are, and the interface that moves them. HttpClient (http_client.h) is the
// implementation over libcurl; tests give the call plan (call_plan.h) and the
// op kernel an implementation of their own, so their logic runs without a
// network.
//
// Ownership: a request's body parts are borrowed; the caller keeps them alive
// until the transfer completes (until `done` runs, or Call() returns). The
// answer is owned by whoever receives the HttpResponse.
#ifndef TF_GRAPHPIPE_CC_CORE_HTTP_TRANSPORT_H_
#define TF_GRAPHPIPE_CC_CORE_HTTP_TRANSPORT_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cc/core/byte_buffer.h"
#include "cc/core/bytes_span.h"
#include "cc/core/call_credentials.h"
#include "cc/core/cancel_token.h"
#include "cc/core/status.h"

namespace tf_graphpipe {

using Clock = std::chrono::steady_clock;

struct HttpRequest {
  std::string url;
  bool post = true;  // false: GET
  // The body, in parts sent in order (scatter-gather). Not copied: the
  // caller keeps every part alive until the callback.
  std::vector<BytesSpan> body;
  std::string content_type = "application/octet-stream";
  std::vector<std::string> extra_headers;  // "Name: value"
  TlsFiles tls;  // https://: CA bundle and client certificate (empty: defaults)
  Clock::time_point deadline = Clock::time_point::max();
  // Not sent before this time (a caller's retry backoff, from the call plan);
  // the default: at once.
  Clock::time_point not_before{};
  // Retries on kUnavailable (connection refused or reset, HTTP 503), with
  // exponential backoff from 50 ms, while the deadline allows.
  int retries = 0;
  // Answers larger than this fail with kResourceExhausted before the memory
  // is taken (checked against Content-Length, and again while receiving).
  size_t max_response_bytes = size_t{4} << 30;
  // A response header (lower-case) whose value is a byte offset into the
  // body that is received 64-byte aligned (ByteBuffer::AlignAt): a v2
  // answer's Inference-Header-Content-Length, so its first tensor blob can
  // be viewed in place. Empty, absent or not a number: byte 0 is aligned.
  std::string aligned_offset_header;
  // Start() only: cancelling it ends the transfer at once with kCancelled
  // (not sent if it has not been; aborted, its connection closed, if it
  // has; no retry after it). Null: only the deadline ends it.
  std::shared_ptr<CancelToken> cancel;
};

struct HttpResponse {
  long status = 0;
  std::string content_type;
  ByteBuffer body;
  // The final answer's header fields, names lower-cased, values trimmed,
  // in the order received (libcurl bounds their total size).
  std::vector<std::pair<std::string, std::string>> headers;

  // The value of the first header field named `lower_name`, or nullptr.
  const std::string* Header(std::string_view lower_name) const {
    for (const auto& field : headers) {
      if (field.first == lower_name) return &field.second;
    }
    return nullptr;
  }
};

// Transport failures only; an HTTP answer of any status is a success here.
using HttpCallback = std::function<void(Status, HttpResponse)>;

// Moves HTTP requests. Implementations are thread-safe: both methods may be
// called from any thread, concurrently.
//
// Status codes (transport failures only; an HTTP answer of any status is OK
// with the status in the response): kDeadlineExceeded (no answer before the
// request's deadline), kUnavailable (refused, reset, closed mid-answer, host
// unknown; HTTP 503 after the retries), kInvalidArgument (a malformed URL),
// kResourceExhausted (the answer is over max_response_bytes, or its memory
// cannot be had), kCancelled (the request's cancel token fired, or the
// transport shut down), kInternal.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;

  // Starts the transfer and returns. `done` runs exactly once, on the
  // transport's own thread (or the calling thread, for a request refused
  // before it is sent): keep it short, and never block in it on another
  // request of the same transport.
  virtual void Start(HttpRequest request, HttpCallback done) = 0;

  // Runs the transfer and returns when it completes.
  virtual Status Call(HttpRequest request, HttpResponse* response) = 0;
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_HTTP_TRANSPORT_H_
