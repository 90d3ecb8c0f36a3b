"""Train the PyTorch MNIST example's CNN on Fashion-MNIST with fastnn, optionally beside PyTorch.

    python -m fastnn.demo --epochs 1                # what examples/train_fashion_mnist.py runs
    python -m fastnn.demo --max-batches 200 --compare-torch
    python -m fastnn.demo --device cuda             # on the GPU (needs fastnn[cuda])

fastnn.nn and torch.nn share their names, so one function builds the model for either and
one loop trains it; with --compare-torch both start from the same weights and see the same
batches in the same order, and only the framework differs.
"""
import argparse
import math
import os
import time

import numpy as np

import fastnn
from fastnn.data import DataLoader
from fastnn.datasets import FashionMNIST


def mnist_cnn(nn, channels=(32, 64), hidden=128):
    """The CNN of PyTorch's MNIST example, built from `nn` (fastnn.nn or torch.nn); narrower
    channels and hidden width give the same shape of network at a fraction of the cost."""
    return nn.Sequential(
        nn.Conv2d(1, channels[0], 3), nn.ReLU(),
        nn.Conv2d(channels[0], channels[1], 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(channels[1] * 12 * 12, hidden), nn.ReLU(), nn.Dropout(0.5),  # 28 -> 26 -> 24 -> 12
        nn.Linear(hidden, 10), nn.LogSoftmax(dim=1),
    )


class Framework:
    """What the training loop needs from fastnn or torch: nn, optim, no_grad, and how to turn a
    batch from the DataLoader (fastnn Tensors on the CPU) into the framework's tensors on the
    model's device."""

    def __init__(self, name, module, convert):
        self.name, self.nn, self.optim, self.no_grad = name, module.nn, module.optim, module.no_grad
        self.convert = convert


def fastnn_framework(device):
    return Framework("fastnn", fastnn, lambda t: t.to(device))


FASTNN = fastnn_framework("cpu")


class Progress:
    """A tqdm bar showing loss and img/s; without tqdm, a plain line every `every` batches."""

    def __init__(self, total, desc, every=50):
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="batch")
        except ImportError:
            self.bar = None
        self.desc, self.total, self.every, self.count = desc, total, every, 0

    def update(self, loss, images_per_second):
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_second:.0f}", refresh=False)
            self.bar.update()
        elif self.count % self.every == 0 or self.count == self.total:
            print(f"{self.desc}: batch {self.count}/{self.total} loss {loss:.4f} {images_per_second:.0f} img/s",
                  flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def train_epoch(framework, model, optimizer, loader, max_batches=None, desc="train"):
    """One pass over loader (at most max_batches batches); returns (mean loss, img/s)."""
    model.train()
    total = min(len(loader), max_batches or len(loader))
    progress = Progress(total, desc)
    images, loss_sum, start = 0, 0.0, time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step == total:
            break
        x, y = framework.convert(x), framework.convert(y)
        optimizer.zero_grad()
        loss = framework.nn.functional.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        value = loss.item()
        loss_sum += value
        images += len(y)
        progress.update(value, images / (time.perf_counter() - start))
    progress.close()
    return loss_sum / max(total, 1), images / (time.perf_counter() - start)


def evaluate(framework, model, loader):
    """Fraction of loader's samples the model classifies correctly."""
    model.eval()
    correct, seen = 0, 0
    with framework.no_grad():
        for x, y in loader:
            x, y = framework.convert(x), framework.convert(y)
            correct += (model(x).argmax(dim=1) == y).sum().item()
            seen += len(y)
    return correct / seen


def run(framework, model, train_set, test_set, args):
    """Trains for args.epochs with Adam, printing test accuracy after each epoch; returns
    (optimizer, img/s over all epochs, final test accuracy)."""
    optimizer = framework.optim.Adam(model.parameters(), lr=args.lr)
    # The same seed for both frameworks: the same batches in the same order.
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                              generator=np.random.default_rng(args.seed))
    test_loader = DataLoader(test_set, batch_size=1000)
    rates, accuracy = [], math.nan
    for epoch in range(1, args.epochs + 1):
        loss, rate = train_epoch(framework, model, optimizer, train_loader, args.max_batches,
                                 desc=f"{framework.name} epoch {epoch}")
        accuracy = evaluate(framework, model, test_loader)
        rates.append(rate)
        print(f"{framework.name} epoch {epoch}: train loss {loss:.4f}, {rate:.0f} img/s, "
              f"test accuracy {accuracy:.2%}", flush=True)
    return optimizer, float(np.mean(rates)), accuracy


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-batches", type=int, default=None, help="stop each epoch after this many batches")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: fastnn's default)")
    parser.add_argument("--device", default="cpu", help="where the model trains: cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--checkpoint", default="checkpoints/fashion_mnist_cnn.npz",
                        help="where fastnn.save writes the model and optimizer state")
    parser.add_argument("--compare-torch", action="store_true",
                        help="also train the same model with PyTorch on the same device, same data and settings")
    return parser.parse_args(argv)


def compare_with_torch(args, initial, train_set, test_set, rate, accuracy):
    """Trains the same model from the same initial weights with PyTorch on args.device, then prints
    both frameworks' speed and accuracy."""
    try:
        import torch
    except ImportError:
        print("--compare-torch: PyTorch is not installed, skipped")
        return
    torch.manual_seed(args.seed)
    torch.set_num_threads(fastnn.get_num_threads())
    model = mnist_cnn(torch.nn)
    model.load_state_dict({name: torch.from_numpy(value) for name, value in initial.items()})
    model.to(args.device)
    framework = Framework("torch", torch, lambda t: torch.from_numpy(t._data).to(args.device))
    _, torch_rate, torch_accuracy = run(framework, model, train_set, test_set, args)
    print(f"\n{'':8}{'img/s':>10}{'test accuracy':>16}")
    print(f"{'fastnn':8}{rate:>10.0f}{accuracy:>16.2%}")
    print(f"{'torch':8}{torch_rate:>10.0f}{torch_accuracy:>16.2%}")
    print(f"fastnn / torch speed: {rate / torch_rate:.2f}x")


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        fastnn.set_num_threads(args.threads)
    fastnn.manual_seed(args.seed)
    train_set = FashionMNIST(args.root, train=True, normalize=True)
    test_set = FashionMNIST(args.root, train=False, normalize=True)
    where = (f"{fastnn.get_num_threads()} threads, {fastnn.build_info()['isa']} kernels" if args.device == "cpu"
             else f"device {args.device}")
    print(f"Fashion-MNIST: {len(train_set)} training, {len(test_set)} test images; {where}", flush=True)

    model = mnist_cnn(fastnn.nn)
    initial = {name: np.array(value) for name, value in model.state_dict().items()}
    model.to(args.device)
    optimizer, rate, accuracy = run(fastnn_framework(args.device), model, train_set, test_set, args)
    if args.checkpoint:
        os.makedirs(os.path.dirname(os.path.abspath(args.checkpoint)), exist_ok=True)
        fastnn.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epochs": args.epochs},
                    args.checkpoint)
        print(f"checkpoint saved to {args.checkpoint}")

    if args.compare_torch:
        compare_with_torch(args, initial, train_set, test_set, rate, accuracy)


if __name__ == "__main__":
    main()
