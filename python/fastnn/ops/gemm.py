"""Matrix products: matmul and linear."""
import math

import numpy as np

from .. import _C
from ._arrays import as_float32, as_optional_float32, kernels

__all__ = ["matmul", "matmul_backward", "linear", "linear_backward"]


def matmul(a, b):
    """a @ b for 2-D (M, K) @ (K, N), batched (B, M, K) @ (B, K, N), or (B, M, K) @ (K, N)."""
    # The host path as tuned: _C converts and checks its operands itself (csrc/bindings/gemm.cpp);
    # the CUDA kernels take C-contiguous CuPy arrays.
    if type(a) is np.ndarray or (ops := kernels(a)) is _C:
        return _C.matmul(a, b)
    return ops.matmul(as_float32("matmul", "a", a), as_float32("matmul", "b", b))


def matmul_backward(grad_output, a, b):
    """(grad_a, grad_b) of matmul(a, b)."""
    if type(a) is np.ndarray or (ops := kernels(a)) is _C:
        return _C.matmul_backward(grad_output, a, b)
    op = "matmul_backward"
    return ops.matmul_backward(as_float32(op, "grad_output", grad_output), as_float32(op, "a", a),
                               as_float32(op, "b", b))


def _rows(op, x):
    """x as (rows, in_features): linear works on the last dim, like torch's."""
    if x.ndim < 1:
        raise ValueError(f"{op}: input must have at least 1 dimension (..., in_features), got a scalar")
    # Rows counted, not inferred with -1: NumPy cannot infer it when in_features is 0.
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1]) if x.ndim != 2 else x


def linear(input, weight, bias=None):
    """input @ weight.T + bias, over the last dim of input (any leading dims)."""
    x = as_float32("linear", "input", input)
    y = kernels(x).linear(_rows("linear", x), as_float32("linear", "weight", weight),
                          as_optional_float32("linear", "bias", bias))
    return y.reshape(*x.shape[:-1], y.shape[-1])


def linear_backward(grad_output, input, weight, bias=None):
    """(grad_input, grad_weight, grad_bias); grad_bias is None when bias is None."""
    op = "linear_backward"
    x = as_float32(op, "input", input)
    g = as_float32(op, "grad_output", grad_output)
    if g.shape[:-1] != x.shape[:-1]:
        raise ValueError(f"{op}: grad_output must have leading shape {x.shape[:-1]}, got {g.shape}")
    gx, gw, gb = kernels(x).linear_backward(_rows(op, g), _rows(op, x), as_float32(op, "weight", weight),
                                            bias is not None)
    return gx.reshape(x.shape), gw, gb
