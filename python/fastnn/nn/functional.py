"""torch.nn.functional on fastnn Tensors.

Kernel ops (conv2d, linear, pooling, activations, softmax, nll_loss, cross_entropy) run
fastnn.ops.<name> forward and fastnn.ops.<name>_backward backward, with the same arguments.
dropout calls its kernel (fastnn._C's or fastnn._C.cuda's) directly; batch_norm and the
regression/binary losses are NumPy/CuPy glue written here.
"""
import math

import numpy as np

from .. import ops
from ..ops._arrays import contiguous, kernels
from . import _checks
from ..autograd import Function
from ..random import generator
from ..tensor import Tensor, array_module

__all__ = ["conv2d", "linear", "max_pool2d", "relu_max_pool2d", "avg_pool2d", "relu", "leaky_relu", "sigmoid", "tanh",
           "gelu", "softmax", "log_softmax", "dropout", "batch_norm", "nll_loss", "cross_entropy", "mse_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits"]


class Kernel(Function):
    """An op computed by fastnn.ops: `op` forward and `op`_backward, both given the same arrays
    and keyword arguments. save_output hands the forward's result to the backward as `saved`
    (sigmoid, tanh, softmax), sparing it a recomputation. skip_unneeded passes the backward
    `needs_input_grad`, for ops that can skip a gradient nobody reads (conv2d: the input
    gradient of a first layer)."""

    def forward(self, *arrays, op, kwargs, save_output=False, skip_unneeded=False):
        self.op, self.kwargs = op, kwargs  # first: an error in the op reads the node's name
        out = getattr(ops, op)(*arrays, **kwargs)
        self.saved = (arrays, out if save_output else None)
        self.skip_unneeded = skip_unneeded
        return out

    @property
    def name(self):
        return "".join(word.capitalize() for word in self.op.split("_"))  # cross_entropy -> CrossEntropy

    def backward(self, grad):
        arrays, output = self.saved
        extra = {} if output is None else {"saved": output}
        if self.skip_unneeded:
            extra["needs_input_grad"] = self.needs_input_grad
        return getattr(ops, self.op + "_backward")(grad, *arrays, **self.kwargs, **extra)


class MaxPool2d(Function):
    """max_pool2d whose backward scatters through the argmax indices kept by the forward, or
    relu_max_pool2d (kwargs hold relu=True), whose backward recomputes them from the input: in
    the demo's step (64x64x24x24, 1 thread, CPU time, 3 runs each) writing and reading back the
    int64 indices cost more than re-reading the input, forward 2.2 -> 1.8 ms, backward 2.9 -> 2.5."""

    def forward(self, input, kwargs):
        self.kwargs = kwargs
        if not any(self.needs_input_grad) or kwargs.get("relu"):
            self.saved = (input, None)
            return ops.max_pool2d(input, **kwargs)
        out, indices = ops.max_pool2d(input, return_indices=True, **kwargs)
        self.saved = (input, indices)
        return out

    def backward(self, grad):
        input, indices = self.saved
        return ops.max_pool2d_backward(grad, input, **self.kwargs, saved=indices)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return Kernel.apply(input, weight, bias, op="conv2d", kwargs=kwargs, skip_unneeded=True)


def linear(input, weight, bias=None):
    return Kernel.apply(input, weight, bias, op="linear", kwargs={})


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    kwargs = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    out = MaxPool2d.apply(input, kwargs=kwargs)
    if return_indices:
        return out, Tensor._make(ops.max_pool2d(input._data, return_indices=True, **kwargs)[1])
    return out


def relu_max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """max_pool2d(relu(input)) as one op (fastnn's own; nn.Sequential runs a ReLU followed by a
    MaxPool2d through it): relu's output and its gradient never go through memory."""
    kwargs = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
                  relu=True)
    return MaxPool2d.apply(input, kwargs=kwargs)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    kwargs = dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
    return Kernel.apply(input, op="avg_pool2d", kwargs=kwargs)


def relu(input, inplace=False):
    return Kernel.apply(input, op="relu", kwargs={})


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return Kernel.apply(input, op="leaky_relu", kwargs=dict(negative_slope=negative_slope))


def sigmoid(input):
    return Kernel.apply(input, op="sigmoid", kwargs={}, save_output=True)


