"""Reverse-mode autograd: a tape of Function nodes, grad mode, and the backward pass.

Each op is a Function subclass: `forward(self, *arrays, **kwargs)` computes the result on raw
arrays and keeps what the backward needs in `self.saved`; `backward(self, grad)` returns one
gradient per input (None where none is needed). A node is recorded only when grad mode is on
and some input requires grad, so inference pays for nothing but the forward.
"""
import contextlib
import datetime

_grad_enabled = True

# The kernels' outputs of 1 MiB and more hold their buffer through a capsule, whose destructor
# hands it back for reuse (csrc/bindings/output_cache.cpp); the stdlib's C-API capsules give its type.
_CAPSULE = type(datetime.datetime_CAPI)


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode on entering a `with` block or a decorated function, restores it on exit."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)

    def __enter__(self):
        global _grad_enabled
        self.previous, _grad_enabled = _grad_enabled, self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.previous

    def _recreate_cm(self):
        # A fresh manager per decorated call, so recursive calls each restore their own state.
        return _GradMode(self.mode)


class no_grad(_GradMode):
    """`with fastnn.no_grad():` or `@fastnn.no_grad()`: ops record no graph (evaluation,
    optimizer steps). `@fastnn.no_grad` without parentheses works too, as in PyTorch."""

    def __new__(cls, func=None):
        if callable(func):
            return cls()(func)
        return super().__new__(cls)

    def __init__(self, func=None):
        super().__init__(False)


class enable_grad(_GradMode):
    def __init__(self):
        super().__init__(True)


class set_grad_enabled(_GradMode):
    """Like torch's, it sets the mode when called, so `fastnn.set_grad_enabled(False)` alone
    switches recording off; as a `with` block it restores the previous mode at the end."""

    def __init__(self, mode: bool):
        global _grad_enabled
        super().__init__(mode)
        self.previous, _grad_enabled = _grad_enabled, self.mode

    def __enter__(self):
        pass


class Function:
    """One node of the tape. `parents` are the op's inputs (Tensors, or plain values that need
    no gradient); `needs_input_grad[i]` says whether backward must produce gradient i."""

    saved = None

    @classmethod
    def apply(cls, *inputs, **kwargs):
        Tensor = _tensor.Tensor
        node = cls()
        node.needs_input_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
        record = _grad_enabled and any(node.needs_input_grad)
        if not record:
            node.needs_input_grad = (False,) * len(inputs)
        try:
            out = node.forward(*[x._data if isinstance(x, Tensor) else x for x in inputs], **kwargs)
        except (TypeError, ValueError):
            # NumPy, CuPy and the kernels each reject a mix of host and GPU arrays in their own
            # words; this names the devices (a try costs nothing until it catches).
            _tensor._check_one_device(node.name, inputs)
            raise
        if not record:
            return Tensor._make(out)
        node.parents = inputs
        return Tensor._make(out, node)

    @property
    def name(self):
        """What grad_fn shows, e.g. <MulBackward>."""
        return type(self).__name__

    def forward(self, *arrays, **kwargs):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def release(self):
        """Drops what the backward needed; a later backward through this node raises."""
        self.saved = None
        self.parents = None


def _sum_to_shape(grad, shape):
    """Sums a broadcast gradient back to the shape of the input it came from."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _topological_order(root):
    """Nodes reachable from `root`, each after all of its parents' nodes (iterative DFS, so
    deep graphs do not hit the recursion limit)."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in visited:
            continue
        if node.parents is None:
            raise RuntimeError("Trying to backward through the graph a second time (or directly access saved "
                               "tensors after they have already been freed). Specify retain_graph=True if you "
                               "need to backward through the graph a second time.")
        visited.add(node)
        stack.append((node, True))
        for parent in node.parents:
            node_of_parent = getattr(parent, "_node", None)
            if node_of_parent is not None and node_of_parent not in visited:
                stack.append((node_of_parent, False))
    return order


def _accumulate_into_leaf(leaf, grad, handed_out):
    """leaf.grad += grad. The first gradient is adopted without a copy only when it owns its
    memory (no base, or a kernel's capsule: no array but this one sees it) and no other leaf
    holds it, since optimizers and zero_grad write grads in place."""
    if leaf.grad is not None:
        leaf.grad._data += grad
        return
    owner = getattr(grad, "base", 1)
    # CuPy's flags have no `writeable`: its arrays always are.
    owned = (owner is None or type(owner) is _CAPSULE) and getattr(grad.flags, "writeable", True) and \
        id(grad) not in handed_out
    if not owned:
        grad = grad.copy()
    handed_out.add(id(grad))
    leaf.grad = _tensor.Tensor._make(grad)


def backward(root, gradient=None, retain_graph=False):
    """Fills `.grad` of every leaf that requires grad and that `root` depends on."""
    if not root.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if gradient is None:
        if root._data.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        grad = root._xp.ones_like(root._data)
    else:
        gradient = gradient._data if isinstance(gradient, _tensor.Tensor) else gradient
        _tensor._check_one_device("backward", (root, gradient))
        grad = root._xp.array(gradient, dtype=root._data.dtype)
        if grad.shape != root.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of {grad.shape} and output[0] "
                               f"has a shape of {root.shape}.")
    handed_out = set()
    if root._node is None:
        _accumulate_into_leaf(root, grad, handed_out)
        return
    grads = {root._node: grad}
    for node in reversed(_topological_order(root._node)):
        grad = grads.pop(node, None)
        if grad is None:
            continue
        input_grads = node.backward(grad)
        for parent, parent_grad, needed in zip(node.parents, input_grads, node.needs_input_grad):
            if not needed or parent_grad is None:
                continue
            parent_grad = _sum_to_shape(parent_grad, parent._data.shape)
            if parent._node is None:
                _accumulate_into_leaf(parent, parent_grad, handed_out)
            elif parent._node in grads:
                grads[parent._node] = grads[parent._node] + parent_grad
            else:
                grads[parent._node] = parent_grad
        if not retain_graph:
            node.release()


# Imported last: tensor.py subclasses Function at import time, so Function must exist before it
# loads, whichever of the two modules is imported first.
from . import tensor as _tensor  # noqa: E402
