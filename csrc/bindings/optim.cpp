#include "fastnn/optim.h"

#include "bindings/common.h"

namespace fastnn::bindings {
namespace {

// Each array must be C-contiguous with the parameter's dtype and shape; the state arrays and
// the parameter are written in place, so they must also be writeable.
template <class T>
T* checked(const py::array& a, const Shape& shape, const char* name, bool written) {
  const char* op = "adam_step";
  if (check_array<T>(a, op, name, {int(a.ndim())}, "(any shape)") != shape)
    value_error(op, ": ", name, " must have the parameter's shape ", shape_str(shape), ", got ",
                shape_str(shape_of(a)));
  if (written && !a.writeable()) value_error(op, ": ", name, " is read-only");
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

}  // namespace

void bind_optim(py::module_& m) {
  m.def(
      "adam_step",
      [](const py::array& param, const py::array& grad, const py::array& exp_avg, const py::array& exp_avg_sq,
         const py::object& max_exp_avg_sq, double lr, double beta1, double beta2, double eps, double weight_decay,
         bool decoupled_weight_decay, double step_size, double bias_correction2_sqrt) {
        const cpu::AdamStep s{lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, step_size,
                              bias_correction2_sqrt};
        if (param.dtype().is(py::dtype::of<double>()))
          adam_step<double>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
        else
          adam_step<float>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
      },
      py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"),
      py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("decoupled_weight_decay"), py::arg("step_size"), py::arg("bias_correction2_sqrt"),
      "One fused Adam/AdamW step in place (float32 or float64, C-contiguous, equal shapes); see fastnn/optim.h.");
}

#ifdef FASTNN_WITH_CUDA
void bind_optim_cuda(py::module_& m) {}
#endif

}  // namespace fastnn::bindings
