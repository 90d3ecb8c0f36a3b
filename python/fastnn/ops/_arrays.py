"""Turning what users pass into what the kernels accept, with errors that name the argument.

`accepts_arrays` makes an op take foreign arrays (PyTorch tensors, anything with `__dlpack__`)
as zero-copy NumPy views, or CuPy views when they are in GPU memory, and give its results back in
its first argument's array type. `kernels` picks the device's kernels for an op.
"""
import functools
import inspect
import numbers
import sys

import numpy as np

from .. import _C
from ..tensor import Tensor, array_module

_KERNEL_LAYOUT = ["C_CONTIGUOUS", "ALIGNED"]


def as_float32(op, name, value, strided=False):
    """A C-contiguous aligned float32 array for `value`, copying only when the layout needs it;
    with strided=True (for kernels that take strides) any aligned layout is passed through.

    Raises TypeError for any other dtype rather than converting silently.
    """
    if type(value) is not np.ndarray and _is_cupy(value):
        return _cupy_float32(op, name, value)
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
    if _is_cupy(value):
        return _cupy_index(op, name, value)
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{op}: {name} must hold integer class indices, got {array.dtype}")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{op}: {name} holds {array.max()}, past the int64 range of class indices")
    return np.require(array.astype(np.int64, copy=False), requirements=_KERNEL_LAYOUT)


def _cupy_float32(op, name, array):
    """as_float32 for a CuPy array: the CUDA kernels take C-contiguous arrays only."""
    if array.dtype != np.float32:
        raise TypeError(f"{op}: {name} must be float32, got {array.dtype} (convert with .astype(cupy.float32))")
    return contiguous(array)


def _cupy_index(op, name, array):
    if array.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must hold integer class indices, got {array.dtype}")
    if array.dtype == np.uint64 and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{op}: {name} holds {int(array.max())}, past the int64 range of class indices")
    return contiguous(array.astype(np.int64, copy=False))


def contiguous(array):
    """`array` C-contiguous and aligned on its own device, its dtype unchanged, copied only when
    its layout needs it. CuPy allocates aligned; and its ascontiguousarray alone would make a 0-d
    array 1-d (an unbatched target is 0-d)."""
    if not _is_cupy(array):
        return np.require(array, requirements=_KERNEL_LAYOUT)
    return array if array.flags.c_contiguous else array_module(array).ascontiguousarray(array)


def kernels(array):
    """The compiled kernels for `array`'s device: fastnn._C for host arrays, fastnn._C.cuda (the
    same names and arguments) for CuPy arrays. This is where every op picks its device; its other
    arrays must be on the same one (the CUDA bindings check that each is in the current GPU's
    memory, and _call_with_foreign_arrays that no host array is mixed in)."""
    if type(array) is np.ndarray or not _is_cupy(array):
        return _C
    return _cuda_kernels()


def _cuda_kernels():
    cuda = getattr(_C, "cuda", None)
    if cuda is None:
        raise TypeError("fastnn: this build has no CUDA kernels (built without nvcc, or with FASTNN_CUDA=OFF); "
                        "copy the arrays to the host first (CuPy: .get())")
    return cuda


# The exact-type tests first: isinstance against a numbers ABC takes ~0.8 us, and conv2d's
# parameters made ~15 us of such checks per call.
def _is_int(value):
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def _is_real(value):
    return type(value) in (float, int) or (isinstance(value, numbers.Real) and not isinstance(value, bool))


def integer(op, name, value, bits=64):
    """value as a Python int that fits the kernel's signed `bits`-bit parameter, so that a float,
    a bool or a huge int gets an error naming it rather than pybind11's signature dump."""
    if not _is_int(value):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise ValueError(f"{op}: {name} must fit in a signed {bits}-bit int, got {value}")
    return int(value)


def optional_integer(op, name, value, bits=64):
    return None if value is None else integer(op, name, value, bits)


def number(op, name, value, low=-float("inf"), high=float("inf")):
    """value as a float in [low, high] (NaN is in no range)."""
    if not _is_real(value):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    if not low <= value <= high:
        expected = f">= {low}" if high == float("inf") else f"in [{low}, {high}]"
        raise ValueError(f"{op}: {name} must be {expected}, got {value}")
    return float(value)


def real(op, name, value):
    if not _is_real(value):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def text(op, name, value):
    if not isinstance(value, str):
        raise TypeError(f"{op}: {name} must be a string, got {value!r}")
    return value


def pair(op, name, value, bits=64):
    """(int, int) from an int or a pair of ints, as torch.nn.functional accepts them."""
    if _is_int(value):
        value = integer(op, name, value, bits)
        return value, value
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    items = tuple(value)
    if len(items) != 2 or not all(_is_int(v) for v in items):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return integer(op, name, items[0], bits), integer(op, name, items[1], bits)


# Types an op's arguments have when called with NumPy arrays (the training loop: thousands of
# calls), checked with one set lookup per argument so that this path stays cheap.
_NATIVE = frozenset({np.ndarray, type(None), bool, int, float, str, tuple, list})

_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_CUDA_MANAGED = 1, 2, 13


