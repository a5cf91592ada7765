// SPDX-License-Identifier: Apache-2.0
// Decoding v2 answers: inference responses (JSON and binary), model
// metadata and error bodies. Every length is checked before use.
#include "cc/core/v2_codec.h"


#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "cc/core/v2_json.h"

namespace tf_graphpipe {

namespace {

Status Malformed(const std::string& what) {
  return Status(Code::kDataLoss, "malformed v2 answer: " + what);
}

// ---- reading JSON ----

Status ParseJson(const uint8_t* data, size_t size, const char* what, Json* out) {
  std::string error;
  if (!ParseV2Json(std::string_view(reinterpret_cast<const char*>(data), size), out, &error)) {
    return Malformed(std::string(what) + " of " + std::to_string(size) + " bytes is not JSON (" + error + ")");
  }
  return Status::Ok();
}

const Json* Member(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

Status ReadShape(const Json* shape, const std::string& what, bool allow_unknown,
                 std::vector<int64_t>* out) {
  out->clear();
  if (shape == nullptr || !shape->is_array() || shape->size() > kMaxRank) {
    return Malformed(what + ": `shape` must be an array of at most 64 integers");
  }
  for (const Json& d : *shape) {
    const int64_t min = allow_unknown ? -1 : 0;
    if (d.is_number_unsigned() && d.get<uint64_t>() <= (uint64_t{1} << 62)) {
      out->push_back(static_cast<int64_t>(d.get<uint64_t>()));
    } else if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() >= min) {
      out->push_back(d.get<int64_t>());
    } else {
      return Malformed(what + ": `shape` entry " + d.dump() + " is not a valid dimension");
    }
  }
  return Status::Ok();
}

// Collects the leaves of a nested `data` array, in row-major order, up to
// `limit` of them (more is an error, reported by the caller via the count).
bool Flatten(const Json& node, size_t depth, size_t limit, std::vector<const Json*>* leaves) {
  if (!node.is_array()) {
    if (leaves->size() >= limit + 1) return true;
    leaves->push_back(&node);
    return true;
  }
  if (depth > kMaxRank) return false;
  for (const Json& item : node) {
    if (!Flatten(item, depth + 1, limit, leaves)) return false;
    if (leaves->size() > limit) return true;
  }
  return true;
}

template <typename T>
bool FillIntegers(const std::vector<const Json*>& leaves, uint8_t* out) {
  for (size_t i = 0; i < leaves.size(); ++i) {
    T value;
    if (!ReadJsonInteger(*leaves[i], &value)) return false;
    std::memcpy(out + i * sizeof(T), &value, sizeof(T));
  }
  return true;
}

template <typename T>
bool FillFloats(const std::vector<const Json*>& leaves, uint8_t* out) {
  for (size_t i = 0; i < leaves.size(); ++i) {
    double value;
    if (!ReadJsonFloat(*leaves[i], &value)) return false;
    const T narrowed = static_cast<T>(value);
    std::memcpy(out + i * sizeof(T), &narrowed, sizeof(T));
  }
  return true;
}

// Decodes JSON `data` into a new storage buffer the view points into.
Status ReadJsonData(const Json& data, int64_t n, const std::string& what, TensorView* view,
                    std::vector<ByteBuffer>* storage) {
  std::vector<const Json*> leaves;
  leaves.reserve(static_cast<size_t>(std::min<int64_t>(n, 1 << 20)));
  if (!Flatten(data, 0, static_cast<size_t>(n), &leaves)) {
    return Malformed(what + ": `data` nests deeper than 64 levels");
  }
  if (static_cast<int64_t>(leaves.size()) != n) {
    return Malformed(what + ": shape " + ShapeString(view->shape) + " needs " +
                     std::to_string(n) + " elements, `data` holds " +
                     (static_cast<int64_t>(leaves.size()) > n ? "more" : std::to_string(leaves.size())));
  }
  storage->emplace_back();
  ByteBuffer& buffer = storage->back();
  if (view->type == DType::kString) {
    size_t total = 0;
    for (const Json* leaf : leaves) {
      if (!leaf->is_string()) {
        return Malformed(what + ": BYTES element " + leaf->dump() + " is not a string");
      }
      total += leaf->get_ref<const std::string&>().size();
    }
    if (!buffer.Reserve(std::max<size_t>(total, 1))) {
      return Status(Code::kResourceExhausted, what + ": cannot allocate " + std::to_string(total) + " bytes");
    }
    view->strings.reserve(leaves.size());
    for (const Json* leaf : leaves) {
      const std::string& s = leaf->get_ref<const std::string&>();
      const size_t at = buffer.size();
      buffer.Append(s.data(), s.size());  // reserved: never moves
      view->strings.emplace_back(reinterpret_cast<const char*>(buffer.data()) + at, s.size());
    }
    return Status::Ok();
  }
  const size_t nbytes = static_cast<size_t>(n) * ElementSize(view->type);
  if (!buffer.Resize(nbytes)) {
    return Status(Code::kResourceExhausted, what + ": cannot allocate " + std::to_string(nbytes) + " bytes");
  }
  uint8_t* out = buffer.data();
  bool ok = false;
  switch (view->type) {
    case DType::kUint8: ok = FillIntegers<uint8_t>(leaves, out); break;
    case DType::kInt8: ok = FillIntegers<int8_t>(leaves, out); break;
    case DType::kUint16: ok = FillIntegers<uint16_t>(leaves, out); break;
    case DType::kInt16: ok = FillIntegers<int16_t>(leaves, out); break;
    case DType::kUint32: ok = FillIntegers<uint32_t>(leaves, out); break;
    case DType::kInt32: ok = FillIntegers<int32_t>(leaves, out); break;
    case DType::kUint64: ok = FillIntegers<uint64_t>(leaves, out); break;
    case DType::kInt64: ok = FillIntegers<int64_t>(leaves, out); break;
    case DType::kFloat32: ok = FillFloats<float>(leaves, out); break;
    case DType::kFloat64: ok = FillFloats<double>(leaves, out); break;
    case DType::kBool:
      ok = true;
      for (size_t i = 0; i < leaves.size() && ok; ++i) {
        if (leaves[i]->is_boolean()) out[i] = leaves[i]->get<bool>() ? 1 : 0;
        else ok = false;
      }
      break;
    default:
      return Malformed(what + ": " + V2DatatypeName(view->type) + " has no JSON form");
  }
  if (!ok) {
    return Malformed(what + ": `data` holds a value that is not a " +
                     V2DatatypeName(view->type));
  }
  view->data = nbytes == 0 ? nullptr : out;
  view->nbytes = nbytes;
  return Status::Ok();
}

// A binary blob -> view, in place.
Status ReadBlob(const uint8_t* blob, size_t size, int64_t n, const std::string& what,
                TensorView* view) {
  if (view->type == DType::kString) {
    // Each element takes at least its 4-byte prefix: bound n before reserving.
    if (static_cast<uint64_t>(n) > size / 4) {
      return Malformed(what + ": " + std::to_string(size) + " bytes cannot hold " +
                       std::to_string(n) + " BYTES elements");
    }
    view->strings.reserve(static_cast<size_t>(n));
    size_t at = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (size - at < 4) {
        return Malformed(what + ": BYTES element " + std::to_string(i) + " has no length prefix");
      }
      const uint32_t length = static_cast<uint32_t>(blob[at]) |
                              static_cast<uint32_t>(blob[at + 1]) << 8 |
                              static_cast<uint32_t>(blob[at + 2]) << 16 |
                              static_cast<uint32_t>(blob[at + 3]) << 24;
      at += 4;
      if (length > size - at) {
        return Malformed(what + ": BYTES element " + std::to_string(i) + " claims " +
                         std::to_string(length) + " bytes, " + std::to_string(size - at) +
                         " are left");
      }
      view->strings.emplace_back(reinterpret_cast<const char*>(blob + at), length);
      at += length;
    }
    if (at != size) {
      return Malformed(what + ": " + std::to_string(size - at) +
                       " bytes left after the last BYTES element");
    }
    return Status::Ok();
  }
  const size_t itemsize = ElementSize(view->type);
  if (static_cast<uint64_t>(n) > size / itemsize || size != static_cast<size_t>(n) * itemsize) {
    return Malformed(what + ": shape " + ShapeString(view->shape) + " of " +
                     V2DatatypeName(view->type) + " needs " +
                     (static_cast<uint64_t>(n) > (uint64_t{1} << 59) / itemsize
                          ? std::string("more than 2^62")
                          : std::to_string(n * static_cast<int64_t>(itemsize))) +
                     " bytes, binary_data_size is " + std::to_string(size));
  }
  if (view->type == DType::kBool) {
    for (size_t i = 0; i < size; ++i) {
      if (blob[i] > 1) {
        return Malformed(what + ": BOOL element " + std::to_string(i) + " is byte " +
                         std::to_string(blob[i]) + ", not 0 or 1");
      }
    }
  }
  view->data = size == 0 ? nullptr : blob;
  view->nbytes = size;
  return Status::Ok();
}

std::string StringMember(const Json& object, const char* key) {
  const Json* value = Member(object, key);
  if (value == nullptr) return "";
  return value->is_string() ? value->get<std::string>() : value->dump();
}

Status ReadTensorMetadata(const Json* list, const char* role, std::vector<IOMetadata>* out) {
  out->clear();
  if (list == nullptr) return Status::Ok();
  if (!list->is_array()) return Malformed(std::string("metadata `") + role + "s` is not an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& entry = (*list)[i];
    const std::string what = std::string("metadata ") + role + " " + std::to_string(i);
    if (!entry.is_object()) return Malformed(what + " is not an object");
    const Json* name = Member(entry, "name");
    if (name == nullptr || !name->is_string()) return Malformed(what + " has no `name`");
    IOMetadata m;
    m.name = name->get<std::string>();
    const Json* datatype = Member(entry, "datatype");
    m.type = datatype != nullptr && datatype->is_string()
                 ? DTypeOfV2Datatype(datatype->get_ref<const std::string&>())
                 : DType::kNull;
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadShape(Member(entry, "shape"), what, true, &m.shape));
    out->push_back(std::move(m));
  }
  return Status::Ok();
}

}  // namespace

