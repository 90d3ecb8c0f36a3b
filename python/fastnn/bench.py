"""python -m fastnn.bench: fastnn's kernels timed against NumPy and PyTorch in the same process.

For each op and shape: fastnn's median time and GFLOP/s (or GB/s for memory-bound ops), the
same for every peer that is installed (the libraries taking turns in rounds), the ratio fastnn speed / peer speed, and the percentage
of this machine's limit: the FMA peak of the ISA in use (the best reading of the run, each case
measuring it again) or the parallel copy bandwidth measured before and after each case (the
better of regular and streaming stores). Every library is limited to the same thread count.
--device cuda times the CUDA kernels instead (bench_cuda.py).
"""
import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import fastnn
from fastnn import ops

try:
    import torch
    import torch.nn.functional as torch_functional
except ImportError:  # peers are optional
    torch = None


@dataclass
class Case:
    op: str
    shape: str
    work: float  # flops, or bytes moved for memory-bound ops
    unit: str  # "GFLOP/s" or "GB/s"
    runners: dict = field(default_factory=dict)  # library name -> zero-argument callable


def _rand(*shape):
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def torch_peer(array):
    """Whether PyTorch can run on `array`'s device: installed, and built with CUDA for GPU arrays."""
    return torch is not None and (isinstance(array, np.ndarray) or torch.cuda.is_available())


def conv2d_flops(n, c, h, w, c_out, k, stride, padding):
    """A direct convolution's FLOPs (2 per multiply-add), which each of the forward,
    backward-data and backward-weight passes does once."""
    oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    return 2.0 * n * c_out * oh * ow * c * k * k


def conv2d_label(n, c, h, w, c_out, k, stride, padding):
    return f"{n}x{c}x{h}x{w}->{c_out} {k}x{k} s{stride} p{padding}"


def _torch_fwd_bwd(forward, *arrays):
    """A callable running forward + backward in PyTorch on fresh leaf tensors each call."""
    tensors = [torch.from_numpy(a).requires_grad_(a.dtype == np.float32) for a in arrays]

    def run():
        for t in tensors:
            t.grad = None
        out = forward(*tensors)
        out.backward(torch.ones_like(out) if out.dim() else None)
    return run


def matmul_cases(sizes):
    for n in sizes:
        a, b = _rand(n, n), _rand(n, n)
        case = Case("matmul", f"{n}x{n}x{n}", 2.0 * n ** 3, "GFLOP/s")
        case.runners["fastnn"] = lambda a=a, b=b: ops.matmul(a, b)
        case.runners["numpy"] = lambda a=a, b=b: a @ b
        if torch:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            case.runners["torch"] = lambda ta=ta, tb=tb: ta @ tb
        yield case


CONV_SHAPES = [  # (N, C, H, W, C_out, kernel, stride, padding)
    (64, 1, 28, 28, 32, 3, 1, 0),
    (64, 32, 26, 26, 64, 3, 1, 0),
    (32, 64, 56, 56, 64, 3, 1, 1),
    (32, 128, 28, 28, 256, 3, 2, 1),
    (32, 256, 14, 14, 1024, 1, 1, 0),
]


def conv2d_cases(shapes=CONV_SHAPES):
    for shape in shapes:
        n, c, h, w, c_out, k, stride, padding = shape
        x, weight = _rand(n, c, h, w), _rand(c_out, c, k, k)
        kw = dict(stride=stride, padding=padding)
        case = Case("conv2d fwd+bwd", conv2d_label(*shape), 3 * conv2d_flops(*shape), "GFLOP/s")

        def run(x=x, weight=weight, kw=kw):
            y = ops.conv2d(x, weight, **kw)
            ops.conv2d_backward(np.ones_like(y), x, weight, **kw)
        case.runners["fastnn"] = run
        if torch:
            case.runners["torch"] = _torch_fwd_bwd(lambda a, b, kw=kw: torch_functional.conv2d(a, b, **kw).sum(), x, weight)
        yield case


