// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: DecodeInferResponse, what a client runs on every answer.
// An answer with outputs must re-encode into bytes that decode to the same
// outputs; an error answer must re-encode to the same errors.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cc/core/codec.h"
#include "fuzz/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tf_graphpipe;  // NOLINT: a fuzz entry point, not library code
  InferResponseView response;
  const Status status = DecodeInferResponse(data, size, &response);
  if (!status.ok()) {
    fuzz::CheckRefusal(status);
    return 0;
  }
  for (const TensorView& t : response.outputs) fuzz::CheckTensor(t, data, size);

  EncodedMessage encoded;
  fuzz::Require(EncodeInferResponse(response.outputs, &encoded).ok());
  const std::vector<uint8_t> wire = fuzz::Contiguous(encoded);
  InferResponseView again;
  fuzz::Require(DecodeInferResponse(wire.data(), wire.size(), &again).ok());
  fuzz::Require(again.errors.empty());
  fuzz::Require(fuzz::SameTensors(again.outputs, response.outputs));

  if (!response.errors.empty()) {
    const std::vector<uint8_t> error_wire =
        fuzz::Contiguous(EncodeErrorResponse(response.errors));
    InferResponseView refused;
    fuzz::Require(DecodeInferResponse(error_wire.data(), error_wire.size(), &refused).ok());
    fuzz::Require(refused.outputs.empty());
    fuzz::Require(refused.errors.size() == response.errors.size());
    for (size_t i = 0; i < refused.errors.size(); ++i) {
      fuzz::Require(refused.errors[i].code == response.errors[i].code);
      fuzz::Require(refused.errors[i].message == response.errors[i].message);
    }
  }
  return 0;
}
