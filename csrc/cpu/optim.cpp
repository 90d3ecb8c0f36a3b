// Fused optimizer steps. An Adam step over NumPy arrays takes about ten passes (one per ufunc)
// over the parameter and its state; this one reads p, g, m, v once and writes p, m, v once:
// 28 bytes per float32 element, memory-bound (a 1.2M-element weight is ~33 MB, ~1 ms).
#include "fastnn/optim.h"

#include <algorithm>
#include <cmath>

#include "cpu/parallel.h"

namespace fastnn::cpu {
namespace {

// 64K elements move ~1.8 MB, tens of microseconds: well above a parallel region's cost, so
// small parameters (biases, small kernels) stay on the calling thread.
constexpr int64_t kMinPerThread = int64_t(1) << 16;

// AdamStep's scalars in the arithmetic's type, with the two weight-decay variants folded into
// a gradient term (Adam) or a shrink factor (AdamW), the other left neutral.
template <class T>
struct AdamScalars {
  T beta1_weight, beta2, beta2_weight, eps, step_size, bias_correction2_sqrt, coupled_decay, shrink;

  explicit AdamScalars(const AdamStep& s)
      : beta1_weight(T(1 - s.beta1)), beta2(T(s.beta2)), beta2_weight(T(1 - s.beta2)), eps(T(s.eps)),
        step_size(T(s.step_size)), bias_correction2_sqrt(T(s.bias_correction2_sqrt)),
        coupled_decay(s.decoupled_weight_decay ? T(0) : T(s.weight_decay)),
        shrink(s.decoupled_weight_decay ? T(1 - s.lr * s.weight_decay) : T(1)) {}
};

// amsgrad is a template parameter so that neither loop branches per element: a branch-free,
// restrict-qualified body is what the compiler vectorizes (sqrt and divide included).
template <class T, bool amsgrad>
void adam_slice(int64_t begin, int64_t end, T* __restrict p, const T* __restrict grad, T* __restrict m,
                T* __restrict v, T* __restrict v_max, const AdamScalars<T> c) {
  for (int64_t i = begin; i < end; ++i) {
    const T g = grad[i] + c.coupled_decay * p[i];
    m[i] += c.beta1_weight * (g - m[i]);
    v[i] = c.beta2 * v[i] + c.beta2_weight * g * g;
    T second = v[i];
    if (amsgrad) second = v_max[i] = std::max(v_max[i], second);
    p[i] = c.shrink * p[i] - c.step_size * m[i] / (std::sqrt(second) / c.bias_correction2_sqrt + c.eps);
  }
}

}  // namespace

template <class T>
void adam_step(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
               const AdamStep& s) {
  const AdamScalars<T> c(s);
  parallel_for(n, kMinPerThread, [&](int64_t begin, int64_t end) {
    if (max_exp_avg_sq)
      adam_slice<T, true>(begin, end, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, c);
    else
      adam_slice<T, false>(begin, end, param, grad, exp_avg, exp_avg_sq, nullptr, c);
  });
}

template void adam_step<float>(int64_t, float*, const float*, float*, float*, float*, const AdamStep&);
template void adam_step<double>(int64_t, double*, const double*, double*, double*, double*, const AdamStep&);

}  // namespace fastnn::cpu
