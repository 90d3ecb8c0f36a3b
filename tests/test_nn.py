"""fastnn.nn.functional through autograd (finite differences), the NumPy-only losses against
their formulas, and Module behaviour: registration, state_dict, train/eval, initialization."""
import collections
import math

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
import fastnn.nn.functional as F
from gradcheck import check_grad

rng = np.random.default_rng(2)


def randn(*shape, low=None):
    """float32 normal samples; with `low`, kept at least that far from 0 (kinks at 0)."""
    a = rng.standard_normal(shape).astype(np.float32)
    return a if low is None else np.where(a >= 0, a + low, a - low).astype(np.float32)


def distinct(*shape):
    """Values at least 0.1 apart, so a finite-difference step never reorders a max window."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1).astype(np.float32)


def targets(n, classes):
    return rng.integers(0, classes, n)


def seeded_dropout(p):
    def fn(x):
        fastnn.manual_seed(7)  # the same mask for every finite-difference evaluation
        return F.dropout(x, p)
    return fn


@pytest.mark.parametrize("fn, arrays, constant", [
    (lambda x, w, b: F.conv2d(x, w, b), [randn(2, 3, 6, 5), randn(4, 3, 3, 3), randn(4)], ()),
    (lambda x, w: F.conv2d(x, w, stride=2, padding=1), [randn(2, 3, 7, 7), randn(4, 3, 3, 3)], ()),
    (lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2), [randn(1, 4, 5, 5), randn(6, 2, 3, 3), randn(6)], ()),
    (lambda x, w, b: F.linear(x, w, b), [randn(5, 3), randn(4, 3), randn(4)], ()),
    (lambda x, w: F.linear(x, w), [randn(2, 5, 3), randn(4, 3)], ()),
    (lambda x: F.max_pool2d(x, 2), [distinct(2, 3, 6, 6)], ()),
    (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), [distinct(1, 2, 7, 7) - 4], ()),
    (lambda x: F.relu_max_pool2d(x, 2), [distinct(2, 3, 6, 8) - 10.05], ()),
    (lambda x: F.relu_max_pool2d(x, 3, stride=2, padding=1), [distinct(1, 2, 7, 7) - 7.05], ()),
    (lambda x: F.avg_pool2d(x, 2), [randn(2, 3, 6, 6)], ()),
    (lambda x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False), [randn(1, 2, 7, 7)], ()),
    (lambda x: F.relu(x), [randn(3, 4, low=0.1)], ()),
    (lambda x: F.leaky_relu(x, 0.2), [randn(3, 4, low=0.1)], ()),
    (lambda x: F.sigmoid(x), [randn(3, 4)], ()),
    (lambda x: F.tanh(x), [randn(3, 4)], ()),
    (lambda x: F.gelu(x), [randn(3, 4)], ()),
    (lambda x: F.gelu(x, approximate="tanh"), [randn(3, 4)], ()),
    (lambda x: F.softmax(x, dim=1), [randn(3, 5)], ()),
    (lambda x: F.softmax(x, dim=0), [randn(3, 5)], ()),
    (lambda x: F.log_softmax(x, dim=-1), [randn(3, 5)], ()),
    (lambda x: F.log_softmax(x, dim=1), [randn(2, 4, 3, 3)], ()),
    (seeded_dropout(0.3), [randn(4, 5)], ()),
    (lambda x, t: F.nll_loss(F.log_softmax(x, dim=1), t), [randn(6, 4), targets(6, 4)], ()),
    (lambda x, t: F.nll_loss(x, t, reduction="sum"), [randn(6, 4), targets(6, 4)], ()),
    (lambda x, t: F.nll_loss(x, t, reduction="none"), [randn(6, 4), targets(6, 4)], ()),
    (lambda x, t: F.cross_entropy(x, t), [randn(6, 4), targets(6, 4)], ()),
    (lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1, reduction="sum"), [randn(6, 4), targets(6, 4)], ()),
    (lambda x, t, w: F.cross_entropy(x, t, weight=w), [randn(6, 4), targets(6, 4), randn(4) ** 2], (2,)),
    (lambda x, t: F.mse_loss(x, t), [randn(3, 4), randn(3, 4)], ()),
    (lambda x, t: F.mse_loss(x, t, reduction="sum"), [randn(3, 4), randn(3, 4)], ()),
    (lambda x, t: F.mse_loss(x, t, reduction="none"), [randn(3, 4), randn(3, 4)], ()),
    (lambda x, t: F.binary_cross_entropy(F.sigmoid(x), t), [randn(3, 4), rng.random((3, 4), np.float32)], (1,)),
    (lambda x, t: F.binary_cross_entropy(F.sigmoid(x), t, reduction="none"),
     [randn(3, 4), rng.random((3, 4), np.float32)], (1,)),
    (lambda x, t: F.binary_cross_entropy_with_logits(x, t), [randn(3, 4), rng.random((3, 4), np.float32)], (1,)),
    (lambda x, t, w, pw: F.binary_cross_entropy_with_logits(x, t, w, "sum", pw),
     [randn(3, 4), rng.random((3, 4), np.float32), rng.random(4, np.float32), 2 * rng.random(4, np.float32)],
     (1, 2, 3)),
    (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [randn(4, 3, 2, 2), randn(3), randn(3)], ()),
    (lambda x: F.batch_norm(x, None, None, training=True), [randn(5, 3)], ()),
    (lambda x, w, b: F.batch_norm(x, fastnn.zeros(3) + 0.5, fastnn.ones(3) * 2, w, b, training=False),
     [randn(4, 3, 2, 2), randn(3), randn(3)], ()),
])
def test_functional_gradients_match_finite_differences(fn, arrays, constant):
    check_grad(fn, *arrays, constant=constant)


def test_functional_ops_accept_tensors_without_grad_and_record_nothing():
    x = fastnn.randn(2, 3, 8, 8)
    y = F.max_pool2d(F.relu(F.conv2d(x, fastnn.randn(4, 3, 3, 3))), 2)
    assert y.shape == (2, 4, 3, 3) and not y.requires_grad and y.grad_fn is None
    assert "grad_fn=<CrossEntropyBackward>" in repr(F.cross_entropy(fastnn.randn(2, 3, requires_grad=True),
                                                                     fastnn.tensor([0, 2])))
    out, indices = F.max_pool2d(x, 2, return_indices=True)
    assert out.shape == indices.shape == (2, 3, 4, 4) and indices.dtype == np.int64


def test_softmax_default_dim_is_torchs():
    x = fastnn.randn(3, 5)
    np.testing.assert_allclose(F.softmax(x).sum(1).numpy(), np.ones(3), rtol=1e-5)


def test_mse_loss_values():
    x, t = randn(3, 4), randn(3, 4)
    np.testing.assert_allclose(F.mse_loss(fastnn.tensor(x), fastnn.tensor(t)).item(), np.mean((x - t) ** 2), rtol=1e-5)
    np.testing.assert_allclose(F.mse_loss(fastnn.tensor(x), fastnn.tensor(t), reduction="sum").item(),
                               np.sum((x - t) ** 2), rtol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(fastnn.tensor(x), fastnn.tensor(t), reduction="avg")


def test_binary_cross_entropy_values_and_clamping():
    p = np.array([0.2, 0.9, 0.5], np.float32)
    t = np.array([0.0, 1.0, 1.0], np.float32)
    expected = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    np.testing.assert_allclose(F.binary_cross_entropy(fastnn.tensor(p), fastnn.tensor(t)).item(), expected, rtol=1e-5)
    # log(0) is clamped to -100, as in torch: a confident wrong answer costs 100, not inf.
    assert F.binary_cross_entropy(fastnn.tensor([0.0]), fastnn.tensor([1.0])).item() == pytest.approx(100)
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(fastnn.tensor([1.5]), fastnn.tensor([1.0]))


def test_binary_cross_entropy_with_logits_is_stable_for_huge_logits():
    x = np.array([-200.0, -3.0, 0.0, 4.0, 200.0], np.float32)
    t = np.array([1.0, 0.0, 1.0, 1.0, 0.0], np.float32)
    xt = fastnn.tensor(x, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(xt, fastnn.tensor(t), reduction="none")
    x64 = x.astype(np.float64)
    expected = np.maximum(x64, 0) - x64 * t + np.log1p(np.exp(-np.abs(x64)))
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-5)
    loss.sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), 1 / (1 + np.exp(-x64)) - t, atol=1e-6)
    pos_weight = fastnn.tensor([3.0])
    weighted = F.binary_cross_entropy_with_logits(fastnn.tensor(x[2:4]), fastnn.tensor(t[2:4]), pos_weight=pos_weight)
    np.testing.assert_allclose(weighted.item(), np.mean(3 * np.log1p(np.exp(-x64[2:4]))), rtol=1e-5)


def test_dropout_scales_kept_units_and_is_identity_in_eval():
    fastnn.manual_seed(0)
    x = fastnn.ones(100, 100)
    y = F.dropout(x, 0.25).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    assert F.dropout(x, 0.25, training=False) is x
    assert F.dropout(x, 1.0).sum().item() == 0
    layer = nn.Dropout(0.5)
    assert layer.eval()(x) is x
    assert (layer.train()(x).numpy() == 0).any()
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


def test_batchnorm_normalizes_and_tracks_running_stats_like_torch():
    x = randn(8, 3, 4, 4) * 2 + 1
    bn = nn.BatchNorm2d(3)
    y = bn(fastnn.tensor(x)).detach().numpy()
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    expected = (x - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(y, expected, atol=1e-4)
    n = 8 * 4 * 4
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    y_eval = bn(fastnn.tensor(x)).detach().numpy()
    expected_eval = (x - bn.running_mean.numpy().reshape(1, 3, 1, 1)) / np.sqrt(
        bn.running_var.numpy().reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(y_eval, expected_eval, atol=1e-5)
    assert bn.num_batches_tracked.item() == 1  # eval leaves the statistics alone


def test_batchnorm_options():
    x = fastnn.tensor(randn(4, 2, 3, 3))
    cumulative = nn.BatchNorm2d(2, momentum=None)
    cumulative(x)
    cumulative(x * 3)
    expected = (x.numpy().mean(axis=(0, 2, 3)) + (3 * x.numpy()).mean(axis=(0, 2, 3))) / 2
    np.testing.assert_allclose(cumulative.running_mean.numpy(), expected, rtol=1e-5)
    plain = nn.BatchNorm2d(2, affine=False, track_running_stats=False).eval()
    assert list(plain.parameters()) == [] and plain.running_mean is None
    np.testing.assert_allclose(plain(x).detach().numpy().mean(axis=(0, 2, 3)), 0, atol=1e-5)  # batch stats in eval
    assert nn.BatchNorm1d(2)(fastnn.tensor(randn(5, 2))).shape == (5, 2)
    with pytest.raises(ValueError, match="4D"):
        nn.BatchNorm2d(2)(fastnn.zeros(4, 2))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * 4 * 4, 10))
        self.scale = nn.Parameter(fastnn.ones(1))
        self.register_buffer("steps", fastnn.zeros(1))
        self.register_buffer("scratch", fastnn.zeros(1), persistent=False)
        self.note = "not registered"

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        return self.head(x) * self.scale


def test_module_registers_parameters_buffers_and_children_in_order():
    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["scale", "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "head.2.weight", "head.2.bias"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [n for n, _ in net.named_children()] == ["conv1", "bn1", "head"]
    assert len(list(net.modules())) == 7
    assert [n for n, _ in net.named_buffers()] == ["steps", "scratch", "bn1.running_mean", "bn1.running_var",
                                                   "bn1.num_batches_tracked"]
    assert net.note == "not registered" and "note" not in dict(net.named_parameters())
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        net.missing
    del net.scale
    assert "scale" not in dict(net.named_parameters())


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2


def test_parameter_assignment_rules():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign"):
        layer.weight = fastnn.zeros(2, 2)
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert layer(fastnn.ones(1, 2)).shape == (1, 2)

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(fastnn.zeros(1))
    with pytest.raises(AttributeError, match="super"):
        Early()


def test_parameter_shares_memory_and_requires_grad():
    data = fastnn.zeros(3)
    p = nn.Parameter(data)
    data.add_(1)
    assert p.requires_grad and p.is_leaf and p.detach().tolist() == [1, 1, 1]
    assert repr(p).startswith("Parameter containing:")
    assert not nn.Parameter(data, requires_grad=False).requires_grad


def test_forward_backward_and_zero_grad():
    fastnn.manual_seed(0)
    net = Net()
    out = net(fastnn.randn(2, 1, 8, 8))
    assert out.shape == (2, 10)
    F.cross_entropy(out, fastnn.tensor([1, 7])).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad.abs().sum().item() == 0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_train_and_eval_propagate():
    net = Net()
    assert net.training and net.head[1].training
    assert net.eval() is net and not net.training and not net.head[1].training and not net.bn1.training
    net.train()
    assert net.bn1.training
    fastnn.manual_seed(0)
    x = fastnn.randn(3, 1, 8, 8)
    net.eval()
    with fastnn.no_grad():
        np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())  # no dropout, fixed statistics


def test_state_dict_round_trip():
    fastnn.manual_seed(1)
    source, target = Net(), Net()
    source(fastnn.randn(4, 1, 8, 8))  # move the running statistics off their initial values
    state = source.state_dict()
    assert isinstance(state, collections.OrderedDict)
    assert list(state) == ["scale", "steps", "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias",
                           "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked", "head.2.weight",
                           "head.2.bias"]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    weight_before = target.conv1.weight
    result = target.load_state_dict({k: v.copy() for k, v in state.items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target.conv1.weight is weight_before  # loaded in place: optimizers keep their references
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    x = fastnn.randn(2, 1, 8, 8)
    source.eval(), target.eval()
    with fastnn.no_grad():
        np.testing.assert_array_equal(source(x).numpy(), target(x).numpy())


def test_load_state_dict_checks_keys_and_shapes():
    net = Net()
    state = net.state_dict()
    broken = {k: v for k, v in state.items() if k != "conv1.bias"}
    broken["extra.weight"] = np.zeros(1, np.float32)
    with pytest.raises(RuntimeError) as error:
        net.load_state_dict(broken)
    message = str(error.value)
    assert 'Missing key(s) in state_dict: "conv1.bias"' in message
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in message
    result = net.load_state_dict(broken, strict=False)
    assert result.missing_keys == ["conv1.bias"] and result.unexpected_keys == ["extra.weight"]
    wrong = dict(state, **{"conv1.weight": np.zeros((4, 1, 5, 5), np.float32)})
    before = net.conv1.bias.detach().numpy().copy()
    with pytest.raises(RuntimeError, match="size mismatch for conv1.weight"):
        net.load_state_dict(dict(wrong, **{"conv1.bias": np.zeros(4, np.float32)}))
    np.testing.assert_array_equal(net.conv1.bias.detach().numpy(), before)  # nothing copied on error


def test_sequential():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 3 * 3, 5),
                          nn.LogSoftmax(dim=1))
    assert model(fastnn.randn(2, 3, 8, 8)).shape == (2, 5)
    assert len(model) == 6 and isinstance(model[0], nn.Conv2d) and isinstance(model[-1], nn.LogSoftmax)
    assert len(model[:2]) == 2 and [type(m).__name__ for m in model][:2] == ["Conv2d", "ReLU"]
    named = nn.Sequential(collections.OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.Tanh())]))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    assert "(fc): Linear(in_features=2, out_features=3, bias=True)" in repr(named)
    blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(blocks.parameters())) == 6 and len(blocks) == 3


def test_sequential_runs_a_relu_then_a_max_pool_as_one_op():
    x = fastnn.tensor(distinct(2, 3, 8, 8) - 30.05, requires_grad=True)
    grad = randn(2, 3, 4, 4)
    fused = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))(x)
    assert fused.grad_fn.name == "MaxPool2d"
    fused.backward(fastnn.tensor(grad))
    fused_grad, x.grad = x.grad.numpy().copy(), None
    apart = nn.MaxPool2d(2)(nn.ReLU()(x))  # what the two modules compute one after the other
    assert apart.grad_fn.name == "MaxPool2d" and apart.grad_fn.parents[0].grad_fn.name == "Relu"
    apart.backward(fastnn.tensor(grad))
    np.testing.assert_array_equal(fused.detach().numpy(), apart.detach().numpy())
    np.testing.assert_array_equal(fused_grad, x.grad.numpy())
    assert (fused_grad != 0).any() and (apart.detach().numpy() == 0).any()
    # Not fused: a MaxPool2d returning indices, and a ReLU subclass (its forward may differ).
    out, indices = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True))(x)
    assert out.grad_fn.parents[0].grad_fn.name == "Relu" and indices.shape == out.shape

    class Shifted(nn.ReLU):
        def forward(self, input):
            return F.relu(input) + 1

    np.testing.assert_array_equal(nn.Sequential(Shifted(), nn.MaxPool2d(2))(x).detach().numpy(),
                                  apart.detach().numpy() + 1)


@pytest.mark.parametrize("layer, shape, out_shape", [
    (nn.Identity(), (2, 3), (2, 3)),
    (nn.Conv2d(3, 6, (3, 5), stride=2, padding=(1, 2), bias=False), (2, 3, 9, 9), (2, 6, 5, 5)),
    (nn.Conv2d(4, 4, 3, padding="same", groups=2), (1, 4, 6, 6), (1, 4, 6, 6)),
    (nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 8, 8), (1, 2, 4, 4)),
    (nn.AvgPool2d(2), (1, 2, 8, 8), (1, 2, 4, 4)),
    (nn.LeakyReLU(0.1), (2, 3), (2, 3)), (nn.Sigmoid(), (2, 3), (2, 3)), (nn.Tanh(), (2, 3), (2, 3)),
    (nn.GELU(), (2, 3), (2, 3)), (nn.Softmax(dim=1), (2, 3), (2, 3)), (nn.Flatten(0), (2, 3), (6,)),
])
def test_layer_shapes(layer, shape, out_shape):
    assert layer(fastnn.randn(*shape)).shape == out_shape


def test_loss_modules_match_functional():
    x, t = fastnn.randn(5, 4), fastnn.tensor(targets(5, 4))
    assert nn.CrossEntropyLoss()(x, t).item() == F.cross_entropy(x, t).item()
    weight = fastnn.tensor([1.0, 2.0, 0.5, 1.0])
    assert nn.CrossEntropyLoss(weight, reduction="sum")(x, t).item() == F.cross_entropy(x, t, weight,
                                                                                         reduction="sum").item()
    assert nn.NLLLoss(ignore_index=1)(x, t).item() == F.nll_loss(x, t, ignore_index=1).item()
    y = fastnn.randn(5, 4)
    assert nn.MSELoss()(x, y).item() == F.mse_loss(x, y).item()
    p, b = F.sigmoid(x), fastnn.rand(5, 4)
    assert nn.BCELoss(reduction="sum")(p, b).item() == F.binary_cross_entropy(p, b, reduction="sum").item()
    assert nn.BCEWithLogitsLoss(pos_weight=fastnn.ones(4) * 2)(x, b).item() == \
        F.binary_cross_entropy_with_logits(x, b, pos_weight=fastnn.ones(4) * 2).item()


def test_default_initialization_matches_torchs_bounds():
    fastnn.manual_seed(0)
    linear = nn.Linear(400, 50)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = linear.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(linear.bias.detach().numpy()).max() <= bound
    conv = nn.Conv2d(8, 16, 3)
    conv_bound = 1 / math.sqrt(8 * 9)
    assert np.abs(conv.weight.detach().numpy()).max() <= conv_bound
    assert np.abs(conv.bias.detach().numpy()).max() <= conv_bound
    fastnn.manual_seed(0)
    again = nn.Linear(400, 50)
    np.testing.assert_array_equal(again.weight.detach().numpy(), w)


def test_init_functions():
    fastnn.manual_seed(0)
    w = nn.Parameter(fastnn.empty(256, 128))
    assert nn.init.kaiming_uniform_(w, nonlinearity="relu") is w
    bound = math.sqrt(2) * math.sqrt(3 / 128)
    assert np.abs(w.detach().numpy()).max() <= bound and w.detach().numpy().std() == pytest.approx(bound / math.sqrt(3),
                                                                                                  rel=0.05)
    nn.init.xavier_uniform_(w)
    assert np.abs(w.detach().numpy()).max() <= math.sqrt(6 / (128 + 256))
    nn.init.normal_(w, 1.0, 0.1)
    assert w.detach().numpy().mean() == pytest.approx(1.0, abs=0.01)
    nn.init.uniform_(w, -2, -1)
    assert -2 <= w.detach().numpy().min() and w.detach().numpy().max() < -1
    nn.init.zeros_(w)
    assert w.detach().numpy().sum() == 0
    nn.init.constant_(w, 3)
    assert (w.detach().numpy() == 3).all() and w.requires_grad and w.grad is None


def test_to_device_is_a_no_op_on_cpu():
    net = Net()
    weights = [p._data for p in net.parameters()]
    assert net.to("cpu") is net and net.to(fastnn.device("cpu")) is net and net.cpu() is net
    assert [p._data for p in net.parameters()] == weights


def test_a_small_cnn_learns():
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 2))
    x = fastnn.randn(16, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        with fastnn.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (64, 1001)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_kernel_mask_rate_and_backward(shape, dtype):
    p = 0.3
    x = rng.standard_normal(shape).astype(dtype)
    fastnn.manual_seed(3)
    t = fastnn.tensor(x, requires_grad=True)
    y = F.dropout(t, p)
    kept = y._data != 0
    assert y.dtype == dtype
    np.testing.assert_allclose(y._data[kept], x[kept] / (1 - p), rtol=1e-6)
    if x.size > 10000:  # 64064 draws: the kept fraction is within 0.01 of 0.7 (5 sigma is 0.009)
        assert abs(kept.mean() - (1 - p)) < 0.01
    grad = rng.standard_normal(shape).astype(dtype)
    y.backward(fastnn.tensor(grad))
    np.testing.assert_allclose(t.grad._data, np.where(kept, grad / (1 - p), 0), rtol=1e-6)


def test_dropout_masks_are_seeded_fresh_per_call_and_independent_of_threads():
    x = fastnn.ones(300, 301)
    masks, default_threads = [], fastnn.get_num_threads()
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        fastnn.manual_seed(5)
        masks.append((F.dropout(x, 0.5)._data != 0, F.dropout(x, 0.5)._data != 0))
    fastnn.set_num_threads(default_threads)
    (a1, b1), (a2, b2) = masks
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert 0.45 < (a1 == b1).mean() < 0.55  # two calls draw unrelated masks


def splitmix64(seed, k):
    """The mask's random stream (csrc/cpu/dropout_slice.h) in NumPy uint64 arithmetic, which wraps."""
    z = np.uint64(seed) + (k + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@pytest.mark.parametrize("threads", [1, 2])
def test_dropout_mask_is_the_documented_stream_on_every_isa(isa, threads):
    n, p, seed = 100_003, 0.3, 12345  # odd, and past the size that splits across threads
    with np.errstate(over="ignore"):
        bits = splitmix64(seed, np.arange((n + 1) // 2, dtype=np.uint64))
    halves = np.stack([bits & np.uint64(0xFFFFFFFF), bits >> np.uint64(32)], axis=1).reshape(-1)[:n]
    kept = halves >= np.uint64(round(p * 2**32))
    default_threads = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        for dtype in (np.float32, np.float64):
            y = fastnn._C.dropout(np.ones(n, dtype), p, seed)
            np.testing.assert_array_equal(y, np.where(kept, dtype(1 / (1 - p)), dtype(0)))
    finally:
        fastnn.set_num_threads(default_threads)


def test_dropout_of_a_strided_input():
    fastnn.manual_seed(1)
    x = fastnn.tensor(rng.standard_normal((6, 8)).astype(np.float32)).T
    y = F.dropout(x, 0.5)
    kept = y._data != 0
    np.testing.assert_allclose(y._data[kept], 2 * x._data[kept], rtol=1e-6)


def test_conv2d_skips_the_input_gradient_nobody_needs():
    x = np.random.default_rng(1).standard_normal((2, 1, 6, 6)).astype(np.float32)
    conv = nn.Conv2d(1, 3, 3)
    conv(fastnn.tensor(x)).sum().backward()  # a first layer: the input needs no gradient
    expected = fastnn.ops.conv2d_backward(np.ones((2, 3, 4, 4), np.float32), x, conv.weight._data, conv.bias._data)
    np.testing.assert_allclose(conv.weight.grad._data, expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv.bias.grad._data, expected[2], rtol=1e-5, atol=1e-5)
    leaf = fastnn.tensor(x, requires_grad=True)
    conv(leaf).sum().backward()
    np.testing.assert_allclose(leaf.grad._data, expected[0], rtol=1e-5, atol=1e-5)
