#include "fastnn/dropout.h"

#include "bindings/common.h"
#ifdef FASTNN_WITH_CUDA
#include "bindings/cuda_arrays.h"
#include "fastnn/cuda/dropout.h"
#endif

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

// Defines dropout(input, p, seed) on m for inputs of type Array (py::array on the host,
// py::object for CUDA arrays), checking p: one signature for both devices. run(input, p, seed)
// returns the output.
template <class Array, class Run>
void def_dropout(py::module_& m, Run run) {
  m.def(
      "dropout",
      [run](const Array& x, double p, uint64_t seed) {
        if (!(p >= 0 && p < 1)) value_error("dropout: p must be in [0, 1), got ", p);
        return run(x, p, seed);
      },
      py::arg("input"), py::arg("p"), py::arg("seed"),
      "input scaled by 1/(1-p) with each element zeroed with probability p, the mask a function of (seed, "
      "index): the same call on grad_output is the backward. float32 or float64, C-contiguous.");
}

}  // namespace

void bind_dropout(py::module_& m) {
  def_dropout<py::array>(m, [](const py::array& x, double p, uint64_t seed) {
    return x.dtype().is(py::dtype::of<double>()) ? dropout<double>(x, p, seed) : dropout<float>(x, p, seed);
  });
}

#ifdef FASTNN_WITH_CUDA
namespace {

// dropout() for a CuPy array, into a new CuPy array on CuPy's current stream.
template <class T>
py::object dropout_cuda(const py::object& x, double p, uint64_t seed) {
  const CudaArray<T> in = check_cuda_any_shape<T>(x, "dropout", "input");
  auto [y, out] = new_cuda_array<T>(in.shape);
  const cudaStream_t stream = current_stream();
  {
    py::gil_scoped_release release;
    cuda::dropout<T>(product(in.shape), in.data, p, seed, out, stream);
  }
  return y;
}

}  // namespace

void bind_dropout_cuda(py::module_& m) {
  def_dropout<py::object>(m, [](const py::object& x, double p, uint64_t seed) {
    return cuda_typestr_of(x) == cuda_typestr<double>() ? dropout_cuda<double>(x, p, seed)
                                                        : dropout_cuda<float>(x, p, seed);
  });
}
#endif

}  // namespace fastnn::bindings
