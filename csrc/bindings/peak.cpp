#include "cpu/peak.h"

#include "bindings/common.h"

namespace fastnn::bindings {

void bind_peak(py::module_& m) {
  m.def("_fma_peak_gflops", [] {
    py::gil_scoped_release release;
    return cpu::fma_peak_gflops();
  });
  m.def("_copy_bandwidth_gbps", [](int64_t bytes, bool streaming) {
    if (bytes < 1) value_error("copy_bandwidth_gbps: bytes must be >= 1, got ", bytes);
    py::gil_scoped_release release;
    return cpu::copy_bandwidth_gbps(bytes, streaming);
  }, py::arg("bytes"), py::arg("streaming") = false);
}

}  // namespace fastnn::bindings
