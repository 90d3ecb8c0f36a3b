"""fastnn.Tensor: an array plus autograd, with PyTorch's names and semantics.

The backing array lives in `_data`: a numpy.ndarray on the CPU, a cupy.ndarray on a GPU. The
glue below picks its library with array_module (or `self._xp`), so NumPy and CuPy run the same
code. Elementwise, shape and indexing ops are Function nodes written here; kernel ops (conv2d,
linear, pooling, activations, losses) live in fastnn.nn.functional.
"""
import collections.abc
import math
import numbers
import operator
import sys

import numpy as np

from . import autograd, cuda as _cuda
from .autograd import Function
from .dtypes import float32, float64, int32, int64
from .random import generator


def array_module(array):
    """numpy for host arrays and scalars, cupy for CUDA arrays: the one place glue code picks
    its library. The exact NumPy type is tested first (the CPU training loop's case, ~40 ns); a
    CuPy array exists only once cupy is imported, so this never imports it."""
    if type(array) is np.ndarray:
        return np
    cupy = sys.modules.get("cupy")
    return cupy if cupy is not None and isinstance(array, cupy.ndarray) else np


class device:
    """torch.device look-alike: "cpu", "cuda" (the current GPU) or "cuda:N". Naming a device
    always works; putting a tensor on a GPU raises RuntimeError where CUDA tensors cannot be made
    (see fastnn.cuda.unavailable_reason)."""

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        type, colon, number = str(type).partition(":")
        if type not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda' (optionally ':index'), got {type!r}")
        if colon:
            if not number.isdigit():
                raise ValueError(f"device: the index after '{type}:' must be a non-negative int, got {number!r}")
            index = int(number)
        elif index is not None and not (isinstance(index, numbers.Integral) and index >= 0):
            raise ValueError(f"device: index must be a non-negative int, got {index!r}")
        self.type, self.index = type, None if index is None else int(index)

    def __eq__(self, other):
        return str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"


_CPU = device("cpu")


def _as_device(value):
    return value if isinstance(value, device) else device(value)


def _cuda_device(which):
    """The device of .cuda(which): an int index, a device, or None for the current GPU."""
    return device("cuda", which) if which is None or isinstance(which, numbers.Integral) else _as_device(which)


def _device_of(array):
    """The device an array lives on (host arrays and scalars: the CPU)."""
    if array_module(array) is np:
        return _CPU
    return device("cuda", array.device.id)


def _resolved(target):
    """`target` with the current GPU's index filled in for plain "cuda" (what arrays report)."""
    if target.type == "cpu" or target.index is not None:
        return target
    return device("cuda", _cuda.cupy_module(target).cuda.runtime.getDevice())


def _move(array, target):
    """`array` (any array or array-like) on device `target`: itself when it is there already, else
    a copy. Raises RuntimeError with the reason where CUDA tensors cannot be made."""
    if target.type == "cpu":
        return array if array_module(array) is np else array.get()
    cupy = _cuda.cupy_module(target)
    with cupy.cuda.Device(target.index):  # None: the current GPU
        if isinstance(array, cupy.ndarray) and array.device.id == cupy.cuda.runtime.getDevice():
            return array
        return cupy.array(array)  # from the host or from another GPU


def _host(value):
    """A NumPy array of any array, Tensor or array-like; GPU arrays are copied to the host."""
    value = value._data if isinstance(value, Tensor) else value
    return np.asarray(value) if array_module(value) is np else value.get()


def _check_one_device(op, values):
    """RuntimeError naming two of the devices when the arrays (or Tensors) among `values` are on
    more than one. Called once an op has failed, so that agreeing devices cost nothing."""
    devices = []
    for value in values:
        array = value._data if isinstance(value, Tensor) else value
        where = str(_device_of(array)) if hasattr(array, "shape") else None
        if where is not None and where not in devices:
            devices.append(where)
    if len(devices) > 1:
        raise RuntimeError(f"{op}: expected all tensors to be on the same device, but found at least two devices, "
                           f"{devices[0]} and {devices[1]}; move them with .to(device) first")


