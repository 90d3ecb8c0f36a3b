"""The CUDA backend as a whole: every op has a CUDA kernel under the same name and arguments,
and GPU arrays of any kind go to it (the per-op reference checks run on the `device` fixture
in each op family's tests)."""
import re

import numpy as np
import pytest

import fastnn
from fastnn import _C, ops

cuda_build = pytest.mark.skipif(not fastnn.build_info()["cuda"], reason="built without CUDA")
KERNEL_OPS = [name for name in ops.__all__ if hasattr(_C, name)]


def _arguments(function):
    """[(name, default)] from pybind11's signature line, e.g. 'relu(input: object) -> object'."""
    line = function.__doc__.splitlines()[0]
    inside = line[line.index("(") + 1:line.rindex(") ->")]
    arguments = []
    for part in re.split(r", (?=\w+:)", inside) if inside else []:
        name, _, rest = part.partition(":")
        arguments.append((name.strip(), rest.partition(" = ")[2] or None))
    return arguments


def test_the_kernel_list_covers_the_ops():  # guards the parametrization below against an empty list
    assert len(KERNEL_OPS) >= 20, KERNEL_OPS


@cuda_build
@pytest.mark.parametrize("name", KERNEL_OPS + ["adam_step", "dropout"])
def test_each_kernel_has_a_cuda_twin_with_the_same_arguments(name):
    assert hasattr(_C.cuda, name), f"fastnn._C.cuda has no {name}"
    host, device = _arguments(getattr(_C, name)), _arguments(getattr(_C.cuda, name))
    assert [n for n, _ in device] == [n for n, _ in host], f"{name}: {device} vs {host}"
    # Defaults print as the Python value, but pybind11 writes a C++ pair default as its repr.
    assert [d is None for _, d in device] == [d is None for _, d in host], f"{name}: {device} vs {host}"


@pytest.fixture
def cupy(require_gpu):
    import cupy
    return cupy


def test_cupy_in_cupy_out_on_the_current_stream(cupy):
    x = np.linspace(-3, 3, 1000, dtype=np.float32)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        y = ops.gelu(cupy.asarray(x))
        assert isinstance(y, cupy.ndarray)
    stream.synchronize()
    np.testing.assert_allclose(cupy.asnumpy(y), ops.gelu(x), rtol=1e-5, atol=1e-6)


def test_torch_cuda_tensors_in_torch_cuda_tensors_out(cupy):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    a, b = np.random.default_rng(0).standard_normal((2, 33, 17), dtype=np.float32)
    out = ops.matmul(torch.from_numpy(a).cuda(), torch.from_numpy(b.T.copy()).cuda())
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), a @ b.T, rtol=1e-4, atol=1e-4)


def test_torch_cuda_dtypes_cupy_lacks_raise_type_error(cupy):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    # cupy.from_dlpack raises NotImplementedError for bfloat16 (CuPy versions with it: _cupy_float32's TypeError).
    with pytest.raises(TypeError, match=r"relu: input must be float32.*bfloat16"):
        ops.relu(torch.ones(3, dtype=torch.bfloat16, device="cuda"))


def test_mixed_devices_raise_naming_both(cupy):
    x = np.ones(4, dtype=np.float32)
    with pytest.raises(TypeError, match="relu_backward: input on the GPU but grad_output on the host"):
        ops.relu_backward(x, cupy.asarray(x))
