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
- the threads that split a batch into blocks (:func:`set_num_threads`, :func:`get_num_threads`).

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

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .checks import as_int, check_grad_output, pad, tap
from .conv import _conv_setup, check_im2col_memory, col2im
from .pool import _flat_indices, _pool_setup, max_pool2d, max_pool2d_backward

__all__ = ["conv2d_forward", "conv2d_path", "CONV2D_PATHS", "max_pool2d_forward", "max_pool2d_path",
           "set_num_threads", "get_num_threads"]


# Threads: the shifted conv2d path and the tiling max_pool2d path split the batch into one
# block of images per thread; NumPy releases the GIL inside matrix products, copies and
# ufuncs, so the blocks run side by side. For conv2d BLAS is limited to one thread meanwhile
# (threadpoolctl), so the threads do not oversubscribe the cores; without threadpoolctl
# conv2d stays on one thread.
_num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_pool = {}                      # worker threads and the BLAS thread controller, made on first use


def set_num_threads(num_threads):
    """Set how many threads the vectorized stride-1 conv2d and the tiling max_pool2d
    (``kernel_size == stride``, no padding) use, like ``torch.set_num_threads``.

    The default is the number of CPU cores this process may use. Has no effect on conv2d
    without the ``threadpoolctl`` package (needed to keep BLAS on one thread per block).
    """
    global _num_threads
    _num_threads = as_int("set_num_threads", "num_threads", num_threads, 1)


def get_num_threads():
    """How many threads the vectorized stride-1 conv2d and tiling max_pool2d use (see :func:`set_num_threads`)."""
    return _num_threads


