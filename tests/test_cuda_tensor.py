"""CUDA tensors: fastnn.Tensor over a CuPy array, moved with .to / .cuda / .cpu and device=.

The first tests run everywhere: device objects, fastnn.cuda's answers and the errors where CUDA
tensors cannot be made (this build, this machine, or a missing CuPy). The rest need a GPU and
CuPy (the require_gpu fixture skips them otherwise) and compare each CUDA result with the CPU's.
"""
import re
import sys

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.data import DataLoader, TensorDataset
from fastnn.nn import functional as F
from fastnn.tensor import check_index_bounds

# ---- everywhere ----


def test_device_objects():
    assert str(fastnn.device("cuda")) == "cuda" and fastnn.device("cuda").index is None
    assert str(fastnn.device("cuda:1")) == "cuda:1" and fastnn.device("cuda:1").index == 1
    assert fastnn.device("cuda", 0) == fastnn.device("cuda:0") == "cuda:0"
    assert fastnn.device(fastnn.device("cuda:2")).index == 2
    assert fastnn.device("cuda") != fastnn.device("cpu")
    assert repr(fastnn.device("cuda:0")) == "device(type='cuda', index=0)"
    assert repr(fastnn.device("cpu")) == "device(type='cpu')"
    assert len({fastnn.device("cuda:0"), fastnn.device("cuda", 0)}) == 1


def test_cpu_tensors_say_so():
    t = fastnn.ones(2)
    assert t.device == fastnn.device("cpu") and not t.is_cuda
    assert t.to("cpu") is t and t.cpu() is t and t.to(t) is t
    assert fastnn.zeros_like(t).device == "cpu" and fastnn.zeros(2, device="cpu").device == "cpu"


def test_cuda_answers_agree_with_the_build():
    reason = fastnn.cuda.unavailable_reason()
    assert fastnn.cuda.is_available() == (reason is None)
    assert (fastnn.cuda.device_count() > 0) == fastnn.cuda.is_available()
    if reason is not None:
        info = fastnn.build_info()
        if not info["cuda"]:
            assert "no CUDA kernels" in reason
        elif info["cuda_devices"] == 0:
            assert info["cuda_error"] in reason
        else:
            assert "CuPy is not installed" in reason


@pytest.mark.parametrize("build,expected", [
    ({"cuda": False, "cuda_devices": 0, "cuda_error": "built without CUDA"},
     "this build of fastnn has no CUDA kernels (built without nvcc, or with FASTNN_CUDA=OFF)"),
    ({"cuda": True, "cuda_devices": 0, "cuda_error": "cudaErrorNoDevice: no CUDA-capable device is detected"},
     "no usable GPU (cudaErrorNoDevice: no CUDA-capable device is detected)"),
    ({"cuda": True, "cuda_devices": 1, "cuda_error": None}, "CuPy is not installed (pip install fastnn[cuda])"),
], ids=["no kernels", "no GPU", "no CuPy"])
def test_each_missing_piece_is_named(monkeypatch, build, expected):
    monkeypatch.setattr(fastnn._C, "build_info", lambda: build)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    monkeypatch.setattr(fastnn.cuda, "_ready", False)
    assert fastnn.cuda.unavailable_reason() == expected
    assert not fastnn.cuda.is_available() and fastnn.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match=f"^fastnn: cannot use device 'cuda:0': {re.escape(expected)}$"):
        fastnn.ones(2).to("cuda:0")


def test_demo_takes_a_device():
    from fastnn.demo import parse_args
    assert parse_args([]).device == "cpu" and parse_args(["--device", "cuda:0"]).device == "cuda:0"


# ---- on a GPU ----

DTYPES = [np.float32, np.float64, np.int64, np.int32, np.bool_]


@pytest.fixture
def cupy(require_gpu):
    import cupy
    return cupy


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 4)], ids=str)
def test_round_trip_keeps_values_and_dtype(cupy, dtype, shape):
    host = (np.arange(int(np.prod(shape))).reshape(shape) % 3).astype(dtype)
    t = fastnn.tensor(host)
    for on_gpu in (t.to("cuda"), t.cuda(), t.to("cuda:0"), t.to(fastnn.device("cuda")), t.cuda(0)):
        assert isinstance(on_gpu._data, cupy.ndarray) and on_gpu.is_cuda
        assert on_gpu.device == fastnn.device("cuda:0") and on_gpu.dtype == dtype and on_gpu.shape == shape
        back = on_gpu.cpu()
        assert type(back._data) is np.ndarray and back.dtype == dtype
        np.testing.assert_array_equal(back.numpy(), host)
        assert on_gpu.cuda() is on_gpu and on_gpu.to("cuda:0") is on_gpu


