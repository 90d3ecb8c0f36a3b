"""Property-based tests: hypothesis draws shapes, parameters, layouts and values for every op in
fastnn.ops, and compares forward and backward with the float64 references in tests/reference.py
(tolerances from opcheck, scaled by the longest sum behind one output). It also draws invalid
arguments, which must raise ValueError/TypeError/IndexError naming the argument, never crash.

Each example also draws the SIMD kernel set and the thread count it runs with, so every ISA is
covered without running every example three times.

Reproducing a failure: hypothesis prints the falsifying example (every draw, the seeds of the
arrays' values included) and a `@reproduce_failure(...)` line to paste above the test. Profiles
(conftest.py): the default "ci" (100 examples per test, well under a minute) is derandomized, so
a rerun draws the same examples; a long campaign,
    HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py
(1000 examples per test) draws fresh ones from a seed printed at the end of the run, and
`--hypothesis-seed=N` reruns it exactly.
"""
import re
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, strategies as st

import fastnn
import reference
from conftest import ISAS
from opcheck import _layout_variants, compare_with_reference, tolerance

# Values: standard normal; magnitudes spread over 1e-3..1e4 per element; small integers, so
# max-pool windows and relu inputs have ties and exact zeros. Ops without products also get
# magnitudes up to 1e30 (huge logits); products of those would overflow float32.
VALUES = ["normal", "wide", "ties"]
NO_PRODUCTS = VALUES + ["huge"]
LAYOUTS = ["contiguous", "fortran", "strided", "unaligned", "readonly", "reversed", "broadcast"]
# Sizes: 0, 1, odd, off every vector width (4, 8, 16) and GEMM tile (MR 4..12, NR 8..32).
SMALL = st.integers(0, 9)


@contextmanager
def kernels(isa, threads):
    """Runs the body with this SIMD kernel set and thread count, then restores the defaults."""
    default_isa, default_threads = fastnn.build_info()["isa"], fastnn.get_num_threads()
    fastnn._C._set_isa(isa)
    fastnn.set_num_threads(threads)
    try:
        yield
    finally:
        fastnn._C._set_isa(default_isa)
        fastnn.set_num_threads(default_threads)


def draw_kernels(data):
    return kernels(data.draw(st.sampled_from(ISAS), "isa"), data.draw(st.integers(1, 2), "threads"))


def in_layout(a, layout):
    """The same values in another memory layout (negative strides for 'reversed'), except for
    'broadcast': the first entry along dim 0 repeated with a zero stride."""
    if layout == "contiguous" or a.ndim == 0 or a.size == 0:
        return a
    if layout == "reversed":
        index = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[index])[index]
    if layout == "broadcast":
        return np.broadcast_to(a[:1], a.shape)
    return dict(_layout_variants(a))[layout]


@st.composite
def float32_arrays(draw, shape, values=VALUES):
    """A float32 array of `shape` with drawn values (from a drawn seed) and layout."""
    kind = draw(st.sampled_from(values))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "ties":
        a = rng.integers(-2, 3, size=shape)
    elif kind in ("wide", "huge"):
        a = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 4 if kind == "wide" else 30, size=shape)
    else:
        a = rng.standard_normal(shape)
    return in_layout(a.astype(np.float32), draw(st.sampled_from(LAYOUTS)))


def grad_outputs(data):
    """make_grad_output for compare_with_reference: normal values in a drawn layout."""
    return lambda shape: data.draw(float32_arrays(shape, values=["normal"]), "grad_output")


