#include "fastnn/softmax.h"

#include <algorithm>
#include <sstream>
#include <string>

#include "bindings/common.h"

namespace fastnn::bindings {
namespace {

// ---- softmax, log_softmax ----

struct SoftmaxShape {
  int64_t outer, D, inner;
  Shape shape;
};

// The (outer, D, inner) view of an input of any rank around `dim`. A 0-d input is one element
// along dim 0 (or -1), as torch treats it.
SoftmaxShape softmax_shape(const py::array& x, int64_t dim, const char* op) {
  // Any rank: check_float is asked for the rank x has, so only dtype and layout are checked.
  Shape s = check_float(x, op, "input", {static_cast<int>(x.ndim())}, "(any shape)");
  const int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(s.size()));
  if (dim < -rank || dim >= rank)
    value_error(op, ": dim ", dim, " is out of range for input of shape ", shape_str(s), " (expected ", -rank,
                " <= dim < ", rank, ")");
  if (s.empty()) return {1, 1, 1, s};
  const size_t d = static_cast<size_t>(dim < 0 ? dim + rank : dim);
  return {product(s, 0, d), s[d], product(s, d + 1), s};
}

void check_same_shape(const py::array& a, const char* op, const char* name, const Shape& expected) {
  Shape s = check_float(a, op, name, {static_cast<int>(a.ndim())}, shape_str(expected).c_str());
  if (s != expected) value_error(op, ": ", name, " must have the input's shape ", shape_str(expected), ", got ",
                                 shape_str(s));
}

using SoftmaxKernel = void (*)(int64_t, int64_t, int64_t, const float*, float*);
using SoftmaxBackwardKernel = void (*)(int64_t, int64_t, int64_t, const float*, const float*, float*);

py::array softmax_forward(const py::array& x, int64_t dim, const char* op, SoftmaxKernel kernel) {
  SoftmaxShape s = softmax_shape(x, dim, op);
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
  SoftmaxShape s = softmax_shape(x, dim, op);
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

struct LossArgs {
  int64_t N, C, inner;
  Shape target_shape;
  const float* input;
  const int64_t* target;
  const float* weight;  // null for none
  py::object weight_array;  // keeps `weight` alive when it was converted from another object
  int64_t ignore_index;
  cpu::Reduction reduction;
};

// Input (N, C, d1, ...) or (C,), target the input's shape without C (so (N, d1, ...) or 0-d),
// weight (C,) or None; every target in [0, C) or equal to ignore_index.
LossArgs loss_args(const py::array& input, const py::array& target, const py::object& weight,
                   int64_t ignore_index, const std::string& reduction, const char* op) {
  // Any rank from 1 up: check_float is asked for the rank input has, or 1 for a 0-d input.
  Shape si = check_float(input, op, "input", {static_cast<int>(std::max<py::ssize_t>(1, input.ndim()))},
                         "(N, C, ...) or (C,)");
  Shape st = check_array<int64_t>(target, op, "target", {static_cast<int>(target.ndim())}, "");
  Shape expected = si;
  expected.erase(expected.begin() + (si.size() == 1 ? 0 : 1));
  if (st != expected)
    value_error(op, ": target must have shape ", shape_str(expected), " for input of shape ", shape_str(si),
                " (the input's shape without the class dim), got ", shape_str(st));
  LossArgs a;
  a.C = si.size() == 1 ? si[0] : si[1];
  a.N = si.size() == 1 ? 1 : si[0];
  a.inner = product(si, 2);
  if (a.C == 0) value_error(op, ": input has no classes (C = 0), shape ", shape_str(si));
  a.target_shape = st;
  a.input = data_of(input);
  a.target = static_cast<const int64_t*>(target.data());
  a.weight = nullptr;
  if (!weight.is_none()) {
    py::array w = weight.cast<py::array>();
    a.weight_array = w;
    Shape sw = check_float(w, op, "weight", {1}, "(C,)");
    if (sw[0] != a.C) value_error(op, ": weight must have shape (", a.C, ",) (one per class), got ", shape_str(sw));
    a.weight = data_of(w);
  }
  a.ignore_index = ignore_index;
  a.reduction = reduction_of(reduction, op);
  // Checked here, before the kernel, which indexes input and weight by target; without the GIL,
  // as a segmentation target has millions of entries.
  const int64_t count = a.N * a.inner, C = a.C;
  const int64_t* bad;
  {
    py::gil_scoped_release release;
    bad = std::find_if(a.target, a.target + count,
                       [=](int64_t t) { return t != ignore_index && (t < 0 || t >= C); });
  }
  if (bad != a.target + count)
    value_error(op, ": target", index_str(st, bad - a.target), " = ", *bad, " is out of range for ", C, " classes");
  return a;
}

// The loss is 0-d for mean and sum, one per target for none.
Shape loss_output_shape(const LossArgs& a) {
  return a.reduction == cpu::Reduction::none ? a.target_shape : Shape{};
}

void check_grad_output(const py::array& grad, const LossArgs& a, const std::string& reduction, const char* op) {
  const Shape expected = loss_output_shape(a);
  Shape s = check_float(grad, op, "grad_output", {static_cast<int>(grad.ndim())}, shape_str(expected).c_str());
  if (s != expected)
    value_error(op, ": grad_output must have shape ", shape_str(expected), " (the loss's shape for reduction='",
                reduction, "'), got ", shape_str(s));
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

}  // namespace

void bind_softmax(py::module_& m) {
  m.def("softmax", &softmax, py::arg("input"), py::arg("dim") = -1);
  m.def("log_softmax", &log_softmax, py::arg("input"), py::arg("dim") = -1);
  m.def("softmax_backward", &softmax_backward, py::arg("grad_output"), py::arg("input"), py::arg("dim") = -1,
        py::arg("saved") = py::none());
  m.def("log_softmax_backward", &log_softmax_backward, py::arg("grad_output"), py::arg("input"),
        py::arg("dim") = -1, py::arg("saved") = py::none());
  m.def("nll_loss", &nll_loss, py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
        py::arg("ignore_index") = -100, py::arg("reduction") = "mean");
  m.def("nll_loss_backward", &nll_loss_backward, py::arg("grad_output"), py::arg("input"), py::arg("target"),
        py::arg("weight") = py::none(), py::arg("ignore_index") = -100, py::arg("reduction") = "mean");
  m.def("cross_entropy", &cross_entropy, py::arg("input"), py::arg("target"), py::arg("weight") = py::none(),
        py::arg("ignore_index") = -100, py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.0);
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("grad_output"), py::arg("input"),
        py::arg("target"), py::arg("weight") = py::none(), py::arg("ignore_index") = -100,
        py::arg("reduction") = "mean", py::arg("label_smoothing") = 0.0);
}

#ifdef FASTNN_WITH_CUDA
void bind_softmax_cuda(py::module_& m) {}
#endif

}  // namespace fastnn::bindings
