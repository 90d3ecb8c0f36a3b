"""fastnn: a small, fast deep-learning backend.

Hand-written C++ (OpenMP + SIMD) kernels behind `fastnn.ops`, a functional API over NumPy
arrays where every op has a matching `<op>_backward`.
"""
from . import _C, ops
from ._C import get_num_threads, set_num_threads

__version__ = _C.__version__


def build_info() -> dict:
    """How this copy of fastnn was built and what it runs on.

    Keys: version, cuda (compiled with CUDA), cuda_archs, cuda_devices (GPUs usable now),
    cuda_error (why none, or None), isa (the SIMD kernels in use), isas_available, openmp,
    num_threads.
    """
    return dict(_C.build_info())


__all__ = ["build_info", "get_num_threads", "set_num_threads", "ops", "__version__"]
