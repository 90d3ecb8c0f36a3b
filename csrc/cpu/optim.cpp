// Fused optimizer steps. An Adam step over NumPy arrays takes about ten passes (one per ufunc)
// over the parameter and its state; this one reads p, g, m, v once and writes p, m, v once:
// 28 bytes per float32 element, memory-bound (a 1.2M-element weight is ~33 MB, ~1 ms).
#include "fastnn/optim.h"

#include "adam_update.h"
#include "cpu/parallel.h"

namespace fastnn::cpu {
namespace {

// 64K elements move ~1.8 MB, tens of microseconds: well above a parallel region's cost, so
// small parameters (biases, small kernels) stay on the calling thread.
constexpr int64_t kMinPerThread = int64_t(1) << 16;

// One slice of the step. The restrict qualifiers do not survive inlining adam_update, so ivdep
// says what they said: without it g++ adds a run-time aliasing check and a scalar copy of the loop.
template <class T, bool amsgrad>
void adam_slice(int64_t begin, int64_t end, T* __restrict p, const T* __restrict grad, T* __restrict m,
                T* __restrict v, T* __restrict v_max, const AdamScalars<T> c) {
#pragma GCC ivdep
  for (int64_t i = begin; i < end; ++i) adam_update<T, amsgrad>(i, p, grad, m, v, v_max, c);
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
