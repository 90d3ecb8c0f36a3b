"""python -m fastnn.bench --device cuda: fastnn's CUDA kernels, on CuPy arrays through fastnn.ops,
against cuBLAS and cuDNN through PyTorch (and cuBLAS through CuPy's matmul) in the same process.

FP32 strict: TF32 is off in every library (NVIDIA_TF32_OVERRIDE=0 and torch's switches). Each
time is the median of CUDA-event times over the repeats after a warm-up, L2 flushed before each
repeat (a write of a buffer twice its size), so every repeat reads its operands from device
memory. `% peak` rates FLOP rows against the FP32 FMA peak and memory-bound rows against the
device-to-device copy bandwidth, both measured in the run with the same timer. The case builders
take the array module (xp), so the tests run them on NumPy and CPU torch where there is no GPU.
"""
import os
import statistics

import numpy as np

import fastnn
from . import ops
from .bench import (ACTIVATIONS, Case, _rand, activation_cases, conv2d_flops, conv2d_label, peak_ranges, run_cases,
                    torch, torch_peer)

# (M, N, K) of each SGEMM, C[M, N] = A[M, K] @ B[K, N]
SGEMM_SHAPES = [(2048, 2048, 2048), (4096, 4096, 4096), (8192, 1024, 4096)]

# ResNet-50's convolutions at batch 32, (N, C, H, W, C_out, kernel, stride, padding): the
# bottleneck 3x3 of each stage, and 1x1s that expand, reduce, and run at 14x14 and 7x7.
RESNET50_LAYERS = [
    (32, 64, 56, 56, 64, 3, 1, 1),
    (32, 128, 28, 28, 128, 3, 1, 1),
    (32, 256, 14, 14, 256, 3, 1, 1),
    (32, 512, 7, 7, 512, 3, 1, 1),
    (32, 64, 56, 56, 256, 1, 1, 0),
    (32, 256, 56, 56, 64, 1, 1, 0),
    (32, 1024, 14, 14, 256, 1, 1, 0),
    (32, 512, 7, 7, 2048, 1, 1, 0),
]

# The memory-bound ops' inputs hold 2^26 floats (256 MiB, issue 7's size: far past any L2);
# --quick uses 2^24.
POOL_SHAPE, POOL_SHAPE_QUICK = (64, 64, 128, 128), (16, 64, 128, 128)
SOFTMAX_SHAPE, SOFTMAX_SHAPE_QUICK = (65536, 1024), (16384, 1024)

COPY_BYTES = 512 << 20  # the copy that measures the bandwidth: 512 MiB read, 512 MiB written
FMA_CHAINS, FMA_THREADS, FMA_ITERATIONS = 8, 256, 4096
FMA_SOURCE = f"#define CHAINS {FMA_CHAINS}\n" + r"""
extern "C" __global__ void fma_chains(float* out, float a, float b, int iterations) {
    // CHAINS independent chains per thread: an FMA waits only on its own chain's previous one,
    // so the FMA latency (4 cycles) is hidden even at low occupancy.
    float x[CHAINS];
#pragma unroll
    for (int c = 0; c < CHAINS; ++c) x[c] = threadIdx.x + c;
    for (int i = 0; i < iterations; ++i) {
#pragma unroll
        for (int c = 0; c < CHAINS; ++c) x[c] = fmaf(x[c], a, b);
    }
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < CHAINS; ++c) sum += x[c];
    out[blockIdx.x * blockDim.x + threadIdx.x] = sum;  // a stored result keeps the loop alive
}
"""


def fma_flops(blocks, threads=FMA_THREADS, iterations=FMA_ITERATIONS):
    """FLOPs of one fma_chains launch: 2 per FMA."""
    return 2.0 * FMA_CHAINS * iterations * blocks * threads


def matmul_cases(xp, shapes=SGEMM_SHAPES):
    for m, n, k in shapes:
        a, b = xp.asarray(_rand(m, k)), xp.asarray(_rand(k, n))
        case = Case("matmul", f"{m}x{n}x{k}", 2.0 * m * n * k, "GFLOP/s")
        case.runners["fastnn"] = lambda a=a, b=b: ops.matmul(a, b)
        if torch_peer(a):
            ta, tb = torch.from_dlpack(a), torch.from_dlpack(b)
            case.runners["torch"] = lambda ta=ta, tb=tb: ta @ tb
        case.runners[xp.__name__] = lambda a=a, b=b: a @ b  # CuPy's matmul is cuBLAS's SGEMM
        yield case