def randn(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def check(data, name, arrays, kwargs, reduction, saved=None):
    """compare_with_reference; returns (grad_output, grads)."""
    return compare_with_reference(name, arrays, kwargs, tolerance(reduction), grad_outputs(data), saved)[:2]


def test_every_op_has_a_property_test():
    forward_ops = {name for name in fastnn.ops.__all__ if not name.endswith("_backward")}
    tested = {name[len("test_"):] for name in globals() if name.startswith("test_")}
    covered = forward_ops & {op for test in tested for op in test.split("_or_")}
    assert covered == forward_ops, f"ops without a property test: {sorted(forward_ops - covered)}"


# ---- gemm ----

@given(st.data())
def test_matmul(data):
    form = data.draw(st.sampled_from(["2d", "batched", "batched @ 2d"]), "form")
    m, n = (data.draw(st.integers(0, 40) | st.integers(41, 80)) for _ in range(2))
    k = data.draw(st.integers(0, 40) | st.integers(250, 300), "K")  # past KC = 256 too
    batch = () if form == "2d" else (data.draw(st.integers(0, 3), "batch"),)
    a = data.draw(float32_arrays(batch + (m, k)), "a")
    b = data.draw(float32_arrays((batch if form == "batched" else ()) + (k, n)), "b")
    shared_b_rows = m * (batch[0] if form == "batched @ 2d" else 1)
    with draw_kernels(data):
        check(data, "matmul", [a, b], {}, reduction=max(k, shared_b_rows))


@given(st.data())
def test_linear(data):
    lead = tuple(data.draw(st.lists(SMALL, max_size=2), "leading dims"))
    in_features, out_features = data.draw(st.integers(0, 40)), data.draw(st.integers(0, 40))
    x = data.draw(float32_arrays(lead + (in_features,)), "input")
    w = data.draw(float32_arrays((out_features, in_features)), "weight")
    b = data.draw(st.none() | float32_arrays((out_features,)), "bias")
    with draw_kernels(data):
        check(data, "linear", [x, w, b], {}, reduction=max(in_features, int(np.prod(lead))))


def test_linear_without_features():
    # Regression: rows were inferred with reshape(-1, 0), which NumPy cannot do (found by test_linear).
    x, w, b = np.zeros((2, 3, 0), np.float32), np.zeros((4, 0), np.float32), randn(4)
    np.testing.assert_array_equal(fastnn.ops.linear(x, w, b), np.broadcast_to(b, (2, 3, 4)))
    grad_x, grad_w, grad_b = fastnn.ops.linear_backward(np.ones((2, 3, 4), np.float32), x, w, b)
    assert grad_x.shape == x.shape and grad_w.shape == w.shape and np.all(grad_b == 6)


# ---- conv2d ----

def output_size(size, kernel, stride, padding, dilation):
    return (size + padding - dilation * (kernel - 1) - 1) // stride + 1


@given(st.data())
def test_conv2d(data):
    # Half the examples take the Winograd path (3x3, stride 1, groups 1, >= 8 channels each way, padding
    # <= 2), which independent draws would almost never meet.
    winograd = data.draw(st.booleans(), "Winograd shape")
    groups = 1 if winograd else data.draw(st.integers(1, 3), "groups")
    per_group = st.integers(8, 20) if winograd else st.integers(0, 9)
    c_in, c_out = groups * data.draw(per_group, "C_in / groups"), groups * data.draw(per_group, "C_out / groups")
    kernel = (3, 3) if winograd else data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), "kernel")
    dilation = (1, 1) if winograd else data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), "dilation")
    pads = st.integers(0, 2 if winograd else 3)
    padding = data.draw(st.sampled_from(["same", "valid"]) | pads | st.tuples(pads, pads), "padding")
    strides = st.integers(1, 3) | st.tuples(st.integers(1, 3), st.integers(1, 3))
    stride = 1 if winograd or padding == "same" else data.draw(strides, "stride")
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if padding == "same":
        total_padding = [s - 1 for s in spans]
    else:
        total_padding = [0, 0] if padding == "valid" else [2 * p for p in np.broadcast_to(padding, 2)]
    # The smallest plane the dilated kernel fits once padded (at least 1), plus a few rows.
    h, w = (max(1, span - pad) + data.draw(st.integers(0, 8)) for span, pad in zip(spans, total_padding))
    n = data.draw(st.integers(0, 3), "N")
    x = data.draw(float32_arrays((n, c_in, h, w)), "input")
    weight = data.draw(float32_arrays((c_out, c_in // groups) + kernel), "weight")
    bias = data.draw(st.none() | float32_arrays((c_out,)), "bias")
    out_plane = np.prod([output_size(*args) for args in zip((h, w), kernel, np.broadcast_to(stride, 2),
                                                            total_padding, dilation)])
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    with draw_kernels(data):
        grad_output, grads = check(data, "conv2d", [x, weight, bias], kwargs,
                                   reduction=max(c_in // groups * kernel[0] * kernel[1], n * out_plane))
        # Gradients not needed are None and the others unchanged.
        needs = data.draw(st.tuples(st.booleans(), st.booleans(), st.booleans()), "needs_input_grad")
        some = fastnn.ops.conv2d_backward(grad_output, x, weight, bias, **kwargs, needs_input_grad=needs)
        for need, got, full in zip(needs, some, grads):
            if need and full is not None:
                np.testing.assert_array_equal(got, full)
            else:
                assert got is None


# ---- pooling ----

def draw_pool_input(data, kernel, padding, dilation=(1, 1)):
    """(C, H, W) or (N, C, H, W), each plane at least as large as the padded dilated kernel."""
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    plane = tuple(max(1, span - 2 * p) + data.draw(st.integers(0, 8)) for span, p in zip(spans, padding))
    batch = tuple(data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=2), "batch dims"))
    return data.draw(float32_arrays(batch + plane, NO_PRODUCTS), "input")


def draw_window(data):
    kernel = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), "kernel_size")
    stride = data.draw(st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4)), "stride")
    padding = data.draw(st.tuples(st.integers(0, kernel[0] // 2), st.integers(0, kernel[1] // 2)), "padding")
    return kernel, stride, padding


@given(st.data())
def test_max_pool2d(data):
    kernel, stride, padding = draw_window(data)
    dilation = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), "dilation")
    x = draw_pool_input(data, kernel, padding, dilation)
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                  ceil_mode=data.draw(st.booleans(), "ceil_mode"))
    with draw_kernels(data):
        # An input is a tap of at most KH * KW windows, so its gradient sums that many terms.
        check(data, "max_pool2d", [x], kwargs, reduction=kernel[0] * kernel[1])
        out, indices = fastnn.ops.max_pool2d(x, **kwargs, return_indices=True)
        np.testing.assert_array_equal(indices, reference.max_pool2d(x, **kwargs, return_indices=True)[1])
        grad = data.draw(float32_arrays(out.shape), "grad_output for saved indices")
        np.testing.assert_array_equal(fastnn.ops.max_pool2d_backward(grad, x, **kwargs, saved=indices)[0],
                                      fastnn.ops.max_pool2d_backward(grad, x, **kwargs)[0])


