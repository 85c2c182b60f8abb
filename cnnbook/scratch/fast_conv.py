"""The kernels behind :func:`cnnbook.scratch.fast.conv2d_forward`: im2col with the batch axis
first or last, and the stride-1 convolution on shifted views that needs no im2col copy.

Each ``conv2d_*`` function takes checked arguments (``pads`` as (top, bottom, left, right))
and its backward returns ``(grad_input or None, grad_weight)``; :mod:`cnnbook.scratch.fast`
chooses among them and adds the bias gradient. The thresholds that choose are here, next to
the reasons. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> from cnnbook.scratch.functional import conv2d
>>> x, w = np.random.default_rng(0).random((2, 3, 5, 5)), np.ones((4, 3, 3, 3))
>>> out = conv2d_shifted(x, w, None, (1, 1, 1, 1), (1, 1), (5, 5))
>>> bool(np.allclose(out, conv2d(x, w, padding=1)))
True
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .checks import pad, tap
from .conv import check_im2col_memory, col2im
from .threads import split_batch

__all__ = ["conv2d_im2col", "conv2d_backward_im2col", "conv2d_shifted", "conv2d_backward_shifted",
           "BATCH_FIRST_MIN_PIXELS", "SHIFTED_MIN_CHANNELS"]


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

    split_batch(work, n, limit_blas=False)
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

    split_batch(work, n)
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

    return grad_input, sum(split_batch(work, n)).reshape(weight.shape)


# im2col in two layouts. Batch first, each image's product with the filters is its output,
# so nothing is transposed; but each product is as small as one image. Batch last, one
# product serves the whole batch; the output and its gradient are transposed to (and from)
# NCHW. Small products waste BLAS's time on overhead, and transposes cost memory traffic:
# batch first pays off once an image's output has a few hundred pixels.
BATCH_FIRST_MIN_PIXELS = 256   # H_out * W_out


def _im2col(input, kernel, stride, dilation, pads, out_hw, groups, batch_first):
    """Columns for conv2d: batch first (N, G, K, H_out*W_out), or batch last (G, K, H_out*W_out*N),
    with K = C_in/G*KH*KW."""
    check_im2col_memory("Conv2d", input.shape[0], input.shape[1], kernel, out_hw, input.dtype)
    if batch_first:
        return _im2col_batch_first(input, kernel, stride, dilation, pads, out_hw, groups)
    cols = _im2col_batch_last(input, kernel, stride, dilation, pads, out_hw)
    return cols.reshape(groups, -1, cols.shape[1])


def conv2d_im2col(input, weight, bias, stride, pads, dilation, groups, out_hw, batch_first):
    """conv2d through im2col; returns ``(output, columns)``."""
    cols = _im2col(input, weight.shape[2:], stride, dilation, pads, out_hw, groups, batch_first)
    conv = _conv2d_batch_first if cols.ndim == 4 else _conv2d_batch_last
    return conv(input, weight, bias, cols, groups, out_hw), cols


def conv2d_backward_im2col(grad_output, cols, weight, input_shape, stride, pads, dilation, groups,
                            input_grad=True):
    """Gradients of conv2d from the saved columns (either layout); returns ``(grad_input or None, grad_weight)``."""
    backward = _conv2d_backward_batch_first if cols.ndim == 4 else _conv2d_backward_batch_last
    return backward(grad_output, cols, weight, input_shape, stride, pads, dilation, groups, input_grad)


# The stride-1 path: no im2col. On a zero-padded image flattened per channel, with rows of
# Wp pixels, kernel tap (i, j) reads the pixel i*dh*Wp + j*dw places after the output
# pixel's own, so each tap's view of all output pixels is one *contiguous* shifted slice
# per channel, a matrix BLAS reads in place. Output pixels are computed on the padded
# grid's rows (Wp wide) and the Wp - W_out extra columns are cropped at the end.
SHIFTED_MIN_CHANNELS = 16      # fewer input channels: im2col's single product is faster


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


def conv2d_shifted(input, weight, bias, pads, dilation, out_hw):
    """Stride-1 conv2d (groups=1) on shifted views of the flat padded input."""
    w_taps = np.ascontiguousarray(weight.transpose(2, 3, 1, 0))          # (KH, KW, C_in, C_out)
    out = np.empty((input.shape[0], weight.shape[0], *out_hw), dtype=input.dtype)

    def work(start, stop):
        correlate = _correlator(w_taps, input.shape[2:], pads, dilation, 0, out_hw[0], slice(0, out_hw[1]),
                                input.dtype)
        for i in range(start, stop):
            correlate(input[i], out[i], bias)

    split_batch(work, input.shape[0])
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


def conv2d_backward_shifted(grad_output, input, weight, pads, dilation, input_grad=True):
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

    total = sum(split_batch(work, n))
    return grad_input, np.ascontiguousarray(total.transpose(3, 2, 0, 1))  # (C_out, C_in, KH, KW)
