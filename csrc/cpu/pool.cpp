// Pooling kernels: threads split the N*C planes, and each output row is built tap by tap. For
// one tap (kh, kw) of the window, a strided sweep runs over every output column of the row
// whose tap lands inside the input; that sweep is a branch-free loop over ow the compiler
// vectorizes, where a loop over one window's handful of taps would not be.
#include "fastnn/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/parallel.h"
#include "pool_window.h"

namespace fastnn::cpu {
namespace {

// A parallel region costs a few microseconds; ~64K taps per thread keeps that under ~10%.
constexpr int64_t kMinTapsPerThread = int64_t(1) << 16;

int64_t planes_per_thread(const Pool2dShape& s) {
  // In double: a huge padded kernel's taps would overflow int64 (only those inside are read).
  const double taps_per_plane = double(s.out_h) * double(s.out_w) * double(std::min(s.kernel_h, s.in_h)) *
                                    double(std::min(s.kernel_w, s.in_w)) +
                                double(s.in_h) * double(s.in_w);
  return std::max<int64_t>(1, int64_t(double(kMinTapsPerThread) / taps_per_plane));
}

// Calls sweep(ih, offset, cols) for each tap (kh, kw) of output row oh, in window order, that
// reads the input for some output column: columns ow in cols read input (ih, ow * stride_w +
// offset). Taps wholly in padding are skipped, so a huge padded kernel costs nothing extra.
template <class Sweep>
void for_each_tap(const Pool2dShape& s, int64_t oh, Sweep&& sweep) {
  const int64_t top = oh * s.stride_h - s.pad_h;
  const Span rows = inside(top, s.dilation_h, s.in_h, s.kernel_h);
  // Tap kw reads columns kw * dilation_w - pad_w + ow * stride_w for ow < out_w; some can lie
  // in the input only if the last one is >= 0 and the first < in_w, which is this range.
  const int64_t span_w = (s.out_w - 1) * s.stride_w;
  const Span taps_w = inside(span_w - s.pad_w, s.dilation_w, s.in_w + span_w, s.kernel_w);
  for (int64_t kh = rows.begin; kh < rows.end; ++kh)
    for (int64_t kw = taps_w.begin; kw < taps_w.end; ++kw) {
      const int64_t offset = kw * s.dilation_w - s.pad_w;
      sweep(top + kh * s.dilation_h, offset, inside(offset, s.stride_w, s.in_w, s.out_w));
    }
}

// Per-thread scratch for one output row of max pooling. sweep[ow] numbers the sweep whose tap
// holds window ow's running max (-1: no input tap yet), and sweep_start[n] is where sweep n
// reads: plane offset sweep_start[n] + ow * stride_w. An int32 number, the width of the values,
// lets the sweep's selects vectorize even with SSE2 (int64 offsets there do not); the binding
// keeps kernel_h * kernel_w, and so the number of sweeps, within int32.
struct ArgmaxScratch {
  std::vector<int32_t> sweep;
  std::vector<int64_t> sweep_start;
  explicit ArgmaxScratch(int64_t out_w) : sweep(out_w) {}
};

// Pools output row oh into best and, if best_at is not null, each window's argmax offset in
// the plane (or -1) into best_at. torch's running-max rule: a tap replaces the max when
// greater, when NaN (so NaN propagates), or when it is the window's first input tap (so an all
// -inf window still has an argmax); ties keep the earlier tap. With relu, a window with input
// taps gets relu(max), and no argmax where the max is not positive (relu's gradient there is 0).
void max_pool_row(const Pool2dShape& s, const float* plane, int64_t oh, float* best, int64_t* best_at,
                  ArgmaxScratch& scratch, bool relu) {
  int32_t* best_sweep = scratch.sweep.data();
  scratch.sweep_start.clear();
  std::fill(best, best + s.out_w, -std::numeric_limits<float>::infinity());
  std::fill(best_sweep, best_sweep + s.out_w, -1);
  for_each_tap(s, oh, [&](int64_t ih, int64_t offset, Span cols) {
    const int32_t n = int32_t(scratch.sweep_start.size());
    const int64_t start = ih * s.in_w + offset;
    scratch.sweep_start.push_back(start);
    for (int64_t ow = cols.begin; ow < cols.end; ++ow) {
      const float value = plane[start + ow * s.stride_w];
      const bool take = (value > best[ow]) | std::isnan(value) | (best_sweep[ow] < 0);
      best[ow] = take ? value : best[ow];
      best_sweep[ow] = take ? n : best_sweep[ow];
    }
  });
  if (relu)
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      if (best_sweep[ow] < 0) continue;
      best_sweep[ow] = best[ow] > 0 ? best_sweep[ow] : -1;
      best[ow] = best[ow] < 0 ? 0.0f : best[ow];  // NaN passes, as relu's kernel lets it
    }
  if (!best_at) return;
  // Locals, not s.* or the vector: a store to best_at (int64) could alias them, and GCC would
  // reload them for every column.
  const int64_t* sweep_start = scratch.sweep_start.data();
  const int64_t out_w = s.out_w, stride_w = s.stride_w;
  for (int64_t ow = 0; ow < out_w; ++ow)
    best_at[ow] = best_sweep[ow] < 0 ? -1 : sweep_start[best_sweep[ow]] + ow * stride_w;
}

// scale[ow] = 1 / divisor of output (oh, ow).
void avg_scales(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override, int64_t oh, float* scale) {
  const WindowSize h = window_size(oh, s.stride_h, s.pad_h, s.kernel_h, s.in_h);
  for (int64_t ow = 0; ow < s.out_w; ++ow) {
    scale[ow] = avg_scale(h, window_size(ow, s.stride_w, s.pad_w, s.kernel_w, s.in_w), count_include_pad,
                          divisor_override);
  }
}

// The common 2x2 stride-2 window with no padding or dilation, whose windows all lie inside
// the input, has row kernels of its own (cpu/simd/pool_simd.h) for planes under 2^31 elements.
bool is_whole_2x2(const Pool2dShape& s) {
  return s.kernel_h == 2 && s.kernel_w == 2 && s.stride_h == 2 && s.stride_w == 2 && s.pad_h == 0 && s.pad_w == 0 &&
         s.dilation_h == 1 && s.dilation_w == 1 && 2 * s.out_h <= s.in_h && 2 * s.out_w <= s.in_w &&
         s.in_h * s.in_w <= std::numeric_limits<int32_t>::max();
}

void max_pool_2x2(const Pool2dShape& s, const float* input, float* output, int64_t* indices, bool relu) {
  const auto plane = isa().pool->max_2x2;
  parallel_for(s.planes, planes_per_thread(s), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t o = p * s.out_h * s.out_w;
      plane(s, input + p * s.in_h * s.in_w, output + o, indices ? indices + o : nullptr, relu);
    }
  });
}

