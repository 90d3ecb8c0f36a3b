"""Softmax, log_softmax and the classifier losses nll_loss and cross_entropy."""
from ._arrays import as_float32, as_index, as_optional_float32, integer, kernels, real, text

__all__ = ["softmax", "softmax_backward", "log_softmax", "log_softmax_backward", "nll_loss", "nll_loss_backward",
           "cross_entropy", "cross_entropy_backward"]


def softmax(input, dim=-1):
    """exp(input) / sum(exp(input)) along `dim` (any rank; a 0-d input gives 1).

    Stable for large logits (the max is subtracted); -inf entries give 0, and a slice of all
    -inf gives NaN, like torch.
    """
    x = as_float32("softmax", "input", input)
    return kernels(x).softmax(x, integer("softmax", "dim", dim))


def softmax_backward(grad_output, input, dim=-1, saved=None):
    """(grad_input,) of softmax; `saved` = the forward's output spares recomputing it."""
    op = "softmax_backward"
    g = as_float32(op, "grad_output", grad_output)
    return kernels(g).softmax_backward(g, as_float32(op, "input", input), integer(op, "dim", dim),
                                       as_optional_float32(op, "saved", saved))


def log_softmax(input, dim=-1):
    """input - logsumexp(input) along `dim`; -inf entries stay -inf, an all -inf slice gives NaN."""
    x = as_float32("log_softmax", "input", input)
    return kernels(x).log_softmax(x, integer("log_softmax", "dim", dim))


def log_softmax_backward(grad_output, input, dim=-1, saved=None):
    """(grad_input,) of log_softmax; `saved` = the forward's output spares recomputing it."""
    op = "log_softmax_backward"
    g = as_float32(op, "grad_output", grad_output)
    return kernels(g).log_softmax_backward(g, as_float32(op, "input", input), integer(op, "dim", dim),
                                           as_optional_float32(op, "saved", saved))


def _loss_arrays(op, input, target, weight):
    return as_float32(op, "input", input), as_index(op, "target", target), as_optional_float32(op, "weight", weight)


def _loss_options(op, ignore_index, reduction):
    return integer(op, "ignore_index", ignore_index), text(op, "reduction", reduction)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class-index targets given log-probabilities.

    input (N, C), (N, C, d1, ...) or (C,); target of integer class indices shaped like input
    without C. reduction 'mean' is sum(weight[t] * loss) / sum(weight[t]) over targets other
    than ignore_index (NaN when there are none), 'sum' their sum, 'none' one loss per target.
    """
    x, t, w = _loss_arrays("nll_loss", input, target, weight)
    return kernels(x).nll_loss(x, t, w, *_loss_options("nll_loss", ignore_index, reduction))


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
    """(grad_input, None, None): targets have no gradient and the class weights are constants."""
    op = "nll_loss_backward"
    g = as_float32(op, "grad_output", grad_output)
    x, t, w = _loss_arrays(op, input, target, weight)
    return kernels(g).nll_loss_backward(g, x, t, w, *_loss_options(op, ignore_index, reduction))


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """nll_loss(log_softmax(input, dim=1), target) in one fused kernel, with torch's label smoothing.

    Shapes, weight, ignore_index and reduction as nll_loss; targets are class indices (class
    probabilities are not supported).
    """
    x, t, w = _loss_arrays("cross_entropy", input, target, weight)
    return kernels(x).cross_entropy(x, t, w, *_loss_options("cross_entropy", ignore_index, reduction),
                                    real("cross_entropy", "label_smoothing", label_smoothing))


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    """(grad_input, None, None): targets have no gradient and the class weights are constants."""
    op = "cross_entropy_backward"
    g = as_float32(op, "grad_output", grad_output)
    x, t, w = _loss_arrays(op, input, target, weight)
    return kernels(g).cross_entropy_backward(g, x, t, w, *_loss_options(op, ignore_index, reduction),
                                             real(op, "label_smoothing", label_smoothing))
