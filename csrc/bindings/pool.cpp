#include "fastnn/pool.h"

#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <tuple>

#include "bindings/common.h"
#ifdef FASTNN_WITH_CUDA
#include "bindings/cuda_arrays.h"
#include "fastnn/cuda/pool.h"
#endif

namespace fastnn::bindings {
namespace {

// (height, width) of kernel_size, stride, padding or dilation. int, as torch takes them: the
// sizes derived from them cannot overflow int64.
using Pair = std::array<int, 2>;

std::string pair_str(const Pair& p) { return shape_str({p[0], p[1]}); }

void check_at_least(const char* op, const char* name, const Pair& value, int least) {
  if (value[0] < least || value[1] < least)
    value_error(op, ": ", name, " must be >= ", least, ", got ", pair_str(value));
}

// torch's output size along one axis. With ceil_mode a partial last window counts, unless it
// would start past the left padding and the input, i.e. wholly in the right padding.
int64_t pooled_size(int64_t in_size, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode) {
  const int64_t span = in_size + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  if (span < 0) return 0;  // the window is larger than the padded input
  int64_t out = span / stride + 1;
  if (ceil_mode && (out - 1) * stride >= in_size + pad) --out;
  return out;
}

constexpr const char* kInputLayout = "(N, C, H, W) or (C, H, W)";
constexpr const char* kSavedLayout = "(N, C, H_out, W_out)";

struct PoolShape {
  cpu::Pool2dShape s;
  Shape out;  // the input's leading dims, then (out_h, out_w)
};

Shape check_input(const py::array& input, const char* op) {
  return check_float(input, op, "input", {3, 4}, kInputLayout);
}

// The pooling of an input of shape `in`, checked alike for host and CUDA arrays.
PoolShape pool_shape(const Shape& in, const char* op, const Pair& kernel, const Pair& stride, const Pair& padding,
                     const Pair& dilation, bool ceil_mode) {
  check_at_least(op, "kernel_size", kernel, 1);
  check_at_least(op, "stride", stride, 1);
  check_at_least(op, "padding", padding, 0);
  check_at_least(op, "dilation", dilation, 1);
  if (padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2)
    value_error(op, ": padding must be at most half of kernel_size, got padding ", pair_str(padding),
                " for kernel_size ", pair_str(kernel));
  const int64_t in_h = in[in.size() - 2], in_w = in.back();
  if (in_h < 1 || in_w < 1)
    value_error(op, ": input must have a non-empty H x W plane, got shape ", shape_str(in));
  PoolShape p;
  p.s.planes = product(in, 0, in.size() - 2);
  p.s.in_h = in_h;
  p.s.in_w = in_w;
  p.s.out_h = pooled_size(in_h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode);
  p.s.out_w = pooled_size(in_w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode);
  if (p.s.out_h < 1 || p.s.out_w < 1)
    value_error(op, ": kernel larger than padded input: kernel_size ", pair_str(kernel), " with dilation ",
                pair_str(dilation), " spans ",
                shape_str({int64_t(dilation[0]) * (kernel[0] - 1) + 1, int64_t(dilation[1]) * (kernel[1] - 1) + 1}),
                " but the input plane ", shape_str({in_h, in_w}), " padded by ", pair_str(padding), " is ",
                shape_str({in_h + 2 * int64_t(padding[0]), in_w + 2 * int64_t(padding[1])}));
  p.s.kernel_h = kernel[0];
  p.s.kernel_w = kernel[1];
  p.s.stride_h = stride[0];
  p.s.stride_w = stride[1];
  p.s.pad_h = padding[0];
  p.s.pad_w = padding[1];
  p.s.dilation_h = dilation[0];
  p.s.dilation_w = dilation[1];
  p.out = in;
  p.out[in.size() - 2] = p.s.out_h;
  p.out.back() = p.s.out_w;
  return p;
}

// The max kernel numbers a window's taps in int32 (so its selects vectorize).
PoolShape max_pool_shape(const Shape& in, const char* op, const Pair& kernel, const Pair& stride, const Pair& padding,
                         const Pair& dilation, bool ceil_mode) {
  PoolShape p = pool_shape(in, op, kernel, stride, padding, dilation, ceil_mode);
  if (p.s.kernel_h * p.s.kernel_w > std::numeric_limits<int32_t>::max())
    value_error(op, ": kernel_size ", pair_str(kernel), " has more than 2^31 - 1 taps, the most supported");
  return p;
}

// `what` (grad_output or saved indices) has shape `got` where the output's is `expected`.
void check_output_shape(const char* op, const char* what, const Shape& expected, const Shape& got) {
  if (got != expected)
    value_error(op, ": ", what, " must have the output's shape ", shape_str(expected), ", got ", shape_str(got));
}

void check_grad_output(const py::array& grad_output, const char* op, const Shape& expected) {
  check_output_shape(op, "grad_output", expected,
                     check_float(grad_output, op, "grad_output", {3, 4}, shape_str(expected).c_str()));
}

int64_t check_divisor(const char* op, const std::optional<int>& divisor_override) {
  if (divisor_override && *divisor_override == 0) value_error(op, ": divisor_override must be non-zero, got 0");
  return divisor_override.value_or(0);
}

py::object max_pool2d(const py::array& input, const Pair& kernel_size, const Pair& stride, const Pair& padding,
                      const Pair& dilation, bool ceil_mode, bool return_indices, bool relu) {
  const char* op = "max_pool2d";
  const PoolShape p = max_pool_shape(check_input(input, op), op, kernel_size, stride, padding, dilation, ceil_mode);
  auto output = new_array(p.out);
  float* out = data_of(output);
  py::object indices = py::none();
  int64_t* indices_data = nullptr;
  if (return_indices) {
    auto a = new_array<int64_t>(p.out);
    indices_data = a.mutable_data();
    indices = a;
  }
  {
    py::gil_scoped_release release;
    cpu::max_pool2d(p.s, data_of(input), out, indices_data, relu);
  }
  if (return_indices) return py::make_tuple(output, indices);
  return output;
}

[[noreturn]] void bad_saved_index(const char* op, int64_t index, int64_t position, const cpu::Pool2dShape& s) {
  value_error(op, ": saved index ", index, " at flat position ", position, " is out of range for a ", s.in_h, "x",
              s.in_w, " input plane (expected -1 <= index < ", s.in_h * s.in_w, ")");
}

py::tuple max_pool2d_backward(const py::array& grad_output, const py::array& input, const Pair& kernel_size,
                              const Pair& stride, const Pair& padding, const Pair& dilation, bool ceil_mode,
                              const py::object& saved, bool relu) {
  const char* op = "max_pool2d_backward";
  const PoolShape p = max_pool_shape(check_input(input, op), op, kernel_size, stride, padding, dilation, ceil_mode);
  check_grad_output(grad_output, op, p.out);
  py::array saved_indices;  // keeps a converted `saved` alive through the kernel call
  const int64_t* indices = nullptr;
  if (!saved.is_none()) {
    saved_indices = saved.cast<py::array>();
    const Shape si = check_array<int64_t>(saved_indices, op, "saved", {3, 4}, kSavedLayout);
    check_output_shape(op, "saved indices", p.out, si);
    indices = static_cast<const int64_t*>(saved_indices.data());
    // The kernel scatters through these offsets: one out of range would write outside grad_input.
    // The scan runs without the GIL: a layer's indices are millions of entries.
    const int64_t plane = p.s.in_h * p.s.in_w, count = product(si);
    const int64_t* bad;
    {
      py::gil_scoped_release release;
      bad = std::find_if(indices, indices + count, [=](int64_t at) { return at < -1 || at >= plane; });
    }
    if (bad != indices + count) bad_saved_index(op, *bad, bad - indices, p.s);
  }
  auto grad_input = new_array(shape_of(input));
  float* grad = data_of(grad_input);
  {
    py::gil_scoped_release release;
    cpu::max_pool2d_backward(p.s, data_of(grad_output), data_of(input), indices, grad, relu);
  }
  return py::make_tuple(grad_input);
}

py::array avg_pool2d(const py::array& input, const Pair& kernel_size, const Pair& stride, const Pair& padding,
                     bool ceil_mode, bool count_include_pad, const std::optional<int>& divisor_override) {
  const char* op = "avg_pool2d";
  const PoolShape p = pool_shape(check_input(input, op), op, kernel_size, stride, padding, {1, 1}, ceil_mode);
  const int64_t divisor = check_divisor(op, divisor_override);
  auto output = new_array(p.out);
  float* out = data_of(output);
  {
    py::gil_scoped_release release;
    cpu::avg_pool2d(p.s, count_include_pad, divisor, data_of(input), out);
  }
  return output;
}

py::tuple avg_pool2d_backward(const py::array& grad_output, const py::array& input, const Pair& kernel_size,
                              const Pair& stride, const Pair& padding, bool ceil_mode, bool count_include_pad,
                              const std::optional<int>& divisor_override) {
  const char* op = "avg_pool2d_backward";
  const PoolShape p = pool_shape(check_input(input, op), op, kernel_size, stride, padding, {1, 1}, ceil_mode);
  const int64_t divisor = check_divisor(op, divisor_override);
  check_grad_output(grad_output, op, p.out);
  auto grad_input = new_array(shape_of(input));
  float* grad = data_of(grad_input);
  {
    py::gil_scoped_release release;
    cpu::avg_pool2d_backward(p.s, count_include_pad, divisor, data_of(grad_output), grad);
  }
  return py::make_tuple(grad_input);
}

#ifdef FASTNN_WITH_CUDA
// The same ops on CuPy arrays: the checks above, outputs in CuPy's pool, launches on its current
// stream. An array that passes its checks here is in the current GPU's memory.
CudaArray<float> check_cuda_input(const py::object& input, const char* op) {
  return check_cuda_float(input, op, "input", {3, 4}, kInputLayout);
}

const float* check_cuda_grad_output(const py::object& grad_output, const char* op, const Shape& expected) {
  const CudaArray<float> grad =
      check_cuda_float(grad_output, op, "grad_output", {3, 4}, shape_str(expected).c_str());
  check_output_shape(op, "grad_output", expected, grad.shape);
  return grad.data;
}

py::object max_pool2d_cuda(const py::object& input, const Pair& kernel_size, const Pair& stride,
                           const Pair& padding, const Pair& dilation, bool ceil_mode, bool return_indices, bool relu) {
  const char* op = "max_pool2d";
  const CudaArray<float> in = check_cuda_input(input, op);
  const PoolShape p = max_pool_shape(in.shape, op, kernel_size, stride, padding, dilation, ceil_mode);
  auto [output, out] = new_cuda_array<float>(p.out);
  py::object indices = py::none();
  int64_t* indices_data = nullptr;
  if (return_indices) std::tie(indices, indices_data) = new_cuda_array<int64_t>(p.out);
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::max_pool2d(p.s, in.data, out, indices_data, relu, stream);
  }
  if (return_indices) return py::make_tuple(output, indices);
  return output;
}

py::tuple max_pool2d_backward_cuda(const py::object& grad_output, const py::object& input, const Pair& kernel_size,
                                   const Pair& stride, const Pair& padding, const Pair& dilation, bool ceil_mode,
                                   const py::object& saved, bool relu) {
  const char* op = "max_pool2d_backward";
  const CudaArray<float> in = check_cuda_input(input, op);
  const PoolShape p = max_pool_shape(in.shape, op, kernel_size, stride, padding, dilation, ceil_mode);
  const float* grad = check_cuda_grad_output(grad_output, op, p.out);
  const int64_t* indices = nullptr;
  if (!saved.is_none()) {
    const CudaArray<int64_t> si = check_cuda_array<int64_t>(saved, op, "saved", {3, 4}, kSavedLayout);
    check_output_shape(op, "saved indices", p.out, si.shape);
    indices = si.data;
    // The kernel skips an index out of range, where the CPU raises: the same error here. CuPy runs
    // the range test on the GPU; reading back its first hit is one sync per backward with indices.
    const py::object flat = saved.attr("ravel")();
    const py::object out_of_range =
        flat.attr("__lt__")(-1).attr("__or__")(flat.attr("__ge__")(p.s.in_h * p.s.in_w));
    const py::object positions = py::module_::import("cupy").attr("flatnonzero")(out_of_range);
    if (py::len(positions) > 0) {
      const int64_t position = py::int_(positions.attr("__getitem__")(0)).cast<int64_t>();
      bad_saved_index(op, py::int_(flat.attr("__getitem__")(position)).cast<int64_t>(), position, p.s);
    }
  }
  auto [grad_input, grad_in] = new_cuda_array<float>(in.shape);
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::max_pool2d_backward(p.s, grad, in.data, indices, grad_in, relu, stream);
  }
  return py::make_tuple(grad_input);
}

