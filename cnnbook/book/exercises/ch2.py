"""Checkers for the exercises of chapter 2 (Principles)."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from cnnbook.book.exercises._core import Feedback, _a, _call, _compare, _number, _Raised, _rng, _run, _to_array, _trajectory_problem, _with_hint

__all__ = ['check_conv_output_size', 'check_corr2d', 'check_conv2d', 'check_max_pool2d', 'check_activation_derivative', 'check_log_softmax', 'check_cross_entropy', 'check_sgd_momentum_step']

# --------------------------------------------------------------------------- sizes & counts

def _out_size(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def check_conv_output_size(fn: Callable) -> Feedback:
    """Check ``fn(size, kernel_size, stride=1, padding=0, dilation=1) -> int``.

    The reference is the formula of ``torch.nn.Conv2d``:
    ``floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1``.
    """
    grid = [(28, 5, 1, 0, 1), (28, 3, 1, 1, 1), (5, 3, 2, 1, 1), (7, 3, 2, 0, 1),
            (10, 3, 1, 2, 2), (6, 2, 2, 0, 1), (32, 5, 3, 2, 1)]
    cases = [dict(size=s, kernel_size=k, stride=st, padding=p, dilation=d) for s, k, st, p, d in grid]

    def one(c):
        got, problem = _number(_call(fn, c["size"], c["kernel_size"], stride=c["stride"], padding=c["padding"],
                                     dilation=c["dilation"]))
        if problem:
            return problem
        expected = _out_size(**c)
        if isinstance(got, float) and not isinstance(got, bool):
            return (f"returned the float {got!r}, expected the int {expected}: "
                    "use floor division `//` (sizes are whole numbers)")
        if got == expected:
            return None
        problem = f"returned {got!r}, expected {expected}"
        s, k, st, p, d = c["size"], c["kernel_size"], c["stride"], c["padding"], c["dilation"]
        hints = [
            (_out_size(s, k, st, 0, d), "did you forget the padding (add 2*padding)?"),
            (_out_size(s, k, st, 0, d) + p // st if p else None, "padding goes on both sides: add 2*padding, not padding"),
            (_out_size(s, k, 1, p, d), "did you forget to divide by the stride?"),
            (_out_size(s, k, st, p, 1), "dilation spreads the kernel: it spans dilation*(kernel_size-1)+1 pixels"),
            (_out_size(s, k, st, p, d) - 1, "did you forget the +1 (the first position of the window)?"),
            (round((s + 2 * p - d * (k - 1) - 1) / st) + 1, "round down with `//`, not to the nearest integer"),
            (math.ceil((s + 2 * p - d * (k - 1) - 1) / st) + 1, "round down with `//`, not up"),
        ]
        for value, hint in hints:
            if value is not None and value != expected and got == value:
                return f"{problem}: {hint}"
        return problem

    return _run("check_conv_output_size", "torch.nn.Conv2d's output-size formula", cases, one)


# --------------------------------------------------------------------------- convolution & pooling

def _torch_conv(x, w, b=None, stride=1, padding=0):
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy
    return F.conv2d(t(x), t(w), None if b is None else t(b), stride=stride, padding=padding).numpy()


def check_corr2d(fn: Callable) -> Feedback:
    """Check ``fn(x, kernel) -> y``: the 2-D cross-correlation of one channel, no padding.

    ``x`` has shape ``(H, W)``, ``kernel`` ``(KH, KW)``; ``y`` has shape
    ``(H - KH + 1, W - KW + 1)`` and ``y[i, j] = sum(x[i:i+KH, j:j+KW] * kernel)``. The
    reference is ``torch.nn.functional.conv2d`` (which computes cross-correlation).
    """
    rng = _rng(1)
    shapes = [((3, 3), (2, 2)), ((5, 5), (3, 3)), ((6, 4), (3, 2)), ((7, 8), (1, 3)), ((4, 6), (4, 1))]
    cases = [dict(x=rng.normal(size=xs), kernel=rng.normal(size=ks)) for xs, ks in shapes]
    cases.insert(0, dict(x=np.arange(9.0).reshape(3, 3), kernel=np.array([[0.0, 1.0], [2.0, 3.0]])))

    def one(c):
        x, k = c["x"], c["kernel"]
        got = _call(fn, x.copy(), k.copy())
        expected = _torch_conv(x[None, None], k[None, None])[0, 0]
        hints = [
            (_torch_conv(x[None, None], k[::-1, ::-1].copy()[None, None])[0, 0],
             "you flipped the kernel: that is the mathematical convolution, while CNN layers "
             "compute cross-correlation (no flip)"),
            (_torch_conv(x.T.copy()[None, None], k.T.copy()[None, None])[0, 0],
             "rows and columns are swapped: index as x[i, j] with i the row (height)"),
            (_torch_conv(x[None, None], k[None, None], padding=(k.shape[0] // 2))[0, 0],
             "no padding here: the output is (H - KH + 1) × (W - KW + 1)"),
        ]
        return _with_hint(_compare(got, expected), got, expected, hints)

    return _run("check_corr2d", "torch.nn.functional.conv2d", cases, one)


def check_conv2d(fn: Callable) -> Feedback:
    """Check ``fn(x, weight, bias=None, stride=1, padding=0) -> y`` (NCHW, like PyTorch).

    Shapes: ``x (N, C_in, H, W)``, ``weight (C_out, C_in, KH, KW)``, ``bias (C_out,)`` or
    None, ``y (N, C_out, H_out, W_out)`` with
    ``H_out = floor((H + 2*padding - KH) / stride) + 1``. ``stride`` and ``padding`` are ints.
    The reference is ``torch.nn.functional.conv2d``.
    """
    rng = _rng(2)
    grid = [((1, 1, 4, 4), (1, 1, 3, 3), False, 1, 0), ((2, 3, 5, 5), (4, 3, 3, 3), True, 1, 0),
            ((1, 2, 6, 6), (4, 2, 3, 3), True, 1, 1), ((2, 2, 7, 7), (3, 2, 3, 3), True, 2, 0),
            ((1, 3, 8, 6), (2, 3, 5, 3), True, 2, 2), ((3, 1, 5, 5), (2, 1, 1, 1), True, 1, 0)]
    cases = [dict(x=rng.normal(size=xs), weight=rng.normal(size=ws),
                  bias=rng.normal(size=ws[0]) if b else None, stride=s, padding=p)
             for xs, ws, b, s, p in grid]

    def one(c):
        x, w, b, s, p = c["x"], c["weight"], c["bias"], c["stride"], c["padding"]
        got = _call(fn, x.copy(), w.copy(), None if b is None else b.copy(), stride=s, padding=p)
        expected = _torch_conv(x, w, b, s, p)
        hints = [
            (_torch_conv(x, w, b, s, 0), "did you forget the padding?"),
            (_torch_conv(x, w, b, 1, p), "did you forget the stride (step the window by `stride`)?"),
            (_torch_conv(x, w, None, s, p), "did you forget to add the bias (one per output channel)?"),
            (_torch_conv(x, w[:, :, ::-1, ::-1].copy(), b, s, p),
             "you flipped the kernel: CNN layers compute cross-correlation (no flip)"),
        ]
        return _with_hint(_compare(got, expected), got, expected, hints)

    return _run("check_conv2d", "torch.nn.functional.conv2d", cases, one)


def _torch_pool(kind, x, kernel_size, stride):
    import torch
    import torch.nn.functional as F

    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    return pool(torch.from_numpy(x), kernel_size, stride=stride).numpy()


def check_max_pool2d(fn: Callable) -> Feedback:
    """Check ``fn(x, kernel_size, stride=None) -> y``: max pooling, NCHW, no padding.

    ``stride`` defaults to ``kernel_size``, as in PyTorch; ``y`` has shape
    ``(N, C, floor((H - kernel_size) / stride) + 1, ...)``. The reference is
    ``torch.nn.functional.max_pool2d``.
    """
    rng = _rng(3)
    grid = [((1, 1, 4, 4), 2, None), ((2, 3, 6, 6), 2, None), ((1, 2, 5, 5), 3, 1),
            ((1, 1, 7, 7), 3, 2), ((2, 2, 5, 4), 2, None)]
    cases = [dict(x=rng.normal(size=xs), kernel_size=k, stride=s) for xs, k, s in grid]

    def one(c):
        x, k, s = c["x"], c["kernel_size"], c["stride"]
        got = _call(fn, x.copy(), k) if s is None else _call(fn, x.copy(), k, stride=s)
        expected = _torch_pool("max", x, k, s)
        hints = [
            (_torch_pool("avg", x, k, s), "that is the average: max pooling keeps the largest value"),
            (_torch_pool("max", x, k, 1), "stride defaults to kernel_size (windows do not overlap)"),
            (-_torch_pool("max", -x, k, s), "that is the minimum: max pooling keeps the largest value"),
        ]
        return _with_hint(_compare(got, expected), got, expected, hints)

    return _run("check_max_pool2d", "torch.nn.functional.max_pool2d", cases, one)


# --------------------------------------------------------------------------- activations & losses

_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")


def _torch_grad(activation, x):
    import torch
    import torch.nn.functional as F

    t = torch.tensor(x, requires_grad=True)
    f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
         "leaky_relu": lambda v: F.leaky_relu(v, 0.01)}[activation]
    f(t).sum().backward()
    return f(t).detach().numpy(), t.grad.numpy()


def check_activation_derivative(fn: Callable, activation: str = "sigmoid") -> Feedback:
    """Check ``fn(x) -> d activation(x) / dx``, elementwise, for one activation function.

    ``activation`` is ``"sigmoid"``, ``"tanh"``, ``"relu"`` or ``"leaky_relu"`` (negative
    slope 0.01). The reference is the gradient that ``torch.autograd`` computes; at 0 PyTorch
    takes ReLU's derivative as 0.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"check_activation_derivative: activation must be one of {_ACTIVATIONS}, "
                         f"got {activation!r}")
    rng = _rng(4)
    cases = [dict(x=np.array([-2.0, -0.5, 0.0, 0.5, 2.0])), dict(x=rng.normal(scale=3, size=(3, 4))),
             dict(x=np.array([-30.0, -8.0, 8.0, 30.0]))]

    def one(c):
        x = c["x"]
        got = _call(fn, x.copy())
        value, expected = _torch_grad(activation, x)
        hints = [(value, f"that is {activation}(x) itself, not its derivative")]
        hints += {"sigmoid": [(value * (1 + value), "the sigmoid's derivative is σ(x)·(1 − σ(x)), with a minus"),
                              (1 - value, "that is 1 − σ(x); the derivative is σ(x)·(1 − σ(x))")],
                  "tanh": [(1 - value, "tanh's derivative is 1 − tanh(x)²: square the tanh"),
                           (1 - x ** 2, "square tanh(x), not x: the derivative is 1 − tanh(x)²")],
                  "relu": [(np.where(x >= 0, 1.0, 0.0), "at x = 0 PyTorch takes ReLU's derivative as 0")],
                  "leaky_relu": [(np.where(x > 0, 1.0, 0.0), "the negative side has slope 0.01, not 0"),
                                 (np.where(x >= 0, 1.0, 0.01), "at x = 0 PyTorch takes the negative side's slope, 0.01")],
                  }[activation]
        return _with_hint(_compare(got, expected), got, expected, hints)

    return _run(f"check_activation_derivative[{activation}]", f"torch.autograd on {activation}", cases, one)


