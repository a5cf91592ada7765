// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: ReadV2InferAnswer / ReadV2MetadataAnswer, how a client
// reads a whole Open Inference Protocol (v2) answer: status, Content-Type,
// Inference-Header-Content-Length, and a body of JSON plus binary blobs.
//
// Input layout: byte 0 picks the call (bit 7: metadata) and the HTTP status
// (low bits, from kStatuses); byte 1 picks the Content-Type (bits 0-2),
// whether the Inference-Header-Content-Length header is sent and how it is
// spelled (bits 3-5), and the outputs asked for (bits 6-7); bytes 2-3 are
// the header's value (little-endian, may lie about the JSON's length); the
// rest is the body. Checks: the Status code is the one v2_answer.h promises,
// a refusal carries the HTTP status, and every decoded tensor has the bytes
// its shape needs, inside the body or the answer's own storage.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cc/core/graphpipe_answer.h"
#include "cc/core/v2_answer.h"
#include "fuzz/fuzz_checks.h"

namespace {

constexpr long kStatuses[] = {200, 200, 200, 200, 400, 404, 413, 500,
                              502, 503, 504, 204, 301, 0,   99,  999};
constexpr const char* kContentTypes[] = {
    "application/json", "application/octet-stream", "text/plain", "",
    "application/vnd.sagemaker-triton.binary+json", "text/html", "APPLICATION/JSON", "json"};

using tf_graphpipe::ByteBuffer;
using tf_graphpipe::fuzz::Inside;
using tf_graphpipe::fuzz::Require;

// Inside the body, or inside one of the buffers the decoder filled itself.
bool InsideAnswer(const void* p, size_t n, const ByteBuffer& body,
                  const std::vector<ByteBuffer>& storage) {
  if (Inside(p, n, body.data(), body.size())) return true;
  for (const ByteBuffer& b : storage) {
    if (Inside(p, n, b.data(), b.size())) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tf_graphpipe;  // NOLINT: a fuzz entry point, not library code
  if (size < 4) return 0;
  const bool metadata = (data[0] & 0x80) != 0;
  HttpResponse response;
  response.status = kStatuses[data[0] % (sizeof(kStatuses) / sizeof(kStatuses[0]))];
  response.content_type = kContentTypes[data[1] & 0x07];
  const unsigned json_length = data[2] | (unsigned{data[3]} << 8);
  switch ((data[1] >> 3) & 0x07) {
    case 0: case 1: case 2: case 3:
      response.headers.emplace_back("inference-header-content-length", std::to_string(json_length));
      break;
    case 4: response.headers.emplace_back("inference-header-content-length", "-1"); break;
    case 5: response.headers.emplace_back("inference-header-content-length", "1e3"); break;
    case 6:
      response.headers.emplace_back("inference-header-content-length", "184467440737095516160");
      break;
    default: break;  // no header: the whole body is JSON
  }
  std::vector<std::string_view> requested;
  switch (data[1] >> 6) {
    case 1: requested = {"y"}; break;
    case 2: requested = {"b", "a"}; break;
    case 3: requested = {"OUTPUT0", "OUTPUT0"}; break;
    default: break;
  }
  Require(response.body.Reserve(size - 4));
  if (size > 4) Require(response.body.Append(data + 4, size - 4));
  const std::string url = "http://127.0.0.1:1/v2/models/m/infer";

  Status status;
  if (metadata) {
    ModelMetadata out;
    status = ReadV2MetadataAnswer(url, response, &out);
  } else {
    V2InferResponse out;
    status = ReadV2InferAnswer(url, response, requested, &out);
    if (status.ok()) {
      Require(out.outputs.size() == out.output_names.size());
      if (!requested.empty()) Require(out.outputs.size() == requested.size());
      for (const TensorView& t : out.outputs) {
        fuzz::CheckTensorIn(t, /*any_protocol=*/true, [&](const void* p, size_t n) {
          return InsideAnswer(p, n, response.body, out.storage);
        });
      }
    }
  }
  if (response.status == 200) {
    Require(status.ok() || status.code() == Code::kDataLoss);
    return 0;
  }
  Require(!status.ok());
  Require(status.code() == CodeForHttpStatus(response.status));
  Require(status.remote().http_status == static_cast<int>(response.status));
  Require(!status.message().empty());
  return 0;
}
