"""Functional kernels on float32 arrays, named and keyworded as torch.nn.functional.

Every op `<name>(*arrays, **kwargs)` has `<name>_backward(grad_output, *arrays, **kwargs)`
returning one gradient per array argument, in order (None for an absent bias or for targets).
Inputs of any layout are accepted (copied to contiguous when needed); float32 is required.
Arrays may be NumPy arrays, fastnn Tensors, PyTorch tensors or any object with `__dlpack__`,
read in place (no copy); results come back as the first argument's array type (a torch
tensor for torch inputs, NumPy otherwise), sharing memory with the kernel's output.
"""
from ._arrays import accepts_arrays
# Module aliases first: the star imports below rebind names like `conv2d` to the functions.
from . import activation as _activation, conv2d as _conv2d, gemm as _gemm, pool as _pool, softmax as _softmax
from .activation import *  # noqa: F401,F403
from .conv2d import *  # noqa: F401,F403
from .gemm import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403

__all__ = _activation.__all__ + _conv2d.__all__ + _gemm.__all__ + _pool.__all__ + _softmax.__all__
# Wrapped here, once, so no op can miss it: every public op takes and returns foreign arrays.
globals().update({name: accepts_arrays(globals()[name]) for name in __all__})
