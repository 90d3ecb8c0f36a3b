"""Optimizers and StepLR against steps computed by hand from torch.optim's documented update rules,
and against torch.optim itself over many steps when torch is installed."""
import numpy as np
import pytest

import fastnn
from cuda_fakes import FakeCudaArray, expected_runtime_error
from fastnn import _C, nn, optim

cuda_build = pytest.mark.skipif(not fastnn.build_info()["cuda"], reason="built without CUDA")


def make_param(values, grad=None):
    p = nn.Parameter(fastnn.tensor(np.array(values, dtype=np.float32)))
    if grad is not None:
        p.grad = fastnn.tensor(np.array(grad, dtype=np.float32))
    return p


def on_device(array, device):
    """A copy of `array` on `device`: NumPy on "cpu", CuPy on "cuda"."""
    if device == "cpu":
        return array.copy()
    import cupy
    return cupy.asarray(array)


def on_host(array):
    return array if isinstance(array, np.ndarray) else array.get()


def device_param(values, device):
    """A Parameter whose array is `values` on `device`."""
    p = nn.Parameter(fastnn.tensor(np.zeros(1, values.dtype)))
    p._data = on_device(values, device)
    return p


def take_steps(optimizer, p, grads):
    """One step per gradient in grads, returning the parameter's values after each."""
    values = []
    for grad in grads:
        p.grad = fastnn.tensor(np.array(grad, dtype=np.float32))
        optimizer.step()
        values.append(p._data.copy())
    return values


def test_sgd_plain_step():
    p = make_param([1.0, -2.0], grad=[0.5, -1.0])
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p._data, [0.95, -1.9], rtol=1e-6)


def test_step_with_closure_through_autograd():
    # loss = sum(p^2) has gradient 2p: SGD with lr 0.1 scales p by 0.8. The closure runs with grad
    # mode on even when step is called under no_grad.
    p = make_param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with fastnn.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_allclose(p._data, [0.8, 1.6], rtol=1e-6)


def test_sgd_nesterov_momentum_two_steps():
    # b1 = g = 0.5; step with g + 0.9*b1 = 0.95 -> 1 - 0.095 = 0.905.
    # b2 = 0.9*0.5 + 0.5 = 0.95; step with 0.5 + 0.9*0.95 = 1.355 -> 0.905 - 0.1355 = 0.7695.
    p = make_param([1.0])
    values = take_steps(optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True), p, [[0.5], [0.5]])
    np.testing.assert_allclose(values, [[0.905], [0.7695]], rtol=1e-6)


def test_sgd_momentum_with_dampening():
    # b1 = g = 1 (no dampening on the first step); b2 = 0.9*1 + (1-0.5)*1 = 1.4.
    p = make_param([0.0])
    values = take_steps(optim.SGD([p], lr=1.0, momentum=0.9, dampening=0.5), p, [[1.0], [1.0]])
    np.testing.assert_allclose(values, [[-1.0], [-2.4]], rtol=1e-6)


def test_adam_first_step_moves_by_lr():
    # Step 1: m_hat = g and v_hat = g^2, so each parameter moves by lr * g / (|g| + eps).
    p = make_param([1.0, -2.0, 3.0], grad=[0.5, -0.1, 4.0])
    optim.Adam([p], lr=0.1).step()
    np.testing.assert_allclose(p._data, [0.9, -1.9, 2.9], rtol=1e-6)


def test_adam_two_steps():
    # m2 = 0.9*0.1*1 + 0.1*(-1) = -0.01, m_hat = -0.01/0.19; v2 = 0.999*0.001 + 0.001 = 0.001999,
    # v_hat = 0.001999/0.001999 = 1: step 2 moves by -0.1 * (-0.01/0.19) / (1 + 1e-8).
    p = make_param([0.0])
    values = take_steps(optim.Adam([p], lr=0.1), p, [[1.0], [-1.0]])
    np.testing.assert_allclose(values, [[-0.1], [-0.1 + 0.1 * 0.01 / 0.19]], rtol=1e-5)


