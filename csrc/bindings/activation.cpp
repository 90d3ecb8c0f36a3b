#include "fastnn/activation.h"

#include <string>

#include "bindings/common.h"
#ifdef FASTNN_WITH_CUDA
#include "bindings/cuda_arrays.h"
#include "fastnn/cuda/activation.h"
#endif

namespace fastnn::bindings {
namespace {

// Activations are elementwise and take any shape, so the rank check is the array's own rank.
Shape check_any_shape(const py::array& a, const char* op, const char* name) {
  return check_float(a, op, name, {int(a.ndim())}, "(any shape)");
}

// grad_output and saved (on either device) must have the input's shape.
void require_input_shape(const Shape& shape, const Shape& input_shape, const char* op, const char* name) {
  if (shape != input_shape)
    value_error(op, ": ", name, " must have the input's shape ", shape_str(input_shape), ", got ", shape_str(shape));
}

void check_input_shape(const py::array& a, const Shape& input_shape, const char* op, const char* name) {
  require_input_shape(check_any_shape(a, op, name), input_shape, op, name);
}

// kernel(n, x, y) on a new array y shaped like x.
template <class Kernel>
py::array forward(const char* op, const py::array& x, Kernel kernel) {
  Shape s = check_any_shape(x, op, "input");
  auto y = new_array(s);
  const float* in = data_of(x);
  float* out = data_of(y);
  {
    py::gil_scoped_release release;
    kernel(product(s), in, out);
  }
  return y;
}

// (grad_input,) from kernel(n, grad_y, x, grad_x).
template <class Kernel>
py::tuple backward(const char* op, const py::array& grad_y, const py::array& x, Kernel kernel) {
  Shape s = check_any_shape(x, op, "input");
  check_input_shape(grad_y, s, op, "grad_output");
  auto grad_x = new_array(s);
  const float *g = data_of(grad_y), *in = data_of(x);
  float* out = data_of(grad_x);
  {
    py::gil_scoped_release release;
    kernel(product(s), g, in, out);
  }
  return py::make_tuple(grad_x);
}

// The forward's output when the caller kept it (checked against the input's shape), else null.
// `keep` holds it through the kernel call: an array converted from `saved` has no other owner.
const float* saved_output(const py::object& saved, const py::array& x, const char* op, py::object& keep) {
  if (saved.is_none()) return nullptr;
  py::array y = saved.cast<py::array>();
  check_input_shape(y, shape_of(x), op, "saved");
  keep = y;
  return data_of(y);
}

// m.op(grad_output, input, saved=None): kernel(n, grad_y, x, y, grad_x), y the forward's output
// when the caller kept it, else null (sigmoid and tanh).
void def_backward_with_saved_output(py::module_& m, const char* op,
                                    void (*kernel)(int64_t, const float*, const float*, const float*, float*)) {
  m.def(
      op,
      [=](const py::array& g, const py::array& x, const py::object& saved) {
        py::object keep;
        const float* y = saved_output(saved, x, op, keep);
        return backward(op, g, x, [=](int64_t n, const float* gy, const float* in, float* gx) { kernel(n, gy, in, y, gx); });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("saved") = py::none());
}

bool gelu_tanh_approximation(const std::string& approximate, const char* op) {
  if (approximate != "none" && approximate != "tanh")
    value_error(op, ": approximate must be 'none' or 'tanh', got '", approximate, "'");
  return approximate == "tanh";
}

}  // namespace

void bind_activation(py::module_& m) {
  m.def("relu", [](const py::array& x) { return forward("relu", x, cpu::relu); }, py::arg("input"));
  m.def("relu_backward",
        [](const py::array& g, const py::array& x) { return backward("relu_backward", g, x, cpu::relu_backward); },
        py::arg("grad_output"), py::arg("input"));

  m.def(
      "leaky_relu",
      [](const py::array& x, float slope) {
        return forward("leaky_relu", x, [=](int64_t n, const float* in, float* out) { cpu::leaky_relu(n, in, slope, out); });
      },
      py::arg("input"), py::arg("negative_slope") = 0.01f);
  m.def(
      "leaky_relu_backward",
      [](const py::array& g, const py::array& x, float slope) {
        return backward("leaky_relu_backward", g, x, [=](int64_t n, const float* gy, const float* in, float* gx) {
          cpu::leaky_relu_backward(n, gy, in, slope, gx);
        });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("negative_slope") = 0.01f);

  m.def("sigmoid", [](const py::array& x) { return forward("sigmoid", x, cpu::sigmoid); }, py::arg("input"));
  def_backward_with_saved_output(m, "sigmoid_backward", cpu::sigmoid_backward);

  m.def("tanh", [](const py::array& x) { return forward("tanh", x, cpu::tanh); }, py::arg("input"));
  def_backward_with_saved_output(m, "tanh_backward", cpu::tanh_backward);

  m.def(
      "gelu",
      [](const py::array& x, const std::string& approximate) {
        const bool tanh = gelu_tanh_approximation(approximate, "gelu");
        return forward("gelu", x, [=](int64_t n, const float* in, float* out) { cpu::gelu(n, in, tanh, out); });
      },
      py::arg("input"), py::arg("approximate") = "none");
  m.def(
      "gelu_backward",
      [](const py::array& g, const py::array& x, const std::string& approximate) {
        const bool tanh = gelu_tanh_approximation(approximate, "gelu_backward");
        return backward("gelu_backward", g, x, [=](int64_t n, const float* gy, const float* in, float* gx) {
          cpu::gelu_backward(n, gy, in, tanh, gx);
        });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("approximate") = "none");
}

#ifdef FASTNN_WITH_CUDA
namespace {

// The CUDA twins of check_input_shape, forward, backward and saved_output, on CuPy arrays.
const float* check_cuda_input_shape(const py::object& a, const Shape& input_shape, const char* op,
                                    const char* name) {
  const CudaArray<float> array = check_cuda_any_shape(a, op, name);
  require_input_shape(array.shape, input_shape, op, name);
  return array.data;
}

// kernel(n, x, y, stream) on a new CuPy array y shaped like x, on CuPy's current stream.
template <class Kernel>
py::object forward_cuda(const char* op, const py::object& x, Kernel kernel) {
  const CudaArray<float> in = check_cuda_any_shape(x, op, "input");
  const int64_t n = product(in.shape);
  auto [y, out] = new_cuda_array<float>(in.shape);
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    kernel(n, in.data, out, stream);
  }
  return y;
}

// (grad_input,) from kernel(n, grad_y, x, grad_x, stream).
template <class Kernel>
py::tuple backward_cuda(const char* op, const py::object& grad_y, const py::object& x, Kernel kernel) {
  const CudaArray<float> in = check_cuda_any_shape(x, op, "input");
  const float* g = check_cuda_input_shape(grad_y, in.shape, op, "grad_output");
  const int64_t n = product(in.shape);
  auto [grad_x, out] = new_cuda_array<float>(in.shape);
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    kernel(n, g, in.data, out, stream);
  }
  return py::make_tuple(grad_x);
}

// The forward's output when the caller kept it (checked against the input's shape), else null.
const float* saved_cuda_output(const py::object& saved, const py::object& x, const char* op) {
  if (saved.is_none()) return nullptr;
  return check_cuda_input_shape(saved, check_cuda_any_shape(x, op, "input").shape, op, "saved");
}

// The CUDA twin of def_backward_with_saved_output.
void def_backward_with_saved_output_cuda(
    py::module_& m, const char* op,
    void (*kernel)(int64_t, const float*, const float*, const float*, float*, cudaStream_t)) {
  m.def(
      op,
      [=](const py::object& g, const py::object& x, const py::object& saved) {
        const float* y = saved_cuda_output(saved, x, op);
        return backward_cuda(op, g, x, [=](int64_t n, const float* gy, const float* in, float* gx, cudaStream_t stream) {
          kernel(n, gy, in, y, gx, stream);
        });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("saved") = py::none());
}

}  // namespace

void bind_activation_cuda(py::module_& m) {
  m.def("relu", [](const py::object& x) { return forward_cuda("relu", x, cuda::relu); }, py::arg("input"));
  m.def(
      "relu_backward",
      [](const py::object& g, const py::object& x) {
        return backward_cuda("relu_backward", g, x, cuda::relu_backward);
      },
      py::arg("grad_output"), py::arg("input"));

  m.def(
      "leaky_relu",
      [](const py::object& x, float slope) {
        return forward_cuda("leaky_relu", x, [=](int64_t n, const float* in, float* out, cudaStream_t stream) {
          cuda::leaky_relu(n, in, slope, out, stream);
        });
      },
      py::arg("input"), py::arg("negative_slope") = 0.01f);
  m.def(
      "leaky_relu_backward",
      [](const py::object& g, const py::object& x, float slope) {
        return backward_cuda("leaky_relu_backward", g, x,
                             [=](int64_t n, const float* gy, const float* in, float* gx, cudaStream_t stream) {
                               cuda::leaky_relu_backward(n, gy, in, slope, gx, stream);
                             });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("negative_slope") = 0.01f);

  m.def("sigmoid", [](const py::object& x) { return forward_cuda("sigmoid", x, cuda::sigmoid); }, py::arg("input"));
  def_backward_with_saved_output_cuda(m, "sigmoid_backward", cuda::sigmoid_backward);

  m.def("tanh", [](const py::object& x) { return forward_cuda("tanh", x, cuda::tanh); }, py::arg("input"));
  def_backward_with_saved_output_cuda(m, "tanh_backward", cuda::tanh_backward);

  m.def(
      "gelu",
      [](const py::object& x, const std::string& approximate) {
        const bool tanh = gelu_tanh_approximation(approximate, "gelu");
        return forward_cuda("gelu", x, [=](int64_t n, const float* in, float* out, cudaStream_t stream) {
          cuda::gelu(n, in, tanh, out, stream);
        });
      },
      py::arg("input"), py::arg("approximate") = "none");
  m.def(
      "gelu_backward",
      [](const py::object& g, const py::object& x, const std::string& approximate) {
        const bool tanh = gelu_tanh_approximation(approximate, "gelu_backward");
        return backward_cuda("gelu_backward", g, x,
                             [=](int64_t n, const float* gy, const float* in, float* gx, cudaStream_t stream) {
                               cuda::gelu_backward(n, gy, in, tanh, gx, stream);
                             });
      },
      py::arg("grad_output"), py::arg("input"), py::arg("approximate") = "none");
}
#endif

}  // namespace fastnn::bindings
