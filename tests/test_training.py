"""End to end: the training example's CNN (fastnn.demo) learns real Fashion-MNIST.

300 batches of 64 with Adam through the example's own loop, but on a narrower version of its
CNN (8 and 16 channels, 64 hidden units instead of 32, 64, 128: about 15x fewer FLOPs), so the
test stays well under a minute on 2 cores; the full model runs in the example itself.
Skips when the dataset is not installed.
"""
import pathlib
import runpy

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.data import DataLoader, TensorDataset
from fastnn.datasets import FashionMNIST
from fastnn.demo import FASTNN, evaluate, mnist_cnn, train_epoch


@pytest.fixture(scope="module")
def fashion_mnist():
    try:
        return FashionMNIST(train=True, normalize=True), FashionMNIST(train=False, normalize=True)
    except FileNotFoundError as error:
        pytest.skip(str(error))


def test_cnn_learns_fashion_mnist(fashion_mnist, tmp_path):
    train_set, test_set = fashion_mnist
    fastnn.manual_seed(0)
    model = mnist_cnn(nn, channels=(8, 16), hidden=64)
    optimizer = fastnn.optim.Adam(model.parameters(), lr=1e-3)
    # 1000 test images, 100 of each class in expectation: chance is 10%.
    held_out = TensorDataset(test_set.data[:1000], test_set.targets[:1000])
    images, labels = fastnn.tensor(test_set.data[:1000]), fastnn.tensor(test_set.targets[:1000])

    def held_out_loss():
        model.eval()
        with fastnn.no_grad():
            return nn.functional.nll_loss(model(images), labels).item()

    before = held_out_loss()
    loader = DataLoader(train_set, batch_size=64, shuffle=True)
    train_loss, images_per_second = train_epoch(FASTNN, model, optimizer, loader, max_batches=300)
    after = held_out_loss()
    accuracy = evaluate(FASTNN, model, DataLoader(held_out, batch_size=500))
    print(f"held-out loss {before:.3f} -> {after:.3f}, accuracy {accuracy:.1%}, {images_per_second:.0f} img/s")
    assert np.isfinite(train_loss)
    assert after < 0.5 * before
    assert accuracy > 0.6

    # The checkpoint the example writes restores the trained model exactly.
    fastnn.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "cnn.npz")
    restored = mnist_cnn(nn, channels=(8, 16), hidden=64)
    restored.load_state_dict(fastnn.load(tmp_path / "cnn.npz")["model"])
    restored.eval()
    with fastnn.no_grad():
        np.testing.assert_array_equal(restored(images)._data, model(images)._data)


def test_binary_classifier_example_separates_the_spirals():
    example = pathlib.Path(__file__).resolve().parent.parent / "examples" / "binary_classifier.py"
    main = runpy.run_path(str(example))["main"]
    assert main(["--epochs", "30"]) > 0.95


def test_demo_trains_on_the_device(device, fashion_mnist, tmp_path, capsys):
    """The example's own entry point with --device: batches move to the model's device, and the
    checkpoint holds host arrays either way."""
    from fastnn.demo import main
    main(["--device", device, "--max-batches", "3", "--checkpoint", str(tmp_path / "cnn.npz")])
    assert "epoch 1: train loss" in capsys.readouterr().out
    model_state = fastnn.load(tmp_path / "cnn.npz")["model"]
    assert model_state and all(type(value) is np.ndarray for value in model_state.values())
