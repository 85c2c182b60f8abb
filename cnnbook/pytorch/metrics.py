"""Classification metrics written from scratch: every one is a function of the confusion matrix.

The confusion matrix (混淆矩阵) ``cm`` counts, for each true class ``i`` (row) and predicted
class ``j`` (column), how many samples of class ``i`` were predicted as ``j`` (scikit-learn's
convention). From it:

- accuracy (准确率) = trace(cm) / cm.sum()
- precision (精确率) of class k = cm[k, k] / cm[:, k].sum()   (of all predicted k, how many are k)
- recall (召回率) of class k    = cm[k, k] / cm[k, :].sum()   (of all true k, how many were found)
- F1 of class k = 2 * precision * recall / (precision + recall)

``average=None`` gives one value per class, ``"macro"`` their plain mean, ``"weighted"`` their
mean weighted by each class's support (number of true samples), ``"micro"`` the metric of the
pooled counts (equal to accuracy for single-label problems). A 0/0 is replaced by
``zero_division`` (default 0.0), as in scikit-learn.

Which classes are averaged follows scikit-learn too: ``labels=`` if given, else
``range(num_classes)`` if given, else the labels that occur in ``y_true`` or ``y_pred``. A class
that occurs in neither array is then not averaged as a zero. The ``*_from_cm`` functions
average over every row of the matrix they are given.

The functions accept NumPy arrays, lists, or torch tensors (on any device), and return NumPy
values, so the module itself never imports torch.

Examples
--------
>>> y_true, y_pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
>>> confusion_matrix(y_true, y_pred)
array([[1, 1, 0],
       [0, 2, 0],
       [1, 0, 0]])
>>> float(accuracy(y_true, y_pred))
0.6
>>> recall(y_true, y_pred).tolist()
[0.5, 1.0, 0.0]
"""
from __future__ import annotations

import numpy as np

from cnnbook.pytorch.utils import format_table
from cnnbook.scratch import checks

AVERAGES = (None, "macro", "weighted", "micro")
MAX_CLASSES = 10_000        # a larger C is a label mistaken for a class index (C x C counts would not fit)


