"""Elementwise activations: relu, leaky_relu, sigmoid, tanh, gelu, each with its backward."""
from ._arrays import as_float32, as_optional_float32, kernels, number, text

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
           "tanh", "tanh_backward", "gelu", "gelu_backward"]


def relu(input):
    """max(input, 0), any shape."""
    x = as_float32("relu", "input", input)
    return kernels(x).relu(x)


def relu_backward(grad_output, input):
    """(grad_input,) of relu; the gradient at 0 is 0."""
    op = "relu_backward"
    g = as_float32(op, "grad_output", grad_output)
    return kernels(g).relu_backward(g, as_float32(op, "input", input))


def leaky_relu(input, negative_slope=0.01):
    """input where positive, negative_slope * input elsewhere."""
    op = "leaky_relu"
    x = as_float32(op, "input", input)
    return kernels(x).leaky_relu(x, number(op, "negative_slope", negative_slope))


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    """(grad_input,) of leaky_relu; the gradient at 0 is negative_slope."""
    op = "leaky_relu_backward"
    g = as_float32(op, "grad_output", grad_output)
    return kernels(g).leaky_relu_backward(g, as_float32(op, "input", input),
                                          number(op, "negative_slope", negative_slope))


def sigmoid(input):
    """1 / (1 + exp(-input)), within 3 ULP."""
    x = as_float32("sigmoid", "input", input)
    return kernels(x).sigmoid(x)


def sigmoid_backward(grad_output, input, saved=None):
    """(grad_input,) of sigmoid; saved=sigmoid(input) skips recomputing it."""
    op = "sigmoid_backward"
    g = as_float32(op, "grad_output", grad_output)
    return kernels(g).sigmoid_backward(g, as_float32(op, "input", input), as_optional_float32(op, "saved", saved))


def tanh(input):
    """Hyperbolic tangent, within 3 ULP (relative, also near 0)."""
    x = as_float32("tanh", "input", input)
    return kernels(x).tanh(x)


def tanh_backward(grad_output, input, saved=None):
    """(grad_input,) of tanh; saved=tanh(input) skips recomputing it."""
    op = "tanh_backward"
    g = as_float32(op, "grad_output", grad_output)
    return kernels(g).tanh_backward(g, as_float32(op, "input", input), as_optional_float32(op, "saved", saved))


def gelu(input, approximate="none"):
    """input * Phi(input) (approximate='none'), or the tanh approximation (approximate='tanh')."""
    x = as_float32("gelu", "input", input)
    return kernels(x).gelu(x, text("gelu", "approximate", approximate))


def gelu_backward(grad_output, input, approximate="none"):
    """(grad_input,) of gelu with the same `approximate`."""
    op = "gelu_backward"
    g = as_float32(op, "grad_output", grad_output)
    return kernels(g).gelu_backward(g, as_float32(op, "input", input), text(op, "approximate", approximate))
