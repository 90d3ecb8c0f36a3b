"""Plain NumPy references for every fastnn op and its backward, computed in float64.

Written to be obviously right rather than fast. Each `<op>_backward(grad_output, *arrays,
**kwargs)` returns one gradient per array argument of `<op>`, like fastnn.ops.
"""
import numpy as np


def f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


# ---- gemm: matmul, linear ----

def matmul(a, b):
    return f64(a) @ f64(b)


def matmul_backward(grad_output, a, b):
    g, a, b = f64(grad_output), f64(a), f64(b)
    grad_a = g @ np.swapaxes(b, -1, -2)
    grad_b = np.swapaxes(a, -1, -2) @ g
    if b.ndim == 2 and grad_b.ndim == 3:
        grad_b = grad_b.sum(axis=0)
    return grad_a, grad_b


def linear(input, weight, bias=None):
    y = f64(input) @ f64(weight).T
    return y if bias is None else y + f64(bias)


def linear_backward(grad_output, input, weight, bias=None):
    g, x, w = f64(grad_output), f64(input), f64(weight)
    g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    return (g @ w).reshape(x.shape), g2.T @ x2, None if bias is None else g2.sum(axis=0)


# ---- conv2d ----


# ---- pooling: max_pool2d, avg_pool2d ----


# ---- activations: relu, leaky_relu, sigmoid, tanh, gelu ----


# ---- softmax, log_softmax, nll_loss, cross_entropy ----
