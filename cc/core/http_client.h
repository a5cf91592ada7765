// SPDX-License-Identifier: Apache-2.0
// HttpClient: the HttpTransport over libcurl (HTTP/1.1, keep-alive).
//
// One background thread drives all Start()ed transfers of a client through
// libcurl's multi interface; the completion comes through a callback on that
// thread. Call() blocks instead and runs the transfer on the calling thread,
// which saves two thread wake-ups per call: most of a small call's latency.
// Connections are kept alive and reused across requests to the same host:
// Start()'s live in the multi handle's cache, Call()'s in a pool of easy
// handles shared by all threads (so they outlive the thread that opened
// them). TCP_NODELAY is on. A pooled connection the server has closed is
// retried on a fresh connection by libcurl itself; both add retries on
// kUnavailable with exponential backoff, within the deadline. A Start()ed
// request whose cancel token fires is aborted on the loop thread as soon as
// it wakes (its easy handle removed mid-transfer, so libcurl closes that
// connection instead of pooling it) and completes with kCancelled.
//
// Ownership: the client owns its thread, handles and connections; requests
// borrow their body parts (http_transport.h); answers are handed over.
// Thread-safety: every public method may be called from any thread.
// Callbacks run on the client's thread: keep them short, never block in them
// on another request of the same client. Status codes: see HttpTransport.
#ifndef TF_GRAPHPIPE_CC_CORE_HTTP_CLIENT_H_
#define TF_GRAPHPIPE_CC_CORE_HTTP_CLIENT_H_

#include <cstdint>
#include <memory>

#include "cc/core/http_transport.h"
#include "cc/core/status.h"

namespace tf_graphpipe {

class HttpClient : public HttpTransport {
 public:
  HttpClient();
  ~HttpClient() override;  // fails pending transfers with kCancelled, joins the thread
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // The process-wide client every Python Client and op kernel shares, so
  // keep-alive connections are pooled across them. Never destroyed (its
  // thread may outlive static destructors at exit); re-created in a child
  // after fork(), where the parent's thread does not exist.
  static HttpClient& Shared();

  void Start(HttpRequest request, HttpCallback done) override;

  // Runs the transfer on the calling thread (same retries, deadline and
  // errors as Start()); returns when it completes.
  Status Call(HttpRequest request, HttpResponse* response) override;

  // Connections opened so far (for tests of connection reuse).
  int64_t connections_opened() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_HTTP_CLIENT_H_
