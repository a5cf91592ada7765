// SPDX-License-Identifier: Apache-2.0
// Datatype names and model URLs of the Open Inference Protocol (v2).
#include "cc/core/v2_codec.h"

#include <algorithm>
#include <string_view>

namespace tf_graphpipe {

namespace {

// The v2 datatype names, indexed by DType value (SPEC_V2 section 2).
constexpr const char* kDatatypeNames[] = {
    nullptr, "UINT8", "INT8",  "UINT16", "INT16", "UINT32", "INT32", "UINT64",
    "INT64", "FP16",  "FP32",  "FP64",   "BYTES", "BOOL",   "BF16",
};
static_assert(sizeof(kDatatypeNames) / sizeof(kDatatypeNames[0]) == kMaxDType + 1,
              "one v2 datatype name per DType");

}  // namespace

const char* V2DatatypeName(DType type) {
  const auto raw = static_cast<uint8_t>(type);
  return raw <= kMaxDType ? kDatatypeNames[raw] : nullptr;
}

DType DTypeOfV2Datatype(std::string_view name) {
  for (uint8_t raw = 1; raw <= kMaxDType; ++raw) {
    if (name == kDatatypeNames[raw]) return static_cast<DType>(raw);
  }
  return DType::kNull;
}

bool ParseV2ModelUrl(std::string_view url, V2ModelUrl* out) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return false;
  const size_t path_start = url.find('/', scheme + 3);
  if (path_start == std::string_view::npos) return false;
  const size_t path_end = std::min(url.find('?', path_start), url.find('#', path_start));
  std::string_view path = url.substr(path_start, path_end - path_start);
  const std::string_view rest = path_end == std::string_view::npos ? "" : url.substr(path_end);
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  std::vector<std::string_view> segments;  // after each '/'
  for (size_t at = 0; at < path.size();) {
    const size_t next = path.find('/', at + 1);
    segments.push_back(path.substr(at + 1, next == std::string_view::npos ? std::string_view::npos
                                                                         : next - at - 1));
    at = next == std::string_view::npos ? path.size() : next;
  }
  // .../v2/models/<name> or .../v2/models/<name>/versions/<v>; a prefix
  // (a proxy's route) may come first.
  const size_t k = segments.size();
  size_t name_at = 0;
  if (k >= 3 && segments[k - 3] == "v2" && segments[k - 2] == "models") {
    name_at = k - 1;
  } else if (k >= 5 && segments[k - 5] == "v2" && segments[k - 4] == "models" &&
             segments[k - 2] == "versions" && !segments[k - 1].empty()) {
    name_at = k - 3;
  } else {
    return false;
  }
  if (segments[name_at].empty()) return false;
  const std::string base(url.substr(0, path_start + path.size()));
  out->model = std::string(segments[name_at]);
  out->metadata_url = base + std::string(rest);
  out->infer_url = base + "/infer" + std::string(rest);
  return true;
}

}  // namespace tf_graphpipe