@given(st.data())
def test_avg_pool2d(data):
    kernel, stride, padding = draw_window(data)
    x = draw_pool_input(data, kernel, padding)
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=data.draw(st.booleans(), "ceil_mode"),
                  count_include_pad=data.draw(st.booleans(), "count_include_pad"),
                  divisor_override=data.draw(st.none() | st.integers(-5, 20).filter(bool), "divisor_override"))
    with draw_kernels(data):
        check(data, "avg_pool2d", [x], kwargs, reduction=kernel[0] * kernel[1])


# ---- activations ----

ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu"]


@given(st.data())
def test_relu_or_leaky_relu_or_sigmoid_or_tanh_or_gelu(data):
    name = data.draw(st.sampled_from(ACTIVATIONS), "op")
    # Up to 4 dims of 0..9, or one long row (the vector loop's bulk and its tail).
    shape = data.draw(st.lists(SMALL, max_size=4).map(tuple) | st.tuples(st.integers(10, 300)), "shape")
    x = data.draw(float32_arrays(shape, NO_PRODUCTS), "input")
    kwargs, saved = {}, None
    if name == "leaky_relu":
        kwargs["negative_slope"] = data.draw(st.floats(-2, 2, width=32), "negative_slope")
    elif name == "gelu":
        kwargs["approximate"] = data.draw(st.sampled_from(["none", "tanh"]), "approximate")
    with draw_kernels(data):
        if name in ("sigmoid", "tanh") and data.draw(st.booleans(), "saved"):
            saved = getattr(fastnn.ops, name)(x)
        check(data, name, [x], kwargs, reduction=1, saved=saved)