def test_factories_and_conversions_on_the_gpu(cupy):
    for t in (fastnn.zeros(2, 3, device="cuda"), fastnn.ones(2, device="cuda"), fastnn.empty(4, device="cuda"),
              fastnn.full((2,), 7.0, device="cuda"), fastnn.arange(5, device="cuda"),
              fastnn.tensor([1.0, 2.0], device="cuda"), fastnn.as_tensor(np.ones(3), device="cuda"),
              fastnn.randint(5, size=(3,), device="cuda")):
        assert t.is_cuda and isinstance(t._data, cupy.ndarray)
    gpu = fastnn.ones(2, 3, dtype=fastnn.float64, device="cuda")
    assert fastnn.zeros_like(gpu).is_cuda and fastnn.ones_like(gpu).dtype == np.float64
    assert not fastnn.zeros_like(gpu, device="cpu").is_cuda
    assert fastnn.tensor(gpu).is_cuda and fastnn.tensor(gpu, device="cpu").device == "cpu"
    assert fastnn.tensor(cupy.arange(3)).is_cuda
    # One seed, the same draws on either device.
    fastnn.manual_seed(3)
    on_cpu = fastnn.randn(4, 5)
    fastnn.manual_seed(3)
    np.testing.assert_array_equal(fastnn.randn(4, 5, device="cuda").cpu().numpy(), on_cpu.numpy())
    assert fastnn.full((2,), 7.0, device="cuda").tolist() == [7.0, 7.0] and gpu.sum().item() == 6.0
    assert "device='cuda:0'" in repr(gpu) and "dtype=float64" in repr(gpu)
    with pytest.raises(TypeError, match=r"can't convert cuda:0 device type tensor to numpy"):
        gpu.numpy()
    with pytest.raises(TypeError, match=r"Use Tensor.cpu\(\)"):
        np.asarray(gpu)


def test_to_cuda_is_differentiable(cupy):
    x = fastnn.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x.cuda() * 2
    (y * y).sum().backward()
    assert type(x.grad._data) is np.ndarray
    np.testing.assert_allclose(x.grad.numpy(), 8 * x.detach().numpy())
    w = fastnn.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    (w.cpu() * 3).sum().backward()
    assert w.grad.is_cuda and w.grad.tolist() == [3.0, 3.0]


GLUE = {
    "reshape": lambda t: t.reshape(4, 6).T.flatten(),
    "index": lambda t: t[1, ::2, fastnn.tensor([0, 3, 3])],
    "index list": lambda t: t[[0, 1, 1]],
    "arithmetic": lambda t: (t * 2 - 1) / (t.abs() + 1) + t ** 2,
    "unary": lambda t: (t.abs() + 1).log().exp().sqrt() + t.clamp(-0.5, 0.5) - (-t).exp(),
    "reductions": lambda t: t.sum(1) + t.mean((0, 2), keepdim=True).sum() + t.max(),
    "max dim": lambda t: t.max(dim=2).values + t.min(1)[0].sum() + t.max(dim=-1).values,
    "cat stack": lambda t: fastnn.cat([t, t * 2], dim=1).sum(1) + fastnn.stack([t, t], dim=1).mean(1).sum(1),
    "matmul": lambda t: (t.reshape(6, 4) @ t.reshape(4, 6)).sum(0) + (t @ t.transpose(1, 2)).sum(),
    "compare": lambda t: t * (t > 0.1) + (t == t) * (t <= 0),
    "permute": lambda t: t.permute(2, 0, 1).transpose(0, 2).unsqueeze(1).squeeze(),
}


@pytest.mark.parametrize("name", list(GLUE))
def test_glue_gives_the_cpu_results_and_gradients(cupy, name):
    fastnn.manual_seed(0)
    x = fastnn.randn(2, 3, 4)
    results = {}
    for where in ("cpu", "cuda"):
        t = x.to(where).detach().requires_grad_()
        out = GLUE[name](t)
        assert out.device.type == where
        out.sum().backward()
        results[where] = out.detach().cpu().numpy(), t.grad.cpu().numpy()
    for cpu, gpu in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-5)


def _small_cnn_loss(x, target, weights):
    conv_w, conv_b, lin_w, lin_b = weights
    h = F.max_pool2d(F.relu(F.conv2d(x, conv_w, conv_b, padding=1)), 2)
    return F.cross_entropy(F.linear(h.flatten(1), lin_w, lin_b), target)


