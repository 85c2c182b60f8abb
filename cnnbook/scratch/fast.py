"""Fast paths for the layers of :mod:`cnnbook.scratch.nn` (what CS231n calls ``fast_layers``).

The definitions in :mod:`cnnbook.scratch.functional` read like the book; this module
computes the same numbers faster, and the tests prove that every path here equals the
loop versions there and PyTorch. Here live:

- ``conv2d_forward``: three paths for a convolution, chosen by :func:`conv2d_path` (or
  forced with ``path=``): im2col with the batch axis first (one product per image) or
  last (one product for the batch, with a blocked transpose), and for stride-1 layers a
  shifted-view convolution that needs no im2col copy at all;
- ``max_pool2d_forward``: a tiling path for windows that tile the image (``MaxPool2d(2)``)
  that keeps which tap won as int8 and hands the gradient back with a bitwise select;
- the threads that split a batch into blocks (:func:`set_num_threads`, :func:`get_num_threads`,
  from :mod:`cnnbook.scratch.threads`).

The convolution kernels live in :mod:`cnnbook.scratch.fast_conv`.

Each forward returns the output and a ``backward`` function that closes over what it
saved (the input, im2col's columns, the winning taps), so nothing is recomputed and each
call's gradient uses that call's values. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> x, w = np.ones((2, 16, 6, 6)), np.ones((4, 16, 3, 3))
>>> out, backward = conv2d_forward(x, w, padding=1)
>>> conv2d_path(w.shape, (1, 1), 1, out.shape[2:]), out.shape
('shifted', (2, 4, 6, 6))
>>> grad_input, grad_weight, grad_bias = backward(np.ones_like(out))
>>> grad_weight.shape, grad_bias is None
((4, 16, 3, 3), True)
"""
from __future__ import annotations

import numpy as np

from .checks import check_grad_output
from .conv import _conv_setup
from .fast_conv import (BATCH_FIRST_MIN_PIXELS, SHIFTED_MIN_CHANNELS, conv2d_backward_im2col,
                        conv2d_backward_shifted, conv2d_im2col, conv2d_shifted)
from .pool import _flat_indices, _pool_setup, max_pool2d, max_pool2d_backward
from .threads import get_num_threads, set_num_threads, split_batch

__all__ = ["conv2d_forward", "conv2d_path", "CONV2D_PATHS", "max_pool2d_forward", "max_pool2d_path",
           "set_num_threads", "get_num_threads"]


def _bias_grad(grad_output):
    """The bias gradient of a conv2d, ``grad_output.sum(axis=(0, 2, 3))``, summed in two steps:
    first over the batch (adding whole contiguous images), then over each channel's pixels.
    Contiguous adds beat one sum over scattered axes, and no BLAS call is made (whose idle
    worker threads would keep spinning on the cores for a while)."""
    return grad_output.sum(axis=0).reshape(grad_output.shape[1], -1).sum(axis=1)


CONV2D_PATHS = ("shifted", "im2col_batch_first", "im2col_batch_last")


def conv2d_path(weight_shape, stride, groups, out_hw):
    """The path :func:`conv2d_forward` takes by default, one of :data:`CONV2D_PATHS`.

    Stride-1 convolutions with ``groups=1`` and at least 16 input channels take the shifted
    views; the others im2col, batch first when the output has at least 16x16 pixels.
    """
    if tuple(stride) == (1, 1) and groups == 1 and weight_shape[1] >= SHIFTED_MIN_CHANNELS:
        return "shifted"
    return "im2col_batch_first" if out_hw[0] * out_hw[1] >= BATCH_FIRST_MIN_PIXELS else "im2col_batch_last"


def _conv2d_run(input, weight, bias, stride, pads, dilation, groups, out_hw, path):
    """The output on ``path`` and ``grads(grad_output, input_grad)`` -> (grad_input or None, grad_weight)."""
    if path == "shifted":
        out = conv2d_shifted(input, weight, bias, pads, dilation, out_hw)
        return out, lambda g, input_grad: conv2d_backward_shifted(g, input, weight, pads, dilation, input_grad)
    out, cols = conv2d_im2col(input, weight, bias, stride, pads, dilation, groups, out_hw,
                               batch_first=path == "im2col_batch_first")
    shape = input.shape                                     # the columns hold the input: not kept twice
    return out, lambda g, input_grad: conv2d_backward_im2col(g, cols, weight, shape, stride, pads,
                                                              dilation, groups, input_grad)


