"""Fits the table of kGeluPieceCoefficients (csrc/cpu/simd/activation_simd.cpp) and checks it in
float32: python dev/fit_gelu_pieces.py [DEGREE]. Needs numpy and scipy (dev only).

x Phi(x) on each interval |x - c| <= 1/8, c = (j - 16) / 4 for j = 0..31, is fitted by a
polynomial in t = x - c of the given degree (default 6) minimizing the largest relative error
(iteratively reweighted least squares on Chebyshev nodes). The interval around 0 has no constant
term, so that tiny x keep their relative precision. Prints the C++ table and the worst error of a
float32 evaluation (Horner with one rounding per FMA, as the kernel does) in ULP.
"""
import sys

import numpy as np
from scipy.special import erfc

WIDTH = 0.25
PIECES = 32
ROUNDING_MAGIC = 12582912.0  # 1.5 * 2^23: adding it rounds a float to an integer in its low bits


def gelu64(x):
    return x * 0.5 * erfc(-x / np.sqrt(2))


def fit_piece(centre, degree, nodes=4000, iterations=100):
    half = WIDTH / 2
    t = half * np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
    t = np.sort(np.concatenate([t, [-half, half]]))
    y = gelu64(centre + t)
    powers = range(1, degree + 1) if centre == 0.0 else range(0, degree + 1)
    basis = np.stack([t**i for i in powers], 1)
    relative = 1 / np.abs(y)
    weights = np.ones_like(t)
    best_error, best = np.inf, None
    for _ in range(iterations):
        w = relative * np.sqrt(weights)
        solution, *_ = np.linalg.lstsq(basis * w[:, None], y * w, rcond=None)
        error = np.abs(basis @ solution - y) * relative
        if error.max() < best_error:
            best_error, best = error.max(), solution.copy()
        weights = weights * (error + 1e-300)
        weights /= weights.sum()
    coefficients = np.zeros(degree + 1)
    coefficients[list(powers)] = best
    return coefficients, best_error


def evaluate32(table, x):
    """The kernel's arithmetic in float32: the piece from round(4x), t = x - c, then Horner."""
    x = x.astype(np.float32)
    offset = np.float32(ROUNDING_MAGIC + PIECES / 2)
    rounded = (x.astype(np.float64) * 4 + np.float64(offset)).astype(np.float32)
    piece = rounded.view(np.int32) & (PIECES - 1)
    t = (x.astype(np.float64) - 0.25 * (rounded - offset).astype(np.float64)).astype(np.float32)
    degree = table.shape[0] - 1
    p = table[degree, piece]
    for i in range(degree - 1, -1, -1):
        p = (p.astype(np.float64) * t + table[i, piece]).astype(np.float32)
    return p


def main():
    degree = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    fits = [fit_piece((j - PIECES // 2) * WIDTH, degree) for j in range(PIECES)]
    table = np.array([c for c, _ in fits]).T.astype(np.float32)  # [power, piece]
    print(f"// degree {degree}: worst relative error of the fit {max(e for _, e in fits):.2e}")
    print(f"alignas(64) constexpr float kGeluPieceCoefficients[{degree + 1}][{PIECES}] = {{")
    for row in table:
        lines = [", ".join(f"{v:.9e}f" for v in row[k:k + 4]) for k in range(0, PIECES, 4)]
        print("    {" + ",\n     ".join(lines) + "},")
    print("};")
    limit = np.float32(PIECES / 2 * WIDTH - WIDTH / 2)
    rng = np.random.default_rng(1)
    tiny = np.geomspace(1e-38, 1e-2, 20000)
    x = np.concatenate([np.linspace(-limit, limit, 4_000_001)[1:-1], rng.uniform(-limit, limit, 4_000_000),
                        tiny, -tiny]).astype(np.float32)
    x = x[np.abs(x) < limit]
    expected = gelu64(x.astype(np.float64))
    error = np.abs(evaluate32(table, x) - expected) / np.spacing(np.abs(expected.astype(np.float32)))
    worst = int(np.argmax(error))
    print(f"// float32 evaluation: worst {error[worst]:.2f} ULP at x = {x[worst]!r} over {x.size} points")


if __name__ == "__main__":
    main()
