// SPDX-License-Identifier: Apache-2.0
#include "cc/core/graphpipe_answer.h"

#include <string_view>

namespace tf_graphpipe {
namespace {

// Error text longer than this is cut: a misbehaving server must not make an
// exception message megabytes long.
constexpr size_t kMaxErrorText = 16 * 1024;

}  // namespace

std::string ErrorText(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  if (text.size() > kMaxErrorText) {
    size_t cut = kMaxErrorText;
    // Step back over UTF-8 continuation bytes so a character is not split.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return std::string(text.substr(0, cut)) + "... (" +
           std::to_string(text.size()) + " bytes)";
  }
  return std::string(text);
}

namespace {

bool IsText(const std::string& content_type) {
  return content_type.rfind("text/", 0) == 0 ||
         content_type.rfind("application/json", 0) == 0;
}

Status Refusal(const std::string& url, long http_status,
               const std::vector<RemoteErrorEntry>& errors,
               const std::string& text) {
  RemoteDetail detail;
  detail.http_status = static_cast<int>(http_status);
  std::string message;
  if (!errors.empty()) {
    detail.has_error_code = true;
    detail.error_code = errors.front().code;
    for (const RemoteErrorEntry& e : errors) {
      if (!message.empty()) message += "; ";
      message += e.message;
    }
  } else {
    message = text.empty() ? "(empty body)" : text;
  }
  const Code code = http_status == 200 ? Code::kInvalidArgument
                                       : CodeForHttpStatus(http_status);
  return Status(code,
                url + " refused the call (HTTP " + std::to_string(http_status) +
                    "): " + message,
                detail);
}

// A non-200 answer: an InferResponse with errors, or plain text.
Status RefusalFromBody(const std::string& url, const HttpResponse& response) {
  InferResponseView parsed;
  if (!IsText(response.content_type) && response.body.size() > 0 &&
      DecodeInferResponse(response.body.data(), response.body.size(), &parsed).ok() &&
      !parsed.errors.empty()) {
    return Refusal(url, response.status, parsed.errors, "");
  }
  return Refusal(url, response.status, {}, BodyText(response));
}

}  // namespace

std::string BodyText(const HttpResponse& response) {
  return ErrorText(std::string_view(reinterpret_cast<const char*>(response.body.data()),
                                    response.body.size()));
}

Code CodeForHttpStatus(long http_status) {
  // 504: the server dropped a call whose deadline passed (google.rpc's
  // mapping of DEADLINE_EXCEEDED); 408: it gave up waiting for the request.
  if (http_status == 504 || http_status == 408) return Code::kDeadlineExceeded;
  if (http_status >= 400 && http_status < 500) return Code::kInvalidArgument;
  if (http_status == 503) return Code::kUnavailable;
  if (http_status >= 500 && http_status < 600) return Code::kInternal;
  return Code::kUnknown;
}

Status ReadInferAnswer(const std::string& url, const HttpResponse& response,
                       InferResponseView* out) {
  if (response.status != 200) return RefusalFromBody(url, response);
  Status decoded =
      DecodeInferResponse(response.body.data(), response.body.size(), out);
  if (!decoded.ok()) return decoded.WithContext("answer of " + url);
  if (!out->errors.empty()) return Refusal(url, 200, out->errors, "");
  return Status::Ok();
}

Status ReadMetadataAnswer(const std::string& url, const HttpResponse& response,
                          ModelMetadata* out) {
  if (response.status != 200) return RefusalFromBody(url, response);
  Status decoded =
      DecodeMetadataResponse(response.body.data(), response.body.size(), out);
  if (!decoded.ok()) return decoded.WithContext("metadata answer of " + url);
  return Status::Ok();
}

}  // namespace tf_graphpipe
