"""Optimizers with PyTorch's names, defaults and update rules (torch.optim's documentation).

Each step loops over parameters, never over elements. Adam and AdamW call one fused kernel
per parameter (adam_step, from fastnn._C or, for a parameter on the GPU, fastnn._C.cuda); the
others are a handful of whole-array operations written in place (out=, *=, +=) into the
parameter's backing array and the optimizer's state arrays, with a scratch array or two per
parameter per step, in NumPy or CuPy: the parameter's own array module (xp).
"""
import collections.abc
import math
import numbers

import numpy as np

from ..autograd import enable_grad
from ..ops._arrays import kernels
from ..tensor import Tensor, _host, array_module
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]


def _array(value):
    """The NumPy or CuPy array behind a fastnn Tensor, or the value itself as an array."""
    data = getattr(value, "_data", value)
    return array_module(data).asarray(data)


class Optimizer:
    """Base class: param_groups (a list of dicts holding 'params' and hyper-parameters, filled
    from `defaults`), `state` (a dict of per-parameter dicts keyed by the parameter), zero_grad,
    state_dict / load_state_dict.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        if isinstance(params, Tensor) or not isinstance(params, collections.abc.Iterable):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, got "
                            f"{type(params).__name__} (pass model.parameters() or [tensor])")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(group["params"]):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: params[{i}] must be a fastnn Tensor, got {type(p).__name__}")
        seen = {p for g in self.param_groups for p in g["params"]}
        if any(p in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad._data.fill(0)

    def step(self, closure=None):
        """One update of every parameter that has a gradient. closure, if given, re-evaluates the
        model and its gradients first (with grad mode on, as torch) and its loss is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    state = self.state.setdefault(p, {})
                    self._update(p._data, _array(p.grad), state, group)
        return loss

    def _update(self, param, grad, state, group):
        raise NotImplementedError

    def state_dict(self):
        """{'state': {index: {name: array or number}}, 'param_groups': [{..., 'params': [index]}]},
        parameters numbered in param_groups order, as torch does. Holds references, not copies."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(p, len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[p]: dict(value) for p, value in self.state.items() if p in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restores hyper-parameters and state (copied) saved from an optimizer over the same
        parameters in the same order; the parameters themselves stay this optimizer's."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        params = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"parameter group {i} has {len(group['params'])} parameters, "
                                 f"the loaded state dict has {len(saved['params'])}")
            params.update(zip((int(k) for k in saved["params"]), group["params"]))
        self.state = {}
        for key, value in state_dict["state"].items():
            p = params[int(key)]
            self.state[p] = {name: _copy_state(v, p._data) for name, v in value.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})


def _copy_state(value, param):
    """Arrays shaped like the parameter are copied in its dtype onto its device (a 0-d parameter's
    moments too); numbers are kept, and so are counts saved as 0-d arrays (fastnn.save's)."""
    if isinstance(value, numbers.Number):
        return value
    array = _array(value)
    if array.ndim == 0 and (array.shape != param.shape or array.dtype.kind in "iub"):
        return array.item()
    xp = array_module(param)
    # NumPy refuses to convert a CuPy array implicitly: GPU state going to host parameters is copied with .get().
    return xp.array(_host(array) if xp is np else array, dtype=param.dtype)


def _check(name, value):
    """Rejects negative (and NaN) hyper-parameters, with torch's message."""
    if not value >= 0.0:
        raise ValueError(f"Invalid {name}: {value}")


def _decayed(grad, param, weight_decay):
    """grad + weight_decay * param as a new array (the gradient itself is never modified)."""
    if weight_decay == 0:
        return grad
    decayed = array_module(param).multiply(param, weight_decay)
    decayed += grad
    return decayed


class SGD(Optimizer):
    """g = grad + weight_decay*p; with momentum: b = g (first step) else momentum*b +
    (1-dampening)*g, and g = g + momentum*b (nesterov) or b; p -= lr*g."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        _check("learning rate", lr)
        _check("momentum value", momentum)
        _check("weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, param, grad, state, group):
        xp, momentum = array_module(param), group["momentum"]
        scratch = xp.empty_like(param)
        g = _decayed(grad, param, group["weight_decay"])
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = xp.array(g, dtype=param.dtype)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = xp.add(g, momentum * buf, out=scratch) if group["nesterov"] else buf
        xp.multiply(g, group["lr"], out=scratch)
        param -= scratch


class Adam(Optimizer):
    """m = beta1*m + (1-beta1)*g, v = beta2*v + (1-beta2)*g^2 (v_max = max(v_max, v) with
    amsgrad), p -= lr * m/(1-beta1^t) / (sqrt(v/(1-beta2^t)) + eps), where g = grad +
    weight_decay*p (Adam's L2 penalty; AdamW decays p directly instead)."""

    _decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False):
        _check("learning rate", lr)
        _check("epsilon value", eps)
        _check("weight_decay value", weight_decay)
        if len(betas) != 2:
            raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _update(self, param, grad, state, group):
        xp, lr, weight_decay = array_module(param), group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros(param.shape, param.dtype),
                         exp_avg_sq=xp.zeros(param.shape, param.dtype))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros(param.shape, param.dtype)
        state["step"] += 1
        t = state["step"]
        # One fused pass on the parameter's device (the kernel wants contiguous arrays; a strided
        # parameter is updated through a contiguous copy). The bias corrections fold into two
        # scalars, as torch's implementation does: lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps).
        # The grad through astype(order="C"): ascontiguousarray (NumPy's and CuPy's) makes a 0-d one 1-d.
        target = param if param.flags.c_contiguous else xp.ascontiguousarray(param)
        kernels(target).adam_step(
            target, grad.astype(param.dtype, order="C", copy=False), state["exp_avg"], state["exp_avg_sq"],
            state.get("max_exp_avg_sq"), lr=lr, beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=weight_decay,
            decoupled_weight_decay=self._decoupled_weight_decay, step_size=lr / (1 - beta1 ** t),
            bias_correction2_sqrt=math.sqrt(1 - beta2 ** t))
        if target is not param:
            param[...] = target


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr*weight_decay before the Adam step, the
    gradient left alone (Loshchilov & Hutter). Default weight_decay=1e-2, as torch."""

    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """g = grad + weight_decay*p; v = alpha*v + (1-alpha)*g^2; centered: v~ = v - mean_g^2 with
    mean_g = alpha*mean_g + (1-alpha)*g; step = g/(sqrt(v~) + eps); with momentum:
    b = momentum*b + step, p -= lr*b, else p -= lr*step."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
        _check("learning rate", lr)
        _check("epsilon value", eps)
        _check("momentum value", momentum)
        _check("weight_decay value", weight_decay)
        _check("alpha value", alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, param, grad, state, group):
        xp, alpha, momentum = array_module(param), group["alpha"], group["momentum"]
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(param))
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(param)
        state["step"] += 1
        g = _decayed(grad, param, group["weight_decay"])
        # out=: for a 0-d parameter a new product would be a NumPy scalar, which out= below rejects.
        square_avg, denom = state["square_avg"], xp.multiply(g, g, out=xp.empty_like(param))
        denom *= 1 - alpha
        square_avg *= alpha
        square_avg += denom
        if group["centered"]:
            grad_avg = state["grad_avg"]
            xp.multiply(g, 1 - alpha, out=denom)
            grad_avg *= alpha
            grad_avg += denom
            xp.multiply(grad_avg, grad_avg, out=denom)
            xp.subtract(square_avg, denom, out=denom)
        else:
            xp.copyto(denom, square_avg)
        xp.sqrt(denom, out=denom)
        denom += group["eps"]
        xp.divide(g, denom, out=denom)
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += denom
            xp.multiply(buf, group["lr"], out=denom)
        else:
            denom *= group["lr"]
        param -= denom


class Adagrad(Optimizer):
    """clr = lr / (1 + (t-1)*lr_decay); g = grad + weight_decay*p; sum += g^2;
    p -= clr * g / (sqrt(sum) + eps). The sum starts at initial_accumulator_value."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10):
        _check("learning rate", lr)
        _check("lr_decay value", lr_decay)
        _check("weight_decay value", weight_decay)
        _check("initial_accumulator_value", initial_accumulator_value)
        _check("epsilon value", eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _update(self, param, grad, state, group):
        xp = array_module(param)
        if not state:
            state.update(step=0, sum=xp.full_like(param, group["initial_accumulator_value"]))
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        g = _decayed(grad, param, group["weight_decay"])
        total, denom = state["sum"], xp.multiply(g, g, out=xp.empty_like(param))  # an array, as in RMSprop
        total += denom
        xp.sqrt(total, out=denom)
        denom += group["eps"]
        xp.divide(g, denom, out=denom)
        denom *= clr
        param -= denom
