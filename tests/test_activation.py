import functools
import re

import numpy as np
import pytest

import fastnn
import reference
from cuda_fakes import FakeCudaArray, expected_runtime_error
from opcheck import check_inputs, check_op, on_device, randn

pytestmark = pytest.mark.usefixtures("isa")

# 0-d, size 1, sizes off every ISA's vector width (16, 8, 4), and 3-D / 4-D.
SHAPES = [(), (1,), (7,), (17,), (31,), (33,), (1000,), (3, 5, 7), (2, 3, 4, 5)]
OPS = [("relu", {}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("sigmoid", {}),
       ("tanh", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"})]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,kwargs", OPS, ids=lambda p: str(p))
def test_op(name, kwargs, shape, device):
    # low=0.05 keeps the finite differences of relu / leaky_relu off the kink at 0.
    check_op(name, [randn(*shape, low=0.05)], kwargs, device=device)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_backward_from_saved_output(name, device):
    x = randn(3, 33)
    check_op(name, [x], saved=getattr(fastnn.ops, name)(x), device=device)


def test_gradient_at_the_kink(device):
    zero, g = np.zeros(5, np.float32), np.full(5, 3.0, np.float32)
    relu_backward = on_device(fastnn.ops.relu_backward, device)
    leaky_relu_backward = on_device(fastnn.ops.leaky_relu_backward, device)
    np.testing.assert_array_equal(relu_backward(g, zero)[0], 0.0)
    np.testing.assert_array_equal(leaky_relu_backward(g, zero, negative_slope=0.25)[0], 0.75)


@pytest.mark.parametrize("name,kwargs", OPS, ids=lambda p: str(p))
def test_input_layouts(name, kwargs):
    check_inputs(name, [randn(4, 6)], kwargs, batch_axes=[0])


@pytest.mark.parametrize("name,kwargs", OPS, ids=lambda p: str(p))
def test_backward_input_layouts(name, kwargs):
    backward = getattr(fastnn.ops, name + "_backward")
    g, x = randn(6, 5), randn(6, 5)
    expected = backward(g, x, **kwargs)[0]
    np.testing.assert_array_equal(backward(np.asfortranarray(g), np.repeat(x, 2, axis=1)[:, ::2], **kwargs)[0], expected)
    assert backward(g[:0], x[:0], **kwargs)[0].shape == (0, 5)
    with pytest.raises(TypeError, match="grad_output must be float32"):
        backward(g.astype(np.float64), x, **kwargs)


def test_errors_name_the_argument():
    x = randn(3, 4)
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got 'x'"):
        fastnn.ops.gelu(x, approximate="x")
    with pytest.raises(ValueError, match="gelu_backward: approximate must be 'none' or 'tanh', got 'erf'"):
        fastnn.ops.gelu_backward(x, x, approximate="erf")
    with pytest.raises(ValueError, match=r"relu_backward: grad_output must have the input's shape \(3, 4\), "
                                         r"got \(4, 3\)"):
        fastnn.ops.relu_backward(randn(4, 3), x)
    with pytest.raises(ValueError, match=r"tanh_backward: saved must have the input's shape \(3, 4\), got \(12,\)"):
        fastnn.ops.tanh_backward(x, x, saved=randn(12))
    with pytest.raises(TypeError, match="sigmoid_backward: saved must be float32"):
        fastnn.ops.sigmoid_backward(x, x, saved=x.astype(np.float64))


def test_compiled_module_checks_its_inputs():
    # _C is safe to call directly: wrong dtype or layout raises instead of reading garbage.
    x = randn(4, 6)
    with pytest.raises(TypeError, match="sigmoid: input must be float32"):
        fastnn._C.sigmoid(x.astype(np.float64))
    with pytest.raises(ValueError, match="tanh: input must be C-contiguous"):
        fastnn._C.tanh(x.T)
    with pytest.raises(ValueError, match="relu_backward: grad_output must be C-contiguous"):
        fastnn._C.relu_backward(x[:, ::2], x[:, :3].copy())


# ---- accuracy over a dense sweep, against float64, on every ISA ----

def _sweep():
    # Dense over [-20, 20]; coarser over [-120, 120], which takes the vector exp through its whole
    # range (sigmoid(x) ~ e^x down to e^-104, past which it rounds to 0, through the subnormals).
    tiny = np.geomspace(1e-45, 1e-3, 2000)
    # The kernels' breakpoints: tanh's 0.625 and 9.5 (its clamp), GELU's tail at 14.4, exp's range.
    # And GELU's worst points found by a scan of every other float in 1 <= |x| <= 4: 5.74 ULP with
    # FMA, and 6.4-6.5 where the SSE2 build rounded its tail polynomial in float; and by a scan of
    # every float in 2^-10 <= |x| < 3.875: 6.22 ULP at -0.13951436 (AVX2, and AVX-512 before its
    # pieces), the only one over 6.
    special = [0.0, -0.0, 0.625, -0.625, 9.5, -9.5, 14.4, -14.4, 14.45, -14.45, 88.0, 89.0, 104.0, -104.0, 1e10,
               -1e10, 3e38, -3e38, np.inf, -np.inf, -2.202229, -1.8240163, -1.8397835, -0.13951436]
    return np.concatenate([np.linspace(-20, 20, 100_001), np.linspace(-120, 120, 24_001), tiny, -tiny,
                           special]).astype(np.float32)


SWEEP = _sweep()


@functools.cache
def _expected(name, approximate):
    kwargs = {} if approximate is None else {"approximate": approximate}
    with np.errstate(invalid="ignore"):  # gelu(-inf) = -inf * 0 is NaN, as in torch
        forward = getattr(reference, name)(SWEEP, **kwargs)
        backward = getattr(reference, name + "_backward")(np.ones_like(SWEEP), SWEEP, **kwargs)[0]
    return forward, backward


def ulp_error(actual, expected):
    """|actual - expected| in units of the float32 spacing at `expected` (NaN matching NaN and
    equal infinities count as exact)."""
    exact = (np.isnan(actual) & np.isnan(expected)) | (actual == expected)
    spacing = np.spacing(np.abs(expected.astype(np.float32))).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(exact, 0.0, np.abs(actual - expected) / spacing)


def assert_ulp(label, actual, expected, bound):
    err = ulp_error(actual, expected)
    worst = int(np.argmax(err))
    assert err[worst] <= bound, (f"{label}: {err[worst]:.3g} ULP at x={SWEEP[worst]!r} (got {actual[worst]!r}, "
                                 f"expected {expected[worst]!r}); {np.sum(err > bound)} values over {bound}")


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_exp_based_ops_within_3_ulp(name):
    forward, backward = _expected(name, None)
    assert_ulp(name, getattr(fastnn.ops, name)(SWEEP), forward, 3)
    # f'(x) is formed from exp(-|x|) without a 1 - f(x)^2 cancellation: relative accuracy in the tails.
    assert_ulp(name + "_backward", getattr(fastnn.ops, name + "_backward")(np.ones_like(SWEEP), SWEEP)[0],
               backward, 5)


def test_gelu_exact_within_6_5_ulp():
    # Vector erfc (activation_simd.cpp): the fitted tail ratio, its argument, exp and the final
    # products each round: 6.22 ULP at worst with FMA, 3.3 on SSE2 (its tail polynomial in double).
    forward, backward = _expected("gelu", "none")
    assert_ulp("gelu", fastnn.ops.gelu(SWEEP), forward, 6.5)
    grad = fastnn.ops.gelu_backward(np.ones_like(SWEEP), SWEEP)[0]
    np.testing.assert_allclose(grad, backward, rtol=0, atol=2 ** -22)  # values in [-0.17, 1.13]


PIECES_RANGE = np.concatenate([np.linspace(-3.875, 3.875, 2_000_001)[1:-1], np.geomspace(1e-38, 2**-10, 20_000),
                               -np.geomspace(1e-38, 2**-10, 20_000)]).astype(np.float32)


@pytest.mark.parametrize("name", ["gelu", "tanh"])
def test_pieces_within_2_ulp(isa, name):
    # AVX-512 evaluates |x| < 3.875 by a polynomial per interval of width 1/4 (worst over every
    # float in 2^-10 <= |x| < 3.875: GELU 1.80 ULP, tanh 1.35): 2M points of the range and tiny |x|.
    # Elsewhere these ops take their general paths on every ISA.
    if isa != "avx512":
        pytest.skip("the pieces are AVX-512's")
    x = PIECES_RANGE
    err = ulp_error(getattr(fastnn.ops, name)(x), getattr(reference, name)(x.astype(np.float64)))
    worst = int(np.argmax(err))
    assert err[worst] <= 2, f"{name}: {err[worst]:.3g} ULP at x={x[worst]!r}"


def test_gelu_slope_in_pieces_within_2_to_minus_22(isa):
    if isa != "avx512":
        pytest.skip("the pieces are AVX-512's")
    x = PIECES_RANGE
    grad = fastnn.ops.gelu_backward(np.ones_like(x), x)[0]
    expected = reference.gelu_backward(np.ones(x.shape), x.astype(np.float64))[0]
    np.testing.assert_allclose(grad, expected, rtol=0, atol=2 ** -22)


@pytest.mark.parametrize("name", ["gelu", "tanh"])
def test_pieces_keep_the_sign_of_zero(name):
    out = getattr(fastnn.ops, name)(np.array([-0.0, 0.0] * 40, np.float32))  # groups, single vectors, tail
    assert np.all(out == 0) and np.array_equal(np.signbit(out), np.tile([True, False], 40))


def test_mixes_pieces_and_general_paths_by_group():
    # x ~ normal(0, 3): groups of 4 vectors with and without lanes past 3.875 take different
    # paths (AVX-512), so do the vectors after the last whole group and the tail.
    x = np.random.default_rng(5).normal(0, 3, 4096 * 4 + 16 * 3 + 5).astype(np.float32)
    x[:64] = 0.5  # one whole group inside the pieces' range
    x64 = x.astype(np.float64)
    for name, bound in (("gelu", 6.5), ("tanh", 3)):
        err = ulp_error(getattr(fastnn.ops, name)(x), getattr(reference, name)(x64))
        worst = int(np.argmax(err))
        assert err[worst] <= bound, f"{name}: {err[worst]:.3g} ULP at x={x[worst]!r}"
    grad = fastnn.ops.gelu_backward(np.full_like(x, 0.5), x)[0]
    np.testing.assert_allclose(grad, reference.gelu_backward(np.full(x.shape, 0.5), x64)[0], rtol=0, atol=2 ** -23)


def test_gelu_tanh_within_3_ulp_plus_conditioning():
    # In the negative tail gelu_tanh(x) ~ x exp(-1.6 x - 0.07 x^3) is ill-conditioned: rounding
    # the exponent to float moves the result by ~cond ULP, cond = |x f'(x) / f(x)| (~200 at x = -9).
    # The bound is 3 ULP plus 3 * cond ULP, the effect of a few-ULP change of x.
    forward, backward = _expected("gelu", "tanh")
    with np.errstate(all="ignore"):
        cond = np.nan_to_num(np.abs(SWEEP * backward / forward), nan=0.0)
    err = ulp_error(fastnn.ops.gelu(SWEEP, approximate="tanh"), forward)
    worst = int(np.argmax(err / (1 + cond)))
    assert err[worst] <= 3 * (1 + cond[worst]), f"gelu tanh: {err[worst]:.3g} ULP at x={SWEEP[worst]!r}"
    assert np.max(err[SWEEP >= 0]) <= 3  # well-conditioned there
    grad = fastnn.ops.gelu_backward(np.ones_like(SWEEP), SWEEP, approximate="tanh")[0]
    finite = np.isfinite(SWEEP)  # at +-inf the reference's x * sigmoid'(v) is inf * 0 = NaN
    np.testing.assert_allclose(grad[finite], backward[finite], rtol=0, atol=3e-7)  # values in [-0.13, 1.13]


@pytest.mark.parametrize("name,kwargs", OPS, ids=lambda p: str(p))
def test_nan_propagates(name, kwargs, device):
    x = np.array([np.nan, 1.0, -np.nan], np.float32)
    out = on_device(getattr(fastnn.ops, name), device)(x, **kwargs)
    assert np.isnan(out[0]) and np.isnan(out[2]) and not np.isnan(out[1])


def test_large_arrays_split_across_threads():
    # Above 2 x 16K elements every thread gets a slice; slice edges fall off the vector width.
    x = randn(3 * (1 << 14) + 5)
    for name, kwargs in OPS:
        expected = getattr(reference, name)(x, **kwargs)
        np.testing.assert_allclose(getattr(fastnn.ops, name)(x, **kwargs), expected, rtol=1e-6, atol=1e-7,
                                   err_msg=name)


LARGE = randn((1 << 21) + 5), randn((1 << 21) + 5)


@functools.cache
def _expected_large(name, kwargs_items):
    kwargs = dict(kwargs_items)
    x, g = LARGE
    return getattr(reference, name)(x, **kwargs), getattr(reference, name + "_backward")(g, x, **kwargs)[0]


@pytest.mark.parametrize("threads", [1, 2])
def test_outputs_past_the_caches_take_streaming_stores(threads):
    # A thread's slice of >= 4 MiB of output is written with streaming stores from its first
    # vector-aligned element; the odd size puts the second slice's start off that alignment.
    x, g = LARGE
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        for name, kwargs in OPS:
            forward, backward = _expected_large(name, tuple(kwargs.items()))
            np.testing.assert_allclose(getattr(fastnn.ops, name)(x, **kwargs), forward, rtol=1e-6, atol=1e-7,
                                       err_msg=name)
            np.testing.assert_allclose(getattr(fastnn.ops, name + "_backward")(g, x, **kwargs)[0], backward,
                                       rtol=1e-5, atol=1e-6, err_msg=name + "_backward")
    finally:
        fastnn.set_num_threads(before)


# ---- the CUDA kernels' load paths (GPU only) ----

@pytest.fixture
def cupy(require_gpu):
    import cupy
    return cupy


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
@pytest.mark.parametrize("name,kwargs", OPS, ids=lambda p: str(p))
def test_cuda_vector_and_scalar_paths(cupy, name, kwargs, offset):
    # Arrays 16-byte aligned take float4s and a scalar tail (sizes off 4 leave 1-3 elements); a
    # view 1-3 floats into a CuPy allocation is C-contiguous but not aligned to 16 bytes, and goes
    # element by element. The backward's grad_output stays aligned, so offsets mix alignments.
    op, backward = getattr(fastnn.ops, name), getattr(fastnn.ops, name + "_backward")
    x, g = randn(offset + 1031), randn(1031)
    x_gpu, g_gpu = cupy.asarray(x), cupy.asarray(g)
    for n in [1, 3, 4, 5, 1027]:
        view = slice(offset, offset + n)
        np.testing.assert_allclose(cupy.asnumpy(op(x_gpu[view], **kwargs)), op(x[view], **kwargs), rtol=1e-5,
                                   atol=1e-6, err_msg=f"{name}, {n} elements")
        np.testing.assert_allclose(cupy.asnumpy(backward(g_gpu[:n], x_gpu[view], **kwargs)[0]),
                                   backward(g[:n], x[view], **kwargs)[0], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}_backward, {n} elements")


def test_cuda_grid_stride_loops_past_the_largest_grid(cupy):
    # grid_for caps a launch at 65535 blocks of 256 threads: one step of the grid covers
    # 67,107,840 elements as float4s and 16,776,960 one by one, so this size loops on both paths
    # (the view at offset 1 is the unaligned, element-by-element one).
    n = (1 << 26) + (1 << 20) + 3
    x = np.linspace(-1, 1, n + 1, dtype=np.float32)
    x_gpu = cupy.asarray(x)
    for view in [slice(0, n), slice(1, n + 1)]:
        np.testing.assert_array_equal(cupy.asnumpy(fastnn.ops.relu(x_gpu[view])), fastnn.ops.relu(x[view]))
    np.testing.assert_array_equal(cupy.asnumpy(fastnn.ops.relu_backward(x_gpu[1:], x_gpu[:n])[0]),
                                  fastnn.ops.relu_backward(x[1:], x[:n])[0])


# ---- the CUDA bindings' checks, with stand-in arrays (run without a GPU) ----

cuda_build = pytest.mark.skipif(not fastnn.build_info()["cuda"], reason="built without CUDA")


def fake(shape=(3, 4), typestr="<f4", strides=None):
    """A stand-in at address 0, which passes every check without a memory query (the bindings
    skip it for null pointers), so that a later argument's error shows."""
    return FakeCudaArray(shape, typestr, strides, address=0)


def assert_same_error(cpu_call, cuda_call):
    """cuda_call raises what cpu_call raises, type and message: the two devices share the checks."""
    with pytest.raises((TypeError, ValueError)) as cpu:
        cpu_call()
    with pytest.raises(type(cpu.value), match=re.escape(str(cpu.value))):
        cuda_call()


@cuda_build
@pytest.mark.parametrize("name,kwargs", OPS, ids=lambda p: str(p))
def test_cuda_forward_checks_its_input(name, kwargs):
    op, cpu_op = getattr(fastnn._C.cuda, name), getattr(fastnn._C, name)
    assert_same_error(lambda: cpu_op(np.zeros((3, 4)), **kwargs), lambda: op(fake(typestr="<f8"), **kwargs))
    with pytest.raises(ValueError, match=f"{name}: input must be C-contiguous"):
        op(fake(strides=(4, 12)), **kwargs)
    with pytest.raises(TypeError, match=f"{name}: input must be a CUDA array .*, got numpy.ndarray"):
        op(randn(3, 4), **kwargs)
    error, message = expected_runtime_error()
    with pytest.raises(error, match=message):
        op(FakeCudaArray((3, 4)), **kwargs)


@cuda_build
@pytest.mark.parametrize("name,kwargs", OPS, ids=lambda p: str(p))
def test_cuda_backward_checks_its_arguments(name, kwargs):
    op, cpu_op = getattr(fastnn._C.cuda, name + "_backward"), getattr(fastnn._C, name + "_backward")
    x = randn(3, 4)
    assert_same_error(lambda: cpu_op(x.astype(np.float64), x, **kwargs),
                      lambda: op(fake(typestr="<f8"), fake(), **kwargs))
    assert_same_error(lambda: cpu_op(randn(4, 3), x, **kwargs), lambda: op(fake((4, 3)), fake(), **kwargs))
    assert_same_error(lambda: cpu_op(randn(12), x, **kwargs), lambda: op(fake((12,)), fake(), **kwargs))
    with pytest.raises(ValueError, match=f"{name}_backward: grad_output must be C-contiguous"):
        op(fake(strides=(4, 12)), fake(), **kwargs)
    with pytest.raises(ValueError, match=f"{name}_backward: input must be C-contiguous"):
        op(fake(), fake(strides=(4, 12)), **kwargs)
    error, message = expected_runtime_error()
    with pytest.raises(error, match=message):
        op(FakeCudaArray((3, 4)), FakeCudaArray((3, 4)), **kwargs)


@cuda_build
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_cuda_backward_checks_the_saved_output(name):
    op, cpu_op = getattr(fastnn._C.cuda, name + "_backward"), getattr(fastnn._C, name + "_backward")
    x = randn(3, 4)
    assert_same_error(lambda: cpu_op(x, x, saved=randn(12)), lambda: op(fake(), fake(), saved=fake((12,))))
    assert_same_error(lambda: cpu_op(x, x, saved=x.astype(np.float64)),
                      lambda: op(fake(), fake(), saved=fake(typestr="<f8")))
    error, message = expected_runtime_error()
    with pytest.raises(error, match=message):
        op(fake(), fake(), saved=FakeCudaArray((3, 4)))


@cuda_build
def test_cuda_gelu_checks_approximate():
    x = randn(3, 4)
    assert_same_error(lambda: fastnn._C.gelu(x, approximate="x"), lambda: fastnn._C.cuda.gelu(fake(), approximate="x"))
    assert_same_error(lambda: fastnn._C.gelu_backward(x, x, approximate="erf"),
                      lambda: fastnn._C.cuda.gelu_backward(fake(), fake(), approximate="erf"))