def _allocate(make, on_device, like=None):
    """make(xp): a factory's new array from the array module of device `on_device`, with that
    GPU current. None means the device of `like` (the *_like factories' tensor), else the CPU."""
    if on_device is not None:
        target = _as_device(on_device)
    elif like is not None:
        target = _device_of(like)
    else:
        return make(np)
    if target.type == "cpu":
        return make(np)
    cupy = _cuda.cupy_module(target)
    with cupy.cuda.Device(target.index):
        return make(cupy)


def _as_array(data, dtype=None, copy=False):
    """An ndarray for `data`. Python floats become float32 (PyTorch's default dtype); arrays and
    NumPy scalars keep their dtype unless `dtype` is given."""
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, np.generic):
        data = np.asarray(data)
    if isinstance(data, np.ndarray) or array_module(data) is not np:
        array = data
    else:
        array = np.asarray(data)
        if dtype is None and array.dtype == np.float64:
            array = array.astype(np.float32)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return array.copy() if copy and array is data else array


def _unwrap(value):
    return value._data if isinstance(value, Tensor) else value


def _written_into(array, value):
    """`value` (an array, Tensor or scalar) ready to be assigned into `array`: an array on the other
    device is moved there, as torch's copy_ does (NumPy refuses to read a CuPy array implicitly,
    and CuPy's basic-index assignment takes no non-scalar NumPy array)."""
    value = _unwrap(value)
    if hasattr(value, "ndim") and array_module(value) is not array_module(array):
        return _move(value, _device_of(array))
    return value


def _shape(size):
    """(2, 3) from zeros(2, 3), zeros((2, 3)) or zeros([2, 3])."""
    if len(size) == 1 and isinstance(size[0], collections.abc.Iterable):
        size = tuple(size[0])
    if not all(isinstance(n, numbers.Integral) for n in size):
        raise TypeError(f"size must be ints, got {size}")
    return tuple(int(n) for n in size)


def _dim(dim, ndim):
    """dim as a non-negative axis of an ndim-dimensional tensor (a 0-d one takes -1 and 0, as in torch)."""
    bound = max(ndim, 1)
    if not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int, got {dim!r}")
    if not -bound <= dim < bound:
        raise IndexError(f"dim {dim} is out of range for a {ndim}-d tensor (expected {-bound} <= dim < {bound})")
    return int(dim) % bound


