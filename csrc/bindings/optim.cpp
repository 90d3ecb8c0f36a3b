#include "fastnn/optim.h"

#include "bindings/common.h"
#ifdef FASTNN_WITH_CUDA
#include "bindings/cuda_arrays.h"
#include "fastnn/cuda/optim.h"
#endif

namespace fastnn::bindings {
namespace {

constexpr const char* kOp = "adam_step";

// The gradient and the state arrays (on either device) must have the parameter's shape.
void require_parameter_shape(const Shape& shape, const Shape& param_shape, const char* name) {
  if (shape != param_shape)
    value_error(kOp, ": ", name, " must have the parameter's shape ", shape_str(param_shape), ", got ",
                shape_str(shape));
}

// Each array must be C-contiguous with the parameter's dtype and shape; the state arrays and
// the parameter are written in place, so they must also be writeable.
template <class T>
T* checked(const py::array& a, const Shape& shape, const char* name, bool written) {
  require_parameter_shape(check_array<T>(a, kOp, name, {int(a.ndim())}, "(any shape)"), shape, name);
  if (written && !a.writeable()) value_error(kOp, ": ", name, " is read-only");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

template <class T>
void adam_step(const py::array& param, const py::array& grad, const py::array& exp_avg,
               const py::array& exp_avg_sq, const py::object& max_exp_avg_sq, const cpu::AdamStep& s) {
  const Shape shape = shape_of(param);
  T* p = checked<T>(param, shape, "param", true);
  const T* g = checked<T>(grad, shape, "grad", false);
  T* m = checked<T>(exp_avg, shape, "exp_avg", true);
  T* v = checked<T>(exp_avg_sq, shape, "exp_avg_sq", true);
  py::object v_max_array;  // outlives the kernel call: a converted array has no other owner
  T* v_max = nullptr;
  if (!max_exp_avg_sq.is_none()) {
    py::array array = max_exp_avg_sq.cast<py::array>();
    v_max_array = array;
    v_max = checked<T>(array, shape, "max_exp_avg_sq", true);
  }
  py::gil_scoped_release release;
  cpu::adam_step<T>(product(shape), p, g, m, v, v_max, s);
}

// Defines adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, <the step's scalars>) on m
// for arrays of type Array (py::array on the host, py::object for CUDA arrays): one signature
// for both devices. step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, AdamStep) does the work.
template <class Array, class Step>
void def_adam_step(py::module_& m, Step step) {
  m.def(
      kOp,
      [step](const Array& param, const Array& grad, const Array& exp_avg, const Array& exp_avg_sq,
             const py::object& max_exp_avg_sq, double lr, double beta1, double beta2, double eps,
             double weight_decay, bool decoupled_weight_decay, double step_size, double bias_correction2_sqrt) {
        step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq,
             cpu::AdamStep{lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, step_size,
                           bias_correction2_sqrt});
      },
      py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"),
      py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("decoupled_weight_decay"), py::arg("step_size"), py::arg("bias_correction2_sqrt"),
      "One fused Adam/AdamW step in place (float32 or float64, C-contiguous, equal shapes); see fastnn/optim.h.");
}

}  // namespace

void bind_optim(py::module_& m) {
  def_adam_step<py::array>(m, [](const py::array& param, const py::array& grad, const py::array& exp_avg,
                                 const py::array& exp_avg_sq, const py::object& max_exp_avg_sq,
                                 const cpu::AdamStep& s) {
    if (param.dtype().is(py::dtype::of<double>()))
      adam_step<double>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
    else
      adam_step<float>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
  });
}

#ifdef FASTNN_WITH_CUDA
namespace {

// checked() for CuPy arrays, which are never read-only.
template <class T>
T* checked_cuda(const py::object& a, const Shape& shape, const char* name) {
  const CudaArray<T> array = check_cuda_any_shape<T>(a, kOp, name);
  require_parameter_shape(array.shape, shape, name);
  return array.data;
}

template <class T>
void adam_step_cuda(const py::object& param, const py::object& grad, const py::object& exp_avg,
                    const py::object& exp_avg_sq, const py::object& max_exp_avg_sq, const cpu::AdamStep& s) {
  const CudaArray<T> p = check_cuda_any_shape<T>(param, kOp, "param");
  const T* g = checked_cuda<T>(grad, p.shape, "grad");
  T* m = checked_cuda<T>(exp_avg, p.shape, "exp_avg");
  T* v = checked_cuda<T>(exp_avg_sq, p.shape, "exp_avg_sq");
  T* v_max = max_exp_avg_sq.is_none() ? nullptr : checked_cuda<T>(max_exp_avg_sq, p.shape, "max_exp_avg_sq");
  const cudaStream_t stream = current_stream();
  py::gil_scoped_release release;
  cuda::adam_step<T>(product(p.shape), p.data, g, m, v, v_max, s, stream);
}

}  // namespace

void bind_optim_cuda(py::module_& m) {
  def_adam_step<py::object>(m, [](const py::object& param, const py::object& grad, const py::object& exp_avg,
                                  const py::object& exp_avg_sq, const py::object& max_exp_avg_sq,
                                  const cpu::AdamStep& s) {
    if (cuda_typestr_of(param) == cuda_typestr<double>())
      adam_step_cuda<double>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
    else
      adam_step_cuda<float>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
  });
}
#endif

}  // namespace fastnn::bindings
