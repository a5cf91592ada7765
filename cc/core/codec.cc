// SPDX-License-Identifier: Apache-2.0
#include "cc/core/codec.h"

#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "cc/core/byte_buffer.h"
#include "cc/core/wire_verifier.h"
#include "flatbuffers/flatbuffers.h"
#include "graphpipe_generated.h"

namespace tf_graphpipe {
namespace {

namespace fb = flatbuffers;

static_assert(static_cast<int>(DType::kString) == graphpipe::Type_String &&
                  static_cast<int>(DType::kFloat16) == graphpipe::Type_Float16 &&
                  static_cast<int>(DType::kUint8) == graphpipe::Type_Uint8,
              "DType must mirror the schema's Type enum");

// Tensor data is aligned so that a receiver with an aligned buffer (ours is
// 64-byte aligned) can view it in place; 64 matches TensorFlow's
// EIGEN_MAX_ALIGN_BYTES, which lets TF adopt NumPy memory without a copy.
// The build defines FLATBUFFERS_MAX_ALIGNMENT=64 to allow it.
constexpr size_t kDataAlignment = 64;

// Smaller payloads are copied even when referencing is allowed: an extra part
// in a scatter-gather send costs more than copying a few kilobytes.
constexpr size_t kMinReferencedBytes = 64 * 1024;

// References recorded while building, as distances from the end of the
// buffer (the builder writes back to front; the final size is not known yet).
struct PendingReference {
  size_t from_end;
  const uint8_t* data;
  size_t size;
};
static_assert(FLATBUFFERS_MAX_ALIGNMENT >= kDataAlignment,
              "build with -DFLATBUFFERS_MAX_ALIGNMENT=64");

// Message buffers come from here. Large ones are aligned to and backed by
// huge pages: a fresh 77 MB buffer of 4 KiB pages faulted in slower than the
// copy into it took. Stateless, so one instance serves every builder.
class MessageAllocator : public fb::Allocator {
 public:
  uint8_t* allocate(size_t size) override {
    const bool huge = size >= ByteBuffer::kHugeThreshold;
    const size_t alignment = huge ? ByteBuffer::kHugePage : ByteBuffer::kAlignment;
    const size_t rounded = (size + alignment - 1) / alignment * alignment;
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(alignment, rounded));
    if (p == nullptr) throw std::bad_alloc();
    if (huge) madvise(p, rounded, MADV_HUGEPAGE);  // advisory
    return p;
  }
  void deallocate(uint8_t* p, size_t) override { std::free(p); }
};

MessageAllocator message_allocator;

// Checks a view an encoder is about to write; the same rules a decoder
// enforces, so we never send what we would refuse to read.
Status CheckOutgoingView(const TensorView& t, const std::string& what) {
  if (!IsTensorType(static_cast<uint8_t>(t.type))) {
    return Status(Code::kInvalidArgument,
                  what + ": type " + DTypeName(t.type) +
                      " has no GraphPipe wire type");
  }
  int64_t n = 0;
  if (!CountElements(t.shape, &n)) {
    return Status(Code::kInvalidArgument,
                  what + ": invalid shape " + ShapeString(t.shape));
  }
  if (t.type == DType::kString) {
    if (static_cast<int64_t>(t.strings.size()) != n) {
      return Status(Code::kInvalidArgument,
                    what + ": shape " + ShapeString(t.shape) + " needs " +
                        std::to_string(n) + " strings, got " +
                        std::to_string(t.strings.size()));
    }
  } else if (t.nbytes != static_cast<size_t>(n) * ElementSize(t.type)) {
    return Status(Code::kInvalidArgument,
                  what + ": shape " + ShapeString(t.shape) + " of " +
                      DTypeName(t.type) + " needs " +
                      std::to_string(n * ElementSize(t.type)) +
                      " bytes, got " + std::to_string(t.nbytes));
  }
  return Status::Ok();
}

// An upper bound of the bytes a tensor adds to a message, so the builder is
// sized once and never reallocates (which would copy every byte again).
size_t TensorFootprint(const TensorView& t) {
  size_t size = 64 + kDataAlignment + 8 * (t.shape.size() + 1) + t.nbytes;
  for (std::string_view s : t.strings) size += s.size() + 12;
  return size;
}

size_t NamesFootprint(const std::vector<std::string_view>& names) {
  size_t size = 8;
  for (std::string_view s : names) size += s.size() + 12;
  return size;
}

Status CheckMessageSize(size_t estimate) {
  if (estimate >= static_cast<size_t>(FLATBUFFERS_MAX_BUFFER_SIZE)) {
    return Status(Code::kInvalidArgument,
                  "message of about " + std::to_string(estimate) +
                      " bytes exceeds the 2 GiB limit of a flatbuffer");
  }
  return Status::Ok();
}

fb::Offset<fb::Vector<fb::Offset<fb::String>>> WriteStrings(
    fb::FlatBufferBuilder& b, const std::vector<std::string_view>& strings) {
  std::vector<fb::Offset<fb::String>> offsets;
  offsets.reserve(strings.size());
  for (std::string_view s : strings) {
    offsets.push_back(b.CreateString(s.data(), s.size()));
  }
  return b.CreateVector(offsets);
}

// Always writes `shape` and `data`, and `string_val` for strings: the
// reference Python decoder crashes when they are absent.
// With `references` set, large payloads leave a hole in the buffer and are
// recorded there instead of copied.
fb::Offset<graphpipe::Tensor> WriteTensor(fb::FlatBufferBuilder& b, const TensorView& t,
                                          std::vector<PendingReference>* references) {
  fb::Offset<fb::Vector<fb::Offset<fb::String>>> strings;
  fb::Offset<fb::Vector<uint8_t>> data;
  if (t.type == DType::kString) {
    strings = WriteStrings(b, t.strings);
    data = b.CreateVector(static_cast<const uint8_t*>(nullptr), size_t{0});
  } else {
    uint8_t* destination = nullptr;
    data = fb::Offset<fb::Vector<uint8_t>>(b.CreateUninitializedVector(
        t.nbytes, 1, kDataAlignment, &destination));
    if (references != nullptr && t.nbytes >= kMinReferencedBytes) {
      // The payload starts right after the vector's 4-byte length prefix.
      references->push_back({b.GetSize() - sizeof(fb::uoffset_t), t.data, t.nbytes});
    } else if (t.nbytes > 0) {
      std::memcpy(destination, t.data, t.nbytes);
    }
  }
  auto shape = b.CreateVector(t.shape);
  graphpipe::TensorBuilder tensor(b);
  tensor.add_type(static_cast<graphpipe::Type>(t.type));
  tensor.add_shape(shape);
  tensor.add_data(data);
  if (t.type == DType::kString) tensor.add_string_val(strings);
  return tensor.Finish();
}

std::vector<int64_t> ReadShape(const fb::Vector<int64_t>* shape) {
  std::vector<int64_t> out;
  if (shape == nullptr) return out;
  out.resize(shape->size());
  // Peers may place the vector at any 4-byte boundary: copy, don't cast.
  if (!out.empty()) {
    std::memcpy(out.data(), shape->Data(), out.size() * sizeof(int64_t));
  }
  return out;
}

std::string_view ReadBytes(const fb::String* s) {
  return s == nullptr ? std::string_view() : std::string_view(s->data(), s->size());
}

std::vector<std::string_view> ReadStrings(
    const fb::Vector<fb::Offset<fb::String>>* strings) {
  std::vector<std::string_view> out;
  if (strings == nullptr) return out;
  out.reserve(strings->size());
  for (fb::uoffset_t i = 0; i < strings->size(); ++i) {
    out.push_back(ReadBytes(strings->Get(i)));
  }
  return out;
}

Status Malformed(const std::string& what) {
  return Status(Code::kDataLoss, "malformed GraphPipe message: " + what);
}

// What a decoded message may claim: at most the bytes it holds. Flatbuffers
// let many offsets share one string or table; no honest writer does that,
// and decoding each share separately would turn a small buffer into an
// arbitrarily large allocation (a 42 KB request into 40 MB of names). Every
// decoded entry is charged at least what it occupies on the wire.
class DecodeBudget {
 public:
  explicit DecodeBudget(size_t message_size) : size_(message_size), left_(message_size) {}

