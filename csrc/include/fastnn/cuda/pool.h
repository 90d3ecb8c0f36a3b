// 2-D max and average pooling on NVIDIA GPUs, function by function as fastnn::cpu's
// (fastnn/pool.h), with the same shapes, NaN, tie, padding and relu rules. Pointers are device
// memory; every function launches on `stream` and returns without waiting; a failed launch
// throws std::runtime_error with the CUDA error text.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "fastnn/pool.h"

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cuda {

void max_pool2d(const cpu::Pool2dShape& s, const float* input, float* output, int64_t* indices, bool relu,
                cudaStream_t stream);
// Deterministic: each grad_input element sums the grad_output of the windows that picked it in
// the CPU kernel's order. A saved index outside [-1, in_h * in_w) is skipped, never written
// through (fastnn's binding raises for one before the launch, as on the CPU).
void max_pool2d_backward(const cpu::Pool2dShape& s, const float* grad_output, const float* input,
                         const int64_t* indices, float* grad_input, bool relu, cudaStream_t stream);

void avg_pool2d(const cpu::Pool2dShape& s, bool count_include_pad, int64_t divisor_override, const float* input,
                float* output, cudaStream_t stream);
void avg_pool2d_backward(const cpu::Pool2dShape& s, bool count_include_pad, int64_t divisor_override,
                         const float* grad_output, float* grad_input, cudaStream_t stream);

}  // namespace fastnn::cuda
#pragma GCC visibility pop
