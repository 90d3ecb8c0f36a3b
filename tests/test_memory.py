"""Memory: repeated calls leak nothing, the output cache's idle size is bounded, a huge request
raises instead of crashing, and tensors past 2^31 elements index correctly (int64 offsets)."""
import gc
import os

import numpy as np
import pytest

import fastnn
import fastnn.nn.functional as F
from fastnn import _C, ops

PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1 << 20


def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def mem_available():
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def under_address_sanitizer():
    with open("/proc/self/maps") as maps:
        return "libasan" in maps.read()


# ASan keeps freed memory in quarantine and slows every load, so the CI's sanitizer job checks
# these tests' memory safety, and the plain job their RSS and the 2^31-element sizes.
not_under_asan = pytest.mark.skipif(
    under_address_sanitizer(), reason="under ASan: its quarantine holds freed memory, and 8 GiB scans take minutes")


def needs_memory(bytes_needed):
    return pytest.mark.skipif(mem_available() < bytes_needed + 2 * (1 << 30),
                              reason=f"needs {bytes_needed / (1 << 30):.1f} GiB free plus 2 GiB to spare")


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def family_calls():
    """One thunk per op family calling its forward and backward kernels, every array below the
    output cache's 1 MiB threshold so that freed outputs go straight back to the allocator."""
    a, b, w = randn(16, 24), randn(24, 8), randn(8, 24)
    x, kernel = randn(2, 3, 12, 12), randn(4, 3, 3, 3)
    logits, target = randn(32, 10), np.arange(32) % 10
    flat = randn(1000)
    state = [randn(256) for _ in range(4)]

    return {
        "matmul": lambda: ops.matmul_backward(randn(16, 8), a, b),
        "linear": lambda: (ops.linear(a, w, w[:, 0]), ops.linear_backward(randn(16, 8), a, w, w[:, 0])),
        "conv2d": lambda: (ops.conv2d(x, kernel, padding=1),
                           ops.conv2d_backward(randn(2, 4, 12, 12), x, kernel, padding=1)),
        "max_pool2d": lambda: (ops.max_pool2d(x, 2, return_indices=True),
                               ops.max_pool2d_backward(randn(2, 3, 6, 6), x, 2)),
        "avg_pool2d": lambda: (ops.avg_pool2d(x, 3, 1, 1), ops.avg_pool2d_backward(x, x, 3, 1, 1)),
        "activations": lambda: [(getattr(ops, name)(flat), getattr(ops, name + "_backward")(flat, flat))
                                for name in ("relu", "leaky_relu", "sigmoid", "tanh", "gelu")],
        "softmax": lambda: (ops.softmax(logits), ops.log_softmax_backward(logits, logits)),
        "losses": lambda: (ops.cross_entropy_backward(np.array(1, np.float32), logits, target),
                           ops.nll_loss(logits, target, reduction="none")),
        "dropout": lambda: _C.dropout(flat, 0.5, 7),
        "adam_step": lambda: _C.adam_step(*state, None, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1e-3, 1.0),
    }


