// Dropout on the GPU: the mask of dropout_mask.h, which the CPU kernels draw too. Each output of
// the stream decides two elements, so one thread takes one pair (elements 2k and 2k+1) per step
// of a grid-stride loop: one mix per two elements, as on the CPU.
#include "fastnn/cuda/dropout.h"

#include "cuda/launch.h"
#include "dropout_mask.h"

namespace fastnn::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void dropout_kernel(int64_t n, const T* __restrict x, uint64_t threshold, T scale, uint64_t seed,
                               T* __restrict y) {
  const int64_t pairs = (n + 1) / 2;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < pairs; k += stride) {
    const uint64_t bits = mix(stream_state(seed, uint64_t(k)));
    const int64_t i = 2 * k;  // takes the low 32 bits; i + 1 (when there is one) the high 32
    y[i] = kept(uint32_t(bits), threshold) ? x[i] * scale : T(0);
    if (i + 1 < n) y[i + 1] = kept(uint32_t(bits >> 32), threshold) ? x[i + 1] * scale : T(0);
  }
}

}  // namespace

template <class T>
void dropout(int64_t n, const T* x, double p, uint64_t seed, T* y, cudaStream_t stream) {
  if (n == 0) return;
  const int64_t pairs = (n + 1) / 2;
  dropout_kernel<T><<<grid_for(pairs, kThreads), kThreads, 0, stream>>>(n, x, drop_threshold(p), keep_scale<T>(p),
                                                                        seed, y);
  check_launch("dropout");
}

template void dropout<float>(int64_t, const float*, double, uint64_t, float*, cudaStream_t);
template void dropout<double>(int64_t, const double*, double, uint64_t, double*, cudaStream_t);

}  // namespace fastnn::cuda
