import json

import numpy as np
import pytest

import fastnn
from fastnn import bench, bench_cuda


def test_bench_reports_each_case_against_the_limit_measured_next_to_it(tmp_path, capsys):
    path = tmp_path / "results.json"
    bench.main(["--quick", "--ops", "softmax", "--threads", "1", "--repeats", "1", "--json", str(path)])
    out = capsys.readouterr().out
    (row,) = json.loads(path.read_text())["results"]
    assert row["op"] == "cross_entropy fwd+bwd" and row["unit"] == "GB/s"
    fastnn_rate = row["libraries"]["fastnn"]["rate"]
    peak = row["peak"]
    assert peak["copy_gbps"] == max(peak["copy_regular_gbps"], peak["copy_streaming_gbps"]) > 0
    assert row["percent_of_peak"] == pytest.approx(100 * fastnn_rate / peak["copy_gbps"])
    for library in row["libraries"].values():
        assert library["fastnn_ratio"] == pytest.approx(fastnn_rate / library["rate"])
    assert f"copy bandwidth {peak['copy_gbps']:.1f}-{peak['copy_gbps']:.1f} GB/s" in out
    assert "| cross_entropy fwd+bwd | 4096x1000 |" in out


def test_bench_puts_the_thread_counts_back():
    threads = fastnn.get_num_threads()
    bench.main(["--quick", "--ops", "softmax", "--threads", "1", "--repeats", "1"])
    assert fastnn.get_num_threads() == threads
    fastnn.set_num_threads(threads + 1)  # no OpenMP limit of 1 left behind caps it
    try:
        assert fastnn.get_num_threads() == threads + 1
    finally:
        fastnn.set_num_threads(threads)


