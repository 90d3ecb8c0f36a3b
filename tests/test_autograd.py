"""The autograd tape: gradients of every glue op, broadcasting, accumulation, shared nodes,
no_grad, detach, retain_graph and the errors PyTorch raises."""
import numpy as np
import pytest

import fastnn
from gradcheck import check_grad

rng = np.random.default_rng(1)


def randn(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


@pytest.mark.parametrize("fn, shapes", [
    (lambda a, b: a + b, [(3, 4), (3, 4)]),
    (lambda a, b: a - b, [(3, 4), (4,)]),
    (lambda a, b: a * b, [(2, 3, 4), (3, 1)]),
    (lambda a, b: a / (b * b + 1), [(3, 4), (1, 4)]),
    (lambda a, b: b - a * 2.5 + 1 / (b * b + 1), [(3, 1), (1, 4)]),
    (lambda a: -a, [(5,)]),
    (lambda a: a.exp(), [(3, 4)]),
    (lambda a: (a * a + 1).log(), [(3, 4)]),
    (lambda a: (a * a + 1).sqrt(), [(3, 4)]),
    (lambda a: a.abs(), [(3, 4)]),
    (lambda a: a.clamp(-0.5, 0.5), [(3, 4)]),
    (lambda a: a ** 3, [(3, 4)]),
    (lambda a: 2.0 ** a, [(3, 4)]),
    (lambda a: a.sum(), [(3, 4)]),
    (lambda a: a.sum(dim=1), [(3, 4, 2)]),
    (lambda a: a.sum(dim=(0, 2), keepdim=True), [(3, 4, 2)]),
    (lambda a: a.mean(), [(3, 4)]),
    (lambda a: a.mean(-1, keepdim=True), [(3, 4)]),
    (lambda a: a.max(), [(3, 4)]),
    (lambda a: a.max(dim=1)[0], [(3, 4)]),
    (lambda a: a.max(dim=-1)[0] + a.min(dim=-2).values.sum(), [(2, 3, 4)]),
    (lambda a: a.min(dim=0, keepdim=True).values, [(3, 4)]),
    (lambda a: a.reshape(4, 3) * 1, [(3, 4)]),
    (lambda a: a.view(-1), [(3, 4)]),
    (lambda a: a.flatten(1), [(2, 3, 4)]),
    (lambda a: a.transpose(0, 2), [(2, 3, 4)]),
    (lambda a: a.permute(1, 2, 0), [(2, 3, 4)]),
    (lambda a: a.T, [(3, 4)]),
    (lambda a: a.unsqueeze(1).squeeze(), [(3, 4)]),
    (lambda a: a.expand(2, 3, 4), [(3, 1)]),
    (lambda a: a[1:, ::2], [(3, 4)]),
    (lambda a: a[..., 1], [(2, 3, 4)]),
    (lambda a: a[a > 0], [(3, 4)]),
    (lambda a: a.clone() * 2, [(3, 4)]),
    (lambda a, b: fastnn.cat([a, b], dim=1), [(3, 4), (3, 2)]),
    (lambda a, b: fastnn.stack([a, b], dim=1), [(3, 4), (3, 4)]),
    (lambda a, b: a @ b, [(3, 4), (4, 5)]),
    (lambda a, b: a @ b, [(2, 3, 4), (2, 4, 5)]),
    (lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    (lambda a, b: a @ b, [(4,), (4, 5)]),
    (lambda a, b: a @ b, [(3, 4), (4,)]),
    (lambda a, b: a @ b, [(4,), (4,)]),
    (lambda a, b: a @ b, [(2, 2, 3, 4), (4, 5)]),
    (lambda a, b: a @ b, [(3, 4), (2, 4, 5)]),
])
def test_glue_op_gradients_float64(fn, shapes):
    check_grad(fn, *[randn(*s) for s in shapes])


@pytest.mark.parametrize("shapes", [[(3, 4), (4, 5)], [(2, 3, 4), (2, 4, 5)], [(2, 3, 4), (4, 5)]])
def test_matmul_kernel_gradients_float32(shapes):
    check_grad(lambda a, b: a @ b, *[randn(*s, dtype=np.float32) for s in shapes])


def test_division_and_log_of_positive_inputs():
    check_grad(lambda a, b: (a / b).log() + a ** 0.5, positive(3, 4), positive(4))


def test_tensor_exponent_gets_a_gradient():
    check_grad(lambda a, b: a ** b, positive(3, 4), randn(3, 4))


def test_repeated_index_adds_every_occurrence():
    a = fastnn.tensor(np.arange(4.0), requires_grad=True)
    a[[0, 2, 0, 0]].sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [3, 0, 1, 0])
    check_grad(lambda a: a[np.array([[0, 1], [1, 1]])], randn(3, 2))


def test_broadcast_gradients_are_summed_to_each_input_shape():
    a = fastnn.tensor(np.ones((3, 1)), requires_grad=True)
    b = fastnn.tensor(np.ones(4), requires_grad=True)
    c = fastnn.tensor(np.ones((2, 3, 4)), requires_grad=True)
    (a * b + c).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,) and c.grad.shape == (2, 3, 4)
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 1), 8.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 6.0))


