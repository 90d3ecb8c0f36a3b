// Fused optimizer steps on NVIDIA GPUs: one pass over a parameter and its state, updated in
// place. Pointers are device memory; the launch goes on `stream` and returns without waiting;
// a failed launch throws std::runtime_error with the CUDA error text.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "fastnn/optim.h"

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cuda {

// As fastnn::cpu::adam_step (fastnn/optim.h), the same arithmetic in T (float or double);
// max_exp_avg_sq may be null (no amsgrad).
// The pragma does not reach template instantiations: the attribute exports float and double.
template <class T>
[[gnu::visibility("default")]] void adam_step(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                                              T* max_exp_avg_sq, const cpu::AdamStep& s, cudaStream_t stream);

}  // namespace fastnn::cuda
#pragma GCC visibility pop
