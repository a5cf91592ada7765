// SPDX-License-Identifier: Apache-2.0
#include "cc/core/http_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

namespace tf_graphpipe {
namespace {

constexpr long kReceiveBufferBytes = 512 * 1024;
// libcurl copies every request body, one part or many, through its upload
// buffer on its way to the socket. Larger bodies go through our read callback
// with the buffer at its maximum (2 MiB), which keeps syscalls and poll
// rounds few: a large one-part body given as POSTFIELDS was sent through the
// default 64 KiB buffer, about 0.5 ms slower per 2.4 MB call on loopback
// (bench/README.md). Bodies up to 64 KiB go as POSTFIELDS, with the head.
constexpr long kUploadBufferBytes = 2 * 1024 * 1024;
constexpr size_t kDefaultUploadBufferBytes = 64 * 1024;
constexpr auto kFirstBackoff = std::chrono::milliseconds(50);
constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);
constexpr int kIdlePollMs = 1000;
// Idle easy handles kept for blocking calls (each with its keep-alive
// connections); more are closed when they come back.
constexpr size_t kMaxIdleBlockingHandles = 64;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Seconds(Clock::duration d) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g",
                std::chrono::duration<double>(d).count());
  return text;
}

// One request in flight (or waiting for its retry).
struct Transfer {
  HttpRequest request;
  HttpCallback done;
  HttpResponse response;
  Clock::time_point started;
  Clock::time_point not_before;
  int attempt = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  Status abort_status;  // why a callback stopped the transfer, if it did
  uint64_t id = 0;       // names it to a cancellation, which may come late
  uint64_t cancel_registration = 0;
  bool cancel_registered = false;
  size_t body_size = 0;  // sum of the body's parts
  size_t part = 0;       // read position in a multi-part body
  size_t part_offset = 0;
  bool sized = false;   // the body buffer was sized from Content-Length
  char error[CURL_ERROR_SIZE] = {0};
};

// Headers arrive before the body: the offset the request wants aligned is
// known before the body's buffer is taken.
void AlignBody(const Transfer& t, ByteBuffer* body) {
  if (t.request.aligned_offset_header.empty()) return;
  const std::string* value = t.response.Header(t.request.aligned_offset_header);
  if (value == nullptr || value->empty() || value->size() > 18) return;
  size_t offset = 0;
  for (char c : *value) {
    if (c < '0' || c > '9') return;
    offset = offset * 10 + static_cast<size_t>(c - '0');
  }
  body->AlignAt(offset);
}

size_t OnBody(char* bytes, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  ByteBuffer& body = t->response.body;
  if (!t->sized) {
    t->sized = true;
    AlignBody(*t, &body);
    curl_off_t length = -1;
    curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    if (length > 0) {
      if (static_cast<uint64_t>(length) > t->request.max_response_bytes) {
        t->abort_status = Status(
            Code::kResourceExhausted,
            t->request.url + " answered " + std::to_string(length) +
                " bytes, over the limit of " +
                std::to_string(t->request.max_response_bytes));
        return 0;
      }
      // One buffer for the whole body: no chunk list, no copy at the end.
      if (!body.Reserve(static_cast<size_t>(length))) {
        t->abort_status = Status(Code::kResourceExhausted,
                                 "cannot allocate " + std::to_string(length) +
                                     " bytes for the answer of " + t->request.url);
        return 0;
      }
    }
  }
  if (body.size() + n > t->request.max_response_bytes) {
    t->abort_status = Status(Code::kResourceExhausted,
                             t->request.url + " answered more than " +
                                 std::to_string(t->request.max_response_bytes) +
                                 " bytes");
    return 0;
  }
  if (!body.Append(bytes, n)) {
    t->abort_status = Status(Code::kResourceExhausted,
                             "out of memory receiving the answer of " +
                                 t->request.url);
    return 0;
  }
  return n;
}