def tanh(input):
    return Kernel.apply(input, op="tanh", kwargs={}, save_output=True)


def gelu(input, approximate="none"):
    return Kernel.apply(input, op="gelu", kwargs=dict(approximate=approximate))


def _softmax_dim(dim, ndim):
    # torch's legacy choice when dim is omitted: the class dim of (C,), (N, C) or (N, C, ...) input
    if dim is not None:
        return dim
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, dtype=None):
    input = input if dtype is None else input.type(dtype)
    return Kernel.apply(input, op="softmax", kwargs=dict(dim=_softmax_dim(dim, input.ndim)), save_output=True)


def log_softmax(input, dim=None, dtype=None):
    input = input if dtype is None else input.type(dtype)
    return Kernel.apply(input, op="log_softmax", kwargs=dict(dim=_softmax_dim(dim, input.ndim)), save_output=True)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    kwargs = dict(ignore_index=ignore_index, reduction=reduction)
    return Kernel.apply(input, target, weight, op="nll_loss", kwargs=kwargs)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    kwargs = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    return Kernel.apply(input, target, weight, op="cross_entropy", kwargs=kwargs)


class Dropout(Function):
    """The mask is a function of (seed, element index) drawn by the kernel (fastnn._C.dropout, or
    fastnn._C.cuda.dropout on the GPU), so the backward regenerates it from the seed: one pass
    each way and no mask kept in between."""

    def forward(self, input, p, seed):
        self.p, self.seed = p, seed
        return kernels(input).dropout(contiguous(input), p, seed)

    def backward(self, grad):
        return (kernels(grad).dropout(contiguous(grad), self.p, self.seed),)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes each element with probability p and scales the rest by 1/(1-p) (training only)."""
    p = _checks.number("dropout", "p", p, 0, 1)
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    # The seed comes from fastnn's global generator, so manual_seed makes the masks repeatable.
    return Dropout.apply(input, p=p, seed=int(generator().integers(1 << 64, dtype=np.uint64)))


class BatchNorm(Function):
    """Normalizes each channel (dim 1) over the batch and spatial dims. Training uses the
    batch's statistics and updates the running ones in place; eval uses the running ones."""

    def forward(self, x, weight, bias, running_mean, running_var, training, momentum, eps):
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        if training and x.size:
            mean = x.mean(axis=axes)
            xhat = x - mean.reshape(shape)
            var = (xhat * xhat).mean(axis=axes)
            if running_mean is not None:
                n = x.size // x.shape[1]
                running_mean *= 1 - momentum
                running_mean += momentum * mean
                running_var *= 1 - momentum
                running_var += (momentum * n / max(n - 1, 1)) * var  # running_var is unbiased, as torch keeps it
        elif training:  # an empty batch: nothing to normalize, and the running stats stay as they are (as torch)
            xhat, var = x.copy(), array_module(x).ones(x.shape[1], x.dtype)
        else:
            mean, var = running_mean, running_var
            xhat = x - mean.reshape(shape)
        inv_std = 1 / array_module(x).sqrt(var + eps)
        xhat *= inv_std.reshape(shape)
        self.training, self.axes, self.shape = training, axes, shape
        self.saved = (xhat, inv_std, weight)
        out = xhat if weight is None else xhat * weight.reshape(shape)
        return out if bias is None else out + bias.reshape(shape)

    def backward(self, grad):
        xhat, inv_std, weight = self.saved
        axes, shape = self.axes, self.shape
        grad_bias = grad.sum(axis=axes)
        grad_weight = (grad * xhat).sum(axis=axes)
        scale = inv_std if weight is None else inv_std * weight
        if not self.training:
            grad_input = grad * scale.reshape(shape)
        else:
            # d/dx of (x - mean) / std with mean and std from the same batch:
            # scale * (g - mean(g) - xhat * mean(g * xhat)), per channel.
            n = max(grad.size // grad.shape[1], 1)
            grad_input = grad - (grad_bias / n).reshape(shape)
            grad_input -= xhat * (grad_weight / n).reshape(shape)
            grad_input *= scale.reshape(shape)
        return grad_input, grad_weight, grad_bias, None, None


def _check_batch_norm(input, per_channel, training):
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must have shape (N, C, ...), got shape {tuple(input.shape)}")
    channels = input.shape[1]
    for name, value in per_channel.items():
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},) (one per channel of input "
                             f"{tuple(input.shape)}), got {tuple(value.shape)}")
    if not training and (per_channel["running_mean"] is None or per_channel["running_var"] is None):
        raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
    if training and math.prod(input.shape[:1] + input.shape[2:]) == 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input of shape "
                         f"{tuple(input.shape)}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    _check_batch_norm(input, dict(running_mean=running_mean, running_var=running_var, weight=weight, bias=bias),
                      training)
    return BatchNorm.apply(input, weight, bias, running_mean, running_var, training=training, momentum=momentum,
                           eps=eps)


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def _reduce_backward(grad, size, reduction):
    """The gradient of each element's loss: the output grad, divided by the count for 'mean'."""
    return grad / grad.dtype.type(size) if reduction == "mean" else grad


