"""Optimizers in NumPy with the signatures and update rules of ``torch.optim``.

An optimizer holds parameter groups (lists of :class:`cnnbook.scratch.nn.Parameter` with their
hyper-parameters) and per-parameter state (momentum buffers, moment estimates).
``step()`` updates every parameter that has a gradient, **in place** (so arrays shared
through ``state_dict()`` follow), using the same formulas, in the same order, as torch's
reference ("for-loop") implementations; ``zero_grad()`` resets the gradients to None.
``state_dict()`` / ``load_state_dict()`` save and restore the hyper-parameters and the
per-parameter state with torch's layout, so a resumed run continues exactly. Each
group's hyper-parameters are checked as the constructor's are, a parameter may appear in
one group only, and a gradient of the wrong shape or with NaN or infinite values raises
instead of silently spoiling the weights. This module never imports torch.

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

import copy

import numpy as np

from . import checks
from .nn import Module, Parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``, ``step`` and the state dict.

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
        if isinstance(params, (Parameter, np.ndarray, Module)):
            hint = "model.parameters()" if isinstance(params, Module) else "[param]"
            raise TypeError(f"{name}: params must be an iterable of Parameters, got a single {type(params).__name__}; "
                            f"hint: pass {hint}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list; hint: did the model register its layers "
                             "(or was the parameters() generator already used up)?")
        self._check_hyperparameters(name, defaults)
        self.defaults, self.param_groups, self.state = defaults, [], {}
        for group in groups if isinstance(groups[0], dict) else [{"params": groups}]:
            self.add_param_group(group)

    def _check_hyperparameters(self, fn, group):
        """Raise unless the hyper-parameters in ``group`` are valid (each optimizer says how)."""

    def add_param_group(self, group):
        """Add a group of parameters (a dict with "params" and optional hyper-parameters)."""
        fn = f"{type(self).__name__}.add_param_group"
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{fn}: a parameter group must be a dict with a 'params' entry, got {group!r}")
        group = dict(group)
        params = [group["params"]] if isinstance(group["params"], Parameter) else list(group["params"])
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{fn}: params must be cnnbook.scratch.nn.Parameter objects "
                                f"(e.g. model.parameters()), got {type(p).__name__}")
        unknown = sorted(set(group) - set(self.defaults) - {"params"})
        if unknown:
            raise ValueError(f"{fn}: unknown hyper-parameter(s) {unknown} in a group; {type(self).__name__} "
                             f"takes {sorted(self.defaults)}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or seen & {id(p) for p in params}:
            raise ValueError(f"{fn}: some parameters appear more than once (in this group or in another "
                             "group); each parameter may be in one group only, or it would be updated twice")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_hyperparameters(f"{type(self).__name__} (group {len(self.param_groups)})", group)
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
        fn = f"{type(self).__name__}.step"
        for g, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                what = f"the gradient of parameter {i} of group {g}"
                if not isinstance(p.grad, np.ndarray) or p.grad.shape != p.shape:
                    raise ValueError(f"{fn}: {what} must be an array of the parameter's shape {p.shape}, got "
                                     f"{getattr(p.grad, 'shape', type(p.grad).__name__)}")
                checks.check_finite(fn, f"{what} (shape {p.shape})", p.grad)
                self._update(p, p.grad, self.state.setdefault(p, {}), group)

    def _update(self, param, grad, state, group):
        raise NotImplementedError

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """Hyper-parameters and per-parameter state, with torch's layout.

        Returns
        -------
        dict
            ``{"state": {index: {"step": ..., "exp_avg": ...}, ...}, "param_groups": [{"lr": ...,
            "params": [index, ...]}, ...]}``, parameters numbered in group order. The arrays
            are copies, so the saved state does not change as training goes on.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items() if id(p) in index}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` saved (or a torch optimizer's state dict of the same kind,
        whose options this optimizer lacks must then be off).

        Raises
        ------
        ValueError
            The number of groups, the number of parameters in a group, or the shape of a
            state array differs from this optimizer's.
        """
        fn = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{fn}: expected a dict with keys 'state' and 'param_groups' (from state_dict()), "
                             f"got {type(state_dict).__name__}")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{fn}: the state dict has {len(groups)} parameter groups, the optimizer "
                             f"{len(self.param_groups)}")
        for g, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"{fn}: group {g} has {len(saved['params'])} parameters in the state dict, "
                                 f"{len(own['params'])} in the optimizer")
        by_index = {i: p for saved, own in zip(groups, self.param_groups) for i, p in zip(saved["params"], own["params"])}
        state = {}
        for i, values in state_dict["state"].items():
            param = by_index[int(i)]
            state[param] = {key: self._load_value(fn, f"state[{i}][{key!r}]", key, value, param)
                            for key, value in values.items()}
        for saved, own in zip(groups, self.param_groups):
            unsupported = {k: v for k, v in saved.items() if self._unsupported(k, v)}
            if unsupported:                                 # e.g. torch's maximize=True: not implemented here
                raise ValueError(f"{fn}: options {unsupported} are not implemented by {type(self).__name__}")
            hyper = {k: copy.deepcopy(v) for k, v in saved.items() if k in self.defaults}
            self._check_hyperparameters(fn, {**own, **hyper})
            own.update(hyper)
        self.state = state

    _implied = {}                   # options of torch's state dict that this optimizer has fixed

    def _unsupported(self, key, value):
        """Whether a state dict's option ``key=value`` asks for something this optimizer cannot do."""
        if key in self.defaults or key == "params":
            return False
        return value != self._implied[key] if key in self._implied else bool(value)

    @staticmethod
    def _load_value(fn, where, key, value, param):
        """One state entry as this optimizer keeps it: ``step`` an int, arrays copied in the parameter's dtype."""
        if key == "step":
            return int(np.asarray(value))
        array = np.asarray(value).astype(param.dtype)   # a copy, also of a torch tensor
        if array.shape != param.shape:
            raise ValueError(f"{fn}: {where} has shape {array.shape}, but its parameter has shape {param.shape}")
        return array


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
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_hyperparameters(self, fn, group):
        for arg in ("lr", "momentum", "dampening", "weight_decay"):
            checks.check_number(fn, arg, group[arg])
        checks.check_bool(fn, "nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{fn}: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

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
    _implied = {"decoupled_weight_decay": False}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _check_hyperparameters(self, fn, group):
        for arg in ("lr", "eps", "weight_decay"):
            checks.check_number(fn, arg, group[arg])
        checks.check_bool(fn, "amsgrad", group["amsgrad"])
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"{fn}: betas must be a pair of floats in [0, 1), got {betas!r}")
        for i, beta in enumerate(betas):
            checks.check_number(fn, f"betas[{i}]", beta, 0.0, 1.0, high_open=True)

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
    _implied = {"decoupled_weight_decay": True}

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
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _check_hyperparameters(self, fn, group):
        for arg in ("lr", "eps", "weight_decay", "momentum"):
            checks.check_number(fn, arg, group[arg])
        checks.check_number(fn, "alpha", group["alpha"], high=1.0)   # alpha > 1 drives the square average negative
        checks.check_bool(fn, "centered", group["centered"])

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