  Status Charge(size_t bytes, const std::string& what) {
    if (bytes > left_) {
      return Malformed(what + " claims more bytes than the " + std::to_string(size_) +
                       "-byte message holds (shared offsets)");
    }
    left_ -= bytes;
    return Status::Ok();
  }

  Status ChargeStrings(const std::vector<std::string_view>& strings, const std::string& what) {
    size_t bytes = 0;
    for (std::string_view s : strings) bytes += s.size() + sizeof(fb::uoffset_t);
    return Charge(bytes, what);
  }

 private:
  size_t size_;
  size_t left_;
};

// Turns a verified Tensor table into a view, checking the data size against
// the shape before anyone allocates for it.
Status ReadTensor(const graphpipe::Tensor* t, const std::string& what,
                  TensorView* out) {
  if (t == nullptr) return Malformed(what + " is missing");
  const uint8_t raw_type = static_cast<uint8_t>(t->type());
  if (!IsTensorType(raw_type)) {
    return Malformed(what + " has type value " + std::to_string(raw_type) +
                     ", not a GraphPipe tensor type (1..12)");
  }
  out->type = static_cast<DType>(raw_type);
  if (t->shape() != nullptr && t->shape()->size() > kMaxRank) {
    return Malformed(what + " has rank " + std::to_string(t->shape()->size()) +
                     ", over the limit of " + std::to_string(kMaxRank));
  }
  out->shape = ReadShape(t->shape());
  int64_t n = 0;
  if (!CountElements(out->shape, &n)) {
    return Malformed(what + " has invalid shape " + ShapeString(out->shape) +
                     " (negative, rank over 64, or too many elements)");
  }
  const size_t data_size = t->data() == nullptr ? 0 : t->data()->size();
  if (out->type == DType::kString) {
    const size_t count = t->string_val() == nullptr ? 0 : t->string_val()->size();
    if (static_cast<int64_t>(count) != n || data_size != 0) {
      return Malformed(what + ": shape " + ShapeString(out->shape) +
                       " needs " + std::to_string(n) + " strings, got " +
                       std::to_string(count));
    }
    out->strings = ReadStrings(t->string_val());
    return Status::Ok();
  }
  const size_t itemsize = ElementSize(out->type);
  if (static_cast<uint64_t>(n) > data_size / itemsize ||
      data_size != static_cast<size_t>(n) * itemsize) {
    return Malformed(what + ": shape " + ShapeString(out->shape) + " of " +
                     DTypeName(out->type) + " needs " +
                     (static_cast<uint64_t>(n) > (uint64_t{1} << 59) / itemsize
                          ? std::string("more than 2^62")
                          : std::to_string(n * static_cast<int64_t>(itemsize))) +
                     " bytes, data holds " + std::to_string(data_size));
  }
  out->data = data_size == 0 ? nullptr : t->data()->Data();
  out->nbytes = data_size;
  return Status::Ok();
}

Status ReadTensors(const fb::Vector<fb::Offset<graphpipe::Tensor>>* tensors,
                   const char* role, DecodeBudget* budget, std::vector<TensorView>* out) {
  out->clear();
  if (tensors == nullptr) return Status::Ok();
  out->resize(tensors->size());
  for (fb::uoffset_t i = 0; i < tensors->size(); ++i) {
    TensorView& view = (*out)[i];
    const std::string what = std::string(role) + " " + std::to_string(i);
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadTensor(tensors->Get(i), what, &view));
    // A table, its shape and its data (or strings), each at least once.
    TF_GRAPHPIPE_RETURN_IF_ERROR(
        budget->Charge(16 + 8 * view.shape.size() + view.nbytes, what));
    TF_GRAPHPIPE_RETURN_IF_ERROR(budget->ChargeStrings(view.strings, what));
  }
  return Status::Ok();
}

