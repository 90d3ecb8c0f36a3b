"""The demo's training step (python -m fastnn.demo's CNN, batch 64, Adam), fastnn and PyTorch
interleaved in one process from the same weights: median ms per step and the speed ratio.

    python bench/train_step.py [THREADS] [STEPS] [--kernels]

With 1 thread it times CPU time (robust to other processes on the machine); with more, wall
time. Interleaving puts both frameworks under the same machine state, which the demo's
--compare-torch (one epoch after the other) cannot on a noisy VM. Needs torch.
--kernels then runs fastnn's step alone and prints the time per step in each fastnn._C
function by its first argument's shape, and the time outside them (Python, NumPy, allocation).
"""
import collections
import functools
import sys
import time

import numpy as np
import torch

import fastnn
from fastnn.demo import mnist_cnn


def train_step(model, optimizer, nll_loss, x, y):
    optimizer.zero_grad()
    loss = nll_loss(model(x), y)
    loss.backward()
    optimizer.step()
    loss.item()  # waits for the result, as a training loop reading its loss does


def profile_kernels(step, steps, clock):
    """Per-step time in each fastnn._C call (keyed by function and first argument's shape)."""
    totals = collections.Counter()

    def timed(name, function):
        def call(*args, **kwargs):
            start = clock()
            try:
                return function(*args, **kwargs)
            finally:
                totals[f"{name}{tuple(getattr(args[0], 'shape', ()))}"] += clock() - start
        return call

    originals = {name: getattr(fastnn._C, name) for name in dir(fastnn._C)
                 if not name.startswith("_") and callable(getattr(fastnn._C, name))}
    for name, function in originals.items():
        setattr(fastnn._C, name, timed(name, function))
    try:
        start = clock()
        for _ in range(steps):
            step()
        total = clock() - start
    finally:
        for name, function in originals.items():
            setattr(fastnn._C, name, function)
    for key, seconds in totals.most_common():
        print(f"  {key:40} {seconds / steps * 1e3:7.2f} ms")
    print(f"  {'outside fastnn._C':40} {(total - sum(totals.values())) / steps * 1e3:7.2f} ms "
          f"(of {total / steps * 1e3:.1f} ms/step)")


def main():
    args = [a for a in sys.argv[1:] if a != "--kernels"]
    threads = int(args[0]) if len(args) > 0 else 2
    steps = int(args[1]) if len(args) > 1 else 60
    fastnn.set_num_threads(threads)
    torch.set_num_threads(threads)
    clock = time.process_time if threads == 1 else time.perf_counter
    fastnn.manual_seed(0)
    fast_model, torch_model = mnist_cnn(fastnn.nn), mnist_cnn(torch.nn)
    torch_model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in fast_model.state_dict().items()})
    fast_optim = fastnn.optim.Adam(fast_model.parameters(), lr=1e-3)
    torch_optim = torch.optim.Adam(torch_model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)

    fast_step = functools.partial(train_step, fast_model, fast_optim, fastnn.nn.functional.nll_loss,
                                  fastnn.tensor(x), fastnn.tensor(y))
    torch_step = functools.partial(train_step, torch_model, torch_optim, torch.nn.functional.nll_loss,
                                   torch.from_numpy(x), torch.from_numpy(y))

    for _ in range(5):
        fast_step()
        torch_step()
    fast_times, torch_times = [], []
    for _ in range(steps):
        for run, times in ((fast_step, fast_times), (torch_step, torch_times)):
            start = clock()
            run()
            times.append(clock() - start)
    f, t = np.median(fast_times), np.median(torch_times)
    print(f"threads {threads}: fastnn {f * 1e3:.1f} ms/step ({64 / f:.0f} img/s), "
          f"torch {t * 1e3:.1f} ms/step ({64 / t:.0f} img/s), fastnn/torch speed {t / f:.2f}x")
    if "--kernels" in sys.argv:
        profile_kernels(fast_step, steps, clock)


if __name__ == "__main__":
    main()