def conv2d_forward(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, path=None,
                   name="conv2d"):
    """:func:`cnnbook.scratch.functional.conv2d` on a fast path, and the function that gives its gradients.

    Parameters
    ----------
    input, weight, bias, stride, padding, dilation, groups
        As in :func:`cnnbook.scratch.functional.conv2d`.
    path : one of :data:`CONV2D_PATHS` or None, keyword-only
        None chooses with :func:`conv2d_path`; a name forces that path (the tests use it).
    name : str, keyword-only
        The function named in error messages (a layer passes its class name).

    Returns
    -------
    output : ndarray, shape (N, C_out, H_out, W_out)
    backward : callable
        ``backward(grad_output, input_grad=True)`` -> ``(grad_input, grad_weight, grad_bias)``
        from what this call saved; ``grad_input`` is None when not ``input_grad``,
        ``grad_bias`` when ``bias`` is None.
    """
    fn = name
    stride, pads, dilation, groups, out_hw = _conv_setup(fn, input, weight, bias, stride, padding, dilation, groups)
    default = conv2d_path(weight.shape, stride, groups, out_hw)
    if path is not None and path not in CONV2D_PATHS:
        raise ValueError(f"{fn}: path must be None or one of {CONV2D_PATHS}, got {path!r}")
    if path == "shifted" and default != "shifted" and (stride != (1, 1) or groups != 1):
        raise ValueError(f"{fn}: path='shifted' needs stride=1 and groups=1, got stride={stride}, groups={groups}")
    if input.shape[0] == 0:                                    # an empty batch: empty output, zero gradients
        out = np.zeros((0, weight.shape[0], *out_hw), dtype=input.dtype)
        grads = lambda g, input_grad: (np.zeros(input.shape, input.dtype) if input_grad else None,  # noqa: E731
                                       np.zeros_like(weight))
    else:
        out, grads = _conv2d_run(input, weight, bias, stride, pads, dilation, groups, out_hw, path or default)

    out_shape, dtype = out.shape, input.dtype     # not the output itself: keeping it alive costs memory

    def backward(grad_output, input_grad=True):
        check_grad_output(f"{name}.backward", grad_output, out_shape, dtype)
        grad_input, grad_weight = grads(grad_output, input_grad)
        return grad_input, grad_weight, None if bias is None else _bias_grad(grad_output)
    return out, backward


# The tiling path, for windows that tile the image (kernel_size == stride, no padding or
# dilation: MaxPool2d(2)). Tap (i, j) of all windows is one strided view; each is first
# copied to a contiguous array (NumPy copies short rows quickly, its ufuncs do not), then
# the taps are compared in order with torch's rule: a later tap wins if it is greater or
# NaN. Which tap won is kept as int8 for the backward; the batch is split across threads.
def _tiles(in_hw, kernel, stride, padding, dilation, out_hw):
    """Whether max pooling takes the tiling path."""
    return (stride == kernel and padding == (0, 0) and dilation == (1, 1) and kernel[0] * kernel[1] < 128
            and all(n * k <= size for n, k, size in zip(out_hw, kernel, in_hw)))


def _tile_taps(kernel, out_hw):
    """``(rows, columns)`` slices of tap (i, j) of every tiling window, taps in row-major order."""
    return [(slice(i, out_hw[0] * kernel[0], kernel[0]), slice(j, out_hw[1] * kernel[1], kernel[1]))
            for i in range(kernel[0]) for j in range(kernel[1])]


