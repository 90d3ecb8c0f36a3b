"""fastnn.ops on foreign arrays: PyTorch tensors, fastnn Tensors and any DLPack producer go to
the kernels without a copy, and results come back in the first argument's array type.

Zero-copy is proven end to end: a spy on the _C kernel records the pointers it receives and
returns, and those must be the pointers of the caller's arrays and of the op's results.
"""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import _C, ops

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


class DLPackOnly:
    """An array from an unknown framework: nothing but the DLPack protocol."""

    def __init__(self, array, device=None):
        self.array, self.device = array, device

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.device or self.array.__dlpack_device__()


def _pool_indices():
    return ops.max_pool2d(randn(2, 3, 6, 6), 2, return_indices=True)[1]


# (op, positional arguments, keyword arguments): one case per op, every family, forward and backward.
CASES = [
    ("matmul", lambda: [randn(3, 4), randn(4, 5)], {}),
    ("matmul_backward", lambda: [randn(2, 3, 5), randn(2, 3, 4), randn(2, 4, 5)], {}),
    ("linear", lambda: [randn(2, 3, 4), randn(5, 4), randn(5)], {}),
    ("linear_backward", lambda: [randn(2, 3, 5), randn(2, 3, 4), randn(5, 4), randn(5)], {}),
    ("conv2d", lambda: [randn(2, 3, 6, 6), randn(4, 3, 3, 3), randn(4)], dict(padding=1)),
    ("conv2d_backward", lambda: [randn(2, 4, 6, 6), randn(2, 3, 6, 6), randn(4, 3, 3, 3), randn(4)],
     dict(padding=1)),
    ("max_pool2d", lambda: [randn(2, 3, 6, 6), 2], dict(return_indices=True)),
    ("max_pool2d_backward", lambda: [randn(2, 3, 3, 3), randn(2, 3, 6, 6), 2], dict(saved=_pool_indices())),
    ("avg_pool2d", lambda: [randn(2, 3, 7, 7), 3], dict(stride=2, padding=1)),
    ("avg_pool2d_backward", lambda: [randn(2, 3, 4, 4), randn(2, 3, 7, 7), 3], dict(stride=2, padding=1)),
    ("relu", lambda: [randn(64)], {}),
    ("relu_backward", lambda: [randn(64), randn(64)], {}),
    ("leaky_relu", lambda: [randn(4, 5)], dict(negative_slope=0.2)),
    ("leaky_relu_backward", lambda: [randn(4, 5), randn(4, 5)], dict(negative_slope=0.2)),
    ("sigmoid", lambda: [randn(4, 5)], {}),
    ("sigmoid_backward", lambda: [randn(4, 5), randn(4, 5)], dict(saved=randn(4, 5))),
    ("tanh", lambda: [randn(4, 5)], {}),
    ("tanh_backward", lambda: [randn(4, 5), randn(4, 5)], {}),
    ("gelu", lambda: [randn(4, 5)], dict(approximate="tanh")),
    ("gelu_backward", lambda: [randn(4, 5), randn(4, 5)], {}),
    ("softmax", lambda: [randn(4, 5)], dict(dim=0)),
    ("softmax_backward", lambda: [randn(4, 5), randn(4, 5)], dict(saved=randn(4, 5))),
    ("log_softmax", lambda: [randn(4, 5)], {}),
    ("log_softmax_backward", lambda: [randn(4, 5), randn(4, 5)], {}),
    ("nll_loss", lambda: [randn(6, 4), np.array([0, 3, 1, 2, 2, 0])], dict(weight=np.abs(randn(4)))),
    ("nll_loss_backward", lambda: [np.full((), 1.5, np.float32), randn(6, 4),
                                   np.array([0, 3, 1, 2, 2, 0])], {}),
    ("cross_entropy", lambda: [randn(6, 4), np.array([0, 3, 1, 2, 2, 0])], dict(reduction="none")),
    ("cross_entropy_backward", lambda: [randn(6), randn(6, 4), np.array([0, 3, 1, 2, 2, 0])],
     dict(weight=np.abs(randn(4)), reduction="none", label_smoothing=0.1)),
]


def test_cases_cover_every_op():
    assert sorted(name for name, _, _ in CASES) == sorted(ops.__all__)


def _torch():
    return pytest.importorskip("torch")


# How each kind of caller passes a NumPy array `a` without copying it, and the type it gets back.
KINDS = {
    "torch": (lambda a: _torch().from_numpy(a), lambda: _torch().Tensor),
    "dlpack": (DLPackOnly, lambda: np.ndarray),
    "fastnn": (fastnn.from_numpy, lambda: np.ndarray),
}


def pointer(value):
    """Address of an array's first element, whatever its type."""
    if isinstance(value, DLPackOnly):
        value = value.array
    return value.data_ptr() if hasattr(value, "data_ptr") else np.asarray(value).ctypes.data


