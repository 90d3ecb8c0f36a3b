// What every binding does before calling a kernel: check the arrays and the parameters, and
// raise a Python exception that names the argument, the expected and the actual value.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <sstream>
#include <string>
#include <vector>

namespace fastnn::bindings {

namespace py = pybind11;
using Shape = std::vector<int64_t>;

inline std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

template <class... Parts>
[[noreturn]] void value_error(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  throw py::value_error(out.str());
}

template <class... Parts>
[[noreturn]] void type_error(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  throw py::type_error(out.str());
}

inline Shape shape_of(const py::array& a) { return Shape(a.shape(), a.shape() + a.ndim()); }

// Checks that `a` is a C-contiguous, aligned array of dtype T with a rank in `ranks`
// (`layout` describes the expected dims, e.g. "(N, C, H, W)"), and returns its shape.
template <class T>
Shape check_array(const py::array& a, const char* op, const char* name, std::initializer_list<int> ranks,
                  const char* layout) {
  if (!a.dtype().is(py::dtype::of<T>()))
    type_error(op, ": ", name, " must be ", py::str(py::dtype::of<T>()).cast<std::string>(), ", got ",
               py::str(a.dtype()).cast<std::string>());
  bool rank_ok = false;
  for (int r : ranks) rank_ok |= a.ndim() == r;
  if (!rank_ok) value_error(op, ": ", name, " must have shape ", layout, ", got shape ", shape_str(shape_of(a)));
  const int required = py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if ((py::detail::array_proxy(a.ptr())->flags & required) != required)
    value_error(op, ": ", name, " must be C-contiguous and aligned (use fastnn.ops, which copies when needed)");
  return shape_of(a);
}

inline Shape check_float(const py::array& a, const char* op, const char* name, std::initializer_list<int> ranks,
                         const char* layout) {
  return check_array<float>(a, op, name, ranks, layout);
}

inline const float* data_of(const py::array& a) { return static_cast<const float*>(a.data()); }

// A new array for a kernel's output (float32, float64, or int64 for indices). Large ones (>= 1 MiB)
// reuse recently freed buffers of the same size (output_cache.cpp): a fresh buffer that large
// is mmap'd by malloc, and zeroing its pages on first write took ~40% of a ReLU over 64 MB.
template <class T = float>
py::array_t<T> new_array(const Shape& shape);

inline float* data_of(py::array_t<float>& a) { return a.mutable_data(); }

inline void require(bool ok, const char* op, const std::string& message) {
  if (!ok) throw py::value_error(std::string(op) + ": " + message);
}

// Sizes computed from a parameter (padding, dilation) can exceed int64 when it is huge: these
// raise a ValueError naming the parameter instead of overflowing.
inline int64_t add_or_fail(int64_t a, int64_t b, const char* op, const char* parameter) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum))
    value_error(op, ": ", parameter, " is too large (a size computed from it overflows int64)");
  return sum;
}

inline int64_t multiply_or_fail(int64_t a, int64_t b, const char* op, const char* parameter) {
  int64_t product;
  if (__builtin_mul_overflow(a, b, &product))
    value_error(op, ": ", parameter, " is too large (a size computed from it overflows int64)");
  return product;
}

// The number of elements of shape[begin:end]. An input array's count always fits (NumPy checks),
// but an output's shape can multiply dims of zero-size inputs, e.g. (2^40, 0) @ (0, 2^40).
inline int64_t product(const Shape& shape, size_t begin = 0, size_t end = size_t(-1)) {
  int64_t n = 1;
  bool overflow = false;
  for (size_t i = begin; i < shape.size() && i < end; ++i) {
    if (shape[i] == 0) return 0;
    overflow |= __builtin_mul_overflow(n, shape[i], &n);
  }
  if (overflow) value_error("shape ", shape_str(shape), " has more elements than int64 can count");
  return n;
}

}  // namespace fastnn::bindings