def steady_rss_growth(call, calls, windows=5):
    """The smallest RSS growth over `windows` equal runs making `calls` calls in all. A leak grows
    RSS in every window; the allocator's one-off growth (a new arena, a page of a pool) does not."""
    for _ in range(500):  # warm-up: allocator pools, NumPy's small-array cache, lazy imports
        call()
    growth = []
    for _ in range(windows):
        gc.collect()
        before = rss()
        for _ in range(calls // windows):
            call()
        gc.collect()
        growth.append(rss() - before)
    return min(growth)


@not_under_asan
@pytest.mark.parametrize("family", sorted(family_calls()))
def test_ten_thousand_calls_leave_rss_flat(family):
    grown = steady_rss_growth(family_calls()[family], 10_000)
    # A leak of one small object (>= 32 bytes) per call would grow RSS by >= 64 kB per window.
    assert grown < 32 * 1024, f"{family}: RSS grew by {grown / 1024:.0f} KiB in each 2,000 calls"


@not_under_asan
def test_training_steps_leave_rss_flat():
    # The autograd tape (Function nodes, saved arrays, gradients) of each step must be freed.
    x, kernel = randn(2, 3, 12, 12), randn(4, 3, 3, 3)
    target = fastnn.tensor(np.array([1, 2]))

    def step():
        inputs, weight = fastnn.tensor(x, requires_grad=True), fastnn.tensor(kernel, requires_grad=True)
        hidden = F.max_pool2d(F.relu(F.conv2d(inputs, weight, padding=1)), 2)
        F.cross_entropy(hidden.reshape(2, -1)[:, :10], target).backward()

    grown = steady_rss_growth(step, 2_000)
    assert grown < 32 * 1024, f"RSS grew by {grown / 1024:.0f} KiB in each 400 training steps"


@not_under_asan
def test_output_cache_idle_size_stays_bounded():
    # 14 outputs of distinct sizes (no reuse), 36 MiB each, each freed at once: the cache keeps at
    # most 256 MiB of them and gives the rest back. Above glibc's largest mmap threshold (32 MiB)
    # every buffer is its own mapping, so RSS shows what is kept, not heap fragmentation.
    gc.collect()
    before = rss()
    for i in range(14):
        y = ops.relu(np.zeros(9 * MiB + 16 * i, np.float32))
        assert y.size == 9 * MiB + 16 * i
        del y
    gc.collect()
    grown = rss() - before
    assert grown < 256 * MiB + 16 * MiB, f"RSS grew by {grown / MiB:.0f} MiB after freeing every output"


# (label, call) whose output would need more memory than any machine has: 2^60 bytes and up,
# or a shape product past int64. Zero-size inputs make such shapes cheap to ask for.
def empty(*shape):
    return np.empty(shape, np.float32)


HUGE_REQUESTS = [
    ("matmul 2^58 x 2^58", lambda: ops.matmul(empty(2**29, 0), empty(0, 2**29)), MemoryError),
    ("matmul past int64", lambda: ops.matmul(empty(2**40, 0), empty(0, 2**40)), ValueError),
    ("batched matmul", lambda: ops.matmul(empty(2**20, 2**20, 0), empty(2**20, 0, 2**20)), MemoryError),
    ("batched matmul past int64", lambda: ops.matmul(empty(2**30, 2**30, 0), empty(2**30, 0, 2**30)), ValueError),
    ("linear", lambda: ops.linear(empty(2**29, 0), empty(2**29, 0)), MemoryError),
    ("linear past int64", lambda: ops.linear(empty(2**40, 0), empty(2**40, 0)), ValueError),
    ("conv2d", lambda: ops.conv2d(empty(2**30, 0, 2**10, 2**10), empty(2**10, 0, 1, 1)), MemoryError),
    ("conv2d past int64", lambda: ops.conv2d(empty(2**40, 0, 2**10, 2**10), empty(2**10, 0, 1, 1)), ValueError),
]


@pytest.mark.parametrize("label,call,error", HUGE_REQUESTS, ids=[r[0] for r in HUGE_REQUESTS])
def test_huge_outputs_raise_instead_of_crashing(label, call, error):
    with pytest.raises(error, match=r"output of shape \(|has more elements than int64 can count"):
        call()
    assert ops.relu(np.ones(4, np.float32)).sum() == 4  # the process is fine afterwards


CONV2D_PARAMETERS_PAST_INT64 = [("padding", dict(padding=2**62)), ("padding", dict(padding=(0, 2**63 - 1))),
                                ("dilation", dict(dilation=2**62)), ("dilation", dict(dilation=(1, 2**63 - 1))),
                                ("dilation", dict(padding="same", dilation=2**62))]


@pytest.mark.parametrize("name,parameters", CONV2D_PARAMETERS_PAST_INT64)
def test_conv2d_parameters_past_int64_raise(name, parameters):
    x, w = np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match=f"conv2d: {name} is too large"):
        ops.conv2d(x, w, **parameters)


# Past 2^31 elements: read-only inputs from np.zeros (calloc'd: reading untouched pages costs no
# memory) with a few values written past 2^31 and at the end, where an int32 offset would have
# wrapped. The ops chosen have small outputs (an 8 GiB output is too slow to write in a test).
BIG = 2**31 + 2**20


def big_input(shape):
    x = np.zeros(shape, np.float32)
    flat = x.reshape(-1)
    flat[-3:] = [-1.0, 2.0, 3.0]
    flat[2**31 + 5] = 7.0
    x.flags.writeable = False
    return x


