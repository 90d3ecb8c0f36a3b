import re

import numpy as np
import pytest

import fastnn
import reference
from cuda_fakes import FakeCudaArray, expected_runtime_error
from fastnn import _C
from opcheck import assert_close, check_inputs, check_op, on_device, randn, rng, tolerance

pytestmark = pytest.mark.usefixtures("isa")
cuda_build = pytest.mark.skipif(not fastnn.build_info()["cuda"], reason="built without CUDA")

SOFTMAXES = ["softmax", "log_softmax"]
LOSSES = ["nll_loss", "cross_entropy"]
REDUCTIONS = ["mean", "sum", "none"]
# Size 1, odd sizes and sizes off every vector width; 1000 classes as in ImageNet.
ROWS = [1, 5, 64]
CLASSES = [1, 2, 10, 17, 1000]


def targets(shape, C):
    return rng.integers(0, C, size=shape)


def op_on(name, device):
    """fastnn.ops.<name> on `device`, taking and returning NumPy arrays (opcheck.on_device)."""
    return on_device(getattr(fastnn.ops, name), device)


def check_with_weight(name, x, target, weight, device="cpu", **kwargs):
    """check_op for a loss with class weights. The weight is a constant (its gradient is None),
    which check_op, wanting a gradient for every float array, cannot express; so the forward,
    the input gradient and the reference gradient's finite difference are checked here."""
    op, op_backward = op_on(name, device), op_on(name + "_backward", device)
    ref, ref_backward = getattr(reference, name), getattr(reference, name + "_backward")
    tol = tolerance(max(x.shape))
    out = op(x, target, weight, **kwargs)
    assert_close(name, out, np.asarray(ref(x, target, weight, **kwargs)), tol)
    grad_out = randn(*out.shape)
    grad_x, grad_target, grad_weight = op_backward(grad_out, x, target, weight, **kwargs)
    assert grad_target is None and grad_weight is None
    expected = ref_backward(grad_out, x, target, weight, **kwargs)[0]
    assert_close(name + "_backward", grad_x, expected, tol)
    direction, eps = rng.standard_normal(x.shape), 1e-6

    def loss(t):
        return np.sum(grad_out * ref(x + t * direction, target, weight, **kwargs))

    assert np.isclose((loss(eps) - loss(-eps)) / (2 * eps), np.sum(expected * direction), rtol=1e-6, atol=1e-6)


# ---- softmax, log_softmax ----

@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("N", ROWS)
@pytest.mark.parametrize("C", CLASSES)
def test_softmax_rows(name, N, C, device):
    check_op(name, [randn(N, C)], reduction=C, device=device)


# Past 1024 a row takes a CUDA block instead of a warp.
@pytest.mark.parametrize("name", SOFTMAXES + LOSSES)
@pytest.mark.parametrize("C", [1025, 3001])
def test_long_rows(name, C, device):
    arrays = [randn(3, C)] if name in SOFTMAXES else [randn(3, C), targets((3,), C), None]
    check_op(name, arrays, reduction=C, device=device)


@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("shape,dim", [((3, 5, 7), 0), ((3, 5, 7), 1), ((3, 5, 7), 2), ((3, 5, 7), -1),
                                       ((3, 5, 7), -2), ((3, 5, 7), -3), ((9,), 0), ((2, 3, 4, 5), 1)])
def test_softmax_any_dim(name, shape, dim, device):
    check_op(name, [randn(*shape)], dict(dim=dim), reduction=shape[dim], device=device)


@pytest.mark.parametrize("name", SOFTMAXES)
def test_backward_uses_saved_output(name, device):
    x = randn(6, 4, 3)
    check_op(name, [x], dict(dim=1), reduction=4, saved=getattr(fastnn.ops, name)(x, dim=1), device=device)
    # Proof that `saved` is what the backward reads: a zero softmax has a zero gradient.
    saved = np.zeros_like(x) if name == "softmax" else np.full_like(x, -np.inf)
    (grad,) = op_on(name + "_backward", device)(np.zeros_like(x), x, dim=1, saved=saved)
    np.testing.assert_array_equal(grad, np.zeros_like(x))