def _dims(dim, ndim):
    """dim (int, tuple or None for all) as a tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    return tuple(_dim(d, ndim) for d in dims)


def _as_dtype(dtype, default=None):
    """dtype as a numpy.dtype (`default` for None), or a TypeError naming the argument."""
    if dtype is None:
        return default
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a dtype such as fastnn.float32 or numpy.int64, got {dtype!r}") from None


class Tensor:
    """An n-dimensional array that can record the ops applied to it and differentiate them."""

    __slots__ = ("_data", "requires_grad", "grad", "_node", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operator

    def __init__(self, data, requires_grad=False):
        self._data = _as_array(data)
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._node = None

    @staticmethod
    def _make(array, node=None):
        """Wraps an op's result without __init__'s conversions (the hot path)."""
        if isinstance(array, np.generic):
            array = np.asarray(array)
        t = object.__new__(Tensor)
        t._data, t.requires_grad, t.grad, t._node = array, node is not None, None, node
        return t

    # ---- properties ----

    @property
    def _xp(self):
        return array_module(self._data)

    @property
    def shape(self):
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self):
        return _device_of(self._data)

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def data(self):
        """The same storage as a Tensor outside the graph (writes go to this tensor)."""
        return Tensor._make(self._data)

    @data.setter
    def data(self, value):
        self._data = _as_array(value)

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return self.ndim

    def numel(self):
        return self._data.size

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # ---- conversion ----

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        return self._data.item()

    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        self._check_on_host()
        return self._data

    def _check_on_host(self):
        if array_module(self._data) is not np:
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                            f"tensor to host memory first.")

    def tolist(self):
        return self._data.tolist()

    def __array__(self, dtype=None, copy=None):
        self._check_on_host()  # as torch: a GPU tensor never becomes a NumPy array implicitly
        array = self._data if dtype is None else self._data.astype(dtype, copy=False)
        return array.copy() if copy and array is self._data else array  # np.array(t) copies, np.asarray(t) not

    def __dlpack__(self, **kwargs):
        """The backing array's DLPack capsule: torch.from_dlpack(t) and np.from_dlpack(t) share t's
        memory. Like torch, a tensor that requires grad must be detached first."""
        if self.requires_grad:
            raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if not np.issubdtype(self.dtype, np.integer):
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data.item())

    def __format__(self, spec):
        return format(self.item(), spec) if spec and self._data.size == 1 else format(repr(self), spec)

    def __repr__(self):
        body = np.array2string(_move(self._data, _CPU), separator=", ", prefix="tensor(")
        extras = "" if self.device == _CPU else f", device='{self.device}'"
        extras += "" if self.dtype in (float32, int64, np.dtype(bool)) else f", dtype={self.dtype}"
        if self._node is not None:
            extras += f", grad_fn=<{self._node.name}Backward>"
        elif self.requires_grad:
            extras += ", requires_grad=True"
        return f"tensor({body}{extras})"

    __hash__ = object.__hash__  # __eq__ is elementwise; tensors stay usable as dict keys

    def to(self, *args, **kwargs):
        """to(device), to(dtype), to(device, dtype) or to(other_tensor) (its dtype and device); the
        tensor itself when nothing changes. Moves are differentiable: gradients come back to this
        tensor's device."""
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        result = self
        for arg in list(args) + list(kwargs.values()):
            if isinstance(arg, Tensor):
                result = result.type(arg.dtype)._to_device(arg.device)
            elif isinstance(arg, (str, device)):
                result = result._to_device(device(arg))
            elif arg is not None:
                result = result.type(arg)
        return result

    def _to_device(self, target):
        if _device_of(self._data) == _resolved(target):
            return self
        return ToDevice.apply(self, target=target)

    def cpu(self):
        return self._to_device(_CPU)

    def cuda(self, device=None):
        """This tensor on GPU `device` (an index, "cuda:N" or a device; None: the current GPU)."""
        return self._to_device(_cuda_device(device))

    def type(self, dtype):
        """This tensor cast to `dtype`; differentiable between float types."""
        dtype = _as_dtype(dtype)
        if dtype == self.dtype:
            return self
        if not np.issubdtype(dtype, np.floating):
            return Tensor._make(self._data.astype(dtype))
        return Cast.apply(self, dtype=dtype)

    def float(self):
        return self.type(float32)

    def double(self):
        return self.type(float64)

    def long(self):
        return self.type(int64)

    def int(self):
        return self.type(int32)

    # ---- graph ----

    def backward(self, gradient=None, retain_graph=False):
        autograd.backward(self, gradient, retain_graph)

    def detach(self):
        return Tensor._make(self._data)

    def requires_grad_(self, requires_grad=True):
        if self._node is not None and not requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables.")
        self.requires_grad = bool(requires_grad)
        return self

    def clone(self):
        return Clone.apply(self)

    def contiguous(self):
        return self if self._data.flags.c_contiguous else self.clone()

    # ---- in-place (optimizers, initialization; outside the graph) ----

    def _check_inplace(self):
        if autograd._grad_enabled and self.requires_grad:
            what = "a leaf Variable that requires grad" if self._node is None else "a tensor in the autograd graph"
            raise RuntimeError(f"{what} is being used in an in-place operation (wrap it in fastnn.no_grad()).")

    def zero_(self):
        self._check_inplace()
        self._data[...] = 0
        return self

    def fill_(self, value):
        self._check_inplace()
        self._data[...] = _written_into(self._data, value)
        return self

    def copy_(self, src):
        """Copies src's values into this tensor, across devices too (as torch's copy_)."""
        self._check_inplace()
        src, xp = _unwrap(src), self._xp
        if array_module(src) is not xp:
            src = _move(src, self.device)
        xp.copyto(self._data, src, casting="unsafe")
        return self

    def add_(self, other, alpha=1):
        self._check_inplace()
        other = _unwrap(other)
        self._data += other if alpha == 1 else alpha * other
        return self

    def sub_(self, other, alpha=1):
        return self.add_(other, alpha=-alpha)

    def mul_(self, other):
        self._check_inplace()
        self._data *= _unwrap(other)
        return self

    def div_(self, other):
        self._check_inplace()
        self._data /= _unwrap(other)
        return self

    def clamp_(self, min=None, max=None):
        self._check_inplace()
        self._xp.clip(self._data, min, max, out=self._data)
        return self

    def normal_(self, mean=0.0, std=1.0):
        self._check_inplace()
        # Drawn on the host from the one global generator, so a seed gives the same values on every device.
        self._data[...] = self._xp.asarray(generator().standard_normal(self.shape, dtype=np.float32) * std + mean)
        return self

    def uniform_(self, a=0.0, b=1.0):
        self._check_inplace()
        self._data[...] = self._xp.asarray(generator().random(self.shape, dtype=np.float32) * (b - a) + a)
        return self

    def _records_with(self, other):
        return autograd._grad_enabled and (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad))

    # `x += y` in a graph stays out of place (a correct gradient, as PyTorch's in-place op gives);
    # outside one it writes in place, so `p -= lr * p.grad` under no_grad updates the parameter.
    def __iadd__(self, other):
        if self._records_with(other):
            return self + other
        self._data += _unwrap(other)
        return self

    def __isub__(self, other):
        if self._records_with(other):
            return self - other
        self._data -= _unwrap(other)
        return self

    def __imul__(self, other):
        if self._records_with(other):
            return self * other
        self._data *= _unwrap(other)
        return self

    def __itruediv__(self, other):
        if self._records_with(other):
            return self / other
        self._data /= _unwrap(other)
        return self

    # ---- arithmetic ----

    def __add__(self, other):
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __rsub__(self, other):
        return Sub.apply(other, self)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return Mul.apply(other, self)

    def __truediv__(self, other):
        return Div.apply(self, other)

    def __rtruediv__(self, other):
        return Div.apply(other, self)

    def __pow__(self, other):
        return Pow.apply(self, other)

    def __rpow__(self, other):
        return Pow.apply(other, self)

    def __matmul__(self, other):
        return MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return MatMul.apply(other, self)

    def __neg__(self):
        return Neg.apply(self)

    def __pos__(self):
        return self

    def add(self, other, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def pow(self, exponent):
        return self ** exponent

    def matmul(self, other):
        return self @ other

    def neg(self):
        return -self

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sqrt(self):
        return Sqrt.apply(self)

    def abs(self):
        return Abs.apply(self)

    def clamp(self, min=None, max=None):
        return Clamp.apply(self, min=min, max=max)

    # ---- comparisons (no gradient) ----

    def _compare(self, other, op):
        other = _unwrap(other)
        try:
            return Tensor._make(op(self._data, other))
        except (TypeError, ValueError):
            _check_one_device(op.__name__, (self._data, other))
            raise

    def __eq__(self, other):
        return self._compare(other, operator.eq)

    def __ne__(self, other):
        return self._compare(other, operator.ne)

    def __lt__(self, other):
        return self._compare(other, operator.lt)

    def __le__(self, other):
        return self._compare(other, operator.le)

    def __gt__(self, other):
        return self._compare(other, operator.gt)

    def __ge__(self, other):
        return self._compare(other, operator.ge)

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    # ---- reductions ----

    def sum(self, dim=None, keepdim=False):
        return Sum.apply(self, dims=_dims(dim, self.ndim), keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        return Mean.apply(self, dims=_dims(dim, self.ndim), keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        """The largest element, or with `dim` a (values, indices) pair as in PyTorch."""
        if dim is None:
            return Max.apply(self)
        indices = self._xp.argmax(self._data, axis=dim, keepdims=True)
        values = TakeAlongDim.apply(self, indices, dim=dim)
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        return MaxResult(values, Tensor._make(indices))

    def min(self, dim=None, keepdim=False):
        if dim is None:
            return -(-self).max()
        values, indices = (-self).max(dim, keepdim)
        return MaxResult(-values, indices)

    def all(self, dim=None, keepdim=False):
        return Tensor._make(self._data.all(axis=dim, keepdims=keepdim))

    def any(self, dim=None, keepdim=False):
        return Tensor._make(self._data.any(axis=dim, keepdims=keepdim))

    def argmax(self, dim=None, keepdim=False):
        return Tensor._make(self._xp.argmax(self._data, axis=dim, keepdims=keepdim))

    def argmin(self, dim=None, keepdim=False):
        return Tensor._make(self._xp.argmin(self._data, axis=dim, keepdims=keepdim))

    # ---- shape ----

    def reshape(self, *shape):
        return Reshape.apply(self, shape=_shape(shape))

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _dim(start_dim, self.ndim), _dim(end_dim, self.ndim)
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a {self.ndim}-d tensor")
        # the product, not -1: a zero-size tensor leaves -1 undetermined
        return self.reshape(self.shape[:start] + (math.prod(self.shape[start:end + 1]),) + self.shape[end + 1:])

    def squeeze(self, dim=None):
        dims = [d for d in _dims(dim, self.ndim) if self.shape[d] == 1]
        return self.reshape(tuple(n for d, n in enumerate(self.shape) if d not in dims))

    def unsqueeze(self, dim):
        dim = _dim(dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def permute(self, *dims):
        dims = _shape(dims)
        if sorted(_dims(dims, self.ndim)) != list(range(self.ndim)):
            raise ValueError(f"permute: dims {dims} must be a permutation of the dims of shape {self.shape}")
        return Permute.apply(self, dims=dims)

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dim0, dim1 = _dim(dim0, self.ndim), _dim(dim1, self.ndim)
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    def t(self):
        return self.transpose(0, 1) if self.ndim == 2 else self

    def expand(self, *sizes):
        sizes = _shape(sizes)
        old_shape = (1,) * (len(sizes) - self.ndim) + self.shape
        shape = tuple(old if new == -1 else new for old, new in zip(old_shape, sizes))
        return Expand.apply(self, shape=shape)

    def __getitem__(self, index):
        return Index.apply(self, index=_checked_index(self._data, index))

    def __setitem__(self, index, value):
        self._check_inplace()
        self._data[_checked_index(self._data, index)] = _written_into(self._data, value)


MaxResult = collections.namedtuple("max", ["values", "indices"])


def _index_arrays(index, xp):
    """An index with Tensors and lists replaced by arrays of module `xp` (the indexed tensor's),
    as NumPy and CuPy indexing take it: a CPU index tensor works on a GPU tensor, as in torch."""
    if isinstance(index, tuple):
        return tuple(_index_arrays(i, xp) for i in index)
    if isinstance(index, Tensor):
        index = index._data
        return index if array_module(index) is xp else xp.asarray(index)
    if isinstance(index, list):
        return xp.asarray(index)
    return index


def _checked_index(array, index):
    """_index_arrays(index) for `array`. On a GPU its integer arrays are bounds-checked first, as
    NumPy checks them: CuPy wraps an out-of-range index around instead of raising."""
    index = _index_arrays(index, array_module(array))
    if array_module(array) is not np and _has_integer_array(index, any_rank=True):
        check_index_bounds(array.shape, index)
    return index


def check_index_bounds(shape, index):
    """Raises NumPy's IndexError when `index` (arrays on any device) is out of range for `shape`:
    it indexes a zero-stride stand-in of that shape, so only the index arrays are copied to the
    host (a sync, which an index that may be wrong has to pay)."""
    items = index if isinstance(index, tuple) else (index,)
    host = tuple(i if array_module(i) is np else i.get() for i in items)
    stand_in = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=bool), shape=shape, strides=(0,) * len(shape))
    stand_in[host if isinstance(index, tuple) else host[0]]


def _has_integer_array(index, any_rank=False):
    items = index if isinstance(index, tuple) else (index,)
    return any(hasattr(i, "dtype") and i.dtype.kind in "iu" and (any_rank or i.ndim > 0) for i in items)


# ---- Function nodes for the glue ops (NumPy/CuPy; broadcasting is undone by autograd) ----

class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        return grad, -grad if self.needs_input_grad[1] else None


class Mul(Function):
    def forward(self, a, b):
        self.saved = (a, b)
        return a * b

    def backward(self, grad):
        a, b = self.saved
        need_a, need_b = self.needs_input_grad
        return grad * b if need_a else None, grad * a if need_b else None


class Div(Function):
    def forward(self, a, b):
        self.saved = (a, b)
        return a / b

    def backward(self, grad):
        a, b = self.saved
        need_a, need_b = self.needs_input_grad
        grad_a = grad / b if need_a else None
        return grad_a, -grad * a / (b * b) if need_b else None


class Pow(Function):
    def forward(self, a, b):
        out = a ** b
        self.saved = (a, b, out)
        return out

    def backward(self, grad):
        a, b, out = self.saved
        need_a, need_b = self.needs_input_grad
        grad_a = grad * b * a ** (b - 1) if need_a else None
        return grad_a, grad * out * array_module(out).log(a) if need_b else None


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, grad):
        return (-grad,)


class Exp(Function):
    def forward(self, a):
        out = array_module(a).exp(a)
        self.saved = out
        return out

    def backward(self, grad):
        return (grad * self.saved,)


class Log(Function):
    def forward(self, a):
        self.saved = a
        return array_module(a).log(a)

    def backward(self, grad):
        return (grad / self.saved,)


class Sqrt(Function):
    def forward(self, a):
        out = array_module(a).sqrt(a)
        self.saved = out
        return out

    def backward(self, grad):
        return (grad / (2 * self.saved),)


class Abs(Function):
    def forward(self, a):
        self.saved = a
        return array_module(a).abs(a)

    def backward(self, grad):
        return (grad * array_module(grad).sign(self.saved),)


class Clamp(Function):
    def forward(self, a, min, max):
        out = array_module(a).clip(a, min, max)
        self.saved = (a, out)
        return out

    def backward(self, grad):
        a, out = self.saved
        return (grad * (a == out),)


class ToDevice(Function):
    def forward(self, a, target):
        self.source = _device_of(a)
        return _move(a, target)

    def backward(self, grad):
        return (_move(grad, self.source),)


class Cast(Function):
    def forward(self, a, dtype):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, grad):
        return (grad.astype(self.dtype),)


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, grad):
        return (grad,)