Status ReadIOMetadata(const fb::Vector<fb::Offset<graphpipe::IOMetadata>>* list,
                      const char* role, DecodeBudget* budget, std::vector<IOMetadata>* out) {
  out->clear();
  if (list == nullptr) return Status::Ok();
  for (fb::uoffset_t i = 0; i < list->size(); ++i) {
    const graphpipe::IOMetadata* m = list->Get(i);
    const std::string what = std::string(role) + " " + std::to_string(i);
    const uint8_t raw_type = static_cast<uint8_t>(m->type());
    if (raw_type > kMaxWireType) {
      return Malformed(what + " has type value " + std::to_string(raw_type));
    }
    const size_t rank = m->shape() == nullptr ? 0 : m->shape()->size();
    if (rank > kMaxRank) {
      return Malformed(what + " has rank " + std::to_string(rank) + ", over the limit of " +
                       std::to_string(kMaxRank));
    }
    TF_GRAPHPIPE_RETURN_IF_ERROR(budget->Charge(
        16 + 8 * rank + ReadBytes(m->name()).size() + ReadBytes(m->description()).size(), what));
    IOMetadata entry;
    entry.name = std::string(ReadBytes(m->name()));
    entry.description = std::string(ReadBytes(m->description()));
    entry.shape = ReadShape(m->shape());
    entry.type = static_cast<DType>(raw_type);
    out->push_back(std::move(entry));
  }
  return Status::Ok();
}