py::object avg_pool2d_cuda(const py::object& input, const Pair& kernel_size, const Pair& stride,
                           const Pair& padding, bool ceil_mode, bool count_include_pad,
                           const std::optional<int>& divisor_override) {
  const char* op = "avg_pool2d";
  const CudaArray<float> in = check_cuda_input(input, op);
  const PoolShape p = pool_shape(in.shape, op, kernel_size, stride, padding, {1, 1}, ceil_mode);
  const int64_t divisor = check_divisor(op, divisor_override);
  auto [output, out] = new_cuda_array<float>(p.out);
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::avg_pool2d(p.s, count_include_pad, divisor, in.data, out, stream);
  }
  return output;
}

py::tuple avg_pool2d_backward_cuda(const py::object& grad_output, const py::object& input, const Pair& kernel_size,
                                   const Pair& stride, const Pair& padding, bool ceil_mode, bool count_include_pad,
                                   const std::optional<int>& divisor_override) {
  const char* op = "avg_pool2d_backward";
  const CudaArray<float> in = check_cuda_input(input, op);
  const PoolShape p = pool_shape(in.shape, op, kernel_size, stride, padding, {1, 1}, ceil_mode);
  const int64_t divisor = check_divisor(op, divisor_override);
  const float* grad = check_cuda_grad_output(grad_output, op, p.out);
  auto [grad_input, grad_in] = new_cuda_array<float>(in.shape);
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::avg_pool2d_backward(p.s, count_include_pad, divisor, grad, grad_in, stream);
  }
  return py::make_tuple(grad_input);
}
#endif

