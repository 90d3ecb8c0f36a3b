#!/usr/bin/env bash
# Incremental developer build without pip: compiles fastnn._C and libfastnn.so into build/dev-NAME
# and stages an importable package there, laid out as the wheel is (cmake --install; python files
# symlinked). Prints the PYTHONPATH to use.
#   eval "$(dev/build.sh mine)" && pytest tests/test_gemm.py
set -euo pipefail
name=${1:-dev}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/dev-$name
mkdir -p "$root/build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSKBUILD_PROJECT_VERSION=0.1.0 \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DFASTNN_CUDA="${FASTNN_CUDA:-OFF}" \
  -DFASTNN_SANITIZE="${FASTNN_SANITIZE:-OFF}" >"$build.configure.log" 2>&1 || { cat "$build.configure.log" >&2; exit 1; }
cmake --build "$build" >&2
rm -rf "$build/stage"
cmake --install "$build" --prefix "$build/stage" >/dev/null
cp -rs "$root/python/fastnn" "$build/stage/"
echo "export PYTHONPATH=$build/stage"
