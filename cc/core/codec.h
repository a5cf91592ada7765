// SPDX-License-Identifier: Apache-2.0
// The GraphPipe codec: builds the flatbuffers a client sends and a server
// answers, and verifies + decodes what arrives from the network into views.
//
// Encoders write into a message sized up front. With TensorBytes::kCopy they
// copy tensor bytes exactly once; with kReference, tensors of 64 KiB or more
// are referenced, not copied (see EncodedMessage), and are read only when the
// message is sent. Decoders never copy tensor bytes: the views they return point into the
// buffer that was passed in, which the caller keeps alive. Every decoder
// verifies the whole buffer first (bounds of every table, vector and string,
// and len(data) == prod(shape) * itemsize) and returns kDataLoss for anything
// malformed; strings are bounded by their length prefix only, because the Go
// reference servers write them without a NUL terminator.
//
// All functions are thread-safe (no shared state).
#ifndef TF_GRAPHPIPE_CC_CORE_CODEC_H_
#define TF_GRAPHPIPE_CC_CORE_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cc/core/encoded_message.h"
#include "cc/core/status.h"
#include "cc/core/tensor_view.h"

namespace tf_graphpipe {

// How an encoder treats large tensor payloads.
enum class TensorBytes {
  kCopy,       // the message owns every byte
  kReference,  // the caller keeps the tensors alive while the message is used
};

// ---- what a client sends ----

struct InferRequestSpec {
  std::string_view config;
  std::vector<std::string_view> input_names;  // empty: the server's defaults
  std::vector<TensorView> inputs;
  std::vector<std::string_view> output_names;  // empty: the server's defaults
};

// kInvalidArgument when a view is inconsistent (bytes vs shape, Null type).
// The request always writes every vector, as the reference client does.
Status EncodeInferRequest(const InferRequestSpec& spec, TensorBytes bytes,
                          EncodedMessage* out);
EncodedMessage EncodeMetadataRequest();

// ---- what a server answers ----

struct RemoteErrorEntry {
  int64_t code = 0;
  std::string message;
};

struct InferResponseView {
  std::vector<TensorView> outputs;
  std::vector<RemoteErrorEntry> errors;  // non-empty: the server refused
};

struct IOMetadata {
  std::string name;
  std::string description;
  std::vector<int64_t> shape;  // -1: any size
  DType type = DType::kNull;   // kNull: not declared by the server
};

struct ModelMetadata {
  std::string name;
  std::string version;
  std::string server;
  std::string description;
  std::vector<IOMetadata> inputs;
  std::vector<IOMetadata> outputs;
};

// Views in `out` point into `buffer`.
Status DecodeInferResponse(const uint8_t* buffer, size_t size,
                           InferResponseView* out);
Status DecodeMetadataResponse(const uint8_t* buffer, size_t size,
                              ModelMetadata* out);

// ---- the server's side ----

struct RequestView {
  enum class Kind { kInfer, kMetadata };
  Kind kind = Kind::kMetadata;
  std::string_view config;
  std::vector<std::string_view> input_names;
  std::vector<TensorView> inputs;
  std::vector<std::string_view> output_names;
};

// Views in `out` point into `buffer`.
Status DecodeRequest(const uint8_t* buffer, size_t size, RequestView* out);
Status EncodeInferResponse(const std::vector<TensorView>& outputs,
                           EncodedMessage* out);
EncodedMessage EncodeErrorResponse(const std::vector<RemoteErrorEntry>& errors);
EncodedMessage EncodeMetadataResponse(const ModelMetadata& metadata);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_CODEC_H_
