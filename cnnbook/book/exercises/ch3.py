"""Checkers for the exercises of chapter 3 (Building steps)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnnbook.book.exercises._core import (Feedback, _a, _call, _compare, _limited, _rng, _run, _Stop,
                                          _torch_call, _with_hint)

__all__ = ['check_kaiming_std', 'check_kaiming_normal', 'check_confusion_matrix', 'check_precision_recall', 'check_classifier']

def _kaiming_std(shape) -> float:
    """The reference: the standard deviation of ``torch.nn.init.kaiming_normal_(w, nonlinearity="relu")``."""
    import math

    import torch
    from torch import nn

    return math.sqrt(2.0 / nn.init._calculate_correct_fan(torch.empty(shape), "fan_in"))


def check_kaiming_std(fn: Callable) -> Feedback:
    """Check ``fn(shape) -> float``: Kaiming (He) initialization's standard deviation for a weight shape.

    For a ``Conv2d`` weight ``(C_out, C_in, KH, KW)`` or a ``Linear`` weight ``(out, in)`` followed
    by a ReLU, the standard deviation is ``sqrt(2 / fan_in)``, where ``fan_in`` is the number of
    inputs of one output unit: ``C_in * KH * KW`` (``in`` for a linear layer). The reference is
    the standard deviation of ``torch.nn.init.kaiming_normal_(w, nonlinearity="relu")``.
    """
    import math

    cases = [dict(shape=s) for s in [(16, 1, 3, 3), (32, 16, 5, 5), (8, 4, 1, 1), (10, 128)]]

    def one(c):
        shape = c["shape"]
        got, expected = _call(fn, shape), _kaiming_std(shape)
        fan_in, fan_out = math.prod(shape[1:]), shape[0] * math.prod(shape[2:])
        hints = [(math.sqrt(2.0 / fan_out), "that uses fan_out (the outputs); Kaiming's rule for the forward "
                                            "pass uses fan_in, the inputs of one output unit: C_in * KH * KW"),
                 (math.sqrt(2.0 / shape[1]), "fan_in counts every input of one output unit, C_in * KH * KW, "
                                             "not only the input channels"),
                 (math.sqrt(1.0 / fan_in), "that is sqrt(1 / fan_in), the rule for a linear unit; a ReLU zeroes "
                                           "half of its inputs, hence the 2 in sqrt(2 / fan_in)"),
                 (2.0 / fan_in, "that is the variance, 2 / fan_in; return its square root"),
                 (math.sqrt(2.0 / (fan_in + fan_out)), "that is Xavier's rule, sqrt(2 / (fan_in + fan_out))")]
        return _with_hint(_compare(got, expected, what="standard deviation"), got, expected, hints)

    return _run("check_kaiming_std", "the std of torch.nn.init.kaiming_normal_(w, nonlinearity='relu')", cases, one)


def check_kaiming_normal(fn: Callable) -> Feedback:
    """Check ``fn(shape) -> tensor``: a weight of ``shape`` drawn from ``N(0, kaiming_std(shape)^2)``.

    The draw is random, so the checker measures it: the shape, the mean (close to 0), the standard
    deviation (within 5% of ``sqrt(2 / fan_in)``; the shapes are large enough for that) and the
    kurtosis, which tells a normal distribution (3) from a uniform one (1.8).
    """
    import math

    import torch

    cases = [dict(shape=s) for s in [(64, 32, 3, 3), (64, 64, 5, 5), (256, 1024)]]

    def one(c):
        shape = c["shape"]
        got = _call(fn, shape)
        if got is None:
            return "returned None: did you forget `return`?"
        if isinstance(got, tuple):
            return f"returned a tuple of {len(got)} items, expected one tensor of shape {shape}"
        if not isinstance(got, (torch.Tensor, np.ndarray)):
            return f"returned {_a(got)}, expected a tensor of shape {shape}"
        w = torch.as_tensor(got).detach().double()
        if tuple(w.shape) != shape:
            return f"returned an array of shape {tuple(w.shape)}, expected shape {shape}"
        if not torch.isfinite(w).all():
            return "the weights contain NaN or infinity"
        expected = _kaiming_std(shape)
        w = w.flatten()
        mean, std = w.mean().item(), w.std().item()
        if abs(std / expected - 1) > 0.05:
            return (f"the weights' standard deviation is {std:.4g}, expected about {expected:.4g} "
                    f"(ratio {std / expected:.3g}): compute it from fan_in, as in kaiming_std")
        if abs(mean) > 5 * expected / math.sqrt(w.numel()):
            return f"the weights' mean is {mean:.3g}, expected about 0: draw from a distribution centred at 0"
        kurtosis = (((w - mean) / std) ** 4).mean().item()
        if kurtosis < 2.5:
            return (f"the weights look uniformly distributed (kurtosis {kurtosis:.2f}; a normal distribution "
                    "has 3): draw from a normal distribution, e.g. torch.randn(shape) * std")
        return None

    return _run("check_kaiming_normal", "N(0, 2 / fan_in), as torch.nn.init.kaiming_normal_", cases, one)


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
    are the truth), as in scikit-learn. The reference is :func:`cnnbook.pytorch.metrics.confusion_matrix`.
    """
    from cnnbook.pytorch.metrics import confusion_matrix

    def one(c):
        got = _call(fn, c["y_true"].copy(), c["y_pred"].copy(), c["num_classes"])
        expected = confusion_matrix(c["y_true"], c["y_pred"], num_classes=c["num_classes"])
        hints = [(expected.T, "rows and columns are swapped: rows are the true classes, columns the predictions")]
        return _with_hint(_compare(got, expected, what="matrix"), got, expected, hints)

    return _run("check_confusion_matrix", "cnnbook.pytorch.metrics.confusion_matrix", _metric_cases(11), one)


