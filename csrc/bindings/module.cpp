// fastnn._C: the pybind11 module. Each op family registers its functions from its own file.
#include <pybind11/stl.h>

#include <atomic>
#include <string>

#include "bindings/common.h"
#include "cpu/dispatch.h"
#include "cpu/parallel.h"
#include "cuda_runtime_info.h"

namespace fastnn::bindings {
void bind_gemm(py::module_& m);
void bind_conv2d(py::module_& m);
void bind_pool(py::module_& m);
void bind_activation(py::module_& m);
void bind_softmax(py::module_& m);
void bind_peak(py::module_& m);
void bind_optim(py::module_& m);
void bind_dropout(py::module_& m);
#ifdef FASTNN_WITH_CUDA
// The same ops on CuPy arrays, in the submodule _C.cuda under the same names and arguments.
void bind_gemm_cuda(py::module_& m);
void bind_conv2d_cuda(py::module_& m);
void bind_pool_cuda(py::module_& m);
void bind_activation_cuda(py::module_& m);
void bind_softmax_cuda(py::module_& m);
void bind_optim_cuda(py::module_& m);
void bind_dropout_cuda(py::module_& m);
#endif
}  // namespace fastnn::bindings

namespace {

namespace py = pybind11;

py::dict build_info() {
  py::dict info;
  info["version"] = FASTNN_VERSION;
#ifdef FASTNN_WITH_CUDA
  info["cuda"] = true;
  info["cuda_archs"] = py::str(FASTNN_CUDA_ARCHS);
  std::string error;
  info["cuda_devices"] = fastnn::cuda::device_count(&error);
  info["cuda_error"] = error.empty() ? py::object(py::none()) : py::object(py::str(error));
#else
  info["cuda"] = false;
  info["cuda_archs"] = py::str("");
  info["cuda_devices"] = 0;
  info["cuda_error"] = py::str("built without CUDA");
#endif
  info["isa"] = fastnn::cpu::isa().name;
  info["isas_available"] = fastnn::cpu::isas_available();
#ifdef _OPENMP
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  info["num_threads"] = fastnn::cpu::num_threads();
  return info;
}

// How many threads a parallel kernel started from the calling thread runs on now: the number
// of slices parallel_for hands out over work big enough for every thread.
int parallel_team_size() {
  py::gil_scoped_release release;
  std::atomic<int> slices{0};
  fastnn::cpu::parallel_for(1 << 20, 1, [&](int64_t, int64_t) { slices.fetch_add(1, std::memory_order_relaxed); });
  return slices.load();
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastnn compiled kernels (private: use fastnn.ops)";
  fastnn::cpu::isa();  // a bad FASTNN_ISA fails the import with its message
  m.attr("__version__") = FASTNN_VERSION;
  m.def("build_info", &build_info);
  m.def("get_num_threads", &fastnn::cpu::num_threads,
        "The number of threads a kernel called from this thread runs on (see set_num_threads).");
  m.def("set_num_threads", &fastnn::cpu::set_num_threads, py::arg("n"),
        "Sets the threads every CPU kernel uses, for all threads of the process (default: OMP_NUM_THREADS, "
        "else the core count). A calling thread whose OpenMP limit is below that default "
        "(threadpoolctl.threadpool_limits, omp_set_num_threads) gets at most its limit. A process forked after "
        "kernels ran in parallel runs them on one thread: libgomp's threads do not survive fork().");
  m.def("_parallel_team_size", &parallel_team_size);
  m.def("_set_isa", &fastnn::cpu::set_isa, py::arg("name"));
  fastnn::bindings::bind_gemm(m);
  fastnn::bindings::bind_conv2d(m);
  fastnn::bindings::bind_pool(m);
  fastnn::bindings::bind_activation(m);
  fastnn::bindings::bind_softmax(m);
  fastnn::bindings::bind_peak(m);
  fastnn::bindings::bind_optim(m);
  fastnn::bindings::bind_dropout(m);
#ifdef FASTNN_WITH_CUDA
  py::module_ cuda = m.def_submodule("cuda", "fastnn's CUDA kernels on CuPy arrays (private: use fastnn.ops)");
  fastnn::bindings::bind_gemm_cuda(cuda);
  fastnn::bindings::bind_conv2d_cuda(cuda);
  fastnn::bindings::bind_pool_cuda(cuda);
  fastnn::bindings::bind_activation_cuda(cuda);
  fastnn::bindings::bind_softmax_cuda(cuda);
  fastnn::bindings::bind_optim_cuda(cuda);
  fastnn::bindings::bind_dropout_cuda(cuda);
#endif
}
