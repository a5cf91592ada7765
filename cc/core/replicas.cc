// SPDX-License-Identifier: Apache-2.0
#include "cc/core/replicas.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace tf_graphpipe {
namespace {

constexpr auto kFirstDownTime = std::chrono::milliseconds(500);
constexpr auto kMaxDownTime = std::chrono::milliseconds(8000);
// Lists kept for their round-robin turn; past this (URLs made per call, say)
// the table starts again rather than grow without bound.
constexpr size_t kMaxLists = 4096;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

Status SplitReplicas(std::string_view url, std::vector<std::string>* out) {
  out->clear();
  size_t i = 0;
  while (i < url.size()) {
    while (i < url.size() && IsSpace(url[i])) ++i;
    size_t end = i;
    while (end < url.size() && !IsSpace(url[end])) ++end;
    if (end > i) out->emplace_back(url.substr(i, end - i));
    i = end;
  }
  if (out->empty()) return Status(Code::kInvalidArgument, "url names no server");
  for (const std::string& one : *out) {
    if (one.rfind("http://", 0) != 0 && one.rfind("https://", 0) != 0) {
      return Status(Code::kInvalidArgument,
                    "url must start with http:// or https://, got '" + one + "'");
    }
  }
  return Status::Ok();
}

ReplicaHealth& ReplicaHealth::Shared() {
  static ReplicaHealth* shared = new ReplicaHealth();
  return *shared;
}

std::vector<size_t> ReplicaHealth::Order(const std::string& key,
                                         const std::vector<std::string>& replicas) {
  const size_t n = replicas.size();
  std::vector<size_t> up;
  std::vector<std::pair<Clock::time_point, size_t>> down;
  std::lock_guard<std::mutex> lock(mu_);
  if (turn_.size() >= kMaxLists && turn_.find(key) == turn_.end()) turn_.clear();
  const uint64_t turn = turn_[key]++;
  const auto now = Clock::now();
  for (size_t k = 0; k < n; ++k) {
    const size_t i = static_cast<size_t>((turn + k) % n);
    auto it = down_.find(replicas[i]);
    if (it == down_.end() || it->second.until <= now) {
      up.push_back(i);
    } else {
      down.emplace_back(it->second.until, i);
    }
  }
  std::stable_sort(down.begin(), down.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& d : down) up.push_back(d.second);
  return up;
}

void ReplicaHealth::MarkDown(const std::string& url) {
  std::lock_guard<std::mutex> lock(mu_);
  Down& d = down_[url];
  const Clock::duration wait = std::min<Clock::duration>(
      kFirstDownTime * (int64_t{1} << std::min(d.failures, 4)), kMaxDownTime);
  ++d.failures;
  d.until = Clock::now() + wait;
}

void ReplicaHealth::MarkUp(const std::string& url) {
  std::lock_guard<std::mutex> lock(mu_);
  down_.erase(url);
}

bool ReplicaHealth::IsDown(const std::string& url) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = down_.find(url);
  return it != down_.end() && it->second.until > Clock::now();
}

}  // namespace tf_graphpipe
