// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: DecodeMetadataResponse. Metadata that decodes must
// re-encode into bytes that decode to the same metadata.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cc/core/codec.h"
#include "fuzz/fuzz_checks.h"

namespace tf_graphpipe {
namespace fuzz {
namespace {

bool SameIO(const std::vector<IOMetadata>& a, const std::vector<IOMetadata>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].description != b[i].description ||
        a[i].shape != b[i].shape || a[i].type != b[i].type) {
      return false;
    }
  }
  return true;
}

}  // namespace
}  // namespace fuzz
}  // namespace tf_graphpipe

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tf_graphpipe;  // NOLINT: a fuzz entry point, not library code
  ModelMetadata metadata;
  const Status status = DecodeMetadataResponse(data, size, &metadata);
  if (!status.ok()) {
    fuzz::CheckRefusal(status);
    return 0;
  }
  for (const auto* list : {&metadata.inputs, &metadata.outputs}) {
    for (const IOMetadata& m : *list) {
      fuzz::Require(static_cast<uint8_t>(m.type) <= kMaxWireType);
    }
  }
  const std::vector<uint8_t> wire = fuzz::Contiguous(EncodeMetadataResponse(metadata));
  ModelMetadata again;
  fuzz::Require(DecodeMetadataResponse(wire.data(), wire.size(), &again).ok());
  fuzz::Require(again.name == metadata.name && again.version == metadata.version &&
                again.server == metadata.server &&
                again.description == metadata.description);
  fuzz::Require(fuzz::SameIO(again.inputs, metadata.inputs));
  fuzz::Require(fuzz::SameIO(again.outputs, metadata.outputs));
  return 0;
}
