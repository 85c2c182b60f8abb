"""Activation functions from scratch, each with its backward: ReLU, leaky ReLU, sigmoid, tanh,
softmax and log-softmax.

Each backward multiplies the incoming gradient by the local derivative; sigmoid, tanh and
the softmaxes take their forward's *output*, from which their derivative is cheapest.
This module never imports torch.

Examples
--------
>>> import numpy as np
>>> x = np.array([-1.0, 0.0, 2.0])
>>> relu(x), relu_backward(np.ones(3), x)
(array([0., 0., 2.]), array([0., 0., 1.]))
"""
from __future__ import annotations

import numpy as np

from .checks import check_array, check_grad_output, is_int, is_number

__all__ = ["relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
           "tanh", "tanh_backward", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward"]


def relu(input):
    """``max(0, x)`` elementwise.

    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    check_array("relu", "input", input)
    return np.maximum(input, 0)


def relu_backward(grad_output, input):
    """Gradient of :func:`relu`: ``grad_output`` where ``input > 0``, else 0 (0 at 0, as torch)."""
    check_array("relu_backward", "input", input)
    check_grad_output("relu_backward", grad_output, input.shape, input.dtype)
    return np.where(input <= 0, 0, grad_output).astype(input.dtype, copy=False)


def _check_slope(fn, negative_slope):
    if not is_number(negative_slope):
        raise TypeError(f"{fn}: negative_slope must be a number, got {negative_slope!r}")


def leaky_relu(input, negative_slope=0.01):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise.

    >>> leaky_relu(np.array([-2.0, 3.0]), 0.1)
    array([-0.2,  3. ])
    """
    check_array("leaky_relu", "input", input)
    _check_slope("leaky_relu", negative_slope)
    return np.where(input > 0, input, input * negative_slope)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    """Gradient of :func:`leaky_relu` (slope ``negative_slope`` at 0, as torch)."""
    check_array("leaky_relu_backward", "input", input)
    _check_slope("leaky_relu_backward", negative_slope)
    check_grad_output("leaky_relu_backward", grad_output, input.shape, input.dtype)
    return np.where(input > 0, grad_output, grad_output * negative_slope)


def sigmoid(input):
    """``1 / (1 + exp(-x))``, computed without overflow.

    >>> sigmoid(np.array([0.0]))
    array([0.5])
    """
    check_array("sigmoid", "input", input)
    e = np.exp(-np.abs(input))                    # never overflows
    return np.where(input >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(grad_output, output):
    """Gradient of :func:`sigmoid` from its *output* ``y``: ``grad_output * y * (1 - y)``."""
    check_array("sigmoid_backward", "output", output)
    check_grad_output("sigmoid_backward", grad_output, output.shape, output.dtype)
    return grad_output * output * (1 - output)


def tanh(input):
    """Hyperbolic tangent elementwise.

    >>> tanh(np.array([0.0]))
    array([0.])
    """
    check_array("tanh", "input", input)
    return np.tanh(input)


def tanh_backward(grad_output, output):
    """Gradient of :func:`tanh` from its *output* ``y``: ``grad_output * (1 - y**2)``."""
    check_array("tanh_backward", "output", output)
    check_grad_output("tanh_backward", grad_output, output.shape, output.dtype)
    return grad_output * (1 - output * output)


def _check_dim(fn, input, dim):
    if not is_int(dim):
        raise TypeError(f"{fn}: dim must be an int (e.g. dim=1 for (N, C) logits), got {dim!r}")
    if not -input.ndim <= dim < max(input.ndim, 1):
        raise ValueError(f"{fn}: dim must be in [{-input.ndim}, {input.ndim - 1}] for input of shape "
                         f"{input.shape}, got {dim}")


def softmax(input, dim):
    """``exp(x) / sum(exp(x))`` along ``dim`` (shifted by the max, so it never overflows).

    >>> softmax(np.array([[0.0, np.log(3.0)]]), dim=1)
    array([[0.25, 0.75]])
    """
    check_array("softmax", "input", input)
    _check_dim("softmax", input, dim)
    e = np.exp(input - input.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(grad_output, output, dim):
    """Gradient of :func:`softmax` from its output ``y``: ``y * (g - sum(g * y, dim))``."""
    check_array("softmax_backward", "output", output)
    check_grad_output("softmax_backward", grad_output, output.shape, output.dtype)
    _check_dim("softmax_backward", output, dim)
    return output * (grad_output - (grad_output * output).sum(axis=dim, keepdims=True))


def log_softmax(input, dim):
    """``x - log(sum(exp(x)))`` along ``dim``, computed stably (log-sum-exp).

    >>> log_softmax(np.array([[0.0, 0.0]]), dim=1)
    array([[-0.69314718, -0.69314718]])
    """
    check_array("log_softmax", "input", input)
    _check_dim("log_softmax", input, dim)
    shifted = input - input.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def log_softmax_backward(grad_output, output, dim):
    """Gradient of :func:`log_softmax` from its output ``y``: ``g - exp(y) * sum(g, dim)``."""
    check_array("log_softmax_backward", "output", output)
    check_grad_output("log_softmax_backward", grad_output, output.shape, output.dtype)
    _check_dim("log_softmax_backward", output, dim)
    return grad_output - np.exp(output) * grad_output.sum(axis=dim, keepdims=True)
