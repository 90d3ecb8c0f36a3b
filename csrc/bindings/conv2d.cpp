#include "fastnn/conv2d.h"

#include <pybind11/stl.h>

#include <array>
#include <string>

#include "bindings/common.h"

#ifdef FASTNN_WITH_CUDA
#include "bindings/cuda_arrays.h"
#include "fastnn/cuda/conv2d.h"
#endif

namespace fastnn::bindings {
namespace {

using Pair = std::array<int64_t, 2>;

std::string pair_str(const Pair& p) { return shape_str({p[0], p[1]}); }

// Zero rows/columns before the input, and before plus after, per spatial dim.
struct Padding {
  Pair before, total;
};

// padding is a pair of ints or, as in torch, 'valid' (none) or 'same' (output as big as the
// input; an odd total puts the extra zero after the input).
Padding resolve_padding(const py::object& padding, const Pair& kernel, const Pair& stride, const Pair& dilation,
                        const char* op) {
  if (py::isinstance<py::str>(padding)) {
    const std::string mode = padding.cast<std::string>();
    if (mode == "valid") return {{0, 0}, {0, 0}};
    if (mode != "same") value_error(op, ": padding must be 'valid', 'same' or a pair of ints, got '", mode, "'");
    if (stride != Pair{1, 1}) value_error(op, ": padding='same' needs stride 1, got stride ", pair_str(stride));
    Padding p;
    for (int i = 0; i < 2; ++i) {
      p.total[i] = multiply_or_fail(dilation[i], kernel[i] - 1, op, "dilation");
      p.before[i] = p.total[i] / 2;
    }
    return p;
  }
  Pair pad;
  try {
    pad = padding.cast<Pair>();
  } catch (const py::cast_error&) {
    value_error(op, ": padding must be 'valid', 'same' or a pair of ints, got ",
                py::repr(padding).cast<std::string>());
  }
  if (pad[0] < 0 || pad[1] < 0) value_error(op, ": padding must be >= 0, got ", pair_str(pad));
  return {pad, {multiply_or_fail(2, pad[0], op, "padding"), multiply_or_fail(2, pad[1], op, "padding")}};
}

// The layouts the arrays' checks name, on either device.
constexpr const char* kInputLayout = "(N, C_in, H, W)";
constexpr const char* kWeightLayout = "(C_out, C_in / groups, KH, KW)";
constexpr const char* kBiasLayout = "(C_out,)";
constexpr const char* kGradOutputLayout = "(N, C_out, OH, OW)";

// The convolution of an input and a weight of shapes sx and sw (as check_float or
// check_cuda_float returned them, input checked first), checked: both devices' bindings call it.
cpu::Conv2dShape conv2d_shape(const Shape& sx, const Shape& sw, const Pair& stride, const py::object& padding,
                              const Pair& dilation, int64_t groups, const char* op) {
  if (stride[0] < 1 || stride[1] < 1) value_error(op, ": stride must be >= 1, got ", pair_str(stride));
  if (dilation[0] < 1 || dilation[1] < 1) value_error(op, ": dilation must be >= 1, got ", pair_str(dilation));
  if (groups < 1) value_error(op, ": groups must be >= 1, got ", groups);
  if (sx[1] % groups != 0) value_error(op, ": groups=", groups, " must divide the input's ", sx[1], " channels");
  if (sw[0] % groups != 0)
    value_error(op, ": groups=", groups, " must divide weight's ", sw[0], " output channels");
  if (sw[1] * groups != sx[1])
    value_error(op, ": weight has ", sw[1], " input channels per group but input has ", sx[1],
                " channels (groups=", groups, ")");
  if (sw[2] < 1 || sw[3] < 1) value_error(op, ": weight must have a kernel of at least 1x1, got ", sw[2], "x", sw[3]);
  const Pair kernel{sw[2], sw[3]};
  const Padding pad = resolve_padding(padding, kernel, stride, dilation, op);
  Pair out;
  const char* dims[] = {"height", "width"};
  for (int i = 0; i < 2; ++i) {
    const int64_t extent = add_or_fail(multiply_or_fail(dilation[i], kernel[i] - 1, op, "dilation"), 1, op, "dilation");
    const int64_t padded = add_or_fail(sx[2 + i], pad.total[i], op, "padding");
    if (extent > padded)
      value_error(op, ": dilated kernel ", dims[i], " ", extent, " (dilation ", dilation[i], " * (", kernel[i],
                  " - 1) + 1) exceeds padded input ", dims[i], " ", padded, " (", sx[2 + i], " + padding ",
                  pad.total[i], ")");
    out[i] = (padded - extent) / stride[i] + 1;
  }
  cpu::Conv2dShape s;
  s.batch = sx[0], s.in_channels = sx[1], s.in_h = sx[2], s.in_w = sx[3];
  s.out_channels = sw[0], s.kernel_h = sw[2], s.kernel_w = sw[3];
  s.stride_h = stride[0], s.stride_w = stride[1], s.pad_h = pad.before[0], s.pad_w = pad.before[1];
  s.dilation_h = dilation[0], s.dilation_w = dilation[1];
  s.groups = groups;
  s.out_h = out[0], s.out_w = out[1];
  return s;
}

Shape output_shape(const cpu::Conv2dShape& s) { return {s.batch, s.out_channels, s.out_h, s.out_w}; }

void check_bias_shape(const Shape& sb, const cpu::Conv2dShape& s) {
  if (sb[0] != s.out_channels)
    value_error("conv2d: bias must have shape (", s.out_channels, ",), got ", shape_str(sb));
}

void check_grad_output_shape(const Shape& sg, const cpu::Conv2dShape& s, const char* op) {
  if (sg != output_shape(s))
    value_error(op, ": grad_output must have shape ", shape_str(output_shape(s)), " (the output of conv2d), got ",
                shape_str(sg));
}

py::array conv2d(const py::array& input, const py::array& weight, const py::object& bias, const Pair& stride,
                 const py::object& padding, const Pair& dilation, int64_t groups) {
  const char* op = "conv2d";
  const Shape sx = check_float(input, op, "input", {4}, kInputLayout);
  const Shape sw = check_float(weight, op, "weight", {4}, kWeightLayout);
  const cpu::Conv2dShape s = conv2d_shape(sx, sw, stride, padding, dilation, groups, op);
  const float* bias_data = nullptr;
  py::object bias_array;  // outlives the kernel call: a converted bias has no other owner
  if (!bias.is_none()) {
    py::array b = bias.cast<py::array>();
    bias_array = b;
    check_bias_shape(check_float(b, op, "bias", {1}, kBiasLayout), s);
    bias_data = data_of(b);
  }
  auto y = new_array(output_shape(s));
  float* out = data_of(y);
  {
    py::gil_scoped_release release;
    cpu::conv2d(s, data_of(input), data_of(weight), bias_data, out);
  }
  return y;
}

// Gradients skipped (input_grad/weight_grad false, or no bias) are returned as None.
py::tuple conv2d_backward(const py::array& grad_output, const py::array& input, const py::array& weight,
                          bool has_bias, const Pair& stride, const py::object& padding, const Pair& dilation,
                          int64_t groups, bool input_grad, bool weight_grad) {
  const char* op = "conv2d_backward";
  const Shape sx = check_float(input, op, "input", {4}, kInputLayout);
  const Shape sw = check_float(weight, op, "weight", {4}, kWeightLayout);
  const cpu::Conv2dShape s = conv2d_shape(sx, sw, stride, padding, dilation, groups, op);
  check_grad_output_shape(check_float(grad_output, op, "grad_output", {4}, kGradOutputLayout), s, op);
  // An array for each gradient asked for, and its data pointer (null when skipped).
  auto gradient = [](bool wanted, const Shape& shape, float*& data) -> py::object {
    if (!wanted) return py::none();
    auto array = new_array(shape);
    data = data_of(array);
    return std::move(array);
  };
  float *gx = nullptr, *gw = nullptr, *gb = nullptr;
  py::object grad_input = gradient(input_grad, shape_of(input), gx);
  py::object grad_weight = gradient(weight_grad, shape_of(weight), gw);
  py::object grad_bias = gradient(has_bias, {s.out_channels}, gb);
  {
    py::gil_scoped_release release;
    cpu::conv2d_backward(s, data_of(grad_output), data_of(input), data_of(weight), gx, gw, gb);
  }
  return py::make_tuple(grad_input, grad_weight, grad_bias);
}

#ifdef FASTNN_WITH_CUDA
// The same ops on CuPy arrays. The workspace goes back to CuPy's pool on return while the
// kernels may still run: the pool hands a freed block only to later work on the same stream.
py::object conv2d_cuda(const py::object& input, const py::object& weight, const py::object& bias,
                       const Pair& stride, const py::object& padding, const Pair& dilation, int64_t groups) {
  const char* op = "conv2d";
  const CudaArray<float> x = check_cuda_float(input, op, "input", {4}, kInputLayout);
  const CudaArray<float> w = check_cuda_float(weight, op, "weight", {4}, kWeightLayout);
  const cpu::Conv2dShape s = conv2d_shape(x.shape, w.shape, stride, padding, dilation, groups, op);
  const float* bias_data = nullptr;
  if (!bias.is_none()) {
    const CudaArray<float> b = check_cuda_float(bias, op, "bias", {1}, kBiasLayout);
    check_bias_shape(b.shape, s);
    bias_data = b.data;
  }
  auto [y, out] = new_cuda_array<float>(output_shape(s));
  auto [workspace, col] = new_cuda_array<float>({cuda::conv2d_workspace_floats(s)});
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::conv2d(s, x.data, w.data, bias_data, out, col, stream);
  }
  return y;
}

py::tuple conv2d_backward_cuda(const py::object& grad_output, const py::object& input, const py::object& weight,
                               bool has_bias, const Pair& stride, const py::object& padding, const Pair& dilation,
                               int64_t groups, bool input_grad, bool weight_grad) {
  const char* op = "conv2d_backward";
  const CudaArray<float> x = check_cuda_float(input, op, "input", {4}, kInputLayout);
  const CudaArray<float> w = check_cuda_float(weight, op, "weight", {4}, kWeightLayout);
  const cpu::Conv2dShape s = conv2d_shape(x.shape, w.shape, stride, padding, dilation, groups, op);
  const CudaArray<float> g = check_cuda_float(grad_output, op, "grad_output", {4}, kGradOutputLayout);
  check_grad_output_shape(g.shape, s, op);
  // A CuPy array for each gradient asked for, and its data pointer (null when skipped).
  auto gradient = [](bool wanted, const Shape& shape, float*& data) -> py::object {
    if (!wanted) return py::none();
    auto [array, array_data] = new_cuda_array<float>(shape);
    data = array_data;
    return array;
  };
  float *gx = nullptr, *gw = nullptr, *gb = nullptr;
  py::object grad_input = gradient(input_grad, x.shape, gx);
  py::object grad_weight = gradient(weight_grad, w.shape, gw);
  py::object grad_bias = gradient(has_bias, {s.out_channels}, gb);
  auto [workspace, col] =
      new_cuda_array<float>({input_grad || weight_grad ? cuda::conv2d_workspace_floats(s) : 0});
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::conv2d_backward(s, g.data, x.data, w.data, gx, gw, gb, col, stream);
  }
  return py::make_tuple(grad_input, grad_weight, grad_bias);
}
#endif

// The ops' names, argument names and defaults: the same on both devices.
template <class Forward, class Backward>
void define_ops(py::module_& m, Forward forward, Backward backward) {
  m.def("conv2d", forward, py::arg("input"), py::arg("weight"), py::arg("bias") = py::none(),
        py::arg("stride") = Pair{1, 1}, py::arg("padding") = Pair{0, 0}, py::arg("dilation") = Pair{1, 1},
        py::arg("groups") = 1);
  m.def("conv2d_backward", backward, py::arg("grad_output"), py::arg("input"), py::arg("weight"),
        py::arg("has_bias"), py::arg("stride") = Pair{1, 1}, py::arg("padding") = Pair{0, 0},
        py::arg("dilation") = Pair{1, 1}, py::arg("groups") = 1, py::arg("input_grad") = true,
        py::arg("weight_grad") = true);
}

}  // namespace

void bind_conv2d(py::module_& m) { define_ops(m, &conv2d, &conv2d_backward); }

#ifdef FASTNN_WITH_CUDA
void bind_conv2d_cuda(py::module_& m) { define_ops(m, &conv2d_cuda, &conv2d_backward_cuda); }
#endif

}  // namespace fastnn::bindings
