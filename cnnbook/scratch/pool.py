"""Pooling from scratch: max and average pooling, their loop definitions and their gradients.

``max_pool2d_loop`` and ``avg_pool2d_loop`` define the operations (each output is the max,
or the mean, of its window); ``max_pool2d`` and ``avg_pool2d`` compute the same numbers
with one strided view per kernel tap, and ``max_pool2d_backward`` / ``avg_pool2d_backward``
send each output's gradient back to its window. The edge rules (ceil mode, padding,
ties, NaN) are torch's. A faster max pool for the layers lives in :mod:`cnnbook.scratch.fast`.
This module never imports torch.

Examples
--------
>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> max_pool2d(x, 2)
array([[[[ 5.,  7.],
         [13., 15.]]]])
"""
from __future__ import annotations

import numpy as np

from .checks import as_pair, check_array, check_bool, check_grad_output, is_int, output_size, pad, tap

__all__ = ["max_pool2d", "max_pool2d_backward", "max_pool2d_loop", "avg_pool2d", "avg_pool2d_backward",
           "avg_pool2d_loop"]


def _pool_setup(fn, input, kernel_size, stride, padding, dilation, ceil_mode):
    """Check a pool's arguments; return ``(kernel, stride, padding, dilation, out_hw, pads)``.

    ``pads`` is ``(top, bottom, left, right)``, with extra bottom/right pixels so that
    the last window of ``ceil_mode`` fits.
    """
    check_array(fn, "input", input, (4,), "(N, C, H, W)")
    check_bool(fn, "ceil_mode", ceil_mode)
    kernel = as_pair(fn, "kernel_size", kernel_size, 1)
    no_stride = stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
    stride = kernel if no_stride else as_pair(fn, "stride", stride, 1)
    padding, dilation = as_pair(fn, "padding", padding, 0), as_pair(fn, "dilation", dilation, 1)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{fn}: padding must be at most half of kernel_size, got padding={padding} "
                         f"for kernel_size={kernel}; hint: a window must always cover some real pixels")
    pads = (padding[0], padding[0], padding[1], padding[1])
    out_hw = output_size(fn, input.shape[2:], kernel, stride, pads, dilation, bool(ceil_mode))
    for a, what in ((0, "row"), (1, "column")):          # dilated windows can skip every real pixel
        first = _first_valid(input.shape[2 + a], out_hw[a], stride[a], padding[a], dilation[a])
        taps_before = (first - (np.arange(out_hw[a]) * stride[a] - padding[a])) // dilation[a]
        empty = (taps_before >= kernel[a]) | (first >= input.shape[2 + a])
        if empty.any():
            raise ValueError(f"{fn}: with kernel_size={kernel}, dilation={dilation} and padding={padding}, the "
                             f"window of output {what} {int(np.argmax(empty))} covers only padding, no input "
                             "pixel; hint: use less padding or dilation")
    extra = [max(0, (n - 1) * s + d * (k - 1) + 1 - (size + 2 * p))
             for n, s, d, k, size, p in zip(out_hw, stride, dilation, kernel, input.shape[2:], padding)]
    pads = (padding[0], padding[0] + extra[0], padding[1], padding[1] + extra[1])
    return kernel, stride, padding, dilation, out_hw, pads


