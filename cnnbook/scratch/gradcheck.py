"""Numerical gradient checking: centred differences against an analytic backward.

For a function ``f`` and an upstream gradient ``g``, the scalar ``L(x) = sum(f(x) * g)``
has the gradient ``dL/dx``, which an analytic backward computes in one pass. The
centred difference ``(L(x + h e_i) - L(x - h e_i)) / (2h)`` estimates each entry
independently, with an error of order ``h**2``; comparing the two by their **relative
error** ``|a - n| / (|a| + |n|)`` (norms over all entries) finds almost every bug in a
backward. In float64 with ``h = 1e-6`` a correct backward gives relative errors around
1e-8 or smaller; a wrong one gives errors near 1. float32 is too coarse for this test,
so these functions insist on float64. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> from cnnbook.scratch import functional as F
>>> from cnnbook.scratch.gradcheck import gradcheck
>>> x, w = np.random.default_rng(0).standard_normal((2, 1, 5, 5)), np.ones((2, 1, 3, 3))
>>> errors = gradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w),
...                    lambda g, x, w: F.conv2d_backward(g, x, w, padding=1)[:2])
>>> all(e < 1e-8 for e in errors)
True
"""
from __future__ import annotations

import numpy as np

from . import checks
from .module import Module

__all__ = ["GradcheckError", "numerical_gradient", "relative_error", "gradcheck", "gradcheck_module"]


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with its centred-difference estimate."""


def _check_inputs(fn, inputs):
    if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple)):
        raise TypeError(f"{fn}: inputs must be a list or tuple of arrays, got {type(inputs).__name__}; "
                        "hint: wrap a single input as [x]")
    if not inputs:
        raise ValueError(f"{fn}: inputs must hold at least one array to check, got an empty {type(inputs).__name__}")
    for i, x in enumerate(inputs):
        checks.check_array(fn, f"inputs[{i}]", x)
        if x.dtype != np.float64:
            raise TypeError(f"{fn}: inputs[{i}] must be float64 for a meaningful check, got {x.dtype}; "
                            "hint: x.astype(np.float64) (and model.double() for a module)")
        checks.check_finite(fn, f"inputs[{i}]", x)


def _check_settings(fn, functions, eps, tol=0.0, atol=0.0):
    """The functions must be callable; the step ``eps`` > 0, the tolerances >= 0."""
    for name, f in functions.items():
        if not callable(f):
            raise TypeError(f"{fn}: {name} must be a function, got {type(f).__name__}")
    checks.check_number(fn, "eps", eps, low_open=True)
    checks.check_number(fn, "tol", tol)
    checks.check_number(fn, "atol", atol)


def _as_grad_output(fn, grad_output, out_shape):
    """``grad_output`` as a float64 array that weights f's outputs one to one (same shape, finite)."""
    try:
        array = np.asarray(grad_output, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: grad_output must be an array of numbers, got {type(grad_output).__name__}") from None
    if array.shape != tuple(out_shape):
        raise ValueError(f"{fn}: grad_output must have the output's shape {tuple(out_shape)}, "
                         f"got {array.shape}")
    checks.check_finite(fn, "grad_output", array)
    return array


def numerical_gradient(f, x, grad_output=None, eps=1e-6):
    """Centred-difference gradient of ``L(x) = sum(f(x) * grad_output)`` with respect to ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored afterwards, so ``f``
    may read it from a closure.

    Parameters
    ----------
    f : callable
        ``f(x)``, returning an array (or scalar) that depends on ``x``.
    x : ndarray, float64
    grad_output : ndarray or None
        Weights of f's outputs; None means ones (for a scalar ``f``, ``L = f``).
    eps : float, default 1e-6
        The step ``h``.

    Returns
    -------
    ndarray, shape of ``x``

    Examples
    --------
    >>> numerical_gradient(lambda x: (x ** 2).sum(), np.array([1.0, -3.0]))
    array([ 2., -6.])
    """
    _check_inputs("numerical_gradient", [x])
    _check_settings("numerical_gradient", {"f": f}, eps)
    if grad_output is not None:
        grad_output = _as_grad_output("numerical_gradient", grad_output, np.shape(f(x)))

    def loss():
        out = np.asarray(f(x))
        return float((out * (1.0 if grad_output is None else grad_output)).sum())

    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)      # views: writing perturbs x itself
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + eps
        plus = loss()
        flat_x[i] = original - eps
        minus = loss()
        flat_x[i] = original
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a, b):
    """``||a - b|| / (||a|| + ||b||)`` (0 when both are 0): scale-free distance of two gradients.

    >>> relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    0.0
    >>> relative_error(np.array([1.0]), np.array([-1.0]))
    1.0
    """
    try:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"relative_error: a and b must be arrays of numbers, got {type(a).__name__} "
                        f"and {type(b).__name__}") from None
    if a.shape != b.shape:
        raise ValueError(f"relative_error: a and b must have the same shape, got {a.shape} and {b.shape}")
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    with np.errstate(invalid="ignore"):                     # NaN or inf in a gradient: NaN, which fails
        return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def gradcheck(f, inputs, backward, grad_output=None, eps=1e-6, tol=1e-6, atol=1e-8, raise_exception=True):
    """Compare ``backward``'s gradients with centred differences, input by input.

    Parameters
    ----------
    f : callable
        ``f(*inputs)`` -> array.
    inputs : sequence of float64 ndarrays
    backward : callable
        ``backward(grad_output, *inputs)`` -> one gradient per input (None to skip one).
    grad_output : ndarray or None
        Upstream gradient; None draws a fixed random one of f's output shape.
    eps : float, default 1e-6
    tol : float, default 1e-6
        Largest accepted relative error.
    atol : float, default 1e-8
        A gradient also passes when no entry differs by more than this: where the true
        gradient is 0 (a bias followed by batch norm), the estimate is pure rounding
        noise and the relative error means nothing.
    raise_exception : bool, default True
        Raise :class:`GradcheckError` on failure (else just return the errors).

    Returns
    -------
    list of float
        The relative error of each input's gradient (NaN where ``backward`` gave None).
    """
    _check_inputs("gradcheck", inputs)
    _check_settings("gradcheck", {"f": f, "backward": backward}, eps, tol, atol)
    inputs = list(inputs)
    out = np.asarray(f(*inputs))
    if grad_output is None:
        grad_output = np.random.default_rng(0).standard_normal(out.shape)
    grad_output = _as_grad_output("gradcheck", grad_output, out.shape)
    analytic = backward(grad_output, *inputs)
    analytic = list(analytic) if isinstance(analytic, (tuple, list)) else [analytic]
    if len(analytic) != len(inputs):
        raise ValueError(f"gradcheck: backward returned {len(analytic)} gradients for {len(inputs)} inputs")
    errors, failed = [], []
    for i, (x, a) in enumerate(zip(inputs, analytic)):
        if a is None:
            errors.append(float("nan"))
            continue
        if np.shape(a) != x.shape:
            raise ValueError(f"gradcheck: gradient {i} has shape {np.shape(a)}, but inputs[{i}] has {x.shape}")
        numeric = numerical_gradient(lambda _: f(*inputs), x, grad_output, eps)
        errors.append(relative_error(a, numeric))
        if not _passes(errors[-1], a, numeric, tol, atol):
            failed.append(f"inputs[{i}]: relative error {errors[-1]:.3g}")
    _report(failed, tol, raise_exception)
    return errors