void max_pool_2x2_backward(const Pool2dShape& s, const float* grad_output, const float* input,
                           const int64_t* indices, float* grad_input, bool relu) {
  const auto plane = isa().pool->max_2x2_backward;
  parallel_for(s.planes, planes_per_thread(s), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t o = p * s.out_h * s.out_w, i = p * s.in_h * s.in_w;
      if (!plane(s, grad_output + o, indices ? indices + o : nullptr, input + i, grad_input + i, relu)) continue;
      // Offsets outside their own window (possible only in a hand-made `saved`) are added on top.
      for (int64_t oh = 0; oh < s.out_h; ++oh)
        for (int64_t ow = 0; ow < s.out_w; ++ow) {
          const int64_t at = indices[o + oh * s.out_w + ow], relative = at - (2 * oh * s.in_w + 2 * ow);
          if (at >= 0 && relative != 0 && relative != 1 && relative != s.in_w && relative != s.in_w + 1)
            grad_input[i + at] += grad_output[o + oh * s.out_w + ow];
        }
    }
  });
}

}  // namespace

void max_pool2d(const Pool2dShape& s, const float* input, float* output, int64_t* indices, bool relu) {
  if (is_whole_2x2(s)) return max_pool_2x2(s, input, output, indices, relu);
  parallel_for(s.planes, planes_per_thread(s), [&](int64_t begin, int64_t end) {
    ArgmaxScratch scratch(s.out_w);
    for (int64_t p = begin; p < end; ++p)
      for (int64_t oh = 0; oh < s.out_h; ++oh) {
        const int64_t o = (p * s.out_h + oh) * s.out_w;
        max_pool_row(s, input + p * s.in_h * s.in_w, oh, output + o, indices ? indices + o : nullptr, scratch, relu);
      }
  });
}