class MSELoss(Function):
    def forward(self, input, target, reduction):
        diff = input - target
        self.saved, self.reduction = diff, reduction
        return _reduce(diff * diff, reduction)

    def backward(self, grad):
        diff = self.saved
        grad_input = 2 * _reduce_backward(grad, diff.size, self.reduction) * diff
        return grad_input, -grad_input if self.needs_input_grad[1] else None


def _check_elementwise_loss(op, input, target, reduction, **weights):
    _checks.same_shape(op, input, target)
    _checks.reduction(op, reduction)
    for name, value in weights.items():
        _checks.broadcastable(op, name, value, input.shape)


def mse_loss(input, target, reduction="mean"):
    _check_elementwise_loss("mse_loss", input, target, reduction)
    return MSELoss.apply(input, target, reduction=reduction)


class BinaryCrossEntropy(Function):
    """-(t log x + (1 - t) log(1 - x)), the logs clamped at -100 as torch does so that x = 0
    or 1 gives a finite loss. The target is treated as a constant."""

    def forward(self, x, target, weight, reduction):
        xp = array_module(x)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError("binary_cross_entropy: all elements of input should be between 0 and 1")
        with np.errstate(divide="ignore"):
            log_x = xp.maximum(xp.log(x), -100)
            log_1mx = xp.maximum(xp.log1p(-x), -100)
        loss = -(target * log_x + (1 - target) * log_1mx)
        if weight is not None:
            loss = loss * weight
        self.saved, self.reduction = (x, target, weight), reduction
        return _reduce(loss, reduction)

    def backward(self, grad):
        x, target, weight = self.saved
        grad = _reduce_backward(grad, x.size, self.reduction)
        grad_input = grad * (x - target) / array_module(x).maximum(x * (1 - x), 1e-12)
        if weight is not None:
            grad_input = grad_input * weight
        return grad_input, None, None


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    _check_elementwise_loss("binary_cross_entropy", input, target, reduction, weight=weight)
    return BinaryCrossEntropy.apply(input, target, weight, reduction=reduction)


class BinaryCrossEntropyWithLogits(Function):
    """sigmoid + binary cross-entropy in one stable formula: with softplus(-x) = log(1 + e^-x)
    computed as log1p(e^-|x|) + max(-x, 0), nothing overflows for any x. The target is treated
    as a constant."""

    def forward(self, x, target, weight, pos_weight, reduction):
        xp = array_module(x)
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
        log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
        loss = (1 - target) * x + log_weight * softplus_neg
        if weight is not None:
            loss = loss * weight
        self.saved, self.reduction = (x, target, weight, log_weight, softplus_neg), reduction
        return _reduce(loss, reduction)

    def backward(self, grad):
        x, target, weight, log_weight, softplus_neg = self.saved
        one_minus_sigmoid = array_module(x).exp(-x - softplus_neg)  # 1 - sigmoid(x) = e^-x / (1 + e^-x)
        grad_input = _reduce_backward(grad, x.size, self.reduction) * ((1 - target) - log_weight * one_minus_sigmoid)
        if weight is not None:
            grad_input = grad_input * weight
        return grad_input, None, None, None


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    _check_elementwise_loss("binary_cross_entropy_with_logits", input, target, reduction, weight=weight,
                            pos_weight=pos_weight)
    return BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight, reduction=reduction)