// Defines one device's ops, so that both take the same names, arguments and defaults.
template <class MaxPool, class MaxPoolBackward, class AvgPool, class AvgPoolBackward>
void define_ops(py::module_& m, MaxPool max_pool, MaxPoolBackward max_pool_backward, AvgPool avg_pool,
                AvgPoolBackward avg_pool_backward) {
  m.def("max_pool2d", max_pool, py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("ceil_mode"), py::arg("return_indices"), py::arg("relu") = false);
  m.def("max_pool2d_backward", max_pool_backward, py::arg("grad_output"), py::arg("input"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"),
        py::arg("saved") = py::none(), py::arg("relu") = false);
  m.def("avg_pool2d", avg_pool, py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override") = py::none());
  m.def("avg_pool2d_backward", avg_pool_backward, py::arg("grad_output"), py::arg("input"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"),
        py::arg("divisor_override") = py::none());
}

}  // namespace

void bind_pool(py::module_& m) { define_ops(m, &max_pool2d, &max_pool2d_backward, &avg_pool2d, &avg_pool2d_backward); }

#ifdef FASTNN_WITH_CUDA
void bind_pool_cuda(py::module_& m) {
  define_ops(m, &max_pool2d_cuda, &max_pool2d_backward_cuda, &avg_pool2d_cuda, &avg_pool2d_backward_cuda);
}
#endif

}  // namespace fastnn::bindings
