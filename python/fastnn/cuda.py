"""fastnn.cuda: whether CUDA tensors can be made here, with torch.cuda's names.

A CUDA tensor holds a CuPy array and its ops run fastnn._C.cuda's kernels, so it needs three
things: a build with those kernels, a usable GPU, and CuPy (pip install fastnn[cuda]). CuPy is
imported only when a tensor is moved to the GPU, never when fastnn is imported.
"""
import sys

__all__ = ["is_available", "device_count", "unavailable_reason"]


def unavailable_reason():
    """Why CUDA tensors cannot be made here (no CUDA kernels in this build, no usable GPU, or no
    CuPy), or None when they can."""
    from . import _C  # here, not at the top: tensor.py imports this module before the kernels load
    info = _C.build_info()
    if not info["cuda"]:
        return "this build of fastnn has no CUDA kernels (built without nvcc, or with FASTNN_CUDA=OFF)"
    if info["cuda_devices"] == 0:
        return f"no usable GPU ({info['cuda_error']})"
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install fastnn[cuda])"
    return None


def is_available() -> bool:
    """Whether tensors can be moved to device "cuda" (like torch.cuda.is_available())."""
    return unavailable_reason() is None


def device_count() -> int:
    """The number of GPUs CUDA tensors can be made on (0 where is_available() is False)."""
    from . import _C
    return _C.build_info()["cuda_devices"] if is_available() else 0


# Set once unavailable_reason() found everything in place: it queries the driver, and its
# answer does not change while the process runs.
_ready = False


def cupy_module(target):
    """The cupy module, for putting an array on device `target` (named in the error); RuntimeError
    with the reason when CUDA tensors cannot be made here."""
    global _ready
    if not _ready:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"fastnn: cannot use device '{target}': {reason}")
        _ready = True
    return sys.modules["cupy"]
