// SPDX-License-Identifier: Apache-2.0
// Failover across replicas. A call's URL may name several equivalent servers,
// separated by whitespace ("http://10.0.0.7:9000 http://10.0.0.8:9000"), so
// that one string (an op attr, a URL variable, a SavedModel) holds a list as
// it holds one URL. Calls take turns among the replicas (round-robin, per
// list); a replica found unavailable (refused, reset, HTTP 503) is marked
// down for a short backoff (0.5 s, doubling per failure in a row up to 8 s),
// during which calls try it only after every other; its next answer marks it
// up. A call never fails for want of trying: replicas marked down are still
// tried, last. The call plan (call_plan.h) moves a call to the next replica.
#ifndef TF_GRAPHPIPE_CC_CORE_REPLICAS_H_
#define TF_GRAPHPIPE_CC_CORE_REPLICAS_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cc/core/http_transport.h"
#include "cc/core/status.h"

namespace tf_graphpipe {

// The URLs of `url`, split at whitespace. kInvalidArgument when there is
// none, or one that is not http:// or https://.
Status SplitReplicas(std::string_view url, std::vector<std::string>* out);

// What the process knows of replicas' health, shared by every op kernel and
// Client. Thread-safe.
class ReplicaHealth {
 public:
  // The process-wide table. Never destroyed.
  static ReplicaHealth& Shared();

  // The order a new call of the list `key` (its URL string) tries
  // `replicas` in, as indices: those not marked down in turn (each call of
  // the same list starts one further), then those marked down, the one back
  // soonest first.
  std::vector<size_t> Order(const std::string& key, const std::vector<std::string>& replicas);

  // `url` was unavailable: skipped for a backoff that doubles with each
  // failure in a row.
  void MarkDown(const std::string& url);
  // `url` answered (whatever the answer): no longer skipped.
  void MarkUp(const std::string& url);
  // Whether `url` is marked down now (tests, messages).
  bool IsDown(const std::string& url) const;

 private:
  struct Down {
    int failures = 0;
    Clock::time_point until;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Down> down_;      // guarded by mu_
  std::unordered_map<std::string, uint64_t> turn_;  // guarded by mu_: per list
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_REPLICAS_H_
