"""Optimizers and StepLR against steps computed by hand from torch.optim's documented update rules,
and against torch.optim itself over many steps when torch is installed."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, optim


def make_param(values, grad=None):
    p = nn.Parameter(fastnn.tensor(np.array(values, dtype=np.float32)))
    if grad is not None:
        p.grad = fastnn.tensor(np.array(grad, dtype=np.float32))
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
    values = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
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
@pytest.mark.parametrize("shape,dtype", [((1,), np.float32), ((3, 37), np.float32), ((301, 257), np.float32),
                                         ((5, 7), np.float64)])
def test_fused_adam_matches_float64_reference(cls, kwargs, shape, dtype):
    # (301, 257) is above the kernel's per-thread minimum, so its slices run on several threads.
    rng = np.random.default_rng(2)
    start = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(5)]
    p = nn.Parameter(fastnn.tensor(start))
    opt = cls([p], **kwargs)
    for g in grads:
        p.grad = fastnn.tensor(g)
        opt.step()
    assert p._data.dtype == dtype
    expected = adam_reference(start, grads, kwargs["lr"], kwargs.get("betas", (0.9, 0.999)), 1e-8,
                              kwargs.get("weight_decay", 0), kwargs.get("amsgrad", False), cls is optim.AdamW)
    np.testing.assert_allclose(p._data, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_fused_adam_updates_a_strided_parameter_in_place():
    base = np.zeros((4, 6), dtype=np.float32)
    p = nn.Parameter(fastnn.tensor(np.zeros(1, np.float32)))
    p._data = base.T  # a view: the step must write through to base
    p.grad = fastnn.tensor(np.ones((6, 4), dtype=np.float32))
    optim.Adam([p], lr=0.1).step()
    np.testing.assert_allclose(base, -0.1, rtol=1e-6)
