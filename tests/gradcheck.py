"""check_grad: autograd's gradients against central finite differences along a random direction.

    check_grad(lambda x, w: F.conv2d(x, w, padding=1), x, w)

Inputs are NumPy arrays; float ones become tensors that require grad, except those listed in
`constant` (and integer targets), which become plain tensors. float64 inputs are checked
tightly (glue ops); float32 ones, which the kernels require, with a step and tolerance sized
for float32 rounding.
"""
import numpy as np

import fastnn

rng = np.random.default_rng(0)


def _loss(fn, arrays, weights):
    with fastnn.no_grad():
        out = fn(*[fastnn.tensor(a) for a in arrays])
    return float(np.sum(np.asarray(out, dtype=np.float64) * weights))


def check_grad(fn, *arrays, eps=None, rtol=None, constant=()):
    """Checks d/dt sum(w * fn(..., x_i + t d, ...)) at t=0 against sum(grad_i * d) for every float x_i."""
    tensors = [fastnn.tensor(a, requires_grad=a.dtype.kind == "f" and i not in constant) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    weights = rng.standard_normal(out.shape)
    (out * fastnn.tensor(weights.astype(out.dtype))).sum().backward()
    for i, (a, t) in enumerate(zip(arrays, tensors)):
        if not t.requires_grad:
            continue
        single = a.dtype == np.float32
        step = eps if eps is not None else (1e-2 if single else 1e-6)
        tol = rtol if rtol is not None else (2e-2 if single else 1e-6)
        assert t.grad is not None, f"input {i}: no gradient reached it"
        assert t.grad.shape == a.shape and t.grad.dtype == a.dtype, \
            f"input {i}: gradient {t.grad.shape} {t.grad.dtype} for input {a.shape} {a.dtype}"
        direction = rng.standard_normal(a.shape)
        moved = [list(arrays), list(arrays)]
        moved[0][i] = (a + step * direction).astype(a.dtype)
        moved[1][i] = (a - step * direction).astype(a.dtype)
        numeric = (_loss(fn, moved[0], weights) - _loss(fn, moved[1], weights)) / (2 * step)
        analytic = float(np.sum(t.grad.numpy().astype(np.float64) * direction))
        bound = tol * max(1.0, abs(analytic), float(np.sqrt(np.sum(weights ** 2))) if single else 0.0)
        assert abs(numeric - analytic) <= bound, \
            f"input {i}: autograd {analytic} vs finite difference {numeric} (bound {bound:.3g})"