def test_autograd_through_kernel_ops_matches_the_cpu(cupy):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s, dtype=np.float32) * 0.5 for s in [(4, 3, 3, 3), (4,), (5, 64), (5,)]]
    x = rng.standard_normal((2, 3, 8, 8), dtype=np.float32)
    target = np.array([1, 4])
    runs = {}
    for where in ("cpu", "cuda"):
        weights = [fastnn.tensor(a, device=where, requires_grad=True) for a in arrays]
        loss = _small_cnn_loss(fastnn.tensor(x, device=where), fastnn.tensor(target, device=where), weights)
        assert loss.device.type == where
        loss.backward()
        runs[where] = [loss.item()] + [w.grad.cpu().numpy() for w in weights]
    np.testing.assert_allclose(runs["cuda"][0], runs["cpu"][0], rtol=1e-4, atol=1e-4)
    for gpu, cpu in zip(runs["cuda"][1:], runs["cpu"][1:]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4)


def _model():
    # No conv bias before BatchNorm: its gradient is 0 up to rounding, which Adam would scale up
    # to full-size steps whose signs differ between the devices' summation orders.
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_a_module_on_the_gpu_trains_as_on_the_cpu(cupy, optimizer):
    fastnn.manual_seed(0)
    reference = _model()
    state = {name: np.array(value) for name, value in reference.state_dict().items()}
    x = fastnn.randn(8, 1, 8, 8)
    y = fastnn.randint(3, size=(8,))
    results = {}
    for where in ("cpu", "cuda"):
        model = _model()
        model.load_state_dict(state)
        params = list(model.parameters())
        make = getattr(fastnn.optim, optimizer)
        opt = make(model.parameters(), lr=0.05, momentum=0.9) if optimizer == "SGD" else make(model.parameters())
        assert model.to(where) is model and all(p is q for p, q in zip(model.parameters(), params))  # in place
        assert all(p.device.type == where for p in params) and all(b.device.type == where for b in model.buffers())
        for _ in range(3):
            opt.zero_grad()
            loss = F.cross_entropy(model(x.to(where)), y.to(where))
            loss.backward()
            opt.step()
        results[where] = {name: fastnn.tensor(value).cpu().numpy() for name, value in model.state_dict().items()}
    for name, cpu in results["cpu"].items():
        np.testing.assert_allclose(results["cuda"][name], cpu, rtol=1e-4, atol=1e-4, err_msg=name)


def test_module_cuda_and_cpu_move_parameters_buffers_and_grads(cupy):
    model = _model()
    model(fastnn.randn(2, 1, 8, 8)).sum().backward()
    assert model.cuda() is model
    assert all(p.is_cuda and p.grad.is_cuda for p in model.parameters())
    assert all(b.is_cuda for b in model.buffers())
    assert model.cpu() is model and not any(p.is_cuda or p.grad.is_cuda for p in model.parameters())


@pytest.mark.parametrize("op", [
    lambda a, b: a + b,
    lambda a, b: a * b,
    lambda a, b: a @ b,
    lambda a, b: a < b,
    lambda a, b: F.linear(a, b),
    lambda a, b: F.mse_loss(a, b),
    lambda a, b: fastnn.cat([a, b]),
], ids=["add", "mul", "matmul", "less", "linear", "mse_loss", "cat"])
@pytest.mark.parametrize("order", ["cpu first", "cuda first"])
def test_mixing_devices_names_both(cupy, op, order):
    a, b = fastnn.randn(3, 3), fastnn.randn(3, 3).cuda()
    if order == "cuda first":
        a, b = b, a
    with pytest.raises(RuntimeError, match=r"expected all tensors to be on the same device, but found at least "
                                           r"two devices, (cpu and cuda:0|cuda:0 and cpu)"):
        op(a, b)


def test_dropout_on_the_gpu_regenerates_its_mask(cupy):
    x = fastnn.ones(1000, device="cuda", requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    assert y.is_cuda and 300 < int((y > 0).sum().item()) < 700
    np.testing.assert_array_equal(x.grad.cpu().numpy(), y.detach().cpu().numpy())  # both 2 where kept, else 0


def test_save_writes_host_data_and_load_gives_cpu_tensors(cupy, tmp_path):
    model = _model().cuda()
    fastnn.save({"model": model.state_dict(), "t": fastnn.ones(2, device="cuda")}, tmp_path / "gpu.npz")
    loaded = fastnn.load(tmp_path / "gpu.npz")
    assert all(type(v) is np.ndarray for v in loaded["model"].values()) and not loaded["t"].is_cuda
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded["model"][name], cupy.asnumpy(value))
    restored = _model().cuda()
    restored.load_state_dict(loaded["model"])  # host arrays into GPU parameters
    assert all(p.is_cuda for p in restored.parameters())