def _results(result):
    return [r for r in (result if isinstance(result, tuple) else (result,)) if r is not None]


@pytest.fixture
def kernel_spy(monkeypatch):
    """spy(op) records the pointers of the arrays _C.<op> receives and returns on each call."""
    seen = {"in": [], "out": []}

    def spy(op):
        kernel = getattr(_C, op)

        def recording(*args, **kwargs):
            seen["in"] += [a.ctypes.data for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
            result = kernel(*args, **kwargs)
            seen["out"] += [r.ctypes.data for r in _results(result)]
            return result
        monkeypatch.setattr(_C, op, recording)
        return seen
    return spy


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op, make_args, kwargs", CASES, ids=[case[0] for case in CASES])
def test_op_reads_and_returns_foreign_arrays_without_copies(kind, op, make_args, kwargs, kernel_spy):
    convert, result_type = KINDS[kind]
    args = make_args()
    expected = getattr(ops, op)(*args, **kwargs)
    wrap = lambda v: convert(v) if isinstance(v, np.ndarray) else v  # noqa: E731
    foreign_args = [wrap(a) for a in args]
    foreign_kwargs = {k: wrap(v) for k, v in kwargs.items()}

    seen = kernel_spy(op)
    result = getattr(ops, op)(*foreign_args, **foreign_kwargs)

    caller_pointers = {pointer(a) for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)}
    assert pointer(foreign_args[0]) in seen["in"], f"{op}: the kernel got a copy of the first argument"
    assert set(seen["in"]) <= caller_pointers, f"{op}: the kernel got a copy of an argument"
    assert isinstance(result, tuple) == isinstance(expected, tuple)
    assert [r is None for r in _results(result)] == [e is None for e in _results(expected)]
    for got, want in zip(_results(result), _results(expected)):
        assert isinstance(got, result_type()), f"{op}: {kind} in, {type(got).__name__} out"
        assert pointer(got) in seen["out"], f"{op}: the result is a copy of the kernel's output"
        np.testing.assert_array_equal(np.asarray(got), want)
        assert np.asarray(got).dtype == want.dtype


def test_numpy_results_are_the_kernels_arrays(kernel_spy):
    x = randn(64)
    seen = kernel_spy("relu")
    y = ops.relu(x)
    assert seen["in"] == [x.ctypes.data] and seen["out"] == [y.ctypes.data]


def test_first_argument_decides_the_result_type():
    torch = _torch()
    g, x = randn(8), randn(8)
    assert isinstance(ops.relu_backward(g, torch.from_numpy(x))[0], np.ndarray)
    assert isinstance(ops.relu_backward(torch.from_numpy(g), x)[0], torch.Tensor)
    assert isinstance(ops.relu(input=torch.from_numpy(x)), torch.Tensor)


def test_torch_tensor_that_requires_grad_is_read_in_place(kernel_spy):
    torch = _torch()
    x = torch.randn(5, 7, requires_grad=True)
    seen = kernel_spy("tanh")
    y = ops.tanh(x)
    assert seen["in"] == [x.data_ptr()]
    assert isinstance(y, torch.Tensor) and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), ops.tanh(x.detach().numpy()))


def test_torch_parameter_gives_torch_tensors():
    torch = _torch()
    weight = torch.nn.Parameter(torch.randn(3, 4))
    y = ops.linear(torch.randn(2, 4), weight)
    assert type(y) is torch.Tensor
    assert type(ops.matmul(weight, torch.randn(4, 2))) is torch.Tensor


def test_non_contiguous_torch_input(kernel_spy):
    torch = _torch()
    a, b = torch.randn(6, 4), torch.randn(5, 6)
    seen = kernel_spy("matmul")
    y = ops.matmul(a.t(), b.t())  # 2-D transposes reach the kernel as strided views of the same memory
    assert seen["in"] == [a.data_ptr(), b.data_ptr()]
    np.testing.assert_allclose(y.numpy(), a.t().numpy() @ b.t().numpy(), rtol=1e-5, atol=1e-5)

    x = torch.randn(4, 6, 8)[:, ::2, 1:]  # the elementwise kernels need a contiguous copy, made by ops
    np.testing.assert_array_equal(ops.relu(x).numpy(), ops.relu(np.ascontiguousarray(x.numpy())))


