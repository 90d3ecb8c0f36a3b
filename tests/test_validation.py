"""Every public entry rejects a bad input with an error naming the argument; awkward but valid
inputs (NaN/Inf, huge logits, zero-size batches, read-only, strided, unaligned and broadcast
arrays) give the reference's answer at the nn.functional / Tensor level.

The bad inputs are one table: (call, exception type, a regex the message must match), grouped
by category. The regex names the argument, so a check that fires for the wrong reason fails.
"""
import importlib.util

import numpy as np
import pytest

import fastnn
import reference
from fastnn import nn, ops, optim
from fastnn.data import DataLoader, TensorDataset
from fastnn.nn import functional as F
from opcheck import _layout_variants

HAS_TORCH = importlib.util.find_spec("torch") is not None


def randn(*shape):
    return fastnn.randn(*shape)


def x4():
    return fastnn.randn(2, 3, 5, 5)


def w4(c_in=3):
    return fastnn.randn(4, c_in, 3, 3)


def f32(*shape):
    return np.zeros(shape, np.float32)


def labels(*values):
    return fastnn.tensor(list(values))


def param():
    return nn.Parameter(fastnn.zeros(2))


SHARED_PARAMETER = param()


BAD_INPUTS = {
    "shape": [
        (lambda: F.conv2d(randn(2, 4, 5, 5), w4()), ValueError, r"conv2d: weight has 3 input channels.*input has 4"),
        (lambda: F.conv2d(randn(3, 5, 5), w4()), ValueError, r"conv2d: input must have shape \(N, C_in, H, W\)"),
        (lambda: F.conv2d(x4(), randn(4, 3, 3)), ValueError, r"conv2d: weight must have shape"),
        (lambda: F.conv2d(x4(), w4(), randn(5)), ValueError, r"conv2d: bias must have shape \(4,\), got \(5,\)"),
        (lambda: F.conv2d(x4(), randn(4, 3, 7, 7)), ValueError, r"conv2d: dilated kernel height 7 .*exceeds"),
        (lambda: nn.Conv2d(3, 4, 3)(randn(2, 4, 5, 5)), ValueError, r"conv2d: weight has 3 input channels"),
        (lambda: F.linear(randn(4, 5), randn(3, 4)), ValueError, r"linear: weight has in_features=4 .* 5 features"),
        (lambda: F.linear(randn(4, 5), randn(3, 5), randn(4)), ValueError, r"linear: bias must have shape \(3,\)"),
        (lambda: F.linear(randn(4, 5), randn(5)), ValueError, r"linear: weight must have shape \(out_features"),
        (lambda: F.linear(fastnn.tensor(1.0), randn(3, 1)), ValueError, r"linear: input must have at least 1 dim"),
        (lambda: nn.Linear(3, 2)(randn(4, 5)), ValueError, r"linear: weight has in_features=3"),
        (lambda: randn(4, 5) @ randn(4, 3), ValueError, r"matmul: a has K=5 columns but b has 4 rows"),
        (lambda: ops.matmul(f32(3), f32(3)), ValueError, r"matmul: a must have shape \(M, K\)"),
        (lambda: ops.matmul(f32(2, 2, 3), f32(3, 3, 2)), ValueError, r"matmul: b has batch 3 but a has batch 2"),
        (lambda: F.max_pool2d(randn(5, 5), 2), ValueError, r"max_pool2d: input must have shape \(N, C, H, W\)"),
        (lambda: F.avg_pool2d(randn(5, 5), 2), ValueError, r"avg_pool2d: input must have shape"),
        (lambda: ops.relu_backward(f32(3), f32(4)),
         ValueError, r"relu_backward: grad_output must have the input's shape \(4,\)"),
        (lambda: ops.linear_backward(f32(3, 3), f32(2, 5), f32(3, 5)),
         ValueError, r"linear_backward: grad_output must have leading shape"),
        (lambda: ops.conv2d_backward(f32(2, 4, 2, 2), f32(2, 3, 5, 5), f32(4, 3, 3, 3)),
         ValueError, r"conv2d_backward: grad_output must have shape \(2, 4, 3, 3\)"),
        (lambda: ops.max_pool2d_backward(f32(2, 3, 3, 3), f32(2, 3, 5, 5), 2),
         ValueError, r"max_pool2d_backward: grad_output must have the output's shape"),
        (lambda: ops.max_pool2d_backward(f32(2, 3, 2, 2), f32(2, 3, 5, 5), 2, saved=np.zeros(3, np.int64)),
         ValueError, r"max_pool2d_backward: saved must have shape"),
        (lambda: ops.softmax_backward(f32(2, 3), f32(2, 3), saved=f32(3)),
         ValueError, r"softmax_backward: saved must have the input's shape"),
        (lambda: ops.cross_entropy_backward(f32(3), f32(2, 3), np.zeros(2, np.int64)),
         ValueError, r"cross_entropy_backward: grad_output must have shape \(\)"),
        (lambda: F.cross_entropy(randn(4, 5), labels(0, 1, 2)),
         ValueError, r"cross_entropy: target must have shape \(4,\).*got \(3,\)"),
        (lambda: F.cross_entropy(randn(4, 5), labels([0, 1, 2, 3])),
         ValueError, r"cross_entropy: target must have shape \(4,\).*got \(1, 4\)"),
        (lambda: F.cross_entropy(randn(4, 5), labels(0, 1, 2, 3), weight=fastnn.ones(3)),
         ValueError, r"cross_entropy: weight must have shape \(5,\)"),
        (lambda: F.nll_loss(fastnn.tensor(1.0), fastnn.tensor(0)),
         ValueError, r"nll_loss: input must have shape \(N, C, \.\.\.\)"),
        (lambda: F.mse_loss(randn(4, 5), randn(3, 5)),
         ValueError, r"mse_loss: target must have the input's shape \(4, 5\), got \(3, 5\)"),
        (lambda: F.mse_loss(randn(4, 5), randn(5)), ValueError, r"mse_loss: target must have the input's shape"),
        (lambda: F.binary_cross_entropy(fastnn.rand(4), fastnn.rand(3)),
         ValueError, r"binary_cross_entropy: target must have the input's shape"),
        (lambda: F.binary_cross_entropy(fastnn.rand(4), fastnn.rand(4), weight=fastnn.ones(3)),
         ValueError, r"binary_cross_entropy: weight of shape \(3,\) does not broadcast"),
        (lambda: F.binary_cross_entropy_with_logits(randn(4), fastnn.rand(3)),
         ValueError, r"binary_cross_entropy_with_logits: target must have"),
        (lambda: F.binary_cross_entropy_with_logits(randn(2, 4), fastnn.rand(2, 4), pos_weight=fastnn.ones(2)),
         ValueError, r"pos_weight of shape \(2,\) does not broadcast"),
        (lambda: F.batch_norm(x4(), fastnn.zeros(4), fastnn.ones(4)),
         ValueError, r"batch_norm: running_mean must have shape \(3,\).*got \(4,\)"),
        (lambda: F.batch_norm(x4(), fastnn.zeros(3), fastnn.ones(3), weight=fastnn.ones(2)),
         ValueError, r"batch_norm: weight must have shape \(3,\)"),
        (lambda: F.batch_norm(randn(3), fastnn.zeros(3), fastnn.ones(3)),
         ValueError, r"batch_norm: input must have shape \(N, C, \.\.\.\)"),
        (lambda: nn.BatchNorm2d(4)(x4()), ValueError, r"BatchNorm2d: expected 4 channels"),
        (lambda: nn.BatchNorm2d(3)(randn(3, 5, 5)), ValueError, r"BatchNorm2d: expected 4D input"),
        (lambda: nn.BatchNorm1d(3)(x4()), ValueError, r"BatchNorm1d: expected 2D or 3D input"),
        (lambda: x4().reshape(7, 7), ValueError, r"cannot reshape array of size 150 into shape \(7, ?7\)"),
        (lambda: x4().view(-1, -1), ValueError, r"only specify one unknown dimension"),
        (lambda: x4().permute(0, 1), ValueError, r"permute: dims \(0, 1\) must be a permutation"),
        (lambda: x4().expand(3, 3, 5, 5), ValueError, r"broadcast.*\(2, ?3, ?5, ?5\)"),
        (lambda: x4().flatten(2, 1), ValueError, r"flatten: start_dim 2 comes after end_dim 1"),
        (lambda: TensorDataset(f32(3), f32(4)), ValueError, r"same first dimension, got \[3, 4\]"),
    ],
    "dtype": [
        (lambda: F.conv2d(x4().double(), w4()), TypeError, r"conv2d: input must be float32, got float64"),
        (lambda: F.conv2d(x4(), w4().double()), TypeError, r"conv2d: weight must be float32, got float64"),
        (lambda: F.linear(randn(4, 5).long(), randn(3, 5)), TypeError, r"linear: input must be float32, got int64"),
        (lambda: F.relu(fastnn.tensor([1, 2])), TypeError, r"relu: input must be float32, got int64"),
        (lambda: F.softmax(randn(2, 3).double(), dim=1), TypeError, r"softmax: input must be float32"),
        (lambda: F.max_pool2d(x4().double(), 2), TypeError, r"max_pool2d: input must be float32"),
        (lambda: ops.relu(np.zeros(3, bool)), TypeError, r"relu: input must be float32, got bool"),
        (lambda: ops.conv2d(None, f32(4, 3, 3, 3)), TypeError, r"conv2d: input must be float32, got object"),
        (lambda: F.cross_entropy(randn(4, 5), fastnn.tensor([0.0, 1.0, 2.0, 3.0])),
         TypeError, r"cross_entropy: target must hold integer class indices, got float32"),
        (lambda: F.nll_loss(randn(2, 3), labels(0, 1), weight=fastnn.ones(3).double()),
         TypeError, r"nll_loss: weight must be float32"),
        (lambda: ops.max_pool2d_backward(f32(2, 3, 2, 2), f32(2, 3, 5, 5), 2, saved=np.zeros((2, 3, 2, 2), "i4")),
         TypeError, r"max_pool2d_backward: saved must be int64, got int32"),
        (lambda: fastnn.zeros(2, dtype="bogus"), TypeError, r"dtype must be a dtype .*got 'bogus'"),
        (lambda: fastnn.tensor([1.0], dtype="bogus"), TypeError, r"dtype must be a dtype"),
        (lambda: x4().type("bogus"), TypeError, r"dtype must be a dtype"),
        (lambda: x4().to(5.5), TypeError, r"dtype must be a dtype .*got 5.5"),
        (lambda: F.leaky_relu(randn(3), "a"), TypeError, r"leaky_relu: negative_slope must be a number, got 'a'"),
        (lambda: F.softmax(randn(2, 3), dim=1.5), TypeError, r"softmax: dim must be an int, got 1.5"),
        (lambda: ops.log_softmax_backward(f32(2, 3), f32(2, 3), dim="1"),
         TypeError, r"log_softmax_backward: dim must be an int"),
        (lambda: fastnn.zeros(2.5), TypeError, r"size must be ints, got \(2.5,\)"),
        (lambda: x4().sum(1.5), TypeError, r"dim must be an int, got 1.5"),
    ],
    "device": [
        (lambda: fastnn.device("tpu"), ValueError, r"device: expected 'cpu' or 'cuda' .*got 'tpu'"),
        (lambda: fastnn.device("cpu:x"),
         ValueError, r"device: the index after 'cpu:' must be a non-negative int, got 'x'"),
        (lambda: fastnn.device("cuda:-1"),
         ValueError, r"device: the index after 'cuda:' must be a non-negative int, got '-1'"),
        (lambda: fastnn.device("cuda", -1), ValueError, r"device: index must be a non-negative int, got -1"),
        (lambda: fastnn.rand(2, device="tpu"), ValueError, r"device: expected 'cpu' or 'cuda'"),
        (lambda: x4().to("gpu"), ValueError, r"device: expected 'cpu' or 'cuda' .*got 'gpu'"),
    ],
    "parameter value": [
        (lambda: F.conv2d(x4(), w4(), stride=0), ValueError, r"conv2d: stride must be >= 1, got \(0, 0\)"),
        (lambda: F.conv2d(x4(), w4(), padding=-1), ValueError, r"conv2d: padding must be >= 0"),
        (lambda: F.conv2d(x4(), w4(), dilation=0), ValueError, r"conv2d: dilation must be >= 1"),
        (lambda: F.conv2d(x4(), w4(), groups=0), ValueError, r"conv2d: groups must be >= 1, got 0"),
        (lambda: F.conv2d(x4(), w4(), groups=2), ValueError, r"conv2d: groups=2 must divide the input's 3 channels"),
        (lambda: F.conv2d(x4(), w4(), padding="bogus"),
         ValueError, r"conv2d: padding must be 'valid', 'same' or a pair of ints, got 'bogus'"),
        (lambda: F.conv2d(x4(), w4(), padding="same", stride=2), ValueError, r"conv2d: padding='same' needs stride 1"),
        (lambda: F.conv2d(x4(), w4(), stride=(1, 1, 1)),
         ValueError, r"conv2d: stride must be an int or a pair of ints"),
        (lambda: F.max_pool2d(x4(), 0), ValueError, r"max_pool2d: kernel_size must be >= 1"),
        (lambda: F.max_pool2d(x4(), 1.5), TypeError, r"max_pool2d: kernel_size must be an int or a pair of ints, got 1.5"),
        (lambda: ops.conv2d(f32(2, 3, 5, 5), f32(4, 3, 3, 3), groups=1.0), TypeError, r"conv2d: groups must be an int, got 1.0"),
        (lambda: ops.max_pool2d(f32(2, 3, 5, 5), 2**40), ValueError, r"max_pool2d: kernel_size must fit in a signed 32-bit int"),
        (lambda: ops.avg_pool2d(f32(2, 3, 5, 5), 2, divisor_override=1.5),
         TypeError, r"avg_pool2d: divisor_override must be an int, got 1.5"),
        (lambda: ops.avg_pool2d(f32(2, 3, 5, 5), 2, divisor_override=2**40),
         ValueError, r"avg_pool2d: divisor_override must fit in a signed 32-bit int"),
        (lambda: ops.nll_loss(f32(3, 5), np.array([1, 2, 3]), ignore_index=1.5),
         TypeError, r"nll_loss: ignore_index must be an int, got 1.5"),
        (lambda: ops.cross_entropy(f32(3, 5), np.array([1, 2, 3]), ignore_index=2**70),
         ValueError, r"cross_entropy: ignore_index must fit in a signed 64-bit int"),
        (lambda: ops.cross_entropy(f32(3, 5), np.array([1, 2, 3]), reduction=None),
         TypeError, r"cross_entropy: reduction must be a string, got None"),
        (lambda: ops.cross_entropy_backward(np.float32(1), f32(3, 5), np.array([1, 2, 3]), label_smoothing="x"),
         TypeError, r"cross_entropy_backward: label_smoothing must be a real number, got 'x'"),
        (lambda: ops.gelu(f32(2, 3, 5, 5), approximate=None), TypeError, r"gelu: approximate must be a string, got None"),
        (lambda: nn.Conv2d(3, 4, 3, stride=1.5), TypeError, r"stride must be an int or a pair of ints, got 1.5"),
        (lambda: F.max_pool2d(x4(), 2, stride=0), ValueError, r"max_pool2d: stride must be >= 1"),
        (lambda: F.max_pool2d(x4(), 2, padding=2),
         ValueError, r"max_pool2d: padding must be at most half of kernel_size"),
        (lambda: F.max_pool2d(x4(), 2, dilation=0), ValueError, r"max_pool2d: dilation must be >= 1"),
        (lambda: F.max_pool2d(x4(), 7), ValueError, r"max_pool2d: kernel larger than padded input"),
        (lambda: F.avg_pool2d(x4(), 0), ValueError, r"avg_pool2d: kernel_size must be >= 1"),
        (lambda: F.avg_pool2d(x4(), 2, divisor_override=0),
         ValueError, r"avg_pool2d: divisor_override must be non-zero"),
        (lambda: F.avg_pool2d(x4(), 2, padding=2), ValueError, r"avg_pool2d: padding must be at most half"),
        (lambda: F.gelu(randn(3), approximate="bogus"),
         ValueError, r"gelu: approximate must be 'none' or 'tanh', got 'bogus'"),
        (lambda: ops.gelu_backward(f32(3), f32(3), approximate="x"),
         ValueError, r"gelu_backward: approximate must be"),
        (lambda: F.softmax(randn(4, 5), dim=5),
         ValueError, r"softmax: dim 5 is out of range for input of shape \(4, 5\)"),
        (lambda: F.log_softmax(randn(4, 5), dim=-3), ValueError, r"log_softmax: dim -3 is out of range"),
        (lambda: F.cross_entropy(randn(4, 5), labels(0, 1, 2, 3), reduction="bogus"),
         ValueError, r"cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'bogus'"),
        (lambda: F.nll_loss(randn(4, 5), labels(0, 1, 2, 3), reduction="bogus"),
         ValueError, r"nll_loss: reduction must be"),
        (lambda: F.mse_loss(randn(3), randn(3), reduction="avg"),
         ValueError, r"mse_loss: reduction must be one of 'mean', 'sum', 'none', got 'avg'"),
        (lambda: F.binary_cross_entropy(fastnn.rand(3), fastnn.rand(3), reduction="x"),
         ValueError, r"binary_cross_entropy: reduction must be"),
        (lambda: F.binary_cross_entropy_with_logits(randn(3), fastnn.rand(3), reduction="x"),
         ValueError, r"binary_cross_entropy_with_logits: reduction must be"),
        (lambda: F.cross_entropy(randn(4, 5), labels(0, 1, 2, 3), label_smoothing=1.5),
         ValueError, r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"),
        (lambda: F.cross_entropy(randn(4, 5), labels(0, 1, 2, 3), label_smoothing=-0.1),
         ValueError, r"cross_entropy: label_smoothing must be in \[0, 1\]"),
        (lambda: F.dropout(randn(3), 1.5), ValueError, r"dropout: p must be in \[0, 1\], got 1.5"),
        (lambda: F.dropout(randn(3), float("nan")), ValueError, r"dropout: p must be in \[0, 1\], got nan"),
        (lambda: F.batch_norm(randn(1, 3), fastnn.zeros(3), fastnn.ones(3), training=True),
         ValueError, r"batch_norm: expected more than 1 value per channel when training"),
        (lambda: F.batch_norm(randn(2, 3), None, None, training=False),
         ValueError, r"batch_norm: running_mean and running_var are needed"),
        (lambda: x4().sum(7), IndexError, r"dim 7 is out of range for a 4-d tensor \(expected -4 <= dim < 4\)"),
        (lambda: fastnn.cat([x4(), x4()], dim=5), IndexError, r"dim 5 is out of range for a 4-d tensor"),
        (lambda: ops.cross_entropy(f32(3, 5), np.array([1, 2, 2**63], np.uint64)),
         ValueError, r"cross_entropy: target holds 9223372036854775808, past the int64 range"),
        (lambda: fastnn.stack([x4(), x4()], dim=-6), IndexError, r"dim -6 is out of range for a 5-d tensor"),
        (lambda: x4().mean(-9), IndexError, r"dim -9 is out of range"),
        (lambda: x4().squeeze(7), IndexError, r"dim 7 is out of range"),
        (lambda: x4().unsqueeze(9), IndexError, r"dim 9 is out of range"),
        (lambda: x4().transpose(0, 5), IndexError, r"dim 5 is out of range"),
        (lambda: x4().flatten(5), IndexError, r"dim 5 is out of range"),
        (lambda: nn.Flatten(1, 6)(x4()), IndexError, r"dim 6 is out of range"),
        (lambda: x4()[5], IndexError, r"index 5 is out of bounds for axis 0 with size 2"),
        (lambda: x4()[fastnn.tensor([0, 9])], IndexError, r"index 9 is out of bounds"),
        (lambda: x4()[1.5], IndexError, r"only integers, slices"),
        (lambda: fastnn.zeros(-1), ValueError, r"negative dimensions"),
        (lambda: fastnn.zeros(2).item(), RuntimeError, r"a Tensor with 2 elements cannot be converted to Scalar"),
    ],
    "target range": [
        (lambda: F.cross_entropy(randn(4, 5), labels(0, 1, 2, 9)),
         ValueError, r"cross_entropy: target\[3\] = 9 is out of range for 5 classes"),
        (lambda: F.cross_entropy(randn(4, 5), labels(0, 1, 2, -2)),
         ValueError, r"cross_entropy: target\[3\] = -2 is out of range"),
        (lambda: F.cross_entropy(randn(4, 5), labels(5, 1, 2, 3), ignore_index=4),
         ValueError, r"target\[0\] = 5 is out of range"),
        (lambda: F.cross_entropy(randn(2, 3, 2, 2), fastnn.tensor(np.full((2, 2, 2), 3))),
         ValueError, r"cross_entropy: target\[0, 0, 0\] = 3 is out of range for 3 classes"),
        (lambda: F.nll_loss(randn(4, 5), labels(0, 1, 2, 5)),
         ValueError, r"nll_loss: target\[3\] = 5 is out of range for 5 classes"),
        (lambda: F.nll_loss(randn(5), fastnn.tensor(5)), ValueError, r"nll_loss: target.* = 5 is out of range"),
        (lambda: nn.CrossEntropyLoss()(randn(2, 3), labels(0, 3)),
         ValueError, r"cross_entropy: target\[1\] = 3 is out of range"),
        (lambda: ops.cross_entropy_backward(np.float32(1), f32(2, 3), np.array([0, 7])),
         ValueError, r"cross_entropy_backward: target\[1\] = 7 is out of range"),
        (lambda: ops.nll_loss_backward(np.float32(1), f32(2, 3), np.array([0, 7])),
         ValueError, r"nll_loss_backward: target\[1\] = 7 is out of range"),
        (lambda: ops.max_pool2d_backward(f32(2, 3, 2, 2) + 1, f32(2, 3, 5, 5), 2, saved=np.full((2, 3, 2, 2), 1000)),
         ValueError, r"max_pool2d_backward: saved index 1000 .*out of range for a 5x5 input plane"),
        (lambda: F.binary_cross_entropy(fastnn.tensor([1.5]), fastnn.tensor([1.0])),
         ValueError, r"binary_cross_entropy: all elements of input should be between 0 and 1"),
        (lambda: F.binary_cross_entropy(fastnn.tensor([-0.5]), fastnn.tensor([1.0])),
         ValueError, r"binary_cross_entropy: all elements of input should be between 0 and 1"),
    ],
    "module construction": [
        (lambda: nn.Conv2d(0, 4, 3), ValueError, r"Conv2d: in_channels must be >= 1, got 0"),
        (lambda: nn.Conv2d(3, -1, 3), ValueError, r"Conv2d: out_channels must be >= 1, got -1"),
        (lambda: nn.Conv2d(3.0, 4, 3), TypeError, r"Conv2d: in_channels must be an int, got 3.0"),
        (lambda: nn.Conv2d(3, 4, 0), ValueError, r"Conv2d: kernel_size must be >= 1, got 0"),
        (lambda: nn.Conv2d(3, 4, (3, 0)), ValueError, r"Conv2d: kernel_size must be >= 1, got \(3, 0\)"),
        (lambda: nn.Conv2d(3, 4, (3, 3, 3)), ValueError, r"Conv2d: kernel_size must be an int or a pair of ints"),
        (lambda: nn.Conv2d(3, 4, 3, groups=2),
         ValueError, r"Conv2d: in_channels \(3\) and out_channels \(4\) must both be divisible by groups \(2\)"),
        (lambda: nn.Conv2d(3, 4, 3, groups=0), ValueError, r"Conv2d: groups must be >= 1, got 0"),
        (lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError, r"Conv2d: stride must be >= 1, got 0"),
        (lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError, r"Conv2d: padding must be >= 0, got -1"),
        (lambda: nn.Conv2d(3, 4, 3, dilation=0), ValueError, r"Conv2d: dilation must be >= 1"),
        (lambda: nn.Conv2d(3, 4, 3, padding="bogus"),
         ValueError, r"Conv2d: padding must be one of 'valid', 'same', got 'bogus'"),
        (lambda: nn.Conv2d(3, 4, 3, padding="same", stride=2), ValueError, r"Conv2d: padding='same' needs stride 1"),
        (lambda: nn.Conv2d(3, 4, 3, padding_mode="reflect"),
         ValueError, r"Conv2d: padding_mode must be one of 'zeros', got 'reflect'"),
        (lambda: nn.Linear(-1, 3), ValueError, r"Linear: in_features must be >= 1, got -1"),
        (lambda: nn.Linear(3, 0), ValueError, r"Linear: out_features must be >= 1, got 0"),
        (lambda: nn.Linear(2.5, 3), TypeError, r"Linear: in_features must be an int, got 2.5"),
        (lambda: nn.Linear(True, 3), TypeError, r"Linear: in_features must be an int, got True"),
        (lambda: nn.MaxPool2d(0), ValueError, r"MaxPool2d: kernel_size must be >= 1, got 0"),
        (lambda: nn.MaxPool2d(2, stride=0), ValueError, r"MaxPool2d: stride must be >= 1"),
        (lambda: nn.MaxPool2d(2, padding=-1), ValueError, r"MaxPool2d: padding must be >= 0"),
        (lambda: nn.MaxPool2d(2, dilation=0), ValueError, r"MaxPool2d: dilation must be >= 1"),
        (lambda: nn.AvgPool2d(-1), ValueError, r"AvgPool2d: kernel_size must be >= 1, got -1"),
        (lambda: nn.Dropout(-0.1), ValueError, r"Dropout: p must be in \[0, 1\], got -0.1"),
        (lambda: nn.Dropout(1.5), ValueError, r"Dropout: p must be in \[0, 1\], got 1.5"),
        (lambda: nn.Dropout("half"), TypeError, r"Dropout: p must be a number, got 'half'"),
        (lambda: nn.BatchNorm2d(0), ValueError, r"BatchNorm2d: num_features must be >= 1, got 0"),
        (lambda: nn.BatchNorm1d(-1), ValueError, r"BatchNorm1d: num_features must be >= 1, got -1"),
        (lambda: nn.BatchNorm2d(3, eps=-1), ValueError, r"BatchNorm2d: eps must be >= 0, got -1"),
        (lambda: nn.BatchNorm2d(3, momentum=2), ValueError, r"BatchNorm2d: momentum must be in \[0, 1\], got 2"),
        (lambda: nn.CrossEntropyLoss(reduction="bogus"),
         ValueError, r"CrossEntropyLoss: reduction must be one of 'mean', 'sum', 'none', got 'bogus'"),
        (lambda: nn.CrossEntropyLoss(label_smoothing=2),
         ValueError, r"CrossEntropyLoss: label_smoothing must be in \[0, 1\], got 2"),
        (lambda: nn.CrossEntropyLoss(ignore_index=1.5), TypeError, r"CrossEntropyLoss: ignore_index must be an int"),
        (lambda: nn.NLLLoss(reduction="avg"), ValueError, r"NLLLoss: reduction must be one of"),
        (lambda: nn.MSELoss(reduction="avg"), ValueError, r"MSELoss: reduction must be one of"),
        (lambda: nn.BCELoss(reduction="avg"), ValueError, r"BCELoss: reduction must be one of"),
        (lambda: nn.BCEWithLogitsLoss(reduction="avg"), ValueError, r"BCEWithLogitsLoss: reduction must be one of"),
        (lambda: nn.GELU("bogus"), ValueError, r"GELU: approximate must be one of 'none', 'tanh', got 'bogus'"),
        (lambda: nn.Softmax(dim="a"), TypeError, r"Softmax: dim must be an int, got 'a'"),
        (lambda: nn.LogSoftmax(dim=1.0), TypeError, r"LogSoftmax: dim must be an int"),
        (lambda: nn.LeakyReLU("a"), TypeError, r"LeakyReLU: negative_slope must be a number, got 'a'"),
        (lambda: optim.SGD([param()], lr=-1), ValueError, r"Invalid learning rate: -1"),
        (lambda: optim.SGD([param()], lr=float("nan")), ValueError, r"Invalid learning rate: nan"),
        (lambda: optim.SGD([param()], momentum=-0.5), ValueError, r"Invalid momentum value: -0.5"),
        (lambda: optim.SGD([param()], nesterov=True), ValueError, r"Nesterov momentum requires a momentum"),
        (lambda: optim.Adam([param()], betas=(0.9, 1.0)), ValueError, r"Invalid beta parameter at index 1: 1.0"),
        (lambda: optim.Adam([param()], betas=(-0.1, 0.9)), ValueError, r"Invalid beta parameter at index 0: -0.1"),
        (lambda: optim.Adam([param()], betas=(0.9,)), ValueError, r"Invalid betas: expected a pair \(beta1, beta2\)"),
        (lambda: optim.AdamW([param()], eps=-1), ValueError, r"Invalid epsilon value: -1"),
        (lambda: optim.Adam([param()], weight_decay=-1), ValueError, r"Invalid weight_decay value: -1"),
        (lambda: optim.RMSprop([param()], alpha=-1), ValueError, r"Invalid alpha value: -1"),
        (lambda: optim.Adagrad([param()], lr_decay=-1), ValueError, r"Invalid lr_decay value: -1"),
        (lambda: optim.Adam([]), ValueError, r"Adam got an empty parameter list"),
        (lambda: optim.Adam([1, 2]), TypeError, r"Adam: params\[0\] must be a fastnn Tensor, got int"),
        (lambda: optim.SGD(param()),
         TypeError, r"SGD: params must be an iterable of Tensors or of dicts, got Parameter"),
        (lambda: optim.SGD(5), TypeError, r"SGD: params must be an iterable .*got int"),
        (lambda: optim.SGD([{"params": [param(), "w"]}]),
         TypeError, r"SGD: params\[1\] must be a fastnn Tensor, got str"),
        (lambda: optim.SGD([{"params": [SHARED_PARAMETER]}, {"params": [SHARED_PARAMETER]}]),
         ValueError, r"some parameters appear in more than one parameter group"),
        (lambda: optim.lr_scheduler.StepLR(optim.SGD([param()], lr=0.1), step_size=0),
         ValueError, r"StepLR: step_size must be >= 1, got 0"),
        (lambda: DataLoader(TensorDataset(f32(4)), batch_size=0),
         ValueError, r"DataLoader: batch_size must be >= 1, got 0"),
        (lambda: DataLoader(TensorDataset(f32(4)), batch_size=-3),
         ValueError, r"DataLoader: batch_size must be >= 1, got -3"),
        (lambda: DataLoader(TensorDataset(f32(4)), batch_size=2.0),
         TypeError, r"DataLoader: batch_size must be an int, got 2.0"),
        (lambda: TensorDataset(), ValueError, r"TensorDataset needs at least one array"),
        (lambda: nn.Module().register_buffer("a.b", fastnn.zeros(2)),
         ValueError, r"Module: .*name must be a non-empty string without '\.', got 'a\.b'"),
        (lambda: nn.Module().add_module("", nn.ReLU()), ValueError, r"Module: .*name must be a non-empty string"),
        (lambda: nn.Module().register_buffer("a", 5),
         TypeError, r"cannot assign 'int' as buffer 'a' \(Tensor or None expected\)"),
        (lambda: nn.Module().register_parameter("a", fastnn.zeros(2)),
         TypeError, r"cannot assign 'Tensor' as parameter 'a'"),
        (lambda: nn.Sequential(5), TypeError, r"int is not a Module subclass"),
        (lambda: nn.Sequential(nn.ReLU())[5], IndexError, r"Sequential: index 5 is out of range for 1 modules"),
        (lambda: nn.ModuleList([nn.ReLU()])[-2], IndexError, r"ModuleList: index -2 is out of range for 1 modules"),
        (lambda: nn.init.normal_(fastnn.zeros(3), 0, -1), ValueError, r"normal_: std must be >= 0, got -1"),
        (lambda: nn.init.kaiming_uniform_(fastnn.zeros(2, 3), mode="bogus"), ValueError, r"Mode bogus not supported"),
        (lambda: nn.init.kaiming_uniform_(fastnn.zeros(2, 3), nonlinearity="bogus"),
         ValueError, r"Unsupported nonlinearity bogus"),
        (lambda: nn.init.xavier_uniform_(fastnn.zeros(3)), ValueError, r"fewer than 2 dimensions"),
    ],
}


@pytest.mark.parametrize("call,error,pattern", [
    pytest.param(call, error, pattern, id=f"{category}-{i}")
    for category, cases in BAD_INPUTS.items() for i, (call, error, pattern) in enumerate(cases)])
def test_bad_input_raises_a_named_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


# ---- awkward but valid inputs ----

NON_FINITE = np.array([[np.nan, 1.0, -np.inf, np.inf, 0.0, -0.0, -2.0, np.nan, 3.0, -1e30, 1e30, 5e-45]], np.float32)


def _nan_propagating(reference_op, x):
    """The documented rule, torch's: NaN in, NaN out; everything else as the reference."""
    return np.where(np.isnan(x), np.nan, reference_op(x))


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_nan_and_inf_through_relu(name):
    out = getattr(F, name)(fastnn.tensor(NON_FINITE)).numpy()
    np.testing.assert_allclose(out, _nan_propagating(getattr(reference, name), NON_FINITE), rtol=1e-6)
    if HAS_TORCH:
        import torch
        np.testing.assert_array_equal(out, getattr(torch.nn.functional, name)(torch.from_numpy(NON_FINITE)).numpy())


def test_nan_and_inf_through_max_pool2d():
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    x[0, 0, 1, 1] = x[1, 1, :2, :2] = np.nan  # a NaN beside numbers, and a window of NaN only
    x[1, 2, 4, 5], x[0, 1, 0, 0], x[0, 2, 2:4, 2:4] = np.inf, -np.inf, -np.inf
    out, indices = F.max_pool2d(fastnn.tensor(x), 2, return_indices=True)
    expected, expected_indices = reference.max_pool2d(x, 2, return_indices=True)  # np.max: NaN wins
    np.testing.assert_array_equal(out.numpy(), expected.astype(np.float32))
    # A window holding NaN points at one of its NaN (torch: the last); the others at the first maximum.
    nan_window = np.isnan(expected)
    np.testing.assert_array_equal(indices.numpy()[~nan_window], expected_indices[~nan_window])
    planes = x.reshape(2, 3, -1)
    picked = np.take_along_axis(planes, indices.numpy().reshape(2, 3, -1), axis=-1).reshape(expected.shape)
    assert np.all(np.isnan(picked[nan_window])) and nan_window[0, 0, 0, 0] and nan_window[1, 1, 0, 0]
    if HAS_TORCH:
        import torch
        torch_out, torch_indices = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
        np.testing.assert_array_equal(out.numpy(), torch_out.numpy())
        np.testing.assert_array_equal(indices.numpy(), torch_indices.numpy())


HUGE = 1e30
HUGE_LOGITS = {
    "all +huge": np.full((2, 4), HUGE),
    "all -huge": np.full((2, 4), -HUGE),
    "mixed": np.array([[HUGE, 0.0, -HUGE, 1.0], [-HUGE, -HUGE, 2.0, 3.0]]),
    "two huge": np.array([[HUGE, HUGE, 1.0, -1.0], [HUGE, -HUGE, HUGE, 0.0]]),
    "near max": np.array([[3e38, -3e38, 0.0, 1.0], [3e38, 3e38, -3e38, -3e38]]),
}
SMOOTH_OPS = {  # op, its reference; softmax-type ops along the class dim
    "sigmoid": (F.sigmoid, reference.sigmoid),
    "tanh": (F.tanh, reference.tanh),
    "gelu": (F.gelu, reference.gelu),
    "softmax": (lambda x: F.softmax(x, dim=1), lambda x: reference.softmax(x, dim=1)),
    "log_softmax": (lambda x: F.log_softmax(x, dim=1), lambda x: reference.log_softmax(x, dim=1)),
}


def _assert_matches(name, actual, expected):
    expected = np.asarray(expected, np.float64)
    assert np.array_equal(np.isfinite(actual), np.isfinite(expected)), f"{name}: {actual} vs {expected}"
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("logits", list(HUGE_LOGITS), ids=str)
@pytest.mark.parametrize("name", list(SMOOTH_OPS))
def test_huge_logits_stay_finite(name, logits):
    x = HUGE_LOGITS[logits].astype(np.float32)
    op, reference_op = SMOOTH_OPS[name]
    t = fastnn.tensor(x, requires_grad=True)
    out = op(t)
    expected = reference_op(x)
    with np.errstate(over="ignore"):  # log_softmax(-3e38 beside 3e38) = -6e38: -inf in float32
        expected = expected.astype(np.float32)
    _assert_matches(name, out.detach().numpy(), expected)
    out.backward(fastnn.ones_like(out))  # not out.sum(): 3e38 + 3e38 overflows
    grad_name = name + "_backward"
    expected_grad = getattr(reference, grad_name)(np.ones_like(x), x, **({"dim": 1} if "softmax" in name else {}))[0]
    _assert_matches(grad_name, t.grad.numpy(), expected_grad)


@pytest.mark.parametrize("logits", ["all +huge", "all -huge", "mixed", "two huge"])
def test_huge_logits_through_cross_entropy(logits):
    x = HUGE_LOGITS[logits].astype(np.float32)
    target = np.array([0, 2])
    t = fastnn.tensor(x, requires_grad=True)
    loss = F.cross_entropy(t, fastnn.tensor(target), reduction="sum")
    _assert_matches("cross_entropy", loss.detach().numpy(), reference.cross_entropy(x, target, reduction="sum"))
    loss.backward()
    expected_grad = reference.cross_entropy_backward(np.float64(1), x, target, reduction="sum")[0]
    _assert_matches("cross_entropy_backward", t.grad.numpy(), expected_grad)


# Each layer with the input it takes and the shape it gives for a batch of 0.
ZERO_BATCH_LAYERS = [
    (nn.Identity(), (0, 3), (0, 3)),
    (nn.Linear(3, 2), (0, 3), (0, 2)),
    (nn.Conv2d(3, 4, 3, padding=1), (0, 3, 5, 5), (0, 4, 5, 5)),
    (nn.MaxPool2d(2), (0, 3, 4, 4), (0, 3, 2, 2)),
    (nn.AvgPool2d(2), (0, 3, 4, 4), (0, 3, 2, 2)),
    (nn.ReLU(), (0, 3), (0, 3)),
    (nn.LeakyReLU(), (0, 3), (0, 3)),
    (nn.Sigmoid(), (0, 3), (0, 3)),
    (nn.Tanh(), (0, 3), (0, 3)),
    (nn.GELU(), (0, 3), (0, 3)),
    (nn.Softmax(dim=1), (0, 3), (0, 3)),
    (nn.LogSoftmax(dim=1), (0, 3), (0, 3)),
    (nn.Dropout(), (0, 3), (0, 3)),
    (nn.Flatten(), (0, 3, 2, 2), (0, 12)),
    (nn.BatchNorm1d(3), (0, 3), (0, 3)),
    (nn.BatchNorm2d(3), (0, 3, 2, 2), (0, 3, 2, 2)),
]
# Each loss with an empty batch of (input, target).
ZERO_BATCH_LOSSES = [
    (nn.CrossEntropyLoss, lambda: (fastnn.randn(0, 3), fastnn.zeros(0, dtype=fastnn.int64))),
    (nn.NLLLoss, lambda: (fastnn.randn(0, 3), fastnn.zeros(0, dtype=fastnn.int64))),
    (nn.MSELoss, lambda: (fastnn.randn(0, 3), fastnn.randn(0, 3))),
    (nn.BCELoss, lambda: (fastnn.rand(0, 3), fastnn.rand(0, 3))),
    (nn.BCEWithLogitsLoss, lambda: (fastnn.randn(0, 3), fastnn.rand(0, 3))),
]


def test_zero_batch_cases_cover_every_layer():
    covered = {type(layer).__name__ for layer, _, _ in ZERO_BATCH_LAYERS} | {c.__name__ for c, _ in ZERO_BATCH_LOSSES}
    assert covered == set(nn.modules.__all__)


@pytest.mark.parametrize("layer,in_shape,out_shape", ZERO_BATCH_LAYERS,
                         ids=[type(layer).__name__ for layer, _, _ in ZERO_BATCH_LAYERS])
def test_zero_batch_through_every_layer(layer, in_shape, out_shape):
    x = fastnn.randn(*in_shape, requires_grad=True)
    out = layer(x)
    assert out.shape == out_shape
    out.sum().backward()
    assert x.grad.shape == in_shape
    for p in layer.parameters():
        assert p.grad is not None and np.all(p.grad.numpy() == 0), "an empty batch contributes no gradient"


def test_zero_batch_leaves_batch_norm_running_stats_alone():
    layer = nn.BatchNorm1d(3)
    layer.running_mean.fill_(1.0)
    layer.running_var.fill_(2.0)
    layer(fastnn.randn(0, 3))
    np.testing.assert_array_equal(layer.running_mean.numpy(), 1.0)
    np.testing.assert_array_equal(layer.running_var.numpy(), 2.0)


@pytest.mark.parametrize("loss,make", ZERO_BATCH_LOSSES, ids=[loss.__name__ for loss, _ in ZERO_BATCH_LOSSES])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns on the mean of nothing
def test_zero_batch_through_every_loss(loss, make):
    input, target = make()
    input.requires_grad_()
    assert loss(reduction="none")(input, target).shape == target.shape
    total = loss(reduction="sum")(input, target)
    assert total.item() == 0
    total.backward()
    assert input.grad.shape == input.shape
    assert np.isnan(loss()(input, target).item())  # the mean of no losses, as torch gives it


AWKWARD_OPS = {  # name: (F call on Tensors, reference call on arrays, input shape)
    "relu": (F.relu, reference.relu, (4, 6)),
    "sigmoid": (F.sigmoid, reference.sigmoid, (4, 6)),
    "softmax": (lambda x: F.softmax(x, dim=1), lambda x: reference.softmax(x, dim=1), (4, 6)),
    "linear": (lambda x: F.linear(x, fastnn.ones(3, 6)), lambda x: reference.linear(x, np.ones((3, 6))), (4, 6)),
    "matmul": (lambda x: x @ x.T, lambda x: reference.matmul(x, x.T), (4, 6)),
    "conv2d": (lambda x: F.conv2d(x, fastnn.ones(2, 3, 3, 3)),
               lambda x: reference.conv2d(x, np.ones((2, 3, 3, 3))), (2, 3, 5, 5)),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), lambda x: reference.max_pool2d(x, 2), (2, 3, 4, 4)),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), lambda x: reference.avg_pool2d(x, 2), (2, 3, 4, 4)),
    "cross_entropy": (lambda x: F.cross_entropy(x, fastnn.tensor([0, 1, 2, 5]), reduction="none"),
                      lambda x: reference.cross_entropy(x, np.array([0, 1, 2, 5]), reduction="none"), (4, 6)),
}


@pytest.mark.parametrize("name", list(AWKWARD_OPS))
def test_awkward_layouts_give_the_reference_result(name):
    op, reference_op, shape = AWKWARD_OPS[name]
    row = np.random.default_rng(2).standard_normal((1,) + shape[1:]).astype(np.float32)
    base = np.repeat(row, shape[0], axis=0)  # equal rows, so a broadcast view is among the layouts
    expected = reference_op(base)
    layouts = _layout_variants(base)
    assert {label for label, _ in layouts} == {"fortran", "strided", "unaligned", "readonly", "broadcast"}
    for label, array in layouts:
        before = array.copy()
        t = fastnn.from_numpy(array).requires_grad_()
        out = op(t)
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-4, atol=1e-5, err_msg=f"{name} {label}")
        out.sum().backward()
        assert t.grad.shape == shape, f"{name} {label}"
        np.testing.assert_array_equal(array, before, err_msg=f"{name} wrote into its {label} input")
