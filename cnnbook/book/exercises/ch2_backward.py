"""Checkers for chapter 2's exercises on backward passes and receptive fields (section 2.7 and 2.9)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnnbook.book.exercises._core import Feedback, _call, _compare, _Raised, _rng, _run, _with_hint

__all__ = ["check_conv2d_backward", "check_receptive_field", "check_layer_norm_backward"]

# --------------------------------------------------------------------------- backward passes & receptive fields
# (chapter 2, §2.7 and §2.9). Tolerances follow the dtype of the answer: a float32 answer is
# compared at float32 precision, so a correct float32 answer passes.

def _tolerances(got):
    """``(rtol, atol)`` for comparing an answer with a float64 reference, by the answer's dtype."""
    dtype = getattr(got, "dtype", None)
    name = str(dtype).replace("torch.", "") if dtype is not None else "float64"
    if name in ("float16", "bfloat16"):
        return 1e-2, 1e-3
    if name == "float32":
        return 1e-4, 1e-5
    return 1e-6, 1e-8


def _compare_dtype(got, expected, what):
    """``_compare`` with dtype-aware tolerances; ``atol`` scales with the size of ``expected``."""
    rtol, atol = _tolerances(got)
    scale = float(np.max(np.abs(expected))) if np.size(expected) else 1.0
    return _compare(got, expected, rtol=rtol, atol=atol * max(1.0, scale), what=what)


def _pair_answer(got, n, names):
    """Check that the answer is a tuple/list of ``n`` results; return it or raise feedback."""
    if got is None:
        raise _Raised("returned None: did you forget `return`?")
    if not isinstance(got, (tuple, list)) or len(got) != n:
        raise _Raised(f"returned {type(got).__name__}, expected a tuple ({', '.join(names)})")
    return got


def _torch_conv_grads(g, x, w, stride, padding):
    import torch
    import torch.nn.functional as F

    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    F.conv2d(tx, tw, stride=stride, padding=padding).backward(torch.from_numpy(g))
    return tx.grad.numpy(), tw.grad.numpy()


def check_conv2d_backward(fn: Callable) -> Feedback:
    """Check ``fn(grad_output, x, weight, stride=1, padding=0) -> (grad_x, grad_weight)``.

    Shapes: ``x (N, C_in, H, W)``, ``weight (C_out, C_in, KH, KW)``, ``grad_output
    (N, C_out, H_out, W_out)``; ``grad_x`` has the shape of ``x`` and ``grad_weight`` that of
    ``weight``. The reference is ``torch.autograd`` through ``torch.nn.functional.conv2d``.
    Float32 answers are compared at float32 precision.
    """
    rng = _rng(21)
    grid = [((1, 1, 4, 4), (1, 1, 2, 2), 1, 0), ((2, 3, 5, 5), (4, 3, 3, 3), 1, 0),
            ((1, 2, 6, 6), (3, 2, 3, 3), 1, 1), ((2, 2, 7, 7), (3, 2, 3, 3), 2, 0),
            ((1, 3, 8, 6), (2, 3, 3, 2), 2, 1)]
    cases = []
    for xs, ws, s, p in grid:
        x, w = rng.normal(size=xs), rng.normal(size=ws)
        h_out, w_out = (xs[2] + 2 * p - ws[2]) // s + 1, (xs[3] + 2 * p - ws[3]) // s + 1
        cases.append(dict(x=x, weight=w, stride=s, padding=p,
                          _g=rng.normal(size=(xs[0], ws[0], h_out, w_out))))

    def one(c):
        x, w, s, p, g = c["x"], c["weight"], c["stride"], c["padding"], c["_g"]
        got = _pair_answer(_call(fn, g.copy(), x.copy(), w.copy(), stride=s, padding=p), 2,
                           ["grad_x", "grad_weight"])
        gx, gw = _torch_conv_grads(g, x, w, s, p)
        flipped = _torch_conv_grads(g, x, np.ascontiguousarray(w[:, :, ::-1, ::-1]), s, p)[0]
        first = _torch_conv_grads(g[:1], x[:1], w, s, p)[1]
        hints_x = [(flipped, "the input gradient sends g times the kernel *as it is* back to each window "
                             "(written as a full convolution, the kernel is flipped once, not twice)")]
        hints_w = [(first, "sum the weight gradient over every image of the batch, not just the first")]
        problem = _with_hint(_compare_dtype(got[0], gx, "grad_x"), got[0], gx, hints_x)
        return problem or _with_hint(_compare_dtype(got[1], gw, "grad_weight"), got[1], gw, hints_w)

    return _run("check_conv2d_backward", "torch.autograd through torch.nn.functional.conv2d", cases, one)


def _receptive_field(layers, use_jump=True, jump_after=False, dilation=True):
    r, j = 1, 1
    for layer in layers:
        k, s, d = layer["kernel_size"], layer["stride"], layer["dilation"] if dilation else 1
        if jump_after:
            j *= s
        r += d * (k - 1) * (j if use_jump else 1)
        if not jump_after:
            j *= s
    return r


