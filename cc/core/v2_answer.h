// SPDX-License-Identifier: Apache-2.0
// What an HTTP answer from an Open Inference Protocol (v2) server means: the
// one place v2 answers become a Status, with the same codes as GraphPipe
// answers (graphpipe_answer.h), so callers see one set of errors.
//
//   200 + a valid answer       -> OK, views into the body / the answer
//   4xx                        -> kInvalidArgument (404 also says "no such model")
//   503                        -> kUnavailable
//   other 5xx                  -> kInternal
//   any other status           -> kUnknown
//   200 + undecodable answer   -> kDataLoss (also a bad
//                                 Inference-Header-Content-Length, or a
//                                 requested output missing from the answer)
// A refusal carries the server's text verbatim: `error` of a JSON body
// (Triton, the spec), kserve's FastAPI `detail`, else the body as text,
// whatever the Content-Type says (SPEC_V2 section 5), and a RemoteDetail with
// the HTTP status. The binary part of an answer is framed by its
// Inference-Header-Content-Length alone, never by its Content-Type (kserve
// sends none).
#ifndef TF_GRAPHPIPE_CC_CORE_V2_ANSWER_H_
#define TF_GRAPHPIPE_CC_CORE_V2_ANSWER_H_

#include <string>
#include <string_view>
#include <vector>

#include "cc/core/codec.h"
#include "cc/core/http_transport.h"
#include "cc/core/status.h"
#include "cc/core/v2_codec.h"

namespace tf_graphpipe {

// With `requested` non-empty, out->outputs holds exactly those outputs in
// that order (servers may answer in their own order). Views in `out` point
// into `response.body` and out->storage.
Status ReadV2InferAnswer(const std::string& url, const HttpResponse& response,
                         const std::vector<std::string_view>& requested,
                         V2InferResponse* out);
Status ReadV2MetadataAnswer(const std::string& url, const HttpResponse& response,
                            ModelMetadata* out);

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_V2_ANSWER_H_