class MatMul(Function):
    """a @ b with NumPy's rules; 2-D, batched 3-D and (B, M, K) @ (K, N) float32 products use
    the fastnn GEMM kernel, anything else (vectors, 4-D, other dtypes) NumPy's."""

    def forward(self, a, b):
        self.saved = (a, b)
        if self._uses_kernel(a, b):
            return _ops().matmul(a, b)
        return a @ b

    @staticmethod
    def _uses_kernel(a, b):
        batched = a.ndim == 3 and (b.ndim == 2 or (b.ndim == 3 and len(b) == len(a)))
        shapes_fit = (a.ndim == 2 and b.ndim == 2) or batched
        return shapes_fit and a.dtype == float32 and b.dtype == float32

    def backward(self, grad):
        a, b = self.saved
        if self._uses_kernel(a, b):
            return _ops().matmul_backward(grad, a, b)
        xp = array_module(grad)
        # Vectors act as a row (a) or a column (b), as in NumPy; their axis is dropped again after.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = grad
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2 if b.ndim > 1 else 0)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        grad_a = g2 @ xp.swapaxes(b2, -1, -2)
        grad_b = xp.swapaxes(a2, -1, -2) @ g2
        return grad_a[..., 0, :] if a.ndim == 1 else grad_a, grad_b[..., 0] if b.ndim == 1 else grad_b


