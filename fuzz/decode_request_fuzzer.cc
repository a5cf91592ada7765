// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: DecodeRequest, what a server runs on every POST body.
// A request that decodes must re-encode (by copy and by reference) into
// bytes that decode to the same request.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cc/core/codec.h"
#include "fuzz/fuzz_checks.h"

namespace tf_graphpipe {
namespace fuzz {
namespace {

std::vector<uint8_t> Joined(const EncodedMessage& message) {
  std::vector<uint8_t> out;
  for (const BytesSpan& part : message.Parts()) {
    const auto* p = static_cast<const uint8_t*>(part.data);
    out.insert(out.end(), p, p + part.size);
  }
  return out;
}

void CheckRoundTrip(const RequestView& request, TensorBytes bytes) {
  InferRequestSpec spec;
  spec.config = request.config;
  spec.input_names = request.input_names;
  spec.inputs = request.inputs;
  spec.output_names = request.output_names;
  EncodedMessage encoded;
  Require(EncodeInferRequest(spec, bytes, &encoded).ok());
  const std::vector<uint8_t> wire = Joined(encoded);
  Require(wire.size() == encoded.size());
  RequestView again;
  Require(DecodeRequest(wire.data(), wire.size(), &again).ok());
  Require(again.kind == RequestView::Kind::kInfer);
  Require(again.config == request.config);
  Require(again.input_names == request.input_names);
  Require(again.output_names == request.output_names);
  Require(SameTensors(again.inputs, request.inputs));
}

}  // namespace
}  // namespace fuzz
}  // namespace tf_graphpipe

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tf_graphpipe;  // NOLINT: a fuzz entry point, not library code
  RequestView request;
  const Status status = DecodeRequest(data, size, &request);
  if (!status.ok()) {
    fuzz::CheckRefusal(status);
    return 0;
  }
  if (request.kind == RequestView::Kind::kMetadata) return 0;
  fuzz::CheckString(request.config, data, size);
  for (auto s : request.input_names) fuzz::CheckString(s, data, size);
  for (auto s : request.output_names) fuzz::CheckString(s, data, size);
  for (const TensorView& t : request.inputs) fuzz::CheckTensor(t, data, size);
  fuzz::CheckRoundTrip(request, TensorBytes::kCopy);
  fuzz::CheckRoundTrip(request, TensorBytes::kReference);
  return 0;
}
