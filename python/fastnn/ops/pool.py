"""Pooling over the last two dims of (N, C, H, W) or (C, H, W) arrays: max_pool2d, avg_pool2d."""
from ._arrays import as_float32, contiguous, kernels, optional_integer, pair

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]


def _window(op, kernel_size, stride, padding):
    """(kernel_size, stride, padding) as pairs; stride None means stride = kernel_size, as in torch."""
    kernel = pair(op, "kernel_size", kernel_size, bits=32)
    return (kernel, kernel if stride is None else pair(op, "stride", stride, bits=32),
            pair(op, "padding", padding, bits=32))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               relu=False):
    """The maximum over each window, padding counting as -inf (NaN wins; ties go to the first
    in window order). With return_indices, returns (output, indices): each window's argmax as an
    int64 offset ih * W + iw into its input plane, as torch gives it, or -1 for a window that
    lies wholly in padding (possible only with dilation). relu=True pools relu(input) in the same
    pass (fastnn's own): a window's output is relu of its max, and its index -1 where that max is
    not positive (relu's gradient there is 0)."""
    op = "max_pool2d"
    input = as_float32(op, "input", input)
    return kernels(input).max_pool2d(input, *_window(op, kernel_size, stride, padding),
                                     pair(op, "dilation", dilation, bits=32), bool(ceil_mode), bool(return_indices),
                                     bool(relu))


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        return_indices=False, relu=False, saved=None):
    """(grad_input,) of max_pool2d with the same relu. `saved`: the indices max_pool2d returned,
    scattered through instead of recomputing each window's argmax from input. return_indices
    does not matter here."""
    op = "max_pool2d_backward"
    grad_output, input = as_float32(op, "grad_output", grad_output), as_float32(op, "input", input)
    window = _window(op, kernel_size, stride, padding)
    dilation = pair(op, "dilation", dilation, bits=32)
    return kernels(grad_output).max_pool2d_backward(grad_output, input, *window, dilation, bool(ceil_mode),
                                                    None if saved is None else contiguous(saved), bool(relu))


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """The mean over each window: the sum divided by divisor_override if given, else by the
    window's size counting padding (count_include_pad) or not."""
    op = "avg_pool2d"
    input = as_float32(op, "input", input)
    return kernels(input).avg_pool2d(input, *_window(op, kernel_size, stride, padding), bool(ceil_mode),
                                     bool(count_include_pad),
                                     optional_integer(op, "divisor_override", divisor_override, bits=32))


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """(grad_input,) of avg_pool2d."""
    op = "avg_pool2d_backward"
    grad_output, input = as_float32(op, "grad_output", grad_output), as_float32(op, "input", input)
    window = _window(op, kernel_size, stride, padding)
    divisor = optional_integer(op, "divisor_override", divisor_override, bits=32)
    return kernels(grad_output).avg_pool2d_backward(grad_output, input, *window, bool(ceil_mode),
                                                    bool(count_include_pad), divisor)
