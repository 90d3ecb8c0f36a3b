// Softmax, log-softmax and the classifier losses on the CPU. All float arrays are float32 and
// C-contiguous; sizes in elements.
//
// Softmax reduces along the middle axis of the input viewed as (outer, D, inner), so any dim is
// just other sizes: softmax over dim k of shape (s0, ..., sn) has outer = s0*...*s(k-1),
// D = sk, inner = s(k+1)*...*sn. Rows are numerically stable (the row max is subtracted); a row
// of all -inf gives NaN, like torch.
#pragma once
#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cpu {

void softmax(int64_t outer, int64_t D, int64_t inner, const float* x, float* y);
void log_softmax(int64_t outer, int64_t D, int64_t inner, const float* x, float* y);
// grad_x from grad_y and the forward's output y. grad_x may be y itself (computed in place).
void softmax_backward(int64_t outer, int64_t D, int64_t inner, const float* grad_y, const float* y,
                      float* grad_x);
void log_softmax_backward(int64_t outer, int64_t D, int64_t inner, const float* grad_y, const float* y,
                          float* grad_x);

enum class Reduction { none, mean, sum };

// The losses take input (N, C, inner) and class-index targets (N, inner): position (n, i) has
// logits input[(n*C + c)*inner + i] and target[n*inner + i]. A target equal to ignore_index
// counts for nothing; every other target must be in [0, C) (the caller checks). weight (C,)
// may be null (all ones). Output: N*inner losses for Reduction::none, else one value; mean is
// sum(weight[t] * loss) / sum(weight[t]) over counted targets, NaN when none count (as torch).
// Backward: grad_output holds N*inner values for none, else one.

// loss = -weight[t] * input[t]: input holds log-probabilities.
void nll_loss(int64_t N, int64_t C, int64_t inner, const float* input, const int64_t* target,
              const float* weight, int64_t ignore_index, Reduction reduction, float* out);
void nll_loss_backward(int64_t N, int64_t C, int64_t inner, const float* grad_output, const int64_t* target,
                       const float* weight, int64_t ignore_index, Reduction reduction, float* grad_input);

// nll_loss(log_softmax(input over C)) fused into one pass per position, with torch's label
// smoothing: loss = (1 - s) * weight[t] * -logp[t] + (s / C) * sum_c weight[c] * -logp[c].
void cross_entropy(int64_t N, int64_t C, int64_t inner, const float* input, const int64_t* target,
                   const float* weight, int64_t ignore_index, float label_smoothing, Reduction reduction,
                   float* out);
void cross_entropy_backward(int64_t N, int64_t C, int64_t inner, const float* grad_output, const float* input,
                            const int64_t* target, const float* weight, int64_t ignore_index,
                            float label_smoothing, Reduction reduction, float* grad_input);

}  // namespace fastnn::cpu
#pragma GCC visibility pop
