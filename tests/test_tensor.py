"""fastnn.Tensor and the torch-style creation functions: values, dtypes, shapes, storage sharing."""
import copy
import pickle

import numpy as np
import pytest

import fastnn


def test_tensor_from_python_data_uses_torch_default_dtypes():
    assert fastnn.tensor([1.0, 2.0]).dtype == fastnn.float32
    assert fastnn.tensor([1, 2]).dtype == fastnn.int64
    assert fastnn.tensor(3.5).shape == ()
    assert fastnn.tensor([[1, 2]], dtype=fastnn.float32).dtype == np.float32
    assert fastnn.tensor(np.zeros(2, np.float64)).dtype == fastnn.float64  # arrays keep their dtype
    assert fastnn.tensor(np.float64(0.5)).dtype == fastnn.float64  # so do NumPy scalars, as in torch
    assert fastnn.tensor(np.float64(0.5)).shape == ()


def test_tensor_copies_from_numpy_shares():
    a = np.zeros(3, np.float32)
    copied, shared = fastnn.tensor(a), fastnn.from_numpy(a)
    a[0] = 7
    assert copied[0].item() == 0 and shared[0].item() == 7
    shared.add_(1)
    assert a[1] == 1
    with pytest.raises(TypeError):
        fastnn.from_numpy([1, 2])


def test_factories():
    fastnn.manual_seed(5)
    r1 = fastnn.randn(2, 3)
    fastnn.manual_seed(5)
    r2 = fastnn.randn((2, 3))
    np.testing.assert_array_equal(r1.numpy(), r2.numpy())
    assert r1.dtype == np.float32 and r1.shape == (2, 3)
    u = fastnn.rand(1000)
    assert 0 <= u.min().item() and u.max().item() < 1
    assert fastnn.zeros(2, 3).tolist() == [[0, 0, 0], [0, 0, 0]]
    assert fastnn.ones([2]).dtype == np.float32
    assert fastnn.empty(4, 5).shape == (4, 5)
    assert fastnn.full((2,), 3.0).tolist() == [3.0, 3.0]
    assert fastnn.zeros_like(r1).shape == (2, 3) and fastnn.ones_like(r1).sum().item() == 6
    assert fastnn.arange(5).tolist() == [0, 1, 2, 3, 4] and fastnn.arange(5).dtype == np.int64
    assert fastnn.arange(0, 1, 0.25).dtype == np.float32
    assert fastnn.randint(0, 3, (50,)).max().item() <= 2
    assert fastnn.zeros(2, requires_grad=True).requires_grad


def test_properties():
    t = fastnn.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.dim() == 3 and t.ndim == 3 and t.numel() == 24 and len(t) == 2
    assert t.device == fastnn.device("cpu") and str(t.device) == "cpu" and t.device.type == "cpu"
    assert not t.requires_grad and t.grad is None and t.is_leaf
    with pytest.raises(TypeError):
        len(fastnn.tensor(1.0))


def test_conversions():
    t = fastnn.tensor([[1.5, 2.0]])
    assert t.tolist() == [[1.5, 2.0]]
    assert isinstance(t.numpy(), np.ndarray) and np.asarray(t) is t.numpy()
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert t[0, 0].item() == 1.5 and float(t[0, 0]) == 1.5 and int(t[0, 1]) == 2
    assert f"{t.sum():.2f}" == "3.50"
    assert t.float() is t and t.long().tolist() == [[1, 2]] and t.double().dtype == np.float64
    assert t.to("cpu") is t and t.to(fastnn.device("cpu")) is t and t.cpu() is t
    assert t.to(fastnn.float64).dtype == np.float64
    with pytest.raises(RuntimeError, match="cannot be converted to Scalar"):
        t.item()
    with pytest.raises(RuntimeError, match="requires grad"):
        fastnn.tensor([1.0], requires_grad=True).numpy()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(t)
    assert bool(fastnn.tensor([1.0]))


def test_repr():
    assert repr(fastnn.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(fastnn.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert "dtype=float64" in repr(fastnn.tensor(np.zeros(1)))


def test_shape_ops():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = fastnn.tensor(a)
    np.testing.assert_array_equal(t.reshape(6, 4).numpy(), a.reshape(6, 4))
    np.testing.assert_array_equal(t.view(-1, 12).numpy(), a.reshape(-1, 12))
    np.testing.assert_array_equal(t.flatten().numpy(), a.ravel())
    np.testing.assert_array_equal(t.flatten(1).numpy(), a.reshape(2, 12))
    np.testing.assert_array_equal(fastnn.flatten(t, 0, 1).numpy(), a.reshape(6, 4))
    np.testing.assert_array_equal(t.transpose(0, 2).numpy(), a.transpose(2, 1, 0))
    np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), a.transpose(1, 2, 0))
    assert t.unsqueeze(0).shape == (1, 2, 3, 4) and t.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert t[:1].squeeze().shape == (3, 4) and t[:1].squeeze(0).shape == (3, 4) and t.squeeze(1).shape == (2, 3, 4)
    assert t.view_as(fastnn.zeros(4, 6)).shape == (4, 6)
    assert t[0].T.shape == (4, 3) and t[0].t().shape == (4, 3)
    assert fastnn.cat([t, t], 1).shape == (2, 6, 4) and fastnn.stack([t, t]).shape == (2, 2, 3, 4)
    assert t.contiguous() is t and t.transpose(0, 1).contiguous().numpy().flags.c_contiguous


