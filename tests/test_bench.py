import json

import pytest

import fastnn
from fastnn import bench


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
    readings = iter([400.0, 200.0])  # the second one disturbed
    monkeypatch.setattr(fastnn._C, "_fma_peak_gflops", lambda: next(readings))
    first, second = bench.run_cases(list(bench.matmul_cases([16, 32])), repeats=1)
    assert (first["peak"]["fma_gflops"], second["peak"]["fma_gflops"]) == (400.0, 200.0)
    for row in (first, second):
        assert row["percent_of_peak"] == pytest.approx(100 * row["libraries"]["fastnn"]["rate"] / 400.0)
