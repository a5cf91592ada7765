// SPDX-License-Identifier: Apache-2.0
// cc/core Status -> TensorFlow status: the one mapping on this side. Core
// codes are numbered as the canonical codes, so the mapping is the identity;
// what each code means for a remote call is decided in cc/core
// (graphpipe_answer.h, http_client.cc).
#ifndef TF_GRAPHPIPE_CC_OPS_TF_STATUS_H_
#define TF_GRAPHPIPE_CC_OPS_TF_STATUS_H_

#include "absl/status/status.h"
#include "cc/core/status.h"

namespace tf_graphpipe {

inline absl::Status ToTfStatus(const Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.code()), status.message());
}

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_OPS_TF_STATUS_H_
