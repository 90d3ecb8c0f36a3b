#include "fastnn/dropout.h"

#include "bindings/common.h"

namespace fastnn::bindings {
namespace {

template <class T>
py::array dropout(const py::array& x, double p, uint64_t seed) {
  const Shape shape = check_array<T>(x, "dropout", "input", {int(x.ndim())}, "(any shape)");
  // From the reused output buffers: a fresh 2 MB one (the demo's 64x64x12x12) is mmap'd and
  // page-faulted on every call, which took 5x the kernel's time.
  py::array_t<T> y = new_array<T>(shape);
  const T* in = static_cast<const T*>(x.data());
  T* out = y.mutable_data();
  {
    py::gil_scoped_release release;
    cpu::dropout<T>(product(shape), in, p, seed, out);
  }
  return y;
}

}  // namespace

void bind_dropout(py::module_& m) {
  m.def(
      "dropout",
      [](const py::array& x, double p, uint64_t seed) {
        if (!(p >= 0 && p < 1)) value_error("dropout: p must be in [0, 1), got ", p);
        return x.dtype().is(py::dtype::of<double>()) ? dropout<double>(x, p, seed) : dropout<float>(x, p, seed);
      },
      py::arg("input"), py::arg("p"), py::arg("seed"),
      "input scaled by 1/(1-p) with each element zeroed with probability p, the mask a function of (seed, "
      "index): the same call on grad_output is the backward. float32 or float64, C-contiguous.");
}

#ifdef FASTNN_WITH_CUDA
void bind_dropout_cuda(py::module_& m) {}
#endif

}  // namespace fastnn::bindings