def test_weight_decay_sgd_adam_adamw_differ():
    # p = 2, g = 0.5, lr = 0.1, weight_decay = 0.1. SGD and Adam add 0.1*2 to the gradient:
    # SGD moves by 0.1*0.7, Adam by lr (its first step is lr*sign). AdamW first shrinks p by
    # 1 - lr*wd = 0.99, then takes Adam's step on the plain gradient.
    expected = {optim.SGD: 2 - 0.07, optim.Adam: 1.9, optim.AdamW: 2 * 0.99 - 0.1}
    for cls, value in expected.items():
        p = make_param([2.0], grad=[0.5])
        cls([p], lr=0.1, weight_decay=0.1).step()
        np.testing.assert_allclose(p._data, [value], rtol=1e-6, err_msg=cls.__name__)


def test_adam_amsgrad_keeps_largest_second_moment():
    # A large then a tiny gradient: v1 = 0.001*100 = 0.1 > v2 = 0.999*0.1 + 0.001*1e-4, so
    # amsgrad's step 2 divides by sqrt(v1/(1-0.999^2)) where plain Adam uses v2.
    p, q = make_param([0.0]), make_param([0.0])
    plain = take_steps(optim.Adam([p], lr=0.1), p, [[10.0], [0.01]])
    ams = take_steps(optim.Adam([q], lr=0.1, amsgrad=True), q, [[10.0], [0.01]])
    m_hat = (0.9 * 0.1 * 10 + 0.1 * 0.01) / 0.19
    v1, v2 = 0.1, 0.999 * 0.1 + 0.001 * 1e-4
    np.testing.assert_allclose(plain[1] - plain[0], [-0.1 * m_hat / (np.sqrt(v2 / 0.001999) + 1e-8)], rtol=1e-4)
    np.testing.assert_allclose(ams[1] - ams[0], [-0.1 * m_hat / (np.sqrt(v1 / 0.001999) + 1e-8)], rtol=1e-4)


def test_rmsprop_two_steps():
    # v1 = 0.01*0.25 = 0.0025, step 0.5/0.05 = 10 -> 1 - 0.1; v2 = 0.99*0.0025 + 0.0025 = 0.004975.
    p = make_param([1.0])
    values = take_steps(optim.RMSprop([p], lr=0.01), p, [[0.5], [0.5]])
    np.testing.assert_allclose(values, [[0.9], [0.9 - 0.01 * 0.5 / (np.sqrt(0.004975) + 1e-8)]], rtol=1e-5)


def test_rmsprop_centered_momentum():
    # v1 = 0.0025, mean_g1 = 0.005, v~ = 0.0025 - 0.000025; b1 = 0.5 / (sqrt(v~) + eps).
    p = make_param([1.0])
    values = take_steps(optim.RMSprop([p], lr=0.01, momentum=0.9, centered=True), p, [[0.5]])
    np.testing.assert_allclose(values, [[1 - 0.01 * 0.5 / (np.sqrt(0.0025 - 0.005 ** 2) + 1e-8)]], rtol=1e-5)


def test_adagrad_two_steps():
    # sum1 = 0.25, step 0.5/0.5 = 1 -> 0.9; sum2 = 0.5, step 0.5/sqrt(0.5).
    p = make_param([1.0])
    values = take_steps(optim.Adagrad([p], lr=0.1), p, [[0.5], [0.5]])
    np.testing.assert_allclose(values, [[0.9], [0.9 - 0.1 * 0.5 / np.sqrt(0.5)]], rtol=1e-5)


def test_adagrad_lr_decay_and_initial_accumulator():
    # Step 2 uses lr / (1 + 1*lr_decay); the sum starts at 1.
    p = make_param([0.0])
    values = take_steps(optim.Adagrad([p], lr=0.1, lr_decay=1.0, initial_accumulator_value=1.0), p,
                        [[1.0], [1.0]])
    np.testing.assert_allclose(values, [[-0.1 / np.sqrt(2)], [-0.1 / np.sqrt(2) - 0.05 / np.sqrt(3)]], rtol=1e-5)