def _as_labels(y, name: str, func: str) -> np.ndarray:
    """Return ``y`` as a 1-D int64 NumPy array (torch tensors are moved to the CPU first)."""
    if hasattr(y, "detach"):  # a torch tensor, without importing torch
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{func}: {name} must be 1-D class indices, got shape {y.shape}; "
                         "for scores or one-hot rows use .argmax(1) first")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(f"{func}: {name} must hold integer class indices, got dtype {y.dtype} "
                        f"(e.g. {y.flat[0]!r}); map class names to indices first, e.g. "
                        "[class_names.index(c) for c in labels]")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise TypeError(f"{func}: {name} must hold integer class indices, got dtype {y.dtype}")
    return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Count the samples of each (true class, predicted class) pair.

    Parameters
    ----------
    y_true, y_pred : array-like of int
        True and predicted class indices in ``[0, num_classes)``.
    num_classes : int, optional
        Number of classes C. Default: ``max(y_true.max(), y_pred.max()) + 1``.

    Returns
    -------
    numpy.ndarray of int64
        ``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``.

    Shape
    -----
    y_true, y_pred: ``(N,)``; output: ``(C, C)``, rows = true class, columns = prediction.

    Raises
    ------
    ValueError
        If the lengths differ or a label is outside ``[0, num_classes)``.
    """
    return _confusion(y_true, y_pred, num_classes, "confusion_matrix")


def _confusion(y_true, y_pred, num_classes, func: str) -> np.ndarray:
    y_true = _as_labels(y_true, "y_true", func)
    y_pred = _as_labels(y_pred, "y_pred", func)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{func}: y_true and y_pred must have the same length, "
                         f"got {y_true.shape[0]} and {y_pred.shape[0]}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
        if num_classes > MAX_CLASSES:
            raise ValueError(f"{func}: the largest label is {num_classes - 1}, so the confusion matrix would have "
                             f"{num_classes} classes; labels must be class indices 0 .. C-1 (pass num_classes=C)")
    else:
        _check_num_classes(num_classes, func)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{func}: {name} holds labels outside [0, {num_classes}) "
                             f"(min {y.min()}, max {y.max()}); pass num_classes= to widen")
    # The loop version would be: for t, p in zip(y_true, y_pred): cm[t, p] += 1
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _check_num_classes(num_classes, func: str) -> None:
    if not checks.is_int(num_classes) or not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"{func}: num_classes must be a positive int, got {num_classes!r}"
                         + (f"; at most {MAX_CLASSES} classes fit" if checks.is_int(num_classes) else ""))


def _check_cm(cm, func: str) -> np.ndarray:
    if hasattr(cm, "detach"):
        cm = cm.detach().cpu().numpy()
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"{func}: cm must be a square (C, C) confusion matrix, got shape {cm.shape}")
    if not (np.issubdtype(cm.dtype, np.number) or cm.dtype == bool):
        raise TypeError(f"{func}: cm must hold counts, got dtype {cm.dtype}")
    if cm.size and not (np.isfinite(cm).all() and cm.min() >= 0):
        raise ValueError(f"{func}: cm must hold finite counts >= 0, got min {cm.min()}, max {cm.max()}")
    return cm


def _check_zero_division(zero_division, func: str) -> None:
    if not checks.is_number(zero_division):          # NaN is allowed, as in scikit-learn
        raise TypeError(f"{func}: zero_division must be a number (0.0, 1.0 or NaN), got {zero_division!r}")


def _safe_divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


def _average(per_class: np.ndarray, support: np.ndarray, micro: float, average, func: str):
    if average is None:
        return per_class
    if average == "macro":
        return float(per_class.mean()) if per_class.size else 0.0
    if average == "weighted":
        total = support.sum()
        return float((per_class * support).sum() / total) if total else 0.0
    if average == "micro":
        return float(micro)
    raise ValueError(f"{func}: average must be one of {AVERAGES}, got {average!r}")


def _score(kind: str, tp, predicted, actual, average, zero_division: float, func: str):
    """Precision, recall or F1 per class from the counts of each class, then averaged.

    ``tp``, ``predicted``, ``actual``: per class, the hits, the predictions of it, its samples.
    """
    _check_zero_division(zero_division, func)
    fp, fn = predicted - tp, actual - tp
    num, den = {"precision": (tp, predicted), "recall": (tp, actual),
                "f1": (2 * tp, 2 * tp + fp + fn)}[kind]
    per_class = _safe_divide(num, den, zero_division)
    micro = _safe_divide(np.sum(num), np.sum(den), zero_division)   # the metric of the pooled counts
    return _average(per_class, actual, micro, average, func)


def _cm_counts(cm):
    return np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)


def accuracy_from_cm(cm) -> float:
    """Fraction of correct predictions: ``trace(cm) / cm.sum()`` (0.0 for an empty matrix)."""
    cm = _check_cm(cm, "accuracy_from_cm")
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0


def precision_from_cm(cm, average=None, zero_division: float = 0.0):
    """Precision from a confusion matrix: ``cm[k, k] / cm[:, k].sum()``, averaged by ``average``."""
    cm = _check_cm(cm, "precision_from_cm")
    return _score("precision", *_cm_counts(cm), average, zero_division, "precision_from_cm")


def recall_from_cm(cm, average=None, zero_division: float = 0.0):
    """Recall from a confusion matrix: ``cm[k, k] / cm[k, :].sum()``, averaged by ``average``."""
    cm = _check_cm(cm, "recall_from_cm")
    return _score("recall", *_cm_counts(cm), average, zero_division, "recall_from_cm")


def f1_from_cm(cm, average=None, zero_division: float = 0.0):
    """F1 from a confusion matrix: per class ``2 TP / (2 TP + FP + FN)``, averaged by ``average``.

    ``2 TP / (2 TP + FP + FN)`` is the harmonic mean ``2 P R / (P + R)`` written without the
    0/0 that appears when a class is never predicted.
    """
    cm = _check_cm(cm, "f1_from_cm")
    return _score("f1", *_cm_counts(cm), average, zero_division, "f1_from_cm")


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose predicted class equals the true class.

    Shape
    -----
    y_true, y_pred: ``(N,)`` class indices.
    """
    y_true = _as_labels(y_true, "y_true", "accuracy")
    y_pred = _as_labels(y_pred, "y_pred", "accuracy")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"accuracy: y_true and y_pred must have the same length, "
                         f"got {y_true.shape[0]} and {y_pred.shape[0]}")
    return float((y_true == y_pred).mean()) if y_true.size else 0.0


def _label_set(y_true, y_pred, labels, num_classes, func: str) -> np.ndarray:
    """scikit-learn's rule: ``labels``, else ``range(num_classes)``, else the labels that occur."""
    if labels is not None:
        labels = _as_labels(labels, "labels", func)
        if labels.size == 0 or labels.min() < 0 or len(set(labels.tolist())) != labels.size:
            raise ValueError(f"{func}: labels must be distinct class indices >= 0, got {labels.tolist()}")
        return labels
    if num_classes is not None:
        _check_num_classes(num_classes, func)
        return np.arange(num_classes)
    return np.union1d(_as_labels(y_true, "y_true", func), _as_labels(y_pred, "y_pred", func))


