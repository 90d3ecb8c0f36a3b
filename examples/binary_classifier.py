"""A small MLP binary classifier (sigmoid output, BCELoss, SGD with momentum) on two interleaved
spirals generated with NumPy; prints the loss as it trains and the train/test accuracy.

    python examples/binary_classifier.py --epochs 30
"""
import argparse

import numpy as np

import fastnn
from fastnn import nn
from fastnn.data import DataLoader, TensorDataset


def two_spirals(n, noise, rng):
    """n points per class on two interleaved spiral arms (one the other rotated by 180 degrees),
    scaled into about [-1, 1]^2; labels 0 and 1 as float32 of shape (2n, 1), as BCELoss wants."""
    angle = np.sqrt(rng.uniform(0, 1, n)) * 2.5 * np.pi  # sqrt: points spread evenly along the arm
    arm = np.stack([angle * np.cos(angle), angle * np.sin(angle)], axis=1) / (2.5 * np.pi)
    points = np.concatenate([arm, -arm]) + rng.normal(0, noise, (2 * n, 2))
    labels = np.concatenate([np.zeros(n), np.ones(n)])[:, None]
    return points.astype(np.float32), labels.astype(np.float32)


def accuracy(model, points, labels):
    with fastnn.no_grad():
        predicted = model(fastnn.tensor(points))._data > 0.5
    return float(np.mean(predicted == (labels > 0.5)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--points", type=int, default=1000, help="training points per class")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    fastnn.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_points, train_labels = two_spirals(args.points, 0.02, rng)
    test_points, test_labels = two_spirals(500, 0.02, rng)
    loader = DataLoader(TensorDataset(train_points, train_labels), batch_size=32, shuffle=True)

    model = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1), nn.Sigmoid())
    criterion = nn.BCELoss()
    optimizer = fastnn.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        if epoch % 5 == 0 or epoch == args.epochs:
            print(f"epoch {epoch:4d}: loss {total / len(train_labels):.4f}, "
                  f"train accuracy {accuracy(model, train_points, train_labels):.2%}")
    test_accuracy = accuracy(model, test_points, test_labels)
    print(f"test accuracy: {test_accuracy:.2%}")
    return test_accuracy


if __name__ == "__main__":
    main()