def test_indexing():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = fastnn.tensor(a)
    np.testing.assert_array_equal(t[1].numpy(), a[1])
    np.testing.assert_array_equal(t[:, 1:3].numpy(), a[:, 1:3])
    np.testing.assert_array_equal(t[[0, 2]].numpy(), a[[0, 2]])
    np.testing.assert_array_equal(t[fastnn.tensor([2, 0])].numpy(), a[[2, 0]])
    np.testing.assert_array_equal(t[t > 5].numpy(), a[a > 5])
    np.testing.assert_array_equal(t[None, ..., 0].numpy(), a[None, ..., 0])
    t[0] = 100
    t[t > 10] = -1
    assert t[0, 0].item() == -1 and t[2, 0].item() == 8
    assert [row.shape for row in t] == [(4,)] * 3


def test_arithmetic_broadcasts_like_numpy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    b = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    ta, tb = fastnn.tensor(a), fastnn.tensor(b)
    for got, want in [(ta + tb, a + b), (ta - tb, a - b), (ta * tb, a * b), (ta / tb, a / b), (ta ** 2, a ** 2),
                      (2 - ta, 2 - a), (1 / ta, 1 / a), (b + ta, b + a), (-ta, -a), (ta.exp(), np.exp(a)),
                      (ta.log(), np.log(a)), (ta @ fastnn.tensor(a.T), a @ a.T), (2 ** ta, 2 ** a),
                      (ta.add(tb, alpha=2), a + 2 * b), (ta.sub(1), a - 1), (ta.mul(tb), a * b), (ta.div(2), a / 2)]:
        assert got.dtype == np.float32
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


def test_comparisons_give_bool_tensors():
    t = fastnn.tensor([1.0, 2.0, 3.0])
    assert (t == 2).tolist() == [False, True, False]
    assert (t != 2).tolist() == [True, False, True]
    assert (t < 2).tolist() == [True, False, False] and (t <= 2).tolist() == [True, True, False]
    assert (t > 2).tolist() == [False, False, True] and (t >= 2).tolist() == [False, True, True]
    assert t.eq(fastnn.tensor([1.0, 0.0, 3.0])).sum().item() == 2
    assert (t == 2).dtype == fastnn.bool


def test_reductions():
    a = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], dtype=np.float32)
    t = fastnn.tensor(a)
    assert t.sum().item() == 18 and t.mean().item() == 3
    np.testing.assert_array_equal(t.sum(0).numpy(), a.sum(0))
    np.testing.assert_array_equal(t.sum(dim=1, keepdim=True).numpy(), a.sum(1, keepdims=True))
    np.testing.assert_allclose(t.mean((0, 1)).numpy(), a.mean())
    assert t.argmax().item() == 3 and t.argmax(dim=1).tolist() == [1, 0]
    assert t.argmax(1, keepdim=True).shape == (2, 1) and t.argmin(1).tolist() == [0, 1]
    assert t.max().item() == 7 and t.min().item() == 0
    values, indices = t.max(dim=1)
    assert values.tolist() == [5, 7] and indices.tolist() == [1, 0]
    values, indices = fastnn.max(t, 1)
    assert values.tolist() == [5, 7] and indices.dtype == np.int64
    assert t.max(0, keepdim=True).values.shape == (1, 3) and t.min(1).indices.tolist() == [0, 1]
    assert fastnn.sum(t).item() == 18 and fastnn.argmax(t, 1).tolist() == [1, 0]
    assert (t > 2).sum().item() == 3
    assert (t >= 0).all().item() and not (t > 0).all().item() and (t > 6).any().item()
    assert (t > 1).any(dim=0).tolist() == [True, True, True] and (t > 1).all(1, keepdim=True).shape == (2, 1)


def test_inplace_ops_write_the_same_storage():
    t = fastnn.ones(3)
    storage = t.numpy()
    t.mul_(3).add_(fastnn.ones(3), alpha=2).sub_(1).div_(2)
    assert t.numpy() is storage and t.tolist() == [2, 2, 2]
    t.copy_(np.arange(3)).clamp_(max=1)
    assert t.tolist() == [0, 1, 1]
    t.fill_(4)
    assert t.tolist() == [4, 4, 4]
    t.zero_()
    assert t.tolist() == [0, 0, 0]
    t += 1
    t *= 3
    t -= 1
    t /= 2
    assert t.numpy() is storage and t.tolist() == [1, 1, 1]


def test_data_clone_and_detach():
    p = fastnn.tensor([1.0, 2.0], requires_grad=True)
    p.data.mul_(2)  # .data is outside the graph: allowed, and writes p's storage
    assert p.detach().tolist() == [2, 4]
    c = p.clone()
    with fastnn.no_grad():
        p.add_(1)
    assert c.detach().tolist() == [2, 4] and c.requires_grad
    p.data = fastnn.zeros(2)
    assert p.detach().tolist() == [0, 0] and p.requires_grad


def test_tensors_are_hashable_and_copyable():
    a, b = fastnn.zeros(2), fastnn.zeros(2)
    assert len({a: 1, b: 2}) == 2
    p = fastnn.tensor([1.0, 2.0], requires_grad=True)
    q = copy.deepcopy(p)
    q.data.add_(1)
    assert q.requires_grad and p.detach().tolist() == [1, 2]
    r = pickle.loads(pickle.dumps(p))
    assert r.detach().tolist() == [1, 2] and r.requires_grad


def test_elementwise_functions():
    t = fastnn.tensor([-4.0, 1.0, 9.0])
    assert t.abs().tolist() == [4, 1, 9] and t.abs().sqrt().tolist() == [2, 1, 3]
    assert fastnn.clamp(t, min=0).tolist() == [0, 1, 9]
    assert fastnn.exp(fastnn.zeros(1)).item() == 1 and fastnn.log(fastnn.ones(1)).item() == 0
    assert fastnn.is_tensor(t) and not fastnn.is_tensor(t.numpy())
