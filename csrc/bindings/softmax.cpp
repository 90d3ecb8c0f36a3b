#include "fastnn/softmax.h"

#include <algorithm>
#include <sstream>
#include <string>

#include "bindings/common.h"

#ifdef FASTNN_WITH_CUDA
#include "bindings/cuda_arrays.h"
#include "fastnn/cuda/softmax.h"
#endif

namespace fastnn::bindings {
namespace {

// ---- softmax, log_softmax ----

struct SoftmaxShape {
  int64_t outer, D, inner;
  Shape shape;
};

// The (outer, D, inner) view of an input of shape `s` (any rank) around `dim`. A 0-d input is
// one element along dim 0 (or -1), as torch treats it.
SoftmaxShape softmax_shape(const Shape& s, int64_t dim, const char* op) {
  const int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(s.size()));
  if (dim < -rank || dim >= rank)
    value_error(op, ": dim ", dim, " is out of range for input of shape ", shape_str(s), " (expected ", -rank,
                " <= dim < ", rank, ")");
  if (s.empty()) return {1, 1, 1, s};
  const size_t d = static_cast<size_t>(dim < 0 ? dim + rank : dim);
  return {product(s, 0, d), s[d], product(s, d + 1), s};
}

// Any rank: the array checks are asked for the rank the argument has, so they check only dtype
// and layout; the shape is checked here.
SoftmaxShape input_shape(const py::array& x, int64_t dim, const char* op) {
  return softmax_shape(check_float(x, op, "input", {static_cast<int>(x.ndim())}, "(any shape)"), dim, op);
}

void require_input_shape(const Shape& s, const char* op, const char* name, const Shape& expected) {
  if (s != expected) value_error(op, ": ", name, " must have the input's shape ", shape_str(expected), ", got ",
                                 shape_str(s));
}

void check_same_shape(const py::array& a, const char* op, const char* name, const Shape& expected) {
  require_input_shape(check_float(a, op, name, {static_cast<int>(a.ndim())}, shape_str(expected).c_str()), op,
                      name, expected);
}

using SoftmaxKernel = void (*)(int64_t, int64_t, int64_t, const float*, float*);
using SoftmaxBackwardKernel = void (*)(int64_t, int64_t, int64_t, const float*, const float*, float*);

py::array softmax_forward(const py::array& x, int64_t dim, const char* op, SoftmaxKernel kernel) {
  SoftmaxShape s = input_shape(x, dim, op);
  auto y = new_array(s.shape);
  float* out = data_of(y);
  {
    py::gil_scoped_release release;
    kernel(s.outer, s.D, s.inner, data_of(x), out);
  }
  return y;
}

// `saved` is the forward's output; without it the forward is recomputed into grad_input, which
// the backward kernel then overwrites in place.
py::tuple softmax_backward_of(const py::array& grad_y, const py::array& x, int64_t dim, const py::object& saved,
                              const char* op, SoftmaxKernel forward, SoftmaxBackwardKernel backward) {
  SoftmaxShape s = input_shape(x, dim, op);
  check_same_shape(grad_y, op, "grad_output", s.shape);
  const float* y = nullptr;
  py::array saved_array;
  if (!saved.is_none()) {
    saved_array = saved.cast<py::array>();
    check_same_shape(saved_array, op, "saved", s.shape);
    y = data_of(saved_array);
  }
  auto grad_x = new_array(s.shape);
  float* gx = data_of(grad_x);
  {
    py::gil_scoped_release release;
    if (!y) {
      forward(s.outer, s.D, s.inner, data_of(x), gx);
      y = gx;
    }
    backward(s.outer, s.D, s.inner, data_of(grad_y), y, gx);
  }
  return py::make_tuple(grad_x);
}

py::array softmax(const py::array& x, int64_t dim) { return softmax_forward(x, dim, "softmax", &cpu::softmax); }

py::array log_softmax(const py::array& x, int64_t dim) {
  return softmax_forward(x, dim, "log_softmax", &cpu::log_softmax);
}

py::tuple softmax_backward(const py::array& grad_y, const py::array& x, int64_t dim, const py::object& saved) {
  return softmax_backward_of(grad_y, x, dim, saved, "softmax_backward", &cpu::softmax, &cpu::softmax_backward);
}

py::tuple log_softmax_backward(const py::array& grad_y, const py::array& x, int64_t dim, const py::object& saved) {
  return softmax_backward_of(grad_y, x, dim, saved, "log_softmax_backward", &cpu::log_softmax,
                             &cpu::log_softmax_backward);
}

// ---- nll_loss, cross_entropy ----

cpu::Reduction reduction_of(const std::string& name, const char* op) {
  if (name == "mean") return cpu::Reduction::mean;
  if (name == "sum") return cpu::Reduction::sum;
  if (name == "none") return cpu::Reduction::none;
  value_error(op, ": reduction must be 'mean', 'sum' or 'none', got '", name, "'");
}

// "[3]" or "[1, 2]": where flat position r lies in an array of `shape` ("" for a 0-d array).
std::string index_str(const Shape& shape, int64_t r) {
  if (shape.empty()) return "";
  Shape index(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    index[i] = r % shape[i];
    r /= shape[i];
  }
  std::ostringstream out;
  for (size_t i = 0; i < index.size(); ++i) out << (i ? ", " : "[") << index[i];
  out << "]";
  return out.str();
}

[[noreturn]] void bad_target_error(const char* op, const Shape& target_shape, int64_t r, int64_t value, int64_t C) {
  value_error(op, ": target", index_str(target_shape, r), " = ", value, " is out of range for ", C, " classes");
}

// What both devices' loss bindings take from the arrays' shapes and the options.
struct LossShape {
  int64_t N, C, inner;
  Shape target_shape;
  int64_t ignore_index;
  cpu::Reduction reduction;
};

// The array checks take input of any rank from 1 up (asked for the rank it has, or 1 when 0-d),
// target of any rank, weight (C,); loss_shape checks the shapes.
constexpr const char* kLossInputLayout = "(N, C, ...) or (C,)";

int loss_input_rank(int64_t ndim) { return static_cast<int>(std::max<int64_t>(1, ndim)); }

// Input (N, C, d1, ...) or (C,), target the input's shape without C (so (N, d1, ...) or 0-d),
// weight (C,) when given (`sw` null when not).
LossShape loss_shape(const Shape& si, const Shape& st, const Shape* sw, int64_t ignore_index,
                     const std::string& reduction, const char* op) {
  Shape expected = si;
  expected.erase(expected.begin() + (si.size() == 1 ? 0 : 1));
  if (st != expected)
    value_error(op, ": target must have shape ", shape_str(expected), " for input of shape ", shape_str(si),
                " (the input's shape without the class dim), got ", shape_str(st));
  LossShape a;
  a.C = si.size() == 1 ? si[0] : si[1];
  a.N = si.size() == 1 ? 1 : si[0];
  a.inner = product(si, 2);
  if (a.C == 0) value_error(op, ": input has no classes (C = 0), shape ", shape_str(si));
  if (sw && (*sw)[0] != a.C)
    value_error(op, ": weight must have shape (", a.C, ",) (one per class), got ", shape_str(*sw));
  a.target_shape = st;
  a.ignore_index = ignore_index;
  a.reduction = reduction_of(reduction, op);
  return a;
}

struct LossArgs : LossShape {
  const float* input;
  const int64_t* target;
  const float* weight;  // null for none
  py::object weight_array;  // keeps `weight` alive when it was converted from another object
};

// The host arrays checked, every target in [0, C) or equal to ignore_index.
LossArgs loss_args(const py::array& input, const py::array& target, const py::object& weight,
                   int64_t ignore_index, const std::string& reduction, const char* op) {
  Shape si = check_float(input, op, "input", {loss_input_rank(input.ndim())}, kLossInputLayout);
  Shape st = check_array<int64_t>(target, op, "target", {static_cast<int>(target.ndim())}, "");
  py::object weight_array;
  const float* w = nullptr;
  Shape sw;
  if (!weight.is_none()) {
    py::array array = weight.cast<py::array>();
    sw = check_float(array, op, "weight", {1}, "(C,)");
    w = data_of(array);
    weight_array = std::move(array);
  }
  LossArgs a{loss_shape(si, st, w ? &sw : nullptr, ignore_index, reduction, op), data_of(input),
             static_cast<const int64_t*>(target.data()), w, std::move(weight_array)};
  // Checked here, before the kernel, which indexes input and weight by target; without the GIL,
  // as a segmentation target has millions of entries.
  const int64_t count = a.N * a.inner, C = a.C;
  const int64_t* bad;
  {
    py::gil_scoped_release release;
    bad = std::find_if(a.target, a.target + count,
                       [=](int64_t t) { return t != ignore_index && (t < 0 || t >= C); });
  }
  if (bad != a.target + count) bad_target_error(op, a.target_shape, bad - a.target, *bad, C);
  return a;
}

// The loss is 0-d for mean and sum, one per target for none.
Shape loss_output_shape(const LossShape& a) {
  return a.reduction == cpu::Reduction::none ? a.target_shape : Shape{};
}

void require_grad_output_shape(const Shape& s, const LossShape& a, const std::string& reduction, const char* op) {
  const Shape expected = loss_output_shape(a);
  if (s != expected)
    value_error(op, ": grad_output must have shape ", shape_str(expected), " (the loss's shape for reduction='",
                reduction, "'), got ", shape_str(s));
}

void check_grad_output(const py::array& grad, const LossArgs& a, const std::string& reduction, const char* op) {
  require_grad_output_shape(check_float(grad, op, "grad_output", {static_cast<int>(grad.ndim())}, ""), a,
                            reduction, op);
}

float check_label_smoothing(double label_smoothing, const char* op) {
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
    value_error(op, ": label_smoothing must be in [0, 1], got ", label_smoothing);
  return static_cast<float>(label_smoothing);
}

py::array nll_loss(const py::array& input, const py::array& target, const py::object& weight, int64_t ignore_index,
                   const std::string& reduction) {
  LossArgs a = loss_args(input, target, weight, ignore_index, reduction, "nll_loss");
  auto loss = new_array(loss_output_shape(a));
  float* out = data_of(loss);
  {
    py::gil_scoped_release release;
    cpu::nll_loss(a.N, a.C, a.inner, a.input, a.target, a.weight, a.ignore_index, a.reduction, out);
  }
  return loss;
}

py::tuple nll_loss_backward(const py::array& grad_output, const py::array& input, const py::array& target,
                            const py::object& weight, int64_t ignore_index, const std::string& reduction) {
  const char* op = "nll_loss_backward";
  LossArgs a = loss_args(input, target, weight, ignore_index, reduction, op);
  check_grad_output(grad_output, a, reduction, op);
  auto grad_input = new_array(shape_of(input));
  float* gx = data_of(grad_input);
  {
    py::gil_scoped_release release;
    cpu::nll_loss_backward(a.N, a.C, a.inner, data_of(grad_output), a.target, a.weight, a.ignore_index,
                           a.reduction, gx);
  }
  return py::make_tuple(grad_input, py::none(), py::none());
}

py::array cross_entropy(const py::array& input, const py::array& target, const py::object& weight,
                        int64_t ignore_index, const std::string& reduction, double label_smoothing) {
  const char* op = "cross_entropy";
  LossArgs a = loss_args(input, target, weight, ignore_index, reduction, op);
  const float smoothing = check_label_smoothing(label_smoothing, op);
  auto loss = new_array(loss_output_shape(a));
  float* out = data_of(loss);
  {
    py::gil_scoped_release release;
    cpu::cross_entropy(a.N, a.C, a.inner, a.input, a.target, a.weight, a.ignore_index, smoothing, a.reduction, out);
  }
  return loss;
}

py::tuple cross_entropy_backward(const py::array& grad_output, const py::array& input, const py::array& target,
                                 const py::object& weight, int64_t ignore_index, const std::string& reduction,
                                 double label_smoothing) {
  const char* op = "cross_entropy_backward";
  LossArgs a = loss_args(input, target, weight, ignore_index, reduction, op);
  const float smoothing = check_label_smoothing(label_smoothing, op);
  check_grad_output(grad_output, a, reduction, op);
  auto grad_input = new_array(shape_of(input));
  float* gx = data_of(grad_input);
  {
    py::gil_scoped_release release;
    cpu::cross_entropy_backward(a.N, a.C, a.inner, data_of(grad_output), a.input, a.target, a.weight,
                                a.ignore_index, smoothing, a.reduction, gx);
  }
  return py::make_tuple(grad_input, py::none(), py::none());
}

#ifdef FASTNN_WITH_CUDA
// ---- the same ops on CUDA arrays: the checks above on the arrays' shapes, kernels on CuPy's stream ----

using CudaSoftmaxKernel = void (*)(int64_t, int64_t, int64_t, const float*, float*, cudaStream_t);
using CudaSoftmaxBackwardKernel = void (*)(int64_t, int64_t, int64_t, const float*, const float*, float*,
                                           cudaStream_t);

const float* check_same_shape_cuda(const py::object& a, const char* op, const char* name, const Shape& expected) {
  const CudaArray<float> array = check_cuda_any_shape(a, op, name);
  require_input_shape(array.shape, op, name, expected);
  return array.data;
}

py::object softmax_forward_cuda(const py::object& x, int64_t dim, const char* op, CudaSoftmaxKernel kernel) {
  const CudaArray<float> in = check_cuda_any_shape(x, op, "input");
  const SoftmaxShape s = softmax_shape(in.shape, dim, op);
  auto [y, out] = new_cuda_array<float>(s.shape);
  kernel(s.outer, s.D, s.inner, in.data, out, current_stream());
  return y;
}

// As softmax_backward_of.
py::tuple softmax_backward_of_cuda(const py::object& grad_y, const py::object& x, int64_t dim,
                                   const py::object& saved, const char* op, CudaSoftmaxKernel forward,
                                   CudaSoftmaxBackwardKernel backward) {
  const CudaArray<float> in = check_cuda_any_shape(x, op, "input");
  const SoftmaxShape s = softmax_shape(in.shape, dim, op);
  const float* g = check_same_shape_cuda(grad_y, op, "grad_output", s.shape);
  const float* y = saved.is_none() ? nullptr : check_same_shape_cuda(saved, op, "saved", s.shape);
  auto [grad_x, gx] = new_cuda_array<float>(s.shape);
  const cudaStream_t stream = current_stream();
  if (!y) {
    forward(s.outer, s.D, s.inner, in.data, gx, stream);
    y = gx;
  }
  backward(s.outer, s.D, s.inner, g, y, gx, stream);
  return py::make_tuple(grad_x);
}

py::object softmax_cuda(const py::object& x, int64_t dim) {
  return softmax_forward_cuda(x, dim, "softmax", &cuda::softmax);
}

py::object log_softmax_cuda(const py::object& x, int64_t dim) {
  return softmax_forward_cuda(x, dim, "log_softmax", &cuda::log_softmax);
}

py::tuple softmax_backward_cuda(const py::object& grad_y, const py::object& x, int64_t dim,
                                const py::object& saved) {
  return softmax_backward_of_cuda(grad_y, x, dim, saved, "softmax_backward", &cuda::softmax,
                                  &cuda::softmax_backward);
}

py::tuple log_softmax_backward_cuda(const py::object& grad_y, const py::object& x, int64_t dim,
                                    const py::object& saved) {
  return softmax_backward_of_cuda(grad_y, x, dim, saved, "log_softmax_backward", &cuda::log_softmax,
                                  &cuda::log_softmax_backward);
}

struct CudaLossArgs : LossShape {
  Shape input_shape;
  const float* input;
  const int64_t* target;
  const float* weight;  // null for none
};

// As loss_args but for the targets' range, which check_targets_cuda checks after the other
// arguments, as it waits for the GPU.
CudaLossArgs loss_args_cuda(const py::object& input, const py::object& target, const py::object& weight,
                            int64_t ignore_index, const std::string& reduction, const char* op) {
  const CudaArray<float> in = check_cuda_float(input, op, "input", {loss_input_rank(cuda_rank(input))},
                                               kLossInputLayout);
  const CudaArray<int64_t> t = check_cuda_any_shape<int64_t>(target, op, "target");
  CudaArray<float> w{{}, nullptr};
  if (!weight.is_none()) w = check_cuda_float(weight, op, "weight", {1}, "(C,)");
  return {loss_shape(in.shape, t.shape, weight.is_none() ? nullptr : &w.shape, ignore_index, reduction, op),
          in.shape, in.data, t.data, w.data};
}

// The CPU binding's ValueError for a target outside [0, C) other than ignore_index, found on the
// GPU and read back (a wait for the stream, without the GIL).
void check_targets_cuda(const CudaLossArgs& a, const char* op) {
  auto [flag, flag_data] = new_cuda_array<int64_t>({1});
  const cudaStream_t stream = current_stream();
  cuda::BadTarget bad;
  {
    py::gil_scoped_release release;
    bad = cuda::first_bad_target(a.N * a.inner, a.target, a.C, a.ignore_index, flag_data, stream);
  }
  if (bad.index >= 0) bad_target_error(op, a.target_shape, bad.index, bad.value, a.C);
}

const float* check_grad_output_cuda(const py::object& grad, const CudaLossArgs& a, const std::string& reduction,
                                    const char* op) {
  const CudaArray<float> array = check_cuda_any_shape(grad, op, "grad_output");
  require_grad_output_shape(array.shape, a, reduction, op);
  return array.data;
}

// A loss kernel's result (the loss, or the input's gradient) and its workspace, allocated in
// CuPy's pool: freed when the workspace's array goes, and reused only by later work on the same
// stream. Workspace sizes: cuda::loss_workspace_size forward, cuda::kLossBackwardWorkspace backward.
struct CudaLossBuffers {
  py::object result, workspace;
  float* out;
  float* work;
};

CudaLossBuffers new_loss_buffers(const Shape& result_shape, int64_t workspace_floats) {
  auto [result, out] = new_cuda_array<float>(result_shape);
  auto [workspace, work] = new_cuda_array<float>({workspace_floats});
  return {result, workspace, out, work};
}

CudaLossBuffers new_loss_output(const CudaLossArgs& a) {
  return new_loss_buffers(loss_output_shape(a), cuda::loss_workspace_size(a.N, a.inner, a.reduction));
}

CudaLossBuffers new_loss_grad(const CudaLossArgs& a) {
  return new_loss_buffers(a.input_shape, cuda::kLossBackwardWorkspace);
}

py::object nll_loss_cuda(const py::object& input, const py::object& target, const py::object& weight,
                         int64_t ignore_index, const std::string& reduction) {
  const char* op = "nll_loss";
  const CudaLossArgs a = loss_args_cuda(input, target, weight, ignore_index, reduction, op);
  check_targets_cuda(a, op);
  CudaLossBuffers o = new_loss_output(a);
  cuda::nll_loss(a.N, a.C, a.inner, a.input, a.target, a.weight, a.ignore_index, a.reduction, o.out, o.work,
                 current_stream());
  return o.result;
}

py::tuple nll_loss_backward_cuda(const py::object& grad_output, const py::object& input, const py::object& target,
                                 const py::object& weight, int64_t ignore_index, const std::string& reduction) {
  const char* op = "nll_loss_backward";
  const CudaLossArgs a = loss_args_cuda(input, target, weight, ignore_index, reduction, op);
  const float* g = check_grad_output_cuda(grad_output, a, reduction, op);
  check_targets_cuda(a, op);
  CudaLossBuffers o = new_loss_grad(a);
  cuda::nll_loss_backward(a.N, a.C, a.inner, g, a.target, a.weight, a.ignore_index, a.reduction, o.out, o.work,
                          current_stream());
  return py::make_tuple(o.result, py::none(), py::none());
}

py::object cross_entropy_cuda(const py::object& input, const py::object& target, const py::object& weight,
                              int64_t ignore_index, const std::string& reduction, double label_smoothing) {
  const char* op = "cross_entropy";
  const CudaLossArgs a = loss_args_cuda(input, target, weight, ignore_index, reduction, op);
  const float smoothing = check_label_smoothing(label_smoothing, op);
  check_targets_cuda(a, op);
  CudaLossBuffers o = new_loss_output(a);
  cuda::cross_entropy(a.N, a.C, a.inner, a.input, a.target, a.weight, a.ignore_index, smoothing, a.reduction, o.out,
                      o.work, current_stream());
  return o.result;
}

py::tuple cross_entropy_backward_cuda(const py::object& grad_output, const py::object& input,
                                      const py::object& target, const py::object& weight, int64_t ignore_index,
                                      const std::string& reduction, double label_smoothing) {
  const char* op = "cross_entropy_backward";
  const CudaLossArgs a = loss_args_cuda(input, target, weight, ignore_index, reduction, op);
  const float smoothing = check_label_smoothing(label_smoothing, op);
  const float* g = check_grad_output_cuda(grad_output, a, reduction, op);
  check_targets_cuda(a, op);
  CudaLossBuffers o = new_loss_grad(a);
  cuda::cross_entropy_backward(a.N, a.C, a.inner, g, a.input, a.target, a.weight, a.ignore_index, smoothing,
                               a.reduction, o.out, o.work, current_stream());
  return py::make_tuple(o.result, py::none(), py::none());
}
#endif

// The ops' names, argument names and defaults, for either device's functions.
template <class Softmax, class LogSoftmax, class SoftmaxBackward, class LogSoftmaxBackward, class NllLoss,
          class NllLossBackward, class CrossEntropy, class CrossEntropyBackward>
void define_ops(py::module_& m, Softmax softmax, LogSoftmax log_softmax, SoftmaxBackward softmax_backward,
                LogSoftmaxBackward log_softmax_backward, NllLoss nll_loss, NllLossBackward nll_loss_backward,
                CrossEntropy cross_entropy, CrossEntropyBackward cross_entropy_backward) {
  m.def("softmax", softmax, py::arg("input"), py::arg("dim") = -1);
  m.def("log_softmax", log_softmax, py::arg("input"), py::arg("dim") = -1);
  m.def("softmax_backward", softmax_backward, py::arg("grad_output"), py::arg("input"), py::arg("dim") = -1,
        py::arg("saved") = py::none());
  m.def("log_softmax_backward", log_softmax_backward, py::arg("grad_output"), py::arg("input"),
        py::arg("dim") = -1, py::arg("saved") = py::none());
  m.def("nll_loss", nll_loss, py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
        py::arg("ignore_index") = -100, py::arg("reduction") = "mean");
  m.def("nll_loss_backward", nll_loss_backward, py::arg("grad_output"), py::arg("input"), py::arg("target"),
        py::arg("weight") = py::none(), py::arg("ignore_index") = -100, py::arg("reduction") = "mean");
  m.def("cross_entropy", cross_entropy, py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
        py::arg("ignore_index") = -100, py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.0);
  m.def("cross_entropy_backward", cross_entropy_backward, py::arg("grad_output"), py::arg("input"),
        py::arg("target"), py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
        py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.0);
}

}  // namespace

void bind_softmax(py::module_& m) {
  define_ops(m, &softmax, &log_softmax, &softmax_backward, &log_softmax_backward, &nll_loss, &nll_loss_backward,
             &cross_entropy, &cross_entropy_backward);
}

#ifdef FASTNN_WITH_CUDA
void bind_softmax_cuda(py::module_& m) {
  define_ops(m, &softmax_cuda, &log_softmax_cuda, &softmax_backward_cuda, &log_softmax_backward_cuda, &nll_loss_cuda,
             &nll_loss_backward_cuda, &cross_entropy_cuda, &cross_entropy_backward_cuda);
}
#endif

}  // namespace fastnn::bindings
