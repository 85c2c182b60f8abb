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

AVERAGES = (None, "macro", "weighted", "micro")


def _as_labels(y, name: str, func: str) -> np.ndarray:
    """Return ``y`` as a 1-D int64 NumPy array (torch tensors are moved to the CPU first)."""
    if hasattr(y, "detach"):  # a torch tensor, without importing torch
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{func}: {name} must be 1-D class indices, got shape {y.shape}; "
                         "for scores or one-hot rows use .argmax(1) first")
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
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{func}: {name} holds labels outside [0, {num_classes}) "
                             f"(min {y.min()}, max {y.max()}); pass num_classes= to widen")
    # The loop version would be: for t, p in zip(y_true, y_pred): cm[t, p] += 1
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _check_cm(cm, func: str) -> np.ndarray:
    if hasattr(cm, "detach"):
        cm = cm.detach().cpu().numpy()
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"{func}: cm must be a square (C, C) confusion matrix, got shape {cm.shape}")
    return cm


def _safe_divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


def _average(per_class: np.ndarray, support: np.ndarray, average, func: str,
             micro: float) -> np.ndarray | float:
    if average is None:
        return per_class
    if average == "macro":
        return float(per_class.mean())
    if average == "weighted":
        total = support.sum()
        return float((per_class * support).sum() / total) if total else 0.0
    if average == "micro":
        return float(micro)
    raise ValueError(f"{func}: average must be one of {AVERAGES}, got {average!r}")


def accuracy_from_cm(cm) -> float:
    """Fraction of correct predictions: ``trace(cm) / cm.sum()`` (0.0 for an empty matrix)."""
    cm = _check_cm(cm, "accuracy_from_cm")
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0


def precision_from_cm(cm, average=None, zero_division: float = 0.0):
    """Precision from a confusion matrix: ``cm[k, k] / cm[:, k].sum()``, averaged by ``average``."""
    cm = _check_cm(cm, "precision_from_cm")
    per_class = _safe_divide(np.diag(cm), cm.sum(axis=0), zero_division)
    return _average(per_class, cm.sum(axis=1), average, "precision_from_cm", accuracy_from_cm(cm))


def recall_from_cm(cm, average=None, zero_division: float = 0.0):
    """Recall from a confusion matrix: ``cm[k, k] / cm[k, :].sum()``, averaged by ``average``."""
    cm = _check_cm(cm, "recall_from_cm")
    per_class = _safe_divide(np.diag(cm), cm.sum(axis=1), zero_division)
    return _average(per_class, cm.sum(axis=1), average, "recall_from_cm", accuracy_from_cm(cm))


def f1_from_cm(cm, average=None, zero_division: float = 0.0):
    """F1 from a confusion matrix: per class ``2 TP / (2 TP + FP + FN)``, averaged by ``average``.

    ``2 TP / (2 TP + FP + FN)`` is the harmonic mean ``2 P R / (P + R)`` written without the
    0/0 that appears when a class is never predicted.
    """
    cm = _check_cm(cm, "f1_from_cm")
    tp = np.diag(cm)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    per_class = _safe_divide(2 * tp, 2 * tp + fp + fn, zero_division)
    return _average(per_class, cm.sum(axis=1), average, "f1_from_cm", accuracy_from_cm(cm))


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


def precision(y_true, y_pred, average=None, num_classes=None, zero_division: float = 0.0):
    """Precision (精确率): of the samples predicted as class k, the fraction that are k.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape ``(N,)``
    average : {None, "macro", "weighted", "micro"}, default None
        None returns one value per class (shape ``(C,)``); the others a float.
    num_classes : int, optional
        C; default inferred from the labels.
    zero_division : float, default 0.0
        Value used where a class is never predicted (0/0).
    """
    cm = _confusion(y_true, y_pred, num_classes, "precision")
    return precision_from_cm(cm, average, zero_division)


def recall(y_true, y_pred, average=None, num_classes=None, zero_division: float = 0.0):
    """Recall (召回率): of the samples of class k, the fraction predicted as k.

    Arguments as in :func:`precision`.
    """
    cm = _confusion(y_true, y_pred, num_classes, "recall")
    return recall_from_cm(cm, average, zero_division)


def f1_score(y_true, y_pred, average=None, num_classes=None, zero_division: float = 0.0):
    """F1 score: the harmonic mean of precision and recall, per class or averaged.

    Arguments as in :func:`precision`.
    """
    cm = _confusion(y_true, y_pred, num_classes, "f1_score")
    return f1_from_cm(cm, average, zero_division)


def classification_report(y_true, y_pred, class_names=None, num_classes=None, digits: int = 3) -> str:
    """Return a text table of precision, recall, F1 and support per class, plus the averages.

    The layout follows :func:`sklearn.metrics.classification_report`.
    """
    cm = _confusion(y_true, y_pred, num_classes, "classification_report")
    names = list(class_names) if class_names is not None else [str(k) for k in range(len(cm))]
    if len(names) != len(cm):
        raise ValueError(f"classification_report: got {len(names)} class_names for {len(cm)} classes")
    p, r, f = precision_from_cm(cm), recall_from_cm(cm), f1_from_cm(cm)
    support = cm.sum(axis=1)
    width = max(12, *(len(n) for n in names))
    lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"]
    for k, name in enumerate(names):
        lines.append(f"{name:>{width}} {p[k]:9.{digits}f} {r[k]:9.{digits}f} {f[k]:9.{digits}f} {support[k]:9d}")
    lines.append("")
    lines.append(f"{'accuracy':>{width}} {'':>9} {'':>9} {accuracy_from_cm(cm):9.{digits}f} {support.sum():9d}")
    for avg in ("macro", "weighted"):
        row = [fn(cm, average=avg) for fn in (precision_from_cm, recall_from_cm, f1_from_cm)]
        lines.append(f"{avg + ' avg':>{width}} " + " ".join(f"{v:9.{digits}f}" for v in row)
                     + f" {support.sum():9d}")
    return "\n".join(lines)


def plot_confusion_matrix(cm, class_names=None, normalize=None, ax=None, title="Confusion matrix"):
    """Draw a confusion matrix as a heatmap; see :func:`cnnbook.pytorch.plots.plot_confusion_matrix`."""
    from cnnbook.pytorch.plots import plot_confusion_matrix as _plot

    return _plot(cm, class_names=class_names, normalize=normalize, ax=ax, title=title)