@not_under_asan
@needs_memory(BIG // 64 * 12)
def test_cross_entropy_past_2_to_the_31_logits():
    # Each row's log-softmax and the logit picked by its target, at offsets past 2^31.
    x = big_input((BIG // 64, 64))
    target = np.zeros(BIG // 64, np.int64)
    row = (2**31 + 5) // 64
    target[row], target[-1] = 5, 63
    loss = ops.cross_entropy(x, target, reduction="none")
    np.testing.assert_allclose(loss[row], np.log(63 + np.exp(7.0)) - 7.0, rtol=1e-5)
    np.testing.assert_allclose(loss[-1], np.log(61 + np.exp([-1.0, 2.0, 3.0]).sum()) - 3.0, rtol=1e-5)
    np.testing.assert_allclose(loss[[0, row - 1, row + 1, -2]], np.log(64), rtol=1e-6)


@not_under_asan
@needs_memory(BIG // 64 * 12)
def test_max_pool2d_on_one_plane_past_2_to_the_31_elements():
    # One (H, W) plane holds every element: in-plane offsets and argmax indices exceed 2^31.
    width = 2**15
    x = big_input((1, 1, BIG // width, width))
    y, indices = ops.max_pool2d(x, 8, return_indices=True)
    row, col = divmod(2**31 + 5, width)
    assert y[0, 0, row // 8, col // 8] == 7.0 and indices[0, 0, row // 8, col // 8] == 2**31 + 5
    np.testing.assert_array_equal(y[0, 0, -1, -2:], [0.0, 3.0])  # -1 loses to the zeros around it
    assert indices[0, 0, -1, -1] == BIG - 1
    assert y[0, 0, 0, 0] == 0.0 and y[0, 0, row // 8, col // 8 + 1] == 0.0


@not_under_asan
@needs_memory(BIG // 16)
def test_avg_pool2d_on_planes_past_2_to_the_31_elements():
    # 32K planes of 256 x 256: plane offsets exceed 2^31.
    x = big_input((BIG // 2**16, 1, 256, 256))
    y = ops.avg_pool2d(x, 4)
    plane, offset = divmod(2**31 + 5, 2**16)
    np.testing.assert_allclose(y[plane, 0, 0, 1], 7.0 / 16)  # offset 5: row 0, column 5
    assert offset == 5
    np.testing.assert_allclose(y[-1, 0, -1, -1], (-1.0 + 2.0 + 3.0) / 16)
    assert y[-1, 0, -1, -2] == 0.0
    assert y[plane, 0, 0, 0] == 0.0 and y[plane - 1, 0, 0, 1] == 0.0


class CopyingArrayLike:
    """An array-like whose conversion makes a new array: the binding's converted array is that
    copy's only owner, so it must live until the kernel has read it."""

    def __init__(self, array):
        self.array = array

    def __array__(self, dtype=None, copy=None):
        return self.array.copy()


def converted_optional_arrays():
    # 64 KiB operands: past NumPy's small-buffer cache, so a freed copy goes back to malloc and
    # the binding's own output can take its place.
    n = 1 << 14
    x, g, weight = randn(n), randn(n, seed=1), randn(n, 2, seed=2)
    state = [np.abs(randn(n, seed=s)) for s in range(5)]
    yield "linear bias", lambda wrap: _C.linear(randn(3, 2), weight, wrap(x))
    yield "conv2d bias", lambda wrap: _C.conv2d(randn(1, 2, 3, 3), weight.reshape(n, 2, 1, 1), wrap(x))
    yield "sigmoid_backward saved", lambda wrap: _C.sigmoid_backward(g, x, wrap(_C.sigmoid(x)))
    yield "tanh_backward saved", lambda wrap: _C.tanh_backward(g, x, wrap(_C.tanh(x)))

    def adam(wrap):
        param, grad, m, v, v_max = (s.copy() for s in state)
        _C.adam_step(param, grad, m, v, wrap(v_max), 0.1, 0.9, 0.999, 1e-8, 0.0, False, 0.1, 1.0)
        return param

    yield "adam_step max_exp_avg_sq", adam


@pytest.mark.parametrize("label,call", list(converted_optional_arrays()),
                         ids=[label for label, _ in converted_optional_arrays()])
def test_converted_optional_arrays_outlive_the_kernel(label, call):
    expected = call(lambda array: array)
    for _ in range(3):
        np.testing.assert_array_equal(call(CopyingArrayLike), expected, err_msg=label)
