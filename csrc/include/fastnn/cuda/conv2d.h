// 2-D convolution over NCHW float32 tensors on NVIDIA GPUs, forward and backward, with the
// semantics of fastnn::cpu's (fastnn/conv2d.h). Pointers are device memory, arrays contiguous.
// Every function launches on `stream` and returns without waiting; a failed launch throws
// std::runtime_error with the CUDA error text.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "fastnn/conv2d.h"

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cuda {

// The floats of device memory that conv2d and conv2d_backward take as `workspace`: the column
// matrices of a chunk of images (about 256 MB at most, or one image's; none for a 1x1, stride-1,
// unpadded convolution, which reads the input in place) and the weight gradient's partial sums.
// Throws std::length_error when that count overflows int64.
int64_t conv2d_workspace_floats(const cpu::Conv2dShape& s);

// output[N, out_channels, out_h, out_w] = conv2d(input, weight) + bias (bias may be null).
void conv2d(const cpu::Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output,
            float* workspace, cudaStream_t stream);

// Gradients of conv2d; any of grad_input, grad_weight, grad_bias may be null to skip it.
void conv2d_backward(const cpu::Conv2dShape& s, const float* grad_output, const float* input, const float* weight,
                     float* grad_input, float* grad_weight, float* grad_bias, float* workspace,
                     cudaStream_t stream);

}  // namespace fastnn::cuda
#pragma GCC visibility pop