def _counts(y_true, y_pred, labels, num_classes, func: str):
    """``(tp, predicted, actual)`` of each class of the label set."""
    chosen = _label_set(y_true, y_pred, labels, num_classes, func)
    size = num_classes
    if labels is not None:       # a sample of a class outside ``labels`` still counts as a miss
        size = int(max(chosen.max(), *(_as_labels(y, n, func).max(initial=-1)
                                       for y, n in ((y_true, "y_true"), (y_pred, "y_pred"))))) + 1
    tp, predicted, actual = _cm_counts(_confusion(y_true, y_pred, size, func))
    return tp[chosen], predicted[chosen], actual[chosen]


def precision(y_true, y_pred, average=None, num_classes=None, zero_division: float = 0.0, labels=None):
    """Precision (精确率): of the samples predicted as class k, the fraction that are k.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape ``(N,)``
    average : {None, "macro", "weighted", "micro"}, default None
        None returns one value per class of the label set (shape ``(len(labels),)``); the
        others a float.
    num_classes : int, optional
        C: the classes are ``0 .. C-1``.
    zero_division : float, default 0.0
        Value used where a class is never predicted (0/0).
    labels : sequence of int, optional
        The classes to report, in this order. Default: ``range(num_classes)`` if given, else
        the labels that occur in ``y_true`` or ``y_pred`` (scikit-learn's rule).

    Examples
    --------
    >>> precision([0, 2, 2], [0, 2, 0]).tolist()        # labels 0 and 2 occur; 1 is not averaged
    [0.5, 1.0]
    >>> precision([0, 2, 2], [0, 2, 0], average="macro")
    0.75
    """
    counts = _counts(y_true, y_pred, labels, num_classes, "precision")
    return _score("precision", *counts, average, zero_division, "precision")


def recall(y_true, y_pred, average=None, num_classes=None, zero_division: float = 0.0, labels=None):
    """Recall (召回率): of the samples of class k, the fraction predicted as k.

    Arguments as in :func:`precision`.
    """
    counts = _counts(y_true, y_pred, labels, num_classes, "recall")
    return _score("recall", *counts, average, zero_division, "recall")


def f1_score(y_true, y_pred, average=None, num_classes=None, zero_division: float = 0.0, labels=None):
    """F1 score: the harmonic mean of precision and recall, per class or averaged.

    Arguments as in :func:`precision`.
    """
    counts = _counts(y_true, y_pred, labels, num_classes, "f1_score")
    return _score("f1", *counts, average, zero_division, "f1_score")


def classification_report(y_true, y_pred, class_names=None, num_classes=None, digits: int = 3,
                          labels=None) -> str:
    """Return a text table of precision, recall, F1 and support per class, plus the averages.

    The layout follows :func:`sklearn.metrics.classification_report`. The classes are
    ``labels``, else ``range(num_classes)``, else one per entry of ``class_names``, else the
    labels that occur (scikit-learn's rule).
    """
    func = "classification_report"
    if isinstance(class_names, str):
        raise TypeError(f"{func}: class_names must be a sequence of names, one per class, got the string "
                        f"{class_names!r}")
    if not checks.is_int(digits) or digits < 0:
        raise ValueError(f"{func}: digits must be an int >= 0, got {digits!r}")
    if labels is None and num_classes is None and class_names is not None:
        num_classes = len(class_names)
    counts = _counts(y_true, y_pred, labels, num_classes, func)
    chosen = _label_set(y_true, y_pred, labels, num_classes, func)
    names = list(class_names) if class_names is not None else [str(k) for k in chosen]
    if len(names) != len(chosen):
        raise ValueError(f"{func}: got {len(names)} class_names for {len(chosen)} classes")
    support = counts[2]
    per = [_score(kind, *counts, None, 0.0, func) for kind in ("precision", "recall", "f1")]
    f = lambda v: f"{v:.{digits}f}"  # noqa: E731
    rows = [[name, f(per[0][k]), f(per[1][k]), f(per[2][k]), support[k]] for k, name in enumerate(names)]
    rows.append([""] * 5)
    correct, total = counts[0].sum(), support.sum()
    rows.append(["accuracy", "", "", f(correct / total if total else 0.0), total])
    for avg in ("macro", "weighted"):
        rows.append([f"{avg} avg"] + [f(_score(kind, *counts, avg, 0.0, func))
                                      for kind in ("precision", "recall", "f1")] + [total])
    return format_table(["", "precision", "recall", "f1-score", "support"], rows, align="rrrrr", rule=False)


def plot_confusion_matrix(cm, class_names=None, normalize=None, ax=None, title="Confusion matrix"):
    """Draw a confusion matrix as a heatmap; see :func:`cnnbook.pytorch.plots.plot_confusion_matrix`."""
    from cnnbook.pytorch.plots import plot_confusion_matrix as _plot

    return _plot(cm, class_names=class_names, normalize=normalize, ax=ax, title=title)
