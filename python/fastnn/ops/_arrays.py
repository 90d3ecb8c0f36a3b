"""Turning what users pass into what the kernels accept, with errors that name the argument."""
import numbers

import numpy as np

_KERNEL_LAYOUT = ["C_CONTIGUOUS", "ALIGNED"]


def as_float32(op, name, value, strided=False):
    """A C-contiguous aligned float32 array for `value`, copying only when the layout needs it;
    with strided=True (for kernels that take strides) any aligned layout is passed through.

    Raises TypeError for any other dtype rather than converting silently.
    """
    array = np.asarray(value)
    if array.dtype != np.float32:
        raise TypeError(f"{op}: {name} must be float32, got {array.dtype} (convert with .astype(np.float32))")
    flags = array.flags
    if flags.aligned and (strided or flags.c_contiguous):
        return array  # the common case, without np.require's ~1 us per call
    return np.require(array, requirements=["ALIGNED"] if strided else _KERNEL_LAYOUT)


def as_optional_float32(op, name, value):
    return None if value is None else as_float32(op, name, value)


def as_index(op, name, value):
    """A C-contiguous int64 array of class indices (any integer dtype is accepted)."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{op}: {name} must hold integer class indices, got {array.dtype}")
    return np.require(array.astype(np.int64, copy=False), requirements=_KERNEL_LAYOUT)


def pair(op, name, value):
    """(int, int) from an int or a pair of ints, as torch.nn.functional accepts them."""
    items = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(items) != 2 or not all(isinstance(v, numbers.Integral) for v in items):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return int(items[0]), int(items[1])
