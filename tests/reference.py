"""Plain NumPy references for every fastnn op and its backward, computed in float64.

Written to be obviously right rather than fast. Each `<op>_backward(grad_output, *arrays,
**kwargs)` returns one gradient per array argument of `<op>`, like fastnn.ops.
"""
import math

import numpy as np


def f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


# ---- gemm: matmul, linear ----

def matmul(a, b):
    return f64(a) @ f64(b)


def matmul_backward(grad_output, a, b):
    g, a, b = f64(grad_output), f64(a), f64(b)
    grad_a = g @ np.swapaxes(b, -1, -2)
    grad_b = np.swapaxes(a, -1, -2) @ g
    if b.ndim == 2 and grad_b.ndim == 3:
        grad_b = grad_b.sum(axis=0)
    return grad_a, grad_b


def linear(input, weight, bias=None):
    y = f64(input) @ f64(weight).T
    return y if bias is None else y + f64(bias)


def linear_backward(grad_output, input, weight, bias=None):
    g, x, w = f64(grad_output), f64(input), f64(weight)
    rows = math.prod(x.shape[:-1])  # not -1: NumPy cannot infer it for a zero-size array
    g2, x2 = g.reshape(rows, g.shape[-1]), x.reshape(rows, x.shape[-1])
    return (g @ w).reshape(x.shape), g2.T @ x2, None if bias is None else g2.sum(axis=0)


# ---- conv2d ----

