#!/usr/bin/env bash
# Issue 6's checks on a machine with an NVIDIA GPU (the device tool's): build and install, the
# whole suite with GPU tests required (FASTNN_REQUIRE_GPU=1 fails any that would skip), the CUDA
# tests once under compute-sanitizer's memcheck, and the training example on CUDA against PyTorch
# on the same GPU. Logs go to $OUT (the device tool brings them back), else build/gpu-verify.
#   bash dev/verify-gpu.sh [STEP...]   STEP: install tests memcheck train (default: all). The
#   device tool stops a command after 10 minutes: run install+tests, then memcheck, then train
#   as separate calls if they do not fit in one.
#   Fashion-MNIST: the device cannot download; copy the IDX files here first and carry them:
#   mkdir -p data && cp -r /usr/share/datasets/fashion-mnist data/   (data/ is git-ignored)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/gpu-verify}
mkdir -p "$out"
status=0
step() {  # step NAME COMMAND...: runs it, logs to $out/NAME.log, prints a one-line verdict
  local name=$1
  shift
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc ($(tail -n 1 "$out/$name.log"))"
  [ $rc -eq 0 ] || status=1
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
steps=${*:-install tests memcheck train}
want() { [[ " $steps " == *" $1 "* ]]; }
# The device image sets CXX to /opt/gcc/bin/g++, a wrapper whose links take libstdc++ statically;
# the _C built so segfaults on the first error message it formats (in the static copy's
# ostream). The system compiler links libstdc++.so as everywhere else.
[ -x /usr/bin/g++ ] && export CXX=/usr/bin/g++ CC=/usr/bin/gcc CUDAHOSTCXX=/usr/bin/g++
# python3 -m pip: the image's bare `pip` belongs to another Python than its python3 (with torch).
want install && step install python3 -m pip install --no-build-isolation --no-deps -v .
want install && step info python3 -c "import fastnn, cupy; print(fastnn.build_info(), cupy.__version__)"
want tests && step tests env FASTNN_REQUIRE_GPU=1 python3 -m pytest -q -p no:cacheprovider -n 8 tests
# The tests that fill past one grid (hundreds of MB) would take too long under the sanitizer.
want memcheck && step memcheck env FASTNN_REQUIRE_GPU=1 compute-sanitizer --tool memcheck --error-exitcode 99 \
  python3 -m pytest -q -p no:cacheprovider -n 8 -k "cuda and not grid and not past" tests
root=()
[ -d data/fashion-mnist ] && root=(--root data/fashion-mnist)
want train && step train-cuda python3 -m fastnn.demo --device cuda --compare-torch --checkpoint "$out/cnn.npz" "${root[@]}"
want train && step train-cpu python3 -m fastnn.demo --device cpu --checkpoint "$out/cnn-cpu.npz" "${root[@]}"
exit $status