// ---- decoding ----

Status DecodeV2InferResponse(const uint8_t* body, size_t size, size_t json_size,
                             V2InferResponse* out) {
  out->model_name.clear();
  out->output_names.clear();
  out->outputs.clear();
  out->storage.clear();
  if (json_size > size) {
    return Malformed("Inference-Header-Content-Length " + std::to_string(json_size) +
                     " exceeds the " + std::to_string(size) + "-byte body");
  }
  try {
    Json header;
    TF_GRAPHPIPE_RETURN_IF_ERROR(ParseJson(body, json_size, "header", &header));
    if (!header.is_object()) return Malformed("the header is not a JSON object");
    out->model_name = StringMember(header, "model_name");
    const Json* outputs = Member(header, "outputs");
    if (outputs != nullptr && !outputs->is_array()) return Malformed("`outputs` is not an array");
    size_t offset = json_size;
    const size_t count = outputs == nullptr ? 0 : outputs->size();
    out->outputs.resize(count);
    out->output_names.resize(count);
    for (size_t i = 0; i < count; ++i) {
      const Json& o = (*outputs)[i];
      std::string what = "output " + std::to_string(i);
      if (!o.is_object()) return Malformed(what + " is not an object");
      const Json* name = Member(o, "name");
      if (name == nullptr || !name->is_string()) return Malformed(what + " has no `name`");
      out->output_names[i] = name->get<std::string>();
      what = "output '" + out->output_names[i] + "'";
      TensorView& view = out->outputs[i];
      const Json* datatype = Member(o, "datatype");
      view.type = datatype != nullptr && datatype->is_string()
                      ? DTypeOfV2Datatype(datatype->get_ref<const std::string&>())
                      : DType::kNull;
      if (view.type == DType::kNull) {
        return Malformed(what + ": datatype " + (datatype ? datatype->dump() : "(missing)") +
                         " is not a v2 datatype");
      }
      TF_GRAPHPIPE_RETURN_IF_ERROR(ReadShape(Member(o, "shape"), what, false, &view.shape));
      int64_t n = 0;
      if (!CountElements(view.shape, &n)) {
        return Malformed(what + " has invalid shape " + ShapeString(view.shape));
      }
      const Json* parameters = Member(o, "parameters");
      if (parameters != nullptr && !parameters->is_object()) {
        return Malformed(what + ": `parameters` is not an object");
      }
      const Json* blob_size = parameters == nullptr ? nullptr : Member(*parameters, "binary_data_size");
      if (blob_size != nullptr) {
        if (!blob_size->is_number_integer() ||
            (!blob_size->is_number_unsigned() && blob_size->get<int64_t>() < 0)) {
          return Malformed(what + ": binary_data_size " + blob_size->dump() +
                           " is not a byte count");
        }
        const uint64_t n_bytes = blob_size->get<uint64_t>();
        if (n_bytes > size - offset) {
          return Malformed(what + ": binary_data_size " + std::to_string(n_bytes) + " but only " +
                           std::to_string(size - offset) + " bytes are left in the body");
        }
        TF_GRAPHPIPE_RETURN_IF_ERROR(
            ReadBlob(body + offset, static_cast<size_t>(n_bytes), n, what, &view));
        offset += static_cast<size_t>(n_bytes);
      } else {
        const Json* data = Member(o, "data");
        if (data == nullptr) return Malformed(what + " has neither `data` nor binary_data_size");
        TF_GRAPHPIPE_RETURN_IF_ERROR(ReadJsonData(*data, n, what, &view, &out->storage));
      }
    }
    if (offset != size) {
      return Malformed(std::to_string(size - offset) +
                       " bytes follow the last output's binary data");
    }
  } catch (const std::exception& e) {  // nlohmann type errors, bad_alloc
    return Malformed(e.what());
  }
  return Status::Ok();
}

