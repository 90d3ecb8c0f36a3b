"""Train the classic PyTorch MNIST-example CNN on Fashion-MNIST with fastnn.

    python examples/train_fashion_mnist.py --epochs 1 --compare-torch

The code lives in fastnn.demo (also runnable as `python -m fastnn.demo`); see --help.
"""
from fastnn.demo import main

if __name__ == "__main__":
    main()