# ---- softmax and losses ----

@given(st.data())
def test_softmax_or_log_softmax(data):
    name = data.draw(st.sampled_from(["softmax", "log_softmax"]), "op")
    shape = data.draw(st.lists(SMALL, min_size=1, max_size=4).map(tuple) | st.tuples(st.integers(10, 300)), "shape")
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), "dim")
    x = data.draw(float32_arrays(shape, NO_PRODUCTS), "input")
    with draw_kernels(data):
        saved = getattr(fastnn.ops, name)(x, dim=dim) if data.draw(st.booleans(), "saved") else None
        check(data, name, [x], dict(dim=dim), reduction=shape[dim], saved=saved)


@given(st.data())
def test_nll_loss_or_cross_entropy(data):
    name = data.draw(st.sampled_from(["nll_loss", "cross_entropy"]), "op")
    classes = data.draw(st.integers(1, 12) | st.integers(13, 100), "classes")
    # (C,), (N, C) or (N, C, d1, ...): targets have the input's shape without C.
    positions = data.draw(st.none() | st.lists(st.integers(0, 6), min_size=1, max_size=3).map(tuple), "N, d1, ...")
    shape = (classes,) if positions is None else positions[:1] + (classes,) + positions[1:]
    target_shape = () if positions is None else positions
    x = data.draw(float32_arrays(shape, NO_PRODUCTS), "input")
    ignore_index = data.draw(st.sampled_from([-100]) | st.integers(-3, classes + 3), "ignore_index")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "target seed"))
    target = rng.integers(0, classes, size=target_shape)
    target = np.where(rng.random(target_shape) < data.draw(st.floats(0, 1), "ignored fraction"), ignore_index, target)
    weight = data.draw(st.none() | float32_arrays((classes,), values=["normal"]).map(lambda w: np.abs(w) + 0.1),
                       "weight")
    kwargs = dict(ignore_index=ignore_index, reduction=data.draw(st.sampled_from(["mean", "sum", "none"]), "reduction"))
    if name == "cross_entropy":
        kwargs["label_smoothing"] = data.draw(st.sampled_from([0.0]) | st.floats(0, 1), "label_smoothing")
    with draw_kernels(data):
        check(data, name, [x, target, weight], kwargs, reduction=max(classes, target.size))


# ---- dropout (nn.functional: its kernel draws a mask, so there is no reference to compare with) ----

@given(st.data())
def test_dropout_statistics(data):
    shape = data.draw(st.lists(SMALL, max_size=3).map(tuple) | st.tuples(st.integers(10, 5000)), "shape")
    p = data.draw(st.sampled_from([0.0, 1.0]) | st.floats(0, 1, exclude_max=True), "p")
    x = data.draw(float32_arrays(shape, values=["normal"]), "input")
    fastnn.manual_seed(data.draw(st.integers(0, 2**32 - 1), "manual_seed"))
    input = fastnn.Tensor(x, requires_grad=True)
    with draw_kernels(data):
        output = fastnn.nn.functional.dropout(input, p)
        output.sum().backward()
    y, grad = output.detach().numpy(), input.grad.numpy()
    # The gradient of the sum is the mask scaled by 1/(1-p): the backward zeroes what the forward did.
    kept = grad != 0
    assert np.all(grad[kept] == np.float32(1 / (1 - p))) if p < 1 else not kept.any()
    np.testing.assert_allclose(y, np.where(kept, x / (1 - p) if p < 1 else 0, 0), rtol=1e-6, atol=0)
    # The number zeroed is Binomial(size, p): within 5 standard deviations (one failure in 3.5 million).
    dropped, size = np.count_nonzero(~kept), x.size
    assert abs(dropped - p * size) <= 5 * np.sqrt(size * p * (1 - p)) + 1, f"{dropped} of {size} zeroed with p={p}"


