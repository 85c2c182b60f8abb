"""Checkers for the exercises of chapter 3 (Building steps)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnnbook.book.exercises._core import Feedback, _a, _call, _compare, _limited, _rng, _run, _Stop, _torch_call, _with_hint

__all__ = ['check_normalize', 'check_confusion_matrix', 'check_precision_recall', 'check_classifier']

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
