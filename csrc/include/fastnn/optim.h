// Fused optimizer steps on the CPU: one pass over a parameter and its state, updated in place.
#pragma once
#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cpu {

// The scalars of one Adam step; the bias corrections are folded in by the caller, as
// torch.optim.Adam does: step_size = lr / (1 - beta1^t), bias_correction2_sqrt =
// sqrt(1 - beta2^t).
struct AdamStep {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled_weight_decay;  // AdamW: p *= 1 - lr*weight_decay; Adam: g += weight_decay*p
  double step_size, bias_correction2_sqrt;
};

// torch.optim.Adam / AdamW over n contiguous elements:
//   m = m + (1-beta1)(g - m);  v = beta2 v + (1-beta2) g^2;  v_max = max(v_max, v) (amsgrad,
//   when max_exp_avg_sq is not null);  p -= step_size * m / (sqrt(v) / bias_correction2_sqrt + eps).
// T is float or double; the arithmetic is done in T, as torch does.
// The pragma does not reach template instantiations: the attribute exports float and double.
template <class T>
[[gnu::visibility("default")]] void adam_step(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                                              T* max_exp_avg_sq, const AdamStep& s);

}  // namespace fastnn::cpu
#pragma GCC visibility pop
