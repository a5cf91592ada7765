// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: ReadInferAnswer / ReadMetadataAnswer, how a client reads
// a whole HTTP answer (status, Content-Type, body) into a result or a Status.
//
// Input layout: byte 0 picks the call (bit 7: metadata) and the HTTP status
// (low bits, from kStatuses); byte 1 picks the Content-Type; the rest is the
// body. Checks: the Status code is the one the status table promises, a
// refusal carries the HTTP status, and a text refusal's message stays
// bounded however large the body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cc/core/graphpipe_answer.h"
#include "fuzz/fuzz_checks.h"

namespace {

constexpr long kStatuses[] = {200, 200, 200, 200, 400, 404, 413, 500,
                              502, 503, 504, 204, 301, 0,   99,  999};
constexpr const char* kContentTypes[] = {
    "application/octet-stream", "text/plain; charset=utf-8", "application/json",
    "", "text/html", "application/x-graphpipe", "TEXT/PLAIN", "text/"};
constexpr size_t kMaxErrorText = 16 * 1024;  // graphpipe_answer.cc's cut

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tf_graphpipe;  // NOLINT: a fuzz entry point, not library code
  if (size < 2) return 0;
  const bool metadata = (data[0] & 0x80) != 0;
  HttpResponse response;
  response.status = kStatuses[data[0] % (sizeof(kStatuses) / sizeof(kStatuses[0]))];
  response.content_type =
      kContentTypes[data[1] % (sizeof(kContentTypes) / sizeof(kContentTypes[0]))];
  fuzz::Require(response.body.Reserve(size - 2));
  if (size > 2) fuzz::Require(response.body.Append(data + 2, size - 2));
  const std::string url = "http://127.0.0.1:1/model";

  Status status;
  if (metadata) {
    ModelMetadata out;
    status = ReadMetadataAnswer(url, response, &out);
  } else {
    InferResponseView out;
    status = ReadInferAnswer(url, response, &out);
    if (status.ok()) {
      for (const TensorView& t : out.outputs) {
        fuzz::CheckTensor(t, response.body.data(), response.body.size());
      }
    }
  }
  if (response.status == 200) {
    // OK, kDataLoss (not a message), or kInvalidArgument (errors inside).
    fuzz::Require(status.ok() || status.code() == Code::kDataLoss ||
                  (status.code() == Code::kInvalidArgument && status.is_remote()));
    return 0;
  }
  fuzz::Require(!status.ok());
  fuzz::Require(status.code() == CodeForHttpStatus(response.status));
  fuzz::Require(status.remote().http_status == static_cast<int>(response.status));
  fuzz::Require(!status.message().empty());
  if (!status.remote().has_error_code) {
    fuzz::Require(status.message().size() <= url.size() + kMaxErrorText + 128);
  }
  return 0;
}