def conv2d_layer_cases(xp, layer):
    """Forward, backward-data and backward-weight of one layer as three rows (no bias)."""
    n, c, h, w, c_out, k, stride, padding = layer
    x, weight = xp.asarray(_rand(n, c, h, w)), xp.asarray(_rand(c_out, c, k, k))
    kw = dict(stride=stride, padding=padding)
    grad = xp.asarray(_rand(*ops.conv2d(x, weight, **kw).shape))
    forward, data, weights = (Case(f"conv2d {part}", conv2d_label(*layer), conv2d_flops(*layer), "GFLOP/s")
                              for part in ("fwd", "bwd-data", "bwd-weight"))
    forward.runners["fastnn"] = lambda: ops.conv2d(x, weight, **kw)
    data.runners["fastnn"] = lambda: ops.conv2d_backward(grad, x, weight, needs_input_grad=(True, False, False), **kw)
    weights.runners["fastnn"] = lambda: ops.conv2d_backward(grad, x, weight, needs_input_grad=(False, True, False),
                                                            **kw)
    if torch_peer(x):
        tx, tw, tg = torch.from_dlpack(x), torch.from_dlpack(weight), torch.from_dlpack(grad)

        def torch_backward(mask):  # what autograd calls for conv2d: cuDNN's backward on the GPU
            return torch.ops.aten.convolution_backward(tg, tx, tw, None, [stride] * 2, [padding] * 2, [1, 1], False,
                                                       [0, 0], 1, mask)
        forward.runners["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, **kw)
        data.runners["torch"] = lambda: torch_backward([True, False, False])
        weights.runners["torch"] = lambda: torch_backward([False, True, False])
    return [forward, data, weights]


def conv2d_cases(xp, layers=RESNET50_LAYERS):
    return [case for layer in layers for case in conv2d_layer_cases(xp, layer)]


def pool_cases(xp, shape=POOL_SHAPE):
    """2x2 max and average pooling, forward and backward. Bytes counted with n input floats: max
    forward reads x (4n) and writes y and int64 indices (n/4 each: n + 2n); its backward reads
    grad and indices (n + 2n) and writes dx (4n); average pooling moves x and y only."""
    x = xp.asarray(_rand(*shape))
    y, indices = ops.max_pool2d(x, 2, return_indices=True)
    grad = xp.asarray(_rand(*y.shape))
    label, n = "x".join(map(str, shape)), x.size
    max_forward, max_backward = (Case(f"max_pool2d 2x2 {d}", label, 7.0 * n, "GB/s") for d in ("fwd", "bwd"))
    avg_forward, avg_backward = (Case(f"avg_pool2d 2x2 {d}", label, 5.0 * n, "GB/s") for d in ("fwd", "bwd"))
    max_forward.runners["fastnn"] = lambda: ops.max_pool2d(x, 2, return_indices=True)
    max_backward.runners["fastnn"] = lambda: ops.max_pool2d_backward(grad, x, 2, saved=indices)
    avg_forward.runners["fastnn"] = lambda: ops.avg_pool2d(x, 2)
    avg_backward.runners["fastnn"] = lambda: ops.avg_pool2d_backward(grad, x, 2)
    if torch_peer(x):
        tx, tg = torch.from_dlpack(x), torch.from_dlpack(grad)
        window = [2, 2]
        # torch's training max pooling returns its indices too (what its backward reads)
        max_forward.runners["torch"] = lambda: torch.ops.aten.max_pool2d_with_indices(tx, window, window)
        t_indices = torch.ops.aten.max_pool2d_with_indices(tx, window, window)[1]
        max_backward.runners["torch"] = lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            tg, tx, window, window, [0, 0], [1, 1], False, t_indices)
        avg_forward.runners["torch"] = lambda: torch.nn.functional.avg_pool2d(tx, 2)
        avg_backward.runners["torch"] = lambda: torch.ops.aten.avg_pool2d_backward(tg, tx, window, window, [0, 0],
                                                                                   False, True, None)
    return [max_forward, max_backward, avg_forward, avg_backward]


def softmax_cases(xp, shape=SOFTMAX_SHAPE):
    """softmax and log_softmax over the last dim: forwards read x and write y (8 bytes a float),
    backwards read grad and the saved output and write dx (12)."""
    x, grad = xp.asarray(_rand(*shape)), xp.asarray(_rand(*shape))
    label, cases = "x".join(map(str, shape)), []
    for name in ("softmax", "log_softmax"):
        cases += softmax_op_cases(name, x, grad, label)
    return cases


def softmax_op_cases(name, x, grad, label):
    forward = Case(f"{name} fwd", label, 8.0 * x.size, "GB/s")
    backward = Case(f"{name} bwd", label, 12.0 * x.size, "GB/s")
    fastnn_forward, fastnn_backward = getattr(ops, name), getattr(ops, name + "_backward")
    y = fastnn_forward(x)
    forward.runners["fastnn"] = lambda: fastnn_forward(x)
    backward.runners["fastnn"] = lambda: fastnn_backward(grad, x, saved=y)
    if torch_peer(x):
        tx, tg = torch.from_dlpack(x), torch.from_dlpack(grad)
        torch_forward = getattr(torch, name)
        torch_backward = getattr(torch.ops.aten, f"_{name}_backward_data")  # what autograd calls
        ty = torch_forward(tx, -1)
        forward.runners["torch"] = lambda: torch_forward(tx, -1)
        backward.runners["torch"] = lambda: torch_backward(tg, ty, -1, torch.float32)
    return [forward, backward]