// Collects the answer's header fields. A status line starts a new answer
// (an interim 1xx, or a retry on a fresh connection): fields before it are
// dropped.
size_t OnHeader(char* bytes, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  std::string_view line(bytes, n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.rfind("HTTP/", 0) == 0) {
    t->response.headers.clear();
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  t->response.headers.emplace_back(std::move(name), std::string(value));
  return n;
}

// Feeds a multi-part body to libcurl.
size_t OnRead(char* out, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::vector<BytesSpan>& parts = t->request.body;
  size_t room = size * count;
  size_t written = 0;
  while (room > 0 && t->part < parts.size()) {
    const BytesSpan& part = parts[t->part];
    const size_t n = std::min(room, part.size - t->part_offset);
    std::memcpy(out + written, part.data + t->part_offset, n);
    written += n;
    room -= n;
    t->part_offset += n;
    if (t->part_offset == part.size) {
      ++t->part;
      t->part_offset = 0;
    }
  }
  return written;
}

// libcurl rewinds the body when it resends on a fresh connection (a pooled
// connection the server had closed).
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  size_t remaining = static_cast<size_t>(offset);
  t->part = 0;
  t->part_offset = 0;
  while (t->part < t->request.body.size() && remaining >= t->request.body[t->part].size) {
    remaining -= t->request.body[t->part].size;
    ++t->part;
  }
  if (t->part == t->request.body.size() && remaining > 0) return CURL_SEEKFUNC_FAIL;
  t->part_offset = remaining;
  return CURL_SEEKFUNC_OK;
}

// The system's CA bundle when this libcurl has no default of its own (the
// copy TensorFlow bundles may be built without one); null when it has one.
const char* SystemCaBundle() {
  static const char* const bundle = [] () -> const char* {
    CURL* probe = curl_easy_init();
    char* built_in = nullptr;
    if (probe != nullptr) curl_easy_getinfo(probe, CURLINFO_CAINFO, &built_in);
    const bool has_default = built_in != nullptr && ::access(built_in, R_OK) == 0;
    if (probe != nullptr) curl_easy_cleanup(probe);
    if (has_default) return nullptr;
    for (const char* path : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                             "/etc/ssl/cert.pem"}) {
      if (::access(path, R_OK) == 0) return path;
    }
    return nullptr;
  }();
  return bundle;
}

// TLS files of one request on a handle fresh from curl_easy_reset. The peer
// and host name are always verified (libcurl's defaults, never changed).
void ConfigureTls(CURL* easy, const TlsFiles& tls) {
  if (!tls.ca_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, tls.ca_file.c_str());
  } else if (const char* bundle = SystemCaBundle()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, bundle);
  }
  if (!tls.client_cert.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLCERT, tls.client_cert.c_str());
    curl_easy_setopt(easy, CURLOPT_SSLKEY,
                     tls.client_key.empty() ? tls.client_cert.c_str() : tls.client_key.c_str());
  }
}

Status TransportStatus(CURLcode result, const Transfer& t) {
  const std::string detail = t.error[0] != 0 ? t.error : curl_easy_strerror(result);
  const std::string& url = t.request.url;
  switch (result) {
    case CURLE_OPERATION_TIMEDOUT:
      return Status(Code::kDeadlineExceeded,
                    "no answer from " + url + " within the deadline (" +
                        Seconds(t.request.deadline - t.started) +
                        " s): " + detail);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Status(Code::kInvalidArgument, "bad URL '" + url + "': " + detail);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return Status(Code::kUnavailable, "cannot reach " + url + ": " + detail);
    case CURLE_PEER_FAILED_VERIFICATION:
      return Status(Code::kUnavailable,
                    "connection to " + url + " failed: the server's TLS certificate is not trusted (" +
                        detail + "): pass ca_file= with the CA that signed it")
          .NotWorthRetrying();
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
      return Status(Code::kInvalidArgument,
                    "TLS files for " + url + " are not usable (ca_file, client_cert, client_key): " + detail);
    default:
      // Reset, closed mid-answer, nothing received, TLS failures...: the
      // server went away; trying again may well succeed.
      return Status(Code::kUnavailable,
                    "connection to " + url + " failed: " + detail);
  }
}

// The status of a finished attempt; fills the response's status and type.
Status Outcome(CURL* easy, CURLcode result, Transfer* t) {
  if (result == CURLE_OK) {
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &t->response.status);
    const char* type = nullptr;
    curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
    t->response.content_type = type == nullptr ? "" : type;
    return Status();
  }
  if (!t->abort_status.ok()) return t->abort_status;
  return TransportStatus(result, *t);
}

// ---- cancellation (HttpRequest::cancel) ----

bool CancelRequested(const Transfer& t) {
  return t.request.cancel != nullptr && t.request.cancel->cancelled();
}

Status Cancelled(const Transfer& t) {
  return Status(Code::kCancelled, "call to " + t.request.url + " cancelled");
}

// ---- end of cancellation ----