def _conv2d_setup(input, weight, stride, padding, dilation, groups):
    """The zero-padded input split into groups (N, G, C/G, H', W'), the weight split into groups
    (G, C_out/G, C/G, KH, KW), and for each kernel tap (kh, kw) the input window it meets."""
    x, w = f64(input), f64(weight)
    (sh, sw), (dh, dw) = (np.broadcast_to(v, 2) for v in (stride, dilation))
    kh_size, kw_size = w.shape[2:]
    if padding == "valid":
        pads = [(0, 0), (0, 0)]
    elif padding == "same":  # torch: the extra zero of an odd total goes after the input
        pads = [(t // 2, t - t // 2) for t in (dh * (kh_size - 1), dw * (kw_size - 1))]
    else:
        pads = [(p, p) for p in np.broadcast_to(padding, 2)]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    n, c, h, wd = xp.shape
    oh, ow = (h - dh * (kh_size - 1) - 1) // sh + 1, (wd - dw * (kw_size - 1) - 1) // sw + 1
    windows = {(kh, kw): (slice(kh * dh, kh * dh + sh * (oh - 1) + 1, sh),
                          slice(kw * dw, kw * dw + sw * (ow - 1) + 1, sw))
               for kh in range(kh_size) for kw in range(kw_size)}
    wg = w.reshape(groups, w.shape[0] // groups, *w.shape[1:])
    return xp.reshape(n, groups, c // groups, h, wd), wg, windows, pads


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    # out[n, g, o, y, x] = sum over c, kh, kw of w[g, o, c, kh, kw] * x_padded[n, g, c, y*s + kh*d, x*s + kw*d]
    xg, wg, windows, _ = _conv2d_setup(input, weight, stride, padding, dilation, groups)
    out = sum(np.einsum("ngchw,goc->ngohw", xg[..., rows, cols], wg[..., kh, kw])
              for (kh, kw), (rows, cols) in windows.items())
    out = out.reshape(out.shape[0], out.shape[1] * out.shape[2], *out.shape[3:])
    return out if bias is None else out + f64(bias)[:, None, None]


def conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    xg, wg, windows, pads = _conv2d_setup(input, weight, stride, padding, dilation, groups)
    g = f64(grad_output)
    gg = g.reshape(g.shape[0], groups, g.shape[1] // groups, *g.shape[2:])
    grad_xg = np.zeros_like(xg)
    grad_wg = np.zeros_like(wg)
    for (kh, kw), (rows, cols) in windows.items():
        grad_xg[..., rows, cols] += np.einsum("ngohw,goc->ngchw", gg, wg[..., kh, kw])
        grad_wg[..., kh, kw] = np.einsum("ngohw,ngchw->goc", gg, xg[..., rows, cols])
    grad_x = grad_xg.reshape(xg.shape[0], xg.shape[1] * xg.shape[2], *xg.shape[3:])
    (top, _), (left, _) = pads
    grad_x = grad_x[:, :, top:top + np.shape(input)[2], left:left + np.shape(input)[3]]
    return grad_x, grad_wg.reshape(np.shape(weight)), None if bias is None else g.sum(axis=(0, 2, 3))


# ---- pooling: max_pool2d, avg_pool2d ----

def _pool_pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def _pool_size(size, kernel, stride, padding, dilation, ceil_mode):
    """torch's output size: with ceil_mode the last window may overhang, but must start inside
    the input or the left padding."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _max_pool_taps(shape, kernel_size, stride, padding, dilation, ceil_mode):
    """(OH, OW), and for each output (oh, ow) its window's taps that lie in the input, in
    window order (row by row)."""
    (kh, kw), (sh, sw) = _pool_pair(kernel_size), _pool_pair(kernel_size if stride is None else stride)
    (ph, pw), (dh, dw) = _pool_pair(padding), _pool_pair(dilation)
    H, W = shape[-2:]
    OH, OW = _pool_size(H, kh, sh, ph, dh, ceil_mode), _pool_size(W, kw, sw, pw, dw, ceil_mode)
    taps = {}
    for oh in range(OH):
        for ow in range(OW):
            window = [(oh * sh - ph + i * dh, ow * sw - pw + j * dw) for i in range(kh) for j in range(kw)]
            taps[oh, ow] = [(r, c) for r, c in window if 0 <= r < H and 0 <= c < W]
    return (OH, OW), taps


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
               relu=False):
    """Padding is -inf; the index is the first maximum in window order (np.argmax's rule), or
    -1 for a window with no input tap. relu: max_pool2d(relu(input)), whose index is -1 where
    the window's max is not positive (relu's gradient there is 0)."""
    x = f64(input)
    W = x.shape[-1]
    (OH, OW), taps = _max_pool_taps(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    out = np.full(x.shape[:-2] + (OH, OW), -np.inf)
    indices = np.full(out.shape, -1, dtype=np.int64)
    for (oh, ow), window in taps.items():
        if window:
            values = np.stack([x[..., r, c] for r, c in window], axis=-1)
            rows, cols = np.array(window).T
            first = np.argmax(values, axis=-1)
            best, at = np.max(values, axis=-1), rows[first] * W + cols[first]
            out[..., oh, ow] = np.where(best < 0, 0.0, best) if relu else best
            indices[..., oh, ow] = np.where(best > 0, at, -1) if relu else at
    return (out, indices) if return_indices else out


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        return_indices=False, relu=False):
    x, g = f64(input), f64(grad_output)
    _, indices = max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True, relu=relu)
    H, W = x.shape[-2:]
    grad = np.zeros((g[..., 0, 0].size, H * W))
    outputs = indices.shape[-2] * indices.shape[-1]
    for plane, (at, value) in enumerate(zip(indices.reshape(len(grad), outputs), g.reshape(len(grad), outputs))):
        np.add.at(grad[plane], at[at >= 0], value[at >= 0])
    return (grad.reshape(x.shape),)


def _avg_pool_windows(shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """(OH, OW), and for each output (oh, ow) the (rows, cols) slices of its window inside the
    input and its divisor."""
    (kh, kw), (sh, sw) = _pool_pair(kernel_size), _pool_pair(kernel_size if stride is None else stride)
    ph, pw = _pool_pair(padding)
    H, W = shape[-2:]
    OH, OW = _pool_size(H, kh, sh, ph, 1, ceil_mode), _pool_size(W, kw, sw, pw, 1, ceil_mode)
    windows = {}
    for oh in range(OH):
        for ow in range(OW):
            h0, w0 = oh * sh - ph, ow * sw - pw
            # torch counts the padding in a window, but not the overhang past it that ceil_mode allows.
            h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)
            rows, cols = slice(max(h0, 0), min(h1, H)), slice(max(w0, 0), min(w1, W))
            if divisor_override:
                divisor = divisor_override
            elif count_include_pad:
                divisor = (h1 - h0) * (w1 - w0)
            else:
                divisor = (rows.stop - rows.start) * (cols.stop - cols.start)
            windows[oh, ow] = rows, cols, divisor
    return (OH, OW), windows


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    x = f64(input)
    (OH, OW), windows = _avg_pool_windows(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                          divisor_override)
    out = np.zeros(x.shape[:-2] + (OH, OW))
    for (oh, ow), (rows, cols, divisor) in windows.items():
        out[..., oh, ow] = x[..., rows, cols].sum(axis=(-2, -1)) / divisor
    return out


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    x, g = f64(input), f64(grad_output)
    _, windows = _avg_pool_windows(x.shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                   divisor_override)
    grad = np.zeros(x.shape)
    for (oh, ow), (rows, cols, divisor) in windows.items():
        grad[..., rows, cols] += g[..., oh, ow, None, None] / divisor
    return (grad,)


# ---- activations: relu, leaky_relu, sigmoid, tanh, gelu ----

def relu(input):
    x = f64(input)
    return np.where(x > 0, x, 0.0)


def relu_backward(grad_output, input):
    return (np.where(f64(input) > 0, f64(grad_output), 0.0),)  # relu'(0) = 0, as torch


def leaky_relu(input, negative_slope=0.01):
    x = f64(input)
    return np.where(x > 0, x, negative_slope * x)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    return (f64(grad_output) * np.where(f64(input) > 0, 1.0, negative_slope),)  # leaky'(0) = slope


def sigmoid(input):
    with np.errstate(over="ignore"):  # exp(-x) = inf gives the right limit 0
        return 1 / (1 + np.exp(-f64(input)))


def sigmoid_backward(grad_output, input):
    # s (1 - s) with 1 - sigmoid(x) = sigmoid(-x), exact in both tails.
    return (f64(grad_output) * sigmoid(input) * sigmoid(-f64(input)),)


def tanh(input):
    return np.tanh(f64(input))


def tanh_backward(grad_output, input):
    with np.errstate(over="ignore"):  # cosh = inf gives the right limit 0
        return (f64(grad_output) / np.cosh(f64(input)) ** 2,)


_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_GELU_C = np.sqrt(2 / np.pi)


def gelu(input, approximate="none"):
    x = f64(input)
    if approximate == "tanh":
        # 0.5 x (1 + tanh(u)) = x sigmoid(2u): the same function, without float64's
        # cancellation of 1 + tanh(u) for x << 0.
        return x * sigmoid(2 * _GELU_C * (x + 0.044715 * x ** 3))
    return 0.5 * x * _erfc(-x / np.sqrt(2))  # x Phi(x); erfc keeps the negative tail exact


def gelu_backward(grad_output, input, approximate="none"):
    g, x = f64(grad_output), f64(input)
    if approximate == "tanh":
        v = 2 * _GELU_C * (x + 0.044715 * x ** 3)
        dv = 2 * _GELU_C * (1 + 3 * 0.044715 * x ** 2)
        return (g * (sigmoid(v) + x * sigmoid(v) * sigmoid(-v) * dv),)
    return (g * (0.5 * _erfc(-x / np.sqrt(2)) + x * np.exp(-x ** 2 / 2) / np.sqrt(2 * np.pi)),)


# ---- softmax, log_softmax, nll_loss, cross_entropy ----

def softmax(input, dim=-1):
    x = f64(input)
    e = np.exp(x - x.max(axis=dim, keepdims=True, initial=-np.inf))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(grad_output, input, dim=-1):
    # The Jacobian of softmax is diag(y) - y y^T.
    g, y = f64(grad_output), softmax(input, dim)
    return (y * (g - (g * y).sum(axis=dim, keepdims=True)),)


def log_softmax(input, dim=-1):
    x = f64(input)
    shifted = x - x.max(axis=dim, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):  # an empty dim sums to 0: log 0 = -inf, never used
        return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def log_softmax_backward(grad_output, input, dim=-1):
    g = f64(grad_output)
    return (g - softmax(input, dim) * g.sum(axis=dim, keepdims=True),)


def _class_rows(input):
    """input (C,) or (N, C, d1, ...) as rows of C scores, one per target position."""
    x = f64(input)
    return x[None] if x.ndim == 1 else np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _rows_to_input_shape(rows, input):
    shape = np.shape(input)
    if len(shape) == 1:
        return rows[0]
    return np.moveaxis(rows.reshape(shape[:1] + shape[2:] + shape[1:2]), -1, 1)


def _reduce_loss(losses, target_weights, reduction, target):
    if reduction == "none":
        return losses.reshape(np.shape(target))
    if reduction == "sum":
        return losses.sum()
    with np.errstate(invalid="ignore", divide="ignore"):  # no counted targets: NaN, like torch
        return losses.sum() / target_weights.sum()


def _loss_grad_scales(grad_output, target_weights, reduction, count):
    """d(reduced loss) / d(loss of each position)."""
    g = f64(grad_output)
    if reduction == "none":
        return g.reshape(count)
    if reduction == "sum":
        return np.full(count, float(g))
    with np.errstate(invalid="ignore", divide="ignore"):  # no counted targets, as _reduce_loss
        return np.full(count, float(g) / target_weights.sum())


def _loss_terms(input, target, weight, ignore_index):
    rows = _class_rows(input)
    targets = np.asarray(target).reshape(-1)
    w = np.ones(rows.shape[1]) if weight is None else f64(weight)
    counted = targets != ignore_index
    target_weights = np.array([w[t] if c else 0.0 for t, c in zip(targets, counted)])
    return rows, targets, w, counted, target_weights


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    rows, targets, w, counted, target_weights = _loss_terms(input, target, weight, ignore_index)
    losses = np.array([-w[t] * rows[i, t] if counted[i] else 0.0 for i, t in enumerate(targets)])
    return _reduce_loss(losses, target_weights, reduction, target)


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
    rows, targets, w, counted, target_weights = _loss_terms(input, target, weight, ignore_index)
    scales = _loss_grad_scales(grad_output, target_weights, reduction, len(targets))
    grad = np.zeros_like(rows)
    for i, t in enumerate(targets):
        if counted[i]:
            grad[i, t] = -w[t] * scales[i]
    return _rows_to_input_shape(grad, input), None, None


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    rows, targets, w, counted, target_weights = _loss_terms(input, target, weight, ignore_index)
    logp = log_softmax(rows, dim=1)
    C = rows.shape[1]
    losses = np.array([-(1 - label_smoothing) * w[t] * logp[i, t] - label_smoothing / C * np.sum(w * logp[i])
                       if counted[i] else 0.0 for i, t in enumerate(targets)])
    return _reduce_loss(losses, target_weights, reduction, target)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    # Chain rule: d loss / d logp per row, then back through log_softmax.
    rows, targets, w, counted, target_weights = _loss_terms(input, target, weight, ignore_index)
    scales = _loss_grad_scales(grad_output, target_weights, reduction, len(targets))
    C = rows.shape[1]
    grad_logp = np.zeros_like(rows)
    for i, t in enumerate(targets):
        if counted[i]:
            grad_logp[i] = -label_smoothing / C * w * scales[i]
            grad_logp[i, t] -= (1 - label_smoothing) * w[t] * scales[i]
    grad = log_softmax_backward(grad_logp, rows, dim=1)[0]
    return _rows_to_input_shape(grad, input), None, None