def max_pool2d_loop(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling as explicit loops: the definition of :func:`max_pool2d` (no indices).

    Each output is the largest value of its window; padding counts as -inf.

    Shape
    -----
    (N, C, H, W) -> (N, C, H_out, W_out),
    ``H_out = floor((H + 2*padding[0] - dilation[0]*(KH-1) - 1) / stride[0]) + 1``.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> max_pool2d_loop(x, 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    (kh, kw), (sh, sw), _, (dh, dw), (ho, wo), pads = _pool_setup(
        "max_pool2d_loop", input, kernel_size, stride, padding, dilation, ceil_mode)
    xp = pad(input, pads, value=-np.inf)     # padding never wins the max
    out = np.empty(input.shape[:2] + (ho, wo), dtype=input.dtype)
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


def _first_valid(size, n_out, stride, padding, dilation):
    """For each output position, the input index of its first kernel tap inside the input."""
    start = np.arange(n_out) * stride - padding
    skip = np.maximum(0, -(start // dilation))                 # taps that fall in the top padding
    return start + skip * dilation


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling over NCHW input.

    Parameters
    ----------
    input : ndarray, float32 or float64
        Shape (N, C, H, W).
    kernel_size : int or (int, int)
        Window size.
    stride : int, (int, int) or None, default None
        Step between windows; None means ``kernel_size``.
    padding : int or (int, int), default 0
        Implicit -inf padding on each side, at most half of ``kernel_size``.
    dilation : int or (int, int), default 1
        Spacing between window taps.
    ceil_mode : bool, default False
        Use ``ceil`` instead of ``floor`` for the output size (a last, partial window).
    return_indices : bool, default False
        Also return, for each output, the flat index ``h*W + w`` of its maximum in its
        input plane, as torch does (int64). The first maximum wins ties; NaN propagates.

    Returns
    -------
    ndarray, or (ndarray, ndarray of int64)
        Shape (N, C, H_out, W_out).

    Shape
    -----
    ``H_out = floor((H + 2*padding[0] - dilation[0]*(KH-1) - 1) / stride[0]) + 1``
    (``ceil`` in ``ceil_mode``, dropping a last window that would start in the bottom padding).

    Raises
    ------
    TypeError
        Non-array or integer input, non-integer hyper-parameters.
    ValueError
        Input not 4-D, kernel larger than the padded input, stride or dilation below 1,
        padding negative or above half the kernel, a dilated window that covers only padding.

    Examples
    --------
    >>> x = np.array([[[[1., 2.], [4., 3.]]]], dtype=np.float32)
    >>> out, idx = max_pool2d(x, 2, return_indices=True)
    >>> out.ravel(), idx.ravel()
    (array([4.], dtype=float32), array([2]))
    """
    kernel, stride, padding, dilation, out_hw, pads = _pool_setup(
        "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    out, idx = _max_pool2d_forward(input, kernel, stride, padding, dilation, out_hw, pads)
    return (out, idx) if return_indices else out


def _max_pool2d_forward(input, kernel, stride, padding, dilation, out_hw, pads):
    """Max of each window and its flat input index ``h*W + w``, with torch's rules: the first
    maximum wins a tie, the last NaN wins over everything, an all -inf window points at its
    first real pixel."""
    xp = pad(input, pads, value=-np.inf)                       # padding never wins the max
    taps = [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]
    views = [xp[tap(i, j, stride, dilation, out_hw)] for i, j in taps]   # (N, C, H_out, W_out) each
    out = views[0].copy()
    for view in views[1:]:
        np.maximum(out, view, out=out)                          # NaN spreads, as in torch
    local = np.zeros(out.shape, dtype=np.int8 if len(taps) < 128 else np.int64)  # which tap won
    for k in reversed(range(len(taps))):                        # backwards, so the first maximum wins
        np.putmask(local, views[k] == out, k)
    if np.isnan(out).any():
        for k in range(len(taps)):                              # forwards, so the last NaN wins
            np.putmask(local, np.isnan(views[k]), k)
    w_in = input.shape[3]
    idx = _flat_indices(local, kernel, stride, padding, dilation, w_in)
    if any(pads) and (out == -np.inf).any():                    # nothing beats -inf: torch keeps
        first = [_first_valid(input.shape[2 + a], out_hw[a], stride[a], padding[a], dilation[a]) for a in (0, 1)]
        np.copyto(idx, first[0][:, None] * w_in + first[1], where=out == -np.inf)   # the first real pixel
    return out, idx


def _flat_indices(won, kernel, stride, padding, dilation, w_in):
    """Flat input index ``h*W + w`` of the tap ``won`` (row-major number) of each window."""
    out_hw = won.shape[2:]
    starts = [np.arange(n) * s - p for n, s, p in zip(out_hw, stride, padding)]  # window corners
    offsets = np.array([i * dilation[0] * w_in + j * dilation[1] for i in range(kernel[0]) for j in range(kernel[1])])
    return np.take(offsets, won) + (starts[0][:, None] * w_in + starts[1])


def max_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices=None):
    """Gradient of :func:`max_pool2d` with respect to its input.

    Each output's gradient goes to the input pixel that was its maximum (summed when
    overlapping windows share a maximum). Pass the ``indices`` of a forward call with
    ``return_indices=True`` to skip recomputing them.

    Returns
    -------
    ndarray
        ``grad_input``, shape (N, C, H, W).
    """
    fn = "max_pool2d_backward"
    kernel, stride, padding, dilation, out_hw, pads = _pool_setup(
        fn, input, kernel_size, stride, padding, dilation, ceil_mode)
    check_grad_output(fn, grad_output, input.shape[:2] + out_hw, input.dtype)
    if indices is None:
        indices = _max_pool2d_forward(input, kernel, stride, padding, dilation, out_hw, pads)[1]
    elif not isinstance(indices, np.ndarray) or indices.shape != grad_output.shape:
        raise ValueError(f"{fn}: indices must be the int64 array returned with return_indices=True, "
                         f"shape {grad_output.shape}, got {getattr(indices, 'shape', type(indices).__name__)}")
    return _max_pool2d_scatter(grad_output, indices, input.shape)


def _max_pool2d_scatter(grad_output, indices, input_shape):
    """Add each gradient to the input pixel ``indices`` points to (per N, C plane)."""
    n, c, h, w = input_shape
    plane = np.arange(n * c).reshape(n, c, 1, 1) * (h * w)     # offset of each (n, c) plane
    grad = np.bincount((indices + plane).ravel(), weights=grad_output.ravel(), minlength=n * c * h * w)
    return grad.reshape(input_shape).astype(grad_output.dtype, copy=False)


def _avg_divisor(in_hw, kernel, stride, padding, out_hw, count_include_pad, divisor_override):
    """Divisor of each output, shape (H_out, W_out), with torch's rules for edge windows."""
    if divisor_override is not None:
        return divisor_override
    sizes = []
    for size, k, s, p, n in zip(in_hw, kernel, stride, padding, out_hw):
        start = np.arange(n) * s - p
        end = np.minimum(start + k, size + p)                  # a ceil-mode window stops at the padding
        real = np.minimum(end, size) - np.maximum(start, 0)    # pixels inside the input
        sizes.append(end - start if count_include_pad else real)
    return np.outer(sizes[0], sizes[1])


def _avg_setup(fn, input, kernel_size, stride, padding, ceil_mode, divisor_override):
    if divisor_override is not None and (not is_int(divisor_override) or divisor_override == 0):
        raise ValueError(f"{fn}: divisor_override must be a non-zero int or None, got {divisor_override!r}")
    return _pool_setup(fn, input, kernel_size, stride, padding, 1, ceil_mode)


def avg_pool2d_loop(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                    count_include_pad=True, divisor_override=None):
    """Average pooling as explicit loops: the definition of :func:`avg_pool2d`.

    Each output is the sum of its window's real pixels divided by the window size (padding
    included, or not with ``count_include_pad=False``), with torch's rules at the edges.

    Shape
    -----
    (N, C, H, W) -> (N, C, H_out, W_out), ``H_out = floor((H + 2*padding[0] - KH) / stride[0]) + 1``.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> avg_pool2d_loop(x, 2)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """
    (kh, kw), (sh, sw), (ph, pw), _, (ho, wo), _ = _avg_setup(
        "avg_pool2d_loop", input, kernel_size, stride, padding, ceil_mode, divisor_override)
    h, w = input.shape[2:]
    out = np.empty(input.shape[:2] + (ho, wo), dtype=input.dtype)
    for i in range(ho):
        for j in range(wo):
            h0, w0 = i * sh - ph, j * sw - pw                   # window corner, padding included
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            window = input[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)]   # real pixels only
            if divisor_override is not None:
                divisor = divisor_override
            elif count_include_pad:
                divisor = (h1 - h0) * (w1 - w0)
            else:
                divisor = window.shape[2] * window.shape[3]
            out[:, :, i, j] = window.sum(axis=(2, 3)) / divisor
    return out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling over NCHW input.

    Parameters
    ----------
    input, kernel_size, stride
        As in :func:`max_pool2d`: an (N, C, H, W) float array, the window size, and the
        step between windows (None means ``kernel_size``).
    padding : int or (int, int), default 0
        Implicit zero padding on each side, at most half of ``kernel_size``.
    ceil_mode : bool, default False
        Use ``ceil`` instead of ``floor`` for the output size.
    count_include_pad : bool, default True
        Divide by the window size including padded zeros (True) or by the number of
        real pixels in the window (False). A ceil-mode window is cut at the padding.
    divisor_override : int or None, default None
        Divide every window sum by this number instead.

    Returns
    -------
    ndarray
        Shape (N, C, H_out, W_out).

    Shape
    -----
    ``H_out = floor((H + 2*padding[0] - KH) / stride[0]) + 1`` (``ceil`` in ``ceil_mode``).

    Raises
    ------
    TypeError, ValueError
        As :func:`max_pool2d`; also a ``divisor_override`` of 0.

    Examples
    --------
    >>> avg_pool2d(np.ones((1, 1, 4, 4)), 2, padding=1, count_include_pad=False)[0, 0]
    array([[1., 1., 1.],
           [1., 1., 1.],
           [1., 1., 1.]])
    """
    kernel, stride, padding, _, out_hw, pads = _avg_setup(
        "avg_pool2d", input, kernel_size, stride, padding, ceil_mode, divisor_override)
    xp = pad(input, pads)
    out = np.zeros(input.shape[:2] + out_hw, dtype=input.dtype)
    for i in range(kernel[0]):                                   # add the window, tap by tap
        for j in range(kernel[1]):
            out += xp[tap(i, j, stride, (1, 1), out_hw)]
    divisor = _avg_divisor(input.shape[2:], kernel, stride, padding, out_hw, count_include_pad, divisor_override)
    return out / np.asarray(divisor, dtype=input.dtype)


def avg_pool2d_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None):
    """Gradient of :func:`avg_pool2d` with respect to its input: each output's gradient,
    divided by its divisor, is spread over its window.

    Returns
    -------
    ndarray
        ``grad_input``, shape (N, C, H, W).
    """
    fn = "avg_pool2d_backward"
    kernel, stride, padding, _, out_hw, pads = _avg_setup(
        fn, input, kernel_size, stride, padding, ceil_mode, divisor_override)
    check_grad_output(fn, grad_output, input.shape[:2] + out_hw, input.dtype)
    divisor = _avg_divisor(input.shape[2:], kernel, stride, padding, out_hw, count_include_pad, divisor_override)
    share = grad_output / np.asarray(divisor, dtype=input.dtype)
    n, c, h, w = input.shape
    top, bottom, left, right = pads
    grad_xp = np.zeros((n, c, h + top + bottom, w + left + right), dtype=input.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            grad_xp[tap(i, j, stride, (1, 1), out_hw)] += share
    return np.ascontiguousarray(grad_xp[:, :, top:top + h, left:left + w])