// Whether the attempt that ended with `status` is tried again, and after
// how long; readies `t` for it.
bool ShouldRetry(Transfer* t, const Status& status, Clock::duration* backoff) {
  if (CancelRequested(*t)) return false;
  const bool unavailable = status.code() == Code::kUnavailable ||
                           (status.ok() && t->response.status == 503);
  if (!unavailable || !status.worth_retrying() || t->attempt >= t->request.retries) return false;
  *backoff = std::min<Clock::duration>(kFirstBackoff * (1 << std::min(t->attempt, 10)),
                                       kMaxBackoff);
  if (Clock::now() + *backoff >= t->request.deadline) return false;
  ++t->attempt;
  t->response = HttpResponse();
  t->abort_status = Status();
  return true;
}

Status DeadlinePassed(const Transfer& t) {
  return Status(Code::kDeadlineExceeded,
                "deadline for " + t.request.url + " passed before it was sent");
}

}  // namespace

class HttpClient::Impl {
 public:
  Impl() {
    InitCurlOnce();
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, 64L);
    thread_ = std::thread([this] { Run(); });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_);
    thread_.join();
    for (CURL* easy : idle_) curl_easy_cleanup(easy);
    for (CURL* easy : idle_blocking_) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);
  }

  void Start(HttpRequest request, HttpCallback done) {
    auto t = std::make_unique<Transfer>();
    t->request = std::move(request);
    t->done = std::move(done);
    t->started = Clock::now();
    t->id = next_transfer_id_.fetch_add(1);
    if (t->request.cancel != nullptr) {
      const uint64_t id = t->id;
      t->cancel_registered =
          t->request.cancel->Register([this, id] { RequestCancel(id); }, &t->cancel_registration);
      if (!t->cancel_registered) {  // cancelled before it was handed over
        t->done(Cancelled(*t), HttpResponse());
        return;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_) incoming_.push_back(std::move(t));
    }
    if (t != nullptr) {  // the client is shutting down
      Complete(std::move(t), Status(Code::kCancelled, "HTTP client shut down"));
      return;
    }
    curl_multi_wakeup(multi_);
  }

  int64_t connections_opened() const { return connections_.load(); }

  // The blocking call: the same transfer, retries and errors as Start(),
  // on the calling thread, with no hand-off to the loop thread and back.
  Status CallHere(HttpRequest request, HttpResponse* response) {
    if (request.not_before > Clock::now()) {  // a caller's backoff, holding no connection
      std::this_thread::sleep_until(std::min(request.not_before, request.deadline));
    }
    CURL* easy = TakeBlockingEasy();
    if (easy == nullptr) return Status(Code::kInternal, "curl_easy_init failed");
    Transfer t;
    t.request = std::move(request);
    t.started = Clock::now();
    Status status;
    while (true) {
      const auto now = Clock::now();
      if (now >= t.request.deadline) {
        status = DeadlinePassed(t);
        break;
      }
      Configure(easy, &t, now);
      const CURLcode result = curl_easy_perform(easy);
      long new_connections = 0;
      curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &new_connections);
      connections_ += new_connections;
      status = Outcome(easy, result, &t);
      // Options back to defaults; the live connection stays in the handle.
      curl_easy_reset(easy);
      t.easy = nullptr;
      Clock::duration backoff{};
      if (!ShouldRetry(&t, status, &backoff)) break;
      std::this_thread::sleep_for(backoff);
    }
    ReleaseBlockingEasy(easy);
    if (t.headers != nullptr) curl_slist_free_all(t.headers);
    t.headers = nullptr;
    *response = std::move(t.response);
    return status;
  }

 private:
  void Run() {
    std::vector<std::unique_ptr<Transfer>> arrived;
    std::vector<uint64_t> cancelled;
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) break;
        arrived.swap(incoming_);
        cancelled.swap(cancels_);
      }
      for (auto& t : arrived) Begin(std::move(t));
      arrived.clear();
      // After Begin: a cancellation that came before its transfer reached
      // this thread finds it here (and Begin refuses a cancelled one).
      for (uint64_t id : cancelled) Abort(id);
      cancelled.clear();
      PromoteDueRetries();
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg == CURLMSG_DONE) Finish(msg->easy_handle, msg->data.result);
      }
      curl_multi_poll(multi_, nullptr, 0, NextWakeMs(), nullptr);
    }
    Shutdown();
  }

  void Begin(std::unique_ptr<Transfer> t) {
    const auto now = Clock::now();
    if (CancelRequested(*t)) {
      Status cancelled = Cancelled(*t);
      Complete(std::move(t), std::move(cancelled));
      return;
    }
    if (now >= t->request.deadline) {
      // Read before the move: the order of a call's arguments is unspecified.
      Status late = DeadlinePassed(*t);
      Complete(std::move(t), std::move(late));
      return;
    }
    if (t->request.not_before > now) {  // a caller's backoff: wait with the retries
      t->not_before = t->request.not_before;
      waiting_.push_back(std::move(t));
      return;
    }
    CURL* easy = TakeEasy();
    if (easy == nullptr) {
      Complete(std::move(t), Status(Code::kInternal, "curl_easy_init failed"));
      return;
    }
    Configure(easy, t.get(), now);
    active_.emplace(easy, std::move(t));
    if (curl_multi_add_handle(multi_, easy) != CURLM_OK) {
      Finish(easy, CURLE_FAILED_INIT);
    }
  }

  void Configure(CURL* easy, Transfer* t, Clock::time_point now) {
    t->easy = easy;
    t->sized = false;
    t->error[0] = 0;
    const HttpRequest& r = t->request;
    curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
    if (r.post) {
      t->body_size = 0;
      for (const BytesSpan& part : r.body) t->body_size += part.size;
      curl_easy_setopt(easy, CURLOPT_POST, 1L);
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(t->body_size));
      if (r.body.size() <= 1 && t->body_size <= kDefaultUploadBufferBytes) {
        // A small body in one part: libcurl sends it with the head.
        static const uint8_t kEmpty = 0;
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS,
                         r.body.empty() ? &kEmpty : r.body.front().data);
      } else {
        t->part = 0;
        t->part_offset = 0;
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, OnRead);
        curl_easy_setopt(easy, CURLOPT_READDATA, t);
        curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, OnSeek);
        curl_easy_setopt(easy, CURLOPT_SEEKDATA, t);
        curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, kUploadBufferBytes);
      }
    } else {
      curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    }
    if (t->headers == nullptr) {
      if (r.post) {
        t->headers = curl_slist_append(t->headers, ("Content-Type: " + r.content_type).c_str());
      }
      // No "Expect: 100-continue" round trip before large bodies.
      t->headers = curl_slist_append(t->headers, "Expect:");
      for (const std::string& h : r.extra_headers) {
        t->headers = curl_slist_append(t->headers, h.c_str());
      }
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
    ConfigureTls(easy, r.tls);
    long remaining_ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(r.deadline - now).count());
    if (r.deadline == Clock::time_point::max()) remaining_ms = 0;  // no limit
    else remaining_ms = std::max(1L, remaining_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, remaining_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, remaining_ms);
  }

  void Finish(CURL* easy, CURLcode result) {
    auto it = active_.find(easy);
    if (it == active_.end()) return;
    std::unique_ptr<Transfer> t = std::move(it->second);
    active_.erase(it);
    curl_multi_remove_handle(multi_, easy);
    long new_connections = 0;
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &new_connections);
    connections_ += new_connections;

    Status status = Outcome(easy, result, t.get());
    ReleaseEasy(easy);
    t->easy = nullptr;
    Clock::duration backoff{};
    if (ShouldRetry(t.get(), status, &backoff)) {
      t->not_before = Clock::now() + backoff;
      waiting_.push_back(std::move(t));
      return;
    }
    Complete(std::move(t), std::move(status));
  }

  void Complete(std::unique_ptr<Transfer> t, Status status) {
    // Waits out a cancel callback running now, which uses this client.
    if (t->cancel_registered) t->request.cancel->Deregister(t->cancel_registration);
    t->cancel_registered = false;
    if (t->headers != nullptr) curl_slist_free_all(t->headers);
    t->headers = nullptr;
    t->done(std::move(status), std::move(t->response));
  }

  // ---- cancellation: any thread asks, the loop thread aborts ----

  void RequestCancel(uint64_t id) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancels_.push_back(id);
    }
    curl_multi_wakeup(multi_);
  }

  // Ends transfer `id` with kCancelled wherever it is: in flight (removed
  // from the multi handle mid-transfer, which makes libcurl close its
  // connection rather than pool it) or backing off before a retry. Gone
  // already (it completed): nothing to do.
  void Abort(uint64_t id) {
    for (auto it = active_.begin(); it != active_.end(); ++it) {
      if (it->second->id != id) continue;
      CURL* easy = it->first;
      std::unique_ptr<Transfer> t = std::move(it->second);
      active_.erase(it);
      curl_multi_remove_handle(multi_, easy);
      ReleaseEasy(easy);
      t->easy = nullptr;
      Status cancelled = Cancelled(*t);
      Complete(std::move(t), std::move(cancelled));
      return;
    }
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
      if ((*it)->id != id) continue;
      std::unique_ptr<Transfer> t = std::move(*it);
      waiting_.erase(it);
      Status cancelled = Cancelled(*t);
      Complete(std::move(t), std::move(cancelled));
      return;
    }
  }

  // ---- end of cancellation ----

  void PromoteDueRetries() {
    if (waiting_.empty()) return;
    const auto now = Clock::now();
    std::vector<std::unique_ptr<Transfer>> due;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if ((*it)->not_before <= now) {
        due.push_back(std::move(*it));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& t : due) Begin(std::move(t));
  }

  int NextWakeMs() const {
    int wait = kIdlePollMs;
    const auto now = Clock::now();
    for (const auto& t : waiting_) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t->not_before - now).count();
      wait = std::min<int>(wait, std::max<int>(0, static_cast<int>(ms) + 1));
    }
    return wait;
  }

  CURL* TakeEasy() {
    if (!idle_.empty()) {
      CURL* easy = idle_.back();
      idle_.pop_back();
      return easy;
    }
    return curl_easy_init();
  }

  void ReleaseEasy(CURL* easy) {
    curl_easy_reset(easy);
    idle_.push_back(easy);
  }

  // Blocking calls take a handle from a pool shared by all threads, not one
  // per thread: a connection outlives the thread that opened it, so threads
  // that come and go (a thread per batch, a fresh executor) reuse warm
  // connections instead of opening one each, which also costs the server a
  // new connection's buffers. Last in, first out: the warmest connection.
  CURL* TakeBlockingEasy() {
    {
      std::lock_guard<std::mutex> lock(blocking_mu_);
      if (!idle_blocking_.empty()) {
        CURL* easy = idle_blocking_.back();
        idle_blocking_.pop_back();
        return easy;
      }
    }
    return curl_easy_init();
  }

  void ReleaseBlockingEasy(CURL* easy) {
    {
      std::lock_guard<std::mutex> lock(blocking_mu_);
      if (idle_blocking_.size() < kMaxIdleBlockingHandles) {
        idle_blocking_.push_back(easy);
        return;
      }
    }
    curl_easy_cleanup(easy);
  }

  void Shutdown() {
    for (auto& entry : active_) {
      curl_multi_remove_handle(multi_, entry.first);
      curl_easy_cleanup(entry.first);
      entry.second->easy = nullptr;
      Complete(std::move(entry.second),
               Status(Code::kCancelled, "HTTP client shut down"));
    }
    active_.clear();
    for (auto& t : waiting_) {
      Complete(std::move(t), Status(Code::kCancelled, "HTTP client shut down"));
    }
    waiting_.clear();
    std::vector<std::unique_ptr<Transfer>> late;
    {
      std::lock_guard<std::mutex> lock(mu_);
      late.swap(incoming_);
    }
    for (auto& t : late) {
      Complete(std::move(t), Status(Code::kCancelled, "HTTP client shut down"));
    }
  }

  CURLM* multi_ = nullptr;
  std::thread thread_;
  std::atomic<int64_t> connections_{0};
  std::atomic<uint64_t> next_transfer_id_{1};

  std::mutex mu_;
  bool stopping_ = false;                              // guarded by mu_
  std::vector<std::unique_ptr<Transfer>> incoming_;    // guarded by mu_
  std::vector<uint64_t> cancels_;                      // transfer ids; guarded by mu_

  std::mutex blocking_mu_;
  std::vector<CURL*> idle_blocking_;  // guarded by blocking_mu_

  // Owned by the loop thread.
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> active_;
  std::vector<std::unique_ptr<Transfer>> waiting_;  // backing off before a retry
  std::vector<CURL*> idle_;
};

HttpClient::HttpClient() : impl_(std::make_unique<Impl>()) {}
HttpClient::~HttpClient() = default;

HttpClient& HttpClient::Shared() {
  static std::mutex mu;
  static HttpClient* shared = nullptr;
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lock(mu);
  if (shared == nullptr || owner != getpid()) {
    // After fork() the old client's thread does not exist here; leak it.
    shared = new HttpClient();
    owner = getpid();
  }
  return *shared;
}

void HttpClient::Start(HttpRequest request, HttpCallback done) {
  impl_->Start(std::move(request), std::move(done));
}

Status HttpClient::Call(HttpRequest request, HttpResponse* response) {
  return impl_->CallHere(std::move(request), response);
}

int64_t HttpClient::connections_opened() const {
  return impl_->connections_opened();
}

}  // namespace tf_graphpipe