def _log_softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def check_log_softmax(fn: Callable) -> Feedback:
    """Check ``fn(logits) -> log_probs``: log-softmax over the last axis, computed stably.

    ``logits`` has shape ``(N, C)``; the output has the same shape. Cases include logits of
    size 1000, where ``exp`` overflows unless the row maximum is subtracted first. The
    reference is ``torch.log_softmax(logits, dim=-1)``.
    """
    import torch

    rng = _rng(5)
    cases = [dict(logits=np.array([[1.0, 2.0, 3.0]])), dict(logits=rng.normal(size=(4, 10))),
             dict(logits=np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])),
             dict(logits=rng.normal(scale=50, size=(3, 5)))]

    def one(c):
        z = c["logits"]
        got = _call(fn, z.copy())
        expected = torch.log_softmax(torch.from_numpy(z), dim=-1).numpy()
        arr = _to_array(got) if got is not None else None
        if arr is not None and arr.shape == expected.shape and not np.all(np.isfinite(arr)):
            return ("output contains NaN or infinity for large logits: subtract each row's "
                    "maximum before `exp` (log-sum-exp trick); it does not change the result")
        with np.errstate(all="ignore"):
            hints = [(np.exp(expected), "those are the probabilities (softmax): take their log"),
                     (_log_softmax(z, axis=0), "normalize each row (axis=-1, over the classes), not each column"),
                     (z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(axis=-1, keepdims=True)),
                      "subtracting the maximum is fine, but add it back: log-sum-exp(z) = m + log Σ exp(z − m)")]
        return _with_hint(_compare(got, expected), got, expected, hints)

    return _run("check_log_softmax", "torch.log_softmax", cases, one)


