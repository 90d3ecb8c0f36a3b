import itertools

import numpy as np
import pytest

import fastnn
import reference
from cuda_fakes import FakeCudaArray, expected_runtime_error
from opcheck import check_inputs, check_op, on_device, randn, rng

pytestmark = pytest.mark.usefixtures("isa")

KERNELS = [1, 2, 3, (2, 3)]
STRIDES = [None, 1, 2, 3]
# Odd sizes, N=1, C=1 and a 3-D (C, H, W) input; every one fits the largest dilated kernel (5).
# The grids below take them in turn (5 shapes, so they fall on varied parameter combinations).
SHAPES = [(2, 3, 7, 9), (1, 1, 5, 6), (3, 8, 11), (1, 2, 10, 8), (2, 1, 6, 5)]


def distinct(*shape):
    """Values 0.1 apart in random order: one clear maximum per window, which the float32 finite
    difference's steps (about 0.01 per element) never reorder."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.1).astype(np.float32).reshape(shape)


def valid_padding(kernel_size, padding):
    return padding <= min(reference._pool_pair(kernel_size)) // 2


MAX_CASES = [dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=c)
             for k, s, p, d, c in itertools.product(KERNELS, STRIDES, [0, 1], [1, 2], [False, True])
             if valid_padding(k, p)]
AVG_CASES = [dict(kernel_size=k, stride=s, padding=p, ceil_mode=c, count_include_pad=cip, divisor_override=dv)
             for k, s, p, c, (cip, dv) in itertools.product(KERNELS, STRIDES, [0, 1], [False, True],
                                                           [(True, None), (False, None), (True, 3)])
             if valid_padding(k, p)]


@pytest.mark.parametrize("kwargs,shape", list(zip(MAX_CASES, itertools.cycle(SHAPES))), ids=str)
def test_max_pool2d(kwargs, shape, device):
    x = distinct(*shape)
    # Windows overlap up to 3 x 3 deep (kernel 3, stride 1), so one input sums up to 9 gradients.
    check_op("max_pool2d", [x], kwargs, reduction=9, device=device)
    max_pool, backward = on_device(fastnn.ops.max_pool2d, device), on_device(fastnn.ops.max_pool2d_backward, device)
    out, indices = max_pool(x, **kwargs, return_indices=True)
    np.testing.assert_array_equal(indices, reference.max_pool2d(x, **kwargs, return_indices=True)[1])
    grad = randn(*out.shape)
    np.testing.assert_array_equal(backward(grad, x, **kwargs, saved=indices)[0], backward(grad, x, **kwargs)[0])


@pytest.mark.parametrize("kwargs,shape", list(zip(MAX_CASES, itertools.cycle(SHAPES))), ids=str)
def test_relu_max_pool2d(kwargs, shape, device):
    # Values 0.05 off a multiple of 0.1: about half the windows have a non-positive max, and no
    # value is within the finite difference's step of relu's kink at 0.
    x = distinct(*shape) + np.float32(0.05)
    kwargs = dict(kwargs, relu=True)
    check_op("max_pool2d", [x], kwargs, reduction=9, device=device)
    max_pool, backward = on_device(fastnn.ops.max_pool2d, device), on_device(fastnn.ops.max_pool2d_backward, device)
    out, indices = max_pool(x, **kwargs, return_indices=True)
    np.testing.assert_array_equal(indices, reference.max_pool2d(x, **kwargs, return_indices=True)[1])
    np.testing.assert_array_equal(out, max_pool(fastnn.ops.relu(x), **dict(kwargs, relu=False)))
    grad = randn(*out.shape)
    np.testing.assert_array_equal(backward(grad, x, **kwargs, saved=indices)[0], backward(grad, x, **kwargs)[0])


@pytest.mark.parametrize("kwargs,shape", list(zip(AVG_CASES, itertools.cycle(SHAPES))), ids=str)
def test_avg_pool2d(kwargs, shape, device):
    check_op("avg_pool2d", [randn(*shape)], kwargs, reduction=9, device=device)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
                                    dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1), ceil_mode=True)])
def test_max_pool2d_backward_with_saved_indices(kwargs, device):
    x = distinct(2, 3, 7, 8)
    _, indices = fastnn.ops.max_pool2d(x, **kwargs, return_indices=True)
    check_op("max_pool2d", [x], kwargs, reduction=9, saved=indices, device=device)


def test_max_pool2d_ties_go_to_the_first_in_window_order(device):
    # All -inf: every window ties, padding included, and its argmax is its first input tap.
    x = np.full((1, 1, 3, 4), -np.inf, dtype=np.float32)
    kwargs = dict(kernel_size=2, stride=1, padding=1)
    max_pool, backward = on_device(fastnn.ops.max_pool2d, device), on_device(fastnn.ops.max_pool2d_backward, device)
    out, indices = max_pool(x, **kwargs, return_indices=True)
    assert np.all(out == -np.inf)
    oh, ow = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    np.testing.assert_array_equal(indices[0, 0], np.maximum(oh - 1, 0) * 4 + np.maximum(ow - 1, 0))
    x = np.ones((2, 3, 5, 6), dtype=np.float32)
    grad = randn(2, 3, 4, 5)
    np.testing.assert_allclose(backward(grad, x, 2, stride=1)[0], reference.max_pool2d_backward(grad, x, 2, stride=1)[0],
                               rtol=1e-6)


def test_max_pool2d_nan_is_the_max(device):
    x = distinct(1, 1, 5, 6)
    x[0, 0, 2, 3] = np.nan
    max_pool, backward = on_device(fastnn.ops.max_pool2d, device), on_device(fastnn.ops.max_pool2d_backward, device)
    out, indices = max_pool(x, 3, stride=1, return_indices=True)
    covers_nan = np.zeros((3, 4), dtype=bool)
    covers_nan[0:3, 1:4] = True
    assert np.all(np.isnan(out[0, 0][covers_nan])) and np.all(indices[0, 0][covers_nan] == 2 * 6 + 3)
    np.testing.assert_array_equal(out[0, 0][~covers_nan], reference.max_pool2d(x, 3, stride=1)[0, 0][~covers_nan])
    grad = randn(*out.shape)
    grad_input = backward(grad, x, 3, stride=1)[0]
    assert grad_input[0, 0, 2, 3] == pytest.approx(grad[0, 0][covers_nan].sum(), rel=1e-5)


def test_max_pool2d_window_wholly_in_padding(device):
    # Dilation 2 puts the taps of this window at -1 and 1: both in padding of a 1 x 1 plane.
    x = randn(1, 1, 1, 1)
    max_pool, backward = on_device(fastnn.ops.max_pool2d, device), on_device(fastnn.ops.max_pool2d_backward, device)
    out, indices = max_pool(x, 2, dilation=2, padding=1, return_indices=True)
    assert out.shape == (1, 1, 1, 1) and out[0, 0, 0, 0] == -np.inf and indices[0, 0, 0, 0] == -1
    grad = randn(1, 1, 1, 1)
    for saved in [None, indices]:
        np.testing.assert_array_equal(backward(grad, x, 2, dilation=2, padding=1, saved=saved)[0], np.zeros_like(x))


def test_huge_padded_kernel_reads_only_the_input(device):
    # Sizes derived from a kernel near INT_MAX must not overflow (UBSan checks this in CI), and
    # its taps in padding must cost nothing.
    x = distinct(1, 1, 2, 3)
    big = 2**31 - 1
    avg_pool, max_pool = on_device(fastnn.ops.avg_pool2d, device), on_device(fastnn.ops.max_pool2d, device)
    kwargs = dict(kernel_size=big, stride=1, padding=big // 2, count_include_pad=False)
    np.testing.assert_allclose(avg_pool(x, **kwargs), np.full((1, 1, 2, 3), x.mean()), rtol=1e-6)
    grad = randn(1, 1, 2, 3)
    np.testing.assert_allclose(on_device(fastnn.ops.avg_pool2d_backward, device)(grad, x, **kwargs)[0],
                               np.full(x.shape, grad.mean()), rtol=1e-5, atol=1e-6)
    out, indices = max_pool(x, (1, big), stride=(1, 2), padding=(0, big // 2), return_indices=True)
    np.testing.assert_array_equal(indices[0, 0, :, 0], np.argmax(x[0, 0], axis=1) + [0, 3])


def test_pool2d_3d_input_matches_4d(device):
    x = distinct(3, 7, 6)
    for name, kwargs in [("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
                         ("avg_pool2d", dict(kernel_size=2, ceil_mode=True))]:
        op = on_device(getattr(fastnn.ops, name), device)
        np.testing.assert_array_equal(op(x, **kwargs), op(x[None], **kwargs)[0])


def test_input_layouts():
    # Equal batch entries, so check_inputs also tries a broadcast (zero-stride) view.
    x = np.repeat(distinct(1, 3, 7, 6), 2, axis=0)
    for name, kwargs in [("max_pool2d", dict(kernel_size=2)), ("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
                         ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False))]:
        check_inputs(name, [x], kwargs, batch_axes=[0])
        grad = np.repeat(randn(1, *getattr(fastnn.ops, name)(x[:1], **kwargs).shape[1:]), 2, axis=0)
        check_inputs(name + "_backward", [grad, x], kwargs, batch_axes=[0, 0])
    check_inputs("max_pool2d", [distinct(3, 5, 5)], dict(kernel_size=2), batch_axes=[0])


@pytest.mark.parametrize("call,error,match", [
    (lambda: fastnn.ops.max_pool2d(randn(5, 6), 2), ValueError,
     r"max_pool2d: input must have shape \(N, C, H, W\) or \(C, H, W\), got shape \(5, 6\)"),
    (lambda: fastnn.ops.max_pool2d(randn(1, 2, 0, 6), 2), ValueError, r"non-empty H x W plane, got shape \(1, 2, 0, 6\)"),
    (lambda: fastnn.ops.max_pool2d(randn(1, 2, 5, 6), (0, 2)), ValueError, r"kernel_size must be >= 1, got \(0, 2\)"),
    (lambda: fastnn.ops.max_pool2d(randn(1, 2, 5, 6), (1, 2, 3)), ValueError, "kernel_size must be an int or a pair"),
    (lambda: fastnn.ops.avg_pool2d(randn(1, 2, 5, 6), 2, stride=0), ValueError, r"stride must be >= 1, got \(0, 0\)"),
    (lambda: fastnn.ops.max_pool2d(randn(1, 2, 5, 6), 3, padding=(0, -1)), ValueError,
     r"padding must be >= 0, got \(0, -1\)"),
    (lambda: fastnn.ops.max_pool2d(randn(1, 2, 5, 6), 3, padding=2), ValueError,
     r"padding must be at most half of kernel_size, got padding \(2, 2\) for kernel_size \(3, 3\)"),
    (lambda: fastnn.ops.max_pool2d(randn(1, 2, 5, 6), 2, dilation=0), ValueError, r"dilation must be >= 1, got \(0, 0\)"),
    (lambda: fastnn.ops.max_pool2d(randn(1, 2, 5, 6), 3, dilation=3), ValueError,
     r"kernel larger than padded input: kernel_size \(3, 3\) with dilation \(3, 3\) spans \(7, 7\) "
     r"but the input plane \(5, 6\) padded by \(0, 0\) is \(5, 6\)"),
    (lambda: fastnn.ops.avg_pool2d(randn(1, 2, 5, 6), 7), ValueError, "avg_pool2d: kernel larger than padded input"),
    (lambda: fastnn.ops.max_pool2d(randn(1, 1, 1, 1), 2**16, padding=2**15), ValueError,
     r"kernel_size \(65536, 65536\) has more than 2\^31 - 1 taps"),
    (lambda: fastnn.ops.avg_pool2d(randn(1, 2, 5, 6), 2, divisor_override=0), ValueError,
     "divisor_override must be non-zero, got 0"),
    (lambda: fastnn.ops.avg_pool2d_backward(randn(1, 2, 2, 2), randn(1, 2, 5, 6), 2), ValueError,
     r"avg_pool2d_backward: grad_output must have the output's shape \(1, 2, 2, 3\), got \(1, 2, 2, 2\)"),
    (lambda: fastnn.ops.max_pool2d_backward(randn(2, 2, 3), randn(1, 2, 5, 6), 2), ValueError,
     r"max_pool2d_backward: grad_output must have the output's shape \(1, 2, 2, 3\), got \(2, 2, 3\)"),
    (lambda: fastnn.ops.max_pool2d_backward(randn(1, 2, 2, 3), randn(1, 2, 5, 6), 2,
                                            saved=np.zeros((1, 2, 3, 2), np.int64)), ValueError,
     r"saved indices must have the output's shape \(1, 2, 2, 3\), got \(1, 2, 3, 2\)"),
    (lambda: fastnn.ops.max_pool2d_backward(randn(1, 2, 2, 3), randn(1, 2, 5, 6), 2,
                                            saved=np.zeros((1, 2, 2, 3), np.int32)), TypeError,
     "saved must be int64, got int32"),
    (lambda: fastnn.ops.max_pool2d_backward(randn(1, 2, 2, 3), randn(1, 2, 5, 6), 2,
                                            saved=np.full((1, 2, 2, 3), 30, np.int64)), ValueError,
     r"saved index 30 at flat position 0 is out of range for a 5x6 input plane \(expected -1 <= index < 30\)"),
    (lambda: fastnn.ops.max_pool2d_backward(randn(1, 2, 2, 3), randn(1, 2, 5, 6), 2,
                                            saved=np.full((1, 2, 2, 3), -2, np.int64)), ValueError,
     "saved index -2 at flat position 0 is out of range"),
    (lambda: fastnn._C.max_pool2d(randn(1, 2, 6, 5).transpose(0, 1, 3, 2), (2, 2), (2, 2), (0, 0), (1, 1), False,
                                  False), ValueError, "input must be C-contiguous"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# 2x2 stride-2 pooling without padding has kernels of its own (every ISA). Output widths: 35
# and 37 (full vectors, then a partial one), 16 (exact), 12 and 5 (half-width vectors on
# AVX-512 and AVX2), 4 (narrower than a vector); odd heights and widths leave a last row or
# column that no window covers.
WHOLE_2X2_SHAPES = [(2, 3, 10, 70), (1, 2, 11, 75), (1, 1, 4, 32), (2, 3, 6, 24), (1, 2, 5, 11), (2, 2, 7, 9)]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", WHOLE_2X2_SHAPES, ids=str)
def test_max_pool2d_2x2_fast_path(shape, relu):
    x = distinct(*shape)
    out, indices = fastnn.ops.max_pool2d(x, 2, return_indices=True, relu=relu)
    expected, expected_indices = reference.max_pool2d(x, 2, return_indices=True, relu=relu)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(indices, expected_indices)
    grad = randn(*out.shape)
    expected_grad = reference.max_pool2d_backward(grad, x, 2, relu=relu)[0]
    for saved in [None, indices]:
        np.testing.assert_allclose(fastnn.ops.max_pool2d_backward(grad, x, 2, relu=relu, saved=saved)[0],
                                   expected_grad, rtol=1e-6)


def general_2x2(x, grad, relu):
    """max_pool2d 2x2 and its backward through the general kernel, over the same whole windows:
    a row and a column of NaN appended and ceil_mode make the last windows partial."""
    n, c, h, w = x.shape
    padded = np.full((n, c, h + 1 + h % 2, w + 1 + w % 2), np.nan, np.float32)
    padded[:, :, :h, :w] = x
    out, indices = fastnn.ops.max_pool2d(padded, 2, ceil_mode=True, return_indices=True, relu=relu)
    oh, ow = h // 2, w // 2
    rows, cols = np.divmod(indices[:, :, :oh, :ow], padded.shape[-1])
    big_grad = np.zeros(out.shape, np.float32)
    big_grad[:, :, :oh, :ow] = grad
    grad_input = fastnn.ops.max_pool2d_backward(big_grad, padded, 2, ceil_mode=True, relu=relu)[0]
    return out[:, :, :oh, :ow], np.where(indices[:, :, :oh, :ow] < 0, -1, rows * w + cols), grad_input[:, :, :h, :w]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", WHOLE_2X2_SHAPES, ids=str)
def test_max_pool2d_2x2_ties_and_nan_as_the_general_kernel(shape, relu):
    # Values from {-1, 0, 1, NaN}: most windows tie (the first in window order wins) and many
    # hold one or more NaNs (a NaN wins), decided as the general kernel decides them; with relu,
    # windows of -1 and 0 have no argmax.
    x = rng.choice(np.array([-1.0, 0.0, 1.0, np.nan], np.float32), size=shape, p=[0.2, 0.3, 0.4, 0.1])
    grad = randn(*shape[:2], shape[2] // 2, shape[3] // 2)
    out, indices = fastnn.ops.max_pool2d(x, 2, return_indices=True, relu=relu)
    expected, expected_indices, expected_grad = general_2x2(x, grad, relu)
    assert np.isnan(out).any() and (out == 1).any()
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(indices, expected_indices)
    for saved in [None, indices]:
        np.testing.assert_array_equal(fastnn.ops.max_pool2d_backward(grad, x, 2, relu=relu, saved=saved)[0],
                                      expected_grad)


def test_max_pool2d_2x2_backward_with_hand_made_indices(device):
    # A saved offset outside its own window, -1, and two windows naming one input are scattered
    # as the general kernel does (the GPU's gather misses the first, which a pass of its own adds).
    x = distinct(1, 2, 6, 40)
    _, saved = fastnn.ops.max_pool2d(x, 2, return_indices=True)
    saved[0, 0, 1, 3] = 5
    saved[0, 0, 2, 19] = -1
    saved[0, 1, 0, 0] = saved[0, 1, 2, 17]
    grad = randn(*saved.shape)
    expected = np.zeros((2, 6 * 40), np.float32)
    for plane in range(2):
        keep = saved[0, plane].ravel() >= 0
        np.add.at(expected[plane], saved[0, plane].ravel()[keep], grad[0, plane].ravel()[keep])
    np.testing.assert_allclose(on_device(fastnn.ops.max_pool2d_backward, device)(grad, x, 2, saved=saved)[0],
                               expected.reshape(x.shape), rtol=1e-6)



@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, stride=1, padding=1),
                                    dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1), ceil_mode=True)])
def test_cuda_pooling_adds_in_the_cpu_order(kwargs, require_gpu):
    # Overlapping windows: an input sums several gradients (and a window several inputs), which
    # the GPU gathers in the CPU kernels' order, so the two agree bitwise, run after run.
    x = randn(2, 3, 9, 10)
    avg_kwargs = {key: value for key, value in kwargs.items() if key != "dilation"}
    for name, op_kwargs in [("max_pool2d", kwargs), ("avg_pool2d", dict(avg_kwargs, count_include_pad=False))]:
        forward, backward = getattr(fastnn.ops, name), getattr(fastnn.ops, name + "_backward")
        out = forward(x, **op_kwargs)
        np.testing.assert_array_equal(on_device(forward, "cuda")(x, **op_kwargs), out)
        grad = randn(*out.shape)
        expected = backward(grad, x, **op_kwargs)[0]
        for _ in range(2):
            np.testing.assert_array_equal(on_device(backward, "cuda")(grad, x, **op_kwargs)[0], expected)


@pytest.mark.parametrize("bad", [30, -2])
def test_cuda_max_pool2d_backward_raises_for_out_of_range_saved_indices(require_gpu, bad):
    """The CPU binding's error, word for word (the kernels would skip such an index)."""
    x = distinct(1, 2, 5, 6)
    _, saved = fastnn.ops.max_pool2d(x, 2, return_indices=True)
    grad = randn(*saved.shape)
    saved[0, 1, 0, 2] = bad
    with pytest.raises(ValueError, match=f"saved index {bad} at flat position 8 is out of range") as on_cpu:
        fastnn.ops.max_pool2d_backward(grad, x, 2, saved=saved)
    with pytest.raises(ValueError) as on_gpu:
        on_device(fastnn.ops.max_pool2d_backward, "cuda")(grad, x, 2, saved=saved)
    assert str(on_gpu.value) == str(on_cpu.value)