def test_data_loader_keeps_the_dataset_device(cupy):
    dataset = TensorDataset(fastnn.randn(10, 2, device="cuda"), fastnn.arange(10, device="cuda"))
    batches = list(DataLoader(dataset, batch_size=4, shuffle=True))
    assert all(x.is_cuda and y.is_cuda and y.dtype == np.int64 for x, y in batches)
    assert sorted(int(v) for _, y in batches for v in y.cpu().tolist()) == list(range(10))


def test_zero_d_arrays_stay_zero_d_on_the_gpu(cupy):
    # cupy.ascontiguousarray (as NumPy's) makes a 0-d array 1-d; no GPU path may pass one through it.
    x = fastnn.tensor(2.0, device="cuda", requires_grad=True)
    y = F.dropout(x, 0.5)
    y.backward()
    assert y.shape == () and x.grad.shape == ()
    loss = F.nll_loss(fastnn.tensor([-1.0, -2.0, -0.5], device="cuda"), fastnn.tensor(1, device="cuda"))
    assert loss.shape == () and loss.item() == 2.0
    p = nn.Parameter(fastnn.tensor(1.0, device="cuda"))
    (p * p).backward()
    fastnn.optim.Adam([p], lr=0.1).step()
    assert p.is_cuda and p.shape == () and abs(p.item() - 0.9) < 1e-6


def test_assignment_moves_values_across_devices(cupy):
    gpu = fastnn.zeros(4, device="cuda")
    gpu[1:3] = fastnn.tensor([1.0, 2.0])  # CuPy's slice assignment takes no NumPy array itself
    gpu[0] = np.float32(5)
    host = fastnn.zeros(4)
    host[:] = gpu  # NumPy refuses to read a CuPy array implicitly
    host[3:].fill_(fastnn.tensor(7.0, device="cuda"))
    assert gpu.is_cuda and gpu.tolist() == [5.0, 1.0, 2.0, 0.0] and host.tolist() == [5.0, 1.0, 2.0, 7.0]


def test_optimizer_state_loads_across_devices(cupy):
    on_gpu = nn.Parameter(fastnn.ones(3, device="cuda"))
    gpu_adam = fastnn.optim.Adam([on_gpu])
    (on_gpu * on_gpu).sum().backward()
    gpu_adam.step()
    on_host = nn.Parameter(fastnn.ones(3))
    host_adam = fastnn.optim.Adam([on_host])
    host_adam.load_state_dict(gpu_adam.state_dict())  # GPU state onto a host parameter
    state = host_adam.state[on_host]
    assert type(state["exp_avg"]) is np.ndarray and state["step"] == 1
    np.testing.assert_array_equal(state["exp_avg_sq"], gpu_adam.state[on_gpu]["exp_avg_sq"].get())


@pytest.mark.parametrize("shape, index", [
    ((4,), np.array([4])), ((4,), np.array([-5])), ((3, 4), (np.array([0, 3]), slice(None))),
    ((3, 4), (Ellipsis, np.array([1, 4]))), ((3, 4), (slice(None), None, np.array([[5]]))),
    ((2, 3), np.array(2))])
def test_index_bounds_are_checked_as_numpy_checks_them(shape, index):
    """The check CUDA tensors' indexing runs (CuPy wraps bad indices around), here on host arrays."""
    with pytest.raises(IndexError):
        np.zeros(shape)[index]
    with pytest.raises(IndexError):
        check_index_bounds(shape, index)


@pytest.mark.parametrize("shape, index", [
    ((4,), np.array([3, -4])), ((3, 4), (np.array([0, 2]), slice(1, 3))), ((3, 4), (Ellipsis, np.array([1, 3]))),
    ((3, 4), np.array([[True, False, True, False]] * 3)), ((0, 2), np.array([], dtype=np.int64))])
def test_index_bounds_pass_valid_indices(shape, index):
    check_index_bounds(shape, index)


def test_out_of_range_index_raises_on_the_gpu(require_gpu):
    t = fastnn.arange(4.0, device="cuda")
    with pytest.raises(IndexError):
        t[fastnn.tensor([4])]
    with pytest.raises(IndexError):
        t[fastnn.tensor([-5])] = 1.0
    assert t[fastnn.tensor([3, -4])].tolist() == [3.0, 0.0]
