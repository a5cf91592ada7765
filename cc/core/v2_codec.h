// SPDX-License-Identifier: Apache-2.0
// The Open Inference Protocol ("KServe v2", REST) codec, with Triton's binary
// tensor extension: builds the infer requests a client sends, and verifies +
// decodes infer answers and model metadata (docs/protocol/SPEC_V2.md).
//
// A request is a JSON header followed by one blob per binary tensor, in
// input order. With binary = true (the default) every input travels as a
// blob; with binary = false inputs travel as JSON `data`, except those JSON
// cannot carry exactly (FP16 and BF16, which have no JSON form, and BYTES
// elements that are not UTF-8), which still travel as blobs. Every requested
// output asks for `binary_data` explicitly, because a listed output ignores
// the request-wide `binary_data_output` on both Triton and kserve.
//
// Encoders copy small tensors once; with TensorBytes::kReference, numeric
// tensors of 64 KiB or more are referenced, not copied (the caller keeps them
// alive and unchanged while the message is used). Decoders verify everything
// before reading: the JSON header length, every shape, every
// `binary_data_size` against shape x element size and against the body, each
// BYTES element's 4-byte length prefix, and that the blobs fill the body
// exactly. Anything malformed is kDataLoss. Decoded binary tensors are views
// into the body; JSON `data` is decoded into storage the answer owns.
//
// The v2 datatypes map onto DType, BOOL and BF16 included (dtype.h); those two
// have no GraphPipe wire type and the GraphPipe codec refuses them.
//
// All functions are thread-safe (no shared state).
#ifndef TF_GRAPHPIPE_CC_CORE_V2_CODEC_H_
#define TF_GRAPHPIPE_CC_CORE_V2_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cc/core/byte_buffer.h"
#include "cc/core/bytes_span.h"
#include "cc/core/codec.h"
#include "cc/core/status.h"
#include "cc/core/tensor_view.h"

namespace tf_graphpipe {

// "FP32", "BYTES", ...; nullptr for a type with no v2 datatype (kNull).
const char* V2DatatypeName(DType type);
// kNull for a name that is not a v2 datatype.
DType DTypeOfV2Datatype(std::string_view name);

// The endpoints of a model named by a URL whose path is
// /v2/models/<name>[/versions/<version>] (a trailing slash and a query string
// are allowed). False for any other URL.
struct V2ModelUrl {
  std::string model;
  std::string metadata_url;  // GET: model metadata
  std::string infer_url;     // POST: .../infer
};
bool ParseV2ModelUrl(std::string_view url, V2ModelUrl* out);

// ---- what a client sends ----

struct V2InferRequestSpec {
  std::vector<std::string_view> input_names;  // required: one per input
  std::vector<TensorView> inputs;
  std::vector<std::string_view> output_names;  // empty: every output
  bool binary = true;
  // > 0: the request's "timeout" parameter, the microseconds the caller will
  // still wait (as tritonclient sends it); 0: none sent.
  uint64_t timeout_us = 0;
};

// An encoded request body: the JSON header, then the blobs. Move-only; the
// owned bytes stay put for its lifetime. Not thread-safe.
class V2Message {
 public:
  V2Message() = default;
  V2Message(V2Message&&) = default;
  V2Message& operator=(V2Message&&) = default;

  size_t size() const { return size_; }
  // Bytes of the JSON header: the Inference-Header-Content-Length.
  size_t json_size() const { return json_size_; }
  bool has_blobs() const { return size_ > json_size_; }
  // "application/octet-stream" with blobs, "application/json" without
  // (kserve parses a body as JSON only when it is labelled so).
  const char* content_type() const {
    return has_blobs() ? "application/octet-stream" : "application/json";
  }

  // The body in order, referenced tensors included.
  std::vector<BytesSpan> Parts() const;
  // Copies referenced bytes in; afterwards Parts() has one part.
  void Flatten();

 private:
  friend class V2MessageWriter;
  struct Piece {
    const uint8_t* external;  // nullptr: `owned_` from `offset`
    size_t offset;
    size_t size;
  };
  ByteBuffer owned_;
  std::vector<Piece> pieces_;
  size_t size_ = 0;
  size_t json_size_ = 0;
};

// kInvalidArgument for an inconsistent view, a missing or non-UTF-8 name,
// or a type with no v2 datatype.
Status EncodeV2InferRequest(const V2InferRequestSpec& spec, TensorBytes bytes,
                            V2Message* out);

// ---- what a server answers ----

struct V2InferResponse {
  std::string model_name;
  std::vector<std::string> output_names;
  std::vector<TensorView> outputs;  // in the answer's order
  // Tensors that arrived as JSON `data`, decoded; outputs view into them.
  // (A ByteBuffer keeps its address when the vector moves it.)
  std::vector<ByteBuffer> storage;
};

// `json_size`: the Inference-Header-Content-Length, or `size` when the
// answer had none (then the whole body is JSON and carries no blobs).
// Views in `out` point into `body` and into out->storage.
Status DecodeV2InferResponse(const uint8_t* body, size_t size, size_t json_size,
                             V2InferResponse* out);

// GET /v2/models/<name> -> ModelMetadata. `version` is the versions joined
// with ",", `server` the platform; datatypes the JSON does not name as a v2
// datatype become kNull (undeclared).
Status DecodeV2ModelMetadata(const uint8_t* body, size_t size, ModelMetadata* out);

// The text of a v2 error body: `error` of a JSON object, else kserve's
// FastAPI `detail` (as JSON text unless it is a string), else empty.
std::string V2ErrorText(const uint8_t* body, size_t size);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_V2_CODEC_H_