fb::Offset<fb::Vector<fb::Offset<graphpipe::IOMetadata>>> WriteIOMetadata(
    fb::FlatBufferBuilder& b, const std::vector<IOMetadata>& list) {
  std::vector<fb::Offset<graphpipe::IOMetadata>> offsets;
  for (const IOMetadata& m : list) {
    auto name = b.CreateString(m.name);
    auto description = b.CreateString(m.description);
    auto shape = b.CreateVector(m.shape);
    offsets.push_back(graphpipe::CreateIOMetadata(
        b, name, description, shape, static_cast<graphpipe::Type>(m.type)));
  }
  return b.CreateVector(offsets);
}

EncodedMessage Finish(fb::FlatBufferBuilder& b,
                      const std::vector<PendingReference>& pending = {}) {
  const size_t size = b.GetSize();
  std::vector<EncodedMessage::Reference> references;
  references.reserve(pending.size());
  // Recorded back to front: the last one recorded sits first in the buffer.
  for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
    references.push_back({size - it->from_end, it->data, it->size});
  }
  return EncodedMessage(b.Release(), std::move(references));
}

}  // namespace

Status EncodeInferRequest(const InferRequestSpec& spec, TensorBytes bytes,
                          EncodedMessage* out) {
  size_t estimate = 256 + spec.config.size() + NamesFootprint(spec.input_names) +
                    NamesFootprint(spec.output_names);
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    TF_GRAPHPIPE_RETURN_IF_ERROR(
        CheckOutgoingView(spec.inputs[i], "input " + std::to_string(i)));
    estimate += TensorFootprint(spec.inputs[i]);
  }
  TF_GRAPHPIPE_RETURN_IF_ERROR(CheckMessageSize(estimate));
  fb::FlatBufferBuilder b(estimate, &message_allocator);
  std::vector<PendingReference> references;
  std::vector<PendingReference>* referencing =
      bytes == TensorBytes::kReference ? &references : nullptr;
  std::vector<fb::Offset<graphpipe::Tensor>> tensors;
  tensors.reserve(spec.inputs.size());
  for (const TensorView& t : spec.inputs) tensors.push_back(WriteTensor(b, t, referencing));
  auto tensors_vector = b.CreateVector(tensors);
  auto config = b.CreateString(spec.config.data(), spec.config.size());
  auto input_names = WriteStrings(b, spec.input_names);
  auto output_names = WriteStrings(b, spec.output_names);
  auto infer = graphpipe::CreateInferRequest(b, config, input_names,
                                             tensors_vector, output_names);
  b.Finish(graphpipe::CreateRequest(b, graphpipe::Req_InferRequest,
                                    infer.Union()));
  *out = Finish(b, references);
  return Status::Ok();
}

EncodedMessage EncodeMetadataRequest() {
  fb::FlatBufferBuilder b(64);
  auto metadata = graphpipe::CreateMetadataRequest(b);
  b.Finish(graphpipe::CreateRequest(b, graphpipe::Req_MetadataRequest,
                                    metadata.Union()));
  return Finish(b);
}

Status DecodeInferResponse(const uint8_t* buffer, size_t size,
                           InferResponseView* out) {
  if (!VerifyInferResponseBuffer(buffer, size)) {
    return Malformed("InferResponse of " + std::to_string(size) +
                     " bytes fails verification (truncated or corrupt)");
  }
  const auto* response = fb::GetRoot<graphpipe::InferResponse>(buffer);
  DecodeBudget budget(size);
  out->errors.clear();
  if (response->errors() != nullptr) {
    for (const graphpipe::Error* e : *response->errors()) {
      const std::string_view message = ReadBytes(e->message());
      TF_GRAPHPIPE_RETURN_IF_ERROR(budget.Charge(16 + message.size(), "error"));
      out->errors.push_back({e->code(), std::string(message)});
    }
  }
  return ReadTensors(response->output_tensors(), "output", &budget, &out->outputs);
}

