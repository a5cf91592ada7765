// SPDX-License-Identifier: Apache-2.0
// The server side of the Open Inference Protocol (KServe v2, REST) codec,
// with Triton's binary tensor extension (../shared/SPEC_V2.md sections 3-4):
// infer requests decoded, infer answers encoded. The client side is
// v2_codec.h; both share v2_json.h's JSON rules and dtype.h's types.
//
// Decoding verifies before it reads: the Inference-Header-Content-Length
// against the body, the header as JSON, every shape (rank, element count),
// `binary_data_size` against shape x element size and against what the body
// still holds, each BYTES element's 4-byte length prefix against its blob,
// BOOL bytes, and that the blobs fill the body exactly. Nothing is allocated
// from a size the body has not shown to be real: a JSON `data` array is
// counted before its storage is sized, a BYTES element count is bounded by
// its blob's length before anything is reserved. What a request decodes to
// is a small multiple of its size at most: a JSON value takes at least 2
// bytes of text, 16 parsed and 8 decoded; a BYTES element takes 4 bytes and
// becomes a 16-byte view. Binary inputs are views into the body; JSON `data`
// (any datatype, FP16 and BF16 included) is decoded into storage the request
// owns. A header that carries no JSON data is checked once: its plan is kept
// per thread (up to 256 headers of at most 8 KiB) and reused for the same
// header, clients repeating it for same-shaped calls; each body's blobs are
// checked all the same. Every refusal is kInvalidArgument (the caller's
// mistake: HTTP 400) with a message naming the input, except memory that
// cannot be had (kResourceExhausted).
//
// Encoding writes the JSON header, then one blob per binary output in output
// order. Numeric blobs are the outputs' own bytes, referenced, not copied;
// BYTES blobs are built once, into the answer. JSON floats use Triton's
// tokens NaN / Infinity / -Infinity; integers are written exactly. FP16 and
// BF16 have no JSON form: asking for one as JSON is refused
// (kInvalidArgument, as Triton answers 400), never sent binary unasked.
// BYTES outputs that are not UTF-8 cannot be JSON strings and travel binary
// (clients frame them by `binary_data_size`).
//
// All functions are thread-safe (no shared state; the plan cache is per
// thread).
#ifndef TF_GRAPHPIPE_CC_CORE_V2_SERVER_CODEC_H_
#define TF_GRAPHPIPE_CC_CORE_V2_SERVER_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cc/core/byte_buffer.h"
#include "cc/core/bytes_span.h"
#include "cc/core/status.h"
#include "cc/core/tensor_view.h"

namespace tf_graphpipe {

// ---- what a client sends ----

struct V2InferRequest {
  std::optional<std::string> id;  // echoed in the answer when present
  std::vector<std::string> input_names;
  std::vector<TensorView> inputs;  // views into the body, or into `storage`
  // Inputs that arrived as JSON `data`, decoded (a ByteBuffer keeps its
  // address when the vector moves it).
  std::vector<ByteBuffer> storage;
  // Outputs asked for, in order; empty: every output. A listed output is
  // binary iff its own `binary_data` is true; `binary_default` (the
  // request-wide `binary_data_output`) applies to outputs not listed
  // (SPEC_V2 section 4: what Triton and kserve do).
  std::vector<std::string> output_names;
  std::vector<bool> output_binary;
  bool binary_default = false;
  // Request parameters a server acts on. `timeout`: microseconds, as
  // tritonclient's infer(timeout=...) sends it; `priority`: 0 is default.
  std::optional<uint64_t> timeout_us;
  std::optional<uint64_t> priority;
};

// `header_length`: the Inference-Header-Content-Length as the client sent
// it (any value: out of [0, size] is refused), or nullopt when absent (the
// whole body is JSON). Views in `out` point into `body` and out->storage.
Status DecodeV2InferRequest(const uint8_t* body, size_t size, std::optional<int64_t> header_length,
                            V2InferRequest* out);

// Triton's raw binary request (Inference-Header-Content-Length: 0): the
// whole body is the one input of a model, whose declared type (kNull:
// undeclared) must be numeric and whose declared shape (nullptr: undeclared;
// -1: unknown) may leave one dimension to the body's length. Every output
// comes back binary.
Status DecodeV2RawBinaryRequest(const uint8_t* body, size_t size, std::string_view input_name,
                                DType type, const std::vector<int64_t>* shape,
                                V2InferRequest* out);

// ---- what a server answers ----

struct V2AnswerSpec {
  std::string_view model_name;
  std::string_view model_version;
  std::optional<std::string_view> id;
  std::vector<std::string_view> output_names;
  std::vector<TensorView> outputs;
  std::vector<bool> binary;  // per output; past its end, binary_default
  bool binary_default = false;
};

// An encoded answer: the JSON header, then the blobs. The header and BYTES
// blobs are owned; numeric blobs reference the outputs' bytes, which the
// caller keeps alive and unchanged while the answer is used. Move-only (the
// owned bytes keep their address). Not thread-safe.
class V2EncodedAnswer {
 public:
  struct Blob {
    BytesSpan bytes;
    // The output whose own bytes these are, or kOwned for bytes inside
    // this answer (a BYTES output's elements with their length prefixes).
    size_t output;
  };
  static constexpr size_t kOwned = static_cast<size_t>(-1);

  V2EncodedAnswer() = default;
  V2EncodedAnswer(V2EncodedAnswer&&) = default;
  V2EncodedAnswer& operator=(V2EncodedAnswer&&) = default;

  const std::string& header() const { return header_; }
  const std::vector<Blob>& blobs() const { return blobs_; }
  // Whether any output travels as a blob: then the answer is
  // application/octet-stream with an Inference-Header-Content-Length of
  // header().size() (even when every blob is empty), else application/json.
  bool binary() const { return !blobs_.empty(); }
  size_t size() const;
  // The body in order: the header, then each blob.
  std::vector<BytesSpan> Parts() const;

 private:
  friend Status EncodeV2InferAnswer(const V2AnswerSpec& spec, V2EncodedAnswer* out);
  std::string header_;
  ByteBuffer owned_;
  std::vector<Blob> blobs_;
};

// kInvalidArgument when the request asked for JSON that cannot be (FP16 or
// BF16 data): the caller's choice, answered 400. kInternal for an output
// that is not a consistent tensor of a v2 datatype (the model's, answered
// 500); kResourceExhausted when memory cannot be had.
Status EncodeV2InferAnswer(const V2AnswerSpec& spec, V2EncodedAnswer* out);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_V2_SERVER_CODEC_H_