def test_param_groups_hold_their_own_lr_and_lr_can_change():
    a, b = make_param([1.0], grad=[1.0]), make_param([1.0], grad=[1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    opt.step()
    opt.param_groups[0]["lr"] = 0.2
    opt.step()
    np.testing.assert_allclose([a._data[0], b._data[0]], [1 - 0.1 - 0.2, 0.0], rtol=1e-6)


def test_parameters_without_gradient_are_skipped():
    a, b = make_param([1.0], grad=[1.0]), make_param([1.0])
    opt = optim.Adam([a, b], lr=0.1)
    opt.step()
    assert b._data[0] == 1.0 and opt.state_dict()["state"].keys() == {0}


def test_zero_grad():
    p = make_param([1.0, 2.0], grad=[3.0, 4.0])
    opt = optim.SGD([p], lr=0.1)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad._data, [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_invalid_hyperparameters_raise():
    p = make_param([1.0])
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.01),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
], ids=["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_state_dict_round_trip_through_save_and_load(make, tmp_path):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal(())]  # a 0-d one too
    grads = [[rng.standard_normal(v.shape) for v in values] for _ in range(4)]
    first = [make_param(v) for v in values]
    opt = make(first)
    opt.param_groups[0]["lr"] *= 0.5  # a changed hyper-parameter must survive the trip too
    for step in grads[:2]:
        for p, g in zip(first, step):
            p.grad = fastnn.tensor(g.astype(np.float32))
        opt.step()
    fastnn.save(opt.state_dict(), tmp_path / "opt.npz")

    second = [make_param(p._data.copy()) for p in first]
    resumed = make(second)
    resumed.load_state_dict(fastnn.load(tmp_path / "opt.npz"))
    assert resumed.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for step in grads[2:]:
        for ps in (first, second):
            for p, g in zip(ps, step):
                p.grad = fastnn.tensor(g.astype(np.float32))
        opt.step()
        resumed.step()
    for p, q in zip(first, second):
        np.testing.assert_array_equal(p._data, q._data)


def test_load_state_dict_rejects_a_different_layout():
    opt = optim.Adam([make_param([1.0]), make_param([2.0])])
    with pytest.raises(ValueError, match="parameter group 0 has 1 parameters"):
        optim.Adam([make_param([1.0])]).load_state_dict(opt.state_dict())


def test_step_lr():
    # lr 0.1, halved every 2 epochs: epochs 0..4 run at 0.1, 0.1, 0.05, 0.05, 0.025.
    opt = optim.SGD([make_param([1.0])], lr=0.1)
    scheduler = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        lrs.append(scheduler.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == lrs[-1]
        opt.step()
        scheduler.step()
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.05, 0.05, 0.025])
    state = scheduler.state_dict()
    assert state["last_epoch"] == 5 and "optimizer" not in state


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, weight_decay=1e-2)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=1e-2, initial_accumulator_value=0.1)),
])
def test_matches_torch_over_many_steps(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    start = rng.standard_normal((7, 5)).astype(np.float32)
    ours = make_param(start)
    theirs = torch.nn.Parameter(torch.tensor(start))
    opt, ref = getattr(optim, name)([ours], **kwargs), getattr(torch.optim, name)([theirs], **kwargs)
    for _ in range(20):
        grad = rng.standard_normal(start.shape).astype(np.float32)
        ours.grad = fastnn.tensor(grad)
        theirs.grad = torch.tensor(grad)
        opt.step()
        ref.step()
    np.testing.assert_allclose(ours._data, theirs.detach().numpy(), rtol=1e-5, atol=1e-6)


def adam_reference(p, grads, lr, betas, eps, weight_decay, amsgrad, decoupled):
    """torch.optim.Adam's documented rule in float64, one step per gradient."""
    p = p.astype(np.float64)
    m, v, v_max = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        v_max = np.maximum(v_max, v)
        v_hat = (v_max if amsgrad else v) / (1 - betas[1] ** t)
        p = p - lr * m / (1 - betas[0] ** t) / (np.sqrt(v_hat) + eps)
    return p


@pytest.mark.parametrize("cls,kwargs", [
    (optim.Adam, dict(lr=0.01, weight_decay=1e-2)),
    (optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), amsgrad=True)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
])
@pytest.mark.parametrize("shape,dtype", [((), np.float32), ((1,), np.float32), ((3, 37), np.float32),
                                         ((301, 257), np.float32), ((5, 7), np.float64)])
