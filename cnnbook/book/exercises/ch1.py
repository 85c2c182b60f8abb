"""Checkers for the exercises of chapter 1 (Introduction)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnnbook.book.exercises._core import Feedback, _call, _compare, _number, _rng, _run, _with_hint

__all__ = ['check_conv_param_count', 'check_accuracy']

def check_conv_param_count(fn: Callable) -> Feedback:
    """Check ``fn(in_channels, out_channels, kernel_size, bias=True) -> int``.

    The reference counts the parameters of ``torch.nn.Conv2d`` with the same arguments.
    """
    import torch

    grid = [(1, 6, 5, True), (3, 16, 3, True), (16, 32, 3, False), (32, 64, 1, True), (64, 10, 7, True)]
    cases = [dict(in_channels=i, out_channels=o, kernel_size=k, bias=b) for i, o, k, b in grid]

    def one(c):
        got, problem = _number(_call(fn, c["in_channels"], c["out_channels"], c["kernel_size"], bias=c["bias"]))
        if problem:
            return problem
        layer = torch.nn.Conv2d(c["in_channels"], c["out_channels"], c["kernel_size"], bias=c["bias"])
        expected = sum(p.numel() for p in layer.parameters())
        if got == expected:
            return None
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
