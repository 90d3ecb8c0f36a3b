"""The C++ API: each public header compiles alone, and examples/cpp builds against the headers
and libfastnn.so of the package under test (fastnn.get_include(), get_library(), get_cmake_dir())
and runs with no Python involved."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import fastnn

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cpp"
HEADERS = sorted(p.name for p in (ROOT / "csrc" / "include" / "fastnn").glob("*.h"))
# The CUDA kernels' headers (fastnn/cuda/*.h) ship with builds that have them; they need the
# CUDA toolkit's headers (cudaStream_t).
CUDA_HEADERS = sorted(p.name for p in (ROOT / "csrc" / "include" / "fastnn" / "cuda").glob("*.h"))
CUDA_INCLUDE = next((d for d in [os.path.join(os.environ.get("CUDA_HOME", "/nonexistent"), "include"),
                                  "/usr/local/cuda/include"]
                     if os.path.isfile(os.path.join(d, "cuda_runtime_api.h"))), None)
EXPECTED = "conv2d: 45.5 54.5 81.5 90.5"  # hand-computed in conv2d_example.cpp
CXX = shutil.which("c++")
WARNINGS = ["-Wall", "-Wextra", "-pedantic", "-Werror"]

pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler (c++) on PATH")


def run(command, **kwargs):
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300, **kwargs)


def build(command, **kwargs):
    # Compilers need not run under the sanitizer runtime the ASan CI pass preloads.
    env = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
    result = run(command, env=env, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_ships_the_library_and_headers():
    assert os.path.isfile(fastnn.get_library()), "libfastnn.so missing: build with dev/build.sh or pip install"
    shipped = os.path.join(fastnn.get_include(), "fastnn")
    assert sorted(os.listdir(shipped)) == sorted(HEADERS + (["cuda"] if fastnn.build_info()["cuda"] else []))
    if fastnn.build_info()["cuda"]:
        assert sorted(os.listdir(os.path.join(shipped, "cuda"))) == CUDA_HEADERS
    assert os.path.isfile(os.path.join(fastnn.get_cmake_dir(), "fastnnConfig.cmake"))


@pytest.mark.parametrize("header", HEADERS)
def test_header_compiles_alone(header, tmp_path):
    source = tmp_path / "one_header.cpp"
    source.write_text(f"#include <fastnn/{header}>\n")
    build([CXX, "-std=c++17", *WARNINGS, "-fsyntax-only", "-I", fastnn.get_include(), source])


@pytest.mark.skipif(not fastnn.build_info()["cuda"], reason="built without CUDA")
@pytest.mark.parametrize("header", CUDA_HEADERS)
def test_cuda_header_compiles_alone(header, tmp_path):
    if CUDA_INCLUDE is None:
        pytest.skip("no CUDA toolkit headers in $CUDA_HOME/include or /usr/local/cuda/include")
    source = tmp_path / "one_header.cpp"
    source.write_text(f"#include <fastnn/cuda/{header}>\n")
    build([CXX, "-std=c++17", *WARNINGS, "-fsyntax-only", "-I", fastnn.get_include(), "-isystem", CUDA_INCLUDE, source])


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    program = tmp_path_factory.mktemp("cpp") / "conv2d_example"
    library = fastnn.get_library()
    build([CXX, "-std=c++17", *WARNINGS, EXAMPLE / "conv2d_example.cpp", "-I", fastnn.get_include(), library,
           "-Wl,-rpath," + os.path.dirname(library), "-o", program])
    return program


def test_example_computes_the_hand_computed_convolution(example):
    result = run([example])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == EXPECTED


@pytest.mark.parametrize("isa", fastnn.build_info()["isas_available"])
def test_example_under_each_isa(example, isa):
    result = run([example], env=dict(os.environ, FASTNN_ISA=isa))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == EXPECTED


def test_example_reads_fastnn_isa_itself(example):
    # The C++ program dispatches on its own: an ISA it cannot run is refused with the choices.
    result = run([example], env=dict(os.environ, FASTNN_ISA="avx9000"))
    assert result.returncode == 1
    assert "ISA 'avx9000' is not available" in result.stderr and "scalar" in result.stderr


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake on PATH")
def test_example_builds_with_the_cmake_package(tmp_path):
    build(["cmake", "-S", EXAMPLE, "-B", tmp_path, "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_COMPILER=" + CXX,
           "-Dfastnn_DIR=" + fastnn.get_cmake_dir()])
    build(["cmake", "--build", tmp_path])
    result = run([tmp_path / "conv2d_example"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == EXPECTED
