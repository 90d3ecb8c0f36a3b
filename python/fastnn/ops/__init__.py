"""Functional kernels on NumPy float32 arrays, named and keyworded as torch.nn.functional.

Every op `<name>(*arrays, **kwargs)` has `<name>_backward(grad_output, *arrays, **kwargs)`
returning one gradient per array argument, in order (None for an absent bias or for targets).
Inputs of any layout are accepted (copied to contiguous when needed); float32 is required.
"""
from .activation import *  # noqa: F401,F403
from .conv2d import *  # noqa: F401,F403
from .gemm import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from . import activation, conv2d, gemm, pool, softmax

__all__ = activation.__all__ + conv2d.__all__ + gemm.__all__ + pool.__all__ + softmax.__all__