def test_dropout_of_an_unaligned_input():
    # Regression: the unaligned view reached the kernel, which rejects it (found by test_dropout_statistics).
    x = dict(_layout_variants(np.ones(10, np.float32)))["unaligned"]
    y = fastnn.nn.functional.dropout(fastnn.Tensor(x), 0.5).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0}


# ---- invalid arguments: an error naming the argument, never a crash ----

@st.composite
def wrong_dtypes(draw, shape):
    """An array of `shape` in a dtype no kernel takes."""
    dtype = draw(st.sampled_from([np.float64, np.float16, np.int32, np.int64, np.bool_, np.complex64]))
    return np.zeros(shape, dtype=dtype)


def invalid_calls():
    """(op name, argument it must name, expected exception types, call) for drawn bad inputs."""
    ops = fastnn.ops
    dims = st.lists(st.integers(1, 4), min_size=0, max_size=5).map(tuple)
    # Where an int or a pair of ints belongs (window sizes, strides, padding, dilation): a TypeError,
    # or a ValueError for a pair holding something else.
    not_ints = st.floats() | st.none() | st.tuples(st.integers(1, 3), st.floats())
    positive = st.integers(1, 4)
    cases = [
        # ranks
        st.tuples(dims.filter(lambda s: len(s) not in (2, 3))).map(
            lambda s: ("matmul", "a", ValueError, lambda: ops.matmul(randn(*s[0]), randn(3, 2)))),
        st.tuples(dims.filter(lambda s: len(s) != 4)).map(
            lambda s: ("conv2d", "input", ValueError, lambda: ops.conv2d(randn(*s[0]), randn(2, 1, 1, 1)))),
        st.tuples(dims.filter(lambda s: len(s) != 4)).map(
            lambda s: ("conv2d", "weight", ValueError, lambda: ops.conv2d(randn(1, 1, 3, 3), randn(*s[0])))),
        st.tuples(st.sampled_from(["max_pool2d", "avg_pool2d"]), dims.filter(lambda s: len(s) not in (3, 4))).map(
            lambda s: (s[0], "input", ValueError, lambda: getattr(ops, s[0])(randn(*s[1]), 1))),
        st.tuples(st.sampled_from(["nll_loss", "cross_entropy"])).map(
            lambda s: (s[0], "input", ValueError, lambda: getattr(ops, s[0])(randn(), np.array(0)))),
        # mismatched sizes
        st.tuples(positive, positive, positive, positive).filter(lambda s: s[1] != s[2]).map(
            lambda s: ("matmul", "b", ValueError, lambda: ops.matmul(randn(s[0], s[1]), randn(s[2], s[3])))),
        st.tuples(positive, positive, positive).filter(lambda s: s[0] != s[1]).map(
            lambda s: ("linear", "in_features", ValueError, lambda: ops.linear(randn(2, s[0]), randn(s[2], s[1])))),
        st.tuples(positive, positive).filter(lambda s: s[0] != s[1]).map(
            lambda s: ("linear", "bias", ValueError, lambda: ops.linear(randn(2, 3), randn(s[0], 3), randn(s[1])))),
        st.tuples(positive, positive).filter(lambda s: s[0] != s[1]).map(
            lambda s: ("conv2d", "channels", ValueError,
                       lambda: ops.conv2d(randn(1, s[0], 5, 5), randn(2, s[1], 3, 3)))),
        st.tuples(st.integers(2, 5), st.integers(1, 12)).filter(lambda s: s[1] % s[0]).map(
            lambda s: ("conv2d", "groups", ValueError,
                       lambda: ops.conv2d(randn(1, s[0] * 2, 5, 5), randn(s[1], 2, 1, 1), groups=s[0]))),
        st.tuples(positive, positive).filter(lambda s: s[0] != s[1]).map(
            lambda s: ("conv2d", "bias", ValueError, lambda: ops.conv2d(randn(1, 1, 5, 5), randn(s[0], 1, 3, 3),
                                                                        randn(s[1])))),
        # kernel larger than the padded input
        st.tuples(st.integers(1, 4), st.integers(0, 2), st.integers(1, 3)).map(
            lambda s: ("conv2d", "padded input", ValueError,
                       lambda: ops.conv2d(randn(1, 1, s[0], 5), randn(1, 1, s[0] + 2 * s[1] + 1, 1), padding=s[1]))),
        st.tuples(st.sampled_from(["max_pool2d", "avg_pool2d"]), st.integers(1, 6)).map(
            lambda s: (s[0], "padded input", ValueError,
                       lambda: getattr(ops, s[0])(randn(1, 1, s[1], 9), (s[1] + 1, 1)))),
        # parameter values
        st.tuples(st.sampled_from(["stride", "dilation"]), st.integers(-3, 0)).map(
            lambda s: ("conv2d", s[0], ValueError, lambda: ops.conv2d(randn(1, 1, 5, 5), randn(1, 1, 3, 3),
                                                                      **{s[0]: s[1]}))),
        st.tuples(st.integers(-3, -1)).map(
            lambda s: ("conv2d", "padding", ValueError, lambda: ops.conv2d(randn(1, 1, 5, 5), randn(1, 1, 3, 3),
                                                                           padding=s[0]))),
        st.tuples(st.integers(2, 3)).map(
            lambda s: ("conv2d", "stride", ValueError, lambda: ops.conv2d(randn(1, 1, 5, 5), randn(1, 1, 3, 3),
                                                                          stride=s[0], padding="same"))),
        st.tuples(st.text(max_size=6).filter(lambda p: p not in ("same", "valid"))).map(
            lambda s: ("conv2d", "padding", ValueError, lambda: ops.conv2d(randn(1, 1, 5, 5), randn(1, 1, 3, 3),
                                                                           padding=s[0]))),
        st.tuples(st.integers(-3, 0)).map(
            lambda s: ("conv2d", "groups", ValueError, lambda: ops.conv2d(randn(1, 2, 5, 5), randn(2, 2, 1, 1),
                                                                          groups=s[0]))),
        st.tuples(st.sampled_from(["max_pool2d", "avg_pool2d"]), st.sampled_from(["kernel_size", "stride"]),
                  st.integers(-3, 0)).map(
            lambda s: (s[0], s[1], ValueError, lambda: getattr(ops, s[0])(randn(1, 1, 5, 5), **{
                "kernel_size": 2, s[1]: (s[2], 1)}))),
        st.tuples(st.sampled_from(["max_pool2d", "avg_pool2d"]), st.integers(-3, -1)).map(
            lambda s: (s[0], "padding", ValueError, lambda: getattr(ops, s[0])(randn(1, 1, 5, 5), 3, padding=s[1]))),
        st.tuples(st.sampled_from(["max_pool2d", "avg_pool2d"]), st.integers(1, 4)).map(
            lambda s: (s[0], "padding", ValueError,
                       lambda: getattr(ops, s[0])(randn(1, 1, 9, 9), 2 * s[1] - 1, padding=s[1]))),
        st.tuples(st.integers(-3, 0)).map(
            lambda s: ("max_pool2d", "dilation", ValueError, lambda: ops.max_pool2d(randn(1, 1, 5, 5), 2,
                                                                                    dilation=s[0]))),
        st.just(("avg_pool2d", "divisor_override", ValueError,
                 lambda: ops.avg_pool2d(randn(1, 1, 5, 5), 2, divisor_override=0))),
        st.tuples(st.text(max_size=6).filter(lambda a: a not in ("none", "tanh"))).map(
            lambda s: ("gelu", "approximate", ValueError, lambda: ops.gelu(randn(3), approximate=s[0]))),
        st.tuples(dims.filter(len), st.integers(0, 3)).map(
            lambda s: (("softmax", "log_softmax")[s[1] % 2], "dim", (ValueError, IndexError),
                       lambda: getattr(ops, ("softmax", "log_softmax")[s[1] % 2])(randn(*s[0]),
                                                                                  dim=len(s[0]) + s[1]))),
        st.tuples(st.sampled_from(["stride", "padding", "dilation"]), not_ints).map(
            lambda s: ("conv2d", s[0], (TypeError, ValueError), lambda: ops.conv2d(randn(1, 1, 5, 5), randn(1, 1, 3, 3),
                                                                                   **{s[0]: s[1]}))),
        st.tuples(st.sampled_from(["max_pool2d", "avg_pool2d"]), st.sampled_from(["kernel_size", "stride", "padding"]),
                  not_ints).filter(lambda s: s[1:] != ("stride", None)).map(  # None: stride = kernel_size
            lambda s: (s[0], s[1], (TypeError, ValueError), lambda: getattr(ops, s[0])(randn(1, 1, 5, 5), **{
                "kernel_size": 2, s[1]: s[2]}))),
        st.tuples(st.sampled_from(["softmax", "log_softmax"]), st.floats() | st.text(max_size=3) | st.none()).map(
            lambda s: (s[0], "dim", TypeError, lambda: getattr(ops, s[0])(randn(2, 3), dim=s[1]))),
        st.tuples(st.text(max_size=3) | st.none() | st.just([0.1])).map(
            lambda s: ("leaky_relu", "negative_slope", TypeError, lambda: ops.leaky_relu(randn(3), s[0]))),
        st.tuples(st.sampled_from(["nll_loss", "cross_entropy"]), st.text(max_size=6).filter(
            lambda r: r not in ("mean", "sum", "none"))).map(
            lambda s: (s[0], "reduction", ValueError, lambda: getattr(ops, s[0])(randn(2, 3), np.zeros(2, int),
                                                                                 reduction=s[1]))),
        st.tuples(st.floats(allow_nan=True).filter(lambda v: not 0 <= v <= 1)).map(
            lambda s: ("cross_entropy", "label_smoothing", ValueError,
                       lambda: ops.cross_entropy(randn(2, 3), np.zeros(2, int), label_smoothing=s[0]))),
        # target ranges and shapes
        st.tuples(st.sampled_from(["nll_loss", "cross_entropy"]), st.integers(1, 5),
                  st.integers(-10, -1) | st.integers(0, 10)).filter(lambda s: not 0 <= s[2] < s[1]).map(
            lambda s: (s[0], "target", (ValueError, IndexError),
                       lambda: getattr(ops, s[0])(randn(3, s[1]), np.array([0, s[2], 0])))),
        st.tuples(st.sampled_from(["nll_loss", "cross_entropy"]), dims.filter(lambda s: s != (3,))).map(
            lambda s: (s[0], "target", ValueError, lambda: getattr(ops, s[0])(randn(3, 4), np.zeros(s[1], int)))),
        st.tuples(st.sampled_from(["nll_loss", "cross_entropy"]), st.integers(1, 8).filter(lambda c: c != 4)).map(
            lambda s: (s[0], "weight", ValueError,
                       lambda: getattr(ops, s[0])(randn(3, 4), np.zeros(3, int), randn(s[1])))),
        st.tuples(st.sampled_from(["nll_loss", "cross_entropy"]),
                  st.sampled_from([np.float32, np.float64, np.bool_, np.complex64])).map(
            lambda s: (s[0], "target", TypeError, lambda: getattr(ops, s[0])(randn(3, 4), np.zeros(3, s[1])))),
        # dtypes
        st.tuples(st.sampled_from(ACTIVATIONS + ["softmax", "log_softmax"]), wrong_dtypes((2, 3))).map(
            lambda s: (s[0], "input", TypeError, lambda: getattr(ops, s[0])(s[1]))),
        st.tuples(st.sampled_from(["a", "b"]), wrong_dtypes((3, 3))).map(
            lambda s: ("matmul", s[0], TypeError,
                       lambda: ops.matmul(**{"a": randn(3, 3), "b": randn(3, 3), s[0]: s[1]}))),
        st.sampled_from([("input", (1, 2, 3, 3)), ("weight", (2, 2, 1, 1)), ("bias", (2,))]).flatmap(
            lambda s: st.tuples(st.just(s[0]), wrong_dtypes(s[1]))).map(
            lambda s: ("conv2d", s[0], TypeError, lambda: ops.conv2d(**{
                "input": randn(1, 2, 3, 3), "weight": randn(2, 2, 1, 1), "bias": randn(2), s[0]: s[1]}))),
        # backward: grad_output of the wrong shape
        st.tuples(st.sampled_from(ACTIVATIONS + ["softmax", "log_softmax"]),
                  st.integers(1, 5).filter(lambda n: n != 3)).map(
            lambda s: (s[0] + "_backward", "grad_output", ValueError,
                       lambda: getattr(ops, s[0] + "_backward")(randn(2, s[1]), randn(2, 3)))),
        st.tuples(st.sampled_from(["max_pool2d", "avg_pool2d"]), st.integers(1, 5).filter(lambda n: n != 2)).map(
            lambda s: (s[0] + "_backward", "grad_output", ValueError,
                       lambda: getattr(ops, s[0] + "_backward")(randn(1, 1, 2, s[1]), randn(1, 1, 4, 4), 2))),
        st.tuples(st.integers(1, 5).filter(lambda n: n != 3)).map(
            lambda s: ("conv2d_backward", "grad_output", ValueError,
                       lambda: ops.conv2d_backward(randn(1, 1, 3, s[0]), randn(1, 1, 5, 5), randn(1, 1, 3, 3)))),
        st.tuples(st.integers(1, 5).filter(lambda n: n != 2)).map(
            lambda s: ("matmul_backward", "grad_output", ValueError,
                       lambda: ops.matmul_backward(randn(3, s[0]), randn(3, 4), randn(4, 2)))),
        st.tuples(st.integers(1, 5).filter(lambda n: n != 2)).map(
            lambda s: ("linear_backward", "grad_output", ValueError,
                       lambda: ops.linear_backward(randn(3, s[0]), randn(3, 4), randn(2, 4)))),
        st.tuples(st.sampled_from(["nll_loss", "cross_entropy"]), st.integers(1, 5).filter(lambda n: n != 3)).map(
            lambda s: (s[0] + "_backward", "grad_output", ValueError,
                       lambda: getattr(ops, s[0] + "_backward")(randn(s[1]), randn(3, 4), np.zeros(3, int),
                                                                 reduction="none"))),
        # saved indices of max_pool2d_backward: shape, dtype, range
        st.tuples(st.sampled_from([np.int32, np.float32]) | st.just(np.int64), st.integers(-5, 40)).filter(
            lambda s: s[0] != np.int64 or not -1 <= s[1] < 16).map(
            lambda s: ("max_pool2d_backward", "saved", (TypeError, ValueError),
                       lambda: ops.max_pool2d_backward(randn(1, 1, 2, 2), randn(1, 1, 4, 4), 2,
                                                       saved=np.full((1, 1, 2, 2), s[1], s[0])))),
    ]
    return st.one_of(cases)


@given(invalid_calls())
def test_invalid_arguments_raise_an_error_naming_them(case):
    op, argument, errors, call = case
    with pytest.raises(errors) as raised:
        call()
    message = str(raised.value)
    assert message.startswith(f"{op}:"), f"the message should start with '{op}:', got {message!r}"
    assert re.search(rf"\b{re.escape(argument)}\b", message), f"the message should name {argument!r}: {message!r}"
