// SPDX-License-Identifier: Apache-2.0
// One v2 tensor's data, the same for both directions of the protocol (the
// server's requests and answers, the client's requests and answers): reading
// a JSON `data` array (nested or flat, row-major) into owned storage and a
// binary-extension blob (little-endian values; BYTES as 4-byte little-endian
// lengths, each followed by its bytes) as a view in place; and, for writing,
// the checks a reader will make and the blob's layout.
//
// The two directions refuse the same faults with different codes (a request
// is kInvalidArgument, an answer kDataLoss) and prefixes: the caller says
// which through a V2Refusal. Every size comes from data that exists, never
// from a shape alone. Thread-safe (no shared state); never throws.
#ifndef TF_GRAPHPIPE_CC_CORE_V2_TENSOR_DATA_H_
#define TF_GRAPHPIPE_CC_CORE_V2_TENSOR_DATA_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cc/core/byte_buffer.h"
#include "cc/core/status.h"
#include "cc/core/tensor_view.h"
#include "cc/core/v2_json.h"

namespace tf_graphpipe {

// How a caller words a refusal: the code and the text before every message.
struct V2Refusal {
  Code code;
  const char* prefix;

  Status operator()(const std::string& message) const { return Status(code, prefix + message); }
};

// JSON `data` holding `count` elements of view->type (any type, FP16 and
// BF16 as numbers rounded to nearest even) -> a new buffer appended to
// `storage`, which the view points into. `what` names the tensor in messages.
Status ReadV2JsonData(const Json& data, int64_t count, const std::string& what, const V2Refusal& refuse,
                      TensorView* view, std::vector<ByteBuffer>* storage);

// The blob [blob, blob + size) holding `count` elements of view->type -> the
// view, pointing into the blob. A numeric blob's size must be count times
// the element size; BOOL bytes must be 0 or 1.
Status ReadV2Blob(const uint8_t* blob, size_t size, int64_t count, const std::string& what,
                  const V2Refusal& refuse, TensorView* view);

// ---- writing ----

// Whether a reader will take `t` as it is: a type with a v2 datatype, a valid
// shape, as many BYTES elements as the shape holds (each under 4 GiB, what a
// length prefix can say) or as many bytes. Else false, with `problem` saying
// why; the writer decides whose fault it is.
bool V2TensorIsWritable(const TensorView& t, std::string* problem);

// The size of `t` as a binary-extension blob.
size_t V2BlobSize(const TensorView& t);

// The 4-byte little-endian length before a BYTES element of a blob.
inline std::array<uint8_t, 4> V2LengthPrefix(std::string_view element) {
  const auto n = static_cast<uint32_t>(element.size());
  return {static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n >> 16),
          static_cast<uint8_t>(n >> 24)};
}

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_V2_TENSOR_DATA_H_
