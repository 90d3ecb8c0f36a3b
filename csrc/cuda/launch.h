// What every CUDA launcher does after a launch, and the grid it launches.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace fastnn::cuda {

// Throws std::runtime_error (RuntimeError in Python) with the op and the CUDA error text when
// the last launch failed; kernels themselves never abort the process.
inline void check_launch(const char* op) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw std::runtime_error(std::string(op) + ": CUDA error " + cudaGetErrorName(status) + ": " +
                             cudaGetErrorString(status));
}

// Blocks for a grid-stride loop over n items: enough to fill an H100 (132 SMs x 16 blocks of
// 256 threads) many times over, few enough that each thread does several items.
inline unsigned grid_for(int64_t n, int threads_per_block) {
  const int64_t blocks = (n + threads_per_block - 1) / threads_per_block;
  return unsigned(std::clamp<int64_t>(blocks, 1, 65535));
}

}  // namespace fastnn::cuda
