"""The fully connected layer and dropout from scratch, each with its backward.

``linear`` is ``x @ weight.T + bias``; ``dropout`` zeroes elements at random in training
and scales the rest so that the expected value stays the same. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> linear(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0]]), np.array([0.5]))
array([[3.5]])
"""
from __future__ import annotations

import numpy as np

from .checks import check_array, check_bool, check_dropout_p, check_grad_output, check_same_dtype

__all__ = ["linear", "linear_backward", "dropout", "dropout_backward"]


def _linear_setup(fn, input, weight, bias):
    check_array(fn, "input", input, range(1, 33), "(*, in_features)")
    check_array(fn, "weight", weight, (2,), "(out_features, in_features)")
    if bias is not None:
        check_array(fn, "bias", bias, (1,), "(out_features,)")
    check_same_dtype(fn, input=input, weight=weight, bias=bias)
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(f"{fn}: input has {input.shape[-1]} features (last axis) but weight expects "
                         f"{weight.shape[1]}; input {input.shape}, weight {weight.shape}. Hint: flatten "
                         "the feature maps first, and size in_features to match")
    if bias is not None and bias.shape != weight.shape[:1]:
        raise ValueError(f"{fn}: bias must have shape ({weight.shape[0]},), got {bias.shape}")


def linear(input, weight, bias=None):
    """Affine map ``y = x @ weight.T + bias``.

    Parameters
    ----------
    input : ndarray, shape (*, in_features)
    weight : ndarray, shape (out_features, in_features)
    bias : ndarray of shape (out_features,), or None

    Returns
    -------
    ndarray, shape (*, out_features)

    Examples
    --------
    >>> linear(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0]]), np.array([0.5]))
    array([[3.5]])
    """
    _linear_setup("linear", input, weight, bias)
    out = input @ weight.T
    if bias is not None:
        out += bias
    return out


def linear_backward(grad_output, input, weight, bias=None):
    """Gradients of :func:`linear`: ``(grad_input, grad_weight, grad_bias)``.

    ``grad_input = g @ weight``, ``grad_weight = g.T @ x``, ``grad_bias = g.sum(0)``
    (leading axes flattened first).
    """
    fn = "linear_backward"
    _linear_setup(fn, input, weight, bias)
    check_grad_output(fn, grad_output, input.shape[:-1] + weight.shape[:1], input.dtype)
    g = grad_output.reshape(-1, weight.shape[0])                # (M, out_features)
    x = input.reshape(-1, weight.shape[1])                      # (M, in_features)
    grad_bias = None if bias is None else g.sum(axis=0)
    return grad_output @ weight, g.T @ x, grad_bias


def dropout(input, p=0.5, training=True, inplace=False, *, generator=None, return_mask=False):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training only).

    Parameters
    ----------
    input : ndarray
    p : float, default 0.5
        Probability of zeroing an element, in [0, 1].
    training : bool, default True
        When False, return ``input`` unchanged.
    inplace : bool, default False
        Write the result into ``input``.
    generator : numpy.random.Generator or None, keyword-only
        Source of randomness, for reproducible masks; None uses NumPy's global random
        state (seeded by ``np.random.seed`` and :func:`cnnbook.pytorch.utils.seed_everything`).
    return_mask : bool, default False, keyword-only
        Also return the boolean mask of kept elements, for :func:`dropout_backward`.

    Returns
    -------
    ndarray, or (ndarray, ndarray of bool)

    Examples
    --------
    >>> out = dropout(np.ones(6), 0.5, generator=np.random.default_rng(0))
    >>> sorted(set(out.tolist()))
    [0.0, 2.0]
    """
    check_array("dropout", "input", input)
    check_dropout_p("dropout", p)
    check_bool("dropout", "training", training)
    if not training or p == 0:
        return (input, np.ones(input.shape, dtype=bool)) if return_mask else input
    rng = np.random if generator is None else generator
    mask = rng.random(input.shape) >= p                         # keep with probability 1 - p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    out = np.multiply(input, mask * input.dtype.type(scale), out=input if inplace else None)
    return (out, mask) if return_mask else out


def dropout_backward(grad_output, mask, p=0.5, training=True):
    """Gradient of :func:`dropout`: ``grad_output * mask / (1 - p)`` (unchanged when not training)."""
    check_array("dropout_backward", "grad_output", grad_output)
    check_dropout_p("dropout_backward", p)
    check_bool("dropout_backward", "training", training)
    if not training or p == 0:
        return grad_output
    if not isinstance(mask, np.ndarray) or mask.shape != grad_output.shape:
        raise ValueError(f"dropout_backward: mask must be the boolean array returned with return_mask=True, "
                         f"shape {grad_output.shape}, got {getattr(mask, 'shape', type(mask).__name__)}")
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return grad_output * (mask * grad_output.dtype.type(scale))
