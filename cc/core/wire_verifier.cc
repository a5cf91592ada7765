// SPDX-License-Identifier: Apache-2.0
#include "cc/core/wire_verifier.h"

#include "flatbuffers/flatbuffers.h"
#include "graphpipe_generated.h"

namespace tf_graphpipe {
namespace {

using flatbuffers::Offset;
using flatbuffers::String;
using flatbuffers::Table;
using flatbuffers::Vector;
using flatbuffers::Verifier;

// Generated tables inherit flatbuffers::Table privately; the field checks we
// need are Table's public members, and a generated table is a Table at the
// same address.
template <typename T>
const Table* AsTable(const T* table) {
  return reinterpret_cast<const Table*>(table);
}

// A string bounded by its length prefix; no terminator required.
bool VerifyBytes(Verifier& v, const String* s) {
  return s == nullptr ||
         v.VerifyVectorOrString<flatbuffers::uoffset_t>(
             reinterpret_cast<const uint8_t*>(s), 1);
}

bool VerifyStringVector(Verifier& v, const Vector<Offset<String>>* strings) {
  if (strings == nullptr) return true;
  if (!v.VerifyVector(strings)) return false;
  for (flatbuffers::uoffset_t i = 0; i < strings->size(); ++i) {
    if (!VerifyBytes(v, strings->Get(i))) return false;
  }
  return true;
}

template <typename T, typename VerifyOne>
bool VerifyTableVector(Verifier& v, const Vector<Offset<T>>* tables,
                       VerifyOne verify_one) {
  if (tables == nullptr) return true;
  if (!v.VerifyVector(tables)) return false;
  for (flatbuffers::uoffset_t i = 0; i < tables->size(); ++i) {
    if (!verify_one(v, tables->Get(i))) return false;
  }
  return true;
}

bool VerifyTensor(Verifier& v, const graphpipe::Tensor* t) {
  using T = graphpipe::Tensor;
  const Table* table = AsTable(t);
  return table->VerifyTableStart(v) &&
         table->VerifyField<uint8_t>(v, T::VT_TYPE, 1) &&
         table->VerifyOffset(v, T::VT_SHAPE) && v.VerifyVector(t->shape()) &&
         table->VerifyOffset(v, T::VT_DATA) && v.VerifyVector(t->data()) &&
         table->VerifyOffset(v, T::VT_STRING_VAL) &&
         VerifyStringVector(v, t->string_val()) && v.EndTable();
}

bool VerifyError(Verifier& v, const graphpipe::Error* e) {
  using E = graphpipe::Error;
  const Table* table = AsTable(e);
  return table->VerifyTableStart(v) &&
         table->VerifyField<int64_t>(v, E::VT_CODE, 8) &&
         table->VerifyOffset(v, E::VT_MESSAGE) && VerifyBytes(v, e->message()) &&
         v.EndTable();
}

bool VerifyIOMetadata(Verifier& v, const graphpipe::IOMetadata* m) {
  using M = graphpipe::IOMetadata;
  const Table* table = AsTable(m);
  return table->VerifyTableStart(v) &&
         table->VerifyOffset(v, M::VT_NAME) && VerifyBytes(v, m->name()) &&
         table->VerifyOffset(v, M::VT_DESCRIPTION) &&
         VerifyBytes(v, m->description()) &&
         table->VerifyOffset(v, M::VT_SHAPE) && v.VerifyVector(m->shape()) &&
         table->VerifyField<uint8_t>(v, M::VT_TYPE, 1) && v.EndTable();
}

bool VerifyInferRequest(Verifier& v, const graphpipe::InferRequest* r) {
  using R = graphpipe::InferRequest;
  const Table* table = AsTable(r);
  return table->VerifyTableStart(v) &&
         table->VerifyOffset(v, R::VT_CONFIG) && VerifyBytes(v, r->config()) &&
         table->VerifyOffset(v, R::VT_INPUT_NAMES) &&
         VerifyStringVector(v, r->input_names()) &&
         table->VerifyOffset(v, R::VT_INPUT_TENSORS) &&
         VerifyTableVector(v, r->input_tensors(), VerifyTensor) &&
         table->VerifyOffset(v, R::VT_OUTPUT_NAMES) &&
         VerifyStringVector(v, r->output_names()) && v.EndTable();
}

bool VerifyMetadataRequest(Verifier& v, const graphpipe::MetadataRequest* r) {
  return AsTable(r)->VerifyTableStart(v) && v.EndTable();
}

// Verifies the root offset and returns the root table's address, or nullptr.
const uint8_t* VerifyRoot(Verifier& v, const uint8_t* buffer, size_t size) {
  if (size < sizeof(flatbuffers::uoffset_t) ||
      size > FLATBUFFERS_MAX_BUFFER_SIZE) {
    return nullptr;
  }
  size_t root = v.VerifyOffset<flatbuffers::uoffset_t>(0);
  return root == 0 ? nullptr : buffer + root;
}

Verifier::Options Limits() {
  Verifier::Options options;
  options.max_depth = 16;  // the schema nests 4 deep
  options.check_alignment = true;
  return options;
}

}  // namespace

bool VerifyRequestBuffer(const uint8_t* buffer, size_t size) {
  Verifier v(buffer, size, Limits());
  const uint8_t* root = VerifyRoot(v, buffer, size);
  if (root == nullptr) return false;
  using R = graphpipe::Request;
  const auto* request = reinterpret_cast<const R*>(root);
  const Table* table = AsTable(request);
  if (!table->VerifyTableStart(v) ||
      !table->VerifyField<uint8_t>(v, R::VT_REQ_TYPE, 1) ||
      !table->VerifyOffset(v, R::VT_REQ)) {
    return false;
  }
  bool ok = true;
  switch (request->req_type()) {
    case graphpipe::Req_InferRequest:
      ok = request->req() != nullptr &&
           VerifyInferRequest(v, request->req_as_InferRequest());
      break;
    case graphpipe::Req_MetadataRequest:
      ok = request->req() == nullptr ||
           VerifyMetadataRequest(v, request->req_as_MetadataRequest());
      break;
    default:
      // NONE or a union member this schema does not know: the decoder
      // reports it; structurally there is nothing to follow.
      break;
  }
  return ok && v.EndTable();
}

bool VerifyInferResponseBuffer(const uint8_t* buffer, size_t size) {
  Verifier v(buffer, size, Limits());
  const uint8_t* root = VerifyRoot(v, buffer, size);
  if (root == nullptr) return false;
  using R = graphpipe::InferResponse;
  const auto* response = reinterpret_cast<const R*>(root);
  const Table* table = AsTable(response);
  return table->VerifyTableStart(v) &&
         table->VerifyOffset(v, R::VT_OUTPUT_TENSORS) &&
         VerifyTableVector(v, response->output_tensors(), VerifyTensor) &&
         table->VerifyOffset(v, R::VT_ERRORS) &&
         VerifyTableVector(v, response->errors(), VerifyError) && v.EndTable();
}

bool VerifyMetadataResponseBuffer(const uint8_t* buffer, size_t size) {
  Verifier v(buffer, size, Limits());
  const uint8_t* root = VerifyRoot(v, buffer, size);
  if (root == nullptr) return false;
  using M = graphpipe::MetadataResponse;
  const auto* m = reinterpret_cast<const M*>(root);
  const Table* table = AsTable(m);
  return table->VerifyTableStart(v) &&
         table->VerifyOffset(v, M::VT_NAME) && VerifyBytes(v, m->name()) &&
         table->VerifyOffset(v, M::VT_VERSION) && VerifyBytes(v, m->version()) &&
         table->VerifyOffset(v, M::VT_SERVER) && VerifyBytes(v, m->server()) &&
         table->VerifyOffset(v, M::VT_DESCRIPTION) &&
         VerifyBytes(v, m->description()) &&
         table->VerifyOffset(v, M::VT_INPUTS) &&
         VerifyTableVector(v, m->inputs(), VerifyIOMetadata) &&
         table->VerifyOffset(v, M::VT_OUTPUTS) &&
         VerifyTableVector(v, m->outputs(), VerifyIOMetadata) && v.EndTable();
}

}  // namespace tf_graphpipe
