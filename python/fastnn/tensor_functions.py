"""torch.* functions that take tensors (fastnn.flatten, fastnn.cat, fastnn.max, ...). They live
apart from tensor.py because their names (sum, max, min) would shadow builtins there."""
from .tensor import Concatenate, Stack, Tensor, as_tensor

__all__ = ["flatten", "cat", "stack", "sum", "mean", "max", "min", "argmax", "exp", "log", "sqrt", "abs",
           "clamp", "matmul", "reshape", "transpose", "permute", "squeeze", "unsqueeze", "is_tensor", "numel"]


def flatten(input, start_dim=0, end_dim=-1):
    return input.flatten(start_dim, end_dim)


def cat(tensors, dim=0):
    return Concatenate.apply(*tensors, dim=dim)


def stack(tensors, dim=0):
    return Stack.apply(*tensors, dim=dim)


def sum(input, dim=None, keepdim=False):  # noqa: A001
    return input.sum(dim, keepdim)


def mean(input, dim=None, keepdim=False):
    return input.mean(dim, keepdim)


def max(input, dim=None, keepdim=False):  # noqa: A001
    """max(t): the largest element; max(t, dim): (values, indices); max(a, b): elementwise."""
    if isinstance(dim, Tensor):
        return (input > dim) * input + (input <= dim) * dim
    return input.max(dim, keepdim)


def min(input, dim=None, keepdim=False):  # noqa: A001
    if isinstance(dim, Tensor):
        return (input < dim) * input + (input >= dim) * dim
    return input.min(dim, keepdim)


def argmax(input, dim=None, keepdim=False):
    return input.argmax(dim, keepdim)


def exp(input):
    return as_tensor(input).exp()


def log(input):
    return as_tensor(input).log()


def sqrt(input):
    return as_tensor(input).sqrt()


def abs(input):  # noqa: A001
    return as_tensor(input).abs()


def clamp(input, min=None, max=None):  # noqa: A002
    return input.clamp(min, max)


def matmul(input, other):
    return input @ other


def reshape(input, shape):
    return input.reshape(shape)


def transpose(input, dim0, dim1):
    return input.transpose(dim0, dim1)


def permute(input, dims):
    return input.permute(*dims)


def squeeze(input, dim=None):
    return input.squeeze(dim)


def unsqueeze(input, dim):
    return input.unsqueeze(dim)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(input):
    return input.numel()
