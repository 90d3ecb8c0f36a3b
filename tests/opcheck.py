"""The one helper every op test uses: compare a fastnn op and its backward with the NumPy
reference, check the backward by central finite differences, and check input handling.

    check_op("conv2d", [x, w, b], dict(stride=2), reduction=C*KH*KW)

`arrays` are the op's array arguments in order (float32; integer targets; None for an absent
bias). Tolerances scale with `reduction`, the length of the longest sum behind one output.
device="cuda" runs the same checks on CuPy copies of the arrays (the `device` fixture of
conftest.py gives both devices), each result required to come back as a CuPy array.
"""
import numpy as np

import fastnn
import reference

rng = np.random.default_rng(0)


def randn(*shape, low=None):
    """Standard-normal float32 array; with `low`, values kept at least `low` away from 0 (for
    ops with a kink at 0, so finite differences do not straddle it)."""
    a = rng.standard_normal(shape).astype(np.float32)
    if low is not None:
        a = np.where(a >= 0, a + low, a - low).astype(np.float32)
    return a


def tolerance(reduction):
    return 1e-5 * np.sqrt(max(1, reduction))


def assert_close(name, actual, expected, tol):
    assert actual is not None, f"{name}: got None, expected an array of shape {np.shape(expected)}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != expected {expected.shape}"
    assert actual.dtype == np.float32, f"{name}: dtype {actual.dtype} != float32"
    finite = np.isfinite(expected)
    scale = max(1.0, float(np.max(np.abs(expected[finite]), initial=0.0)))
    # Equal values match, infinities and NaN (where the reference has NaN) included.
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    with np.errstate(invalid="ignore"):  # inf - inf, where `same` already decided
        err = np.where(same, 0.0, np.abs(actual.astype(np.float64) - expected))
    if err.size and not np.all(err <= tol * scale):
        worst = np.unravel_index(np.argmax(err), err.shape)
        raise AssertionError(f"{name}: max error {err.max():.3g} at {worst} (actual {actual[worst]}, expected "
                             f"{expected[worst]}) exceeds {tol * scale:.3g}; {np.sum(err > tol * scale)} of "
                             f"{err.size} elements off")


def on_device(fn, device):
    """fn taking and returning NumPy arrays, running on `device`: on "cuda" the arrays go in as CuPy
    copies and every array result must come back as a CuPy array, returned as NumPy."""
    if device == "cpu":
        return fn
    import cupy

    def to_host(result):
        if isinstance(result, tuple):
            return tuple(to_host(item) for item in result)
        if result is None:
            return None
        assert isinstance(result, cupy.ndarray), f"an op on CuPy arrays returned {type(result).__name__}"
        return cupy.asnumpy(result)

    def call(*args, **kwargs):
        # np.generic too: arithmetic on a 0-d array gives a NumPy scalar.
        args = [cupy.asarray(a) if isinstance(a, (np.ndarray, np.generic)) else a for a in args]
        kwargs = {k: cupy.asarray(v) if isinstance(v, (np.ndarray, np.generic)) else v for k, v in kwargs.items()}
        return to_host(fn(*args, **kwargs))
    return call


def _is_float(a):
    return a is not None and np.asarray(a).dtype == np.float32


def _directional_fd(fn, arrays, kwargs, index, direction, weights, eps):
    """d/dt sum(weights * fn(arrays with arrays[index] + t*direction)) at t=0, central difference."""
    def loss(t):
        moved = list(arrays)
        moved[index] = (arrays[index] + t * direction).astype(arrays[index].dtype)
        return float(np.sum(weights * np.asarray(fn(*moved, **kwargs), dtype=np.float64)))
    return (loss(eps) - loss(-eps)) / (2 * eps)


def compare_with_reference(name, arrays, kwargs, tol, make_grad_output, saved=None, device="cpu"):
    """fastnn.ops.<name> and its backward on `device` against the float64 reference at `arrays`,
    the backward fed make_grad_output(output shape). A gradient the reference gives as None
    (targets, class weights, an absent bias) must be None. Returns (grad_output, grads,
    expected_grads)."""
    op = on_device(getattr(fastnn.ops, name), device)
    op_backward = on_device(getattr(fastnn.ops, name + "_backward"), device)
    ref, ref_backward = getattr(reference, name), getattr(reference, name + "_backward")
    arrays64 = [reference.f64(a) if _is_float(a) else a for a in arrays]

    out = op(*arrays, **kwargs)
    expected = np.asarray(ref(*arrays64, **kwargs), dtype=np.float64)
    assert_close(f"{name} forward", out, expected, tol)

    grad_out = make_grad_output(out.shape)
    extra = {} if saved is None else {"saved": saved}
    grads = op_backward(grad_out, *arrays, **kwargs, **extra)
    expected_grads = ref_backward(reference.f64(grad_out), *arrays64, **kwargs)
    assert isinstance(grads, tuple) and len(grads) == len(arrays), \
        f"{name}_backward must return a tuple of {len(arrays)} gradients, got {type(grads).__name__} " \
        f"of {len(grads) if isinstance(grads, tuple) else '?'}"
    for i, (g, eg) in enumerate(zip(grads, expected_grads)):
        if eg is None:
            assert g is None, f"{name}_backward: gradient {i} must be None (no gradient flows to that argument)"
            continue
        assert_close(f"{name}_backward grad {i}", g, np.asarray(eg, dtype=np.float64), tol)
    return grad_out, grads, expected_grads


