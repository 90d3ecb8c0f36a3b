"""Train a PyTorch CNN on Fashion-MNIST with its convolutions, pools and linears running
through fastnn's kernels, after checking its gradients against native PyTorch on one batch.

    python examples/torch_interop.py --batches 300

Only the layer classes come from fastnn.interop.torch; the model, optimizer, data and
training loop are plain PyTorch.
"""
import argparse
import time

import torch
from torch import nn

import fastnn.interop.torch as fnt
from fastnn.datasets import FashionMNIST


def make_model(layers):
    """The same CNN from torch.nn or from fastnn.interop.torch (same parameters and names)."""
    return nn.Sequential(layers.Conv2d(1, 16, 3, padding=1), layers.ReLU(), layers.MaxPool2d(2),
                         layers.Conv2d(16, 32, 3, padding=1), layers.ReLU(), layers.MaxPool2d(2),
                         nn.Flatten(), layers.Linear(32 * 7 * 7, 64), layers.ReLU(), layers.Linear(64, 10))


def gradients(model, loss_class, images, labels):
    model.zero_grad()
    loss_class()(model(images), labels).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=300, help="training batches (default 300)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    args = parser.parse_args()

    torch.manual_seed(0)
    train, test = FashionMNIST(train=True, normalize=True), FashionMNIST(train=False, normalize=True)
    train_images, train_labels = torch.from_numpy(train.data), torch.from_numpy(train.targets)
    test_images, test_labels = torch.from_numpy(test.data), torch.from_numpy(test.targets)

    native = make_model(nn)
    model = make_model(fnt)
    model.load_state_dict(native.state_dict())

    images, labels = train_images[:args.batch_size], train_labels[:args.batch_size]
    ours, theirs = gradients(model, fnt.CrossEntropyLoss, images, labels), gradients(native, nn.CrossEntropyLoss,
                                                                                       images, labels)
    print("gradients on one batch, fastnn vs native PyTorch:")
    for name, grad in ours.items():
        print(f"  {name:10s} max |difference| {float((grad - theirs[name]).abs().max()):.2e}"
              f"  (max |gradient| {float(theirs[name].abs().max()):.2e})")

    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_function = fnt.CrossEntropyLoss()
    order = torch.randperm(len(train_labels))
    start = time.perf_counter()
    for step in range(args.batches):
        batch = order[(step * args.batch_size) % len(order):][:args.batch_size]
        optimizer.zero_grad()
        loss = loss_function(model(train_images[batch]), train_labels[batch])
        loss.backward()
        optimizer.step()
        if (step + 1) % 100 == 0:
            print(f"batch {step + 1}: loss {loss.item():.3f}")
    elapsed = time.perf_counter() - start

    with torch.no_grad():
        predictions = torch.cat([model(chunk).argmax(1) for chunk in test_images.split(1000)])
    accuracy = float((predictions == test_labels).float().mean())
    print(f"trained {args.batches} batches of {args.batch_size} in {elapsed:.1f} s "
          f"({args.batches * args.batch_size / elapsed:.0f} images/s); test accuracy {accuracy:.2%}")


if __name__ == "__main__":
    main()