def accepts_arrays(op_function):
    """`op_function` taking any array type: each argument that is a torch tensor or has
    `__dlpack__` is passed on as a NumPy view of the same memory, and every array the op
    returns (tuples too) comes back as the first argument's type, sharing memory: torch in,
    torch out; NumPy, fastnn.Tensor or another DLPack producer in, NumPy out (itself a DLPack
    producer, so `framework.from_dlpack(result)` takes it without a copy)."""
    op = op_function.__name__
    names = tuple(inspect.signature(op_function).parameters)

    @functools.wraps(op_function)
    def call(*args, **kwargs):
        # A plain loop: 0.28 us over a bare relu of 64 floats (0.57 us), 0.66 us for conv2d's
        # seven arguments; set.issuperset(map(type, ...)) took 0.32 and 0.84.
        for value in args:
            if type(value) not in _NATIVE:
                return _call_with_foreign_arrays(op_function, op, names, args, kwargs)
        for value in kwargs.values():
            if type(value) not in _NATIVE:
                return _call_with_foreign_arrays(op_function, op, names, args, kwargs)
        return op_function(*args, **kwargs)

    return call


def _call_with_foreign_arrays(op_function, op, names, args, kwargs):
    to_torch = _is_torch(args[0] if args else next(iter(kwargs.values())))
    arrays = [as_numpy(op, name, value) for name, value in zip(names, args)]
    if kwargs:  # a comprehension costs 0.3 us even when empty
        kwargs = {name: as_numpy(op, name, value) for name, value in kwargs.items()}
    _check_one_device(op, list(zip(names, arrays)) + list(kwargs.items()))
    result = op_function(*arrays, **kwargs)
    return _as_torch(result) if to_torch else result


def _check_one_device(op, named_arrays):
    """Raises TypeError naming the arguments when GPU and host arrays are mixed in one call."""
    on_gpu = [name for name, value in named_arrays if _is_cupy(value)]
    on_host = [name for name, value in named_arrays if isinstance(value, np.ndarray)]
    if on_gpu and on_host:
        raise TypeError(f"{op}: {', '.join(on_gpu)} on the GPU but {', '.join(on_host)} on the host; move them "
                        f"to one device first (torch: .cuda() / .cpu(), CuPy: cupy.asarray() / .get())")


def as_numpy(op, name, value):
    """A NumPy view of an array argument of any type, or a CuPy view of one in GPU memory; values
    that are no arrays pass unchanged.

    Raises TypeError for arrays on a device the build has no kernels for, rather than copying.
    """
    if isinstance(value, Tensor):
        value = value._data  # what np.asarray gave the ops before they took other arrays
    if _is_torch(value):
        if not value.is_cpu:
            return _on_device(op, name, value, str(value.device))
        # Tensor.numpy() shares memory as np.from_dlpack does, at 0.7 us instead of 4.9.
        try:
            return value.detach().numpy() if value.requires_grad else value.numpy()
        except TypeError:  # bfloat16 and other dtypes NumPy lacks
            raise TypeError(f"{op}: {name} must be float32 (or integer indices), got {value.dtype}") from None
    if isinstance(value, np.ndarray) or not hasattr(value, "__dlpack__"):
        return value  # NumPy arrays, scalars, lists and options
    device_type, device_id = value.__dlpack_device__()
    if device_type != _DLPACK_CPU:
        cuda = device_type in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED)
        return _on_device(op, name, value, f"cuda:{device_id}" if cuda else f"DLPack device {device_type}:{device_id}")
    return np.from_dlpack(value, copy=False)


def _on_device(op, name, value, device):
    """A CuPy view of `value`, an array in GPU memory (torch or any DLPack producer), for the CUDA
    kernels; TypeError when this build has none or CuPy is missing (never a silent copy)."""
    if _is_cupy(value):
        return value
    where = f"{name} ({type(value).__module__}.{type(value).__name__}) is on {device}"
    if getattr(_C, "cuda", None) is None or not device.startswith("cuda"):
        kind = "CUDA kernels" if device.startswith("cuda") else "kernels for it"
        raise TypeError(f"{op}: {where}, but this build of fastnn has no {kind}; copy it to the host first "
                        f"(torch: .cpu(), CuPy: .get())")
    try:
        import cupy
    except ImportError:
        raise TypeError(f"{op}: {where}; fastnn's CUDA kernels take CuPy arrays and CuPy is not installed "
                        f"(pip install fastnn[cuda])") from None
    if _is_torch(value) and value.requires_grad:
        value = value.detach()
    try:
        return cupy.from_dlpack(value)
    except (TypeError, NotImplementedError):  # CuPy's answers for dtypes it lacks (bfloat16: NotImplementedError)
        dtype = getattr(value, "dtype", "a dtype CuPy lacks")
        raise TypeError(f"{op}: {name} must be float32 (or integer indices), got {dtype}") from None


def _is_cupy(value):
    """Whether `value` is a CuPy array (tensor.array_module decides, without importing CuPy)."""
    return array_module(value) is not np


def _is_torch(value):
    """Whether `value` is a torch.Tensor, without importing torch: one of its tensors means it
    is imported already."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _as_torch(result):
    """`result` (an array, None, or a tuple of them) as torch tensors sharing its memory
    (torch.from_numpy: 0.6 us, torch.from_dlpack: 4.8 us; CuPy arrays only have the latter)."""
    if isinstance(result, tuple):
        return tuple(_as_torch(item) for item in result)
    if result is None:
        return None
    torch = sys.modules["torch"]
    return torch.from_numpy(result) if isinstance(result, np.ndarray) else torch.from_dlpack(result)
