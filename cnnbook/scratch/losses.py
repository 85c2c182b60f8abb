"""Loss functions from scratch, each with its gradient: mean squared error, negative
log-likelihood and cross-entropy (with class weights, ignored targets and label smoothing,
as torch computes them).

NaN or infinite inputs and class weights are refused: they would spread
into every gradient. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))
np.float64(0.6931471805599453)
"""
from __future__ import annotations

import numpy as np

from .activations import log_softmax, softmax
from .checks import check_array, check_finite, check_reduction, check_same_dtype, check_smoothing, is_int

__all__ = ["mse_loss", "mse_loss_backward", "nll_loss", "nll_loss_backward", "cross_entropy",
           "cross_entropy_backward"]


def _reduce(fn, loss, reduction):
    if reduction == "mean":
        return loss.dtype.type(loss.mean())
    if reduction == "sum":
        return loss.dtype.type(loss.sum())
    return loss


def _mse_setup(fn, input, target, reduction):
    check_array(fn, "input", input)
    check_array(fn, "target", target)
    check_same_dtype(fn, input=input, target=target)
    if input.shape != target.shape:
        raise ValueError(f"{fn}: input and target must have the same shape, got input {input.shape} "
                         f"and target {target.shape}; hint: broadcasting here is usually a bug")
    check_reduction(fn, reduction)
    check_finite(fn, "input", input)
    check_finite(fn, "target", target)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error ``(input - target)**2``, averaged (``'mean'``), summed or not reduced.

    >>> mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
    np.float64(5.0)
    """
    _mse_setup("mse_loss", input, target, reduction)
    return _reduce("mse_loss", (input - target) ** 2, reduction)


def mse_loss_backward(grad_output, input, target, reduction="mean"):
    """Gradient of :func:`mse_loss` with respect to ``input``: ``2*(input-target)*g``, divided
    by the number of elements for ``'mean'``."""
    fn = "mse_loss_backward"
    _mse_setup(fn, input, target, reduction)
    grad_output = _loss_grad_output(fn, grad_output, input.shape, reduction, input.dtype)
    scale = 2.0 / input.size if reduction == "mean" else 2.0
    return (input - target) * (grad_output * input.dtype.type(scale))


def _loss_grad_output(fn, grad_output, none_shape, reduction, dtype):
    """``grad_output`` of a loss as an array: a scalar for 'mean'/'sum', else the loss's shape."""
    g = np.asarray(grad_output, dtype=dtype)
    want = none_shape if reduction == "none" else ()
    if g.shape != tuple(want):
        raise ValueError(f"{fn}: grad_output must have the loss's shape {tuple(want)} for "
                         f"reduction={reduction!r}, got {g.shape}")
    return g


def _class_setup(fn, input, target, weight, ignore_index, reduction):
    """Check a classification loss; return ``(x (M, C), t (M,), keep (M,), weight (C,))``."""
    check_array(fn, "input", input, range(1, 33), "(N, C) or (N, C, d1, ...) or (C,)")
    if not isinstance(target, np.ndarray) or not np.issubdtype(target.dtype, np.integer):
        given = target.dtype if isinstance(target, np.ndarray) else type(target).__name__
        raise TypeError(f"{fn}: target must be an integer array of class indices, got {given}; "
                        "hint: labels.astype(np.int64) (class-probability targets are not supported)")
    want = input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()
    if target.shape != want:
        raise ValueError(f"{fn}: target must have shape {want} (one class index per sample) for input "
                         f"{input.shape}, got {target.shape}")
    check_reduction(fn, reduction)
    if not is_int(ignore_index):
        raise TypeError(f"{fn}: ignore_index must be an int (a class index never used, e.g. -100), "
                        f"got {ignore_index!r}")
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    bad = (target != ignore_index) & ((target < 0) | (target >= c))
    if bad.any():
        raise ValueError(f"{fn}: target values must be class indices in [0, {c - 1}] (or ignore_index="
                         f"{ignore_index}), got {target[bad].ravel()[0]} at position "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])}; hint: input has {c} classes")
    check_finite(fn, "input", input)
    weight = _class_weight(fn, weight, c, input.dtype)
    x = np.moveaxis(input, 1, -1).reshape(-1, c) if input.ndim > 1 else input[None]
    t = target.reshape(-1).astype(np.int64)
    keep = t != ignore_index
    return x, np.where(keep, t, 0), keep, weight


def _class_weight(fn, weight, c, dtype):
    if weight is None:
        return np.ones(c, dtype=dtype)
    check_array(fn, "weight", weight, (1,), "(C,)")
    if weight.shape != (c,):
        raise ValueError(f"{fn}: weight must have one value per class, shape ({c},), got {weight.shape}")
    check_finite(fn, "weight", weight)
    return weight.astype(dtype, copy=False)


def _nll_parts(x, t, keep, weight):
    """Per-sample weights ``w[t]`` (0 where ignored) and the sum they are averaged by."""
    w_t = weight[t] * keep
    return w_t, w_t.sum()


