// SPDX-License-Identifier: Apache-2.0
// Status: the only way cc/core reports failure. Codes are numbered as the
// TensorFlow / gRPC canonical codes so each boundary maps them with one table
// (cc/ops/tf_status.h for tf.errors, tf_graphpipe/errors.py for Python).
#ifndef TF_GRAPHPIPE_CC_CORE_STATUS_H_
#define TF_GRAPHPIPE_CC_CORE_STATUS_H_

#include <cstdint>
#include <string>
#include <utility>

namespace tf_graphpipe {

enum class Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
};

// What a remote peer said when it refused a call. Absent (http_status == 0)
// for local and transport failures.
struct RemoteDetail {
  int http_status = 0;          // HTTP status of the answer
  bool has_error_code = false;  // the answer carried a protocol Error table
  int64_t error_code = 0;       // Error.code from that table
};

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}
  Status(Code code, std::string message, RemoteDetail remote)
      : code_(code), message_(std::move(message)), remote_(remote) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const RemoteDetail& remote() const { return remote_; }
  bool is_remote() const { return remote_.http_status != 0; }

  // An unavailable server that will look the same on a retry (it showed a
  // certificate we do not trust): failover may try another replica, a retry
  // of the same one would only wait.
  Status NotWorthRetrying() const {
    Status copy = *this;
    copy.worth_retrying_ = false;
    return copy;
  }
  bool worth_retrying() const { return worth_retrying_; }

  // Prefixes the message with where it happened: "calling URL: ...".
  Status WithContext(const std::string& context) const {
    Status copy = *this;
    copy.message_ = context + ": " + message_;
    return copy;
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
  RemoteDetail remote_;
  bool worth_retrying_ = true;
};

#define TF_GRAPHPIPE_RETURN_IF_ERROR(expr)      \
  do {                                          \
    ::tf_graphpipe::Status _status = (expr);    \
    if (!_status.ok()) return _status;          \
  } while (0)

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_STATUS_H_
