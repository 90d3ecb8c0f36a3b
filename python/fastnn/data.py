"""Datasets and the DataLoader, with torch.utils.data's names.

A dataset backed by whole arrays offers `get_batch(indices)`, returning the batch's fields
already stacked; the DataLoader then builds each batch with one fancy-indexing gather per
field instead of stacking samples one by one in Python (60 000 Fashion-MNIST images a second
is a loop the training example cannot afford).

Batches stay on the device their dataset's arrays are on (the host, usually); a training loop
moves each one to the model's device with .to(device), as with torch.
"""
import math

import numpy as np

from . import random
from .tensor import Tensor, array_module
from .nn import _checks

__all__ = ["Dataset", "TensorDataset", "DataLoader"]


class Dataset:
    """A map-style dataset: dataset[i] is one sample, len(dataset) the number of samples."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


def _array(value):
    """The array behind a Tensor, a NumPy or CuPy array as it is, anything else as a NumPy array."""
    value = getattr(value, "_data", value)
    return value if array_module(value) is not np else np.asarray(value)


class TensorDataset(Dataset):
    """Samples are the rows of equally long arrays or Tensors: dataset[i] = (a[i], b[i], ...)."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = tuple(_array(t) for t in tensors)
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: all arrays must have the same first dimension, got {lengths}")

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def __len__(self):
        return len(self.arrays[0])

    def get_batch(self, indices):
        return tuple(a[array_module(a).asarray(indices)] for a in self.arrays)


def _collate(samples):
    """Stacks samples field by field: a list of (x, y) tuples becomes (stacked x, stacked y)."""
    if isinstance(samples[0], (tuple, list)):
        return tuple(_stack([s[i] for s in samples]) for i in range(len(samples[0])))
    return _stack(samples)


def _stack(values):
    arrays = [_array(v) for v in values]
    return array_module(arrays[0]).stack(arrays)


def _to_tensor(array):
    """A fastnn Tensor holding a batch field: floating data as float32, integers as int64."""
    array = _array(array)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32, copy=False)
    elif np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        array = array.astype(np.int64, copy=False)
    return Tensor(array_module(array).ascontiguousarray(array))


class DataLoader:
    """Iterates over a dataset in batches of fastnn Tensors.

    shuffle draws a new order every epoch from `generator` (a numpy.random.Generator), or from
    fastnn's global one (fastnn.manual_seed) when none is given. drop_last drops a last batch
    smaller than batch_size.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None):
        self.dataset = dataset
        self.batch_size = _checks.integer("DataLoader", "batch_size", batch_size, 1)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            order = (self.generator or random.generator()).permutation(n)
        else:
            order = np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self._fetch(order[start:start + self.batch_size])

    def _fetch(self, indices):
        if hasattr(self.dataset, "get_batch"):
            batch = self.dataset.get_batch(indices)
        else:
            batch = _collate([self.dataset[int(i)] for i in indices])
        if isinstance(batch, tuple):
            return tuple(_to_tensor(field) for field in batch)
        return _to_tensor(batch)
