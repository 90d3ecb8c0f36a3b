"""The demo's training step (python -m fastnn.demo's CNN, batch 64, Adam), fastnn and PyTorch
interleaved in one process from the same weights: median ms per step and the speed ratio.

    python bench/train_step.py [THREADS] [STEPS]

With 1 thread it times CPU time (robust to other processes on the machine); with more, wall
time. Interleaving puts both frameworks under the same machine state, which the demo's
--compare-torch (one epoch after the other) cannot on a noisy VM. Needs torch.
"""
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


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 60
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


if __name__ == "__main__":
    main()
