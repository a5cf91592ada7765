// SPDX-License-Identifier: Apache-2.0
// Encoding v2 infer answers on the server: the JSON header, then the blobs
// of binary outputs (numeric ones referenced, BYTES ones built once).
#include <algorithm>
#include <new>
#include <utility>

#include "cc/core/v2_codec.h"
#include "cc/core/v2_json.h"
#include "cc/core/v2_server_codec.h"
#include "cc/core/v2_tensor_data.h"

namespace tf_graphpipe {

namespace {

Status Inconsistent(const std::string& what, const std::string& problem) {
  return Status(Code::kInternal, what + ": " + problem);
}

// The checks a client's decoder makes, made on what we are about to send:
// a failure is the model's (or the server's), never the caller's.
Status CheckOutput(std::string_view name, const TensorView& t, const std::string& what) {
  if (name.empty() || !IsUtf8(name)) return Inconsistent(what, "a v2 output name must be non-empty UTF-8");
  std::string problem;
  if (!V2TensorIsWritable(t, &problem)) return Inconsistent(what, problem);
  return Status::Ok();
}

bool AllUtf8(const std::vector<std::string_view>& strings) {
  return std::all_of(strings.begin(), strings.end(), [](std::string_view s) { return IsUtf8(s); });
}

// A JSON size estimate, so the header is written without regrowing.
size_t JsonDataEstimate(const TensorView& t) {
  if (t.type != DType::kString) return static_cast<size_t>(t.NumElements()) * 26;  // "-1.2345678901234567e-308,"
  size_t size = 0;
  for (std::string_view s : t.strings) size += s.size() + s.size() / 8 + 4;
  return size;
}

// The header (and BYTES blobs into `owned`, reserved to fit them all).
void WriteHeader(const V2AnswerSpec& spec, const std::vector<bool>& as_blob, size_t estimate,
                 std::string* header_out, ByteBuffer* owned, std::vector<V2EncodedAnswer::Blob>* blobs) {
  std::string& header = *header_out;
  const size_t count = spec.outputs.size();
  header.reserve(estimate);
  header.append("{\"model_name\":");
  AppendJsonString(&header, spec.model_name);
  header.append(",\"model_version\":");
  AppendJsonString(&header, spec.model_version);
  if (spec.id) {
    header.append(",\"id\":");
    AppendJsonString(&header, *spec.id);
  }
  header.append(",\"outputs\":[");
  for (size_t i = 0; i < count; ++i) {
    const TensorView& t = spec.outputs[i];
    if (i > 0) header.push_back(',');
    header.append("{\"name\":");
    AppendJsonString(&header, spec.output_names[i]);
    header.append(",\"datatype\":\"");
    header.append(V2DatatypeName(t.type));
    header.append("\",\"shape\":");
    AppendJsonShape(&header, t.shape);
    if (!as_blob[i]) {
      header.append(",\"data\":");
      AppendJsonData(&header, t);
      header.push_back('}');
      continue;
    }
    V2EncodedAnswer::Blob blob{{t.data, t.nbytes}, i};
    if (t.type == DType::kString) {
      ByteBuffer& buffer = *owned;
      const size_t at = buffer.size();
      for (std::string_view s : t.strings) {  // reserved above: never moves
        buffer.Append(V2LengthPrefix(s).data(), 4);
        buffer.Append(s.data(), s.size());
      }
      const size_t size = buffer.size() - at;
      blob = {{size == 0 ? nullptr : buffer.data() + at, size}, V2EncodedAnswer::kOwned};
    }
    header.append(",\"parameters\":{\"binary_data_size\":");
    AppendJsonNumber(&header, blob.bytes.size);
    header.append("}}");
    blobs->push_back(blob);
  }
  header.append("]}");
}

}  // namespace

size_t V2EncodedAnswer::size() const {
  size_t size = header_.size();
  for (const Blob& blob : blobs_) size += blob.bytes.size;
  return size;
}

std::vector<BytesSpan> V2EncodedAnswer::Parts() const {
  std::vector<BytesSpan> parts;
  parts.reserve(1 + blobs_.size());
  parts.push_back({reinterpret_cast<const uint8_t*>(header_.data()), header_.size()});
  for (const Blob& blob : blobs_) parts.push_back(blob.bytes);
  return parts;
}

Status EncodeV2InferAnswer(const V2AnswerSpec& spec, V2EncodedAnswer* out) {
  *out = V2EncodedAnswer();
  if (spec.output_names.size() != spec.outputs.size()) {
    return Status(Code::kInternal, "a v2 answer needs a name for every output: got " +
                                       std::to_string(spec.output_names.size()) + " names for " +
                                       std::to_string(spec.outputs.size()) + " outputs");
  }
  if (!IsUtf8(spec.model_name) || !IsUtf8(spec.model_version) || (spec.id && !IsUtf8(*spec.id))) {
    return Status(Code::kInternal, "a v2 answer's model name, version and id must be UTF-8");
  }
  const size_t count = spec.outputs.size();
  std::vector<bool> as_blob(count);
  size_t owned = 0;
  size_t estimate = 64 + spec.model_name.size() + spec.model_version.size() + (spec.id ? spec.id->size() : 0);
  for (size_t i = 0; i < count; ++i) {
    const TensorView& t = spec.outputs[i];
    const std::string what = "output '" + std::string(spec.output_names[i]) + "'";
    TF_GRAPHPIPE_RETURN_IF_ERROR(CheckOutput(spec.output_names[i], t, what));
    as_blob[i] = i < spec.binary.size() ? spec.binary[i] : spec.binary_default;
    if (!as_blob[i] && !HasJsonForm(t.type)) {
      return Status(Code::kInvalidArgument,
                    what + ": " + V2DatatypeName(t.type) +
                        " data has no JSON form; ask for it as binary (\"binary_data\": true in the "
                        "output's parameters, or \"binary_data_output\": true for unlisted outputs)");
    }
    // JSON strings carry only UTF-8; such BYTES go as a blob, which every
    // client frames by binary_data_size (Triton would write invalid JSON).
    if (!as_blob[i] && t.type == DType::kString && !AllUtf8(t.strings)) as_blob[i] = true;
    estimate += 96 + spec.output_names[i].size() + 21 * t.shape.size();
    if (as_blob[i]) {
      if (t.type == DType::kString) owned += V2BlobSize(t);
    } else {
      estimate += JsonDataEstimate(t);
    }
  }
  if (owned > 0 && !out->owned_.Reserve(owned)) {
    return Status(Code::kResourceExhausted, "cannot allocate " + std::to_string(owned) +
                                                " bytes for a v2 answer's BYTES outputs");
  }

  try {
    WriteHeader(spec, as_blob, estimate, &out->header_, &out->owned_, &out->blobs_);
  } catch (const std::bad_alloc&) {
    *out = V2EncodedAnswer();
    return Status(Code::kResourceExhausted, "cannot allocate a v2 answer's JSON header");
  }
  return Status::Ok();
}

}  // namespace tf_graphpipe
