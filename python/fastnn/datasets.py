"""MNIST and Fashion-MNIST from their IDX files (gzip-compressed or not), as torchvision names them.

Images come as float32 (N, 1, 28, 28) scaled to [0, 1] (normalize=True further subtracts the
classic mean and divides by the classic std), labels as int64. Both are whole arrays, so the
DataLoader gathers batches with one fancy index (see fastnn.data).
"""
import gzip
import os
import urllib.request

import numpy as np

from .data import Dataset

__all__ = ["read_idx", "MNIST", "FashionMNIST"]

# IDX type codes (the magic number's third byte); multi-byte values are big-endian.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path):
    """The array stored in an IDX file (http://yann.lecun.com/exdb/mnist/), gzipped or not."""
    with open(path, "rb") as file:
        data = file.read()
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = int(np.prod(shape))
    if len(data) - header != count * dtype.itemsize:
        raise ValueError(f"{path}: header says shape {shape} ({count * dtype.itemsize} bytes of data) "
                         f"but the file holds {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


class MNIST(Dataset):
    """Handwritten digits. dataset[i] = (image (1, 28, 28) float32, label int64).

    root: a folder holding the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz); by default the first
    of `default_roots` that has them. download=True fetches missing files into root (or the
    last default root). transform / target_transform apply to each sample, as torchvision's.
    """

    name = "MNIST"
    url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    default_roots = ["/usr/share/datasets/mnist", os.path.expanduser("~/.cache/fastnn/datasets/mnist")]
    how_to_get = "pass root=<folder with the IDX files> or download=True"
    mean, std = 0.1307, 0.3081
    classes = [str(digit) for digit in range(10)]

    def __init__(self, root=None, train=True, transform=None, download=False, target_transform=None,
                 normalize=False):
        split = "train" if train else "t10k"
        files = [f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"]
        if download:
            root = root or self.default_roots[-1]
            self._download(root, files)
        root = root or next((r for r in self.default_roots if self._find(r, files[0])), None)
        paths = [self._find(root, f) if root else None for f in files]
        if None in paths:
            looked = root or ", ".join(self.default_roots)
            raise FileNotFoundError(f"{self.name} not found (looked for {split} IDX files in {looked}): "
                                    f"{self.how_to_get}")
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        self.root = root
        self.data = images.reshape(len(images), 1, *images.shape[1:]).astype(np.float32)
        self.data *= 1 / 255
        if normalize:
            self.data -= self.mean
            self.data *= 1 / self.std
        self.targets = labels.astype(np.int64)
        self.transform = transform
        self.target_transform = target_transform

    @staticmethod
    def _find(root, name):
        for candidate in (os.path.join(root, name), os.path.join(root, name + ".gz")):
            if os.path.isfile(candidate):
                return candidate
        return None

    def _download(self, root, files):
        os.makedirs(root, exist_ok=True)
        for name in files:
            if self._find(root, name) is None:
                target = os.path.join(root, name + ".gz")
                # Fetched under a temporary name, so an interrupted download is never taken for a file.
                urllib.request.urlretrieve(self.url + name + ".gz", target + ".part")
                os.replace(target + ".part", target)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        image, label = self.data[index], self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def get_batch(self, indices):
        """(images, labels) for an index array: one gather each unless a transform is set."""
        if self.transform is None and self.target_transform is None:
            return self.data[indices], self.targets[indices]
        samples = [self[int(i)] for i in indices]
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 28x28 grayscale clothing images in 10 classes, MNIST's format."""

    name = "Fashion-MNIST"
    url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    default_roots = ["/usr/share/datasets/fashion-mnist", os.path.expanduser("~/.cache/fastnn/datasets/fashion-mnist")]
    how_to_get = ("install it with `apt-get install dataset-fashion-mnist`, pass root=<folder with the IDX "
                  "files> or download=True")
    mean, std = 0.2860, 0.3530
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
