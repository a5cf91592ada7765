// SPDX-License-Identifier: Apache-2.0
// HttpClient: asynchronous HTTP/1.1 over libcurl's multi interface.
//
// One background thread drives all Start()ed transfers of a client; callers
// on any thread get the completion through a callback. Call() blocks instead
// and runs the transfer on the calling thread (each thread keeps its own
// keep-alive connection), which saves two thread wake-ups per call: most of
// a small call's latency. Connections are kept alive and reused across
// requests to the same host (Start()'s cache lives in the multi handle), with
// TCP_NODELAY on. A pooled connection the server has closed is retried on a
// fresh connection by libcurl itself; both add retries on kUnavailable
// with exponential backoff, within the deadline.
//
// Thread-safety: every public method may be called from any thread.
// Callbacks run on the client's thread: keep them short, never block in them
// on another request of the same client.
#ifndef TF_GRAPHPIPE_CC_CORE_HTTP_CLIENT_H_
#define TF_GRAPHPIPE_CC_CORE_HTTP_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cc/core/byte_buffer.h"
#include "cc/core/bytes_span.h"
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
  Clock::time_point deadline = Clock::time_point::max();
  // Retries on kUnavailable (connection refused or reset, HTTP 503), with
  // exponential backoff from 50 ms, while the deadline allows.
  int retries = 0;
  // Answers larger than this fail with kResourceExhausted before the memory
  // is taken (checked against Content-Length, and again while receiving).
  size_t max_response_bytes = size_t{4} << 30;
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

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();  // fails pending transfers with kCancelled, joins the thread
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // The process-wide client every Python Client and op kernel shares, so
  // keep-alive connections are pooled across them. Never destroyed (its
  // thread may outlive static destructors at exit); re-created in a child
  // after fork(), where the parent's thread does not exist.
  static HttpClient& Shared();

  void Start(HttpRequest request, HttpCallback done);

  // Runs the transfer on the calling thread (same retries, deadline and
  // errors as Start()); returns when it completes.
  Status Call(HttpRequest request, HttpResponse* response);

  // Connections opened so far (for tests of connection reuse).
  int64_t connections_opened() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_HTTP_CLIENT_H_
