// SPDX-License-Identifier: Apache-2.0
#include "cc/ops/tf_tensor_views.h"

#include <cstring>

namespace tf_graphpipe {

namespace tf = ::tensorflow;

DType WireTypeOf(tf::DataType type) {
  switch (type) {
    case tf::DT_UINT8: return DType::kUint8;
    case tf::DT_INT8: return DType::kInt8;
    case tf::DT_UINT16: return DType::kUint16;
    case tf::DT_INT16: return DType::kInt16;
    case tf::DT_UINT32: return DType::kUint32;
    case tf::DT_INT32: return DType::kInt32;
    case tf::DT_UINT64: return DType::kUint64;
    case tf::DT_INT64: return DType::kInt64;
    case tf::DT_HALF: return DType::kFloat16;
    case tf::DT_FLOAT: return DType::kFloat32;
    case tf::DT_DOUBLE: return DType::kFloat64;
    case tf::DT_STRING: return DType::kString;
    case tf::DT_BOOL: return DType::kBool;
    case tf::DT_BFLOAT16: return DType::kBfloat16;
    default: return DType::kNull;
  }
}

tf::DataType TfTypeOf(DType type) {
  switch (type) {
    case DType::kUint8: return tf::DT_UINT8;
    case DType::kInt8: return tf::DT_INT8;
    case DType::kUint16: return tf::DT_UINT16;
    case DType::kInt16: return tf::DT_INT16;
    case DType::kUint32: return tf::DT_UINT32;
    case DType::kInt32: return tf::DT_INT32;
    case DType::kUint64: return tf::DT_UINT64;
    case DType::kInt64: return tf::DT_INT64;
    case DType::kFloat16: return tf::DT_HALF;
    case DType::kFloat32: return tf::DT_FLOAT;
    case DType::kFloat64: return tf::DT_DOUBLE;
    case DType::kString: return tf::DT_STRING;
    case DType::kBool: return tf::DT_BOOL;
    case DType::kBfloat16: return tf::DT_BFLOAT16;
    case DType::kNull: break;
  }
  return tf::DT_INVALID;
}

absl::Status ViewOfTensor(const tf::Tensor& tensor, const std::string& what, TensorView* view) {
  view->type = WireTypeOf(tensor.dtype());
  if (view->type == DType::kNull) {
    return absl::InvalidArgumentError(what + ": dtype " + tf::DataTypeString(tensor.dtype()) +
                                      " has no GraphPipe wire type nor v2 datatype");
  }
  const auto dims = tensor.shape().dim_sizes();  // a temporary: keep it alive
  view->shape.assign(dims.begin(), dims.end());
  if (view->type == DType::kString) {
    auto strings = tensor.flat<tf::tstring>();
    view->strings.reserve(strings.size());
    for (int64_t i = 0; i < strings.size(); ++i) {
      view->strings.emplace_back(strings(i).data(), strings(i).size());
    }
  } else {
    const auto bytes = tensor.tensor_data();
    view->data = reinterpret_cast<const uint8_t*>(bytes.data());
    view->nbytes = bytes.size();
  }
  return absl::OkStatus();
}

void CopyViewToTensor(const TensorView& view, tf::Tensor* tensor) {
  if (view.type == DType::kString) {
    auto strings = tensor->flat<tf::tstring>();
    for (size_t i = 0; i < view.strings.size(); ++i) {
      strings(i).assign(view.strings[i].data(), view.strings[i].size());
    }
    return;
  }
  // The source may sit at any 4-byte boundary: memcpy, never a typed copy.
  if (view.nbytes > 0) {
    std::memcpy(const_cast<char*>(tensor->tensor_data().data()), view.data, view.nbytes);
  }
}

}  // namespace tf_graphpipe
