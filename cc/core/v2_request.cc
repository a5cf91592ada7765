// SPDX-License-Identifier: Apache-2.0
// Encoding v2 inference requests: a JSON header, then the binary tensor
// extension's raw blobs (referenced, not copied, when large).
#include "cc/core/v2_codec.h"

#include <algorithm>
#include <utility>

#include "cc/core/v2_json.h"
#include "cc/core/v2_tensor_data.h"

namespace tf_graphpipe {

namespace {

// Below this a numeric tensor is copied even when referencing is allowed: an
// extra part in a scatter-gather send costs more than copying a few KiB.
constexpr size_t kMinReferencedBytes = 64 * 1024;

// The checks a decoder makes, made on what we are about to send.
Status CheckOutgoing(const TensorView& t, const std::string& what) {
  std::string problem;
  if (!V2TensorIsWritable(t, &problem)) return Status(Code::kInvalidArgument, what + ": " + problem);
  return Status::Ok();
}

// Whether JSON `data` carries this tensor exactly.
bool JsonCarries(const TensorView& t) {
  if (!HasJsonForm(t.type)) return false;
  if (t.type == DType::kString) {
    for (std::string_view s : t.strings) {
      if (!IsUtf8(s)) return false;
    }
  }
  return true;
}


}  // namespace

// ---- encoding ----

class V2MessageWriter {
 public:
  explicit V2MessageWriter(V2Message* message) : m_(message) {}

  bool Reserve(size_t owned) { return m_->owned_.Reserve(std::max<size_t>(owned, 1)); }

  void Owned(const void* bytes, size_t n) {
    if (n == 0) return;
    const size_t at = m_->owned_.size();
    m_->owned_.Append(bytes, n);  // reserved up front: never reallocates
    if (!m_->pieces_.empty() && m_->pieces_.back().external == nullptr) {
      m_->pieces_.back().size += n;
    } else {
      m_->pieces_.push_back({nullptr, at, n});
    }
    m_->size_ += n;
  }

  void External(const uint8_t* data, size_t n) {
    if (n == 0) return;
    m_->pieces_.push_back({data, 0, n});
    m_->size_ += n;
  }

  void SetJsonSize(size_t n) { m_->json_size_ = n; }

 private:
  V2Message* m_;
};

std::vector<BytesSpan> V2Message::Parts() const {
  std::vector<BytesSpan> parts;
  parts.reserve(pieces_.size());
  for (const Piece& p : pieces_) {
    parts.push_back({p.external != nullptr ? p.external : owned_.data() + p.offset, p.size});
  }
  return parts;
}

void V2Message::Flatten() {
  if (pieces_.size() <= 1 && (pieces_.empty() || pieces_.front().external == nullptr)) return;
  ByteBuffer flat;
  flat.Reserve(std::max<size_t>(size_, 1));
  for (const BytesSpan& part : Parts()) flat.Append(part.data, part.size);
  owned_ = std::move(flat);
  pieces_.assign(1, Piece{nullptr, 0, size_});
}

Status EncodeV2InferRequest(const V2InferRequestSpec& spec, TensorBytes bytes, V2Message* out) {
  if (spec.input_names.size() != spec.inputs.size()) {
    return Status(Code::kInvalidArgument,
                  "the v2 protocol needs a name for every input: got " +
                      std::to_string(spec.input_names.size()) + " names for " +
                      std::to_string(spec.inputs.size()) + " inputs");
  }
  std::vector<bool> as_blob(spec.inputs.size());
  size_t owned_blobs = 0;
  size_t estimate = 256;
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    const TensorView& t = spec.inputs[i];
    const std::string what = "input '" + std::string(spec.input_names[i]) + "'";
    if (spec.input_names[i].empty() || !IsUtf8(spec.input_names[i])) {
      return Status(Code::kInvalidArgument, "input " + std::to_string(i) +
                                                ": a v2 input name must be non-empty UTF-8");
    }
    TF_GRAPHPIPE_RETURN_IF_ERROR(CheckOutgoing(t, what));
    as_blob[i] = spec.binary || !JsonCarries(t);
    estimate += 128 + spec.input_names[i].size() + 24 * t.shape.size();
    if (as_blob[i]) {
      const bool referenced = bytes == TensorBytes::kReference && t.type != DType::kString &&
                              t.nbytes >= kMinReferencedBytes;
      if (!referenced) owned_blobs += V2BlobSize(t);
    } else if (t.type == DType::kString) {
      for (std::string_view s : t.strings) estimate += s.size() + s.size() / 8 + 4;
    } else {
      estimate += static_cast<size_t>(t.NumElements()) * 26;
    }
  }
  for (std::string_view name : spec.output_names) {
    if (name.empty() || !IsUtf8(name)) {
      return Status(Code::kInvalidArgument, "a v2 output name must be non-empty UTF-8");
    }
    estimate += 64 + name.size();
  }

  std::string header;
  header.reserve(estimate);
  header.append("{\"inputs\":[");
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    const TensorView& t = spec.inputs[i];
    if (i > 0) header.push_back(',');
    header.append("{\"name\":");
    AppendJsonString(&header, spec.input_names[i]);
    header.append(",\"shape\":");
    AppendJsonShape(&header, t.shape);
    header.append(",\"datatype\":\"");
    header.append(V2DatatypeName(t.type));
    header.push_back('"');
    if (as_blob[i]) {
      header.append(",\"parameters\":{\"binary_data_size\":");
      AppendJsonNumber(&header, V2BlobSize(t));
      header.push_back('}');
    } else {
      header.append(",\"data\":");
      AppendJsonData(&header, t);
    }
    header.push_back('}');
  }
  header.push_back(']');
  const char* binary_output = spec.binary ? "true" : "false";
  if (!spec.output_names.empty()) {
    header.append(",\"outputs\":[");
    for (size_t i = 0; i < spec.output_names.size(); ++i) {
      if (i > 0) header.push_back(',');
      header.append("{\"name\":");
      AppendJsonString(&header, spec.output_names[i]);
      header.append(",\"parameters\":{\"binary_data\":");
      header.append(binary_output);
      header.append("}}");
    }
    header.push_back(']');
    if (spec.timeout_us > 0) {
      header.append(",\"parameters\":{\"timeout\":");
      AppendJsonNumber(&header, spec.timeout_us);
      header.push_back('}');
    }
  } else {
    header.append(",\"parameters\":{\"binary_data_output\":");
    header.append(binary_output);
    if (spec.timeout_us > 0) {
      header.append(",\"timeout\":");
      AppendJsonNumber(&header, spec.timeout_us);
    }
    header.push_back('}');
  }
  header.push_back('}');

  *out = V2Message();
  V2MessageWriter w(out);
  if (!w.Reserve(header.size() + owned_blobs)) {
    return Status(Code::kResourceExhausted, "cannot allocate a v2 request of " +
                                                std::to_string(header.size() + owned_blobs) +
                                                " bytes");
  }
  w.Owned(header.data(), header.size());
  w.SetJsonSize(header.size());
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    if (!as_blob[i]) continue;
    const TensorView& t = spec.inputs[i];
    if (t.type == DType::kString) {
      for (std::string_view s : t.strings) {
        w.Owned(V2LengthPrefix(s).data(), 4);
        w.Owned(s.data(), s.size());
      }
    } else if (bytes == TensorBytes::kReference && t.nbytes >= kMinReferencedBytes) {
      w.External(t.data, t.nbytes);
    } else {
      w.Owned(t.data, t.nbytes);
    }
  }
  return Status::Ok();
}

}  // namespace tf_graphpipe
