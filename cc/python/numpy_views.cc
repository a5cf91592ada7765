// SPDX-License-Identifier: Apache-2.0
#include "cc/python/numpy_views.h"

#include <cstdint>
#include <cstring>

namespace py = pybind11;

namespace tf_graphpipe {
namespace {

std::vector<py::ssize_t> PyShape(const std::vector<int64_t>& shape) {
  return std::vector<py::ssize_t>(shape.begin(), shape.end());
}

py::dtype NumpyDtype(DType type) {
  // NumPy has no bfloat16 of its own: ml_dtypes' (a TensorFlow dependency).
  if (type == DType::kBfloat16) {
    return py::dtype::from_args(py::module_::import("ml_dtypes").attr("bfloat16"));
  }
  return py::dtype(std::string(DTypeName(type)));
}

}  // namespace

TensorView ViewOfArray(const py::array& array, DType type, const std::string& what) {
  TensorView view;
  view.type = type;
  view.shape.assign(array.shape(), array.shape() + array.ndim());
  if (!(array.flags() & py::array::c_style)) {
    throw py::value_error(what + ": array must be C-contiguous");
  }
  if (type == DType::kString) {
    if (array.dtype().kind() != 'O') {
      throw py::type_error(what + ": string tensors travel as object arrays of bytes, got dtype " +
                           std::string(py::str(array.dtype())));
    }
    const py::ssize_t count = array.size();
    auto* const* items = static_cast<PyObject* const*>(array.data());
    view.strings.reserve(static_cast<size_t>(count));
    for (py::ssize_t i = 0; i < count; ++i) {
      PyObject* item = items[i];
      if (item != nullptr && PyBytes_Check(item)) {
        view.strings.emplace_back(PyBytes_AS_STRING(item),
                                  static_cast<size_t>(PyBytes_GET_SIZE(item)));
      } else if (item != nullptr && PyUnicode_Check(item)) {
        Py_ssize_t size = 0;
        const char* utf8 = PyUnicode_AsUTF8AndSize(item, &size);  // cached by the str
        if (utf8 == nullptr) throw py::error_already_set();
        view.strings.emplace_back(utf8, static_cast<size_t>(size));
      } else {
        const char* got = item == nullptr ? "NULL" : Py_TYPE(item)->tp_name;
        throw py::type_error(what + ": element " + std::to_string(i) + " is " + got +
                             ", expected bytes or str");
      }
    }
    return view;
  }
  const size_t itemsize = ElementSize(type);
  if (static_cast<size_t>(array.itemsize()) != itemsize) {
    throw py::type_error(what + ": wire type " + DTypeName(type) + " needs " +
                         std::to_string(itemsize) + "-byte elements, got dtype " +
                         std::string(py::str(array.dtype())));
  }
  view.data = static_cast<const uint8_t*>(array.data());
  view.nbytes = static_cast<size_t>(array.nbytes());
  return view;
}

ArrayViews ViewsOfArrays(const py::list& arrays, const py::list& wire_types) {
  if (arrays.size() != wire_types.size()) {
    throw py::value_error("got " + std::to_string(arrays.size()) + " arrays but " +
                          std::to_string(wire_types.size()) + " wire types");
  }
  ArrayViews out;
  out.arrays.reserve(arrays.size());
  out.views.reserve(arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    const int raw = wire_types[i].cast<int>();
    if (raw < 1 || raw > kMaxDType) {
      throw py::value_error("tensor " + std::to_string(i) + ": type id " +
                            std::to_string(raw) + " is not 1..14");
    }
    // The conversion (for a non-array item) must outlive the view of it.
    out.arrays.push_back(arrays[i].cast<py::array>());
    out.views.push_back(
        ViewOfArray(out.arrays.back(), static_cast<DType>(raw), "tensor " + std::to_string(i)));
  }
  return out;
}

py::array ArrayOfView(const TensorView& view, py::handle owner, bool writeable) {
  const std::vector<py::ssize_t> shape = PyShape(view.shape);
  if (view.type == DType::kString) {
    py::tuple dims(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) dims[i] = py::int_(shape[i]);
    py::array out = py::module_::import("numpy").attr("empty")(dims, "O");
    auto** slots = static_cast<PyObject**>(out.mutable_data());
    for (size_t i = 0; i < view.strings.size(); ++i) {
      PyObject* bytes = PyBytes_FromStringAndSize(view.strings[i].data(),
                                                  static_cast<Py_ssize_t>(view.strings[i].size()));
      if (bytes == nullptr) throw py::error_already_set();
      Py_XDECREF(slots[i]);
      slots[i] = bytes;
    }
    return out;
  }
  const py::dtype dtype = NumpyDtype(view.type);
  const size_t itemsize = ElementSize(view.type);
  const auto address = reinterpret_cast<uintptr_t>(view.data);
  if (view.nbytes > 0 && address % itemsize == 0) {
    py::array out(dtype, shape, {}, view.data, owner);
    if (!writeable) out.attr("flags").attr("writeable") = false;
    return out;
  }
  // Peers align data to 4 bytes only; 8-byte types may need this one copy.
  py::array out(dtype, shape);
  if (view.nbytes > 0) std::memcpy(out.mutable_data(), view.data, view.nbytes);
  return out;
}

}  // namespace tf_graphpipe
