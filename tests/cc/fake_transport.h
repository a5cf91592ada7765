// SPDX-License-Identifier: Apache-2.0
// An HttpTransport for unit tests: records every request it is given and
// answers each with the next scripted answer, without a network. Start()
// answers on a thread of its own, as HttpClient answers on its loop thread;
// a scripted hang answers only when the request's cancel token fires
// (kCancelled), or after 10 s (kDeadlineExceeded).
#ifndef TF_GRAPHPIPE_TESTS_CC_FAKE_TRANSPORT_H_
#define TF_GRAPHPIPE_TESTS_CC_FAKE_TRANSPORT_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cc/core/http_transport.h"

namespace tf_graphpipe {

class FakeTransport : public HttpTransport {
 public:
  struct Sent {
    std::string url;
    bool post = true;
    std::string body;  // the parts, joined
    std::string content_type;
    std::vector<std::string> extra_headers;
    Clock::time_point deadline;
    std::thread::id thread;  // the thread that handed the request over
  };

  ~FakeTransport() override {
    for (std::thread& t : answering_) t.join();
  }

  // The next request gets this answer (a transport failure when `failure`
  // is not OK).
  void Answer(long status, std::string body,
              std::vector<std::pair<std::string, std::string>> headers = {},
              Status failure = Status()) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back({status, std::move(body), std::move(headers), std::move(failure), false});
  }

  // The next request is never answered, unless cancelled.
  void Hang() {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back({0, "", {}, Status(), /*hang=*/true});
  }

  void Start(HttpRequest request, HttpCallback done) override {
    auto answer = std::make_shared<HttpResponse>();
    bool hang = false;
    Status status = Take(request, answer.get(), &hang);
    if (hang) {
      StartHanging(request, std::move(done));
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    answering_.emplace_back([this, done = std::move(done), status, answer] {
      {
        std::lock_guard<std::mutex> lock(mu_);
        answer_threads_.push_back(std::this_thread::get_id());
      }
      done(status, std::move(*answer));
    });
  }

  Status Call(HttpRequest request, HttpResponse* response) override {
    bool hang = false;
    return Take(request, response, &hang);
  }

  std::vector<Sent> sent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }

  std::vector<std::thread::id> answer_threads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return answer_threads_;
  }

 private:
  struct Scripted {
    long status;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    Status failure;
    bool hang = false;
  };

  struct Hung {
    std::mutex mu;
    std::condition_variable cancelled_cv;
    bool cancelled = false;
  };

  void StartHanging(const HttpRequest& request, HttpCallback done) {
    auto hung = std::make_shared<Hung>();
    std::shared_ptr<CancelToken> token = request.cancel;
    uint64_t registration = 0;
    const bool registered =
        token != nullptr && token->Register(
                                [hung] {
                                  std::lock_guard<std::mutex> lock(hung->mu);
                                  hung->cancelled = true;
                                  hung->cancelled_cv.notify_all();
                                },
                                &registration);
    if (token != nullptr && !registered) hung->cancelled = true;
    std::lock_guard<std::mutex> lock(mu_);
    answering_.emplace_back([done = std::move(done), hung, token, registered, registration] {
      bool cancelled = false;
      {
        std::unique_lock<std::mutex> lock(hung->mu);
        cancelled = hung->cancelled_cv.wait_for(lock, std::chrono::seconds(10),
                                                [&hung] { return hung->cancelled; });
      }
      if (registered) token->Deregister(registration);
      done(cancelled ? Status(Code::kCancelled, "cancelled while hung")
                     : Status(Code::kDeadlineExceeded, "hung for 10 s"),
           HttpResponse());
    });
  }

  Status Take(const HttpRequest& request, HttpResponse* response, bool* hang) {
    Sent sent{request.url, request.post, "", request.content_type, request.extra_headers,
              request.deadline, std::this_thread::get_id()};
    for (const BytesSpan& part : request.body) {
      sent.body.append(reinterpret_cast<const char*>(part.data), part.size);
    }
    std::lock_guard<std::mutex> lock(mu_);
    sent_.push_back(std::move(sent));
    if (script_.empty()) return Status(Code::kUnavailable, "no scripted answer left");
    Scripted next = std::move(script_.front());
    script_.pop_front();
    *hang = next.hang;
    if (next.hang) return Status();
    if (!next.failure.ok()) return next.failure;
    response->status = next.status;
    response->headers = std::move(next.headers);
    response->body.Reserve(next.body.size() + 1);
    response->body.Append(next.body.data(), next.body.size());
    return Status();
  }

  mutable std::mutex mu_;
  std::deque<Scripted> script_;             // guarded by mu_
  std::vector<Sent> sent_;                  // guarded by mu_
  std::vector<std::thread> answering_;      // guarded by mu_
  std::vector<std::thread::id> answer_threads_;  // guarded by mu_
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_TESTS_CC_FAKE_TRANSPORT_H_
