// One Adam/AdamW step on one element, compiled by the CPU kernel (cpu/optim.cpp) and the CUDA
// kernel (cuda/optim.cu): both devices evaluate this expression in T.
#pragma once
#include <cmath>
#include <cstdint>

#include "fastnn/optim.h"
#include "host_device.h"

namespace fastnn {
// Internal linkage: each translation unit keeps its own copy, compiled for its own target.
namespace {

// AdamStep's scalars in the arithmetic's type, with the two weight-decay variants folded into
// a gradient term (Adam) or a shrink factor (AdamW), the other left neutral.
template <class T>
struct AdamScalars {
  T beta1_weight, beta2, beta2_weight, eps, step_size, bias_correction2_sqrt, coupled_decay, shrink;

  explicit AdamScalars(const cpu::AdamStep& s)
      : beta1_weight(T(1 - s.beta1)), beta2(T(s.beta2)), beta2_weight(T(1 - s.beta2)), eps(T(s.eps)),
        step_size(T(s.step_size)), bias_correction2_sqrt(T(s.bias_correction2_sqrt)),
        coupled_decay(s.decoupled_weight_decay ? T(0) : T(s.weight_decay)),
        shrink(s.decoupled_weight_decay ? T(1 - s.lr * s.weight_decay) : T(1)) {}
};

// Updates element i of p, m, v (and of v_max when amsgrad; v_max is not read otherwise) as
// fastnn/optim.h documents. amsgrad is a template parameter so that the CPU loop has no branch
// per element: a branch-free body is what g++ vectorizes (sqrt and divide included). The max is
// std::max's expression written out, which device code cannot call.
template <class T, bool amsgrad>
FASTNN_HOST_DEVICE inline void adam_update(int64_t i, T* p, const T* grad, T* m, T* v, T* v_max,
                                           const AdamScalars<T>& c) {
  const T g = grad[i] + c.coupled_decay * p[i];
  m[i] += c.beta1_weight * (g - m[i]);
  v[i] = c.beta2 * v[i] + c.beta2_weight * g * g;
  T second = v[i];
  if (amsgrad) second = v_max[i] = v_max[i] < second ? second : v_max[i];
  p[i] = c.shrink * p[i] - c.step_size * m[i] / (std::sqrt(second) / c.bias_correction2_sqrt + c.eps);
}

}  // namespace
}  // namespace fastnn