def check_op(name, arrays, kwargs=None, *, reduction=1, tol=None, fd_eps=1e-2, fd_rtol=2e-2,
             kernel_fd=True, saved=None, device="cpu"):
    """Forward and backward on `device` against the reference; the backward against finite
    differences.

    kernel_fd: also finite-difference the float32 kernel itself (off for ops whose float32
    rounding swamps a difference, e.g. huge reductions). `saved` is passed to the backward.
    """
    kwargs = dict(kwargs or {})
    tol = tolerance(reduction) if tol is None else tol
    op, ref = on_device(getattr(fastnn.ops, name), device), getattr(reference, name)
    arrays64 = [reference.f64(a) if _is_float(a) else a for a in arrays]
    grad_out, grads, expected_grads = compare_with_reference(
        name, arrays, kwargs, tol, lambda shape: rng.standard_normal(shape).astype(np.float32), saved, device)

    for i, a in enumerate(arrays):
        if expected_grads[i] is None or a.size == 0:
            continue
        direction = rng.standard_normal(a.shape)
        analytic = float(np.sum(np.asarray(expected_grads[i]) * direction))
        numeric = _directional_fd(ref, arrays64, kwargs, i, direction, grad_out.astype(np.float64), 1e-6)
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), \
            f"reference.{name}_backward grad {i}: analytic {analytic} vs finite difference {numeric}"
        if kernel_fd:
            analytic32 = float(np.sum(grads[i].astype(np.float64) * direction))
            numeric32 = _directional_fd(op, arrays, kwargs, i, direction.astype(np.float32), grad_out, fd_eps)
            bound = fd_rtol * max(1.0, abs(analytic32), float(np.sqrt(np.sum(grad_out.astype(np.float64) ** 2))))
            assert abs(numeric32 - analytic32) <= bound, \
                f"{name}_backward grad {i}: analytic {analytic32} vs float32 finite difference {numeric32}"


def _layout_variants(a):
    """The same values in layouts a kernel must accept: Fortran order, a strided view, an
    unaligned buffer, a read-only array, and a broadcast (zero-stride) view."""
    fortran = np.asfortranarray(a)
    bigger = np.zeros(a.shape + (2,), dtype=a.dtype)
    bigger[..., 0] = a
    strided = bigger[..., 0]
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
    unaligned = raw[1:].view(a.dtype).reshape(a.shape)
    unaligned[...] = a
    readonly = a.copy()
    readonly.flags.writeable = False
    variants = [("fortran", fortran), ("strided", strided), ("unaligned", unaligned), ("readonly", readonly)]
    if a.ndim and a.shape[0] > 0 and np.all(a == a[:1]):
        variants.append(("broadcast", np.broadcast_to(a[:1], a.shape)))
    return variants


def check_inputs(name, arrays, kwargs=None, batch_axes=None):
    """Every float input in every layout gives the contiguous answer; float64 raises TypeError
    saying float32; a zero-size batch gives an empty result (batch_axes: per array, the axis
    to empty, or None to keep that array as is)."""
    kwargs = dict(kwargs or {})
    op = getattr(fastnn.ops, name)
    expected = op(*arrays, **kwargs)
    for i, a in enumerate(arrays):
        if not _is_float(a):
            continue
        for label, variant in _layout_variants(a):
            moved = list(arrays)
            moved[i] = variant
            np.testing.assert_array_equal(op(*moved, **kwargs), expected, err_msg=f"{name}: {label} argument {i}")
        as64 = list(arrays)
        as64[i] = a.astype(np.float64)
        try:
            op(*as64, **kwargs)
        except TypeError as e:
            assert "float32" in str(e), f"{name}: float64 TypeError should say float32 is required: {e}"
        else:
            raise AssertionError(f"{name}: float64 argument {i} did not raise TypeError")
    if batch_axes is not None:
        empty = [a if axis is None else np.take(a, [], axis=axis) for a, axis in zip(arrays, batch_axes)]
        out = op(*empty, **kwargs)
        out = out[0] if isinstance(out, tuple) else out
        assert out.size == 0, f"{name}: zero-size batch gave {out.shape}"
