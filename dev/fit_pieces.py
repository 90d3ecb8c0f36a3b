"""Fits the per-interval polynomial tables of activation_simd.cpp (AVX-512) and checks them in
float32: python dev/fit_pieces.py FUNCTION [DEGREE], FUNCTION one of gelu, gelu_slope, tanh.
Needs numpy and scipy (dev only).

f on each interval |x - c| <= 1/8, c = (j - 16) / 4 for j = 0..31, is fitted by a polynomial in
t = x - c of the given degree (default 6) minimizing the largest relative error (gelu, tanh) or
absolute error (gelu_slope, which crosses 0 and keeps absolute accuracy only), by iteratively
reweighted least squares on Chebyshev nodes. Where f(0) = 0 the interval around 0 has no constant
term, so tiny x keep their relative precision; its constant is -0, which keeps the sign of a zero
result (p t + -0 = p t, where + 0 would turn -0 into +0). Prints the C++ table and the worst
error of a float32 evaluation (Horner with one rounding per FMA, as the kernel does).
"""
import sys

import numpy as np
from scipy.special import erfc

WIDTH = 0.25
PIECES = 32
ROUNDING_MAGIC = 12582912.0  # 1.5 * 2^23: adding it rounds a float to an integer in its low bits
SQRT2 = np.sqrt(2)

# name -> (f in float64, relative fit, f(0) == 0)
FUNCTIONS = {
    "gelu": (lambda x: x * 0.5 * erfc(-x / SQRT2), True, True),
    "gelu_slope": (lambda x: 0.5 * erfc(-x / SQRT2) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi), False, False),
    "tanh": (np.tanh, True, True),
}


def fit_piece(f, relative, vanishes, centre, degree, nodes=4000, iterations=100):
    half = WIDTH / 2
    t = half * np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
    t = np.sort(np.concatenate([t, [-half, half]]))
    y = f(centre + t)
    no_constant = vanishes and centre == 0.0
    powers = range(1, degree + 1) if no_constant else range(0, degree + 1)
    basis = np.stack([t**i for i in powers], 1)
    scale = 1 / np.abs(y) if relative else np.ones_like(t)
    weights = np.ones_like(t)
    best_error, best = np.inf, None
    for _ in range(iterations):
        w = scale * np.sqrt(weights)
        solution, *_ = np.linalg.lstsq(basis * w[:, None], y * w, rcond=None)
        error = np.abs(basis @ solution - y) * scale
        if error.max() < best_error:
            best_error, best = error.max(), solution.copy()
        weights = weights * (error + 1e-300)
        weights /= weights.sum()
    coefficients = np.zeros(degree + 1)
    coefficients[list(powers)] = best
    if no_constant:
        coefficients[0] = -0.0
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
    name = sys.argv[1]
    degree = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    f, relative, vanishes = FUNCTIONS[name]
    fits = [fit_piece(f, relative, vanishes, (j - PIECES // 2) * WIDTH, degree) for j in range(PIECES)]
    table = np.array([c for c, _ in fits]).T.astype(np.float32)  # [power, piece]
    kind = "relative" if relative else "absolute"
    print(f"// {name}, degree {degree}: worst {kind} error of the fit {max(e for _, e in fits):.2e}")
    print("{{")
    for row in table:
        lines = [", ".join(f"{v:.9e}f" for v in row[k:k + 4]) for k in range(0, PIECES, 4)]
        print("    {" + ",\n     ".join(lines) + "},")
    print("}};")
    limit = np.float32(PIECES / 2 * WIDTH - WIDTH / 2)
    rng = np.random.default_rng(1)
    tiny = np.geomspace(1e-38, 1e-2, 20000)
    x = np.concatenate([np.linspace(-limit, limit, 4_000_001)[1:-1], rng.uniform(-limit, limit, 4_000_000),
                        tiny, -tiny]).astype(np.float32)
    x = x[np.abs(x) < limit]
    expected = f(x.astype(np.float64))
    got = evaluate32(table, x)
    if relative:
        error = np.abs(got - expected) / np.spacing(np.abs(expected.astype(np.float32)))
        unit = "ULP"
    else:
        error = np.abs(got - expected)
        unit = "absolute"
    worst = int(np.argmax(error))
    print(f"// float32 evaluation: worst {error[worst]:.3g} {unit} at x = {x[worst]!r} over {x.size} points")


if __name__ == "__main__":
    main()