def check_cross_entropy(fn: Callable) -> Feedback:
    """Check ``fn(logits, target) -> loss``: mean cross-entropy from raw scores.

    ``logits`` has shape ``(N, C)`` (scores before softmax), ``target`` ``(N,)`` holds
    class indices (int64); the result is a scalar, the mean over the batch. The reference is
    ``torch.nn.functional.cross_entropy``.
    """
    import torch
    import torch.nn.functional as F

    rng = _rng(6)
    cases = [dict(logits=np.array([[2.0, 0.0, -1.0]]), target=np.array([0])),
             dict(logits=rng.normal(size=(5, 4)), target=rng.integers(0, 4, size=5)),
             dict(logits=rng.normal(scale=4, size=(8, 10)), target=rng.integers(0, 10, size=8)),
             dict(logits=np.array([[1000.0, 0.0], [0.0, 1000.0]]), target=np.array([1, 1]))]

    def one(c):
        z, y = c["logits"], c["target"]
        got = _call(fn, z.copy(), y.copy())
        expected = F.cross_entropy(torch.from_numpy(z), torch.from_numpy(y)).numpy()
        picked = _log_softmax(z)[np.arange(len(y)), y]
        with np.errstate(all="ignore"):
            probs = np.exp(_log_softmax(z))
            hints = [(-picked.sum(), "that is the sum over the batch: PyTorch takes the mean (divide by N)"),
                     (picked.mean(), "the sign is wrong: the loss is minus the mean log-probability"),
                     (-np.log(np.exp(z[np.arange(len(y)), y])).mean(),
                      "apply softmax (normalize) before taking the log of the true class's score"),
                     (-_log_softmax(probs)[np.arange(len(y)), y].mean(),
                      "pass the raw logits: cross_entropy applies log-softmax itself (you applied softmax twice)"),
                     (-(probs[np.arange(len(y)), y]).mean(), "take the log of the probability")]
        problem = _compare(got, expected, what="loss")
        arr = _to_array(got) if got is not None else None
        if problem and arr is not None and arr.shape != ():
            problem += ": return one number, the mean over the batch"
        elif problem and arr is not None and not np.isfinite(arr):
            problem += ": for large logits, compute log-softmax stably (subtract each row's maximum first)"
        return _with_hint(problem, got, expected, hints)

    return _run("check_cross_entropy", "torch.nn.functional.cross_entropy", cases, one)