Status DecodeV2ModelMetadata(const uint8_t* body, size_t size, ModelMetadata* out) {
  try {
    Json j;
    TF_GRAPHPIPE_RETURN_IF_ERROR(ParseJson(body, size, "model metadata", &j));
    if (!j.is_object()) return Malformed("model metadata is not a JSON object");
    *out = ModelMetadata();
    out->name = StringMember(j, "name");
    out->server = StringMember(j, "platform");
    if (const Json* versions = Member(j, "versions")) {
      if (!versions->is_array()) return Malformed("metadata `versions` is not an array");
      for (const Json& v : *versions) {
        if (!out->version.empty()) out->version += ",";
        out->version += v.is_string() ? v.get<std::string>() : v.dump();
      }
    }
    TF_GRAPHPIPE_RETURN_IF_ERROR(ReadTensorMetadata(Member(j, "inputs"), "input", &out->inputs));
    return ReadTensorMetadata(Member(j, "outputs"), "output", &out->outputs);
  } catch (const std::exception& e) {
    return Malformed(e.what());
  }
}

std::string V2ErrorText(const uint8_t* body, size_t size) {
  try {
    Json j;
    if (!ParseJson(body, size, "error", &j).ok() || !j.is_object()) return "";
    for (const char* key : {"error", "detail"}) {
      if (const Json* value = Member(j, key)) {
        return value->is_string() ? value->get<std::string>()
                                  : value->dump(-1, ' ', false, Json::error_handler_t::replace);
      }
    }
  } catch (const std::exception&) {
  }
  return "";
}

}  // namespace tf_graphpipe