def max_pool_cases():
    x = _rand(64, 32, 112, 112)
    # forward reads x, writes y and int64 indices; backward reads grad and indices, writes dx
    case = Case("max_pool2d 2x2 fwd+bwd", "64x32x112x112", 4.0 * x.size * (1 + 0.25 + 0.5 + 0.25 + 0.5 + 1), "GB/s")

    def run():
        y, indices = ops.max_pool2d(x, 2, return_indices=True)
        ops.max_pool2d_backward(np.ones_like(y), x, 2, saved=indices)
    case.runners["fastnn"] = run
    if torch:
        case.runners["torch"] = _torch_fwd_bwd(lambda a: torch_functional.max_pool2d(a, 2).sum(), x)
    yield case


# Memory rows and the copy they are rated against run on buffers past this machine's caches: the
# VM reports a 260 MiB L3, and a 64 MB streaming copy measured 66-69 GB/s there (its source stays
# in the L3 across calls, as the output bypasses it) where 128 MB to 1 GB copies measured 35-40,
# the memory's rate (2026-11-24, 2 threads). 256 MiB per buffer; the activations' tensors as large.
COPY_BYTES = 256 << 20
ACTIVATION_SIZE = COPY_BYTES // 4


ACTIVATIONS = ["relu", "sigmoid", "tanh", "gelu"]


def activation_cases(names, size, xp=np):
    """Forward and backward rows on `xp`'s arrays (NumPy, or CuPy for the GPU bench)."""
    x, g = xp.asarray(_rand(size)), xp.asarray(_rand(size))
    for name in names:
        forward = Case(f"{name} fwd", f"{size}", 8.0 * size, "GB/s")  # read x, write y
        backward = Case(f"{name} bwd", f"{size}", 12.0 * size, "GB/s")  # read g and x (or y), write dx
        forward.runners["fastnn"] = lambda f=getattr(ops, name): f(x)
        # sigmoid and tanh backward read the forward's output, as PyTorch's do
        saved = {"saved": getattr(ops, name)(x)} if name in ("sigmoid", "tanh") else {}
        backward.runners["fastnn"] = lambda f=getattr(ops, name + "_backward"), saved=saved: f(g, x, **saved)
        if name == "relu":
            forward.runners[xp.__name__] = lambda: xp.maximum(x, 0)
        if torch_peer(x):
            tx, tg = torch.from_dlpack(x), torch.from_dlpack(g)
            tf = getattr(torch_functional, name) if name != "tanh" else torch.tanh
            forward.runners["torch"] = lambda tf=tf: tf(tx)
            # ty bound per op (a default argument): the rows run after this loop has moved on
            ty = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}.get(name, lambda t: t)(tx)
            backward_op = {"relu": lambda: torch.ops.aten.threshold_backward(tg, tx, 0.0),
                           "sigmoid": lambda ty=ty: torch.ops.aten.sigmoid_backward(tg, ty),
                           "tanh": lambda ty=ty: torch.ops.aten.tanh_backward(tg, ty),
                           "gelu": lambda: torch.ops.aten.gelu_backward(tg, tx)}[name]
            backward.runners["torch"] = backward_op
        yield forward
        yield backward


def softmax_cases():
    logits, target = _rand(4096, 1000), np.random.default_rng(0).integers(0, 1000, 4096)
    case = Case("cross_entropy fwd+bwd", "4096x1000", 4.0 * logits.size * 2, "GB/s")

    def run():
        loss = ops.cross_entropy(logits, target)
        ops.cross_entropy_backward(np.ones_like(loss), logits, target)
    case.runners["fastnn"] = run
    if torch:
        tt = torch.from_numpy(target)
        case.runners["torch"] = _torch_fwd_bwd(lambda a: torch_functional.cross_entropy(a, tt), logits)
    yield case


OPS = {
    "matmul": lambda quick: matmul_cases([64, 128, 256, 512] if quick else [64, 128, 256, 512, 1024, 2048]),
    "conv2d": lambda quick: conv2d_cases(CONV_SHAPES[:2] if quick else CONV_SHAPES),
    "max_pool2d": lambda quick: max_pool_cases(),
    "activations": lambda quick: activation_cases(ACTIVATIONS, 1 << 22 if quick else ACTIVATION_SIZE),
    "softmax": lambda quick: softmax_cases(),
}