def _ops():
    from . import ops  # the compiled kernels; imported on first use so this module loads without them
    return ops


class Sum(Function):
    def forward(self, a, dims, keepdim):
        self.shape, self.dims, self.keepdim = a.shape, dims, keepdim
        return a.sum(axis=dims, keepdims=keepdim)

    def backward(self, grad):
        xp = array_module(grad)
        if not self.keepdim:
            grad = xp.expand_dims(grad, self.dims)
        return (xp.broadcast_to(grad, self.shape),)


class Mean(Sum):
    def forward(self, a, dims, keepdim):
        self.count = int(np.prod([a.shape[d] for d in dims]))
        total = super().forward(a, dims, keepdim)
        return total / total.dtype.type(self.count) if total.dtype.kind == "f" else total / self.count

    def backward(self, grad):
        return super().backward(grad / grad.dtype.type(self.count))


class Max(Function):
    """The maximum of all elements; the gradient is shared evenly between ties, as in PyTorch."""

    def forward(self, a):
        out = a.max()
        self.saved = (a, out)
        return out

    def backward(self, grad):
        a, out = self.saved
        mask = a == out
        return (mask * (grad / mask.sum()).astype(grad.dtype),)


class TakeAlongDim(Function):
    """The elements of `a` at `indices` along dim, where indices has size 1 along dim (max's argmax)."""

    def forward(self, a, indices, dim):
        # dim made non-negative: the backward counts the axes after it
        self.shape, self.dim, self.saved = a.shape, _dim(dim, a.ndim), indices
        return array_module(a).take_along_axis(a, indices, axis=dim)

    def backward(self, grad):
        # grad lands where each position along dim equals its index: one mask, the same code for
        # NumPy and CuPy (which has no put_along_axis in every version); where, not a product, so
        # that an inf or NaN in grad stays at its own position (0 * inf is NaN).
        xp = array_module(grad)
        positions = xp.arange(self.shape[self.dim]).reshape((-1,) + (1,) * (len(self.shape) - self.dim - 1))
        return xp.where(positions == self.saved, grad, grad.dtype.type(0)), None


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, grad):
        return (grad.reshape(self.shape),)


