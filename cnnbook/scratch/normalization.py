"""Batch normalisation from scratch: the forward with torch's running statistics, and its backward.

``batch_norm`` and ``batch_norm_backward`` have torch's signature; ``batch_norm_forward``
returns the output and a ``backward`` function that reuses the normalised input and the
inverse standard deviation it computed, which is what the layer ``nn.BatchNorm2d`` calls.
This module never imports torch.

Examples
--------
>>> import numpy as np
>>> x = np.array([[1.0], [3.0]])
>>> out, backward = batch_norm_forward(x, None, None, training=True, eps=0.0)
>>> out.ravel(), backward(np.array([[1.0], [0.0]]))[0].ravel()
(array([-1.,  1.]), array([0., 0.]))
"""
from __future__ import annotations

import numpy as np

from . import checks
from .checks import check_array, check_finite, check_grad_output, check_same_dtype

__all__ = ["batch_norm", "batch_norm_backward", "batch_norm_forward"]


def _bn_setup(fn, input, running_mean, running_var, weight, bias, training):
    """Check batch_norm's arguments; return ``(reduce axes, broadcast shape)``."""
    check_array(fn, "input", input, range(2, 33), "(N, C, *)")
    c = input.shape[1]
    for name, a in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if a is not None:
            check_array(fn, name, a, (1,), "(C,)")
            if a.shape != (c,):
                raise ValueError(f"{fn}: {name} must have shape ({c},) for input {input.shape} "
                                 f"with {c} channels, got {a.shape}")
    check_same_dtype(fn, input=input, running_mean=running_mean, running_var=running_var,
                      weight=weight, bias=bias)
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{fn}: evaluation (training=False) needs running_mean and running_var; "
                         "hint: pass training=True to use the batch statistics")
    if training and input.size // c <= 1:
        raise ValueError(f"{fn}: training needs more than 1 value per channel to compute a variance, "
                         f"got input {input.shape}; hint: use a batch of at least 2")
    return (0,) + tuple(range(2, input.ndim)), (1, c) + (1,) * (input.ndim - 2)


def _bn_normalise(input, running_mean, running_var, training, eps, axes, shape):
    """``(xhat, inv_std, batch variance)``: the input normalised by the batch's statistics
    (biased variance) in training, by the running ones otherwise."""
    mean = input.mean(axis=axes) if training else running_mean
    xhat = input - mean.reshape(shape)                          # centred, normalised in place below
    var = np.mean(xhat * xhat, axis=axes) if training else running_var
    inv_std = 1 / np.sqrt(var + eps)
    xhat *= inv_std.reshape(shape)
    return xhat, inv_std, (mean, var)


def _bn_backward(grad_output, xhat, inv_std, weight, training, axes, shape):
    """``(grad_input, grad_weight, grad_beta)`` from the saved ``xhat`` and ``inv_std``."""
    g_sum, g_xhat_sum = grad_output.sum(axis=axes), (grad_output * xhat).sum(axis=axes)
    scale = inv_std if weight is None else weight * inv_std     # d out / d xhat * d xhat / d x, per channel
    if training:
        m = xhat.size // xhat.shape[1]                          # values per channel
        grad_input = grad_output - (g_sum / m).reshape(shape)
        grad_input -= xhat * (g_xhat_sum / m).reshape(shape)
        grad_input *= scale.reshape(shape)
    else:
        grad_input = grad_output * scale.reshape(shape)
    return grad_input, g_xhat_sum, g_sum


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation: ``(x - mean) / sqrt(var + eps) * weight + bias`` per channel.

    In training, mean and (biased) variance come from the batch, over every axis but 1,
    and the running statistics are updated **in place**, as torch does:
    ``running = (1 - momentum) * running + momentum * batch_stat``, with the *unbiased*
    batch variance for ``running_var``. In evaluation the running statistics are used.

    Parameters
    ----------
    input : ndarray, shape (N, C) or (N, C, L) or (N, C, H, W)
    running_mean, running_var : ndarray of shape (C,) or None
        Updated in place when ``training``; needed when not.
    weight, bias : ndarray of shape (C,) or None
        Scale (gamma) and shift (beta); None means 1 and 0.
    training : bool, default False
    momentum : float, default 0.1
        Weight of the new batch in the running averages.
    eps : float, default 1e-5

    Returns
    -------
    ndarray, shape of ``input``

    Examples
    --------
    >>> x = np.array([[1.0], [3.0]])
    >>> rm, rv = np.zeros(1), np.ones(1)
    >>> batch_norm(x, rm, rv, training=True, eps=0.0).ravel(), rm, rv
    (array([-1.,  1.]), array([0.2]), array([1.1]))
    """
    return batch_norm_forward(input, running_mean, running_var, weight, bias, training, momentum, eps)[0]


def batch_norm_forward(input, running_mean, running_var, weight=None, bias=None, training=False,
                       momentum=0.1, eps=1e-5, *, name="batch_norm"):
    """:func:`batch_norm`, and the function that gives its gradients from what it computed.

    ``name`` is the function named in error messages (a layer passes its class name).

    Returns
    -------
    output : ndarray, shape of ``input``
    backward : callable
        ``backward(grad_output)`` -> ``(grad_input, grad_weight, grad_bias)`` from this
        call's normalised input and inverse standard deviation (None where ``weight`` or
        ``bias`` is None).
    """
    checks.check_bool(name, "training", training)
    checks.check_number(name, "momentum", momentum, high=1.0)
    checks.check_number(name, "eps", eps)
    axes, shape = _bn_setup(name, input, running_mean, running_var, weight, bias, training)
    if training:
        check_finite(name, "input", input)
    out, xhat, inv_std = _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps,
                                     axes, shape)

    def backward(grad_output):
        check_grad_output(f"{name}.backward", grad_output, input.shape, input.dtype)
        grad_input, grad_weight, grad_bias = _bn_backward(grad_output, xhat, inv_std, weight, training, axes, shape)
        return grad_input, None if weight is None else grad_weight, None if bias is None else grad_bias
    return out, backward


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, axes, shape):
    """batch_norm on checked arguments; returns ``(output, xhat, inv_std)``."""
    xhat, inv_std, (mean, var) = _bn_normalise(input, running_mean, running_var, training, eps, axes, shape)
    if training:
        n = input.size // input.shape[1]
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var * (n / (n - 1))     # unbiased, as torch
    out = xhat if weight is None else xhat * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out, xhat, inv_std


def batch_norm_backward(grad_output, input, running_mean, running_var, weight=None, bias=None,
                        training=False, eps=1e-5):
    """Gradients of :func:`batch_norm`: ``(grad_input, grad_weight, grad_bias)``.

    In training the batch statistics depend on every input, which gives, per channel with
    M values, ``grad_input = weight*inv_std * (g - sum(g)/M - xhat*sum(g*xhat)/M)`` where
    ``g = grad_output`` and ``xhat`` is the normalised input; in evaluation
    ``grad_input = grad_output * weight * inv_std``. ``grad_weight``/``grad_bias``
    are None when ``weight``/``bias`` are.
    """
    fn = "batch_norm_backward"
    axes, shape = _bn_setup(fn, input, running_mean, running_var, weight, bias, training)
    check_grad_output(fn, grad_output, input.shape, input.dtype)
    xhat, inv_std, _ = _bn_normalise(input, running_mean, running_var, training, eps, axes, shape)
    grad_input, grad_weight, grad_bias = _bn_backward(grad_output, xhat, inv_std, weight, training, axes, shape)
    return grad_input, None if weight is None else grad_weight, None if bias is None else grad_bias
