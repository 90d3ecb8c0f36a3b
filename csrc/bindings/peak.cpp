#include "cpu/peak.h"

#include "bindings/common.h"

namespace fastnn::bindings {

void bind_peak(py::module_& m) {
  m.def("_fma_peak_gflops", [] {
    py::gil_scoped_release release;
    return cpu::fma_peak_gflops();
  });
  m.def("_stream_bandwidth_gbps", [](int64_t bytes, int inputs, bool streaming) {
    if (bytes < 4) value_error("stream_bandwidth_gbps: bytes must be >= 4 (one float), got ", bytes);
    if (inputs != 1 && inputs != 2) value_error("stream_bandwidth_gbps: inputs must be 1 or 2, got ", inputs);
    py::gil_scoped_release release;
    return cpu::stream_bandwidth_gbps(bytes, inputs, streaming);
  }, py::arg("bytes"), py::arg("inputs") = 1, py::arg("streaming") = false);
}

}  // namespace fastnn::bindings