def test_gradients_accumulate_across_backward_calls():
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_a_node_used_twice_gets_both_contributions():
    x = fastnn.tensor([2.0, -1.0], requires_grad=True)
    y = x * x + 1  # one node feeding z twice, plus x reaching z by three paths
    z = (y * y + y * x).sum()
    z.backward()
    xv = np.array([2.0, -1.0])
    yv = xv * xv + 1
    np.testing.assert_allclose(x.grad.numpy(), 2 * yv * 2 * xv + 2 * xv * xv + yv, rtol=1e-6)


def test_leaf_gradients_do_not_share_memory():
    a = fastnn.tensor([1.0, 2.0], requires_grad=True)
    b = fastnn.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), [1, 1])
    c = fastnn.tensor([1.0, 2.0], requires_grad=True)
    c.sum().backward()  # the gradient is a read-only broadcast view inside the graph
    c.grad.add_(1)
    np.testing.assert_array_equal(c.grad.numpy(), [2, 2])


def test_large_kernel_gradient_is_adopted_and_accumulates_in_place():
    # A weight gradient of 1 MiB or more comes in one of the kernels' reused output buffers
    # (held by a capsule): the leaf takes that buffer itself, as a copy would own its memory.
    x = fastnn.tensor(randn(8, 512, dtype=np.float32))
    w = fastnn.tensor(randn(1024, 512, dtype=np.float32), requires_grad=True)
    fastnn.nn.functional.linear(x, w).sum().backward()
    expected = np.broadcast_to(x.numpy().sum(axis=0), w.shape)
    held = w.grad
    assert not held.numpy().flags.owndata and not isinstance(held.numpy().base, np.ndarray)
    np.testing.assert_allclose(held.numpy(), expected, rtol=1e-5)
    fastnn.nn.functional.linear(x, w).sum().backward()
    assert w.grad is held
    np.testing.assert_allclose(held.numpy(), 2 * expected, rtol=1e-5)


def test_deep_graph_needs_no_recursion():
    x = fastnn.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000], rtol=1e-4)


def test_backward_on_non_scalar_needs_a_gradient():
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(fastnn.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2, 20])
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        (x * 2).backward(fastnn.tensor([1.0]))


def test_backward_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        fastnn.tensor([1.0]).sum().backward()


def test_graph_is_freed_unless_retained():
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4, 8])
    assert y.grad_fn.saved is None
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_no_grad_records_nothing():
    x = fastnn.tensor([1.0], requires_grad=True)
    with fastnn.no_grad():
        y = x * 2
        assert not fastnn.is_grad_enabled()
        with fastnn.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert fastnn.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf


def test_set_grad_enabled_as_call_and_as_context():
    x = fastnn.tensor([1.0], requires_grad=True)
    with fastnn.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    fastnn.set_grad_enabled(False)
    try:
        assert not fastnn.is_grad_enabled()
    finally:
        fastnn.set_grad_enabled(True)
    assert (x * 2).requires_grad


def test_no_grad_as_decorator_with_and_without_parentheses():
    x = fastnn.tensor([1.0], requires_grad=True)

    @fastnn.no_grad()
    def double(t):
        return t * 2

    @fastnn.no_grad
    def triple(t):
        return t * 3

    @fastnn.no_grad()
    def nested(t, depth):
        return t if depth == 0 else nested(t, depth - 1)

    assert not double(x).requires_grad and not triple(x).requires_grad
    nested(x, 3)
    assert fastnn.is_grad_enabled()


def test_detach_shares_storage_and_stops_gradients():
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = x * d
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 4])
    data = x.data
    data[0] = 5.0  # .data writes go to x, outside the graph
    assert x[0].item() == 5.0


def test_requires_grad_propagates_and_leaves_are_marked():
    a = fastnn.tensor([1.0], requires_grad=True)
    b = fastnn.tensor([2.0])
    c = a * b
    assert c.requires_grad and not c.is_leaf and c.grad_fn is not None
    assert not (b * b).requires_grad
    assert a.is_leaf and b.is_leaf
    assert "grad_fn=<MulBackward>" in repr(c)


def test_integer_results_do_not_require_grad():
    a = fastnn.tensor([1.5, 2.5], requires_grad=True)
    assert not a.argmax().requires_grad
    assert not (a > 2).requires_grad
    assert not a.long().requires_grad
    assert a.max(0).values.requires_grad and not a.max(0).indices.requires_grad


def test_inplace_on_a_leaf_that_requires_grad_raises_outside_no_grad():
    p = fastnn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        p.add_(1)
    with fastnn.no_grad():
        p.add_(1)
        p -= 0.5
    np.testing.assert_array_equal(p.detach().numpy(), [1.5, 2.5])


def test_augmented_assignment_inside_the_graph_is_differentiable():
    x = fastnn.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y += x  # like a residual `out += identity`
    y *= x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * np.array([1.0, 2.0]))
    total = fastnn.zeros(2)
    total += y
    assert total.requires_grad


def test_gradient_dtype_follows_the_input():
    x = fastnn.randn(3, 4, requires_grad=True)
    ((x * 2.5).exp().mean() + x.sum() / 3).backward()
    assert x.grad.dtype == np.float32
