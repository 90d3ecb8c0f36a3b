"""Elementwise activations: relu, leaky_relu, sigmoid, tanh, gelu, each with its backward."""
from .. import _C
from ._arrays import as_float32, as_optional_float32, number, text

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
           "tanh", "tanh_backward", "gelu", "gelu_backward"]


def relu(input):
    """max(input, 0), any shape."""
    return _C.relu(as_float32("relu", "input", input))


def relu_backward(grad_output, input):
    """(grad_input,) of relu; the gradient at 0 is 0."""
    op = "relu_backward"
    return _C.relu_backward(as_float32(op, "grad_output", grad_output), as_float32(op, "input", input))


def leaky_relu(input, negative_slope=0.01):
    """input where positive, negative_slope * input elsewhere."""
    op = "leaky_relu"
    return _C.leaky_relu(as_float32(op, "input", input), number(op, "negative_slope", negative_slope))


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    """(grad_input,) of leaky_relu; the gradient at 0 is negative_slope."""
    op = "leaky_relu_backward"
    return _C.leaky_relu_backward(as_float32(op, "grad_output", grad_output), as_float32(op, "input", input),
                                  number(op, "negative_slope", negative_slope))


def sigmoid(input):
    """1 / (1 + exp(-input)), within 3 ULP."""
    return _C.sigmoid(as_float32("sigmoid", "input", input))


def sigmoid_backward(grad_output, input, saved=None):
    """(grad_input,) of sigmoid; saved=sigmoid(input) skips recomputing it."""
    op = "sigmoid_backward"
    return _C.sigmoid_backward(as_float32(op, "grad_output", grad_output), as_float32(op, "input", input),
                               as_optional_float32(op, "saved", saved))


def tanh(input):
    """Hyperbolic tangent, within 3 ULP (relative, also near 0)."""
    return _C.tanh(as_float32("tanh", "input", input))


def tanh_backward(grad_output, input, saved=None):
    """(grad_input,) of tanh; saved=tanh(input) skips recomputing it."""
    op = "tanh_backward"
    return _C.tanh_backward(as_float32(op, "grad_output", grad_output), as_float32(op, "input", input),
                            as_optional_float32(op, "saved", saved))


def gelu(input, approximate="none"):
    """input * Phi(input) (approximate='none'), or the tanh approximation (approximate='tanh')."""
    return _C.gelu(as_float32("gelu", "input", input), text("gelu", "approximate", approximate))


def gelu_backward(grad_output, input, approximate="none"):
    """(grad_input,) of gelu with the same `approximate`."""
    op = "gelu_backward"
    return _C.gelu_backward(as_float32(op, "grad_output", grad_output), as_float32(op, "input", input),
                            text(op, "approximate", approximate))
