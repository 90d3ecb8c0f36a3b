"""fastnn's kernels inside PyTorch: autograd functions and drop-in nn modules.

The functions take torch.nn.functional's arguments; the modules subclass torch's (same
parameters, init, state_dict keys and repr) and only change forward, so a model swaps its
layers with no other change, or all at once with `convert(model)`:

    import fastnn.interop.torch as fnt
    model = torch.nn.Sequential(fnt.Conv2d(1, 32, 3), fnt.ReLU(), fnt.MaxPool2d(2), ...)
    loss = fnt.cross_entropy(model(images), labels)
    loss.backward()

Forward and backward run fastnn.ops on the torch tensors themselves (zero-copy, torch tensors
out). Only float32 is supported; errors from fastnn.ops (dtype, shape, device) come through
unchanged. The gradients are computed by fastnn's backward kernels, so they are not
themselves differentiable (no double backward).
"""
try:
    import torch
except ImportError as error:
    raise ImportError("fastnn.interop.torch needs PyTorch, which fastnn does not install: "
                      "pip install torch") from error
from torch import nn
from torch.autograd.function import once_differentiable

from .. import ops

__all__ = ["conv2d", "linear", "matmul", "max_pool2d", "avg_pool2d", "relu", "leaky_relu", "sigmoid", "tanh",
           "gelu", "softmax", "log_softmax", "nll_loss", "cross_entropy", "Conv2d", "Linear", "MaxPool2d",
           "AvgPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax", "NLLLoss",
           "CrossEntropyLoss", "convert"]

# Backward kernels that take the forward's output as `saved` instead of recomputing it.
_SAVES_OUTPUT = {"sigmoid", "tanh", "softmax", "log_softmax"}
# Backward kernels that skip the gradients nobody needs (needs_input_grad).
_SKIPS_GRADIENTS = {"conv2d"}


class _Op(torch.autograd.Function):
    """fastnn.ops.<name>(*tensors, **params) forward and <name>_backward(grad_output, *tensors,
    **params) backward: fastnn.ops' contract gives one gradient per tensor, in order (None for an
    absent bias or for targets), so this one Function serves every op with a single output."""

    @staticmethod
    def forward(ctx, name, params, *tensors):
        output = getattr(ops, name)(*tensors, **params)
        ctx.op, ctx.params = name, params
        ctx.save_for_backward(*tensors, *([output] if name in _SAVES_OUTPUT else []))
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        tensors = list(ctx.saved_tensors)
        extra = {}
        if ctx.op in _SAVES_OUTPUT:
            extra["saved"] = tensors.pop()
        if ctx.op in _SKIPS_GRADIENTS:
            extra["needs_input_grad"] = ctx.needs_input_grad[2:]
        grads = getattr(ops, ctx.op + "_backward")(grad_output, *tensors, **ctx.params, **extra)
        return (None, None, *grads)


