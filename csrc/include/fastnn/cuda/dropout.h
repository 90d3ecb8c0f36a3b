// Dropout on NVIDIA GPUs with the CPU's counter-based random stream: for the same (seed, p, n)
// the GPU drops exactly the elements fastnn::cpu::dropout drops. Pointers are device memory;
// the launch goes on `stream` and returns without waiting; a failed launch throws
// std::runtime_error with the CUDA error text.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cuda {

// As fastnn::cpu::dropout (fastnn/dropout.h): y[i] = x[i] / (1 - p) where element i is kept,
// else 0; the backward is the same call on grad_y. T is float or double; 0 <= p < 1.
// The pragma does not reach template instantiations: the attribute exports float and double.
template <class T>
[[gnu::visibility("default")]] void dropout(int64_t n, const T* x, double p, uint64_t seed, T* y,
                                            cudaStream_t stream);

}  // namespace fastnn::cuda
#pragma GCC visibility pop