class Permute(Function):
    def forward(self, a, dims):
        self.dims = dims
        return a.transpose(dims)

    def backward(self, grad):
        return (grad.transpose(np.argsort(self.dims).tolist()),)


class Expand(Function):
    def forward(self, a, shape):
        return array_module(a).broadcast_to(a, shape)

    def backward(self, grad):
        return (grad,)


class Index(Function):
    def forward(self, a, index):
        self.shape, self.index = a.shape, index
        return a[index]

    def backward(self, grad):
        xp = array_module(grad)
        full = xp.zeros(self.shape, dtype=grad.dtype)
        if _has_integer_array(self.index):
            xp.add.at(full, self.index, grad)  # an index may repeat: every occurrence adds
        else:
            full[self.index] = grad
        return (full,)


class Concatenate(Function):
    def forward(self, *arrays, dim):
        self.dim = dim = _dim(dim, arrays[0].ndim)
        self.splits = np.cumsum([a.shape[dim] for a in arrays])[:-1].tolist()
        return array_module(arrays[0]).concatenate(arrays, axis=dim)

    def backward(self, grad):
        return tuple(array_module(grad).split(grad, self.splits, axis=self.dim))


class Stack(Function):
    def forward(self, *arrays, dim):
        self.dim = dim = _dim(dim, arrays[0].ndim + 1)
        return array_module(arrays[0]).stack(arrays, axis=dim)

    def backward(self, grad):
        return tuple(grad[(slice(None),) * self.dim + (i,)] for i in range(grad.shape[self.dim]))