def _passes(error, analytic, numeric, tol, atol):
    """Whether a gradient passes: a relative error within ``tol``, or no entry off by more than
    ``atol``. Written so that NaN (a NaN or infinite analytic gradient) fails both tests."""
    return bool(error <= tol or np.abs(np.asarray(analytic) - numeric).max() <= atol)


def _report(failed, tol, raise_exception):
    if failed and raise_exception:
        raise GradcheckError(f"gradcheck: analytic and numerical gradients differ (tolerance {tol:g}): "
                             + "; ".join(failed))


def gradcheck_module(module, input, grad_output=None, eps=1e-6, tol=1e-6, atol=1e-8, raise_exception=True):
    """Check a :class:`cnnbook.scratch.nn.Module`'s backward: the input's and every parameter's gradient.

    The module must be float64 (``module.double()``) and deterministic (call ``eval()``
    or use ``p=0`` for dropout). ``eps``, ``tol``, ``atol`` as in :func:`gradcheck`. Its buffers (e.g. running statistics) and parameter
    gradients are restored afterwards.

    Returns
    -------
    dict
        ``{"input": error, "<parameter name>": error, ...}``.

    Examples
    --------
    >>> from cnnbook.scratch import nn
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    >>> errors = gradcheck_module(model, np.random.default_rng(0).standard_normal((5, 3)))
    >>> sorted(errors), max(errors.values()) < 1e-8
    (['0.bias', '0.weight', '2.bias', '2.weight', 'input'], True)
    """
    if not isinstance(module, Module):
        raise TypeError(f"gradcheck_module: module must be a cnnbook.scratch.nn.Module, got "
                        f"{type(module).__name__}; hint: a torch model has torch.autograd.gradcheck")
    _check_settings("gradcheck_module", {}, eps, tol, atol)
    params = dict(module.named_parameters())
    _check_inputs("gradcheck_module", [input] + [p.data for p in params.values()])
    buffers = {name: b.copy() for name, b in module.named_buffers() if b is not None}
    saved_grads = {name: p.grad for name, p in params.items()}
    try:                        # whatever happens, the module's state comes back
        errors, failed = _module_errors(module, params, input, grad_output, eps, tol, atol)
    finally:
        for name, p in params.items():
            p.grad = saved_grads[name]
        module.load_state_dict({**module.state_dict(), **buffers})
    _report(failed, tol, raise_exception)
    return errors


def _module_errors(module, params, input, grad_output, eps, tol, atol):
    """The relative error of the input's and every parameter's gradient, and the failures."""
    out = module(input)
    if grad_output is None:
        grad_output = np.random.default_rng(0).standard_normal(np.shape(out))
    grad_output = _as_grad_output("gradcheck_module", grad_output, np.shape(out))
    for p in params.values():
        p.grad = None
    analytic = {"input": module.backward(grad_output)}
    analytic.update({name: p.grad for name, p in params.items()})
    targets = {"input": input, **{name: p.data for name, p in params.items()}}
    errors, failed = {}, []
    for name, x in targets.items():
        if analytic[name] is None:
            errors[name] = float("nan")
            failed.append(f"{name}: no gradient (backward left it None)")
            continue
        numeric = numerical_gradient(lambda _: module(input), x, grad_output, eps)
        errors[name] = relative_error(analytic[name], numeric)
        if not _passes(errors[name], analytic[name], numeric, tol, atol):
            failed.append(f"{name}: relative error {errors[name]:.3g}")
    return errors, failed
