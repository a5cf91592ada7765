// SPDX-License-Identifier: Apache-2.0
#include "cc/core/v2_tensor_data.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cc/core/v2_codec.h"

namespace tf_graphpipe {

namespace {

// The leaves of a nested `data` array in row-major order (a scalar is one
// leaf). False past kMaxRank levels.
bool Leaves(const Json& node, size_t depth, std::vector<const Json*>* out) {
  if (!node.is_array()) {
    out->push_back(&node);
    return true;
  }
  if (depth >= kMaxRank) return false;
  for (const Json& item : node) {
    if (!Leaves(item, depth + 1, out)) return false;
  }
  return true;
}

// IEEE half from a double, rounded to nearest even as NumPy converts.
uint16_t HalfFromDouble(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  const auto sign = static_cast<uint16_t>((bits >> 48) & 0x8000);
  const uint64_t magnitude = bits & 0x7FFFFFFFFFFFFFFFull;
  if (magnitude >= 0x7FF0000000000000ull) {
    return sign | (magnitude > 0x7FF0000000000000ull ? 0x7E00 : 0x7C00);
  }
  const int exponent = static_cast<int>(magnitude >> 52) - 1023;
  const uint64_t significand = (magnitude & ((uint64_t{1} << 52) - 1)) | (uint64_t{1} << 52);
  // Half keeps 10 fraction bits of a normal number; below 2^-14 its unit is
  // 2^-24 (subnormal), and so the shift grows.
  const int shift = exponent >= -14 ? 42 : 28 - exponent;
  if (shift >= 64) return sign;  // below half the smallest subnormal
  uint64_t h = significand >> shift;
  const uint64_t rest = significand & ((uint64_t{1} << shift) - 1);
  const uint64_t halfway = uint64_t{1} << (shift - 1);
  if (rest > halfway || (rest == halfway && (h & 1))) ++h;
  if (exponent < -14) return sign | static_cast<uint16_t>(h);  // a carry makes it normal
  int biased = exponent + 15;
  if (h == (uint64_t{1} << 11)) {
    h >>= 1;
    ++biased;
  }
  if (biased >= 31) return sign | 0x7C00;
  return sign | static_cast<uint16_t>(biased << 10) | static_cast<uint16_t>(h & 0x3FF);
}

// bfloat16 from a double through float, as TensorFlow and ml_dtypes convert.
uint16_t Bfloat16FromDouble(double value) {
  const float f = static_cast<float>(value);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x0040);
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

template <typename T>
void Store(uint8_t* out, size_t i, T value) {
  std::memcpy(out + i * sizeof(T), &value, sizeof(T));
}

// Writes leaf i as `type` into out; false when it is not such a value.
bool StoreLeaf(const Json& leaf, DType type, size_t i, uint8_t* out) {
  switch (type) {
#define TF_GRAPHPIPE_INTEGER_CASE(dtype, T)      \
  case dtype: {                                  \
    T v;                                         \
    if (!ReadJsonInteger(leaf, &v)) return false; \
    Store(out, i, v);                            \
    return true;                                 \
  }
    TF_GRAPHPIPE_INTEGER_CASE(DType::kUint8, uint8_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kInt8, int8_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kUint16, uint16_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kInt16, int16_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kUint32, uint32_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kInt32, int32_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kUint64, uint64_t)
    TF_GRAPHPIPE_INTEGER_CASE(DType::kInt64, int64_t)
#undef TF_GRAPHPIPE_INTEGER_CASE
    case DType::kBool:
      if (!leaf.is_boolean()) return false;
      out[i] = leaf.get<bool>() ? 1 : 0;
      return true;
    default:
      break;
  }
  double v;
  if (!ReadJsonFloat(leaf, &v)) return false;
  switch (type) {
    case DType::kFloat64: Store(out, i, v); return true;
    case DType::kFloat32: Store(out, i, static_cast<float>(v)); return true;
    case DType::kFloat16: Store(out, i, HalfFromDouble(v)); return true;
    case DType::kBfloat16: Store(out, i, Bfloat16FromDouble(v)); return true;
    default: return false;
  }
}

const char* KindOfValue(DType type) {
  switch (type) {
    case DType::kBool: return "true or false";
    case DType::kFloat16:
    case DType::kFloat32:
    case DType::kFloat64:
    case DType::kBfloat16: return "a number";
    default: return "an integer in its range";
  }
}

uint32_t LoadLength(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace

Status ReadV2JsonData(const Json& data, int64_t count, const std::string& what, const V2Refusal& refuse,
                      TensorView* view, std::vector<ByteBuffer>* storage) {
  std::vector<const Json*> leaves;
  leaves.reserve(static_cast<size_t>(std::min<int64_t>(count, data.is_array() ? data.size() : 1)));
  if (!Leaves(data, 0, &leaves)) {
    return refuse(what + ": 'data' nests deeper than " + std::to_string(kMaxRank) + " levels");
  }
  // From here on sizes come from leaves that exist, never from the shape alone.
  if (static_cast<int64_t>(leaves.size()) != count) {
    return refuse(what + ": shape " + ShapeString(view->shape) + " holds " + std::to_string(count) +
                  " elements, 'data' has " + std::to_string(leaves.size()));
  }
  storage->emplace_back();
  ByteBuffer& buffer = storage->back();
  const char* datatype = V2DatatypeName(view->type);
  if (view->type == DType::kString) {
    size_t total = 0;
    for (size_t i = 0; i < leaves.size(); ++i) {
      if (!leaves[i]->is_string()) {
        return refuse(what + ": BYTES data must be JSON strings, element " + std::to_string(i) +
                      " is " + DescribeJson(*leaves[i]));
      }
      total += leaves[i]->get_ref<const std::string&>().size();
    }
    if (!buffer.Reserve(std::max<size_t>(total, 1))) {
      return Status(Code::kResourceExhausted, what + ": cannot allocate " + std::to_string(total) + " bytes");
    }
    view->strings.reserve(leaves.size());
    for (const Json* leaf : leaves) {
      const std::string& s = leaf->get_ref<const std::string&>();
      const size_t at = buffer.size();
      buffer.Append(s.data(), s.size());  // reserved: never moves
      view->strings.emplace_back(reinterpret_cast<const char*>(buffer.data()) + at, s.size());
    }
    return Status::Ok();
  }
  const size_t nbytes = leaves.size() * ElementSize(view->type);
  if (!buffer.Resize(std::max<size_t>(nbytes, 1))) {
    return Status(Code::kResourceExhausted, what + ": cannot allocate " + std::to_string(nbytes) + " bytes");
  }
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!StoreLeaf(*leaves[i], view->type, i, buffer.data())) {
      return refuse(what + ": 'data' element " + std::to_string(i) + " is " + DescribeJson(*leaves[i]) +
                    ", not " + KindOfValue(view->type) + " of " + datatype);
    }
  }
  buffer.Resize(nbytes);
  view->data = nbytes == 0 ? nullptr : buffer.data();
  view->nbytes = nbytes;
  return Status::Ok();
}

Status ReadV2Blob(const uint8_t* blob, size_t size, int64_t count, const std::string& what,
                  const V2Refusal& refuse, TensorView* view) {
  if (view->type == DType::kString) {
    // Each element takes at least its 4-byte prefix: bound the count before reserving.
    if (static_cast<uint64_t>(count) > size / 4) {
      return refuse(what + ": " + std::to_string(size) + " bytes cannot hold " + std::to_string(count) +
                    " BYTES elements (each has a 4-byte length)");
    }
    view->strings.reserve(static_cast<size_t>(count));
    size_t at = 0;
    for (int64_t i = 0; i < count; ++i) {
      if (size - at < 4) {
        return refuse(what + ": BYTES element " + std::to_string(i) + " of " + std::to_string(count) +
                      " has no 4-byte length (" + std::to_string(size - at) + " bytes left)");
      }
      const uint32_t length = LoadLength(blob + at);
      at += 4;
      if (length > size - at) {
        return refuse(what + ": BYTES element " + std::to_string(i) + " declares " +
                      std::to_string(length) + " bytes, " + std::to_string(size - at) + " left");
      }
      view->strings.emplace_back(reinterpret_cast<const char*>(blob + at), length);
      at += length;
    }
    if (at != size) {
      return refuse(what + ": " + std::to_string(size - at) + " bytes after its " + std::to_string(count) +
                    " BYTES elements");
    }
    return Status::Ok();
  }
  const size_t itemsize = ElementSize(view->type);
  if (static_cast<uint64_t>(count) > size / itemsize || size != static_cast<size_t>(count) * itemsize) {
    const bool huge = static_cast<uint64_t>(count) > (uint64_t{1} << 59) / itemsize;
    return refuse(what + ": shape " + ShapeString(view->shape) + " of " + V2DatatypeName(view->type) +
                  " needs " + (huge ? std::string("more than 2^62") : std::to_string(count * static_cast<int64_t>(itemsize))) +
                  " bytes, binary_data_size is " + std::to_string(size));
  }
  if (view->type == DType::kBool) {
    for (size_t i = 0; i < size; ++i) {
      if (blob[i] > 1) {
        return refuse(what + ": BOOL element " + std::to_string(i) + " is byte " + std::to_string(blob[i]) +
                      ", not 0 or 1");
      }
    }
  }
  view->data = size == 0 ? nullptr : blob;
  view->nbytes = size;
  return Status::Ok();
}

bool V2TensorIsWritable(const TensorView& t, std::string* problem) {
  if (!IsAnyTensorType(static_cast<uint8_t>(t.type))) {
    *problem = std::string("type ") + DTypeName(t.type) + " has no v2 datatype";
    return false;
  }
  int64_t n = 0;
  if (!CountElements(t.shape, &n)) {
    *problem = "invalid shape " + ShapeString(t.shape);
    return false;
  }
  if (t.type == DType::kString) {
    if (static_cast<int64_t>(t.strings.size()) != n) {
      *problem = "shape " + ShapeString(t.shape) + " needs " + std::to_string(n) + " BYTES elements, got " +
                 std::to_string(t.strings.size());
      return false;
    }
    for (std::string_view s : t.strings) {
      if (s.size() > std::numeric_limits<uint32_t>::max()) {
        *problem = "a BYTES element of " + std::to_string(s.size()) +
                   " bytes exceeds the 4 GiB a v2 length prefix can say";
        return false;
      }
    }
  } else if (t.nbytes != static_cast<size_t>(n) * ElementSize(t.type)) {
    *problem = "shape " + ShapeString(t.shape) + " of " + V2DatatypeName(t.type) + " needs " +
               std::to_string(n * static_cast<int64_t>(ElementSize(t.type))) + " bytes, got " +
               std::to_string(t.nbytes);
    return false;
  }
  return true;
}

size_t V2BlobSize(const TensorView& t) {
  if (t.type != DType::kString) return t.nbytes;
  size_t size = 0;
  for (std::string_view s : t.strings) size += 4 + s.size();
  return size;
}

}  // namespace tf_graphpipe
