"""fastnn: a small, fast deep-learning backend.

Hand-written C++ (OpenMP + SIMD) kernels behind `fastnn.ops`, a functional API over NumPy
arrays where every op has a matching `<op>_backward`; with a CUDA build and CuPy, the same ops
and tensors on the GPU (fastnn.cuda.is_available()).
"""
import os

from . import _C, ops
from ._C import get_num_threads, set_num_threads
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .random import manual_seed
from .tensor import (Tensor, arange, as_tensor, device, empty, from_dlpack, from_numpy, full, ones, ones_like, rand,
                     randint, randn, tensor, zeros, zeros_like)
from . import nn
from . import cuda, data, datasets, optim
from .serialization import load, save
# Last: torch's names float, bool, sum, max, ... shadow the builtins in this module from here on.
from .dtypes import *  # noqa: F401,F403,E402
from .tensor_functions import *  # noqa: F401,F403,E402
from . import dtypes as _dtypes, tensor_functions as _tensor_functions  # noqa: E402

__version__ = _C.__version__


def build_info() -> dict:
    """How this copy of fastnn was built and what it runs on.

    Keys: version, cuda (compiled with CUDA), cuda_archs, cuda_devices (GPUs usable now),
    cuda_error (why none, or None), isa (the SIMD kernels in use), isas_available, openmp,
    num_threads.
    """
    return dict(_C.build_info())


def get_include() -> str:
    """The include directory of the kernels' C++ API (`#include <fastnn/fastnn.h>`)."""
    return os.path.join(os.path.dirname(__file__), "include")


def get_library() -> str:
    """The path of libfastnn.so, the shared library of kernels that C++ programs link."""
    return os.path.join(os.path.dirname(__file__), "lib", "libfastnn.so")


def get_cmake_dir() -> str:
    """The directory of fastnnConfig.cmake: with -Dfastnn_DIR=<it>, CMake's
    find_package(fastnn CONFIG) gives the imported target fastnn::fastnn."""
    return os.path.join(os.path.dirname(__file__), "lib", "cmake", "fastnn")


__all__ = ["build_info", "get_num_threads", "set_num_threads", "ops", "__version__", "enable_grad",
           "get_include", "get_library", "get_cmake_dir",
           "is_grad_enabled", "no_grad", "set_grad_enabled", "manual_seed", "Tensor", "arange", "as_tensor", "device",
           "empty", "from_dlpack", "from_numpy", "full", "ones", "ones_like", "rand", "randint", "randn", "tensor",
           "zeros", "zeros_like", "nn", "cuda", "data", "datasets", "optim", "load", "save"] + _dtypes.__all__ + \
    _tensor_functions.__all__