def check_precision_recall(fn: Callable) -> Feedback:
    """Check ``fn(y_true, y_pred, num_classes) -> (precision, recall)``, one value per class.

    Precision of class ``k``: of the examples predicted ``k``, the fraction truly ``k``.
    Recall: of the examples truly ``k``, the fraction predicted ``k``. Define 0/0 as 0. The
    reference is :func:`cnnbook.pytorch.metrics.precision` / :func:`cnnbook.pytorch.metrics.recall` (equal to
    scikit-learn's ``precision_score`` / ``recall_score`` with ``average=None, zero_division=0``).
    """
    from cnnbook.pytorch.metrics import precision, recall

    def one(c):
        y, p, k = c["y_true"], c["y_pred"], c["num_classes"]
        result = _call(fn, y.copy(), p.copy(), k)
        if not isinstance(result, tuple) or len(result) != 2:
            return f"returned {type(result).__name__}, expected a tuple (precision, recall)"
        prec, rec = precision(y, p, num_classes=k), recall(y, p, num_classes=k)
        swap = "precision and recall are swapped: precision divides by the predicted count, recall by the true count"
        problem = _with_hint(_compare(result[0], prec, what="precision"), result[0], prec, [(rec, swap)])
        return problem or _with_hint(_compare(result[1], rec, what="recall"), result[1], rec, [(prec, swap)])

    return _run("check_precision_recall", "cnnbook.pytorch.metrics.precision / recall", _metric_cases(12), one)


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
        if isinstance(model, type) and issubclass(model, torch.nn.Module):
            return f"got the class {model.__name__}, expected a model: pass an instance, {model.__name__}()"
        if not isinstance(model, torch.nn.Module):
            return f"got a {type(model).__name__}, expected a torch.nn.Module"
        if "max_params" in c:
            n = sum(p.numel() for p in model.parameters())
            return None if n <= max_params else f"{n:,} parameters, at most {max_params:,} allowed: make it smaller"
        x = torch.rand(c["batch"], *in_shape, generator=torch.Generator().manual_seed(0))
        param = next(model.parameters(), None)
        x = x if param is None else x.to(param.device, param.dtype)  # a model on the GPU, or in float64
        model.eval()
        if not c.get("_grad"):
            y = _torch_call(model, x)
            if not isinstance(y, torch.Tensor):
                return f"forward returned {_a(y)}, expected a tensor of scores (N, {num_classes})"
            if tuple(y.shape) != (c["batch"], num_classes):
                hint = (": did you forget to flatten before the Linear layer?" if y.dim() > 2
                        else f": the last layer needs {num_classes} outputs, one score per class")
                return f"output shape {tuple(y.shape)}, expected {(c['batch'], num_classes)}{hint}"
            return None if torch.isfinite(y).all() else "the scores contain NaN or infinity"
        model.train()
        model.zero_grad()
        try:
            _limited(lambda: model(x).sum().backward())
        except _Stop:
            raise
        except Exception as exc:
            return f"backward raised {type(exc).__name__}: {exc}"
        dead = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
        return f"no gradient reaches {', '.join(dead)}: are those layers used in forward()?" if dead else None

    feedback = _run("check_classifier", f"{num_classes} scores per image, gradients to every layer", cases, one)
    if isinstance(model, torch.nn.Module):
        model.train(was_training)
    return feedback
