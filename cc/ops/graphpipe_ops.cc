// SPDX-License-Identifier: Apache-2.0
// Op registrations. Op names and attrs are a SavedModel contract: never
// rename them; a new attr must come with a default.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tf_graphpipe {
namespace {

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// A scalar resource naming a remote model by URL. It owns no state (the
// handle carries the URL): it exists so the call below can take a resource
// input, which lets automatic control dependencies run calls concurrently.
REGISTER_OP("GraphPipeEndpoint")
    .Input("url: string")
    .Output("endpoint: resource")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle unused;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 0, &unused));
      c->set_output(0, c->Scalar());
      return absl::OkStatus();
    })
    .Doc(R"doc(
A handle naming the GraphPipe model at `url`, for GraphPipeCall.
)doc");

// The declared shapes of the first `data_outputs` outputs (all of them
// unknown when output_shapes is empty).
absl::Status DeclaredShapes(InferenceContext* c, int data_outputs) {
  std::vector<tensorflow::PartialTensorShape> shapes;
  TF_RETURN_IF_ERROR(c->GetAttr("output_shapes", &shapes));
  if (shapes.empty()) {
    for (int i = 0; i < data_outputs; ++i) c->set_output(i, c->UnknownShape());
    return absl::OkStatus();
  }
  if (static_cast<int>(shapes.size()) != data_outputs) {
    return absl::InvalidArgumentError("output_shapes has " + std::to_string(shapes.size()) +
                                      " entries but Tout has " + std::to_string(data_outputs));
  }
  for (int i = 0; i < data_outputs; ++i) {
    ShapeHandle shape;
    TF_RETURN_IF_ERROR(c->MakeShapeFromPartialTensorShape(shapes[i], &shape));
    c->set_output(i, shape);
  }
  return absl::OkStatus();
}

// A call op: its inputs, outputs and attrs, shared by the two calls below so
// they cannot drift apart. `reports_status`: two scalar outputs after the
// model's, the call's canonical status code and message, instead of failing.
tensorflow::register_op::OpDefBuilderWrapper CallOp(const char* name, bool reports_status) {
  tensorflow::register_op::OpDefBuilderWrapper op(name);
  op.Input("endpoint: resource").Input("inputs: Tin").Output("outputs: Tout");
  if (reports_status) op.Output("status_code: int32").Output("status_message: string");
  op.Attr("Tin: list(type) >= 0")
      .Attr("Tout: list(type) >= 0")
      .Attr("output_shapes: list(shape) = []")
      .Attr("input_names: list(string) = []")
      .Attr("output_names: list(string) = []")
      .Attr("config: string = ''")
      .Attr("timeout_seconds: float = 30.0")
      .Attr("retries: int = 2")
      // 'graphpipe', 'v2' (Open Inference Protocol), or 'auto': decided per
      // call from the URL (v2 when its path is /v2/models/<name>...), so a URL
      // variable may be re-pointed across protocols.
      .Attr("protocol: string = 'graphpipe'")
      // v2 only: tensors as raw bytes (binary tensor extension), else JSON.
      .Attr("v2_binary: bool = true")
      // Non-secret headers ("Name: value"), the *names* of the bearer token's
      // environment variable or file (the token is read at each call, never
      // kept in the graph), and TLS files for https:// URLs.
      .Attr("headers: list(string) = []")
      .Attr("auth_token_env: string = ''")
      .Attr("auth_token_file: string = ''")
      .Attr("ca_file: string = ''")
      .Attr("client_cert: string = ''")
      .Attr("client_key: string = ''")
      .SetIsStateful()
      .SetShapeFn([reports_status](InferenceContext* c) {
        const int data_outputs = c->num_outputs() - (reports_status ? 2 : 0);
        TF_RETURN_IF_ERROR(DeclaredShapes(c, data_outputs));
        if (reports_status) {
          c->set_output(data_outputs, c->Scalar());
          c->set_output(data_outputs + 1, c->Scalar());
        }
        return absl::OkStatus();
      });
  return op;
}

// Calls a remote model. `endpoint` is a GraphPipeEndpoint handle or the
// handle of a scalar string variable holding the URL (so a loaded SavedModel
// can be re-pointed by assigning the variable). Stateful: it talks to the
// network and must never be constant-folded or merged by CSE.
// Error classes: see tf_graphpipe/ops.py and cc/core/graphpipe_answer.h.
TF_ATTRIBUTE_UNUSED const tensorflow::InitOnStartupMarker kRegisterCall =
    tensorflow::InitOnStartupMarker{}
    << CallOp("GraphPipeCall", /*reports_status=*/false)
           .Doc("Runs the remote model named by `endpoint` on `inputs`, asynchronously, over "
                "GraphPipe or the Open Inference Protocol (v2).");

// The same call, whose failure is data rather than an error: it always
// succeeds, with `outputs` zero-filled to their declared shapes and the
// status in `status_code` (0 = OK) and `status_message` when the call fails.
// A separate op, not an attr of GraphPipeCall: an op's output list is fixed
// by its signature, and a graph (or SavedModel) that reads the status must
// say so in the op it names.
TF_ATTRIBUTE_UNUSED const tensorflow::InitOnStartupMarker kRegisterCallWithStatus =
    tensorflow::InitOnStartupMarker{}
    << CallOp("GraphPipeCallWithStatus", /*reports_status=*/true)
           .Doc("GraphPipeCall that reports its failure in status_code and status_message "
                "(zero outputs) instead of failing the step.");

}  // namespace
}  // namespace tf_graphpipe