# The CUDA bindings, checked on this machine without a GPU through FakeCudaArray: they share the
# CPU bindings' shape and parameter checks, so a bad call raises the same error on either device.
needs_cuda_build = pytest.mark.skipif(not fastnn.build_info()["cuda"], reason="built without CUDA")


def fake(a):
    """A FakeCudaArray shaped and typed as the NumPy array `a`, which fails the bindings' memory
    query (expected_runtime_error) once its other checks pass."""
    return FakeCudaArray(a.shape, a.dtype.str)


def null_fake(a):
    """fake(a) at address 0, for which the bindings skip the memory query (as for an empty array)
    and run the checks after it. Only for calls that must fail before a launch."""
    return FakeCudaArray(a.shape, a.dtype.str, address=0)


def zeros(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


WINDOW = ((2, 2), (2, 2), (0, 0))  # kernel_size, stride, padding
X, GRAD, SAVED = zeros(1, 2, 5, 6), zeros(1, 2, 2, 3), zeros(1, 2, 2, 3, dtype=np.int64)
SAME_ERROR_CASES = [
    ("max_pool2d", [zeros(5, 6), *WINDOW, (1, 1), False, False]),
    ("max_pool2d", [zeros(1, 2, 5, 6, dtype=np.float64), *WINDOW, (1, 1), False, False]),
    ("max_pool2d", [zeros(1, 2, 0, 6), *WINDOW, (1, 1), False, False]),
    ("max_pool2d", [X, (0, 2), (2, 2), (0, 0), (1, 1), False, False]),
    ("max_pool2d", [X, (2, 2), (0, 1), (0, 0), (1, 1), False, True]),
    ("max_pool2d", [X, (3, 3), (1, 1), (0, -1), (1, 1), False, False]),
    ("max_pool2d", [X, (3, 3), (1, 1), (2, 2), (1, 1), False, False]),
    ("max_pool2d", [X, *WINDOW, (0, 0), False, False]),
    ("max_pool2d", [X, (3, 3), (1, 1), (0, 0), (3, 3), True, False]),
    ("max_pool2d", [zeros(1, 1, 1, 1), (2**16, 2**16), (1, 1), (2**15, 2**15), (1, 1), False, False]),
    ("max_pool2d_backward", [GRAD, zeros(5, 6), *WINDOW, (1, 1), False, SAVED]),
    ("max_pool2d_backward", [zeros(1, 2, 2, 2), X, *WINDOW, (1, 1), False, SAVED]),
    ("max_pool2d_backward", [zeros(2, 2, 3), X, *WINDOW, (1, 1), False, None]),
    ("max_pool2d_backward", [zeros(1, 2, 2, 3, dtype=np.float16), X, *WINDOW, (1, 1), False, None]),
    ("max_pool2d_backward", [GRAD, X, *WINDOW, (1, 1), False, zeros(1, 2, 3, 2, dtype=np.int64)]),
    ("max_pool2d_backward", [GRAD, X, *WINDOW, (1, 1), False, zeros(6, dtype=np.int64)]),
    ("max_pool2d_backward", [GRAD, X, *WINDOW, (1, 1), False, zeros(1, 2, 2, 3, dtype=np.int32)]),
    ("avg_pool2d", [X, (7, 7), (7, 7), (0, 0), False, True, None]),
    ("avg_pool2d", [X, *WINDOW, False, True, 0]),
    ("avg_pool2d", [zeros(2, 5, 6, dtype=np.int32), *WINDOW, False, True, None]),
    ("avg_pool2d_backward", [zeros(1, 2, 2, 2), X, *WINDOW, False, True, None]),
    ("avg_pool2d_backward", [GRAD, X, *WINDOW, False, True, 0]),
    ("avg_pool2d_backward", [GRAD, zeros(2, 1, 2, 5, 6), *WINDOW, False, True, None]),
    ("avg_pool2d_backward", [GRAD.astype(np.float64), X, *WINDOW, False, True, None]),
]


@needs_cuda_build
@pytest.mark.parametrize("name,args", SAME_ERROR_CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_cuda_binding_raises_the_cpu_error(name, args):
    with pytest.raises((TypeError, ValueError)) as on_host:
        getattr(fastnn._C, name)(*args)
    with pytest.raises(on_host.type) as on_gpu:
        getattr(fastnn._C.cuda, name)(*[null_fake(a) if isinstance(a, np.ndarray) else a for a in args])
    assert str(on_gpu.value) == str(on_host.value)


def transposed(shape, typestr="<f4"):
    """A fake of `shape` whose last two dims are laid out swapped: not C-contiguous."""
    item = int(typestr[-1])
    *outer, h, w = shape
    return FakeCudaArray(shape, typestr, strides=(*[item * h * w * int(np.prod(outer[i + 1:])) for i in
                                                     range(len(outer))], item, item * h))


@needs_cuda_build
@pytest.mark.parametrize("name,args,argument", [
    ("max_pool2d", [transposed(X.shape), *WINDOW, (1, 1), False, False], "input"),
    ("avg_pool2d", [transposed(X.shape), *WINDOW, False, True, None], "input"),
    ("max_pool2d_backward", [transposed(GRAD.shape), null_fake(X), *WINDOW, (1, 1), False, None], "grad_output"),
    ("max_pool2d_backward", [null_fake(GRAD), null_fake(X), *WINDOW, (1, 1), False, transposed(SAVED.shape, "<i8")],
     "saved"),
    ("avg_pool2d_backward", [transposed(GRAD.shape), null_fake(X), *WINDOW, False, True, None], "grad_output"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_cuda_binding_requires_c_contiguous_arrays(name, args, argument):
    with pytest.raises(ValueError, match=f"{name}: {argument} must be C-contiguous"):
        getattr(fastnn._C.cuda, name)(*args)


@needs_cuda_build
def test_cuda_binding_rejects_host_arrays():
    with pytest.raises(TypeError, match=r"max_pool2d: input must be a CUDA array .* got numpy.ndarray"):
        fastnn._C.cuda.max_pool2d(X, *WINDOW, (1, 1), False, False)


@needs_cuda_build
@pytest.mark.parametrize("name,args", [
    ("max_pool2d", [fake(X), *WINDOW, (1, 1), False, True]),
    ("avg_pool2d", [fake(zeros(2, 5, 6)), *WINDOW, True, False, 3]),
    ("max_pool2d_backward", [null_fake(GRAD), fake(X), *WINDOW, (1, 1), False, None]),
    # The arrays before the last one pass at address 0, so that the last reaches the memory query.
    ("max_pool2d_backward", [fake(GRAD), null_fake(X), *WINDOW, (1, 1), False, None]),
    ("max_pool2d_backward", [null_fake(GRAD), null_fake(X), *WINDOW, (1, 1), False, fake(SAVED)]),
    ("avg_pool2d_backward", [null_fake(GRAD), fake(X), *WINDOW, False, True, None]),
    ("avg_pool2d_backward", [fake(GRAD), null_fake(X), *WINDOW, False, True, None]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_cuda_binding_reaches_the_device_with_valid_arrays(name, args):
    error, match = expected_runtime_error()
    with pytest.raises(error, match=match):
        getattr(fastnn._C.cuda, name)(*args)