Status DecodeMetadataResponse(const uint8_t* buffer, size_t size,
                              ModelMetadata* out) {
  if (!VerifyMetadataResponseBuffer(buffer, size)) {
    return Malformed("MetadataResponse of " + std::to_string(size) +
                     " bytes fails verification (truncated or corrupt)");
  }
  const auto* m = fb::GetRoot<graphpipe::MetadataResponse>(buffer);
  out->name = std::string(ReadBytes(m->name()));
  out->version = std::string(ReadBytes(m->version()));
  out->server = std::string(ReadBytes(m->server()));
  out->description = std::string(ReadBytes(m->description()));
  DecodeBudget budget(size);
  TF_GRAPHPIPE_RETURN_IF_ERROR(ReadIOMetadata(m->inputs(), "input", &budget, &out->inputs));
  return ReadIOMetadata(m->outputs(), "output", &budget, &out->outputs);
}

Status DecodeRequest(const uint8_t* buffer, size_t size, RequestView* out) {
  if (!VerifyRequestBuffer(buffer, size)) {
    return Malformed("Request of " + std::to_string(size) +
                     " bytes fails verification (truncated or corrupt)");
  }
  const auto* request = fb::GetRoot<graphpipe::Request>(buffer);
  switch (request->req_type()) {
    case graphpipe::Req_MetadataRequest:
      out->kind = RequestView::Kind::kMetadata;
      return Status::Ok();
    case graphpipe::Req_InferRequest: {
      const auto* infer = request->req_as_InferRequest();
      out->kind = RequestView::Kind::kInfer;
      out->config = ReadBytes(infer->config());
      out->input_names = ReadStrings(infer->input_names());
      out->output_names = ReadStrings(infer->output_names());
      DecodeBudget budget(size);
      TF_GRAPHPIPE_RETURN_IF_ERROR(budget.ChargeStrings(out->input_names, "input_names"));
      TF_GRAPHPIPE_RETURN_IF_ERROR(budget.ChargeStrings(out->output_names, "output_names"));
      return ReadTensors(infer->input_tensors(), "input", &budget, &out->inputs);
    }
    default:
      return Malformed("request type " +
                       std::to_string(static_cast<int>(request->req_type())) +
                       " is neither InferRequest (1) nor MetadataRequest (2)");
  }
}

Status EncodeInferResponse(const std::vector<TensorView>& outputs,
                           EncodedMessage* out) {
  size_t estimate = 256;
  for (size_t i = 0; i < outputs.size(); ++i) {
    TF_GRAPHPIPE_RETURN_IF_ERROR(
        CheckOutgoingView(outputs[i], "output " + std::to_string(i)));
    estimate += TensorFootprint(outputs[i]);
  }
  TF_GRAPHPIPE_RETURN_IF_ERROR(CheckMessageSize(estimate));
  fb::FlatBufferBuilder b(estimate, &message_allocator);
  std::vector<fb::Offset<graphpipe::Tensor>> tensors;
  tensors.reserve(outputs.size());
  for (const TensorView& t : outputs) tensors.push_back(WriteTensor(b, t, nullptr));
  auto tensors_vector = b.CreateVector(tensors);
  // An empty `errors` vector, as the reference Python server writes.
  auto errors = b.CreateVector(std::vector<fb::Offset<graphpipe::Error>>());
  b.Finish(graphpipe::CreateInferResponse(b, tensors_vector, errors));
  *out = Finish(b);
  return Status::Ok();
}

EncodedMessage EncodeErrorResponse(const std::vector<RemoteErrorEntry>& errors) {
  fb::FlatBufferBuilder b(256);
  std::vector<fb::Offset<graphpipe::Error>> offsets;
  for (const RemoteErrorEntry& e : errors) {
    offsets.push_back(graphpipe::CreateError(b, e.code, b.CreateString(e.message)));
  }
  auto errors_vector = b.CreateVector(offsets);
  b.Finish(graphpipe::CreateInferResponse(b, 0, errors_vector));
  return Finish(b);
}

EncodedMessage EncodeMetadataResponse(const ModelMetadata& metadata) {
  fb::FlatBufferBuilder b(1024);
  auto name = b.CreateString(metadata.name);
  auto version = b.CreateString(metadata.version);
  auto server = b.CreateString(metadata.server);
  auto description = b.CreateString(metadata.description);
  auto inputs = WriteIOMetadata(b, metadata.inputs);
  auto outputs = WriteIOMetadata(b, metadata.outputs);
  b.Finish(graphpipe::CreateMetadataResponse(b, name, version, server,
                                             description, inputs, outputs));
  return Finish(b);
}

}  // namespace tf_graphpipe