def _split_images(work, n, limit_blas=True):
    """``[work(start, stop), ...]`` over ``n`` images in contiguous blocks, one block per thread.

    With ``limit_blas`` (work that calls BLAS) BLAS runs on one thread meanwhile, and without
    threadpoolctl to do that the work stays on one thread.
    """
    blocks = max(1, min(_num_threads, n))
    if blocks > 1 and limit_blas and _pool.get("blas") is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:                                     # BLAS threads can't be limited: stay serial
            _pool["blas"] = False
        else:
            _pool["blas"] = ThreadpoolController()
    if blocks == 1 or (limit_blas and not _pool["blas"]):
        return [work(0, n)]
    if _pool.get("workers", 0) < blocks - 1 or _pool["pid"] != os.getpid():  # a forked child has no workers
        if _pool.get("threads") and _pool["pid"] == os.getpid():
            _pool["threads"].shutdown(wait=False)
        _pool.update(threads=ThreadPoolExecutor(blocks - 1), workers=blocks - 1, pid=os.getpid())
    bounds = [n * k // blocks for k in range(blocks + 1)]
    with _pool["blas"].limit(limits=1, user_api="blas") if limit_blas else contextlib.nullcontext():
        futures = [_pool["threads"].submit(work, a, b) for a, b in zip(bounds[1:-1], bounds[2:])]
        return [work(0, bounds[1])] + [f.result() for f in futures]


def _transpose(a, block=256):
    """``a.T`` of a 2-D array as a new contiguous array, copied block by block.

    A plain copy of a transposed view reads memory with a large stride and is several
    times slower; blocks of ``block`` rows (or columns) stay in the cache.
    """
    rows, cols = a.shape
    out = np.empty((cols, rows), dtype=a.dtype)
    if rows >= cols:
        for r in range(0, rows, block):
            out[:, r:r + block] = a[r:r + block].T
    else:
        for c in range(0, cols, block):
            out[c:c + block] = a[:, c:c + block].T
    return out


def _batch_last(x, pads):
    """Copy of NCHW ``x``, zero-padded by ``pads``, with the batch axis last: (C, Hp, Wp, N).

    With N last, the window copies below move runs of W_out*N (at least N) contiguous
    numbers instead of single pixels: in NumPy, memory traffic is what a convolution costs.
    """
    top, bottom, left, right = pads
    n, c, h, w = x.shape
    moved = _transpose(x.reshape(n, -1)).reshape(c, h, w, n)
    if not any(pads):
        return moved
    xp = np.zeros((c, h + top + bottom, w + left + right, n), dtype=x.dtype)
    xp[:, top:top + h, left:left + w] = moved
    return xp


def _im2col_batch_last(input, kernel, stride, dilation, pads, out_hw):
    """Copy every receptive field into a column: (C*KH*KW, H_out*W_out*N), batch axis last."""
    xp = _batch_last(input, pads)                              # (C, Hp, Wp, N)
    c, n = xp.shape[0], xp.shape[3]
    cols = np.empty((c, *kernel, *out_hw, n), dtype=input.dtype)  # (C, KH, KW, H_out, W_out, N)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            _, rows, columns = tap(i, j, stride, dilation, out_hw)
            cols[:, i, j] = xp[:, rows, columns]
    return cols.reshape(c * kernel[0] * kernel[1], -1)


def _conv2d_batch_last(input, weight, bias, cols, groups, out_hw):
    """conv2d on batch-last columns (G, C_in/G*KH*KW, H_out*W_out*N), one matrix product per group."""
    c_out = weight.shape[0]
    w = weight.reshape(groups, c_out // groups, -1)             # (G, C_out/G, C_in/G*KH*KW)
    out = np.matmul(w, cols).reshape(c_out, -1)                 # one BLAS product per group
    if bias is not None:
        out += bias[:, None]
    out = _transpose(out.reshape(-1, input.shape[0]))           # (C_out*H_out*W_out, N) -> (N, ...)
    return out.reshape(input.shape[0], c_out, *out_hw)


def _conv2d_backward_batch_last(grad_output, cols, weight, input_shape, stride, pads, dilation, groups,
                                input_grad=True):
    """Gradients of conv2d from batch-last columns; returns ``(grad_input or None, grad_weight)``."""
    n, c_in, h, w = input_shape
    c_out, _, kh, kw = weight.shape
    out_hw = grad_output.shape[2:]
    g = _transpose(grad_output.reshape(n, -1)).reshape(groups, c_out // groups, -1)  # (G, C_out/G, H_out*W_out*N)
    grad_w = np.matmul(g, cols.transpose(0, 2, 1)).reshape(weight.shape)
    if not input_grad:
        return None, grad_w
    w_g = weight.reshape(groups, c_out // groups, -1)
    grad_cols = np.matmul(w_g.transpose(0, 2, 1), g)            # (G, C_in/G*KH*KW, H_out*W_out*N)
    grad_cols = grad_cols.reshape(c_in, kh, kw, *out_hw, n)
    grad_input = np.ascontiguousarray(col2im(grad_cols, 1, (h, w), stride, pads, dilation)).reshape(-1, n)
    return _transpose(grad_input).reshape(input_shape), grad_w                 # back to (N, C, H, W)


def _im2col_batch_first(input, kernel, stride, dilation, pads, out_hw, groups):
    """Copy every receptive field into a column, image by image: (N, G, C/G*KH*KW, H_out*W_out).

    The batch axis stays first, so each image's product with the filters is already the
    image's (C_out, H_out*W_out) output: nothing is transposed, before or after. One strided
    view of the padded images holds every tap; one copy per block of images (one block per
    thread) turns it into columns.
    """
    xp = pad(input, pads)
    (n, c), s, (kh, kw) = input.shape[:2], xp.strides, kernel
    taps = as_strided(xp, (n, c, kh, kw, *out_hw),
                      (s[0], s[1], s[2] * dilation[0], s[3] * dilation[1], s[2] * stride[0], s[3] * stride[1]),
                      writeable=False)
    cols = np.empty((n, groups, c // groups * kh * kw, out_hw[0] * out_hw[1]), dtype=input.dtype)

    def work(start, stop):
        cols[start:stop].reshape(stop - start, *taps.shape[1:])[...] = taps[start:stop]

    _split_images(work, n, limit_blas=False)
    return cols


def _conv2d_batch_first(input, weight, bias, cols, groups, out_hw):
    """conv2d on batch-first columns (N, G, C_in/G*KH*KW, H_out*W_out), one product per image and group."""
    n, c_out = input.shape[0], weight.shape[0]
    w = weight.reshape(groups, c_out // groups, -1)             # (G, C_out/G, C_in/G*KH*KW)
    out = np.empty((n, c_out, *out_hw), dtype=input.dtype)

    def work(start, stop):
        block = out[start:stop].reshape(stop - start, groups, c_out // groups, -1)
        np.matmul(w, cols[start:stop], out=block)
        if bias is not None:
            block += bias.reshape(groups, -1, 1)

    _split_images(work, n)
    return out


def _conv2d_backward_batch_first(grad_output, cols, weight, input_shape, stride, pads, dilation, groups,
                                 input_grad=True):
    """Gradients of conv2d from batch-first columns; returns ``(grad_input or None, grad_weight)``."""
    n, c_in, h, w = input_shape
    c_out, _, kh, kw = weight.shape
    out_hw = grad_output.shape[2:]
    w_t = weight.reshape(groups, c_out // groups, -1).transpose(0, 2, 1)   # (G, C_in/G*KH*KW, C_out/G)
    grad_input = np.empty(input_shape, dtype=grad_output.dtype) if input_grad else None

    def work(start, stop):
        g = grad_output[start:stop].reshape(stop - start, groups, c_out // groups, -1)
        grad_w = np.matmul(g, cols[start:stop].transpose(0, 1, 3, 2)).sum(axis=0)   # (G, C_out/G, C_in/G*KH*KW)
        if grad_input is not None:
            grad_cols = np.matmul(w_t, g).reshape(stop - start, c_in, kh, kw, *out_hw)
            grad_input[start:stop] = col2im(grad_cols, 2, (h, w), stride, pads, dilation)
        return grad_w

    return grad_input, sum(_split_images(work, n)).reshape(weight.shape)


# im2col in two layouts. Batch first, each image's product with the filters is its output,
# so nothing is transposed; but each product is as small as one image. Batch last, one
# product serves the whole batch; the output and its gradient are transposed to (and from)
# NCHW. Small products waste BLAS's time on overhead, and transposes cost memory traffic:
# batch first pays off once an image's output has a few hundred pixels.
_BATCH_FIRST_MIN_PIXELS = 256   # H_out * W_out


def _im2col(input, kernel, stride, dilation, pads, out_hw, groups, batch_first):
    """Columns for conv2d: batch first (N, G, K, H_out*W_out), or batch last (G, K, H_out*W_out*N),
    with K = C_in/G*KH*KW."""
    check_im2col_memory("Conv2d", input.shape[0], input.shape[1], kernel, out_hw, input.dtype)
    if batch_first:
        return _im2col_batch_first(input, kernel, stride, dilation, pads, out_hw, groups)
    cols = _im2col_batch_last(input, kernel, stride, dilation, pads, out_hw)
    return cols.reshape(groups, -1, cols.shape[1])


def _conv2d_im2col(input, weight, bias, stride, pads, dilation, groups, out_hw, batch_first):
    """conv2d through im2col; returns ``(output, columns)``."""
    cols = _im2col(input, weight.shape[2:], stride, dilation, pads, out_hw, groups, batch_first)
    conv = _conv2d_batch_first if cols.ndim == 4 else _conv2d_batch_last
    return conv(input, weight, bias, cols, groups, out_hw), cols


def _conv2d_backward_im2col(grad_output, cols, weight, input_shape, stride, pads, dilation, groups,
                            input_grad=True):
    """Gradients of conv2d from the saved columns (either layout); returns ``(grad_input or None, grad_weight)``."""
    backward = _conv2d_backward_batch_first if cols.ndim == 4 else _conv2d_backward_batch_last
    return backward(grad_output, cols, weight, input_shape, stride, pads, dilation, groups, input_grad)


# The stride-1 path: no im2col. On a zero-padded image flattened per channel, with rows of
# Wp pixels, kernel tap (i, j) reads the pixel i*dh*Wp + j*dw places after the output
# pixel's own, so each tap's view of all output pixels is one *contiguous* shifted slice
# per channel, a matrix BLAS reads in place. Output pixels are computed on the padded
# grid's rows (Wp wide) and the Wp - W_out extra columns are cropped at the end.
_SHIFTED_MIN_CHANNELS = 16      # fewer input channels: im2col's single product is faster


def _flat_grid(channels, hw, pads, row_len, tail, dtype, channels_last=False):
    """A zero buffer for one padded image, (C, (Hp + 1)*row_len + tail) with Hp = top + H + bottom
    (transposed with ``channels_last``), and a view of its (C, H, W) interior ((H, W, C) with
    ``channels_last``): pixel (r, c) sits at (top + r)*row_len + left + c.

    Rows may share their zero columns: any ``row_len >= W + max(left, right)`` keeps every
    read that falls off the image on a zero (the last row's reads land in the extra row)."""
    (h, w), (top, bottom, left, right) = hw, pads
    length, start = (top + h + bottom + 1) * row_len + tail, top * row_len + left
    if channels_last:
        buf = np.zeros((length, channels), dtype=dtype)
        return buf, buf[start:start + h * row_len].reshape(h, row_len, channels)[:, :w]
    buf = np.zeros((channels, length), dtype=dtype)
    return buf, buf[:, start:start + h * row_len].reshape(channels, h, row_len)[:, :, :w]


def _shifted_taps(buf, kernel, dilation, row_len, first_row, n_rows):
    """Read-only view (KH, KW, C, n_rows*row_len) of a flat grid; tap (i, j) is shifted by (i*dh, j*dw)."""
    size = buf.itemsize
    return as_strided(buf[:, first_row * row_len:], (*kernel, buf.shape[0], n_rows * row_len),
                      (dilation[0] * row_len * size, dilation[1] * size, buf.strides[0], size), writeable=False)


def _correlator(w_taps, image_hw, pads, dilation, first_row, n_rows, columns, dtype):
    """Stride-1 correlation with ``w_taps`` (KH, KW, C, C_out) for one thread, image by image.

    Returns ``correlate(image, out, bias=None)``, which writes rows ``first_row...`` of the
    padded grid, cropped to ``columns``, into ``out`` (C_out, n_rows, len(columns)). Its
    buffers (one image's worth) are reused, so they stay in the CPU cache. The products are
    computed pixels first, (pixels, C) @ (C, C_out), so that BLAS sees one long matrix.
    """
    kh, kw, c, c_out = w_taps.shape
    row_len = image_hw[1] + pads[2] + pads[3]
    buf, interior = _flat_grid(c, image_hw, pads, row_len, dilation[1] * (kw - 1), dtype)
    taps = _shifted_taps(buf, (kh, kw), dilation, row_len, first_row, n_rows).transpose(0, 1, 3, 2)
    products = np.empty((kh, kw, n_rows * row_len, c_out), dtype=dtype)
    total = np.empty((n_rows, row_len, c_out), dtype=dtype)

    def correlate(image, out, bias=None):
        interior[...] = image
        np.matmul(taps, w_taps, out=products)                   # KH*KW products (pixels, C) @ (C, C_out)
        np.add.reduce(products.reshape(kh * kw, -1), axis=0, out=total.reshape(-1))
        if bias is not None:
            np.add(total, bias, out=total)
        out[...] = total[:, columns].transpose(2, 0, 1)
    return correlate


def _conv2d_shifted(input, weight, bias, pads, dilation, out_hw):
    """Stride-1 conv2d (groups=1) on shifted views of the flat padded input."""
    w_taps = np.ascontiguousarray(weight.transpose(2, 3, 1, 0))          # (KH, KW, C_in, C_out)
    out = np.empty((input.shape[0], weight.shape[0], *out_hw), dtype=input.dtype)

    def work(start, stop):
        correlate = _correlator(w_taps, input.shape[2:], pads, dilation, 0, out_hw[0], slice(0, out_hw[1]),
                                input.dtype)
        for i in range(start, stop):
            correlate(input[i], out[i], bias)

    _split_images(work, input.shape[0])
    return out


def _tap_products(buf, weight, dilation, row_len, first_row, n_rows):
    """Products of a channels-last flat grid (pixels, C) with ``weight`` (KH, KW, C, C_out), taps side by side.

    With dilation 1 along W, the KW taps of kernel row i read KW*C consecutive numbers, so the
    grid rows p = KW*m + r (r < KW) form a matrix (rows, KW*C) with row stride KW*C that BLAS
    reads in place: the same arithmetic in products of KW*C terms instead of C, and KW times
    fewer product rows to sum afterwards (otherwise one tap per product). Returns
    ``products`` (groups, KH, n_rows*row_len, C_out), to be summed over its first two axes, and
    ``matmuls``, the ``(taps, weights, out)`` of each product.
    """
    kh, kw, c, c_out = weight.shape
    group, pixels, size = kw if dilation[1] == 1 else 1, n_rows * row_len, buf.itemsize
    products = np.empty((kw // group, kh, pixels, c_out), dtype=buf.dtype)
    matmuls = []
    for g in range(kw // group):
        weights = np.ascontiguousarray(weight[:, g * group:(g + 1) * group]).reshape(kh, group * c, c_out)
        for r in range(group):
            start = (first_row * row_len + g * dilation[1] + r) * c
            taps = as_strided(buf.reshape(-1)[start:], (kh, -(-(pixels - r) // group), group * c),
                              (dilation[0] * row_len * c * size, group * c * size, size), writeable=False)
            matmuls.append((taps, weights, products[g, :, r::group]))
    return products, matmuls


def _backward_step(input_shape, w_flipped, pads, dilation, out_hw, dtype):
    """For one thread: ``step(image, grad, total, grad_input=None)`` adds one image's weight
    gradient to ``total`` (KH, KW, C_in, C_out) and, if given, writes its input gradient.

    One channels-last copy of the output gradient serves both: it is zero-padded by the
    kernel's span on a flat grid whose rows are as long as the padded input's, Wp = W_out + span.
    Read row by row (zeros past W_out), its interior is the gradient of every position of the
    input's grid: each tap's view of the input times it gives that tap's weight gradient.
    Correlated with the flipped kernel (:func:`_tap_products`), the grid gives the padded
    input's gradient, of which rows ``top...`` are computed.
    """
    kh, kw, c_out, c_in = w_flipped.shape
    (h, w), (ho, wo), row_len = input_shape[2:], out_hw, input_shape[3] + pads[2] + pads[3]
    span_h, span_w = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
    image_buf, image = _flat_grid(c_in, (h, w), pads, row_len, span_w, dtype)
    grad_buf, grad = _flat_grid(c_out, out_hw, (span_h, span_h, span_w, span_w), row_len, span_w, dtype,
                                channels_last=True)
    image_taps = _shifted_taps(image_buf, (kh, kw), dilation, row_len, 0, ho)   # (KH, KW, C_in, H_out*Wp)
    first = span_h * row_len + span_w
    grad_rows = grad_buf[first:first + ho * row_len]                               # (H_out*Wp, C_out)
    w_products = np.empty((kh, kw, c_in, c_out), dtype=dtype)
    x_products, matmuls = _tap_products(grad_buf, w_flipped, dilation, row_len, pads[0], h)
    x_total = np.empty((h, row_len, c_in), dtype=dtype)

    def step(one_image, one_grad, total, grad_input=None):
        image[...] = one_image
        grad[...] = one_grad.transpose(1, 2, 0)
        np.matmul(image_taps, grad_rows, out=w_products)          # KH*KW products (C_in, pixels) @ (pixels, C_out)
        total += w_products
        if grad_input is not None:
            for taps, weights, out in matmuls:
                np.matmul(taps, weights, out=out)
            np.add.reduce(x_products.reshape(-1, x_total.size), axis=0, out=x_total.reshape(-1))
            grad_input[...] = x_total[:, pads[2]:pads[2] + w].transpose(2, 0, 1)
    return step


def _conv2d_backward_shifted(grad_output, input, weight, pads, dilation, input_grad=True):
    """Gradients of the stride-1 conv2d, image by image (see :func:`_backward_step`);
    returns ``(grad_input or None, grad_weight)``."""
    (n, c_in), (c_out, _, kh, kw) = input.shape[:2], weight.shape
    w_flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))  # (KH, KW, C_out, C_in)
    grad_input = np.empty(input.shape, dtype=input.dtype) if input_grad else None

    def work(start, stop):
        total = np.zeros((kh, kw, c_in, c_out), dtype=input.dtype)
        step = _backward_step(input.shape, w_flipped, pads, dilation, grad_output.shape[2:], input.dtype)
        for i in range(start, stop):
            step(input[i], grad_output[i], total, None if grad_input is None else grad_input[i])
        return total

    total = sum(_split_images(work, n))
    return grad_input, np.ascontiguousarray(total.transpose(3, 2, 0, 1))  # (C_out, C_in, KH, KW)


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
    if tuple(stride) == (1, 1) and groups == 1 and weight_shape[1] >= _SHIFTED_MIN_CHANNELS:
        return "shifted"
    return "im2col_batch_first" if out_hw[0] * out_hw[1] >= _BATCH_FIRST_MIN_PIXELS else "im2col_batch_last"


def _conv2d_run(input, weight, bias, stride, pads, dilation, groups, out_hw, path):
    """The output on ``path`` and ``grads(grad_output, input_grad)`` -> (grad_input or None, grad_weight)."""
    if path == "shifted":
        out = _conv2d_shifted(input, weight, bias, pads, dilation, out_hw)
        return out, lambda g, input_grad: _conv2d_backward_shifted(g, input, weight, pads, dilation, input_grad)
    out, cols = _conv2d_im2col(input, weight, bias, stride, pads, dilation, groups, out_hw,
                               batch_first=path == "im2col_batch_first")
    return out, lambda g, input_grad: _conv2d_backward_im2col(g, cols, weight, input.shape, stride, pads,
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

    def backward(grad_output, input_grad=True):
        check_grad_output(f"{name}.backward", grad_output, out.shape, input.dtype)
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
    _split_images(work, input.shape[0], limit_blas=False)
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
    _split_images(work, input_shape[0], limit_blas=False)
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

    def backward(grad_output):
        check_grad_output(f"{name}.backward", grad_output, out.shape, input.dtype)
        return _max_pool2d_tiles_backward(grad_output, won, kernel, input.shape)
    if return_indices:
        return (out, _flat_indices(won, kernel, kernel, (0, 0), (1, 1), input.shape[3])), backward
    return out, backward
