// A pooling window's extent along one axis, and average pooling's divisor, compiled by the CPU
// kernels (cpu/pool.cpp) and the CUDA kernels (cuda/pool.cu) so that both devices clip windows
// and divide alike.
#pragma once
#include <cstdint>

#include "host_device.h"

namespace fastnn {
// Internal linkage: each translation unit keeps its own copy, compiled for its own target.
namespace {

struct Span {
  int64_t begin, end;
};

// The i in [begin, end) (a subrange of [0, count)) for which start + i * step lies in [0, size):
// e.g. the taps of a window along one axis that read the input, so that a loop over them alone
// keeps a huge padded kernel as cheap as the input it covers. (Ternaries: device code has no
// std::min.)
FASTNN_HOST_DEVICE inline Span inside(int64_t start, int64_t step, int64_t size, int64_t count) {
  const int64_t begin = start >= 0 ? 0 : (-start + step - 1) / step;
  const int64_t last = size - 1 - start;
  return {begin, last < 0 ? 0 : (count < last / step + 1 ? count : last / step + 1)};
}

// The window along one axis as torch sizes it for the divisor: `padded` counts padding but
// not the overhang past it that ceil_mode allows; `inside` counts input elements only. With
// pad <= kernel / 2 and torch's ceil_mode rule, every window holds an input element.
struct WindowSize {
  int64_t padded, inside;
};

FASTNN_HOST_DEVICE inline WindowSize window_size(int64_t o, int64_t stride, int64_t pad, int64_t kernel,
                                                 int64_t in_size) {
  const int64_t start = o * stride - pad;
  const int64_t end = start + kernel < in_size + pad ? start + kernel : in_size + pad;
  return {end - start, (end < in_size ? end : in_size) - (start > 0 ? start : 0)};
}

// 1 / the divisor of the window h x w: divisor_override when non-zero, else its size counting
// padding (count_include_pad) or input elements only.
FASTNN_HOST_DEVICE inline float avg_scale(WindowSize h, WindowSize w, bool count_include_pad,
                                          int64_t divisor_override) {
  const int64_t divisor = divisor_override != 0 ? divisor_override
                          : count_include_pad   ? h.padded * w.padded
                                                : h.inside * w.inside;
  return float(1.0 / double(divisor));
}

}  // namespace
}  // namespace fastnn
