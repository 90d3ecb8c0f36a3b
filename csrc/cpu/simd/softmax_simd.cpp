// Softmax row kernels with GCC vector extensions and the vector exp of vec_math.h.
#include "cpu/simd/softmax_simd.h"

#include <cstring>
#include <limits>

#include "cpu/simd/vec_math.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

float lane_max(vec v) {
  float max = v[0];
  for (int k = 1; k < kWidth; ++k) max = v[k] > max ? v[k] : max;
  return max;
}

float lane_sum(vec v) {
  float sum = 0.0f;
  for (int k = 0; k < kWidth; ++k) sum += v[k];
  return sum;
}

// Four accumulators hide the compare-select latency (~3-4 cycles) behind independent loads.
float row_max(int64_t n, const float* x) {
  const vec low = splat(-std::numeric_limits<float>::infinity());
  vec m0 = low, m1 = low, m2 = low, m3 = low;
  int64_t i = 0;
  for (; i + 4 * kWidth <= n; i += 4 * kWidth) {
    const vec a = load(x + i), b = load(x + i + kWidth), c = load(x + i + 2 * kWidth), d = load(x + i + 3 * kWidth);
    m0 = a > m0 ? a : m0;
    m1 = b > m1 ? b : m1;
    m2 = c > m2 ? c : m2;
    m3 = d > m3 ? d : m3;
  }
  for (; i + kWidth <= n; i += kWidth) {
    const vec a = load(x + i);
    m0 = a > m0 ? a : m0;
  }
  m0 = m1 > m0 ? m1 : m0;
  m2 = m3 > m2 ? m3 : m2;
  float max = lane_max(m2 > m0 ? m2 : m0);
  for (; i < n; ++i) max = x[i] > max ? x[i] : max;
  return max;
}

float exp_sum(int64_t n, const float* x, float shift, float* y) {
  vec sum = {};
  int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) {
    const vec e = exp(load(x + i) - shift);
    if (y) store(y + i, e);
    sum += e;
  }
  float total = lane_sum(sum);
  if (i < n) {  // the tail in one zero-padded vector: a row of 10 classes costs one exp
    vec part = {};
    std::memcpy(&part, x + i, (n - i) * sizeof(float));
    const vec e = exp(part - shift);
    if (y) std::memcpy(y + i, &e, (n - i) * sizeof(float));
    for (int64_t k = 0; k < n - i; ++k) total += e[k];
  }
  return total;
}

}  // namespace

extern const SoftmaxKernels softmax_kernels = {row_max, exp_sum};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
