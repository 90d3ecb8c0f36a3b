#include <cuda_runtime.h>

#include "cuda_runtime_info.h"

namespace fastnn::cuda {

int device_count(std::string* error) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    *error = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return 0;
  }
  return count;
}

}  // namespace fastnn::cuda
