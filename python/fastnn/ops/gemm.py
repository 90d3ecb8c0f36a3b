"""Matrix products: matmul and linear."""
import math

import numpy as np

from .. import _C
from ._arrays import as_float32, as_optional_float32

__all__ = ["matmul", "matmul_backward", "linear", "linear_backward"]


_FLOAT32 = np.dtype(np.float32)


def _operands(op, a, b):
    """2-D operands go to the kernel as strided views (a transpose is packed, not copied)."""
    # Aligned float32 matrices, the usual case, pass as they are: the checks below cost ~0.7 us
    # of a 5 us 64^3 product.
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype is _FLOAT32 and b.dtype is _FLOAT32
            and a.ndim == 2 and b.ndim == 2 and a.flags.aligned and b.flags.aligned):
        return a, b
    a, b = np.asarray(a), np.asarray(b)  # .ndim of an array: np.ndim took 0.5 us of a 5 us 16x16 product
    strided = a.ndim == 2 and b.ndim == 2
    return as_float32(op, "a", a, strided), as_float32(op, "b", b, strided)


def matmul(a, b):
    """a @ b for 2-D (M, K) @ (K, N), batched (B, M, K) @ (B, K, N), or (B, M, K) @ (K, N)."""
    return _C.matmul(*_operands("matmul", a, b))


def matmul_backward(grad_output, a, b):
    """(grad_a, grad_b) of matmul(a, b)."""
    op = "matmul_backward"
    return _C.matmul_backward(as_float32(op, "grad_output", grad_output), *_operands(op, a, b))


def _rows(op, x):
    """x as (rows, in_features): linear works on the last dim, like torch's."""
    if x.ndim < 1:
        raise ValueError(f"{op}: input must have at least 1 dimension (..., in_features), got a scalar")
    # Rows counted, not inferred with -1: NumPy cannot infer it when in_features is 0.
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1]) if x.ndim != 2 else x


def linear(input, weight, bias=None):
    """input @ weight.T + bias, over the last dim of input (any leading dims)."""
    x = as_float32("linear", "input", input)
    y = _C.linear(_rows("linear", x), as_float32("linear", "weight", weight),
                  as_optional_float32("linear", "bias", bias))
    return y.reshape(*x.shape[:-1], y.shape[-1])


def linear_backward(grad_output, input, weight, bias=None):
    """(grad_input, grad_weight, grad_bias); grad_bias is None when bias is None."""
    op = "linear_backward"
    x = as_float32(op, "input", input)
    g = as_float32(op, "grad_output", grad_output)
    if g.shape[:-1] != x.shape[:-1]:
        raise ValueError(f"{op}: grad_output must have leading shape {x.shape[:-1]}, got {g.shape}")
    gx, gw, gb = _C.linear_backward(_rows(op, g), _rows(op, x), as_float32(op, "weight", weight),
                                    bias is not None)
    return gx.reshape(x.shape), gw, gb
