// SPDX-License-Identifier: Apache-2.0
#include "cc/ops/declared_outputs.h"

#include "cc/core/dtype.h"
#include "cc/ops/tf_tensor_views.h"

namespace tf_graphpipe {

namespace tf = ::tensorflow;

absl::Status DeclaredOutputs::Validate(bool graphpipe_only) const {
  if (!shapes_.empty() && shapes_.size() != types_.size()) {
    return absl::InvalidArgumentError("output_shapes needs one entry per output");
  }
  for (size_t i = 0; i < types_.size(); ++i) {
    const DType type = WireTypeOf(types_[i]);
    if (type == DType::kNull || (graphpipe_only && !IsTensorType(static_cast<uint8_t>(type)))) {
      return absl::InvalidArgumentError(
          "output " + std::to_string(i) + ": dtype " + tf::DataTypeString(types_[i]) +
          (graphpipe_only ? " has no GraphPipe wire type"
                          : " has no GraphPipe wire type nor v2 datatype"));
    }
  }
  return absl::OkStatus();
}

absl::Status DeclaredOutputs::Check(const std::string& url, const std::vector<TensorView>& outputs,
                                    std::vector<tf::TensorShape>* shapes) const {
  if (outputs.size() != types_.size()) {
    return absl::InvalidArgumentError(url + " returned " + std::to_string(outputs.size()) +
                                      " outputs, expected " + std::to_string(types_.size()));
  }
  shapes->assign(outputs.size(), tf::TensorShape());
  for (size_t i = 0; i < outputs.size(); ++i) {
    const TensorView& view = outputs[i];
    const std::string what = "output " + std::to_string(i) + " of " + url;
    if (TfTypeOf(view.type) != types_[i]) {
      return absl::InvalidArgumentError(what + ": expected dtype " +
                                        tf::DataTypeString(types_[i]) + ", got " +
                                        DTypeName(view.type));
    }
    TF_RETURN_IF_ERROR(tf::TensorShape::BuildTensorShape(view.shape, &(*shapes)[i]));
    if (!shapes_.empty() && !shapes_[i].IsCompatibleWith((*shapes)[i])) {
      return absl::InvalidArgumentError(what + ": expected shape " + shapes_[i].DebugString() +
                                        ", got " + (*shapes)[i].DebugString());
    }
  }
  return absl::OkStatus();
}

tf::TensorShape DeclaredOutputs::FailureShape(size_t i) const {
  if (shapes_.empty() || shapes_[i].unknown_rank()) return tf::TensorShape({0});
  tf::TensorShape shape;
  for (int64_t dim : shapes_[i].dim_sizes()) shape.AddDim(dim < 0 ? 0 : dim);
  return shape;
}

}  // namespace tf_graphpipe