# --------------------------------------------------------------------------- optimizers

def _sgd_reference(params, grads, lr, momentum):
    import torch

    p = torch.tensor(params[0], requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    out = []
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def _run_steps(step, param, grads, state, **kwargs):
    """Apply a student's step function for each gradient; return the parameter after each."""
    out = []
    for g in grads:
        result = _call(step, param.copy(), g.copy(), *[s.copy() for s in state], **kwargs)
        if not isinstance(result, tuple) or len(result) != 1 + len(state):
            raise _Raised(f"returned {type(result).__name__}, expected a tuple of "
                          f"{1 + len(state)} arrays (the new parameter and state)")
        if any(r is None for r in result):
            raise _Raised("returned None inside the tuple: return the new parameter and state")
        param, state = _to_array(result[0]), [_to_array(s) for s in result[1:]]
        if param is None or any(s is None for s in state):
            raise _Raised(f"returned ({', '.join(_a(r) for r in result)}), expected arrays")
        out.append(param)
    return out


def check_sgd_momentum_step(fn: Callable) -> Feedback:
    """Check ``fn(param, grad, velocity, lr, momentum) -> (param, velocity)``: one SGD step.

    PyTorch's rule (``torch.optim.SGD`` without dampening or Nesterov):
    ``velocity = momentum * velocity + grad``, then ``param = param - lr * velocity``, with
    the velocity starting at zero. The reference runs ``torch.optim.SGD`` for 5 steps.
    """
    rng = _rng(7)
    cases = [dict(lr=0.1, momentum=0.0), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.5)]
    for c in cases:
        c["_param"], c["_grads"] = rng.normal(size=(3,)), [rng.normal(size=(3,)) for _ in range(5)]

    def one(c):
        lr, mu, p0, grads = c["lr"], c["momentum"], c["_param"], c["_grads"]
        got = _run_steps(fn, p0, grads, [np.zeros_like(p0)], lr=lr, momentum=mu)
        expected = _sgd_reference([p0], grads, lr, mu)
        problem = _trajectory_problem(got, expected)
        if problem is None:
            return None
        hints = [(_ema_sgd(p0, grads, lr, mu), "PyTorch adds the whole gradient, velocity = momentum·velocity + grad, "
                                               "not the (1 − momentum)-weighted average"),
                 (_ascent(p0, grads, lr, mu), "the step goes against the gradient: param − lr·velocity"),
                 (_sgd_reference([p0], grads, lr, 0.0), "the momentum term is missing")]
        for wrong, hint in hints:
            if all(_compare(g, w) is None for g, w in zip(got, wrong)):
                return f"{problem}: {hint}"
        return problem

    return _run("check_sgd_momentum_step", "torch.optim.SGD", cases, one)


def _ema_sgd(p, grads, lr, mu):
    v, out = np.zeros_like(p), []
    for g in grads:
        v = mu * v + (1 - mu) * g
        p = p - lr * v
        out.append(p)
    return out


def _ascent(p, grads, lr, mu):
    v, out = np.zeros_like(p), []
    for g in grads:
        v = mu * v + g
        p = p + lr * v
        out.append(p)
    return out
