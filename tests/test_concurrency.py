"""Kernels under Python threads, after fork(), and under thread limits (fastnn.set_num_threads,
threadpoolctl): results equal serial calls, the GIL is released, nothing hangs or oversubscribes."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastnn
from fastnn import _C, ops


@pytest.fixture
def threads():
    """Sets fastnn's thread count for the test and puts the old one back."""
    before = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(before)


def op_calls():
    """(name, thunk) for every kernel family, forward and backward; each big enough that the
    kernel splits its work over threads."""
    rng = np.random.default_rng(0)

    def randn(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    a, b = randn(160, 130), randn(130, 150)
    x, w, bias = randn(4, 8, 20, 20), randn(12, 8, 3, 3), randn(12)
    y = ops.conv2d(x, w, bias, padding=1)
    images = randn(8, 16, 32, 32)
    logits, target = randn(512, 100), rng.integers(0, 100, 512)
    flat = randn(1 << 18)
    return [
        ("matmul", lambda: ops.matmul(a, b)),
        ("matmul_backward", lambda: ops.matmul_backward(randn_like(a @ b, 1), a, b)),
        ("linear_backward", lambda: ops.linear_backward(randn_like(a @ b, 2), a, b.T, bias=b[0])),
        ("conv2d", lambda: ops.conv2d(x, w, bias, padding=1)),
        ("conv2d_backward", lambda: ops.conv2d_backward(randn_like(y, 3), x, w, bias, padding=1)),
        ("max_pool2d", lambda: ops.max_pool2d(images, 2)),
        ("max_pool2d_backward", lambda: ops.max_pool2d_backward(randn_like(images[..., ::2, ::2], 4), images, 2)),
        ("avg_pool2d", lambda: ops.avg_pool2d(images, 3, 1, 1)),
        ("avg_pool2d_backward", lambda: ops.avg_pool2d_backward(randn_like(images, 5), images, 3, 1, 1)),
        ("relu", lambda: ops.relu(flat)),
        ("gelu_backward", lambda: ops.gelu_backward(flat, flat)),
        ("sigmoid", lambda: ops.sigmoid(flat)),
        ("softmax", lambda: ops.softmax(logits)),
        ("log_softmax_backward", lambda: ops.log_softmax_backward(logits, logits)),
        ("cross_entropy", lambda: ops.cross_entropy(logits, target)),
        ("cross_entropy_backward", lambda: ops.cross_entropy_backward(np.array(1, np.float32), logits, target)),
    ]


def randn_like(array, seed):
    return np.random.default_rng(seed).standard_normal(np.shape(array)).astype(np.float32)


def as_list(result):
    return list(result) if isinstance(result, tuple) else [result]


def test_threads_calling_kernels_at_once_match_serial_calls(threads):
    threads(2)
    calls = op_calls()
    expected = {name: as_list(call()) for name, call in calls}
    work = [calls[i % len(calls)] for i in np.random.default_rng(1).permutation(6 * len(calls))]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda named: (named[0], as_list(named[1]())), work))
    assert len(results) == len(work)
    for name, got in results:
        for got_array, expected_array in zip(got, expected[name], strict=True):
            if expected_array is None:
                assert got_array is None, name
            else:
                np.testing.assert_array_equal(got_array, expected_array, err_msg=name)


def test_kernels_release_the_gil(threads):
    # With a 100 s switch interval the interpreter never takes the GIL from a running thread: the
    # main thread's loop can only run while the worker is inside a call that released the GIL,
    # and the worker cannot set `returned` until the main thread blocks in join().
    threads(1)
    a = np.ones((1024, 1024), np.float32)
    started, returned = threading.Event(), []

    def worker():
        started.set()
        for _ in range(8):
            _C.matmul(a, a)  # the binding itself: nothing in Python before it releases the GIL
        returned.append(True)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(100)
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        started.wait()
        progress = 0
        while progress < 10_000:
            progress += 1
        worker_returned_first = bool(returned)
        thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert progress == 10_000 and not worker_returned_first, "the main thread ran only after matmul returned"


