#include "fastnn/gemm.h"

#include <pybind11/stl.h>

#include <tuple>

#include "bindings/common.h"
#ifdef FASTNN_WITH_CUDA
#include "bindings/cuda_arrays.h"
#include "fastnn/cuda/gemm.h"
#endif

namespace fastnn::bindings {
namespace {

struct MatmulShape {
  int64_t batch, M, N, K, b_batch_stride;
  Shape out;
};

constexpr const char* kALayout = "(M, K) or (batch, M, K)";
constexpr const char* kBLayout = "(K, N) or (batch, K, N)";

// The product's sizes from a's and b's shapes, whose ranks check_float or check_cuda_float
// checked (2 or 3): both devices' bindings raise the same errors.
MatmulShape matmul_shape(const Shape& sa, const Shape& sb, const char* op) {
  if (sa.size() == 2 && sb.size() == 3)
    value_error(op, ": b is batched ", shape_str(sb), " but a is not ", shape_str(sa));
  MatmulShape s;
  s.batch = sa.size() == 3 ? sa[0] : 1;
  s.M = sa[sa.size() - 2];
  s.K = sa.back();
  s.N = sb.back();
  const int64_t b_rows = sb[sb.size() - 2];
  if (b_rows != s.K)
    value_error(op, ": a has K=", s.K, " columns but b has ", b_rows, " rows (a ", shape_str(sa), ", b ",
                shape_str(sb), ")");
  if (sb.size() == 3 && sb[0] != s.batch)
    value_error(op, ": b has batch ", sb[0], " but a has batch ", s.batch);
  s.b_batch_stride = sb.size() == 3 ? s.K * s.N : 0;
  s.out = sa.size() == 3 ? Shape{s.batch, s.M, s.N} : Shape{s.M, s.N};
  return s;
}

// a is checked before b (function arguments would be evaluated in no set order).
MatmulShape matmul_shape(const py::array& a, const py::array& b, const char* op) {
  const Shape sa = check_float(a, op, "a", {2, 3}, kALayout);
  return matmul_shape(sa, check_float(b, op, "b", {2, 3}, kBLayout), op);
}

void check_grad_output_shape(const Shape& actual, const Shape& expected, const char* op) {
  if (actual != expected)
    value_error(op, ": grad_output must have shape ", shape_str(expected), ", got ", shape_str(actual));
}

using npy = py::detail::npy_api;

// np.asarray(value), or np.require(value, requirements=flags). An ndarray itself is returned
// without PyArray_FromAny: 0.1-0.3 us less per 4x4 product (1 thread, CPU time, 4 alternations).
py::array as_array(py::handle value, int flags = 0) {
  if (!flags && Py_TYPE(value.ptr()) == npy::get().PyArray_Type_) return py::reinterpret_borrow<py::array>(value);
  const int all_flags = npy::NPY_ARRAY_ENSUREARRAY_ | flags;
  PyObject* array = npy::get().PyArray_FromAny_(value.ptr(), nullptr, 0, 0, all_flags, nullptr);
  if (!array) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(array);
}

// A float32 array (else a TypeError), copied only when its layout needs it: aligned for the
// strided 2-D product, C-contiguous too otherwise. fastnn.ops.matmul did this in Python: ~0.4 us
// of its 2 us on a 4x4 product, where NumPy's whole a @ b takes 1.5.
py::array float32_operand(const py::array& array, const char* op, const char* name, bool strided) {
  if (!array.dtype().is(py::dtype::of<float>()))
    type_error(op, ": ", name, " must be float32, got ", py::str(array.dtype()).cast<std::string>(),
               " (convert with .astype(np.float32))");
  const int required = npy::NPY_ARRAY_ALIGNED_ | (strided ? 0 : npy::NPY_ARRAY_C_CONTIGUOUS_);
  if ((py::detail::array_proxy(array.ptr())->flags & required) == required) return array;
  return as_array(array, required);
}

// 2-D operands go to the kernel as strided views (a transpose is packed, not copied).
std::pair<py::array, py::array> matmul_operands(py::handle a, py::handle b, const char* op) {
  const py::array a_array = as_array(a), b_array = as_array(b);
  const bool strided = a_array.ndim() == 2 && b_array.ndim() == 2;
  return {float32_operand(a_array, op, "a", strided), float32_operand(b_array, op, "b", strided)};
}

// Element strides (row, column) of a matrix from float32_operand: float32 and aligned, so its byte
// strides divide by 4.
std::pair<int64_t, int64_t> element_strides(const py::array& a) {
  return {a.strides(0) / int64_t(sizeof(float)), a.strides(1) / int64_t(sizeof(float))};
}

// 2-D products read their operands through strides: a transposed or sliced view costs no copy.
py::array matmul_2d(const py::array& a, const py::array& b) {
  auto [a_rs, a_cs] = element_strides(a);
  auto [b_rs, b_cs] = element_strides(b);
  const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  if (b.shape(0) != K)
    value_error("matmul: a has K=", K, " columns but b has ", b.shape(0), " rows (a ", shape_str(shape_of(a)),
                ", b ", shape_str(shape_of(b)), ")");
  auto c = new_array({M, N});
  float* out = data_of(c);
  {
    py::gil_scoped_release release;
    cpu::gemm(M, N, K, 1.0f, data_of(a), a_rs, a_cs, data_of(b), b_rs, b_cs, 0.0f, out, N);
  }
  return c;
}

py::tuple matmul_2d_backward(const py::array& grad_c, const py::array& a, const py::array& b) {
  auto [a_rs, a_cs] = element_strides(a);
  auto [b_rs, b_cs] = element_strides(b);
  const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
  if (b.shape(0) != K) value_error("matmul_backward: a has K=", K, " columns but b has ", b.shape(0), " rows");
  check_grad_output_shape(check_float(grad_c, "matmul_backward", "grad_output", {2}, "(M, N)"), {M, N},
                          "matmul_backward");
  auto grad_a = new_array({M, K});
  auto grad_b = new_array({K, N});
  float *ga = data_of(grad_a), *gb = data_of(grad_b);
  {
    py::gil_scoped_release release;
    cpu::gemm(M, K, N, 1.0f, data_of(grad_c), N, 1, data_of(b), b_cs, b_rs, 0.0f, ga, K);
    cpu::gemm(K, N, M, 1.0f, data_of(a), a_cs, a_rs, data_of(grad_c), N, 1, 0.0f, gb, N);
  }
  return py::make_tuple(grad_a, grad_b);
}

py::array matmul(py::handle a_value, py::handle b_value) {
  const auto [a, b] = matmul_operands(a_value, b_value, "matmul");
  if (a.ndim() == 2 && b.ndim() == 2) return matmul_2d(a, b);
  MatmulShape s = matmul_shape(a, b, "matmul");
  auto c = new_array(s.out);
  float* out = data_of(c);
  {
    py::gil_scoped_release release;
    cpu::matmul(s.batch, s.M, s.N, s.K, data_of(a), data_of(b), s.b_batch_stride, out);
  }
  return c;
}

py::tuple matmul_backward(py::handle grad_c_value, py::handle a_value, py::handle b_value) {
  const py::array grad_c = float32_operand(as_array(grad_c_value), "matmul_backward", "grad_output", false);
  const auto [a, b] = matmul_operands(a_value, b_value, "matmul_backward");
  if (a.ndim() == 2 && b.ndim() == 2) return matmul_2d_backward(grad_c, a, b);
  MatmulShape s = matmul_shape(a, b, "matmul_backward");
  check_grad_output_shape(check_float(grad_c, "matmul_backward", "grad_output", {2, 3}, shape_str(s.out).c_str()),
                          s.out, "matmul_backward");
  auto grad_a = new_array(shape_of(a));
  auto grad_b = new_array(shape_of(b));
  float *ga = data_of(grad_a), *gb = data_of(grad_b);
  {
    py::gil_scoped_release release;
    cpu::matmul_backward(s.batch, s.M, s.N, s.K, data_of(grad_c), data_of(a), data_of(b), s.b_batch_stride, ga, gb);
  }
  return py::make_tuple(grad_a, grad_b);
}

struct LinearShape {
  int64_t M, in, out;
};

constexpr const char* kInputLayout = "(M, in_features)";
constexpr const char* kWeightLayout = "(out_features, in_features)";
constexpr const char* kBiasLayout = "(out_features,)";
constexpr const char* kGradOutputLayout = "(M, out_features)";

// As matmul_shape: the sizes from shapes of checked ranks, the same errors on both devices.
LinearShape linear_shape(const Shape& sx, const Shape& sw, const char* op) {
  if (sw[1] != sx[1])
    value_error(op, ": weight has in_features=", sw[1], " but input has ", sx[1], " features (input ",
                shape_str(sx), ", weight ", shape_str(sw), ")");
  return {sx[0], sx[1], sw[0]};
}

LinearShape linear_shape(const py::array& x, const py::array& w, const char* op) {
  const Shape sx = check_float(x, op, "input", {2}, kInputLayout);
  return linear_shape(sx, check_float(w, op, "weight", {2}, kWeightLayout), op);
}

void check_bias_shape(const Shape& sb, const LinearShape& s) {
  if (sb[0] != s.out) value_error("linear: bias must have shape (", s.out, ",), got ", shape_str(sb));
}

py::array linear(const py::array& x, const py::array& w, const py::object& bias) {
  LinearShape s = linear_shape(x, w, "linear");
  const float* bias_data = nullptr;
  py::object bias_array;  // outlives the kernel call: a converted bias has no other owner
  if (!bias.is_none()) {
    py::array b = bias.cast<py::array>();
    bias_array = b;
    check_bias_shape(check_float(b, "linear", "bias", {1}, kBiasLayout), s);
    bias_data = data_of(b);
  }
  auto y = new_array({s.M, s.out});
  float* out = data_of(y);
  {
    py::gil_scoped_release release;
    cpu::linear(s.M, s.in, s.out, data_of(x), data_of(w), bias_data, out);
  }
  return y;
}

py::tuple linear_backward(const py::array& grad_y, const py::array& x, const py::array& w, bool has_bias) {
  LinearShape s = linear_shape(x, w, "linear_backward");
  check_grad_output_shape(check_float(grad_y, "linear_backward", "grad_output", {2}, kGradOutputLayout),
                          {s.M, s.out}, "linear_backward");
  auto grad_x = new_array({s.M, s.in});
  auto grad_w = new_array({s.out, s.in});
  py::object grad_bias = py::none();
  float* gb = nullptr;
  if (has_bias) {
    auto b = new_array({s.out});
    gb = data_of(b);
    grad_bias = b;
  }
  float *gx = data_of(grad_x), *gw = data_of(grad_w);
  {
    py::gil_scoped_release release;
    cpu::linear_backward(s.M, s.in, s.out, data_of(grad_y), data_of(x), data_of(w), gx, gw, gb);
  }
  return py::make_tuple(grad_x, grad_w, grad_bias);
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"));
  m.def("matmul_backward", &matmul_backward, py::arg("grad_output"), py::arg("a"), py::arg("b"));
  m.def("linear", &linear, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none());
  m.def("linear_backward", &linear_backward, py::arg("grad_output"), py::arg("input"), py::arg("weight"),
        py::arg("has_bias"));
}

#ifdef FASTNN_WITH_CUDA
namespace {

// The CUDA twins of the functions above, on C-contiguous CuPy arrays (fastnn.ops makes them so):
// the same shapes, 2-D, batched and (batch, M, K) @ (K, N), and the same shape errors.
struct CudaOperands {
  CudaArray<float> a, b;
  MatmulShape s;
};

CudaOperands cuda_matmul_operands(const py::object& a, const py::object& b, const char* op) {
  const CudaArray<float> a_array = check_cuda_float(a, op, "a", {2, 3}, kALayout);
  const CudaArray<float> b_array = check_cuda_float(b, op, "b", {2, 3}, kBLayout);
  return {a_array, b_array, matmul_shape(a_array.shape, b_array.shape, op)};
}

py::object matmul_cuda(const py::object& a_value, const py::object& b_value) {
  const auto [a, b, s] = cuda_matmul_operands(a_value, b_value, "matmul");
  auto [c, out] = new_cuda_array<float>(s.out);
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::matmul(s.batch, s.M, s.N, s.K, a.data, b.data, s.b_batch_stride, out, stream);
  }
  return c;
}

py::tuple matmul_backward_cuda(const py::object& grad_c_value, const py::object& a_value, const py::object& b_value) {
  const auto [a, b, s] = cuda_matmul_operands(a_value, b_value, "matmul_backward");
  const CudaArray<float> grad_c =
      check_cuda_float(grad_c_value, "matmul_backward", "grad_output", {2, 3}, shape_str(s.out).c_str());
  check_grad_output_shape(grad_c.shape, s.out, "matmul_backward");
  auto [grad_a, ga] = new_cuda_array<float>(a.shape);
  auto [grad_b, gb] = new_cuda_array<float>(b.shape);
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::matmul_backward(s.batch, s.M, s.N, s.K, grad_c.data, a.data, b.data, s.b_batch_stride, ga, gb, stream);
  }
  return py::make_tuple(grad_a, grad_b);
}

struct CudaLinearOperands {
  const float *x, *w;
  LinearShape s;
};

CudaLinearOperands cuda_linear_operands(const py::object& x, const py::object& w, const char* op) {
  const CudaArray<float> x_array = check_cuda_float(x, op, "input", {2}, kInputLayout);
  const CudaArray<float> w_array = check_cuda_float(w, op, "weight", {2}, kWeightLayout);
  return {x_array.data, w_array.data, linear_shape(x_array.shape, w_array.shape, op)};
}

py::object linear_cuda(const py::object& x_value, const py::object& w_value, const py::object& bias) {
  const auto [x, w, s] = cuda_linear_operands(x_value, w_value, "linear");
  const float* bias_data = nullptr;
  if (!bias.is_none()) {
    const CudaArray<float> b = check_cuda_float(bias, "linear", "bias", {1}, kBiasLayout);
    check_bias_shape(b.shape, s);
    bias_data = b.data;
  }
  auto [y, out] = new_cuda_array<float>({s.M, s.out});
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::linear(s.M, s.in, s.out, x, w, bias_data, out, stream);
  }
  return y;
}

