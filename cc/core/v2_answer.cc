// SPDX-License-Identifier: Apache-2.0
#include "cc/core/v2_answer.h"

#include <limits>
#include <utility>

#include "cc/core/graphpipe_answer.h"

namespace tf_graphpipe {
namespace {

Status Refusal(const std::string& url, const HttpResponse& response) {
  RemoteDetail detail;
  detail.http_status = static_cast<int>(response.status);
  std::string text = V2ErrorText(response.body.data(), response.body.size());
  text = text.empty() ? BodyText(response) : ErrorText(text);
  if (text.empty()) text = "(empty body)";
  const std::string what = response.status == 404 ? ", no such model" : "";
  return Status(CodeForHttpStatus(response.status),
                url + " refused the call (HTTP " + std::to_string(response.status) + what +
                    "): " + text,
                detail);
}

// The length of the JSON header: the Inference-Header-Content-Length when
// the answer has one, else the whole body.
Status JsonSize(const std::string& url, const HttpResponse& response, size_t* out) {
  const std::string* value = response.Header("inference-header-content-length");
  if (value == nullptr) {
    *out = response.body.size();
    return Status::Ok();
  }
  size_t n = 0;
  bool ok = !value->empty() && value->size() <= 19;
  for (char c : *value) {
    if (c < '0' || c > '9') ok = false;
    else n = n * 10 + static_cast<size_t>(c - '0');
  }
  if (!ok) {
    return Status(Code::kDataLoss, "malformed v2 answer of " + url +
                                       ": Inference-Header-Content-Length '" +
                                       ErrorText(*value) + "' is not a byte count");
  }
  *out = n;
  return Status::Ok();
}

}  // namespace

Status ReadV2InferAnswer(const std::string& url, const HttpResponse& response,
                         const std::vector<std::string_view>& requested,
                         V2InferResponse* out) {
  if (response.status != 200) return Refusal(url, response);
  size_t json_size = 0;
  TF_GRAPHPIPE_RETURN_IF_ERROR(JsonSize(url, response, &json_size));
  Status decoded = DecodeV2InferResponse(response.body.data(), response.body.size(), json_size, out);
  if (!decoded.ok()) return decoded.WithContext("answer of " + url);
  if (requested.empty()) return Status::Ok();
  std::vector<TensorView> outputs;
  std::vector<std::string> names;
  outputs.reserve(requested.size());
  for (std::string_view name : requested) {
    size_t i = 0;
    while (i < out->output_names.size() && out->output_names[i] != name) ++i;
    if (i == out->output_names.size()) {
      std::string has;
      for (const std::string& n : out->output_names) has += (has.empty() ? "" : ", ") + n;
      return Status(Code::kDataLoss, "answer of " + url + " lacks the requested output '" +
                                         std::string(name) + "' (it has: " + has + ")");
    }
    outputs.push_back(out->outputs[i]);
    names.emplace_back(name);
  }
  out->outputs = std::move(outputs);
  out->output_names = std::move(names);
  return Status::Ok();
}

Status ReadV2MetadataAnswer(const std::string& url, const HttpResponse& response,
                            ModelMetadata* out) {
  if (response.status != 200) return Refusal(url, response);
  Status decoded = DecodeV2ModelMetadata(response.body.data(), response.body.size(), out);
  if (!decoded.ok()) return decoded.WithContext("metadata answer of " + url);
  return Status::Ok();
}

}  // namespace tf_graphpipe
