"""Optimizers in NumPy with the signatures and update rules of ``torch.optim``.

An optimizer holds parameter groups (lists of :class:`cnnbook.scratch.nn.Parameter` with their
hyper-parameters) and per-parameter state (momentum buffers, moment estimates).
``step()`` updates every parameter that has a gradient, **in place** (so arrays shared
through ``state_dict()`` follow), using the same formulas, in the same order, as torch's
reference ("for-loop") implementations; ``zero_grad()`` resets the gradients to None.
A gradient with NaN or infinite values raises ``ValueError`` instead of silently
spoiling the weights. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> from cnnbook.scratch import nn, optim
>>> w = nn.Parameter(np.array([1.0, -2.0]))
>>> opt = optim.SGD([w], lr=0.1, momentum=0.9)
>>> for _ in range(2):
...     opt.zero_grad()
...     w.grad = 2 * w.data            # gradient of sum(w**2)
...     opt.step()
>>> w.data
array([ 0.46, -0.92])
"""
from __future__ import annotations

import numpy as np

from . import checks
from .nn import Parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]


def _check_number(name, arg, value, low=0.0, high=None, high_open=False):
    """Raise unless ``low <= value`` (and ``value < high`` or ``<= high``)."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) and value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        upper = "" if high is None else f" and {'<' if high_open else '<='} {high}"
        raise ValueError(f"{name}: {arg} must be a number >= {low}{upper}, got {value!r}")


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and ``step``.

    Parameters
    ----------
    params : iterable of Parameter, or of dicts
        ``model.parameters()``, or groups like ``[{"params": [...], "lr": 0.1}, ...]``
        whose missing hyper-parameters take the optimizer's arguments.
    defaults : dict
        The optimizer's hyper-parameters.
    """

    def __init__(self, params, defaults):
        name = type(self).__name__
        if isinstance(params, Parameter) or isinstance(params, np.ndarray):
            raise TypeError(f"{name}: params must be an iterable of Parameters (e.g. model.parameters()), "
                            f"got a single {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list; hint: did the model register its layers "
                             "(or was the parameters() generator already used up)?")
        self.defaults, self.param_groups, self.state = defaults, [], {}
        for group in groups if isinstance(groups[0], dict) else [{"params": groups}]:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a group of parameters (a dict with "params" and optional hyper-parameters)."""
        group = dict(group)
        params = [group["params"]] if isinstance(group["params"], Parameter) else list(group["params"])
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: params must be cnnbook.scratch.nn.Parameter objects "
                                f"(e.g. model.parameters()), got {type(p).__name__}")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Reset every gradient: to None (default, as torch) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self):
        """Update every parameter that has a gradient, in place."""
        name = type(self).__name__
        for g, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                checks.check_finite(f"{name}.step", f"the gradient of parameter {i} of group {g} (shape {p.shape})", p.grad)
                self._update(p, p.grad, self.state.setdefault(p, {}), group)

    def _update(self, param, grad, state, group):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, weight decay and Nesterov.

    Per step, with ``g`` the gradient: ``g += weight_decay * w``; with momentum,
    ``b = g`` at the first step, then ``b = momentum*b + (1-dampening)*g``, and
    ``g = g + momentum*b`` (Nesterov) or ``g = b``; finally ``w -= lr * g``.

    Parameters
    ----------
    params : iterable of Parameter or of dicts
    lr : float, default 1e-3
    momentum : float, default 0
    dampening : float, default 0
    weight_decay : float, default 0
        L2 penalty added to the gradient.
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0``.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        for arg, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            _check_number("SGD", arg, value)
        _check_number("SGD", "dampening", dampening)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum={momentum}, "
                             f"dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, param, grad, state, group):
        momentum = group["momentum"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        param.data -= group["lr"] * grad


class Adam(Optimizer):
    """Adam: step sizes from running averages of the gradient and of its square.

    Per step t: ``g += weight_decay * w`` (L2; AdamW decays ``w`` directly instead);
    ``m = beta1*m + (1-beta1)*g``; ``v = beta2*v + (1-beta2)*g**2`` (AMSGrad: use the
    running maximum of v); ``w -= lr/(1-beta1**t) * m / (sqrt(v)/sqrt(1-beta2**t) + eps)``.

    Parameters
    ----------
    params : iterable of Parameter or of dicts
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    amsgrad : bool, default False
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False):
        name = type(self).__name__
        for arg, value in (("lr", lr), ("eps", eps), ("weight_decay", weight_decay)):
            _check_number(name, arg, value)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"{name}: betas must be a pair of floats in [0, 1), got {betas!r}")
        for i, beta in enumerate(betas):
            _check_number(name, f"betas[{i}]", beta, 0.0, 1.0, high_open=True)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _update(self, param, grad, state, group):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(param.data), exp_avg_sq=np.zeros_like(param.data))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param.data)
        state["step"] += 1
        if self._decoupled:
            param.data *= 1 - lr * wd                       # AdamW: decay the weights themselves
        elif wd != 0:
            grad = grad + wd * param.data                   # Adam: L2 penalty in the gradient
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        step_size = lr / (1 - beta1 ** state["step"])
        denom = np.sqrt(v) / np.sqrt(1 - beta2 ** state["step"]) + eps
        param.data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w *= 1 - lr*weight_decay`` before the Adam step.

    Same parameters as :class:`Adam`, but ``weight_decay`` defaults to 1e-2.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop: divide the gradient by a running root-mean-square of its recent values.

    Per step: ``g += weight_decay * w``; ``s = alpha*s + (1-alpha)*g**2``; centred:
    ``a = alpha*a + (1-alpha)*g`` and ``d = sqrt(s - a**2) + eps``, else ``d = sqrt(s) + eps``;
    with momentum ``b = momentum*b + g/d`` and ``w -= lr*b``, else ``w -= lr*g/d``.

    Parameters
    ----------
    params : iterable of Parameter or of dicts
    lr : float, default 1e-2
    alpha : float, default 0.99
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum : float, default 0
    centered : bool, default False
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
        for arg, value in (("lr", lr), ("alpha", alpha), ("eps", eps), ("weight_decay", weight_decay),
                           ("momentum", momentum)):
            _check_number("RMSprop", arg, value)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, param, grad, state, group):
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state.update(step=0, square_avg=np.zeros_like(param.data))
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(param.data)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(param.data)
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param.data
        s = state["square_avg"]
        s *= alpha
        s += (1 - alpha) * grad * grad
        if group["centered"]:
            a = state["grad_avg"]
            a *= alpha
            a += (1 - alpha) * grad
            denom = np.sqrt(s - a * a) + group["eps"]
        else:
            denom = np.sqrt(s) + group["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / denom
            param.data -= group["lr"] * buf
        else:
            param.data -= group["lr"] * (grad / denom)