def test_fused_adam_matches_float64_reference(cls, kwargs, shape, dtype, device):
    # (301, 257) is above the CPU kernel's per-thread minimum, so its slices run on several threads;
    # () is a 0-d parameter, whose gradient must reach the kernel 0-d (ascontiguousarray makes it 1-d).
    rng = np.random.default_rng(2)
    start = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(5)]
    p = device_param(start, device)
    opt = cls([p], **kwargs)
    for g in grads:
        p.grad = fastnn.Tensor._make(on_device(g, device))
        opt.step()
    assert p._data.dtype == dtype and type(p._data) is type(on_device(start, device))
    expected = adam_reference(start, grads, kwargs["lr"], kwargs.get("betas", (0.9, 0.999)), 1e-8,
                              kwargs.get("weight_decay", 0), kwargs.get("amsgrad", False), cls is optim.AdamW)
    np.testing.assert_allclose(on_host(p._data), expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_fused_adam_updates_a_strided_parameter_in_place(device):
    base = on_device(np.zeros((4, 6), dtype=np.float32), device)
    p = device_param(np.zeros(1, np.float32), device)
    p._data = base.T  # a view: the step must write through to base
    p.grad = fastnn.Tensor._make(on_device(np.ones((6, 4), dtype=np.float32), device))
    optim.Adam([p], lr=0.1).step()
    np.testing.assert_allclose(on_host(base), -0.1, rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-2),
    lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    lambda ps: optim.AdamW(ps, lr=0.01),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True, weight_decay=1e-2),
    lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=1e-2, initial_accumulator_value=0.1),
], ids=["SGD-nesterov", "SGD-dampening", "Adam", "Adam-amsgrad", "AdamW", "RMSprop", "Adagrad"])
def test_optimizers_step_gpu_parameters_as_host_ones(require_gpu, make):
    # The same steps on CuPy and NumPy parameters: the glue runs in CuPy, the state stays on the
    # GPU, and the values agree up to the order of float32 rounding (FMA contraction on the GPU).
    import cupy
    rng = np.random.default_rng(3)
    values = [rng.standard_normal((33, 17)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    host, gpu = [device_param(v, "cpu") for v in values], [device_param(v, "cuda") for v in values]
    host_opt, gpu_opt = make(host), make(gpu)
    for _ in range(5):
        for p, q in zip(host, gpu):
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad, q.grad = fastnn.Tensor._make(g), fastnn.Tensor._make(cupy.asarray(g))
        host_opt.step()
        gpu_opt.step()
    for p, q in zip(host, gpu):
        assert isinstance(q._data, cupy.ndarray)
        np.testing.assert_allclose(q._data.get(), p._data, rtol=1e-5, atol=1e-6)
    for state in gpu_opt.state.values():
        assert all(isinstance(v, cupy.ndarray) for v in state.values() if not np.isscalar(v))


# 65535 * 256 + 1001 elements: more than one grid of 65535 blocks of 256 threads, so the
# grid-stride loop takes a second step over the last 1001.
@pytest.mark.parametrize("n", [1, 1000, 65535 * 256 + 1001])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("decoupled", [False, True])
def test_cuda_adam_step_kernel_matches_the_cpu_kernel(require_gpu, n, dtype, amsgrad, decoupled):
    import cupy
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(n).astype(dtype) for _ in range(2)] + [rng.random(n).astype(dtype) for _ in range(3)]
    param, grad, m, v, v_max = arrays
    gpu = [cupy.asarray(a) for a in arrays]
    scalars = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled_weight_decay=decoupled,
                   step_size=0.05, bias_correction2_sqrt=0.3)
    _C.adam_step(param, grad, m, v, v_max if amsgrad else None, **scalars)
    _C.cuda.adam_step(*gpu[:4], gpu[4] if amsgrad else None, **scalars)
    # The same expression, contracted to FMAs on the GPU: a few roundings apart, on values of
    # order 1 (atol covers a parameter that its step nearly cancels).
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for name, expected, actual in zip(["param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"], arrays, gpu):
        np.testing.assert_allclose(actual.get(), expected, rtol=tol, atol=tol, err_msg=name)