def _max_pool2d_tiles(input, kernel, out_hw):
    """Max of each tiling window and which tap (row-major number, int8) won it."""
    taps = _tile_taps(kernel, out_hw)
    out = np.empty(input.shape[:2] + out_hw, dtype=input.dtype)
    won = np.zeros(out.shape, dtype=np.int8)

    def work(start, stop):
        best, tap = out[start:stop], np.empty_like(out[start:stop])
        best[...] = input[start:stop, :, taps[0][0], taps[0][1]]
        for k, (rows, columns) in enumerate(taps[1:], 1):
            tap[...] = input[start:stop, :, rows, columns]            # contiguous copy of the view
            wins = np.greater(tap, best)
            wins |= np.isnan(tap)                                     # the last NaN wins, as in torch
            np.maximum(best, tap, out=best)
            np.maximum(won[start:stop], wins.view(np.int8) * np.int8(k), out=won[start:stop])  # k beats earlier taps
    split_batch(work, input.shape[0], limit_blas=False)
    return out, won


def _max_pool2d_tiles_backward(grad_output, won, kernel, input_shape):
    """Each window's gradient to the tap that won it; pixels no window covers get 0."""
    out_hw = grad_output.shape[2:]
    covered = all(n * k == size for n, k, size in zip(out_hw, kernel, input_shape[2:]))
    grad = (np.empty if covered else np.zeros)(input_shape, dtype=grad_output.dtype)

    def work(start, stop):
        g, w = grad_output[start:stop], won[start:stop]
        for k, (rows, columns) in enumerate(_tile_taps(kernel, out_hw)):
            grad[start:stop, :, rows, columns] = _where_or_zero(w == k, g)
    split_batch(work, input_shape[0], limit_blas=False)
    return grad


def _where_or_zero(mask, values):
    """``np.where(mask, values, 0)``, exact (NaN and inf included) but several times faster: an AND
    of the values' bits with all ones where ``mask`` holds and all zeros elsewhere."""
    bits = np.dtype(f"u{values.itemsize}")
    keep = mask.astype(bits)
    np.negative(keep, out=keep)                                 # 1 -> all ones (unsigned wrap-around)
    return np.bitwise_and(values.view(bits), keep, out=keep).view(values.dtype)




def max_pool2d_path(input_shape, kernel, stride, padding, dilation, out_hw):
    """The path :func:`max_pool2d_forward` takes by default: ``"tiles"`` when the windows tile
    the image (``kernel_size == stride``, no padding or dilation) and the batch is not empty,
    else ``"general"`` (:func:`cnnbook.scratch.functional.max_pool2d`)."""
    if input_shape[0] and _tiles(input_shape[2:], kernel, stride, padding, dilation, out_hw):
        return "tiles"
    return "general"


def max_pool2d_forward(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False, *, path=None, name="max_pool2d"):
    """:func:`cnnbook.scratch.functional.max_pool2d` on a fast path, and the function that gives its gradient.

    ``path`` (None, "tiles" or "general") forces a path as in :func:`conv2d_forward`;
    ``name`` is the function named in error messages.

    Returns
    -------
    output : ndarray, or (ndarray, int64 ndarray) with ``return_indices``
    backward : callable
        ``backward(grad_output)`` -> ``grad_input``, from what this call saved.
    """
    fn = name
    kernel, stride, padding, dilation, out_hw, _ = _pool_setup(fn, input, kernel_size, stride, padding, dilation,
                                                               ceil_mode)
    default = max_pool2d_path(input.shape, kernel, stride, padding, dilation, out_hw)
    if path not in (None, "tiles", "general") or (path == "tiles" and default != "tiles"):
        raise ValueError(f"{fn}: path must be None, 'general' or (for windows that tile a non-empty batch) "
                         f"'tiles', got {path!r} for kernel_size={kernel}, stride={stride}, padding={padding}")
    if (path or default) == "general":
        out, idx = max_pool2d(input, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
        backward = lambda g: max_pool2d_backward(g, input, kernel, stride, padding, dilation,  # noqa: E731
                                                 ceil_mode, indices=idx)
        return ((out, idx) if return_indices else out), backward
    out, won = _max_pool2d_tiles(input, kernel, out_hw)
    input_shape, dtype = input.shape, input.dtype          # the input itself is not needed

    def backward(grad_output):
        check_grad_output(f"{name}.backward", grad_output, won.shape, dtype)
        return _max_pool2d_tiles_backward(grad_output, won, kernel, input_shape)
    if return_indices:
        return (out, _flat_indices(won, kernel, kernel, (0, 0), (1, 1), input.shape[3])), backward
    return out, backward