def check_receptive_field(fn: Callable) -> Feedback:
    """Check ``fn(layers) -> int``: the side of one output unit's receptive field.

    ``layers`` is a list of dicts with ``kernel_size``, ``stride`` and ``dilation`` (a pooling
    layer is one too). The reference is ``r = r + dilation*(kernel_size-1)*j; j = j*stride``
    from ``r = j = 1``, where ``j`` is the product of the strides of the layers before.
    """
    def layer(k, s=1, d=1):
        return dict(kernel_size=k, stride=s, dilation=d)

    stacks = [[layer(3)], [layer(3), layer(3)], [layer(5), layer(2, 2), layer(5), layer(2, 2)],
              [layer(3, 2), layer(3, 2), layer(3)], [layer(3, 1, 2), layer(3, 1, 4)],
              [layer(7, 2), layer(3, 2), layer(3, 1, 2), layer(3)], []]
    cases = [dict(layers=s) for s in stacks]

    def one(c):
        got = _call(fn, [dict(d) for d in c["layers"]])
        expected = _receptive_field(c["layers"])
        if got is None:
            return "returned None: did you forget `return`?"
        if isinstance(got, (tuple, list)):
            return f"returned a {type(got).__name__}, expected one int (the side of the receptive field)"
        if got == expected:
            return None
        problem = f"returned {got!r}, expected {expected}"
        hints = [(_receptive_field(c["layers"], use_jump=False),
                  "after a stride-s layer neighbouring units are s pixels apart: multiply each kernel's "
                  "growth by the product of the strides of the layers before it"),
                 (_receptive_field(c["layers"], jump_after=True),
                  "a layer's own stride does not widen its own window: use the product of the strides "
                  "*before* the layer"),
                 (_receptive_field(c["layers"], dilation=False),
                  "a dilated kernel spans dilation*(kernel_size-1)+1 pixels")]
        for value, hint in hints:
            if value != expected and got == value:
                return f"{problem}: {hint}"
        return problem

    return _run("check_receptive_field", "the receptive-field recurrence", cases, one)


def _layer_norm_grads(g, x, w, eps, drop=None, axis=1):
    """Layer-norm gradients (x: (N, D), statistics per row), or a common mistake by ``drop``."""
    mu, var = x.mean(axis=axis, keepdims=True), x.var(axis=axis, keepdims=True)
    inv_std = 1 / np.sqrt(var + eps)
    xhat = (x - mu) * inv_std
    gh = g * w
    mean_term = 0 if drop == "mean" else gh.mean(axis=axis, keepdims=True)
    var_term = 0 if drop == "var" else xhat * (gh * xhat).mean(axis=axis, keepdims=True)
    return inv_std * (gh - mean_term - var_term), (g * xhat).sum(axis=0), g.sum(axis=0)


def _torch_layer_norm_grads(g, x, w, eps):
    import torch
    import torch.nn.functional as F

    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.zeros(w.shape, dtype=torch.float64, requires_grad=True)
    F.layer_norm(tx, w.shape, tw, tb, eps=eps).backward(torch.from_numpy(g))
    return tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


def check_layer_norm_backward(fn: Callable) -> Feedback:
    """Check ``fn(grad_output, x, weight, eps=1e-5) -> (grad_x, grad_weight, grad_bias)``.

    Layer normalization of ``x (N, D)`` over its last axis, ``y = weight * xhat + bias`` with
    ``weight``, ``bias`` of shape ``(D,)``. The reference is ``torch.autograd`` through
    ``torch.nn.functional.layer_norm``. Float32 answers are compared at float32 precision.
    """
    rng = _rng(23)
    cases = []
    for n, d, eps in [(2, 3, 1e-5), (4, 6, 1e-5), (3, 10, 1e-3), (5, 4, 1e-5)]:
        cases.append(dict(x=rng.normal(size=(n, d)) * 2 + 1, weight=rng.normal(size=d), eps=eps,
                          _g=rng.normal(size=(n, d))))

    def one(c):
        x, w, eps, g = c["x"], c["weight"], c["eps"], c["_g"]
        got = _pair_answer(_call(fn, g.copy(), x.copy(), w.copy(), eps=eps), 3,
                           ["grad_x", "grad_weight", "grad_bias"])
        expected = _torch_layer_norm_grads(g, x, w, eps)
        hints = [(_layer_norm_grads(g, x, w, eps, drop="var")[0],
                  "the path through the variance is missing: also subtract xhat * mean(g * weight * xhat)"),
                 (_layer_norm_grads(g, x, w, eps, drop="mean")[0],
                  "the path through the mean is missing: also subtract mean(g * weight)"),
                 (_layer_norm_grads(g, x, w, eps, axis=0)[0] if len(x) > 1 else expected[0],
                  "layer norm's statistics are per sample (axis=1), not per feature over the batch (axis=0)"),
                 (_layer_norm_grads(g, x, np.ones_like(w), eps)[0],
                  "multiply the incoming gradient by weight before going back through the normalisation")]
        for i, what in enumerate(["grad_x", "grad_weight", "grad_bias"]):
            problem = _compare_dtype(got[i], expected[i], what)
            if problem:
                return _with_hint(problem, got[i], expected[i], hints if i == 0 else [])
        return None

    return _run("check_layer_norm_backward", "torch.autograd through torch.nn.functional.layer_norm", cases, one)