def fake_adam_arrays(shape=(2, 3), typestr="<f4", **changes):
    """adam_step's five arrays as fakes, with a null address: check_cuda_array asks the runtime
    about no memory then, so every argument's checks run without a GPU. `changes` replaces
    arrays by name."""
    names = ["param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    arrays = {name: FakeCudaArray(shape, typestr, address=0) for name in names}
    arrays.update(changes)
    return arrays


ADAM_SCALARS = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False,
                    step_size=0.1, bias_correction2_sqrt=0.1)


@cuda_build
@pytest.mark.parametrize("name", ["param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
@pytest.mark.parametrize("typestr,expected", [("<f4", "float64"), ("<f8", "float32")])
def test_cuda_adam_step_requires_the_parameters_dtype(name, typestr, expected):
    other = "<f8" if typestr == "<f4" else "<f4"
    arrays = fake_adam_arrays(typestr=other, **{name: FakeCudaArray((2, 3), typestr, address=0)})
    if name == "param":  # the parameter picks the dtype: the next array is the one that differs
        name, expected = "grad", {"<f4": "float32", "<f8": "float64"}[typestr]
    with pytest.raises(TypeError, match=f"adam_step: {name} must be {expected}, got "):
        _C.cuda.adam_step(**arrays, **ADAM_SCALARS)


@cuda_build
def test_cuda_adam_step_rejects_other_dtypes_and_host_arrays():
    with pytest.raises(TypeError, match="adam_step: param must be float32, got float16"):
        _C.cuda.adam_step(**fake_adam_arrays(typestr="<f2"), **ADAM_SCALARS)
    with pytest.raises(TypeError, match=r"adam_step: exp_avg must be a CUDA array .*got numpy.ndarray"):
        _C.cuda.adam_step(**fake_adam_arrays(exp_avg=np.zeros((2, 3), np.float32)), **ADAM_SCALARS)


@cuda_build
@pytest.mark.parametrize("name", ["grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
@pytest.mark.parametrize("shape", [(3, 2), (6,), (2, 3, 1)])
def test_cuda_adam_step_shape_errors_match_the_cpu(name, shape):
    host = {n: np.zeros((2, 3), np.float32) for n in fake_adam_arrays()}
    host[name] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=f"adam_step: {name} must have the parameter's shape") as cpu:
        _C.adam_step(**host, **ADAM_SCALARS)
    with pytest.raises(ValueError) as gpu:
        _C.cuda.adam_step(**fake_adam_arrays(**{name: FakeCudaArray(shape, address=0)}), **ADAM_SCALARS)
    assert str(gpu.value) == str(cpu.value)


@cuda_build
@pytest.mark.parametrize("name", ["param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
def test_cuda_adam_step_rejects_strided_arrays(name):
    arrays = fake_adam_arrays(**{name: FakeCudaArray((2, 3), strides=(4, 8), address=0)})
    with pytest.raises(ValueError, match=f"adam_step: {name} must be C-contiguous"):
        _C.cuda.adam_step(**arrays, **ADAM_SCALARS)


@cuda_build
@pytest.mark.parametrize("shape", [(), (7,), (2, 3), (2, 3, 4, 5)])
@pytest.mark.parametrize("typestr", ["<f4", "<f8"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_cuda_adam_step_passes_valid_arrays_to_the_runtime(shape, typestr, amsgrad):
    arrays = {name: FakeCudaArray(shape, typestr) for name in fake_adam_arrays()}
    if not amsgrad:
        arrays["max_exp_avg_sq"] = None
    error, message = expected_runtime_error()
    with pytest.raises(error, match=message):
        _C.cuda.adam_step(**arrays, **ADAM_SCALARS)