# ---- creating tensors ----
# The factories take torch's device argument: None means the CPU (the *_like ones: the given
# tensor's device). Random draws come from the host's global generator and are then copied,
# so one seed gives the same values on every device.

def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new tensor holding a copy of `data` (nested lists, scalars, arrays or Tensors), on
    `device` (None: where `data` is)."""
    array = _as_array(data, _as_dtype(dtype), copy=True)
    return Tensor(array if device is None else _move(array, _as_device(device)), requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like tensor() but shares memory with `data` when its dtype and device already fit."""
    array = _as_array(data, _as_dtype(dtype))
    return Tensor._make(array if device is None else _move(array, _as_device(device)))


def from_numpy(array):
    """A tensor sharing memory with `array` (writes show through both ways)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor._make(array)


def from_dlpack(x):
    """A tensor sharing memory with any DLPack producer: a torch tensor, a NumPy or CuPy array, ...
    as torch.from_dlpack. Arrays in GPU memory become CUDA tensors (TypeError where this build or
    this machine cannot hold them)."""
    from .ops._arrays import as_numpy  # imported on first use, like the kernels (see _ops)
    if not hasattr(x, "__dlpack__"):
        raise TypeError(f"from_dlpack: x must implement __dlpack__ (a torch tensor, a NumPy or CuPy array, ...), "
                        f"got {type(x).__name__}")
    return Tensor._make(as_numpy("from_dlpack", "x", x))


def _new(array, requires_grad):
    t = Tensor._make(array)
    t.requires_grad = bool(requires_grad)
    return t


def zeros(*size, dtype=None, requires_grad=False, device=None):
    shape, dtype = _shape(size), _as_dtype(dtype, float32)
    return _new(_allocate(lambda xp: xp.zeros(shape, dtype), device), requires_grad)


def ones(*size, dtype=None, requires_grad=False, device=None):
    shape, dtype = _shape(size), _as_dtype(dtype, float32)
    return _new(_allocate(lambda xp: xp.ones(shape, dtype), device), requires_grad)


def empty(*size, dtype=None, requires_grad=False, device=None):
    shape, dtype = _shape(size), _as_dtype(dtype, float32)
    return _new(_allocate(lambda xp: xp.empty(shape, dtype), device), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    shape, dtype = _shape((size,)), _as_dtype(dtype, float32)
    return _new(_allocate(lambda xp: xp.full(shape, fill_value, dtype), device), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False, device=None):
    like = _unwrap(t)
    dtype = _as_dtype(dtype, t.dtype)
    return _new(_allocate(lambda xp: xp.zeros(t.shape, dtype), device, like), requires_grad)


def ones_like(t, dtype=None, requires_grad=False, device=None):
    like = _unwrap(t)
    dtype = _as_dtype(dtype, t.dtype)
    return _new(_allocate(lambda xp: xp.ones(t.shape, dtype), device, like), requires_grad)


def _from_host(array, on_device):
    """A host array (a random draw) on `on_device` (None: the CPU)."""
    return _allocate(lambda xp: xp.asarray(array), on_device)


def randn(*size, dtype=None, requires_grad=False, device=None):
    """Standard-normal samples from fastnn's global generator (seed it with manual_seed)."""
    dtype = _as_dtype(dtype, float32)
    array = generator().standard_normal(_shape(size), dtype=np.float32).astype(dtype, copy=False)
    return _new(_from_host(array, device), requires_grad)


def rand(*size, dtype=None, requires_grad=False, device=None):
    """Uniform samples in [0, 1) from fastnn's global generator."""
    dtype = _as_dtype(dtype, float32)
    array = generator().random(_shape(size), dtype=np.float32).astype(dtype, copy=False)
    return _new(_from_host(array, device), requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    if high is None:
        low, high = 0, low
    dtype = _as_dtype(dtype, int64)
    return _new(_from_host(generator().integers(low, high, size=_shape((size,)), dtype=dtype), device), False)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    """Like torch.arange: int64 for integer arguments, float32 otherwise."""
    if end is None:
        start, end = 0, start
    integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    dtype = _as_dtype(dtype, int64 if integral else float32)
    return _new(_from_host(np.arange(start, end, step).astype(dtype, copy=False), device), requires_grad)
