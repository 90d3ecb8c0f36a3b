// What a CUDA binding does before a launch: read each array argument through its
// __cuda_array_interface__ (CuPy arrays; fastnn.ops turns torch and DLPack arrays into CuPy
// ones first), check it as common.h checks host arrays, and allocate outputs as CuPy arrays so
// that they live in CuPy's memory pool. Kernels launch on CuPy's current stream.
#pragma once
#include <cuda_runtime_api.h>
#include <pybind11/stl.h>  // the interface's shape and strides are cast to Shape

#include <cstdint>
#include <string>
#include <utility>

#include "bindings/common.h"
#include "cuda_runtime_info.h"

namespace fastnn::bindings {

template <class T>
struct CudaArray {
  Shape shape;
  T* data;
};

template <class T>
const char* cuda_typestr();
template <>
inline const char* cuda_typestr<float>() { return "<f4"; }
template <>
inline const char* cuda_typestr<double>() { return "<f8"; }
template <>
inline const char* cuda_typestr<int64_t>() { return "<i8"; }

inline std::string type_name(py::handle value) {
  return py::str(py::type::handle_of(value).attr("__module__")).cast<std::string>() + "." +
         py::type::handle_of(value).attr("__name__").cast<std::string>();
}

// A CUDA array argument's rank and typestr before it is checked, for ops that take any rank
// (pass {cuda_rank(a)} to check_cuda_array) or pick the kernel's dtype from the array: 0 and ""
// for anything else, which check_cuda_array then rejects as not a CUDA array.
inline int cuda_rank(py::handle a) {
  return py::hasattr(a, "__cuda_array_interface__") ? int(py::len(a.attr("__cuda_array_interface__")["shape"])) : 0;
}

inline std::string cuda_typestr_of(py::handle a) {
  return py::hasattr(a, "__cuda_array_interface__")
             ? a.attr("__cuda_array_interface__")["typestr"].cast<std::string>()
             : std::string();
}

inline bool c_contiguous(const Shape& shape, const py::handle strides, int64_t item_size) {
  if (strides.is_none()) return true;
  const Shape bytes = strides.cast<Shape>();
  if (bytes.size() != shape.size()) return false;
  int64_t expected = item_size;
  bool contiguous = true;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 0) return true;  // no element to address
    contiguous &= shape[i] == 1 || bytes[i] == expected;
    expected *= shape[i];
  }
  return contiguous;
}

// Checks that `a` is a C-contiguous array of dtype T in the current device's memory with a rank
// in `ranks` (`layout` as in check_array), and returns its shape and data. The memory check
// asks the CUDA runtime, so with no driver it raises RuntimeError with the CUDA error text.
template <class T>
CudaArray<T> check_cuda_array(py::handle a, const char* op, const char* name, std::initializer_list<int> ranks,
                              const char* layout) {
  if (!py::hasattr(a, "__cuda_array_interface__"))
    type_error(op, ": ", name, " must be a CUDA array (CuPy, or a torch tensor on the GPU) like the op's first "
               "array, got ", type_name(a));
  const py::dict interface = a.attr("__cuda_array_interface__");
  const std::string typestr = interface["typestr"].cast<std::string>();
  if (typestr != cuda_typestr<T>())
    type_error(op, ": ", name, " must be ", py::str(py::dtype(cuda_typestr<T>())).cast<std::string>(), ", got ",
               py::str(py::dtype(typestr)).cast<std::string>());
  const Shape shape = interface["shape"].cast<Shape>();
  bool rank_ok = false;
  for (int r : ranks) rank_ok |= int(shape.size()) == r;
  if (!rank_ok) value_error(op, ": ", name, " must have shape ", layout, ", got shape ", shape_str(shape));
  const py::object strides = interface.contains("strides") ? py::object(interface["strides"]) : py::none();
  if (!c_contiguous(shape, strides, sizeof(T)))
    value_error(op, ": ", name, " must be C-contiguous (use fastnn.ops, which copies when needed)");
  const auto address = interface["data"].cast<py::tuple>()[0].cast<uintptr_t>();
  if (address % alignof(T) != 0)
    value_error(op, ": ", name, " must be aligned to ", alignof(T), " bytes, got address ", address);
  if (address != 0 && product(shape) > 0) {
    const int device = cuda::memory_device(reinterpret_cast<const void*>(address));
    const int current = cuda::current_device();
    if (device < 0) value_error(op, ": ", name, " is in host memory, not on the GPU (cuda:", current, ")");
    if (device != current)
      value_error(op, ": ", name, " is on cuda:", device, " but the current device is cuda:", current,
                  " (run the op under `with cupy.cuda.Device(", device, "):`)");
  }
  return {shape, reinterpret_cast<T*>(address)};
}

inline CudaArray<float> check_cuda_float(py::handle a, const char* op, const char* name,
                                         std::initializer_list<int> ranks, const char* layout) {
  return check_cuda_array<float>(a, op, name, ranks, layout);
}

// check_cuda_array for ops that take any shape: the rank check is the array's own.
template <class T = float>
CudaArray<T> check_cuda_any_shape(py::handle a, const char* op, const char* name) {
  return check_cuda_array<T>(a, op, name, {cuda_rank(a)}, "(any shape)");
}

// A new CuPy array of dtype T on the current device, uninitialized (or zeroed), and its data.
template <class T>
std::pair<py::object, T*> new_cuda_array(const Shape& shape, bool zeroed = false) {
  py::object array = py::module_::import("cupy").attr(zeroed ? "zeros" : "empty")(
      py::tuple(py::cast(shape)), py::dtype(cuda_typestr<T>()));
  const auto address = array.attr("data").attr("ptr").cast<uintptr_t>();
  return {array, reinterpret_cast<T*>(address)};
}

// CuPy's current stream on the current device, which every fastnn CUDA kernel launches on.
inline cudaStream_t current_stream() {
  const auto handle = py::module_::import("cupy").attr("cuda").attr("get_current_stream")().attr("ptr");
  return reinterpret_cast<cudaStream_t>(handle.cast<uintptr_t>());
}

}  // namespace fastnn::bindings