py::tuple linear_backward_cuda(const py::object& grad_y_value, const py::object& x_value, const py::object& w_value,
                               bool has_bias) {
  const auto [x, w, s] = cuda_linear_operands(x_value, w_value, "linear_backward");
  const CudaArray<float> grad_y =
      check_cuda_float(grad_y_value, "linear_backward", "grad_output", {2}, kGradOutputLayout);
  check_grad_output_shape(grad_y.shape, {s.M, s.out}, "linear_backward");
  auto [grad_x, gx] = new_cuda_array<float>({s.M, s.in});
  auto [grad_w, gw] = new_cuda_array<float>({s.out, s.in});
  py::object grad_bias = py::none();
  float* gb = nullptr;
  if (has_bias) std::tie(grad_bias, gb) = new_cuda_array<float>({s.out});
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::linear_backward(s.M, s.in, s.out, grad_y.data, x, w, gx, gw, gb, stream);
  }
  return py::make_tuple(grad_x, grad_w, grad_bias);
}

// Raises a ValueError unless every element of a batch x rows x cols operand read through these
// (non-negative) element strides lies inside `buffer`.
void check_extent(const CudaArray<float>& buffer, const char* name, int64_t batch, int64_t rows, int64_t cols,
                  int64_t batch_stride, int64_t row_stride, int64_t col_stride) {
  if (batch_stride < 0 || row_stride < 0 || col_stride < 0)
    value_error("_gemm: ", name, "'s strides must be >= 0, got (", batch_stride, ", ", row_stride, ", ", col_stride,
                ")");
  if (batch <= 0 || rows <= 0 || cols <= 0) return;  // no element is read
  const int64_t last = (batch - 1) * batch_stride + (rows - 1) * row_stride + (cols - 1) * col_stride;
  if (last >= buffer.shape[0])
    value_error("_gemm: ", name, "'s last element is at ", last, " but it holds ", buffer.shape[0], " floats");
}