def seconds_per_call(fn, seconds):
    """Calls fn at least once and until `seconds` have passed; the mean time per call."""
    start = time.perf_counter()
    calls = 0
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def interleaved_medians(runners, rounds, settle_seconds=0.25, batch_seconds=0.02):
    """Each runner's median time per call over `rounds` rounds that give every runner a turn
    (the first one rotating), so that the shared host's drift during a case (its speed moved 2x
    within minutes) slows every library alike instead of whichever ran then: timed one library
    after the other, 1024^3 and 2048^3 sgemm read 0.76x and 1.29x PyTorch in one run. A turn
    runs the library untimed for settle_seconds first: the library before it leaves its threads
    spinning on the same cores (OpenBLAS's for ~0.1 s; with 2 ms, every sgemm of 512^3 and up
    ran at 95-160 GFLOP/s where alone it runs at 240-310) and its own caches cold. Then a batch
    of calls for batch_seconds (at least one call), timed as a whole."""
    names = list(runners)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            seconds_per_call(runners[name], settle_seconds)
            times[name].append(seconds_per_call(runners[name], batch_seconds))
    return {name: statistics.median(t) for name, t in times.items()}


@contextlib.contextmanager
def limited_threads(threads):
    """fastnn, PyTorch and NumPy's BLAS limited to `threads` inside, as they were after. The
    threadpoolctl limit comes first: torch.set_num_threads changes the OpenMP limit that
    threadpoolctl would otherwise record as the one to restore."""
    before = fastnn.get_num_threads(), torch.get_num_threads() if torch else None
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(threads)
    except ImportError:
        print("warning: threadpoolctl not installed; NumPy's BLAS threads are not limited", file=sys.stderr)
        limits = None
    fastnn.set_num_threads(threads)
    if torch:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if limits is not None:
            limits.restore_original_limits()
        fastnn.set_num_threads(before[0])
        if torch:
            torch.set_num_threads(before[1])


def measure_peak(unit):
    """This machine's limit for a case's unit: the FMA peak of the ISA in use, or the streaming
    bandwidth as the better of a copy of COPY_BYTES with regular stores and one with streaming
    stores (regular stores read each destination line first, so the copy moves 1.5x the bytes it
    is credited with). Measured before and after each case, as a peer is:
    on a shared host the memory bandwidth drifted 2x within minutes (30 to 68 GB/s). run_cases
    rates FLOP rows against the run's best FMA reading."""
    if unit == "GFLOP/s":
        return {"fma_gflops": fastnn._C._fma_peak_gflops()}
    regular, streaming = (fastnn._C._copy_bandwidth_gbps(COPY_BYTES, streaming=s) for s in (False, True))
    return {"copy_gbps": max(regular, streaming), "copy_regular_gbps": regular, "copy_streaming_gbps": streaming}


def limit(reading):
    """The figure a row is rated against in a peak(unit) reading."""
    return reading["fma_gflops"] if "fma_gflops" in reading else reading["copy_gbps"]


def run_cases(cases, repeats, time_runners=interleaved_medians, peak=measure_peak):
    """One row per case: each library's time and rate from time_runners(runners, repeats) (a
    dict of seconds per call), and the limit peak(unit) measured before and after the case,
    the higher reading kept (the CPU's by default; bench_cuda passes the GPU's timer and
    limits). A limit read low while the host was slow rated relu at 186% of the copy bandwidth."""
    results = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.op} {case.shape}", file=sys.stderr, flush=True)
        row = {"op": case.op, "shape": case.shape, "unit": case.unit, "libraries": {}}
        before = peak(case.unit)
        seconds = time_runners(case.runners, repeats)
        row["peak"] = max(before, peak(case.unit), key=limit)
        for name, s in seconds.items():
            row["libraries"][name] = {"ms": s * 1e3, "rate": case.work / s * 1e-9}
        fastnn_rate = row["libraries"]["fastnn"]["rate"]
        for name, lib in row["libraries"].items():
            lib["fastnn_ratio"] = fastnn_rate / lib["rate"]
        results.append(row)
    # FLOP rows are rated against the best FMA peak of the run: the cores' FMA throughput does
    # not drift as the host's memory bandwidth does, and a low reading is the measurement
    # disturbed (likely host steal, which the guest counts as CPU time): runs on 2026-11-24 read
    # 191-198 GFLOP/s once each among 360-377, which rated a conv at 100-103%.
    best_fma = max((row["peak"]["fma_gflops"] for row in results if "fma_gflops" in row["peak"]), default=None)
    for row in results:
        reference = best_fma if "fma_gflops" in row["peak"] else limit(row["peak"])
        row["percent_of_peak"] = 100.0 * row["libraries"]["fastnn"]["rate"] / reference
    return results


