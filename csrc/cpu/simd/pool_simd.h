// Plane kernels of pool.cpp's 2x2 stride-2 max pooling (no padding, no dilation, every window
// inside the input: 2 out_h <= in_h, 2 out_w <= in_w, and in_h * in_w < 2^31), compiled once
// per ISA (see CMakeLists.txt). Each takes one in_h x in_w plane and its out_h x out_w output.
#pragma once
#include <cstdint>

#include "fastnn/pool.h"

namespace fastnn::cpu {

struct PoolKernels {
  int64_t windows_per_vector;  // a row of fewer output columns goes through padded copies
  // output = each window's max and, if at is not null, at = its argmax as a plane offset, by
  // the general kernel's rule (a NaN wins, ties go to the first tap in window order). With
  // relu, output = relu(max) and at = -1 where the max is not positive (relu's gradient is 0).
  void (*max_2x2)(const Pool2dShape& s, const float* input, float* output, int64_t* at, bool relu);
  // grad_input = grad_output at each window's argmax, 0 elsewhere (and where at is -1). The
  // argmax is at, or is recomputed from input (with relu's rule) when at is null. Returns whether
  // some at lies outside its window (only a hand-made `saved` has them): the caller scatters
  // those on top.
  bool (*max_2x2_backward)(const Pool2dShape& s, const float* grad_output, const int64_t* at, const float* input,
                           float* grad_input, bool relu);
};

}  // namespace fastnn::cpu