def test_set_num_threads_sets_the_team_size_of_every_thread(threads):
    for n in (1, 2, 3):
        threads(n)
        assert fastnn.get_num_threads() == n
        assert _C._parallel_team_size() == n
        with ThreadPoolExecutor(max_workers=1) as pool:
            assert pool.submit(_C._parallel_team_size).result() == n


def test_threadpoolctl_limits_fastnn_too(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    openmp = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "openmp"]
    assert openmp, "fastnn's OpenMP runtime is not visible to threadpoolctl"
    default = openmp[0]["num_threads"]  # OMP_NUM_THREADS or the core count
    if default < 2:
        pytest.skip("OpenMP's default is 1 thread here: no lower limit to set")
    threads(default + 1)
    a = np.random.default_rng(0).standard_normal((300, 300)).astype(np.float32)
    expected = ops.matmul(a, a)
    with threadpoolctl.threadpool_limits(default - 1):
        assert fastnn.get_num_threads() == default - 1
        assert _C._parallel_team_size() == default - 1
        np.testing.assert_allclose(ops.matmul(a, a), expected, rtol=1e-5, atol=1e-4)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):  # NumPy's BLAS only
        assert _C._parallel_team_size() == default + 1
    assert _C._parallel_team_size() == default + 1


def run_isolated(code, timeout=60):
    """Runs `code` in a fresh interpreter in its own process group; a hang (in it or in any child
    it forked) fails the test after `timeout` seconds instead of hanging pytest."""
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"hung for {timeout} s (killed); output:\n{output}")
    assert process.returncode == 0, output
    return output


FORK_SETUP = """
    import os, sys
    import numpy as np
    import fastnn
    from fastnn import _C, ops

    fastnn.set_num_threads(2)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 300)).astype(np.float32)
    x, w = rng.standard_normal((4, 8, 24, 24)).astype(np.float32), rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    flat = rng.standard_normal(1 << 20).astype(np.float32)

    def kernels():
        return [ops.matmul(a, a.T), ops.conv2d(x, w, padding=1), *ops.conv2d_backward(x, x, w, padding=1)[:2],
                ops.max_pool2d(x, 2), ops.relu(flat), ops.softmax(a), ops.cross_entropy(a, np.arange(400) % 300)]

    def matches(results, expected):
        return all(np.allclose(r, e, rtol=1e-5, atol=1e-4) for r, e in zip(results, expected, strict=True))

    expected = kernels()  # the parent's OpenMP pool is now running
    assert _C._parallel_team_size() == 2
"""


def test_os_fork_child_runs_kernels_serially_and_exits():
    output = run_isolated(FORK_SETUP + """
    pid = os.fork()
    if pid == 0:
        try:
            ok = _C._parallel_team_size() == 1 and fastnn.get_num_threads() == 1 and matches(kernels(), expected)
        finally:
            sys.stdout.flush()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    assert _C._parallel_team_size() == 2 and matches(kernels(), expected)  # the parent keeps its threads
    print("fork ok")
    """)
    assert "fork ok" in output


def test_multiprocessing_fork_workers_run_kernels():
    output = run_isolated(FORK_SETUP + """
    import multiprocessing

    def work(i):
        return _C._parallel_team_size(), matches(kernels(), expected)

    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(work, range(4), chunksize=1)
    assert results == [(1, True)] * 4, results
    print("pool ok")
    """)
    assert "pool ok" in output


def test_child_forked_before_any_parallel_kernel_keeps_its_threads():
    # libgomp is safe to fork until it has started threads, so the serial fallback waits for that.
    output = run_isolated("""
    import os
    import fastnn
    from fastnn import _C

    fastnn.set_num_threads(2)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if _C._parallel_team_size() == 2 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    print("early fork ok")
    """)
    assert "early fork ok" in output