def test_softmax_of_a_scalar_is_one(device):
    # NumPy scalars on the host; 0-d arrays, which become CuPy ones, on the GPU.
    scalar = np.float32 if device == "cpu" else lambda v: np.array(v, dtype=np.float32)
    x = scalar(2.5)
    assert op_on("softmax", device)(x).shape == () and op_on("softmax", device)(x) == 1.0
    assert op_on("log_softmax", device)(x, dim=0) == 0.0
    assert op_on("softmax_backward", device)(scalar(3.0), x)[0] == 0.0
    assert op_on("log_softmax_backward", device)(scalar(3.0), x)[0] == 0.0


@pytest.mark.parametrize("name", SOFTMAXES + LOSSES)
def test_large_logits_stay_finite(name, device):
    x = randn(5, 17) * np.float32(1e4)
    arrays = [x] if name in SOFTMAXES else [x, targets((5,), 17)]
    out = op_on(name, device)(*arrays)
    (grad, *_) = op_on(name + "_backward", device)(np.ones_like(out), *arrays)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(grad))
    assert_close(name, out, np.asarray(getattr(reference, name)(*arrays)), 1e-6)


def test_minus_inf_entries(device):
    x = randn(4, 9)
    x[:, ::3] = -np.inf
    check_op("softmax", [x[:3]], reduction=9, device=device)
    x[3] = -np.inf  # a row of only -inf: NaN, like torch
    g = randn(4, 9)
    with np.errstate(invalid="ignore"):
        for name in SOFTMAXES:
            out = op_on(name, device)(x)
            (grad,) = op_on(name + "_backward", device)(g, x)
            np.testing.assert_allclose(out, getattr(reference, name)(x), rtol=1e-5, atol=1e-6, err_msg=name)
            np.testing.assert_allclose(grad, getattr(reference, name + "_backward")(g, x)[0], rtol=1e-5, atol=1e-6)
            assert np.all(np.isnan(out[3])) and not np.any(np.isnan(out[:3]))



@pytest.mark.parametrize("at", [0, 20, 36])  # in the first vector, a later one, the scalar tail
def test_nan_fills_its_row(at, device):
    x = randn(3, 37)
    x[1, at] = np.nan
    for name in SOFTMAXES:
        out = op_on(name, device)(x)
        assert np.all(np.isnan(out[1])) and not np.any(np.isnan(out[::2])), name

# ---- nll_loss, cross_entropy ----

@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("N", ROWS)
@pytest.mark.parametrize("C", CLASSES)
def test_loss_rows(name, reduction, N, C, device):
    check_op(name, [randn(N, C), targets((N,), C), None], dict(reduction=reduction), reduction=max(N, C),
             device=device)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_spatial_and_single_sample(name, reduction, device):
    check_op(name, [randn(3, 4, 2, 5), targets((3, 2, 5), 4), None], dict(reduction=reduction), reduction=30,
             device=device)
    check_op(name, [randn(6), np.array(4), None], dict(reduction=reduction), reduction=6, device=device)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ignore_index(name, reduction, device):
    t = targets((9,), 6)
    t[[1, 4]] = -100
    check_op(name, [randn(9, 6), t, None], dict(reduction=reduction), reduction=9, device=device)
    # ignore_index may be a real class: those targets count for nothing.
    t = np.array([2, 0, 2, 5, 1])
    check_op(name, [randn(5, 6), t, None], dict(ignore_index=2, reduction=reduction), reduction=6, device=device)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_weight(name, reduction, device):
    t = targets((11,), 7)
    t[3] = -100
    check_with_weight(name, randn(11, 7), t, rng.random(7).astype(np.float32), device, reduction=reduction)
    check_with_weight(name, randn(2, 3, 4), targets((2, 4), 3), randn(3), device, reduction=reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.1, 1.0])
def test_cross_entropy_label_smoothing(reduction, smoothing, device):
    t = targets((7,), 5)
    t[2] = -100
    kwargs = dict(reduction=reduction, label_smoothing=smoothing)
    check_op("cross_entropy", [randn(7, 5), t, None], kwargs, reduction=7, device=device)
    check_op("cross_entropy", [randn(2, 5, 3), targets((2, 3), 5), None], kwargs, reduction=6, device=device)
    check_with_weight("cross_entropy", randn(7, 5), t, rng.random(5).astype(np.float32), device, **kwargs)


