// SPDX-License-Identifier: Apache-2.0
// The element types and their sizes: the one table C++ uses. 1..12 are the
// GraphPipe wire types (schema/graphpipe.fbs `Type`; values equal the
// schema's enum, codec.cc asserts it). Bool and Bfloat16 exist only in the
// Open Inference Protocol (v2_codec.h): the GraphPipe codec refuses them.
#ifndef TF_GRAPHPIPE_CC_CORE_DTYPE_H_
#define TF_GRAPHPIPE_CC_CORE_DTYPE_H_

#include <cstddef>
#include <cstdint>

namespace tf_graphpipe {

enum class DType : uint8_t {
  kNull = 0,
  kUint8 = 1,
  kInt8 = 2,
  kUint16 = 3,
  kInt16 = 4,
  kUint32 = 5,
  kInt32 = 6,
  kUint64 = 7,
  kInt64 = 8,
  kFloat16 = 9,
  kFloat32 = 10,
  kFloat64 = 11,
  kString = 12,
  // Not GraphPipe wire types (v2 only):
  kBool = 13,      // one byte, 0 or 1
  kBfloat16 = 14,  // ml_dtypes.bfloat16 / tf.bfloat16
};

constexpr uint8_t kMaxWireType = 12;  // the last GraphPipe wire type
constexpr uint8_t kMaxDType = 14;     // the last type of any protocol

// Bytes per element; 0 for Null and String (which carry no raw data).
constexpr size_t ElementSize(DType type) {
  switch (type) {
    case DType::kUint8:
    case DType::kInt8:
    case DType::kBool:
      return 1;
    case DType::kUint16:
    case DType::kInt16:
    case DType::kFloat16:
    case DType::kBfloat16:
      return 2;
    case DType::kUint32:
    case DType::kInt32:
    case DType::kFloat32:
      return 4;
    case DType::kUint64:
    case DType::kInt64:
    case DType::kFloat64:
      return 8;
    case DType::kNull:
    case DType::kString:
      return 0;
  }
  return 0;
}

// Lower-case names, equal to NumPy's dtype names for the numeric types.
constexpr const char* DTypeName(DType type) {
  switch (type) {
    case DType::kNull: return "null";
    case DType::kUint8: return "uint8";
    case DType::kInt8: return "int8";
    case DType::kUint16: return "uint16";
    case DType::kInt16: return "int16";
    case DType::kUint32: return "uint32";
    case DType::kInt32: return "int32";
    case DType::kUint64: return "uint64";
    case DType::kInt64: return "int64";
    case DType::kFloat16: return "float16";
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kString: return "string";
    case DType::kBool: return "bool";
    case DType::kBfloat16: return "bfloat16";
  }
  return "unknown";
}

// True for the 12 types a GraphPipe tensor may carry (everything but Null).
constexpr bool IsTensorType(uint8_t raw) { return raw >= 1 && raw <= kMaxWireType; }

// True for the types any protocol carries (GraphPipe's, Bool, Bfloat16).
constexpr bool IsAnyTensorType(uint8_t raw) { return raw >= 1 && raw <= kMaxDType; }

}  // namespace tf_graphpipe

#endif  // TF_GRAPHPIPE_CC_CORE_DTYPE_H_
