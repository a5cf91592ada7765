// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: DecodeV2InferRequest and DecodeV2RawBinaryRequest, what
// the server runs on every v2 infer body, then EncodeV2InferAnswer on what
// they decoded.
//
// Input layout: byte 0 picks the mode (low 2 bits: 0 no
// Inference-Header-Content-Length, 1 the length in bytes 1-2, 2 that length
// minus 32768 (negative lengths), 3 a raw binary request whose declared type
// is byte 1 and shape pattern byte 2); the rest is the body. Checks: a
// refusal is kInvalidArgument (or kResourceExhausted) with a message; a
// decoded request has a name per input and a flag per output, and every
// tensor has the bytes its shape needs, inside the body or the request's own
// storage. Decoding the same input again (its header's plan now cached)
// gives the same request or the same refusal. It must agree with the client: the client's encoder (binary and
// JSON) turns it into bodies that decode to the same values. Its tensors
// sent back as an answer (binary as the request asked) decode, with the
// client's decoder, to the same values, or are refused for FP16/BF16 JSON.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "cc/core/v2_codec.h"
#include "cc/core/v2_server_codec.h"
#include "fuzz/fuzz_checks.h"

namespace tf_graphpipe {
namespace fuzz {
namespace {

bool InsideRequest(const void* p, size_t n, const uint8_t* body, size_t size,
                   const std::vector<ByteBuffer>& storage) {
  if (Inside(p, n, body, size)) return true;
  for (const ByteBuffer& b : storage) {
    if (Inside(p, n, b.data(), b.size())) return true;
  }
  return false;
}

template <typename T>
bool SameFloats(const uint8_t* a, const uint8_t* b, size_t nbytes) {
  for (size_t i = 0; i < nbytes; i += sizeof(T)) {
    T x, y;
    std::memcpy(&x, a + i, sizeof(T));
    std::memcpy(&y, b + i, sizeof(T));
    // JSON keeps every value and the sign of zero, not NaN payloads.
    if (!(std::isnan(x) && std::isnan(y)) && std::memcmp(&x, &y, sizeof(T)) != 0) return false;
  }
  return true;
}

// The same tensor, NaN payloads aside (JSON writes every NaN as NaN).
bool SameValues(const TensorView& a, const TensorView& b) {
  if (a.type != b.type || a.shape != b.shape || a.nbytes != b.nbytes || a.strings != b.strings) return false;
  if (a.nbytes == 0) return true;
  if (a.type == DType::kFloat32) return SameFloats<float>(a.data, b.data, a.nbytes);
  if (a.type == DType::kFloat64) return SameFloats<double>(a.data, b.data, a.nbytes);
  return std::memcmp(a.data, b.data, a.nbytes) == 0;
}

bool SameValues(const std::vector<TensorView>& a, const std::vector<TensorView>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!SameValues(a[i], b[i])) return false;
  }
  return true;
}

std::vector<uint8_t> Joined(const std::vector<BytesSpan>& parts) {
  std::vector<uint8_t> out;
  for (const BytesSpan& part : parts) out.insert(out.end(), part.data, part.data + part.size);
  return out;
}

// What the project's client would send for these inputs decodes to them.
void CheckClientAgrees(const V2InferRequest& request, bool binary) {
  V2InferRequestSpec spec;
  spec.input_names.assign(request.input_names.begin(), request.input_names.end());
  spec.inputs = request.inputs;
  spec.output_names.assign(request.output_names.begin(), request.output_names.end());
  spec.binary = binary;
  V2Message message;
  const Status encoded = EncodeV2InferRequest(spec, TensorBytes::kCopy, &message);
  if (!encoded.ok()) {  // names the client will not send (empty)
    Require(encoded.code() == Code::kInvalidArgument);
    return;
  }
  const std::vector<uint8_t> wire = Joined(message.Parts());
  V2InferRequest again;
  const Status decoded = DecodeV2InferRequest(
      wire.data(), wire.size(), static_cast<int64_t>(message.json_size()), &again);
  Require(decoded.ok());
  Require(again.input_names == request.input_names);
  Require(again.output_names == request.output_names);
  Require(SameValues(again.inputs, request.inputs));
}

// The inputs answered back as outputs decode, on the client, to themselves.
void CheckAnswerRoundTrip(const V2InferRequest& request) {
  V2AnswerSpec spec;
  spec.model_name = "m";
  spec.model_version = "1";
  if (request.id) spec.id = *request.id;
  spec.output_names.assign(request.input_names.begin(), request.input_names.end());
  spec.outputs = request.inputs;
  spec.binary = request.output_binary;
  spec.binary_default = request.binary_default;
  V2EncodedAnswer answer;
  const Status status = EncodeV2InferAnswer(spec, &answer);
  if (!status.ok()) {  // FP16/BF16 asked as JSON; an empty name
    Require(status.code() == Code::kInvalidArgument || status.code() == Code::kInternal);
    Require(!status.message().empty());
    return;
  }
  const std::vector<uint8_t> wire = Joined(answer.Parts());
  Require(wire.size() == answer.size());
  const size_t json_size = answer.binary() ? answer.header().size() : wire.size();
  ByteBuffer body;  // aligned, as a client receives
  Require(body.Reserve(wire.size() + 1));
  body.Append(wire.data(), wire.size());
  V2InferResponse decoded;
  Require(DecodeV2InferResponse(body.data(), body.size(), json_size, &decoded).ok());
  Require(decoded.model_name == "m");
  Require(decoded.output_names == request.input_names);
  Require(SameValues(decoded.outputs, request.inputs));
}

constexpr int64_t kShapes[][3] = {{-1, 0, 0}, {-1, 3, 0}, {2, -1, 0}, {2, 2, 0},
                                  {0, -1, 0}, {-1, -1, 0}, {4, 0, 0}, {-1, 2, 2}};
constexpr size_t kShapeRanks[] = {1, 2, 2, 2, 2, 2, 1, 3};

Status DecodeRaw(const uint8_t* data, size_t size, V2InferRequest* out) {
  const DType type = static_cast<DType>(data[1] % (kMaxDType + 1));
  const size_t pattern = data[2] % 9;
  std::vector<int64_t> shape;
  if (pattern < 8) shape.assign(kShapes[pattern], kShapes[pattern] + kShapeRanks[pattern]);
  return DecodeV2RawBinaryRequest(data + 3, size - 3, "x", type, pattern < 8 ? &shape : nullptr, out);
}

}  // namespace
}  // namespace fuzz
}  // namespace tf_graphpipe

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tf_graphpipe;  // NOLINT: a fuzz entry point, not library code
  if (size < 3) return 0;
  const int mode = data[0] & 3;
  const int64_t length = data[1] | (int64_t{data[2]} << 8);
  const uint8_t* body = data + 3;
  const size_t body_size = size - 3;
  std::optional<int64_t> header_length;
  if (mode == 1) header_length = length;
  if (mode == 2) header_length = length - 32768;
  const auto decode = [&](V2InferRequest* out) {
    return mode == 3 ? fuzz::DecodeRaw(data, size, out)
                     : DecodeV2InferRequest(body, body_size, header_length, out);
  };
  V2InferRequest request;
  const Status status = decode(&request);
  // The second time the header's plan may come from the cache: same answer.
  V2InferRequest again;
  const Status repeated = decode(&again);
  fuzz::Require(repeated.code() == status.code() && repeated.message() == status.message());
  if (!status.ok()) {
    fuzz::Require(status.code() == Code::kInvalidArgument || status.code() == Code::kResourceExhausted);
    fuzz::Require(!status.message().empty());
    return 0;
  }
  fuzz::Require(request.input_names.size() == request.inputs.size());
  fuzz::Require(request.output_names.size() == request.output_binary.size());
  for (const TensorView& t : request.inputs) {
    fuzz::CheckTensorIn(t, /*any_protocol=*/true, [&](const void* p, size_t n) {
      return fuzz::InsideRequest(p, n, body, body_size, request.storage);
    });
  }
  fuzz::Require(again.id == request.id && again.input_names == request.input_names);
  fuzz::Require(again.output_names == request.output_names && again.output_binary == request.output_binary);
  fuzz::Require(again.binary_default == request.binary_default && again.timeout_us == request.timeout_us);
  fuzz::Require(fuzz::SameValues(again.inputs, request.inputs));
  fuzz::CheckClientAgrees(request, /*binary=*/true);
  fuzz::CheckClientAgrees(request, /*binary=*/false);
  fuzz::CheckAnswerRoundTrip(request);
  return 0;
}