class _MaxPool2d(torch.autograd.Function):
    """max_pool2d keeps the argmax indices so that its backward scatters instead of searching."""

    @staticmethod
    def forward(ctx, input, params, return_indices):
        output, indices = ops.max_pool2d(input, **params, return_indices=True)
        ctx.params = params
        ctx.save_for_backward(input, indices)
        if not return_indices:
            return output
        ctx.mark_non_differentiable(indices)
        return output, indices

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output, *grad_indices):
        input, indices = ctx.saved_tensors
        (grad_input,) = ops.max_pool2d_backward(grad_output, input, **ctx.params, saved=indices)
        return grad_input, None, None


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d through fastnn."""
    return _Op.apply("conv2d", dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
                     input, weight, bias)


def linear(input, weight, bias=None):
    """torch.nn.functional.linear through fastnn."""
    return _Op.apply("linear", {}, input, weight, bias)


def matmul(input, other):
    """torch.matmul through fastnn, for 2-D @ 2-D, batched 3-D @ 3-D and 3-D @ 2-D."""
    return _Op.apply("matmul", {}, input, other)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """torch.nn.functional.max_pool2d through fastnn; indices as torch gives them."""
    params = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    return _MaxPool2d.apply(input, params, bool(return_indices))


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """torch.nn.functional.avg_pool2d through fastnn."""
    return _Op.apply("avg_pool2d", dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                                        count_include_pad=count_include_pad, divisor_override=divisor_override),
                     input)


def _not_inplace(op, inplace):
    if inplace:
        raise ValueError(f"{op}: inplace=True is not supported (fastnn's kernels write a new tensor)")


def relu(input, inplace=False):
    """torch.nn.functional.relu through fastnn (inplace=True is refused)."""
    _not_inplace("relu", inplace)
    return _Op.apply("relu", {}, input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """torch.nn.functional.leaky_relu through fastnn (inplace=True is refused)."""
    _not_inplace("leaky_relu", inplace)
    return _Op.apply("leaky_relu", dict(negative_slope=negative_slope), input)


def sigmoid(input):
    """torch.sigmoid through fastnn."""
    return _Op.apply("sigmoid", {}, input)


def tanh(input):
    """torch.tanh through fastnn."""
    return _Op.apply("tanh", {}, input)


def gelu(input, approximate="none"):
    """torch.nn.functional.gelu through fastnn."""
    return _Op.apply("gelu", dict(approximate=approximate), input)


def _softmax_family(name, input, dim, dtype):
    if dim is None:
        raise ValueError(f"{name}: dim must be given (torch's implicit choice of dim is deprecated)")
    if dtype is not None:
        input = input.to(dtype)  # as torch: cast first, so only dtype=torch.float32 can reach the kernel
    return _Op.apply(name, dict(dim=dim), input)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """torch.nn.functional.softmax through fastnn; dim is required."""
    return _softmax_family("softmax", input, dim, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """torch.nn.functional.log_softmax through fastnn; dim is required."""
    return _softmax_family("log_softmax", input, dim, dtype)


def _loss(name, input, target, weight, size_average, reduce, params):
    if size_average is not None or reduce is not None:
        raise ValueError(f"{name}: size_average and reduce are deprecated in torch and not supported; "
                         f"pass reduction='mean', 'sum' or 'none'")
    return _Op.apply(name, params, input, target, weight)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """torch.nn.functional.nll_loss through fastnn (class-index targets)."""
    return _loss("nll_loss", input, target, weight, size_average, reduce,
                 dict(ignore_index=ignore_index, reduction=reduction))


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """torch.nn.functional.cross_entropy through fastnn (class-index targets, not probabilities)."""
    return _loss("cross_entropy", input, target, weight, size_average, reduce,
                 dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing))


class Conv2d(nn.Conv2d):
    """torch.nn.Conv2d computing through fastnn."""

    def forward(self, input):
        if self.padding_mode == "zeros":
            return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        # As torch does: pad by the mode first, then convolve without padding.
        padded = nn.functional.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        return conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Linear(nn.Linear):
    """torch.nn.Linear computing through fastnn."""

    def forward(self, input):
        return linear(input, self.weight, self.bias)


class MaxPool2d(nn.MaxPool2d):
    """torch.nn.MaxPool2d computing through fastnn."""

    def forward(self, input):
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)


class AvgPool2d(nn.AvgPool2d):
    """torch.nn.AvgPool2d computing through fastnn."""

    def forward(self, input):
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override)


class ReLU(nn.ReLU):
    """torch.nn.ReLU computing through fastnn; inplace=True gives the same result, in a new tensor."""

    def forward(self, input):
        return relu(input)


class LeakyReLU(nn.LeakyReLU):
    """torch.nn.LeakyReLU computing through fastnn; inplace=True gives the same result, in a new tensor."""

    def forward(self, input):
        return leaky_relu(input, self.negative_slope)


class Sigmoid(nn.Sigmoid):
    """torch.nn.Sigmoid computing through fastnn."""

    def forward(self, input):
        return sigmoid(input)


class Tanh(nn.Tanh):
    """torch.nn.Tanh computing through fastnn."""

    def forward(self, input):
        return tanh(input)


class GELU(nn.GELU):
    """torch.nn.GELU computing through fastnn."""

    def forward(self, input):
        return gelu(input, self.approximate)


class Softmax(nn.Softmax):
    """torch.nn.Softmax computing through fastnn; dim is required."""

    def forward(self, input):
        return softmax(input, self.dim)


class LogSoftmax(nn.LogSoftmax):
    """torch.nn.LogSoftmax computing through fastnn; dim is required."""

    def forward(self, input):
        return log_softmax(input, self.dim)


class NLLLoss(nn.NLLLoss):
    """torch.nn.NLLLoss computing through fastnn."""

    def forward(self, input, target):
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """torch.nn.CrossEntropyLoss computing through fastnn."""

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                             label_smoothing=self.label_smoothing)


_FASTNN_CLASS = {torch_class: fastnn_class
                 for fastnn_class in (Conv2d, Linear, MaxPool2d, AvgPool2d, ReLU, LeakyReLU, Sigmoid, Tanh, GELU,
                                      Softmax, LogSoftmax, NLLLoss, CrossEntropyLoss)
                 for torch_class in fastnn_class.__bases__}


def convert(module):
    """Switch `module` and every module inside it whose type is exactly one of torch's that
    fastnn covers (nn.Conv2d, nn.Linear, ...) to the fastnn version, in place, keeping
    parameters, buffers and hooks (the fastnn classes add no state, only a forward); returns
    `module`. Subclasses of torch's modules are left alone: their forward may differ."""
    for inner in module.modules():
        fastnn_class = _FASTNN_CLASS.get(type(inner))
        if fastnn_class is not None:
            inner.__class__ = fastnn_class
    return module