def peak_ranges(results):
    """The measured limits' ranges over the run, e.g. 'FMA peak 361-370 GFLOP/s; copy bandwidth
    29.7-68.1 GB/s (regular stores 18.0-20.1, streaming 29.7-68.1)' (the store kinds on the CPU only)."""
    def span(key, fmt):
        values = [r["peak"][key] for r in results if key in r["peak"]]
        return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else None
    fma, copy = span("fma_gflops", ".0f"), span("copy_gbps", ".1f")
    parts = [f"FMA peak {fma} GFLOP/s"] if fma else []
    if copy:
        stores = span("copy_regular_gbps", ".1f")
        parts.append(f"copy bandwidth {copy} GB/s" + (f" (regular stores {stores}, streaming "
                                                      f"{span('copy_streaming_gbps', '.1f')})" if stores else ""))
    return "; ".join(parts)


def markdown_table(results, peers):
    head = ["op", "shape", "fastnn ms", "fastnn rate", "% peak"]
    for peer in peers:
        head += [f"{peer} rate", f"x vs {peer}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in results:
        lib = row["libraries"]
        cells = [row["op"], row["shape"], f"{lib['fastnn']['ms']:.3f}",
                 f"{lib['fastnn']['rate']:.1f} {row['unit']}", f"{row['percent_of_peak']:.0f}%"]
        for peer in peers:
            cells += [f"{lib[peer]['rate']:.1f}", f"{lib[peer]['fastnn_ratio']:.2f}x"] if peer in lib else ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r['op']}\n{r['shape']}" for r in results]
    ratios = [r["libraries"].get("torch", r["libraries"]["fastnn"])["fastnn_ratio"] for r in results]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(results)), 5))
    ax.bar(range(len(results)), ratios, color=["tab:green" if r >= 1 else "tab:red" for r in ratios])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(results)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("fastnn speed / PyTorch speed")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    from . import bench_cuda  # its op list; it imports CuPy only when it runs
    parser = argparse.ArgumentParser(prog="python -m fastnn.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--ops", help=f"comma-separated; cpu: {', '.join(OPS)} (default all); "
                                      f"cuda: {', '.join(bench_cuda.OPS)} (default all)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=fastnn.get_num_threads(), help="CPU threads (cpu only)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="cpu: rounds per case, each library timed once per round; cuda: timed calls per library")
    parser.add_argument("--quick", action="store_true", help="smaller shapes, for a fast look")
    parser.add_argument("--json", metavar="PATH", help="write results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of the ratios (needs matplotlib)")
    args = parser.parse_args(argv)

    device_ops = bench_cuda.OPS if args.device == "cuda" else OPS
    names = [n.strip() for n in (args.ops or ",".join(device_ops)).split(",") if n.strip()]
    unknown = [n for n in names if n not in device_ops]
    if unknown:
        parser.error(f"unknown op(s) {unknown}; choose from {list(device_ops)}")
    if args.device == "cuda":
        reason = fastnn.cuda.unavailable_reason()
        if reason is not None:
            parser.error(f"--device cuda: {reason}")
    info = fastnn.build_info()
    if args.device == "cuda":
        results, header, run_info = bench_cuda.run(names, args.quick, args.repeats)
    else:
        cases = [case for name in names for case in OPS[name](args.quick)]
        with limited_threads(args.threads):
            results = run_cases(cases, args.repeats)
        header = (f"fastnn {info['version']} isa={info['isa']} threads={args.threads} on "
                  f"{platform.processor() or platform.machine()}; % peak is of the best FMA peak of the run or the "
                  f"copy bandwidth measured next to each case: {peak_ranges(results)}"
                  + (f"; torch {torch.__version__}" if torch else "; torch not installed")
                  + "\nconv2d rates count direct-convolution FLOPs (fastnn's Winograd path does fewer, so % peak "
                    "can pass 100%)")
        run_info = {"threads": args.threads}
    peers = [p for p in ("numpy", "torch", "cupy") if any(p in r["libraries"] for r in results)]
    print("\n" + header)
    print(markdown_table(results, peers))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build_info": info, **run_info, "results": results}, f, indent=1)
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
