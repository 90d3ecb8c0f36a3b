// Row kernels of softmax.cpp, compiled once per ISA (see CMakeLists.txt): the reductions and
// exps over one contiguous row, where softmax and cross-entropy spend their time.
#pragma once
#include <cstdint>

namespace fastnn::cpu {

struct SoftmaxKernels {
  // max(x[0:n]), -inf for n = 0. A NaN is skipped, as std::max(max, x[i]) skips it.
  float (*row_max)(int64_t n, const float* x);
  // sum(exp(x[i] - shift)), also storing each term in y[i] when y is not null (y may be x).
  float (*exp_sum)(int64_t n, const float* x, float shift, float* y);
};

}  // namespace fastnn::cpu