def _finish(loss, reduction, denominator, shape):
    if reduction == "none":
        return loss.reshape(shape)
    total = loss.sum()
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):   # all ignored: NaN, as torch
            total = total / denominator
    return loss.dtype.type(total)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood ``-weight[t] * input[i, t]`` of log-probabilities ``input``.

    ``'mean'`` divides the sum by the total weight of the non-ignored targets, as torch does.

    Shape
    -----
    input (N, C) or (N, C, d1, ...); target (N,) or (N, d1, ...) of int class indices.

    >>> nll_loss(np.log(np.array([[0.5, 0.5], [0.25, 0.75]])), np.array([0, 1]))
    np.float64(0.4904146265058631)
    """
    x, t, keep, weight = _class_setup("nll_loss", input, target, weight, ignore_index, reduction)
    w_t, total_w = _nll_parts(x, t, keep, weight)
    loss = -w_t * x[np.arange(len(t)), t]
    return _finish(loss, reduction, total_w, target.shape)


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Gradient of :func:`nll_loss` with respect to ``input``: ``-weight[t]`` at the target
    class, scaled by ``grad_output`` (and divided by the total weight for ``'mean'``)."""
    fn = "nll_loss_backward"
    x, t, keep, weight = _class_setup(fn, input, target, weight, ignore_index, reduction)
    g = _loss_grad_output(fn, grad_output, target.shape, reduction, input.dtype).reshape(-1)
    w_t, total_w = _nll_parts(x, t, keep, weight)
    coef = w_t * (g / total_w if reduction == "mean" else g)
    grad = np.zeros_like(x)
    grad[np.arange(len(t)), t] = -coef
    return _unflatten_classes(grad, input.shape)


def _unflatten_classes(grad, shape):
    """Undo ``_class_setup``'s flattening: (M, C) back to ``shape``."""
    if len(shape) == 1:
        return grad[0]
    moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    return np.ascontiguousarray(np.moveaxis(grad.reshape(moved), -1, 1))


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits ``input`` against class indices ``target`` (log_softmax + nll).

    With ``label_smoothing = e`` over C classes, the per-sample loss is
    ``(1 - e) * nll + e/C * sum_c(-weight[c] * log_softmax(x)[c])``; ``'mean'`` divides
    both parts by the total weight of the non-ignored targets, exactly as torch does.

    Parameters
    ----------
    input : ndarray, shape (N, C) or (N, C, d1, ...) or (C,)
        Unnormalised scores (logits).
    target : int ndarray, shape (N,) or (N, d1, ...) or ()
        Class indices in [0, C), or ``ignore_index``.
    weight : ndarray of shape (C,) or None
        Class weights.
    ignore_index : int, default -100
        Targets equal to it contribute nothing.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    label_smoothing : float in [0, 1], default 0.0

    Returns
    -------
    scalar of the input's dtype, or ndarray of the target's shape for ``'none'``

    Raises
    ------
    TypeError
        Integer logits, or targets that are not integers (class probabilities are not supported).
    ValueError
        Target shape not matching the input, targets outside [0, C) other than
        ``ignore_index``, NaN or infinite logits, a bad ``weight``, ``reduction`` or
        ``label_smoothing``.

    Examples
    --------
    >>> cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))
    np.float64(0.6931471805599453)
    """
    fn = "cross_entropy"
    check_smoothing(fn, label_smoothing)
    x, t, keep, weight = _class_setup(fn, input, target, weight, ignore_index, reduction)
    logp = log_softmax(x, dim=1)
    w_t, total_w = _nll_parts(x, t, keep, weight)
    loss = -w_t * logp[np.arange(len(t)), t]
    if label_smoothing > 0:
        smooth = -(logp * weight).sum(axis=1) * keep
        loss = (1 - label_smoothing) * loss + (label_smoothing / x.shape[1]) * smooth
    return _finish(loss, reduction, total_w, target.shape)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    """Gradient of :func:`cross_entropy` with respect to the logits ``input``.

    For one sample with target t, ``d loss / d logp_c = -((1-e)*weight[t]*[c == t] + e/C*weight[c])``,
    and through log_softmax ``grad_logits = a - softmax(x) * sum_c(a_c)``. Without weights
    and smoothing this is the familiar ``softmax(x) - one_hot(t)`` (divided by N for 'mean').
    """
    fn = "cross_entropy_backward"
    check_smoothing(fn, label_smoothing)
    x, t, keep, weight = _class_setup(fn, input, target, weight, ignore_index, reduction)
    g = _loss_grad_output(fn, grad_output, target.shape, reduction, input.dtype).reshape(-1)
    w_t, total_w = _nll_parts(x, t, keep, weight)
    coef = (g / total_w if reduction == "mean" else g) * keep   # d loss / d per-sample loss
    rows = np.arange(len(t))
    a = np.zeros_like(x)                                        # d loss / d log_softmax
    a[rows, t] = -(1 - label_smoothing) * weight[t]
    if label_smoothing > 0:
        a -= (label_smoothing / x.shape[1]) * weight
    a *= coef[:, None]
    p = softmax(x, dim=1)
    return _unflatten_classes(a - p * a.sum(axis=1, keepdims=True), input.shape)