// cuda::gemm itself on flat float32 buffers, for tests of what matmul and linear never pass it:
// alpha, beta, arbitrary strides, NaN in C with beta == 0. Strides are (batch, row, col) in
// elements; C's column stride is 1.
void gemm_cuda(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const py::object& a_value,
               const std::tuple<int64_t, int64_t, int64_t>& a_strides, const py::object& b_value,
               const std::tuple<int64_t, int64_t, int64_t>& b_strides, float beta, const py::object& c_value,
               const std::tuple<int64_t, int64_t>& c_strides) {
  const CudaArray<float> a = check_cuda_float(a_value, "_gemm", "a", {1}, "(size,)");
  const CudaArray<float> b = check_cuda_float(b_value, "_gemm", "b", {1}, "(size,)");
  const CudaArray<float> c = check_cuda_float(c_value, "_gemm", "c", {1}, "(size,)");
  const auto [a_bs, a_rs, a_cs] = a_strides;
  const auto [b_bs, b_rs, b_cs] = b_strides;
  const auto [c_bs, ldc] = c_strides;
  check_extent(a, "a", batch, M, K, a_bs, a_rs, a_cs);
  check_extent(b, "b", batch, K, N, b_bs, b_rs, b_cs);
  check_extent(c, "c", batch, M, N, c_bs, ldc, 1);
  const cudaStream_t stream = current_stream();
  py::gil_scoped_release release;
  cuda::gemm(batch, M, N, K, alpha, a.data, a_bs, a_rs, a_cs, b.data, b_bs, b_rs, b_cs, beta, c.data, c_bs, ldc,
             stream);
}

}  // namespace

void bind_gemm_cuda(py::module_& m) {
  m.def("_gemm", &gemm_cuda, py::arg("batch"), py::arg("M"), py::arg("N"), py::arg("K"), py::arg("alpha"), py::arg("a"),
        py::arg("a_strides"), py::arg("b"), py::arg("b_strides"), py::arg("beta"), py::arg("c"), py::arg("c_strides"));
  m.def("matmul", &matmul_cuda, py::arg("a"), py::arg("b"));
  m.def("matmul_backward", &matmul_backward_cuda, py::arg("grad_output"), py::arg("a"), py::arg("b"));
  m.def("linear", &linear_cuda, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none());
  m.def("linear_backward", &linear_backward_cuda, py::arg("grad_output"), py::arg("input"), py::arg("weight"),
        py::arg("has_bias"));
}
#endif

}  // namespace fastnn::bindings