def test_bench_rejects_unknown_ops(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--ops", "matmul,nope"])
    assert "unknown op(s) ['nope']" in capsys.readouterr().err


def test_flop_rows_are_rated_against_the_best_fma_peak_of_the_run(monkeypatch):
    readings = iter([390.0, 400.0, 200.0, 150.0])  # before and after each case; the second case's disturbed
    monkeypatch.setattr(fastnn._C, "_fma_peak_gflops", lambda: next(readings))
    first, second = bench.run_cases(list(bench.matmul_cases([16, 32])), repeats=1)
    assert (first["peak"]["fma_gflops"], second["peak"]["fma_gflops"]) == (400.0, 200.0)
    for row in (first, second):
        assert row["percent_of_peak"] == pytest.approx(100 * row["libraries"]["fastnn"]["rate"] / 400.0)


def test_copy_rows_keep_the_higher_bandwidth_read_before_and_after_the_case(monkeypatch):
    readings = iter([20.0, 30.0, 60.0, 50.0])  # regular then streaming stores, before then after
    monkeypatch.setattr(fastnn._C, "_copy_bandwidth_gbps", lambda size, streaming: next(readings))
    (row,) = bench.run_cases(list(bench.softmax_cases()), repeats=1)
    assert row["peak"] == {"copy_gbps": 60.0, "copy_regular_gbps": 60.0, "copy_streaming_gbps": 50.0}
    assert row["percent_of_peak"] == pytest.approx(100 * row["libraries"]["fastnn"]["rate"] / 60.0)


def test_interleaved_rounds_rotate_the_libraries_and_settle_each_before_its_timed_call(monkeypatch):
    clock = iter(range(10_000))  # perf_counter ticks 1 s per reading
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    calls = []
    runners = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    seconds = bench.interleaved_medians(runners, rounds=3, settle_seconds=0, batch_seconds=0)
    # each turn: one untimed call, then the timed one; round r starts with library r mod 3
    assert calls == ["a", "a", "b", "b", "c", "c", "b", "b", "c", "c", "a", "a", "c", "c", "a", "a", "b", "b"]
    assert seconds == {"a": 1, "b": 1, "c": 1}  # one clock reading inside each timed call


def test_interleaved_rounds_time_each_library_by_its_own_calls(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: now[0])
    costs = {"fast": [1.0, 1.0, 9.0], "slow": [3.0, 2.0, 3.0]}  # per timed call; 9 an outlier
    timed = {name: iter(c) for name, c in costs.items()}

    def runner(name):
        def run():
            run.calls += 1
            if run.calls % 2 == 0:  # the second call of each turn is the timed one
                now[0] += next(timed[name])
        run.calls = 0
        return run
    seconds = bench.interleaved_medians({n: runner(n) for n in costs}, rounds=3, settle_seconds=0,
                                        batch_seconds=0)
    assert seconds == {"fast": 1.0, "slow": 3.0}


def test_a_timed_batch_runs_until_its_seconds_have_passed_and_reports_the_mean(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: now[0])
    costs = iter([1.0, 2.0, 6.0, 100.0])

    def run():
        now[0] += next(costs)
    assert bench.seconds_per_call(run, 8.5) == 3.0  # 1 + 2 + 6 = 9 >= 8.5 after three calls


def test_cuda_bench_without_a_usable_gpu_exits_with_the_reason(capsys, monkeypatch):
    reason = "no usable GPU (cudaErrorNoDevice: no CUDA-capable device is detected)"
    monkeypatch.setattr(fastnn.cuda, "unavailable_reason", lambda: reason)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--device", "cuda", "--ops", "matmul"])
    assert exit_info.value.code == 2
    assert "--device cuda: no usable GPU (cudaErrorNoDevice" in capsys.readouterr().err


@pytest.mark.skipif(fastnn.cuda.is_available(), reason="checks the message where CUDA tensors cannot be made")
def test_cuda_bench_here_names_this_machines_reason(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cuda"])
    assert f"--device cuda: {fastnn.cuda.unavailable_reason()}" in capsys.readouterr().err


def test_cuda_bench_checks_its_own_op_names_first(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--device", "cuda", "--ops", "matmul,max_pool2d"])  # max_pool2d is the CPU bench's name
    assert "unknown op(s) ['max_pool2d']; choose from ['matmul', 'conv2d', 'pool', 'activations', 'softmax']" in \
        capsys.readouterr().err


def test_cuda_bench_prints_the_device_and_both_peers(tmp_path, capsys, monkeypatch):
    """main's --device cuda path around bench_cuda.run (which needs a GPU): header, the torch
    and cupy columns, and the JSON's device."""
    row = {"op": "matmul", "shape": "2048x2048x2048", "unit": "GFLOP/s", "percent_of_peak": 50.0,
           "peak": {"fma_gflops": 60000.0},
           "libraries": {"fastnn": {"ms": 1.0, "rate": 30000.0, "fastnn_ratio": 1.0},
                         "torch": {"ms": 0.8, "rate": 37500.0, "fastnn_ratio": 0.8},
                         "cupy": {"ms": 0.75, "rate": 40000.0, "fastnn_ratio": 0.75}}}
    calls = []

    def fake_run(names, quick, repeats):
        calls.append((names, quick, repeats))
        return [row], "fastnn on NVIDIA H100 80GB HBM3", {"device": "NVIDIA H100 80GB HBM3"}
    monkeypatch.setattr(fastnn.cuda, "unavailable_reason", lambda: None)
    monkeypatch.setattr(bench_cuda, "run", fake_run)
    path = tmp_path / "gpu.json"
    bench.main(["--device", "cuda", "--ops", "matmul", "--repeats", "3", "--json", str(path)])
    out = capsys.readouterr().out
    assert calls == [(["matmul"], False, 3)]
    assert "fastnn on NVIDIA H100 80GB HBM3" in out
    assert "| op | shape | fastnn ms | fastnn rate | % peak | torch rate | x vs torch | cupy rate | x vs cupy |" in out
    assert "| matmul | 2048x2048x2048 | 1.000 | 30000.0 GFLOP/s | 50% | 37500.0 | 0.80x | 40000.0 | 0.75x |" in out
    saved = json.loads(path.read_text())
    assert saved["device"] == "NVIDIA H100 80GB HBM3" and saved["results"] == [row]


def test_cuda_bench_work_counts():
    assert bench.conv2d_flops(32, 64, 56, 56, 64, 3, 1, 1) == 2 * 32 * 64 * 56 * 56 * 64 * 9  # 7.4 GFLOP
    assert bench.conv2d_flops(32, 128, 28, 28, 256, 3, 2, 1) == 2 * 32 * 256 * 14 * 14 * 128 * 9
    assert bench_cuda.fma_flops(blocks=10, threads=256, iterations=100) == 2 * bench_cuda.FMA_CHAINS * 100 * 10 * 256
    assert f"#define CHAINS {bench_cuda.FMA_CHAINS}\n" in bench_cuda.FMA_SOURCE
    (square, _, tall) = bench_cuda.matmul_cases(np, [(3, 3, 3), (1, 1, 1), (8, 2, 4)])
    assert (square.work, tall.work, tall.shape) == (54.0, 128.0, "8x2x4")
    shapes = {layer[5] for layer in bench_cuda.RESNET50_LAYERS}
    assert shapes == {1, 3} and {layer[0] for layer in bench_cuda.RESNET50_LAYERS} == {32}
    n = 2 * 3 * 4 * 6
    pool = bench_cuda.pool_cases(np, (2, 3, 4, 6))
    assert [(c.op, c.work) for c in pool] == [("max_pool2d 2x2 fwd", 7.0 * n), ("max_pool2d 2x2 bwd", 7.0 * n),
                                              ("avg_pool2d 2x2 fwd", 5.0 * n), ("avg_pool2d 2x2 bwd", 5.0 * n)]
    softmax = bench_cuda.softmax_cases(np, (3, 7))
    assert [(c.op, c.work) for c in softmax] == [("softmax fwd", 168.0), ("softmax bwd", 252.0),
                                                 ("log_softmax fwd", 168.0), ("log_softmax bwd", 252.0)]


def test_cuda_bench_sizes_follow_issue_7():
    assert bench_cuda.SGEMM_SHAPES == [(2048, 2048, 2048), (4096, 4096, 4096), (8192, 1024, 4096)]
    for shape in (bench_cuda.POOL_SHAPE, bench_cuda.SOFTMAX_SHAPE):
        assert 4 * np.prod(shape) >= 256 << 20
    assert bench_cuda.COPY_BYTES >= 512 << 20


def _first_array(result):
    """A runner's first result: the array, or the first gradient that is not None."""
    if isinstance(result, (tuple, list)):
        return next(r for r in result if r is not None)
    return result


@pytest.mark.skipif(bench.torch is None, reason="compares with PyTorch")
def test_cuda_bench_cases_compute_the_same_thing_in_every_library():
    """The GPU cases built on NumPy and CPU torch: every runner runs, and each peer's result
    (torch's aten calls, NumPy's/CuPy's matmul) matches fastnn's, so the rows compare like with
    like (conv2d's backward masks, torch's pooling indices, softmax's saved outputs)."""
    cases = (list(bench_cuda.matmul_cases(np, [(5, 3, 4)]))
             + bench_cuda.conv2d_cases(np, [(2, 3, 6, 6, 4, 3, 1, 1), (2, 4, 5, 5, 6, 1, 1, 0)])
             + bench_cuda.pool_cases(np, (2, 3, 4, 6))
             + list(bench.activation_cases(bench.ACTIVATIONS, 37, np))
             + bench_cuda.softmax_cases(np, (3, 7)))
    assert all("torch" in case.runners for case in cases)
    for case in cases:
        expected = np.asarray(_first_array(case.runners["fastnn"]()))
        for name, runner in case.runners.items():
            got = _first_array(runner())
            got = got.numpy() if isinstance(got, bench.torch.Tensor) else np.asarray(got)
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5, err_msg=f"{case.op} {name}")
