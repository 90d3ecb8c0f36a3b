"""Argument checks shared by the layers' constructors and nn.functional, each raising a
TypeError or ValueError that names the callee, the argument, and what was expected vs given."""
# number is the kernels' own check, re-exported so that every layer finds its checks here.
from ..ops._arrays import integer as _kernel_integer, number, pair  # noqa: F401

REDUCTIONS = ("mean", "sum", "none")


def integer(where, name, value, minimum=None):
    """value as an int, >= minimum if given (bools are not sizes)."""
    value = _kernel_integer(where, name, value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    return value


def integer_pair(where, name, value, minimum):
    """(h, w) from an int or a pair of ints, both >= minimum."""
    h, w = pair(where, name, value)
    if min(h, w) < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return h, w


def choice(where, name, value, allowed):
    if value not in allowed:
        expected = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{where}: {name} must be one of {expected}, got {value!r}")
    return value


def reduction(where, value):
    return choice(where, "reduction", value, REDUCTIONS)


def same_shape(where, input, target):
    """Elementwise losses pair each input with one target: no silent broadcasting."""
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{where}: target must have the input's shape {tuple(input.shape)}, "
                         f"got {tuple(target.shape)}")


def broadcastable(where, name, value, shape):
    """An optional per-element factor (a loss's weight) that must broadcast to `shape`."""
    if value is None:
        return
    have = tuple(value.shape)
    if len(have) > len(shape) or any(h not in (1, s) for h, s in zip(have[::-1], shape[::-1])):
        raise ValueError(f"{where}: {name} of shape {have} does not broadcast to the input's shape {tuple(shape)}")