@pytest.mark.parametrize("name", LOSSES)
def test_mean_over_no_targets_is_nan(name, device):
    op, op_backward = op_on(name, device), op_on(name + "_backward", device)
    x, t = randn(3, 4), np.full(3, -100)
    assert np.isnan(op(x, t))
    np.testing.assert_array_equal(op_backward(np.array(1.0, dtype=np.float32), x, t)[0], np.zeros_like(x))
    assert np.isnan(op(randn(0, 4), np.zeros(0, dtype=np.int64)))
    assert op(x, t, reduction="sum") == 0.0


@pytest.mark.parametrize("name", LOSSES)
def test_targets_of_any_integer_dtype_and_layout(name, device):
    op = op_on(name, device)
    x, t = randn(6, 5), targets((6,), 5)
    expected = op(x, t, reduction="none")
    for variant in [t.astype(np.int32), t.astype(np.uint8), t.astype(np.int16), np.repeat(t, 2)[::2]]:
        np.testing.assert_array_equal(op(x, variant, reduction="none"), expected, err_msg=str(variant.dtype))
    np.testing.assert_array_equal(op(x, np.broadcast_to(t[:1], 6), reduction="none"),
                                  op(x, np.full(6, t[0]), reduction="none"))
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        op(x, t.astype(np.float32))


# ---- input handling and errors ----

def test_input_layouts():
    for name in SOFTMAXES:
        check_inputs(name, [randn(4, 6)], batch_axes=[0])
        check_inputs(name, [randn(4, 6, 3)], dict(dim=1), batch_axes=[0])
    x, t = randn(4, 6), targets((4,), 6)
    for name in LOSSES:
        check_inputs(name, [x, t, randn(6)], dict(reduction="none"), batch_axes=[0, 0, None])
        check_inputs(name, [randn(2, 6, 3), targets((2, 3), 6), None], dict(reduction="none"),
                     batch_axes=[0, 0, None])


class OpsOn:
    """fastnn.ops on `device` by attribute, as op_on."""

    def __init__(self, device):
        self.device = device

    def __getattr__(self, name):
        return op_on(name, self.device)