def test_torch_dtype_is_checked_like_numpy():
    torch = _torch()
    with pytest.raises(TypeError, match="relu: input must be float32, got float64"):
        ops.relu(torch.randn(3, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"relu_backward: input must be float32 \(.*\), got torch.bfloat16"):
        ops.relu_backward(torch.randn(3), torch.randn(3, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="cross_entropy: target must hold integer class indices, got float32"):
        ops.cross_entropy(torch.randn(3, 4), torch.tensor([0.0, 1.0, 2.0]))


def test_large_torch_results_keep_their_buffers():
    """Kernel outputs of >= 1 MiB come from a cache of freed buffers: a torch result must keep
    its buffer out of that cache for as long as it lives."""
    torch = _torch()
    x = torch.randn(1 << 19)
    y = ops.relu(x)
    expected = y.clone()
    for _ in range(4):
        ops.relu(-x), ops.tanh(x)
    assert torch.equal(y, expected)


def test_empty_and_scalar_torch_tensors():
    torch = _torch()
    assert ops.relu(torch.empty(2, 0, 3)).shape == (2, 0, 3)
    assert torch.equal(ops.relu(torch.tensor(-1.0)), torch.tensor(0.0))


def test_generic_dlpack_object_is_read_in_place():
    x = randn(3, 5)
    y = ops.softmax(DLPackOnly(x), dim=1)
    assert type(y) is np.ndarray
    np.testing.assert_array_equal(y, ops.softmax(x, dim=1))


def _missing_for(where):
    """What fastnn.ops lacks to run on `where`, as its TypeError says it."""
    if not where.startswith("cuda"):
        return "but this build of fastnn has no kernels for it"
    if not fastnn.build_info()["cuda"]:
        return "but this build of fastnn has no CUDA kernels"
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed: GPU arrays go to the CUDA kernels (tests/test_cuda.py)")
    return "CuPy is not installed"


@pytest.mark.parametrize("device, where", [((2, 0), "cuda:0"), ((13, 1), "cuda:1"), ((8, 0), "DLPack device 8:0")])
def test_device_arrays_raise_naming_the_argument(device, where):
    on_device = DLPackOnly(randn(4), device=device)
    with pytest.raises(TypeError, match=f"relu: input .*DLPackOnly.* is on {where}.*{_missing_for(where)}"):
        ops.relu(on_device)
    with pytest.raises(TypeError, match=f"sigmoid_backward: saved .* is on {where}"):
        ops.sigmoid_backward(randn(4), randn(4), saved=on_device)
    with pytest.raises(TypeError, match="from_dlpack: x .* is on"):
        fastnn.from_dlpack(on_device)


def test_torch_cuda_tensor_raises():
    torch = _torch()
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device for torch")
    with pytest.raises(TypeError, match=f"relu_backward: input .* is on cuda:0.*{_missing_for('cuda:0')}"):
        ops.relu_backward(torch.randn(4), torch.randn(4, device="cuda"))


def test_fastnn_tensor_gives_numpy_results():
    t = fastnn.randn(4, 5)
    y = ops.relu(t)
    assert type(y) is np.ndarray
    np.testing.assert_array_equal(y, np.maximum(t.numpy(), 0))
    assert type(ops.relu(fastnn.randn(3, requires_grad=True))) is np.ndarray


def test_fastnn_tensor_exports_its_memory():
    t = fastnn.randn(3, 4)
    assert t.__dlpack_device__() == (1, 0)
    for view in (np.asarray(t), np.from_dlpack(t)):
        assert np.shares_memory(view, t.numpy())
    copy = np.array(t)
    assert not np.shares_memory(copy, t.numpy())
    np.testing.assert_array_equal(copy, t.numpy())


def test_fastnn_tensor_that_requires_grad_is_not_exported():
    with pytest.raises(BufferError, match="require gradient"):
        np.from_dlpack(fastnn.randn(3, requires_grad=True))


def test_from_dlpack_shares_memory():
    a = randn(2, 3)
    for source in (a, DLPackOnly(a), fastnn.from_numpy(a)):
        t = fastnn.from_dlpack(source)
        assert type(t) is fastnn.Tensor and pointer(t.numpy()) == a.ctypes.data
    t[0, 0] = 7.0
    assert a[0, 0] == 7.0


def test_from_dlpack_rejects_non_arrays():
    with pytest.raises(TypeError, match="from_dlpack: x must implement __dlpack__.*got list"):
        fastnn.from_dlpack([1.0, 2.0])


def test_torch_round_trip_shares_memory():
    torch = _torch()
    t = fastnn.randn(3, 4)
    as_torch = torch.from_dlpack(t)
    assert as_torch.data_ptr() == t.numpy().ctypes.data
    back = fastnn.from_dlpack(as_torch)
    assert back.numpy().ctypes.data == as_torch.data_ptr()
    as_torch[1, 2] = 5.0
    assert t[1, 2].item() == 5.0 and back[1, 2].item() == 5.0
    x = torch.randn(2, 2, requires_grad=True)
    assert fastnn.from_dlpack(x).numpy().ctypes.data == x.data_ptr()


def test_fastnn_does_not_import_torch():
    code = ("import sys, numpy as np, fastnn; fastnn.ops.relu(np.ones(3, np.float32)); "
            "fastnn.from_dlpack(np.ones(2)); assert sys.modules.get('torch') is None, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
