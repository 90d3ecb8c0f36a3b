// Fused Adam/AdamW step on the GPU: each element is independent, so one thread updates one
// element at a time through the same expression as the CPU kernel (adam_update.h). Memory-bound:
// 28 bytes per float32 element (32 with amsgrad), read and written once.
#include "fastnn/cuda/optim.h"

#include "adam_update.h"
#include "cuda/launch.h"

namespace fastnn::cuda {
namespace {

constexpr int kThreads = 256;

template <class T, bool amsgrad>
__global__ void adam_kernel(int64_t n, T* __restrict p, const T* __restrict grad, T* __restrict m,
                            T* __restrict v, T* __restrict v_max, const AdamScalars<T> c) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    adam_update<T, amsgrad>(i, p, grad, m, v, v_max, c);
}

}  // namespace

template <class T>
void adam_step(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
               const cpu::AdamStep& s, cudaStream_t stream) {
  if (n == 0) return;
  const AdamScalars<T> c(s);
  const unsigned blocks = grid_for(n, kThreads);
  if (max_exp_avg_sq)
    adam_kernel<T, true><<<blocks, kThreads, 0, stream>>>(n, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, c);
  else
    adam_kernel<T, false><<<blocks, kThreads, 0, stream>>>(n, param, grad, exp_avg, exp_avg_sq, nullptr, c);
  check_launch("adam_step");
}

template void adam_step<float>(int64_t, float*, const float*, float*, float*, float*, const cpu::AdamStep&,
                               cudaStream_t);
template void adam_step<double>(int64_t, double*, const double*, double*, double*, double*, const cpu::AdamStep&,
                                cudaStream_t);

}  // namespace fastnn::cuda