def test_loss_errors_name_the_argument(device):
    ops = OpsOn(device)
    x = randn(4, 10)
    with pytest.raises(ValueError, match=r"cross_entropy: target\[3\] = 10 is out of range for 10 classes"):
        ops.cross_entropy(x, np.array([1, 2, 3, 10]))
    with pytest.raises(ValueError, match=r"nll_loss: target\[0\] = -1 is out of range for 10 classes"):
        ops.nll_loss(x, np.array([-1, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"target\[1, 2\] = 7 is out of range for 4 classes"):
        ops.cross_entropy(randn(2, 4, 3), np.array([[0, 1, 2], [3, 0, 7]]))
    with pytest.raises(ValueError, match=r"target must have shape \(4,\) for input of shape \(4, 10\).*got \(5,\)"):
        ops.nll_loss(x, np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match=r"target must have shape \(2, 3\) for input of shape \(2, 4, 3\)"):
        ops.cross_entropy(randn(2, 4, 3), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"weight must have shape \(10,\) \(one per class\), got \(9,\)"):
        ops.cross_entropy(x, np.zeros(4, dtype=np.int64), weight=randn(9))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        ops.nll_loss(x, np.zeros(4, dtype=np.int64), reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        ops.cross_entropy(x, np.zeros(4, dtype=np.int64), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"input has no classes \(C = 0\)"):
        ops.cross_entropy(randn(3, 0), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, ...\) or \(C,\), got shape \(\)"):
        ops.nll_loss(np.array(1.0, dtype=np.float32), np.array(0))
    t = np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match=r"grad_output must have shape \(\) \(the loss's shape for reduction='mean'\)"):
        ops.cross_entropy_backward(randn(4), x, t)
    with pytest.raises(ValueError, match=r"grad_output must have shape \(4,\) .*reduction='none'\), got \(\)"):
        ops.nll_loss_backward(np.array(1.0, dtype=np.float32), x, t, reduction="none")
    # The first bad target is reported, by flat index, among valid and ignored ones.
    t = targets((3, 5000), 10)
    t[0, :7] = -100
    t[1, 4321], t[2, 17] = 11, -3
    with pytest.raises(ValueError, match=r"nll_loss: target\[1, 4321\] = 11 is out of range for 10 classes"):
        ops.nll_loss(randn(3, 10, 5000), t)
    with pytest.raises(ValueError, match=r"cross_entropy_backward: target\[1, 4321\] = 11 is out of range"):
        ops.cross_entropy_backward(np.array(1.0, dtype=np.float32), randn(3, 10, 5000), t)


def test_softmax_errors_name_the_argument(device):
    ops = OpsOn(device)
    x = randn(4, 10)
    with pytest.raises(ValueError, match=r"softmax: dim 2 is out of range for input of shape \(4, 10\) "
                                         r"\(expected -2 <= dim < 2\)"):
        ops.softmax(x, dim=2)
    with pytest.raises(ValueError, match=r"log_softmax: dim -3 is out of range"):
        ops.log_softmax(x, dim=-3)
    with pytest.raises(ValueError, match=r"softmax_backward: grad_output must have the input's shape \(4, 10\)"):
        ops.softmax_backward(randn(10, 4), x)
    with pytest.raises(ValueError, match=r"log_softmax_backward: saved must have the input's shape"):
        ops.log_softmax_backward(randn(4, 10), x, saved=randn(4, 9))
    with pytest.raises(TypeError, match="float32"):
        ops.softmax_backward(randn(4, 10), x, saved=np.zeros((4, 10)))


def test_compiled_module_validates_on_its_own():
    # fastnn._C is safe to call directly: bad layouts and targets raise, never crash.
    with pytest.raises(ValueError, match="C-contiguous"):
        fastnn._C.softmax(randn(4, 6)[:, ::2], -1)
    with pytest.raises(ValueError, match=r"target\[1\] = 5 is out of range for 3 classes"):
        fastnn._C.cross_entropy(randn(2, 3), np.array([0, 5]))
    with pytest.raises(TypeError, match="target must be int64"):
        fastnn._C.nll_loss(randn(2, 3), np.array([0, 1], dtype=np.int32))


# ---- the CUDA kernels past one grid, on a GPU ----

def test_cuda_rows_past_one_grid(require_gpu):
    """More rows than one launch's 65535 blocks take, for each way a row is split (a thread per
    row, 256 rows a block; a warp, 8 a block; a block): the grid-stride loops take more steps.
    The GPU results are compared with the CPU kernels'."""
    for shape, dim in [((1, 3, 65535 * 256 + 5), 1), ((65535 * 8 + 3, 5), -1), ((65537, 1025), -1)]:
        x = randn(*shape)
        for name in SOFTMAXES:
            assert_close(name, op_on(name, "cuda")(x, dim=dim), getattr(fastnn.ops, name)(x, dim=dim), 1e-5)
    x, t = randn(65535 * 8 + 3, 5), targets((65535 * 8 + 3,), 5)
    for name in LOSSES:
        expected = getattr(fastnn.ops, name)(x, t, reduction="none")
        assert_close(name, op_on(name, "cuda")(x, t, reduction="none"), expected, 1e-5)


# ---- the CUDA binding's checks, on fake CUDA arrays (no GPU needed) ----

def host_array(shape, dtype=np.float32):
    return np.zeros(shape, dtype)


def passing_fake(shape, dtype=np.float32):
    """A fake CUDA array that passes the argument checks with no driver: its null data pointer
    is not queried (zero-size arrays have one), so a later argument's error shows."""
    return FakeCudaArray(shape, np.dtype(dtype).str, address=0)


# Each case makes an op's arguments from an array factory: host arrays for _C, fakes for _C.cuda.
ARGUMENT_ERRORS = [
    ("softmax", lambda a: (a((4, 10)), 2)),
    ("log_softmax", lambda a: (a((4, 10)), -3)),
    ("softmax", lambda a: (a((4, 10), np.float64),)),
    ("softmax_backward", lambda a: (a((10, 4)), a((4, 10)))),
    ("log_softmax_backward", lambda a: (a((4, 10)), a((4, 10)), -1, a((4, 9)))),
    ("softmax_backward", lambda a: (a((4, 10)), a((4, 10)), -1, a((4, 10), np.float64))),
    ("nll_loss", lambda a: (a((4, 10)), a((5,), np.int64))),
    ("nll_loss", lambda a: (a((2, 3)), a((2,), np.int32))),
    ("cross_entropy", lambda a: (a((2, 4, 3)), a((2,), np.int64))),
    ("cross_entropy", lambda a: (a((4, 10)), a((4,), np.int64), a((9,)))),
    ("cross_entropy", lambda a: (a((4, 10)), a((4,), np.int64), a((10,), np.float64))),
    ("nll_loss", lambda a: (a((4, 10)), a((4,), np.int64), None, -100, "avg")),
    ("cross_entropy", lambda a: (a((4, 10)), a((4,), np.int64), None, -100, "mean", 1.5)),
    ("cross_entropy", lambda a: (a((3, 0)), a((3,), np.int64))),
    ("nll_loss", lambda a: (a(()), a((), np.int64))),
    ("cross_entropy_backward", lambda a: (a((4,)), a((4, 10)), a((4,), np.int64))),
    ("nll_loss_backward", lambda a: (a(()), a((4, 10)), a((4,), np.int64), None, -100, "none")),
    ("nll_loss_backward", lambda a: (a((4,), np.float64), a((4, 10)), a((4,), np.int64), None, -100, "none")),
]


@cuda_build
@pytest.mark.parametrize("name,arguments", ARGUMENT_ERRORS)
def test_cuda_binding_raises_the_cpu_bindings_errors(name, arguments):
    with pytest.raises((TypeError, ValueError)) as host:
        getattr(_C, name)(*arguments(host_array))
    with pytest.raises(type(host.value), match=re.escape(str(host.value))):
        getattr(_C.cuda, name)(*arguments(passing_fake))


@cuda_build
@pytest.mark.parametrize("name,arguments,argument", [
    ("softmax", lambda f, s: (f((4, 10), s),), "input"),
    ("log_softmax_backward", lambda f, s: (f((4, 10)), f((4, 10), s)), "input"),
    ("softmax_backward", lambda f, s: (f((4, 10), s), f((4, 10))), "grad_output"),
    ("nll_loss", lambda f, s: (f((4, 10), s), f((4,), None, "<i8")), "input"),
    ("cross_entropy", lambda f, s: (f((4, 10)), f((4, 2), (32, 8), "<i8")), "target"),
])
def test_cuda_binding_rejects_strided_arrays(name, arguments, argument):
    def fake(shape, strides=None, typestr="<f4"):
        return FakeCudaArray(shape, typestr, strides, address=0)

    with pytest.raises(ValueError, match=f"{name}: {argument} must be C-contiguous"):
        getattr(_C.cuda, name)(*arguments(fake, (80, 8)))


@cuda_build
def test_cuda_binding_rejects_host_arrays():
    with pytest.raises(TypeError, match=r"cross_entropy: target must be a CUDA array .*got numpy.ndarray"):
        _C.cuda.cross_entropy(passing_fake((4, 10)), np.zeros(4, np.int64))


@cuda_build
@pytest.mark.parametrize("name,arguments", [
    ("softmax", lambda f: (f((4, 10)),)),
    ("log_softmax", lambda f: (f((2, 3, 4)), 1)),
    ("softmax_backward", lambda f: (f((4, 10)), f((4, 10)))),
    ("log_softmax_backward", lambda f: (f(()), f(()), 0)),
    ("nll_loss", lambda f: (f((4, 10)), f((4,), "<i8"))),
    ("nll_loss_backward", lambda f: (f(()), f((4, 10)), f((4,), "<i8"))),
    ("cross_entropy", lambda f: (f((2, 4, 3)), f((2, 3), "<i8"), f((4,)), -100, "none", 0.1)),
    ("cross_entropy_backward", lambda f: (f((6,)), f((2, 6, 3)), f((2, 3), "<i8"), None, 1, "sum", 0.5)),
])
def test_cuda_binding_passes_valid_arrays_to_the_runtime(name, arguments):
    error, message = expected_runtime_error()
    with pytest.raises(error, match=message):
        getattr(_C.cuda, name)(*arguments(lambda shape, typestr="<f4": FakeCudaArray(shape, typestr)))
