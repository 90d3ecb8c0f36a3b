// Softmax, log-softmax and the classifier losses. Every op works on rows: the D values of one
// (outer, inner) position of the (outer, D, inner) view, `inner` apart. for_each_row passes the
// stride as a compile-time 1 when inner == 1, so the common last-dim / (N, C) case gets
// unit-stride loops, whose max and exps run in the ISA's vector kernels (softmax_simd.cpp);
// other dims take strided rows in memory order, so neighbouring rows share cache lines and
// nothing is transposed.
#include "fastnn/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/parallel.h"

namespace fastnn::cpu {
namespace {

using UnitStride = std::integral_constant<int64_t, 1>;

// At least ~16K elements (tens of microseconds of exp) per thread: below that a parallel
// region costs more than it saves.
constexpr int64_t kMinElementsPerThread = int64_t(1) << 14;
constexpr float kInf = std::numeric_limits<float>::infinity();

// Calls row(r, offset, stride) for every row r in [0, outer*inner) of the (outer, D, inner)
// view, split across threads: row r starts at element `offset`, its D values `stride` apart.
template <class Row>
void for_each_row(int64_t outer, int64_t D, int64_t inner, Row&& row) {
  const int64_t min_rows = std::max<int64_t>(1, kMinElementsPerThread / std::max<int64_t>(1, D));
  parallel_for(outer * inner, min_rows, [&](int64_t begin, int64_t end) {
    if (inner == 1) {
      for (int64_t r = begin; r < end; ++r) row(r, r * D, UnitStride());
    } else {
      for (int64_t r = begin; r < end; ++r) row(r, (r / inner) * D * inner + r % inner, inner);
    }
  });
}

template <class Stride>
float row_max(int64_t D, Stride s, const float* x) {
  float max = -kInf;
  for (int64_t j = 0; j < D; ++j) max = std::max(max, x[j * s]);
  return max;
}

float row_max(int64_t D, UnitStride, const float* x) { return isa().softmax->row_max(D, x); }

// sum(exp(x - shift)), storing each term in y when y is not null (y may be x). With shift the
// max, a row of all -inf has every term NaN, as torch gives.
template <class Stride>
float exp_sum(int64_t D, Stride s, const float* x, float shift, float* y) {
  float sum = 0.0f;
  for (int64_t j = 0; j < D; ++j) {
    const float e = std::exp(x[j * s] - shift);
    if (y) y[j * s] = e;
    sum += e;
  }
  return sum;
}

float exp_sum(int64_t D, UnitStride, const float* x, float shift, float* y) {
  return isa().softmax->exp_sum(D, x, shift, y);
}

template <class Stride>
void softmax_row(int64_t D, Stride s, const float* x, float* y) {
  const float scale = 1.0f / exp_sum(D, s, x, row_max(D, s, x), y);
  for (int64_t j = 0; j < D; ++j) y[j * s] *= scale;
}

template <class Stride>
void log_softmax_row(int64_t D, Stride s, const float* x, float* y) {
  const float max = row_max(D, s, x);
  const float log_sum = std::log(exp_sum(D, s, x, max, nullptr));
  // (x - max) - log_sum rather than x - (max + log_sum): x - max is exact for large logits.
  for (int64_t j = 0; j < D; ++j) y[j * s] = (x[j * s] - max) - log_sum;
}

// grad_x = y * (g - sum(g * y)). Reads y[j] before writing grad_x[j], so the two may alias.
template <class Stride>
void softmax_backward_row(int64_t D, Stride s, const float* g, const float* y, float* grad_x) {
  float dot = 0.0f;
  for (int64_t j = 0; j < D; ++j) dot += g[j * s] * y[j * s];
  for (int64_t j = 0; j < D; ++j) grad_x[j * s] = y[j * s] * (g[j * s] - dot);
}

// grad_x = g - softmax * sum(g), where softmax = exp(y), formed in grad_x first. May alias like
// softmax_backward_row.
template <class Stride>
void log_softmax_backward_row(int64_t D, Stride s, const float* g, const float* y, float* grad_x) {
  float sum = 0.0f;
  for (int64_t j = 0; j < D; ++j) sum += g[j * s];
  exp_sum(D, s, y, 0.0f, grad_x);
  for (int64_t j = 0; j < D; ++j) grad_x[j * s] = g[j * s] - grad_x[j * s] * sum;
}

// The class weights, or ones when there are none, so the loss loops need no branch.
const float* weights_or_ones(const float* weight, int64_t C, std::vector<float>& ones) {
  if (weight) return weight;
  ones.assign(C, 1.0f);
  return ones.data();
}

// sum(weight[t]) over the counted targets: what a mean divides by.
double target_weight_sum(int64_t count, const int64_t* target, const float* weight, int64_t ignore_index) {
  double sum = 0.0;
  for (int64_t r = 0; r < count; ++r)
    if (target[r] != ignore_index) sum += weight[target[r]];
  return sum;
}

// The losses as output: per position (none) or reduced in double, in a fixed order so the
// result does not depend on the thread count.
void reduce_losses(const std::vector<double>& losses, Reduction reduction, double weight_sum, float* out) {
  if (reduction == Reduction::none) {
    for (size_t r = 0; r < losses.size(); ++r) out[r] = static_cast<float>(losses[r]);
    return;
  }
  double total = 0.0;
  for (double loss : losses) total += loss;
  // A mean over no counted targets is 0/0 = NaN, like torch.
  out[0] = static_cast<float>(reduction == Reduction::mean ? total / weight_sum : total);
}

// d(output) / d(loss of a position) for mean and sum; none reads grad_output per position.
float shared_grad_scale(const float* grad_output, int64_t count, const int64_t* target, const float* weight,
                        int64_t ignore_index, Reduction reduction) {
  if (reduction == Reduction::none) return 0.0f;
  if (reduction == Reduction::sum) return grad_output[0];
  return static_cast<float>(grad_output[0] / target_weight_sum(count, target, weight, ignore_index));
}

// -log p_c = log_sum - (x_c - max); the smoothing term sums it over classes.
template <class Stride>
double cross_entropy_row(int64_t C, Stride s, const float* x, int64_t t, const float* weight, float smoothing) {
  const float max = row_max(C, s, x);
  const float log_sum = std::log(exp_sum(C, s, x, max, nullptr));
  double loss = (1.0 - smoothing) * weight[t] * (log_sum - (x[t * s] - max));
  if (smoothing != 0.0f) {
    float smooth = 0.0f;
    for (int64_t c = 0; c < C; ++c) smooth += weight[c] * (log_sum - (x[c * s] - max));
    loss += double(smoothing) / C * smooth;
  }
  return loss;
}

// d loss / d x_c = p_c * ((1 - s) w_t + (s / C) sum(w)) - (1 - s) w_t [c == t] - (s / C) w_c,
// times `scale`; with s = 0 and no weight this is the familiar softmax - onehot.
template <class Stride>
void cross_entropy_backward_row(int64_t C, Stride s, const float* x, int64_t t, const float* weight,
                                float weight_total, float smoothing, float scale, float* grad) {
  const float sum = exp_sum(C, s, x, row_max(C, s, x), grad);  // grad holds exp(x - max) for now
  const float target_part = (1.0f - smoothing) * weight[t];
  const float smooth_per_class = smoothing / static_cast<float>(C);
  const float p_scale = scale / sum * (target_part + smooth_per_class * weight_total);
  const float w_scale = scale * smooth_per_class;
  for (int64_t c = 0; c < C; ++c) grad[c * s] = p_scale * grad[c * s] - w_scale * weight[c];
  grad[t * s] -= scale * target_part;
}

}  // namespace

void softmax(int64_t outer, int64_t D, int64_t inner, const float* x, float* y) {
  for_each_row(outer, D, inner, [&](int64_t, int64_t at, auto s) { softmax_row(D, s, x + at, y + at); });
}

void log_softmax(int64_t outer, int64_t D, int64_t inner, const float* x, float* y) {
  for_each_row(outer, D, inner, [&](int64_t, int64_t at, auto s) { log_softmax_row(D, s, x + at, y + at); });
}

void softmax_backward(int64_t outer, int64_t D, int64_t inner, const float* grad_y, const float* y,
                      float* grad_x) {
  for_each_row(outer, D, inner,
               [&](int64_t, int64_t at, auto s) { softmax_backward_row(D, s, grad_y + at, y + at, grad_x + at); });
}

void log_softmax_backward(int64_t outer, int64_t D, int64_t inner, const float* grad_y, const float* y,
                          float* grad_x) {
  for_each_row(outer, D, inner, [&](int64_t, int64_t at, auto s) {
    log_softmax_backward_row(D, s, grad_y + at, y + at, grad_x + at);
  });
}

void nll_loss(int64_t N, int64_t C, int64_t inner, const float* input, const int64_t* target,
              const float* weight, int64_t ignore_index, Reduction reduction, float* out) {
  std::vector<float> ones;
  const float* w = weights_or_ones(weight, C, ones);
  std::vector<double> losses(N * inner);
  for_each_row(N, C, inner, [&](int64_t r, int64_t at, auto s) {
    const int64_t t = target[r];
    losses[r] = t == ignore_index ? 0.0 : -double(w[t]) * input[at + t * s];
  });
  const bool mean = reduction == Reduction::mean;
  reduce_losses(losses, reduction, mean ? target_weight_sum(N * inner, target, w, ignore_index) : 0.0, out);
}

void nll_loss_backward(int64_t N, int64_t C, int64_t inner, const float* grad_output, const int64_t* target,
                       const float* weight, int64_t ignore_index, Reduction reduction, float* grad_input) {
  std::vector<float> ones;
  const float* w = weights_or_ones(weight, C, ones);
  const float shared = shared_grad_scale(grad_output, N * inner, target, w, ignore_index, reduction);
  for_each_row(N, C, inner, [&](int64_t r, int64_t at, auto s) {
    float* grad = grad_input + at;
    for (int64_t c = 0; c < C; ++c) grad[c * s] = 0.0f;
    const int64_t t = target[r];
    if (t != ignore_index) grad[t * s] = -w[t] * (reduction == Reduction::none ? grad_output[r] : shared);
  });
}

void cross_entropy(int64_t N, int64_t C, int64_t inner, const float* input, const int64_t* target,
                   const float* weight, int64_t ignore_index, float label_smoothing, Reduction reduction,
                   float* out) {
  std::vector<float> ones;
  const float* w = weights_or_ones(weight, C, ones);
  std::vector<double> losses(N * inner);
  for_each_row(N, C, inner, [&](int64_t r, int64_t at, auto s) {
    const int64_t t = target[r];
    losses[r] = t == ignore_index ? 0.0 : cross_entropy_row(C, s, input + at, t, w, label_smoothing);
  });
  const bool mean = reduction == Reduction::mean;
  reduce_losses(losses, reduction, mean ? target_weight_sum(N * inner, target, w, ignore_index) : 0.0, out);
}

void cross_entropy_backward(int64_t N, int64_t C, int64_t inner, const float* grad_output, const float* input,
                            const int64_t* target, const float* weight, int64_t ignore_index,
                            float label_smoothing, Reduction reduction, float* grad_input) {
  std::vector<float> ones;
  const float* w = weights_or_ones(weight, C, ones);
  const float shared = shared_grad_scale(grad_output, N * inner, target, w, ignore_index, reduction);
  double class_weight_sum = 0.0;
  for (int64_t c = 0; c < C; ++c) class_weight_sum += w[c];
  for_each_row(N, C, inner, [&](int64_t r, int64_t at, auto s) {
    float* grad = grad_input + at;
    const int64_t t = target[r];
    if (t == ignore_index) {
      for (int64_t c = 0; c < C; ++c) grad[c * s] = 0.0f;
      return;
    }
    const float scale = reduction == Reduction::none ? grad_output[r] : shared;
    cross_entropy_backward_row(C, s, input + at, t, w, static_cast<float>(class_weight_sum), label_smoothing,
                               scale, grad);
  });
}

}  // namespace fastnn::cpu
