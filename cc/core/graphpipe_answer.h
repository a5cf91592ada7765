// SPDX-License-Identifier: Apache-2.0
// What an HTTP answer from a GraphPipe server means: the one place the two
// peer error styles (SPEC section 2) become a Status.
//
//   200 + InferResponse with outputs     -> OK, views into the answer's body
//   200 + InferResponse with `errors`    -> kInvalidArgument (the server refused)
//   4xx                                  -> kInvalidArgument
//   503                                  -> kUnavailable
//   other 5xx                            -> kInternal (the model failed)
//   any other status                     -> kUnknown
//   200 + bytes that do not verify       -> kDataLoss
// Refusals carry the server's text verbatim (from the Error tables when the
// body is an InferResponse with errors, else the body as text) and a
// RemoteDetail with the HTTP status and the protocol error code.
#ifndef TF_GRAPHPIPE_CC_CORE_GRAPHPIPE_ANSWER_H_
#define TF_GRAPHPIPE_CC_CORE_GRAPHPIPE_ANSWER_H_

#include <string>
#include <string_view>

#include "cc/core/codec.h"
#include "cc/core/http_transport.h"
#include "cc/core/status.h"

namespace tf_graphpipe {

// Views in `out` point into `response.body`.
Status ReadInferAnswer(const std::string& url, const HttpResponse& response,
                       InferResponseView* out);
Status ReadMetadataAnswer(const std::string& url, const HttpResponse& response,
                          ModelMetadata* out);

// Code for a refusal with this HTTP status (see the table above).
Code CodeForHttpStatus(long http_status);

// A peer's error text fit for a message: trailing newlines dropped, cut at
// 16 KiB (a misbehaving server must not make messages megabytes long).
std::string ErrorText(std::string_view text);
// The body of `response` as such text.
std::string BodyText(const HttpResponse& response);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_GRAPHPIPE_ANSWER_H_
