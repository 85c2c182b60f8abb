"""Checkers for the book's exercises: they test your answer and tell you what went wrong.

Every ``check_<name>(answer)`` runs your function (or inspects your value) on several
cases, compares it with the reference — PyTorch, scikit-learn or the formula — and returns
a :class:`Feedback`. A ``Feedback`` is true when every case passed; printed, it says which
case failed, how, and what the usual cause is::

    >>> from cnnbook.exercises import check_conv_output_size
    >>> def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    ...     return (size - kernel_size) // stride + 1          # forgot the padding
    >>> feedback = check_conv_output_size(conv_output_size)
    >>> bool(feedback)
    False

In a notebook, end the cell with ``feedback`` to read it, and ``assert feedback, feedback``
to stop when it failed. A function that still holds the placeholder
``raise NotImplementedError()`` is reported as "not written yet", not as an error.

Arrays go in as NumPy float64 arrays; your function may return NumPy arrays, Python
numbers, lists or torch tensors.
"""
from __future__ import annotations

import copy
import functools
import math
from typing import Callable

import numpy as np

__all__ = [
    "Feedback", "check_conv_output_size", "check_conv_param_count", "check_corr2d",
    "check_conv2d", "check_max_pool2d", "check_activation_derivative", "check_log_softmax",
    "check_cross_entropy", "check_sgd_momentum_step", "check_adam_step", "check_accuracy",
    "check_normalize", "check_confusion_matrix", "check_precision_recall", "check_batch_norm",
    "check_dropout", "check_hflip", "check_early_stopping", "check_residual_block",
    "check_classifier", "check_transfer_head", "check_separable_param_count", "check_f1",
    "check_most_confused", "check_saliency",
]

_MAX_SHOWN = 3
_NOT_WRITTEN = "not written yet: replace `raise NotImplementedError()` with your code"


class Feedback:
    """The verdict of a checker: true when every case passed; its text says what failed.

    Parameters
    ----------
    name : str
        The checker's name, e.g. ``"check_conv2d"``.
    total : int
        How many cases were tried.
    failures : list of str
        One line per failed case, each with its hint.
    reference : str
        What the answer was checked against, e.g. ``"torch.nn.functional.conv2d"``.
    """

    def __init__(self, name: str, total: int, failures: list[str], reference: str):
        self.name, self.total, self.failures, self.reference = name, total, list(failures), reference

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"✓ {self.name}: all {self.total} cases pass (checked against {self.reference}). Well done!"
        if len(self.failures) == 1 and self.failures[0] == _NOT_WRITTEN:
            return f"✗ {self.name}: {_NOT_WRITTEN}."
        good = self.total - len(self.failures)
        lines = [f"✗ {self.name}: {good} of {self.total} cases pass (checked against {self.reference})."]
        lines += [f"  - {line}" for line in self.failures[:_MAX_SHOWN]]
        if len(self.failures) > _MAX_SHOWN:
            lines.append(f"  ... and {len(self.failures) - _MAX_SHOWN} more failed cases.")
        return "\n".join(lines)

    __repr__ = __str__


class _NotWritten(Exception):
    """The answer still raises NotImplementedError."""


class _Raised(Exception):
    """The answer raised some other exception; the message names it."""


def _call(fn: Callable, *args, **kwargs):
    """Call the student's function; turn its exceptions into feedback."""
    try:
        with np.errstate(all="ignore"):  # overflow shows up as NaN in the feedback instead
            return fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotWritten() from None
    except Exception as exc:  # any bug in the answer becomes feedback, never a crash
        raise _Raised(f"raised {type(exc).__name__}: {exc}") from None


