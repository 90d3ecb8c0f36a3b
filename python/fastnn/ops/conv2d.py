"""2-D convolution over NCHW float32 arrays, as torch.nn.functional.conv2d."""
from ._arrays import as_float32, as_optional_float32, integer, kernels, pair

__all__ = ["conv2d", "conv2d_backward"]


def _params(op, stride, padding, dilation, groups):
    """Ints as pairs; padding may also be 'valid' or 'same' (checked by _C with the rest)."""
    return dict(stride=pair(op, "stride", stride),
                padding=padding if isinstance(padding, str) else pair(op, "padding", padding),
                dilation=pair(op, "dilation", dilation), groups=integer(op, "groups", groups))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Convolution of input (N, C_in, H, W) with weight (C_out, C_in / groups, KH, KW), plus
    bias (C_out,); stride, padding and dilation are ints or (h, w) pairs, padding also
    'valid' or 'same' (stride 1). Returns (N, C_out, OH, OW)."""
    op = "conv2d"
    input = as_float32(op, "input", input)
    return kernels(input).conv2d(input, as_float32(op, "weight", weight), as_optional_float32(op, "bias", bias),
                                 **_params(op, stride, padding, dilation, groups))


def conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    needs_input_grad=(True, True, True)):
    """(grad_input, grad_weight, grad_bias) of conv2d; grad_bias is None when bias is None, and
    each gradient whose needs_input_grad entry is false is None, its work skipped (in a first
    layer, grad_input costs as much as grad_weight and nobody reads it)."""
    op = "conv2d_backward"
    need_input, need_weight, need_bias = needs_input_grad
    grad_output = as_float32(op, "grad_output", grad_output)
    return kernels(grad_output).conv2d_backward(grad_output, as_float32(op, "input", input),
                                                as_float32(op, "weight", weight), bias is not None and bool(need_bias),
                                                **_params(op, stride, padding, dilation, groups),
                                                input_grad=bool(need_input), weight_grad=bool(need_weight))
