// Softmax, log-softmax and the classifier losses on NVIDIA GPUs, with the semantics of
// fastnn::cpu's (fastnn/softmax.h): the same (outer, D, inner) view, NaN for an all -inf row,
// ignore_index, class weights, label smoothing, NaN for a mean over no counted target. Pointers
// are device memory; sizes in elements. Every function launches on `stream` and returns without
// waiting, except first_bad_target, which reads its answer back; a failed launch throws
// std::runtime_error with the CUDA error text.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "fastnn/softmax.h"

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cuda {

void softmax(int64_t outer, int64_t D, int64_t inner, const float* x, float* y, cudaStream_t stream);
void log_softmax(int64_t outer, int64_t D, int64_t inner, const float* x, float* y, cudaStream_t stream);
// grad_x may be y itself (computed in place).
void softmax_backward(int64_t outer, int64_t D, int64_t inner, const float* grad_y, const float* y, float* grad_x,
                      cudaStream_t stream);
void log_softmax_backward(int64_t outer, int64_t D, int64_t inner, const float* grad_y, const float* y,
                          float* grad_x, cudaStream_t stream);

// The losses' targets must be ignore_index or in [0, C), as on the CPU; this finds the first
// (lowest flat index) that is not, reading the answer back to the host (so it waits for
// `stream`). index is -1 when every target is valid. workspace: one int64 of device memory.
struct BadTarget {
  int64_t index, value;
};
BadTarget first_bad_target(int64_t count, const int64_t* target, int64_t C, int64_t ignore_index,
                           int64_t* workspace, cudaStream_t stream);

// The losses as fastnn::cpu's, plus a workspace. A target that first_bad_target would report is
// never used as an index: its loss and gradient are NaN.
// Forward: mean and sum write each position's loss to `workspace` (N*inner floats) and reduce
// them in one block in a fixed order, so the result is the same every run; none writes them to
// `out` and takes no workspace (null).
// Backward: `workspace` is 2 floats (the shared gradient scale of mean and sum, and the class
// weights' sum that label smoothing needs), formed on the device.
void nll_loss(int64_t N, int64_t C, int64_t inner, const float* input, const int64_t* target, const float* weight,
              int64_t ignore_index, cpu::Reduction reduction, float* out, float* workspace, cudaStream_t stream);
void nll_loss_backward(int64_t N, int64_t C, int64_t inner, const float* grad_output, const int64_t* target,
                       const float* weight, int64_t ignore_index, cpu::Reduction reduction, float* grad_input,
                       float* workspace, cudaStream_t stream);
void cross_entropy(int64_t N, int64_t C, int64_t inner, const float* input, const int64_t* target,
                   const float* weight, int64_t ignore_index, float label_smoothing, cpu::Reduction reduction,
                   float* out, float* workspace, cudaStream_t stream);
void cross_entropy_backward(int64_t N, int64_t C, int64_t inner, const float* grad_output, const float* input,
                            const int64_t* target, const float* weight, int64_t ignore_index,
                            float label_smoothing, cpu::Reduction reduction, float* grad_input, float* workspace,
                            cudaStream_t stream);

// The sizes of those workspaces, in floats.
constexpr int64_t loss_workspace_size(int64_t N, int64_t inner, cpu::Reduction reduction) {
  return reduction == cpu::Reduction::none ? 0 : N * inner;
}
constexpr int64_t kLossBackwardWorkspace = 2;

}  // namespace fastnn::cuda
#pragma GCC visibility pop
