// 2-D max and average pooling on the CPU. Tensors are contiguous float32 NCHW; every (n, c)
// plane is pooled on its own, so callers pass N*C as `planes`.
#pragma once
#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cpu {

// Each of `planes` in_h x in_w input planes becomes an out_h x out_w output plane. Output
// (oh, ow) pools the window whose taps are input (oh*stride_h - pad_h + kh*dilation_h,
// ow*stride_w - pad_w + kw*dilation_w) for kh < kernel_h, kw < kernel_w; taps outside the
// input are padding. The caller has checked the sizes (out_h, out_w >= 1, pad <= kernel / 2).
struct Pool2dShape {
  int64_t planes, in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int64_t dilation_h = 1, dilation_w = 1;
};

// output = the maximum over each window, padding counting as -inf. A NaN in a window is its
// maximum; among equal maxima the first in window order (row by row) wins, as in torch.
// indices (may be null) receives the argmax as the offset ih * in_w + iw within its plane, or
// -1 for a window whose taps all fall in padding (possible only with dilation). The window
// may have at most 2^31 - 1 taps (kernel_h * kernel_w), which the kernel numbers in int32.
// relu fuses a relu before the pooling (max_pool2d(relu(input)) = relu(max_pool2d(input))):
// then a window with input taps outputs relu of its max, and its index is -1 where that max is
// not positive, relu's gradient there being 0.
void max_pool2d(const Pool2dShape& s, const float* input, float* output, int64_t* indices, bool relu = false);
// grad_input = grad_output scattered to each window's argmax and summed where windows overlap.
// indices come from max_pool2d (each in [-1, in_h * in_w); -1 scatters nothing), or are null
// to recompute the argmax from input (by the forward's relu rule when relu is set).
void max_pool2d_backward(const Pool2dShape& s, const float* grad_output, const float* input,
                         const int64_t* indices, float* grad_input, bool relu = false);

// output = the sum over each window divided by divisor_override when it is non-zero, else by
// the window's size: counting padding (but not the overhang ceil_mode allows past it) when
// count_include_pad, else counting input elements only. Dilation must be 1.
void avg_pool2d(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override, const float* input,
                float* output);
// grad_input = each grad_output element divided by its window's divisor, spread over the
// window's input elements and summed where windows overlap.
void avg_pool2d_backward(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override,
                         const float* grad_output, float* grad_input);

}  // namespace fastnn::cpu
#pragma GCC visibility pop
