// SPDX-License-Identifier: Apache-2.0
// Structural verification of received GraphPipe flatbuffers.
//
// flatbuffers' generated Verify() insists that every string ends in a NUL
// byte; the Go reference servers write strings without one (SPEC section 5),
// so those buffers are valid GraphPipe but fail the stock verifier. These
// functions check the same things (every offset, table, vector and string in
// bounds, nesting and table-count limits) but bound strings by their length
// prefix alone. Semantic checks (shape against data size) live in codec.cc.
#ifndef TF_GRAPHPIPE_CC_CORE_WIRE_VERIFIER_H_
#define TF_GRAPHPIPE_CC_CORE_WIRE_VERIFIER_H_

#include <cstddef>
#include <cstdint>

namespace tf_graphpipe {

bool VerifyRequestBuffer(const uint8_t* buffer, size_t size);
bool VerifyInferResponseBuffer(const uint8_t* buffer, size_t size);
bool VerifyMetadataResponseBuffer(const uint8_t* buffer, size_t size);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_WIRE_VERIFIER_H_
