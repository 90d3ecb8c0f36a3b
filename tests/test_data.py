"""DataLoader batching and shuffling, the IDX reader and the (Fashion-)MNIST datasets, save/load."""
import gzip
import os

import numpy as np
import pytest

import fastnn
from fastnn.data import DataLoader, Dataset, TensorDataset
from fastnn.datasets import MNIST, FashionMNIST, read_idx


def test_tensor_dataset_indexing_and_length():
    x, y = np.arange(12, dtype=np.float32).reshape(6, 2), np.arange(6)
    dataset = TensorDataset(x, y)
    assert len(dataset) == 6
    np.testing.assert_array_equal(dataset[2][0], [4.0, 5.0])
    assert dataset[2][1] == 2
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(x, y[:5])


@pytest.mark.parametrize("n,batch_size,drop_last,sizes", [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, False, [3, 3, 3]),
    (2, 5, False, [2]),
    (2, 5, True, []),
])
def test_batch_sizes_and_drop_last(n, batch_size, drop_last, sizes):
    loader = DataLoader(TensorDataset(np.zeros((n, 2), np.float32), np.arange(n)), batch_size=batch_size,
                        drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes)
    assert [len(y._data) for _, y in batches] == sizes


def test_batches_are_tensors_float32_and_int64_in_order():
    x = np.arange(20, dtype=np.float64).reshape(10, 2)  # float64 and int32 in, float32 and int64 out
    y = np.arange(10, dtype=np.int32)
    images, labels = next(iter(DataLoader(TensorDataset(x, y), batch_size=4)))
    assert isinstance(images, fastnn.Tensor) and isinstance(labels, fastnn.Tensor)
    assert images._data.dtype == np.float32 and labels._data.dtype == np.int64
    np.testing.assert_array_equal(images._data, x[:4])
    np.testing.assert_array_equal(labels._data, [0, 1, 2, 3])


def labels_in_order(loader):
    return np.concatenate([y._data for _, y in loader])


def test_shuffle_is_a_permutation_repeatable_with_manual_seed():
    loader = DataLoader(TensorDataset(np.zeros((50, 1), np.float32), np.arange(50)), batch_size=8, shuffle=True)
    fastnn.manual_seed(123)
    first, second = labels_in_order(loader), labels_in_order(loader)
    fastnn.manual_seed(123)
    again = labels_in_order(loader)
    assert sorted(first) == list(range(50))
    assert not np.array_equal(first, np.arange(50))
    assert not np.array_equal(first, second)  # a new order every epoch
    np.testing.assert_array_equal(first, again)


def test_shuffle_with_an_explicit_generator():
    dataset = TensorDataset(np.zeros((30, 1), np.float32), np.arange(30))
    a = labels_in_order(DataLoader(dataset, batch_size=7, shuffle=True, generator=np.random.default_rng(5)))
    b = labels_in_order(DataLoader(dataset, batch_size=7, shuffle=True, generator=np.random.default_rng(5)))
    np.testing.assert_array_equal(a, b)


class Squares(Dataset):
    """A dataset without get_batch: the loader stacks its samples one by one."""

    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.full(3, i * i, dtype=np.float32), i


def test_map_style_dataset_without_get_batch_is_stacked():
    batches = list(DataLoader(Squares(), batch_size=2))
    assert [b[0]._data.shape for b in batches] == [(2, 3), (2, 3), (1, 3)]
    np.testing.assert_array_equal(batches[1][0]._data[:, 0], [4.0, 9.0])
    assert batches[1][1]._data.dtype == np.int64


def write_idx(path, array, compress):
    codes = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with open(path, "wb") as file:
        file.write(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_read_idx(tmp_path, compress, dtype):
    array = (np.arange(2 * 3 * 4) * 7 - 20).reshape(2, 3, 4).astype(dtype)
    write_idx(tmp_path / "a.idx", array, compress)
    result = read_idx(tmp_path / "a.idx")
    assert result.dtype == dtype and result.dtype.isnative
    np.testing.assert_array_equal(result, array)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 5), np.uint8), compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match="header says shape"):
        read_idx(tmp_path / "short")


def write_fake_mnist(root, n, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(root / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    write_idx(root / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_mnist_from_small_files(tmp_path, compress):
    images, labels = write_fake_mnist(tmp_path, 7, compress)
    dataset = MNIST(root=tmp_path, train=False)
    assert len(dataset) == 7
    assert dataset.data.shape == (7, 1, 28, 28) and dataset.data.dtype == np.float32
    assert dataset.targets.dtype == np.int64
    np.testing.assert_allclose(dataset.data[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(dataset.targets, labels)
    normalized = MNIST(root=tmp_path, train=False, normalize=True)
    np.testing.assert_allclose(normalized.data, (dataset.data - 0.1307) / 0.3081, rtol=1e-5, atol=1e-6)


def test_transforms_apply_per_sample_also_in_batches(tmp_path):
    write_fake_mnist(tmp_path, 5, compress=True)
    dataset = FashionMNIST(root=tmp_path, train=False, transform=lambda x: x[:, ::2, ::2],
                           target_transform=lambda y: y + 100)
    images, labels = next(iter(DataLoader(dataset, batch_size=5)))
    assert images._data.shape == (5, 1, 14, 14)
    np.testing.assert_array_equal(labels._data, dataset.targets + 100)


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        FashionMNIST(root=tmp_path)


def fashion_mnist_or_skip(train):
    try:
        return FashionMNIST(train=train)
    except FileNotFoundError as error:
        pytest.skip(str(error))


def test_real_fashion_mnist():
    test = fashion_mnist_or_skip(train=False)
    assert len(test) == 10000 and test.data.shape == (10000, 1, 28, 28)
    assert 0.0 == test.data.min() and test.data.max() == 1.0
    assert 0.25 < test.data.mean() < 0.32  # the classic mean is 0.2860
    np.testing.assert_array_equal(np.bincount(test.targets), [1000] * 10)
    assert len(fashion_mnist_or_skip(train=True)) == 60000


def test_save_load_round_trip(tmp_path):
    state = {"weight": np.arange(6, dtype=np.float32).reshape(2, 3), "step": 3, "lr": 0.1, "name": "adam",
             "betas": (0.9, 0.999), "nested": {0: {"buf": np.ones(2, np.int64)}, "none": None, "flags": [True]}}
    path = tmp_path / "state.ckpt"
    fastnn.save(state, path)
    assert os.path.exists(path)  # written under exactly that name
    loaded = fastnn.load(path)
    assert loaded.keys() == state.keys() and loaded["nested"].keys() == state["nested"].keys()
    np.testing.assert_array_equal(loaded["weight"], state["weight"])
    assert loaded["weight"].dtype == np.float32 and loaded["nested"][0]["buf"].dtype == np.int64
    assert (loaded["step"], loaded["lr"], loaded["name"], loaded["betas"]) == (3, 0.1, "adam", (0.9, 0.999))
    assert loaded["nested"]["none"] is None and loaded["nested"]["flags"] == [True]


def test_save_load_tensors_and_refuses_code(tmp_path):
    fastnn.save({"w": fastnn.tensor(np.ones(3, np.float32))}, tmp_path / "t.npz")
    loaded = fastnn.load(tmp_path / "t.npz")
    assert isinstance(loaded["w"], fastnn.Tensor)
    np.testing.assert_array_equal(loaded["w"]._data, np.ones(3))
    with pytest.raises(TypeError, match="cannot store a function"):
        fastnn.save({"f": lambda: 0}, tmp_path / "f.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not written by fastnn.save"):
        fastnn.load(tmp_path / "plain.npz")
