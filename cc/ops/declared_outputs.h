// SPDX-License-Identifier: Apache-2.0
// What a GraphPipeCall node declares about its outputs (Tout, output_shapes),
// and the check of an answer against it: count, dtype and shape, every output
// checked before any is allocated, so a bad answer leaves no output half set.
// Needs no OpKernelContext: tests run it on plain tensors. Immutable after
// construction and so thread-safe.
#ifndef TF_GRAPHPIPE_CC_OPS_DECLARED_OUTPUTS_H_
#define TF_GRAPHPIPE_CC_OPS_DECLARED_OUTPUTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cc/core/tensor_view.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"

namespace tf_graphpipe {

class DeclaredOutputs {
 public:
  // `shapes` empty: any shape. InvalidArgument (from Validate) when a dtype
  // has no type in the protocols the node may speak, or the counts differ.
  DeclaredOutputs(tensorflow::DataTypeVector types,
                  std::vector<tensorflow::PartialTensorShape> shapes)
      : types_(std::move(types)), shapes_(std::move(shapes)) {}

  // `graphpipe_only`: the node speaks GraphPipe alone, which has no bool
  // or bfloat16.
  absl::Status Validate(bool graphpipe_only) const;

  // The shapes to allocate for `outputs` (an answer of `url`), or
  // InvalidArgument saying what was expected and what came.
  absl::Status Check(const std::string& url, const std::vector<TensorView>& outputs,
                     std::vector<tensorflow::TensorShape>* shapes) const;

  // The shape of output `i` when a call fails softly (its outputs are then
  // zeros): the declared shape with every unknown dim 0, or [0] when the
  // rank is unknown, so the output is empty unless it is fully known.
  tensorflow::TensorShape FailureShape(size_t i) const;

  size_t size() const { return types_.size(); }
  tensorflow::DataType type(size_t i) const { return types_[i]; }

 private:
  tensorflow::DataTypeVector types_;
  std::vector<tensorflow::PartialTensorShape> shapes_;
};

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_OPS_DECLARED_OUTPUTS_H_
