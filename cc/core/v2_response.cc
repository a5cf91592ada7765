// SPDX-License-Identifier: Apache-2.0
// Decoding v2 answers: inference responses (JSON and binary), model
// metadata and error bodies. Every length is checked before use.
#include "cc/core/v2_codec.h"

#include <optional>
#include <utility>

#include "cc/core/v2_json.h"
#include "cc/core/v2_tensor_data.h"

namespace tf_graphpipe {

namespace {

constexpr V2Refusal kMalformed{Code::kDataLoss, "malformed v2 answer: "};

Status Malformed(const std::string& what) { return kMalformed(what); }

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
            ReadV2Blob(body + offset, static_cast<size_t>(n_bytes), n, what, kMalformed, &view));
        offset += static_cast<size_t>(n_bytes);
      } else {
        const Json* data = Member(o, "data");
        if (data == nullptr) return Malformed(what + " has neither `data` nor binary_data_size");
        // Triton gives FP16 and BF16 no JSON form (SPEC_V2 section 3): an answer
        // holding them as JSON is not one a v2 server sends.
        if (!HasJsonForm(view.type)) return Malformed(what + ": " + V2DatatypeName(view.type) + " has no JSON form");
        TF_GRAPHPIPE_RETURN_IF_ERROR(ReadV2JsonData(*data, n, what, kMalformed, &view, &out->storage));
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