def _to_array(value):
    """NumPy view of an answer (arrays, lists, numbers, torch tensors), or None if impossible."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr


def _compare(got, expected, rtol=1e-6, atol=1e-8, what="output"):
    """Return None when ``got`` matches ``expected``, else a sentence saying how it differs."""
    if got is None:
        return "returned None: did you forget `return`?"
    arr = _to_array(got)
    expected = np.asarray(expected, dtype=np.float64)
    if arr is None:
        return f"returned a {type(got).__name__}, expected an array of shape {expected.shape}"
    if arr.shape != expected.shape:
        return f"{what} shape {arr.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(arr)) and np.all(np.isfinite(expected)):
        return f"{what} contains NaN or infinity, expected finite values"
    if not np.allclose(arr, expected, rtol=rtol, atol=atol):
        err = np.abs(arr - expected)
        where = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
        at = f" at index {tuple(int(i) for i in where)}" if err.ndim else ""
        return (f"{what} differs from the expected by up to {err.max():.3g}{at} "
                f"(got {arr[where]:.6g}, expected {expected[where]:.6g})")
    return None


def _close(a, b):
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and np.allclose(a, b, rtol=1e-6, atol=1e-8)


def _diagnose(got, expected, hints):
    """The hint of the first common mistake whose result ``got`` reproduces, or None.

    ``hints`` is a list of ``(wrong_result, hint)``; mistakes that give the right answer on
    this case are skipped. A wrong result equal to ``got`` wins; failing that, when ``got``
    has the wrong shape, one with the same shape as ``got``.
    """
    arr = _to_array(got) if got is not None else None
    expected = np.asarray(expected, dtype=np.float64)
    if arr is None:
        return None
    wrongs = [(np.asarray(w, dtype=np.float64), h) for w, h in hints]
    wrongs = [(w, h) for w, h in wrongs if not _close(w, expected)]
    for wrong, hint in wrongs:
        if _close(arr, wrong):
            return hint
    if arr.shape != expected.shape:
        return next((h for w, h in wrongs if w.shape == arr.shape), None)
    return None


def _run(name: str, reference: str, cases: list, check_one: Callable) -> Feedback:
    """Run ``check_one(case)`` (None or a failure sentence) on every case; collect feedback."""
    failures = []
    for case in cases:
        try:
            problem = check_one(case)
        except _NotWritten:
            return Feedback(name, len(cases), [_NOT_WRITTEN], reference)
        except _Raised as exc:
            problem = str(exc)
        if problem:
            failures.append(f"{_describe(case)}: {problem}")
    return Feedback(name, len(cases), failures, reference)


def _describe(case: dict) -> str:
    """'case x of shape (1, 2, 5, 5), padding=1' from a case dict.

    Small hand-written arrays (whole numbers, at most 12) are shown in full, others by shape;
    keys that start with ``_`` are hidden.
    """
    parts = []
    for key, value in case.items():
        if key.startswith("_"):
            continue
        if isinstance(value, np.ndarray) and (value.size > 12 or np.any(value != np.round(value))):
            parts.append(f"{key} of shape {value.shape}")
        elif isinstance(value, np.ndarray):
            parts.append(f"{key}={value.astype(np.int64).tolist()}")
        else:
            parts.append(f"{key}={value!r}")
    return "case " + ", ".join(parts)


def _with_hint(problem, got, expected, hints):
    """Append the diagnosed hint, if any, to a failure sentence (None stays None)."""
    if problem is None:
        return None
    hint = _diagnose(got, expected, hints)
    return f"{problem}: {hint}" if hint else problem


def _rng(seed=0):
    return np.random.default_rng(seed)


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
        got = _call(fn, c["size"], c["kernel_size"], stride=c["stride"], padding=c["padding"],
                    dilation=c["dilation"])
        expected = _out_size(**c)
        if got is None:
            return "returned None: did you forget `return`?"
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


def check_conv_param_count(fn: Callable) -> Feedback:
    """Check ``fn(in_channels, out_channels, kernel_size, bias=True) -> int``.

    The reference counts the parameters of ``torch.nn.Conv2d`` with the same arguments.
    """
    import torch

    grid = [(1, 6, 5, True), (3, 16, 3, True), (16, 32, 3, False), (32, 64, 1, True), (64, 10, 7, True)]
    cases = [dict(in_channels=i, out_channels=o, kernel_size=k, bias=b) for i, o, k, b in grid]

    def one(c):
        got = _call(fn, c["in_channels"], c["out_channels"], c["kernel_size"], bias=c["bias"])
        layer = torch.nn.Conv2d(c["in_channels"], c["out_channels"], c["kernel_size"], bias=c["bias"])
        expected = sum(p.numel() for p in layer.parameters())
        if got == expected:
            return None
        if got is None:
            return "returned None: did you forget `return`?"
        i, o, k, b = c["in_channels"], c["out_channels"], c["kernel_size"], c["bias"]
        hints = [
            (i * o * k * k, "did you forget the bias (one per output channel)?"),
            (i * o * k * k + o, "with bias=False there is no bias to count"),
            (o * k * k + (o if b else 0), "each filter spans every input channel: multiply by in_channels"),
            (i * o * k + (o if b else 0), "the kernel is kernel_size × kernel_size: square it"),
            (i * o * k * k + (i if b else 0), "there is one bias per output channel, not per input channel"),
        ]
        for value, hint in hints:
            if value != expected and got == value:
                return f"returned {got!r}, expected {expected}: {hint}"
        return f"returned {got!r}, expected {expected}"

    return _run("check_conv_param_count", "the parameters of torch.nn.Conv2d", cases, one)


def check_separable_param_count(fn: Callable) -> Feedback:
    """Check ``fn(in_channels, out_channels, kernel_size) -> int`` for a separable convolution.

    A depthwise-separable convolution (MobileNet) is a depthwise ``kernel_size`` convolution
    (``groups=in_channels``) followed by a 1×1 pointwise convolution, both without bias. The
    reference counts the parameters of those two ``torch.nn.Conv2d`` layers.
    """
    import torch

    grid = [(3, 16, 3), (32, 64, 3), (64, 128, 5), (16, 16, 7)]
    cases = [dict(in_channels=i, out_channels=o, kernel_size=k) for i, o, k in grid]

    def one(c):
        i, o, k = c["in_channels"], c["out_channels"], c["kernel_size"]
        got = _call(fn, i, o, k)
        layers = [torch.nn.Conv2d(i, i, k, groups=i, bias=False), torch.nn.Conv2d(i, o, 1, bias=False)]
        expected = sum(p.numel() for layer in layers for p in layer.parameters())
        if got == expected:
            return None
        if got is None:
            return "returned None: did you forget `return`?"
        hints = [
            (i * o * k * k, "that is a standard convolution; split it into a depthwise and a 1×1 pointwise one"),
            (i * k * k, "you counted the depthwise part only: add the 1×1 pointwise convolution (in × out)"),
            (i * o, "you counted the pointwise part only: add the depthwise kernels (in × k × k)"),
            (i * i * k * k + i * o, "the depthwise convolution has groups=in_channels: one k×k kernel per channel"),
        ]
        for value, hint in hints:
            if value != expected and got == value:
                return f"returned {got!r}, expected {expected}: {hint}"
        return f"returned {got!r}, expected {expected}"

    return _run("check_separable_param_count", "a depthwise + pointwise torch.nn.Conv2d pair", cases, one)


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
        out.append(param)
    return out


def _trajectory_problem(got, expected):
    for step, (g, e) in enumerate(zip(got, expected), start=1):
        problem = _compare(g, e, what=f"parameter after step {step}")
        if problem:
            return problem
    return None


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


def _adam_reference(p0, grads, lr, betas, eps, bias_correction=True):
    m, v, p, out = np.zeros_like(p0), np.zeros_like(p0), p0.copy(), []
    for t, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        mh, vh = (m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)) if bias_correction else (m, v)
        p = p - lr * mh / (np.sqrt(vh) + eps)
        out.append(p)
    return out


def check_adam_step(fn: Callable) -> Feedback:
    """Check ``fn(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8) -> (param, m, v)``.

    One Adam step at step number ``t`` (1, 2, ...): update the moving averages ``m`` and
    ``v``, correct their bias with ``1 - beta**t``, then
    ``param = param - lr * m_hat / (sqrt(v_hat) + eps)``. The reference runs
    ``torch.optim.Adam`` for 5 steps.
    """
    import torch

    rng = _rng(8)
    cases = [dict(lr=0.1, betas=(0.9, 0.999)), dict(lr=0.01, betas=(0.8, 0.99))]
    for c in cases:
        c["_param"], c["_grads"] = rng.normal(size=(4,)), [rng.normal(size=(4,)) for _ in range(5)]

    def one(c):
        lr, betas, p0, grads = c["lr"], c["betas"], c["_param"], c["_grads"]
        p, m, v, got = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), []
        for t, g in enumerate(grads, start=1):
            result = _call(fn, p.copy(), g.copy(), m.copy(), v.copy(), t, lr=lr, betas=betas, eps=1e-8)
            if not isinstance(result, tuple) or len(result) != 3:
                return f"returned {type(result).__name__}, expected a tuple (param, m, v)"
            if any(r is None for r in result):
                return "returned None inside the tuple: return (param, m, v)"
            p, m, v = (_to_array(r) for r in result)
            got.append(p)
        tp = torch.tensor(p0, requires_grad=True)
        opt = torch.optim.Adam([tp], lr=lr, betas=betas, eps=1e-8)
        expected = []
        for g in grads:
            tp.grad = torch.tensor(g)
            opt.step()
            expected.append(tp.detach().numpy().copy())
        problem = _trajectory_problem(got, expected)
        if problem and all(_compare(a, b) is None for a, b in
                           zip(got, _adam_reference(p0, grads, lr, betas, 1e-8, bias_correction=False))):
            return f"{problem}: did you forget the bias correction m / (1 − β₁ᵗ) and v / (1 − β₂ᵗ)?"
        return problem

    return _run("check_adam_step", "torch.optim.Adam", cases, one)


# --------------------------------------------------------------------------- data & metrics

def check_accuracy(fn: Callable) -> Feedback:
    """Check ``fn(logits, labels) -> float``: the fraction of rows whose largest score is the label.

    ``logits`` has shape ``(N, C)``, ``labels`` ``(N,)``; the answer is a fraction in [0, 1]
    (not a percentage, not a count).
    """
    rng = _rng(9)
    cases = [dict(logits=np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 1.0]]), labels=np.array([1, 1, 1]))]
    cases += [dict(logits=rng.normal(size=(n, c)), labels=rng.integers(0, c, size=n)) for n, c in [(10, 4), (50, 10)]]

    def one(c):
        z, y = c["logits"], c["labels"]
        got = _call(fn, z.copy(), y.copy())
        correct = (z.argmax(axis=1) == y)
        expected = correct.mean()
        hints = [(100 * expected, "that is a percentage: return the fraction (between 0 and 1)"),
                 (correct.sum(), "that is the number of correct predictions: divide by the number of examples"),
                 (1 - expected, "that is the error rate: accuracy is the fraction that is right")]
        return _with_hint(_compare(got, expected, what="accuracy"), got, expected, hints)

    return _run("check_accuracy", "the fraction of correct argmax predictions", cases, one)


def check_normalize(fn: Callable) -> Feedback:
    """Check ``fn(train, test) -> (train_norm, test_norm)``: standardize with the training statistics.

    Subtract the mean and divide by the standard deviation of the *training* images (one
    number each, over every pixel) from both sets. Using the test set's own statistics
    leaks information from it.
    """
    rng = _rng(10)
    cases = [dict(train=rng.uniform(size=(20, 1, 4, 4)), test=rng.uniform(0.2, 1.4, size=(6, 1, 4, 4))),
             dict(train=rng.normal(3.0, 2.0, size=(30, 1, 3, 3)), test=rng.normal(1.0, 0.5, size=(5, 1, 3, 3)))]

    def one(c):
        tr, te = c["train"], c["test"]
        result = _call(fn, tr.copy(), te.copy())
        if not isinstance(result, tuple) or len(result) != 2:
            return f"returned {type(result).__name__}, expected a tuple (train_norm, test_norm)"
        mean, std = tr.mean(), tr.std()
        train_expected, test_expected = (tr - mean) / std, (te - mean) / std
        problem = _compare(result[0], train_expected, what="normalized training set")
        if problem:
            hints = [((tr - tr.min()) / (tr.max() - tr.min()), "that is min-max scaling: subtract the mean, divide by the std"),
                     (tr - mean, "you subtracted the mean but did not divide by the standard deviation")]
            return _with_hint(problem, result[0], train_expected, hints)
        hints = [((te - te.mean()) / te.std(), "the test set must use the training mean and std, not its own "
                                               "(its own statistics leak information from the test set)")]
        return _with_hint(_compare(result[1], test_expected, what="normalized test set"), result[1], test_expected, hints)

    return _run("check_normalize", "standardization with the training mean and std", cases, one)


def _metric_cases(seed):
    rng = _rng(seed)
    cases = [dict(y_true=np.array([0, 0, 1, 1, 2, 2]), y_pred=np.array([0, 1, 1, 1, 2, 0]), num_classes=3)]
    for n, k in [(40, 4), (200, 10)]:
        y = rng.integers(0, k, size=n)
        p = np.where(rng.uniform(size=n) < 0.6, y, rng.integers(0, k, size=n))
        cases.append(dict(y_true=y, y_pred=p, num_classes=k))
    return cases


def check_confusion_matrix(fn: Callable) -> Feedback:
    """Check ``fn(y_true, y_pred, num_classes) -> (num_classes, num_classes) counts``.

    Row ``i``, column ``j`` counts the examples of true class ``i`` predicted as ``j`` (rows
    are the truth), as in scikit-learn. The reference is :func:`cnnbook.metrics.confusion_matrix`.
    """
    from cnnbook.metrics import confusion_matrix

    def one(c):
        got = _call(fn, c["y_true"].copy(), c["y_pred"].copy(), c["num_classes"])
        expected = confusion_matrix(c["y_true"], c["y_pred"], num_classes=c["num_classes"])
        hints = [(expected.T, "rows and columns are swapped: rows are the true classes, columns the predictions")]
        return _with_hint(_compare(got, expected, what="matrix"), got, expected, hints)

    return _run("check_confusion_matrix", "cnnbook.metrics.confusion_matrix", _metric_cases(11), one)


def check_precision_recall(fn: Callable) -> Feedback:
    """Check ``fn(y_true, y_pred, num_classes) -> (precision, recall)``, one value per class.

    Precision of class ``k``: of the examples predicted ``k``, the fraction truly ``k``.
    Recall: of the examples truly ``k``, the fraction predicted ``k``. Define 0/0 as 0. The
    reference is :func:`cnnbook.metrics.precision` / :func:`cnnbook.metrics.recall` (equal to
    scikit-learn's ``precision_score`` / ``recall_score`` with ``average=None, zero_division=0``).
    """
    from cnnbook.metrics import precision, recall

    def one(c):
        y, p, k = c["y_true"], c["y_pred"], c["num_classes"]
        result = _call(fn, y.copy(), p.copy(), k)
        if not isinstance(result, tuple) or len(result) != 2:
            return f"returned {type(result).__name__}, expected a tuple (precision, recall)"
        prec, rec = precision(y, p, num_classes=k), recall(y, p, num_classes=k)
        swap = "precision and recall are swapped: precision divides by the predicted count, recall by the true count"
        problem = _with_hint(_compare(result[0], prec, what="precision"), result[0], prec, [(rec, swap)])
        return problem or _with_hint(_compare(result[1], rec, what="recall"), result[1], rec, [(prec, swap)])

    return _run("check_precision_recall", "cnnbook.metrics.precision / recall", _metric_cases(12), one)


def check_f1(fn: Callable) -> Feedback:
    """Check ``fn(precision, recall) -> f1``, elementwise, with 0 where both are 0.

    F1 is the harmonic mean ``2 * P * R / (P + R)``; the reference is
    :func:`cnnbook.metrics.f1_score`'s rule (scikit-learn's with ``zero_division=0``).
    """
    rng = _rng(15)
    cases = [dict(precision=np.array([1.0, 0.5, 0.0, 0.8]), recall=np.array([1.0, 0.25, 0.0, 0.0])),
             dict(precision=rng.uniform(size=10), recall=rng.uniform(size=10))]

    def one(c):
        p, r = c["precision"], c["recall"]
        got = _call(fn, p.copy(), r.copy())
        with np.errstate(all="ignore"):
            expected = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
            hints = [((p + r) / 2, "that is the arithmetic mean; F1 is the harmonic mean 2PR/(P+R)"),
                     (p * r, "F1 is 2PR/(P+R), not the product"),
                     (np.sqrt(p * r), "that is the geometric mean; F1 is the harmonic mean 2PR/(P+R)")]
        arr = _to_array(got) if got is not None else None
        if arr is not None and arr.shape == expected.shape and np.isnan(arr).any():
            return "returned NaN where precision and recall are both 0: define F1 as 0 there"
        return _with_hint(_compare(got, expected, what="F1"), got, expected, hints)

    return _run("check_f1", "the harmonic mean of precision and recall", cases, one)


def _confused(cm, k):
    off = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] > 0]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(i, j, n) for n, i, j in off[:k]]


def check_most_confused(fn: Callable) -> Feedback:
    """Check ``fn(cm, k) -> [(true, predicted, count), ...]``: the ``k`` largest mistakes.

    ``cm`` is a confusion matrix (rows: true class, columns: prediction). The answer lists
    the ``k`` largest off-diagonal counts, largest first (ties: smaller true class, then
    smaller predicted class first), as tuples of three ints; zero counts never appear.
    """
    rng = _rng(16)
    small = np.array([[50, 3, 9], [1, 40, 0], [12, 3, 30]])
    cases = [dict(cm=small, k=2), dict(cm=small, k=5), dict(cm=rng.integers(0, 30, size=(10, 10)), k=4)]

    def one(c):
        cm, k = c["cm"], c["k"]
        got = _call(fn, cm.copy(), k)
        expected = _confused(cm, k)
        if got is None:
            return "returned None: did you forget `return`?"
        try:
            got = [tuple(int(v) for v in t) for t in got]
        except (TypeError, ValueError):
            return f"returned {got!r}, expected a list of (true, predicted, count) tuples"
        if got == expected:
            return None
        problem = f"returned {got}, expected {expected}"
        diagonal = [t for t in got if len(t) == 3 and t[0] == t[1]]
        if diagonal:
            return f"{problem}: leave out the diagonal (correct predictions, e.g. {diagonal[0]})"
        if [(j, i, n) for i, j, n in got] == expected:
            return f"{problem}: the row is the true class, the column the prediction: (cm[i, j] is true i predicted j)"
        if sorted(got, key=lambda t: (-t[2], t[0], t[1])) == expected:
            return f"{problem}: sort the largest count first"
        return problem

    return _run("check_most_confused", "the largest off-diagonal counts", cases, one)


def _tiny_model():
    import torch

    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 8 * 8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def check_saliency(fn: Callable) -> Feedback:
    """Check ``fn(model, image, target) -> saliency``: a vanilla gradient saliency map.

    ``image`` is a tensor ``(C, H, W)``; the answer is ``(H, W)``: the absolute value of the
    gradient of the score (the logit, before softmax) of class ``target`` with respect to the
    input pixels, maximized over channels. The model stays unchanged (put it in eval mode).
    The reference uses ``torch.autograd`` on a small fixed CNN.
    """
    import torch

    gen = torch.Generator().manual_seed(1)
    cases = [dict(target=t, _image=torch.rand(1, 8, 8, generator=gen)) for t in (0, 2)]

    def reference(model, image, target, score=True, absolute=True):
        x = image.clone()[None].requires_grad_(True)
        out = model(x)
        value = out[0, target] if score else torch.nn.functional.cross_entropy(out, torch.tensor([target]))
        (grad,) = torch.autograd.grad(value, x)
        grad = grad[0].abs() if absolute else grad[0]
        return grad.max(dim=0).values.numpy()

    def one(c):
        model, image = _tiny_model().eval(), c["_image"]
        before = [p.detach().clone() for p in model.parameters()]
        got = _call(fn, model, image.clone(), c["target"])
        if any(not torch.equal(b, p) for b, p in zip(before, model.parameters())):
            return "the model's weights changed: compute the gradient of the input, do not step an optimizer"
        expected = reference(model, image, c["target"])
        hints = [(reference(model, image, c["target"], absolute=False), "take the absolute value of the gradient"),
                 (reference(model, image, c["target"], score=False),
                  "use the class score (the logit of target), not the loss")]
        return _with_hint(_compare(got, expected, rtol=1e-4, atol=1e-6, what="saliency"), got, expected, hints)

    return _run("check_saliency", "torch.autograd on a small CNN", cases, one)


def check_early_stopping(fn: Callable) -> Feedback:
    """Check ``fn(val_losses, patience) -> (stop_epoch, best_epoch)``, epochs counted from 0.

    Training stops after the epoch at which the validation loss has not improved on its best
    value for ``patience`` epochs in a row (as Keras' ``EarlyStopping`` does);
    ``best_epoch`` is the epoch of the lowest loss
    seen by then, whose weights are restored. If that never happens, training runs to the
    last epoch.
    """
    losses = [[1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.6], [1.0, 0.9, 0.8, 0.7, 0.6],
              [0.5, 0.6, 0.7, 0.8, 0.9, 0.4], [1.0, 0.9, 0.95, 0.85, 0.9, 0.91, 0.92, 0.5]]
    cases = [dict(val_losses=l, patience=p) for l, p in [(losses[0], 2), (losses[0], 4), (losses[1], 1),
                                                          (losses[2], 3), (losses[3], 2), (losses[3], 1)]]

    def one(c):
        got = _call(fn, list(c["val_losses"]), c["patience"])
        expected = _early_stop(c["val_losses"], c["patience"])
        if got is None:
            return "returned None: did you forget `return`?"
        if not isinstance(got, tuple) or len(got) != 2:
            return f"returned {got!r}, expected a tuple (stop_epoch, best_epoch)"
        got = tuple(int(g) for g in got)
        if got == expected:
            return None
        problem = f"returned {got}, expected {expected}"
        if got[0] == expected[0] + 1:
            return f"{problem}: stop as soon as `patience` epochs passed without improvement (one epoch too late)"
        if got[0] == expected[0] - 1:
            return f"{problem}: wait `patience` full epochs without improvement before stopping"
        if got[1] == got[0] and expected[1] != expected[0]:
            return f"{problem}: the best epoch is the one with the lowest loss, not the last one"
        return problem

    return _run("check_early_stopping", "Keras-style early stopping", cases, one)


def _early_stop(losses, patience):
    best, best_epoch, wait = math.inf, 0, 0
    for epoch, loss in enumerate(losses):
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return len(losses) - 1, best_epoch


# --------------------------------------------------------------------------- techniques

def check_batch_norm(fn: Callable) -> Feedback:
    """Check ``fn(x, gamma, beta, eps=1e-5) -> y``: batch normalization in training mode, NCHW.

    Each channel is normalized with the mean and the (biased) variance over the batch and
    both spatial axes, ``(N, H, W)``, then scaled by ``gamma`` and shifted by ``beta``
    (shapes ``(C,)``). The reference is ``torch.nn.functional.batch_norm(training=True)``.
    """
    import torch
    import torch.nn.functional as F

    rng = _rng(13)
    cases = [dict(x=rng.normal(2.0, 3.0, size=s), gamma=rng.uniform(0.5, 2, size=s[1]),
                  beta=rng.normal(size=s[1])) for s in [(4, 2, 3, 3), (8, 3, 2, 2), (2, 4, 5, 5)]]

    def one(c):
        x, g, b = c["x"], c["gamma"], c["beta"]
        got = _call(fn, x.copy(), g.copy(), b.copy(), eps=1e-5)
        t = torch.from_numpy
        expected = F.batch_norm(t(x), None, None, t(g), t(b), training=True, eps=1e-5).numpy()

        def bn(axes, ddof=0, affine=True):
            y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, ddof=ddof, keepdims=True) + 1e-5)
            return y * g[None, :, None, None] + b[None, :, None, None] if affine else y

        hints = [(bn((0, 2, 3), ddof=1), "use the biased variance (divide by n, ddof=0), as PyTorch does when normalizing"),
                 (bn((0, 2, 3), affine=False), "did you forget to scale by gamma and shift by beta?"),
                 (bn((1, 2, 3)), "that normalizes each example (layer norm): batch norm averages over (N, H, W) per channel"),
                 (bn((0,)), "average over the spatial axes too: statistics over (N, H, W), one pair per channel"),
                 (bn((0, 1, 2, 3)), "one mean and variance per channel, not one for the whole tensor")]
        return _with_hint(_compare(got, expected, rtol=1e-5, atol=1e-6), got, expected, hints)

    return _run("check_batch_norm", "torch.nn.functional.batch_norm (training mode)", cases, one)


def check_dropout(fn: Callable) -> Feedback:
    """Check ``fn(x, p, training, rng) -> y``: inverted dropout.

    In training, each element is zeroed with probability ``p`` (draw with the NumPy
    Generator ``rng``) and the survivors are multiplied by ``1 / (1 - p)``, so the expected
    value is unchanged; in evaluation (``training=False``) ``y`` equals ``x``.
    """
    cases = [dict(p=0.5, training=True), dict(p=0.2, training=True), dict(p=0.5, training=False),
             dict(p=0.0, training=True)]

    def one(c):
        x = np.full((200, 100), 2.0)
        got = _to_array(_call(fn, x.copy(), c["p"], c["training"], np.random.default_rng(0)))
        if got is None or got.shape != x.shape:
            return _compare(got, x)
        if not c["training"]:
            return None if np.allclose(got, x) else "in evaluation mode dropout does nothing: return x unchanged"
        kept = got != 0
        frac_zero = 1 - kept.mean()
        if abs(frac_zero - c["p"]) > 0.02:
            if abs(frac_zero - (1 - c["p"])) < 0.02:
                return f"{frac_zero:.0%} of the values are zero, expected about {c['p']:.0%}: p is the probability to drop, not to keep"
            return f"{frac_zero:.0%} of the values are zero, expected about {c['p']:.0%}"
        scale = 1 / (1 - c["p"])
        if not np.allclose(got[kept], 2.0 * scale):
            if np.allclose(got[kept], 2.0):
                return "kept values are unchanged: multiply them by 1/(1 − p) so the mean stays the same (inverted dropout)"
            return f"kept values are {got[kept][0]:.3g}, expected {2.0 * scale:.3g} = x / (1 − p)"
        return None

    return _run("check_dropout", "inverted dropout", cases, one)


def check_hflip(fn: Callable) -> Feedback:
    """Check ``fn(images) -> flipped``: mirror a batch of NCHW images left to right.

    The reference is ``torch.flip(images, dims=[-1])`` (what
    ``torchvision.transforms.RandomHorizontalFlip`` does when it flips).
    """
    rng = _rng(14)
    cases = [dict(images=np.arange(6.0).reshape(1, 1, 2, 3)), dict(images=rng.normal(size=(3, 1, 5, 4))),
             dict(images=rng.normal(size=(2, 3, 4, 6)))]

    def one(c):
        x = c["images"]
        got = _call(fn, x.copy())
        hints = [(x[:, :, ::-1, :], "that flips top to bottom (the height axis, -2): flip the width axis, -1"),
                 (x[::-1], "that reverses the order of the batch: flip each image's width axis, -1"),
                 (x[:, ::-1], "that reverses the channels: flip the width axis, -1"),
                 (np.swapaxes(x, -1, -2), "that transposes the image: flip the width axis, -1")]
        return _with_hint(_compare(got, x[..., ::-1]), got, x[..., ::-1], hints)

    return _run("check_hflip", "torch.flip(images, dims=[-1])", cases, one)


def _torch_call(module, x):
    import torch

    try:
        with torch.no_grad():
            return module(x)
    except NotImplementedError:
        raise _NotWritten() from None
    except Exception as exc:
        raise _Raised(f"raised {type(exc).__name__}: {exc}") from None


def check_residual_block(make_block: Callable) -> Feedback:
    """Check ``make_block(channels) -> torch.nn.Module``, a residual block ``y = relu(x + F(x))``.

    The block keeps the shape ``(N, channels, H, W)``. With every parameter set to zero,
    ``F(x) = 0`` and the block must reduce to the skip connection: ``relu(x)`` (or ``x``,
    if the block ends without activation). That is the whole point of the residual
    connection: the identity is easy to learn.
    """
    import torch

    cases = [dict(channels=c, input_shape=s) for c, s in [(4, (2, 4, 8, 8)), (8, (1, 8, 5, 5)), (1, (3, 1, 6, 6))]]

    def one(c):
        block = _call(make_block, c["channels"])
        if not isinstance(block, torch.nn.Module):
            return f"returned a {type(block).__name__}, expected a torch.nn.Module"
        x = torch.randn(*c["input_shape"], generator=torch.Generator().manual_seed(0))
        block.eval()
        y = _torch_call(block, x)
        if tuple(y.shape) != tuple(x.shape):
            return (f"output shape {tuple(y.shape)}, expected {tuple(x.shape)}: a residual block keeps "
                    "the shape so x + F(x) is defined (use padding=kernel_size//2 and stride 1)")
        with torch.no_grad():
            for p in block.parameters():
                p.zero_()
        y0 = _torch_call(block, x)
        if torch.allclose(y0, torch.relu(x), atol=1e-6) or torch.allclose(y0, x, atol=1e-6):
            return None
        if torch.allclose(y0, torch.zeros_like(y0)):
            return "with every weight set to zero the block returned zeros: is the skip connection x + F(x) missing?"
        return "with every weight set to zero the block should return relu(x) (or x): check the skip connection"

    return _run("check_residual_block", "shape kept; zero weights leave the skip connection", cases, one)


def check_classifier(model, in_shape=(1, 28, 28), num_classes: int = 10, max_params: int | None = None) -> Feedback:
    """Check a torch classifier: ``model(x)`` maps ``(N, *in_shape)`` to logits ``(N, num_classes)``.

    It must give finite scores, work for batches of 1 and 5, let the gradient reach every
    parameter, and (when ``max_params`` is given) have at most ``max_params`` parameters.
    """
    import torch

    cases = [dict(batch=1), dict(batch=5), dict(batch=5, _grad=True)]
    if max_params is not None:
        cases.append(dict(max_params=max_params))
    was_training = getattr(model, "training", False)

    def one(c):
        if not isinstance(model, torch.nn.Module):
            return f"got a {type(model).__name__}, expected a torch.nn.Module"
        if "max_params" in c:
            n = sum(p.numel() for p in model.parameters())
            return None if n <= max_params else f"{n:,} parameters, at most {max_params:,} allowed: make it smaller"
        x = torch.rand(c["batch"], *in_shape, generator=torch.Generator().manual_seed(0))
        model.eval()
        if not c.get("_grad"):
            y = _torch_call(model, x)
            if tuple(y.shape) != (c["batch"], num_classes):
                hint = (": did you forget to flatten before the Linear layer?" if y.dim() > 2
                        else f": the last layer needs {num_classes} outputs, one score per class")
                return f"output shape {tuple(y.shape)}, expected {(c['batch'], num_classes)}{hint}"
            return None if torch.isfinite(y).all() else "the scores contain NaN or infinity"
        model.train()
        model.zero_grad()
        try:
            model(x).sum().backward()
        except Exception as exc:
            return f"backward raised {type(exc).__name__}: {exc}"
        dead = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
        return f"no gradient reaches {', '.join(dead)}: are those layers used in forward()?" if dead else None

    feedback = _run("check_classifier", f"{num_classes} scores per image, gradients to every layer", cases, one)
    if isinstance(model, torch.nn.Module):
        model.train(was_training)
    return feedback


@functools.lru_cache(maxsize=1)
def _resnet18():
    import torchvision

    return torchvision.models.resnet18(weights=None)


def check_transfer_head(fn: Callable) -> Feedback:
    """Check ``fn(model, num_classes) -> model`` that prepares a torchvision ResNet for transfer learning.

    Freeze every pre-trained parameter (``requires_grad = False``) and replace the last
    layer, ``model.fc``, by a new ``torch.nn.Linear`` with ``num_classes`` outputs (trainable).
    The checker builds ``torchvision.models.resnet18(weights=None)`` (no download).
    """
    import torch

    cases = [dict(num_classes=10), dict(num_classes=3)]

    def one(c):
        model = copy.deepcopy(_resnet18())
        in_features = model.fc.in_features
        got = _call(fn, model, c["num_classes"])
        if not isinstance(got, torch.nn.Module):
            return f"returned a {type(got).__name__}: return the model"
        fc = getattr(got, "fc", None)
        if not isinstance(fc, torch.nn.Linear) or fc.out_features != c["num_classes"]:
            return f"model.fc should be a Linear({in_features}, {c['num_classes']}) layer, got {fc}"
        if fc.in_features != in_features:
            return f"the new head takes {fc.in_features} inputs, but the backbone gives {in_features} features"
        frozen_head = [n for n, p in fc.named_parameters() if not p.requires_grad]
        if frozen_head:
            return "the new head is frozen too: create it after freezing, so its parameters train"
        trainable = [n for n, p in got.named_parameters() if p.requires_grad and not n.startswith("fc.")]
        if trainable:
            return (f"{len(trainable)} backbone parameters still train (e.g. {trainable[0]}): "
                    "set requires_grad = False on every parameter before replacing fc")
        with torch.no_grad():
            y = got.eval()(torch.rand(2, 3, 64, 64))
        return None if tuple(y.shape) == (2, c["num_classes"]) else f"output shape {tuple(y.shape)}, expected (2, {c['num_classes']})"

    return _run("check_transfer_head", "torchvision's resnet18: frozen backbone, new trainable head", cases, one)