void max_pool2d_backward(const Pool2dShape& s, const float* grad_output, const float* input,
                         const int64_t* indices, float* grad_input, bool relu) {
  // With saved indices, rows narrower than the plane kernel's narrowest vector scatter faster
  // than they stage through its padded copies (256x32x14x14, AVX-512, 1 thread: 0.85 vs 2.4 ms).
  const bool narrow_saved = indices && s.out_w < isa().pool->windows_per_vector;
  if (is_whole_2x2(s) && !narrow_saved) return max_pool_2x2_backward(s, grad_output, input, indices, grad_input, relu);
  parallel_for(s.planes, planes_per_thread(s), [&](int64_t begin, int64_t end) {
    ArgmaxScratch scratch(indices ? 0 : s.out_w);
    std::vector<float> best(indices ? 0 : s.out_w);
    std::vector<int64_t> best_at(indices ? 0 : s.out_w);
    for (int64_t p = begin; p < end; ++p) {
      float* grad_plane = grad_input + p * s.in_h * s.in_w;
      std::fill(grad_plane, grad_plane + s.in_h * s.in_w, 0.0f);
      for (int64_t oh = 0; oh < s.out_h; ++oh) {
        const int64_t o = (p * s.out_h + oh) * s.out_w;
        const int64_t* at = indices ? indices + o : best_at.data();
        if (!indices) max_pool_row(s, input + p * s.in_h * s.in_w, oh, best.data(), best_at.data(), scratch, relu);
        // Overlapping windows can pick the same input, hence +=.
        for (int64_t ow = 0; ow < s.out_w; ++ow)
          if (at[ow] >= 0) grad_plane[at[ow]] += grad_output[o + ow];
      }
    }
  });
}

void avg_pool2d(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override, const float* input,
                float* output) {
  parallel_for(s.planes, planes_per_thread(s), [&](int64_t begin, int64_t end) {
    std::vector<float> scale(s.out_w);
    for (int64_t p = begin; p < end; ++p) {
      const float* plane = input + p * s.in_h * s.in_w;
      for (int64_t oh = 0; oh < s.out_h; ++oh) {
        float* sum = output + (p * s.out_h + oh) * s.out_w;
        std::fill(sum, sum + s.out_w, 0.0f);
        for_each_tap(s, oh, [&](int64_t ih, int64_t offset, Span cols) {
          const int64_t row = ih * s.in_w + offset;
          for (int64_t ow = cols.begin; ow < cols.end; ++ow) sum[ow] += plane[row + ow * s.stride_w];
        });
        avg_scales(s, count_include_pad, divisor_override, oh, scale.data());
        for (int64_t ow = 0; ow < s.out_w; ++ow) sum[ow] *= scale[ow];
      }
    }
  });
}

void avg_pool2d_backward(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override,
                         const float* grad_output, float* grad_input) {
  parallel_for(s.planes, planes_per_thread(s), [&](int64_t begin, int64_t end) {
    std::vector<float> share(s.out_w);
    for (int64_t p = begin; p < end; ++p) {
      float* grad_plane = grad_input + p * s.in_h * s.in_w;
      std::fill(grad_plane, grad_plane + s.in_h * s.in_w, 0.0f);
      for (int64_t oh = 0; oh < s.out_h; ++oh) {
        const float* grad = grad_output + (p * s.out_h + oh) * s.out_w;
        avg_scales(s, count_include_pad, divisor_override, oh, share.data());
        for (int64_t ow = 0; ow < s.out_w; ++ow) share[ow] *= grad[ow];
        // Within one tap the columns ow * stride_w + offset are distinct, so the sweep has no
        // conflicting writes; overlapping windows accumulate across taps.
        for_each_tap(s, oh, [&](int64_t ih, int64_t offset, Span cols) {
          const int64_t row = ih * s.in_w + offset;
          for (int64_t ow = cols.begin; ow < cols.end; ++ow) grad_plane[row + ow * s.stride_w] += share[ow];
        });
      }
    }
  });
}

}  // namespace fastnn::cpu
