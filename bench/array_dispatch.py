"""Per-call cost of fastnn.ops' array dispatch (python/fastnn/ops/_arrays.py), on an op small
enough that the dispatch is most of it: relu on 64 floats.

    python bench/array_dispatch.py

Rows: the bare kernel binding, the op without the dispatch wrapper, ops.relu on NumPy, on a
torch tensor (zero-copy in and out), on one that requires grad, and torch.relu for scale.
Each figure is the best of 300 interleaved rounds of 1000 calls, so a busy machine shows in
the spread between runs, not in the figure.
"""
import timeit

import numpy as np

from fastnn import _C, ops
from fastnn.ops import activation


def main():
    x = np.random.default_rng(0).standard_normal(64, dtype=np.float32)
    cases = {"_C.relu": lambda: _C.relu(x), "op without dispatch": lambda: activation.relu(x),
             "ops.relu(numpy)": lambda: ops.relu(x)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        t, t_grad = torch.from_numpy(x), torch.from_numpy(x.copy()).requires_grad_()
        cases.update({"ops.relu(torch)": lambda: ops.relu(t),
                      "ops.relu(torch, requires_grad)": lambda: ops.relu(t_grad), "torch.relu": lambda: torch.relu(t)})
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(300):
        for name, call in cases.items():
            best[name] = min(best[name], timeit.timeit(call, number=1000) / 1000)
    for name, seconds in best.items():
        print(f"{name:32s} {seconds * 1e6:6.2f} us")


if __name__ == "__main__":
    main()
