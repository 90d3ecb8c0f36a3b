import os
import subprocess
import sys

import pytest

import fastnn


def test_build_info_reports_the_build():
    info = fastnn.build_info()
    for key in ["version", "cuda", "cuda_archs", "cuda_devices", "isa", "isas_available", "openmp", "num_threads"]:
        assert key in info, key
    assert info["version"] == fastnn.__version__
    assert info["isa"] in info["isas_available"]
    assert info["isas_available"][-1] == "scalar"
    assert isinstance(info["cuda"], bool)
    assert info["cuda_devices"] >= 0
    if info["cuda"]:
        assert "90" in info["cuda_archs"]


def test_num_threads_round_trip():
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        assert fastnn.build_info()["num_threads"] == 1
    finally:
        fastnn.set_num_threads(before)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        fastnn.set_num_threads(0)


def _import_with(env_update):
    env = dict(os.environ, **env_update)
    code = "import fastnn; print(fastnn.build_info()['isa'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("isa", fastnn.build_info()["isas_available"])
def test_fastnn_isa_env_forces_an_isa(isa):
    result = _import_with({"FASTNN_ISA": isa})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == isa


def test_unknown_isa_fails_import_with_the_choices():
    result = _import_with({"FASTNN_ISA": "avx9000"})
    assert result.returncode != 0
    assert "ISA 'avx9000' is not available" in result.stderr and "scalar" in result.stderr


def test_omp_num_threads_is_honoured():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = "import fastnn; print(fastnn.get_num_threads())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_gpu_is_visible_when_present(require_gpu):
    info = fastnn.build_info()
    assert info["cuda"] and info["cuda_devices"] >= 1 and info["cuda_error"] is None