OPS = {  # name -> cases(xp, quick)
    "matmul": lambda xp, quick: list(matmul_cases(xp, SGEMM_SHAPES[:1] if quick else SGEMM_SHAPES)),
    "conv2d": lambda xp, quick: conv2d_cases(xp, [RESNET50_LAYERS[0], RESNET50_LAYERS[4]] if quick
                                             else RESNET50_LAYERS),
    "pool": lambda xp, quick: pool_cases(xp, POOL_SHAPE_QUICK if quick else POOL_SHAPE),
    "activations": lambda xp, quick: list(activation_cases(ACTIVATIONS, 1 << (24 if quick else 26), xp)),
    "softmax": lambda xp, quick: softmax_cases(xp, SOFTMAX_SHAPE_QUICK if quick else SOFTMAX_SHAPE),
}


def event_timer(cupy, flush_bytes):
    """time(fn, repeats) for run_cases: the median over the repeats of CUDA-event times on
    CuPy's current stream, after two warm-up calls, with `flush_bytes` written before each
    repeat (on the same stream, so it ends before the start event)."""
    flush = cupy.empty(flush_bytes // 4, dtype=cupy.float32)
    start, end = cupy.cuda.Event(), cupy.cuda.Event()

    def median_seconds(fn, repeats):
        for _ in range(2):  # warm-up: CuPy's kernel compilation, cuDNN's algorithm search, the memory pools
            fn()
        times = []
        for _ in range(repeats):
            flush.fill(0)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, end) * 1e-3)
        return statistics.median(times)
    return median_seconds


def device_limits(cupy, time, repeats):
    """peak(unit) for run_cases: the FP32 FMA peak (fma_chains over 4 waves of full-occupancy
    blocks on every SM) or the device-to-device copy bandwidth (bytes read + written by a CuPy
    copy of COPY_BYTES), timed as the cases are."""
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    blocks = 4 * props["multiProcessorCount"] * (props["maxThreadsPerMultiProcessor"] // FMA_THREADS)
    out = cupy.empty(blocks * FMA_THREADS, dtype=cupy.float32)
    kernel = cupy.RawKernel(FMA_SOURCE, "fma_chains")
    # a and b keep every chain near 1 (x -> 0.999 x + 0.001): no overflow, no denormals
    args = (out, np.float32(0.999), np.float32(0.001), np.int32(FMA_ITERATIONS))
    src = cupy.ones(COPY_BYTES // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)

    def peak(unit):
        if unit == "GFLOP/s":
            seconds = time(lambda: kernel((blocks,), (FMA_THREADS,), args), repeats)
            return {"fma_gflops": fma_flops(blocks) / seconds * 1e-9}
        seconds = time(lambda: cupy.copyto(dst, src), repeats)
        return {"copy_gbps": 2 * COPY_BYTES / seconds * 1e-9}
    return peak


def run(names, quick, repeats):
    """Runs the cases of ops `names` on the current GPU; returns (results, header, run_info)."""
    # Set before torch and CuPy create their cuBLAS and cuDNN handles (at their first matmul or
    # convolution, below). It only backs up the switches: torch's allow_tf32 flags below select
    # strict FP32 math in both libraries, and CuPy's matmul uses TF32 only under CUPY_TF32=1,
    # which CuPy read when it was imported (unavailable_reason imports it), hence refused here.
    os.environ["NVIDIA_TF32_OVERRIDE"] = "0"
    if os.environ.get("CUPY_TF32", "0") != "0":
        raise RuntimeError("fastnn.bench --device cuda compares strict FP32: unset CUPY_TF32")
    import cupy
    torch_cuda = torch is not None and torch.cuda.is_available()
    if torch_cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # cuDNN's fastest algorithm per layer, picked in the warm-up
    # The events are recorded on CuPy's current stream; they time torch's work too because both
    # libraries launch on the legacy default stream (handle 0) unless told otherwise.
    streams = {"CuPy": cupy.cuda.get_current_stream().ptr}
    if torch_cuda:
        streams["torch"] = torch.cuda.current_stream().cuda_stream
    if any(streams.values()):
        raise RuntimeError(f"fastnn.bench --device cuda times every library on the legacy default stream, "
                           f"but the current streams are {streams}")
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    device = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    time = event_timer(cupy, 2 * props["l2CacheSize"] + (1 << 20))
    cases = [case for name in names for case in OPS[name](cupy, quick)]
    # One library after the other: a GPU does not drift as the shared CPU host does.
    results = run_cases(cases, repeats, time_runners=lambda runners, n: {name: time(fn, n) for name, fn in runners.items()},
                        peak=device_limits(cupy, time, repeats))
    header = (f"fastnn {fastnn.build_info()['version']} on {device} ({props['multiProcessorCount']} SMs, "
              f"L2 {props['l2CacheSize'] >> 20} MiB), FP32 with TF32 off, median of {repeats} after a warm-up, "
              f"L2 flushed before each; % peak is of the best FMA peak of the run or the copy bandwidth measured "
              f"next to each case: {peak_ranges(results)}; CuPy {cupy.__version__}; "
              + (f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
                 if torch_cuda else "torch with CUDA not installed: no cuDNN/torch peer")
              + "\nmatmul shapes are MxNxK")
    return results, header, {"device": device, "tf32": False, "repeats": repeats}
