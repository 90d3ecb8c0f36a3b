#include <cuda_runtime.h>

#include <stdexcept>

#include "cuda_runtime_info.h"

namespace fastnn::cuda {

namespace {

std::string error_text(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

void throw_on_error(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear the error so later calls start clean
  throw std::runtime_error(std::string(what) + " failed: CUDA error " + error_text(status));
}

}  // namespace

int device_count(std::string* error) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    *error = error_text(status);
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return 0;
  }
  return count;
}

int memory_device(const void* pointer) {
  cudaPointerAttributes attributes;
  throw_on_error(cudaPointerGetAttributes(&attributes, pointer), "cudaPointerGetAttributes");
  const bool on_device = attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
  return on_device ? attributes.device : -1;
}

int current_device() {
  int device = -1;
  throw_on_error(cudaGetDevice(&device), "cudaGetDevice");
  return device;
}

}  // namespace fastnn::cuda
