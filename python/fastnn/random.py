"""fastnn's global random state: initialization, dropout, randn/rand and DataLoader shuffling
all draw from one NumPy Generator, so `fastnn.manual_seed(n)` makes a run repeatable."""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reseed every random draw fastnn makes."""
    global _generator
    _generator = np.random.default_rng(int(seed))


def generator() -> np.random.Generator:
    """The current global Generator (changes when manual_seed is called)."""
    return _generator
