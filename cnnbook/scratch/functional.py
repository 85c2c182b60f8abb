"""CNN building blocks in NumPy, with the names and meanings of ``torch.nn.functional``.

Every operation comes as a forward function with torch's signature (``conv2d``,
``max_pool2d``, ``cross_entropy``, ...) and an analytic backward function named after it
(``conv2d_backward``, ...) that returns the gradients of the forward's inputs. Arrays are
NCHW, weights ``(C_out, C_in/groups, KH, KW)``, and float32 stays float32 (float64 stays
float64). Convolution and pooling also come as short loop versions (``conv2d_loop``,
``max_pool2d_loop``, ``avg_pool2d_loop``, ``conv2d_backward_loop``): they *define* the
operation; the fast versions use strided views and matrix products (im2col + BLAS, or
for stride-1 convolutions shifted views of the padded image) and are tested against them
and against PyTorch.

Bad arguments raise ``ValueError``/``TypeError`` naming the function, the argument, what
was expected and what was given. NaN or infinite values are rejected where they would
silently spread through training: in the losses and in the batch statistics of
``batch_norm``. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> from cnnbook.scratch import functional as F
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> F.max_pool2d(x, 2)
array([[[[ 5.,  7.],
         [13., 15.]]]], dtype=float32)
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = [
    "conv2d", "conv2d_backward", "conv2d_loop", "conv2d_backward_loop",
    "max_pool2d", "max_pool2d_backward", "max_pool2d_loop",
    "avg_pool2d", "avg_pool2d_backward", "avg_pool2d_loop",
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "linear", "linear_backward", "batch_norm", "batch_norm_backward",
    "dropout", "dropout_backward", "mse_loss", "mse_loss_backward",
    "nll_loss", "nll_loss_backward", "cross_entropy", "cross_entropy_backward",
    "set_num_threads", "get_num_threads",
]

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------------------
# Argument checks shared by all functions
# ---------------------------------------------------------------------------------------
def _check_array(fn, name, x, ndim=None, layout=""):
    """Raise unless ``x`` is a float32/float64 ndarray with one of the allowed ``ndim``."""
    if not isinstance(x, np.ndarray):
        hint = "call .numpy() on a torch tensor" if hasattr(x, "detach") else "wrap it with np.asarray(...)"
        raise TypeError(f"{fn}: {name} must be a NumPy array, got {type(x).__name__}; hint: {hint}")
    if x.dtype not in FLOATS:
        raise TypeError(f"{fn}: {name} must have dtype float32 or float64, got {x.dtype}; "
                        f"hint: convert it with {name}.astype(np.float32)")
    if ndim is not None and x.ndim not in ndim:
        want = f"at least {ndim.start}" if isinstance(ndim, range) else " or ".join(map(str, ndim))
        raise ValueError(f"{fn}: {name} must be {want}-dimensional {layout}, got shape {x.shape}"
                         + ("; hint: add a batch axis with x[None]" if x.ndim == min(ndim) - 1 else ""))


def _check_same_dtype(fn, **arrays):
    """Raise when the given (non-None) arrays do not share one dtype."""
    given = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(given.values())) > 1:
        listing = ", ".join(f"{name} is {dtype}" for name, dtype in given.items())
        raise TypeError(f"{fn}: all arrays must have the same dtype, but {listing}; "
                        f"hint: convert them with .astype(...) to one dtype")


def _check_finite(fn, name, x):
    """Raise when ``x`` holds NaN or +-inf (min and max are finite iff every entry is)."""
    if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{fn}: {name} contains {bad} NaN or infinite value(s) out of {x.size}; "
                         "they would spread into every gradient. Hint: check the data, or lower "
                         "the learning rate if training diverged")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int(fn, name, value, minimum):
    """Return ``value`` as an int >= ``minimum``."""
    if not _is_int(value):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


_PAIR_HINTS = {"stride": "stride=1 moves the window one pixel at a time",
               "dilation": "dilation=1 means no gaps between kernel taps",
               "padding": "padding adds that many zeros on each side",
               "kernel_size": "kernel_size=3 means a 3x3 window"}


def _pair(fn, name, value, minimum):
    """Return ``value`` (an int or a pair of ints) as a pair of ints >= ``minimum``."""
    pair = (value, value) if _is_int(value) else value
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(_is_int(v) for v in pair)):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}; "
                         f"hint: {_PAIR_HINTS.get(name, '')}")
    return int(pair[0]), int(pair[1])


def _check_reduction(fn, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_grad_output(fn, grad_output, shape, dtype):
    """Raise unless ``grad_output`` is an array of the forward output's shape and dtype."""
    _check_array(fn, "grad_output", grad_output)
    if grad_output.shape != tuple(shape):
        raise ValueError(f"{fn}: grad_output must have the shape of the forward output "
                         f"{tuple(shape)}, got {grad_output.shape}")
    _check_same_dtype(fn, input=np.empty(0, dtype), grad_output=grad_output)


# ---------------------------------------------------------------------------------------
# Window geometry shared by convolution and pooling
# ---------------------------------------------------------------------------------------
def _output_size(fn, in_hw, kernel, stride, pads, dilation, ceil_mode=False):
    """Output height and width of a sliding window; raise when the window does not fit.

    ``H_out = floor((H + pad_top + pad_bottom - dilation*(KH-1) - 1) / stride) + 1``
    (``ceil`` with ``ceil_mode``, keeping the last window's start inside input or padding).
    """
    out = []
    for size, k, s, (lo, hi), d in zip(in_hw, kernel, stride, (pads[:2], pads[2:]), dilation):
        span, padded = d * (k - 1) + 1, size + lo + hi
        if span > padded:
            raise ValueError(
                f"{fn}: kernel {kernel[0]}x{kernel[1]} (dilation {dilation[0]}x{dilation[1]}) spans "
                f"{span} pixels, larger than the padded input size {padded} (input {in_hw[0]}x{in_hw[1]}, "
                f"padding {pads}); the output size would be below 1. Hint: use a smaller kernel or "
                "dilation, more padding, or a larger input")
        n = -(-(padded - span) // s) + 1 if ceil_mode else (padded - span) // s + 1
        if ceil_mode and (n - 1) * s >= size + lo:
            n -= 1
        out.append(n)
    return tuple(out)


def _pad(x, pads, value=0.0):
    """Pad the last two axes of ``x`` by ``pads = (top, bottom, left, right)`` with ``value``."""
    if not any(pads):
        return x
    top, bottom, left, right = pads
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def _tap(kh, kw, stride, dilation, out_hw):
    """Index of the pixels that kernel tap ``(kh, kw)`` sees, one per output position."""
    (sh, sw), (dh, dw), (ho, wo) = stride, dilation, out_hw
    return (..., slice(kh * dh, kh * dh + sh * (ho - 1) + 1, sh),
            slice(kw * dw, kw * dw + sw * (wo - 1) + 1, sw))


# ---------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------
def _conv_padding(fn, padding, kernel, stride, dilation):
    """Resolve conv2d's ``padding`` to ``(top, bottom, left, right)``."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"{fn}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"{fn}: padding='same' needs stride=1, got stride={stride}; hint: "
                             "compute the padding yourself for strided convolutions")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]  # torch puts the odd pixel last
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    ph, pw = _pair(fn, "padding", padding, 0)
    return (ph, ph, pw, pw)


def _conv_setup(fn, input, weight, bias, stride, padding, dilation, groups):
    """Check conv2d's arguments; return ``(stride, pads, dilation, groups, out_hw)``."""
    _check_array(fn, "input", input, (4,), "(N, C_in, H, W)")
    _check_array(fn, "weight", weight, (4,), "(C_out, C_in/groups, KH, KW)")
    if bias is not None:
        _check_array(fn, "bias", bias, (1,), "(C_out,)")
    _check_same_dtype(fn, input=input, weight=weight, bias=bias)
    stride, dilation = _pair(fn, "stride", stride, 1), _pair(fn, "dilation", dilation, 1)
    groups = _int(fn, "groups", groups, 1)
    c_in, c_out = input.shape[1], weight.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"{fn}: groups={groups} must divide both the input channels ({c_in}) and "
                         f"the output channels ({c_out}); input {input.shape}, weight {weight.shape}")
    if weight.shape[1] * groups != c_in:
        raise ValueError(f"{fn}: input has {c_in} channels but weight expects {weight.shape[1] * groups} "
                         f"(weight.shape[1]={weight.shape[1]} times groups={groups}); input "
                         f"{input.shape}, weight {weight.shape}. Hint: weight is (C_out, C_in/groups, KH, KW)")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"{fn}: bias must have shape ({c_out},) (one value per output channel), got {bias.shape}")
    pads = _conv_padding(fn, padding, weight.shape[2:], stride, dilation)
    out_hw = _output_size(fn, input.shape[2:], weight.shape[2:], stride, pads, dilation)
    return stride, pads, dilation, groups, out_hw


def conv2d_loop(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) as explicit loops: the definition of :func:`conv2d`.

    Each output pixel is the sum of a window of the (padded) input multiplied elementwise
    by a filter. Same arguments and result as :func:`conv2d`, only slower.

    Shape
    -----
    input (N, C_in, H, W), weight (C_out, C_in/groups, KH, KW) -> (N, C_out, H_out, W_out),
    ``H_out = floor((H + 2*padding[0] - dilation[0]*(KH-1) - 1) / stride[0]) + 1``.

    Examples
    --------
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> conv2d_loop(x, np.ones((1, 1, 2, 2)))
    array([[[[ 8., 12.],
             [20., 24.]]]])
    """
    (sh, sw), pads, (dh, dw), groups, (ho, wo) = _conv_setup(
        "conv2d_loop", input, weight, bias, stride, padding, dilation, groups)
    xp = _pad(input, pads)
    c_out, c_in_g, kh, kw = weight.shape
    c_out_g = c_out // groups
    out = np.zeros((input.shape[0], c_out, ho, wo), dtype=input.dtype)
    for g in range(groups):
        x_g = xp[:, g * c_in_g:(g + 1) * c_in_g]            # this group's input channels
        w_g = weight[g * c_out_g:(g + 1) * c_out_g]         # and its filters
        for i in range(ho):
            for j in range(wo):
                window = x_g[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                             j * sw:j * sw + dw * (kw - 1) + 1:dw]  # (N, C_in/groups, KH, KW)
                products = window[:, None] * w_g[None]              # (N, C_out/groups, C_in/groups, KH, KW)
                out[:, g * c_out_g:(g + 1) * c_out_g, i, j] = products.sum(axis=(2, 3, 4))
    if bias is not None:
        out += bias[:, None, None]
    return out


def conv2d_backward_loop(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of :func:`conv2d_loop` as explicit loops: each window sends back its share.

    Returns ``(grad_input, grad_weight, grad_bias)`` like :func:`conv2d_backward`.
    """
    (sh, sw), pads, (dh, dw), groups, (ho, wo) = _conv_setup(
        "conv2d_backward_loop", input, weight, bias, stride, padding, dilation, groups)
    xp = _pad(input, pads)
    grad_xp, grad_w = np.zeros_like(xp), np.zeros_like(weight)
    c_out, c_in_g, kh, kw = weight.shape
    c_out_g = c_out // groups
    for g in range(groups):
        ci, co = slice(g * c_in_g, (g + 1) * c_in_g), slice(g * c_out_g, (g + 1) * c_out_g)
        for i in range(ho):
            for j in range(wo):
                rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
                cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
                g_ij = grad_output[:, co, i, j]                      # (N, C_out/groups)
                grad_w[co] += np.tensordot(g_ij, xp[:, ci, rows, cols], axes=(0, 0))
                grad_xp[:, ci, rows, cols] += np.tensordot(g_ij, weight[co], axes=(1, 0))
    top, _, left, _ = pads
    grad_input = grad_xp[:, :, top:top + input.shape[2], left:left + input.shape[3]]
    grad_bias = None if bias is None else grad_output.sum(axis=(0, 2, 3))
    return np.ascontiguousarray(grad_input), grad_w, grad_bias


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
            _, rows, columns = _tap(i, j, stride, dilation, out_hw)
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
    grad_input = np.ascontiguousarray(_col2im(grad_cols, 1, (h, w), stride, pads, dilation)).reshape(-1, n)
    return _transpose(grad_input).reshape(input_shape), grad_w                 # back to (N, C, H, W)


def _col2im(grad_cols, tap_axis, in_hw, stride, pads, dilation):
    """The input's gradient from the columns' gradient: each kernel tap's gradient is added
    back (one strided add per tap) where im2col copied that tap from, then the padding is cropped.

    ``grad_cols`` has the taps (KH, KW) at ``tap_axis`` followed by (H_out, W_out) and any
    trailing axes; returns a view shaped like it with (H, W) in place of those four axes.
    """
    lead, (kh, kw, *out_hw), trail = (grad_cols.shape[:tap_axis], grad_cols.shape[tap_axis:tap_axis + 4],
                                       grad_cols.shape[tap_axis + 4:])
    (h, w), (top, bottom, left, right), skip = in_hw, pads, (slice(None),) * tap_axis
    grad_xp = np.zeros((*lead, h + top + bottom, w + left + right, *trail), dtype=grad_cols.dtype)
    for i in range(kh):
        for j in range(kw):
            _, rows, columns = _tap(i, j, stride, dilation, out_hw)
            grad_xp[(*skip, rows, columns)] += grad_cols[(*skip, i, j)]
    return grad_xp[(*skip, slice(top, top + h), slice(left, left + w))]


def _im2col_batch_first(input, kernel, stride, dilation, pads, out_hw, groups):
    """Copy every receptive field into a column, image by image: (N, G, C/G*KH*KW, H_out*W_out).

    The batch axis stays first, so each image's product with the filters is already the
    image's (C_out, H_out*W_out) output: nothing is transposed, before or after. One strided
    view of the padded images holds every tap; one copy per block of images (one block per
    thread) turns it into columns.
    """
    xp = _pad(input, pads)
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
            grad_input[start:stop] = _col2im(grad_cols, 2, (h, w), stride, pads, dilation)
        return grad_w

    return grad_input, sum(_split_images(work, n)).reshape(weight.shape)


# im2col in two layouts. Batch first, each image's product with the filters is its output,
# so nothing is transposed; but each product is as small as one image. Batch last, one
# product serves the whole batch; the output and its gradient are transposed to (and from)
# NCHW. Measured here: batch first wins on large images (28x28 outputs: 1->32 channels 2.7x
# faster), batch last on small ones (10x10 and 7x7: 1.5x faster).
_BATCH_FIRST_MIN_PIXELS = 256   # H_out * W_out


def _im2col(input, kernel, stride, dilation, pads, out_hw, groups):
    """Columns for conv2d: batch first (N, G, K, H_out*W_out) on large outputs, else batch last (G, K, H_out*W_out*N),
    with K = C_in/G*KH*KW."""
    if out_hw[0] * out_hw[1] >= _BATCH_FIRST_MIN_PIXELS:
        return _im2col_batch_first(input, kernel, stride, dilation, pads, out_hw, groups)
    cols = _im2col_batch_last(input, kernel, stride, dilation, pads, out_hw)
    return cols.reshape(groups, -1, cols.shape[1])


def _conv2d_im2col(input, weight, bias, stride, pads, dilation, groups, out_hw):
    """conv2d through im2col; returns ``(output, columns)``."""
    cols = _im2col(input, weight.shape[2:], stride, dilation, pads, out_hw, groups)
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


def _use_shifted(weight, stride, groups):
    """Whether conv2d takes the stride-1 shifted-view path (else im2col)."""
    return stride == (1, 1) and groups == 1 and weight.shape[1] >= _SHIFTED_MIN_CHANNELS


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
    _num_threads = _int("set_num_threads", "num_threads", num_threads, 1)


def get_num_threads():
    """How many threads the vectorized stride-1 conv2d and tiling max_pool2d use (see :func:`set_num_threads`)."""
    return _num_threads


def _split_images(work, n, limit_blas=True):
    """``[work(start, stop), ...]`` over ``n`` images in contiguous blocks, one block per thread.

    With ``limit_blas`` (work that calls BLAS) BLAS runs on one thread meanwhile, and without
    threadpoolctl to do that the work stays on one thread.
    """
    blocks = min(_num_threads, n)
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
    computed pixels first, (pixels, C) @ (C, C_out): measured faster here on 14x14 images.
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


def _conv2d_forward(input, weight, bias, stride, pads, dilation, groups, out_hw):
    """Vectorized conv2d on checked arguments; returns ``(output, saved)`` for :func:`_conv2d_backward`."""
    if _use_shifted(weight, stride, groups):
        return _conv2d_shifted(input, weight, bias, pads, dilation, out_hw), input
    return _conv2d_im2col(input, weight, bias, stride, pads, dilation, groups, out_hw)


def _conv2d_backward(grad_output, saved, weight, input_shape, stride, pads, dilation, groups, input_grad=True):
    """Gradients from what :func:`_conv2d_forward` saved (the input, or im2col's columns);
    returns ``(grad_input or None, grad_weight)``."""
    if not _use_shifted(weight, stride, groups):
        return _conv2d_backward_im2col(grad_output, saved, weight, input_shape, stride, pads, dilation,
                                       groups, input_grad)
    return _conv2d_backward_shifted(grad_output, saved, weight, pads, dilation, input_grad)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in every deep-learning library) over NCHW input.

    Vectorized: the receptive fields are copied into the columns of a matrix (im2col: one
    strided view of every kernel tap, copied once) that BLAS multiplies by the filters,
    image by image when the output is at least 16x16 (each product is that image's
    output), else in one product for the whole batch. Stride-1 convolutions
    with ``groups=1`` and at least 16 input channels skip that copy: on the flattened
    padded image every kernel tap is a shifted view that BLAS reads in place, one image at
    a time, and the taps' products are summed; the batch is split across
    :func:`get_num_threads` threads.

    Parameters
    ----------
    input : ndarray, float32 or float64
        Images, shape (N, C_in, H, W).
    weight : ndarray
        Filters, shape (C_out, C_in/groups, KH, KW), same dtype as ``input``.
    bias : ndarray or None, default None
        One value per output channel, shape (C_out,).
    stride : int or (int, int), default 1
        Step between windows (>= 1).
    padding : int, (int, int), 'valid' or 'same', default 0
        Zeros added on each side; 'valid' means 0; 'same' (stride 1 only) keeps H and W,
        putting an odd extra pixel at the bottom/right as torch does.
    dilation : int or (int, int), default 1
        Spacing between kernel taps (1: none).
    groups : int, default 1
        Split channels into ``groups`` independent convolutions.

    Returns
    -------
    ndarray
        Shape (N, C_out, H_out, W_out), dtype of ``input``.

    Shape
    -----
    ``H_out = floor((H + 2*padding[0] - dilation[0]*(KH-1) - 1) / stride[0]) + 1``,
    likewise ``W_out``.

    Raises
    ------
    TypeError
        Non-array or integer input, mismatched dtypes, non-integer hyper-parameters.
    ValueError
        Wrong number of dimensions, channel mismatch (groups included), kernel larger
        than the padded input, stride or dilation below 1, negative padding, 'same' with stride > 1.

    Examples
    --------
    >>> x = np.ones((2, 3, 28, 28), dtype=np.float32)
    >>> conv2d(x, np.ones((8, 3, 3, 3), dtype=np.float32), padding=1).shape
    (2, 8, 28, 28)
    """
    geometry = _conv_setup("conv2d", input, weight, bias, stride, padding, dilation, groups)
    stride, pads, dilation, groups, out_hw = geometry
    return _conv2d_forward(input, weight, bias, stride, pads, dilation, groups, out_hw)[0]


def _bias_grad(grad_output):
    """The bias gradient of a conv2d, ``grad_output.sum(axis=(0, 2, 3))``, summed in two steps:
    first over the batch (adding whole contiguous images), then over each channel's pixels.
    About 2.5 times faster here than one sum over the scattered axes, and no BLAS call (whose
    idle worker threads would keep spinning on the cores for a while)."""
    return grad_output.sum(axis=0).reshape(grad_output.shape[1], -1).sum(axis=1)


def conv2d_backward(grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the output, shape (N, C_out, H_out, W_out).
    input, weight, bias, stride, padding, dilation, groups
        The arguments of the forward call.

    Returns
    -------
    grad_input : ndarray, shape (N, C_in, H, W)
    grad_weight : ndarray, shape (C_out, C_in/groups, KH, KW)
    grad_bias : ndarray of shape (C_out,), or None when ``bias`` is None

    Examples
    --------
    >>> x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    >>> gx, gw, gb = conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
    >>> gx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    fn = "conv2d_backward"
    stride, pads, dilation, groups, out_hw = _conv_setup(fn, input, weight, bias, stride, padding, dilation, groups)
    _check_grad_output(fn, grad_output, (input.shape[0], weight.shape[0], *out_hw), input.dtype)
    saved = input
    if not _use_shifted(weight, stride, groups):
        saved = _im2col(input, weight.shape[2:], stride, dilation, pads, out_hw, groups)
    grad_input, grad_weight = _conv2d_backward(grad_output, saved, weight, input.shape,
                                               stride, pads, dilation, groups)
    grad_bias = None if bias is None else _bias_grad(grad_output)
    return grad_input, grad_weight, grad_bias


# ---------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------
def _pool_setup(fn, input, kernel_size, stride, padding, dilation, ceil_mode):
    """Check a pool's arguments; return ``(kernel, stride, padding, dilation, out_hw, pads)``.

    ``pads`` is ``(top, bottom, left, right)``, with extra bottom/right pixels so that
    the last window of ``ceil_mode`` fits.
    """
    _check_array(fn, "input", input, (4,), "(N, C, H, W)")
    kernel = _pair(fn, "kernel_size", kernel_size, 1)
    no_stride = stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
    stride = kernel if no_stride else _pair(fn, "stride", stride, 1)
    padding, dilation = _pair(fn, "padding", padding, 0), _pair(fn, "dilation", dilation, 1)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{fn}: padding must be at most half of kernel_size, got padding={padding} "
                         f"for kernel_size={kernel}; hint: a window must always cover some real pixels")
    pads = (padding[0], padding[0], padding[1], padding[1])
    out_hw = _output_size(fn, input.shape[2:], kernel, stride, pads, dilation, bool(ceil_mode))
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
    xp = _pad(input, pads, value=-np.inf)     # padding never wins the max
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

    Notes
    -----
    Windows that tile the image (``stride`` equal to ``kernel_size``, no padding or dilation,
    as in ``MaxPool2d(2)``) take a faster path that splits the batch across
    :func:`get_num_threads` threads; the answers are the same.

    Examples
    --------
    >>> x = np.array([[[[1., 2.], [4., 3.]]]], dtype=np.float32)
    >>> out, idx = max_pool2d(x, 2, return_indices=True)
    >>> out.ravel(), idx.ravel()
    (array([4.], dtype=float32), array([2]))
    """
    kernel, stride, padding, dilation, out_hw, pads = _pool_setup(
        "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    if not _tiles(input.shape[2:], kernel, stride, padding, dilation, out_hw):
        out, idx = _max_pool2d_forward(input, kernel, stride, padding, dilation, out_hw, pads)
        return (out, idx) if return_indices else out
    out, won = _max_pool2d_tiles(input, kernel, out_hw)
    return (out, _tile_indices(won, kernel, input.shape[3])) if return_indices else out


def _max_pool2d_forward(input, kernel, stride, padding, dilation, out_hw, pads):
    """Max of each window and its flat input index ``h*W + w``, with torch's rules: the first
    maximum wins a tie, the last NaN wins over everything, an all -inf window points at its
    first real pixel."""
    xp = _pad(input, pads, value=-np.inf)                       # padding never wins the max
    taps = [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]
    views = [xp[_tap(i, j, stride, dilation, out_hw)] for i, j in taps]   # (N, C, H_out, W_out) each
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


def _tile_indices(won, kernel, w_in):
    return _flat_indices(won, kernel, kernel, (0, 0), (1, 1), w_in)


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
    _check_grad_output(fn, grad_output, input.shape[:2] + out_hw, input.dtype)
    if indices is None and _tiles(input.shape[2:], kernel, stride, padding, dilation, out_hw):
        won = _max_pool2d_tiles(input, kernel, out_hw)[1]
        return _max_pool2d_tiles_backward(grad_output, won, kernel, input.shape)
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
    if divisor_override is not None and (not _is_int(divisor_override) or divisor_override == 0):
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
    xp = _pad(input, pads)
    out = np.zeros(input.shape[:2] + out_hw, dtype=input.dtype)
    for i in range(kernel[0]):                                   # add the window, tap by tap
        for j in range(kernel[1]):
            out += xp[_tap(i, j, stride, (1, 1), out_hw)]
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
    _check_grad_output(fn, grad_output, input.shape[:2] + out_hw, input.dtype)
    divisor = _avg_divisor(input.shape[2:], kernel, stride, padding, out_hw, count_include_pad, divisor_override)
    share = grad_output / np.asarray(divisor, dtype=input.dtype)
    n, c, h, w = input.shape
    top, bottom, left, right = pads
    grad_xp = np.zeros((n, c, h + top + bottom, w + left + right), dtype=input.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            grad_xp[_tap(i, j, stride, (1, 1), out_hw)] += share
    return np.ascontiguousarray(grad_xp[:, :, top:top + h, left:left + w])


# ---------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------
def relu(input):
    """``max(0, x)`` elementwise.

    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    _check_array("relu", "input", input)
    return np.maximum(input, 0)


def relu_backward(grad_output, input):
    """Gradient of :func:`relu`: ``grad_output`` where ``input > 0``, else 0 (0 at 0, as torch)."""
    _check_array("relu_backward", "input", input)
    _check_grad_output("relu_backward", grad_output, input.shape, input.dtype)
    return np.where(input <= 0, 0, grad_output).astype(input.dtype, copy=False)


def leaky_relu(input, negative_slope=0.01):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise.

    >>> leaky_relu(np.array([-2.0, 3.0]), 0.1)
    array([-0.2,  3. ])
    """
    _check_array("leaky_relu", "input", input)
    return np.where(input > 0, input, input * negative_slope)


def leaky_relu_backward(grad_output, input, negative_slope=0.01):
    """Gradient of :func:`leaky_relu` (slope ``negative_slope`` at 0, as torch)."""
    _check_array("leaky_relu_backward", "input", input)
    _check_grad_output("leaky_relu_backward", grad_output, input.shape, input.dtype)
    return np.where(input > 0, grad_output, grad_output * negative_slope)


def sigmoid(input):
    """``1 / (1 + exp(-x))``, computed without overflow.

    >>> sigmoid(np.array([0.0]))
    array([0.5])
    """
    _check_array("sigmoid", "input", input)
    e = np.exp(-np.abs(input))                    # never overflows
    return np.where(input >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(grad_output, output):
    """Gradient of :func:`sigmoid` from its *output* ``y``: ``grad_output * y * (1 - y)``."""
    _check_array("sigmoid_backward", "output", output)
    _check_grad_output("sigmoid_backward", grad_output, output.shape, output.dtype)
    return grad_output * output * (1 - output)


def tanh(input):
    """Hyperbolic tangent elementwise.

    >>> tanh(np.array([0.0]))
    array([0.])
    """
    _check_array("tanh", "input", input)
    return np.tanh(input)


def tanh_backward(grad_output, output):
    """Gradient of :func:`tanh` from its *output* ``y``: ``grad_output * (1 - y**2)``."""
    _check_array("tanh_backward", "output", output)
    _check_grad_output("tanh_backward", grad_output, output.shape, output.dtype)
    return grad_output * (1 - output * output)


def _check_dim(fn, input, dim):
    if not _is_int(dim):
        raise TypeError(f"{fn}: dim must be an int (e.g. dim=1 for (N, C) logits), got {dim!r}")
    if not -input.ndim <= dim < max(input.ndim, 1):
        raise ValueError(f"{fn}: dim must be in [{-input.ndim}, {input.ndim - 1}] for input of shape "
                         f"{input.shape}, got {dim}")


def softmax(input, dim):
    """``exp(x) / sum(exp(x))`` along ``dim`` (shifted by the max, so it never overflows).

    >>> softmax(np.array([[0.0, np.log(3.0)]]), dim=1)
    array([[0.25, 0.75]])
    """
    _check_array("softmax", "input", input)
    _check_dim("softmax", input, dim)
    e = np.exp(input - input.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(grad_output, output, dim):
    """Gradient of :func:`softmax` from its output ``y``: ``y * (g - sum(g * y, dim))``."""
    _check_array("softmax_backward", "output", output)
    _check_grad_output("softmax_backward", grad_output, output.shape, output.dtype)
    _check_dim("softmax_backward", output, dim)
    return output * (grad_output - (grad_output * output).sum(axis=dim, keepdims=True))


def log_softmax(input, dim):
    """``x - log(sum(exp(x)))`` along ``dim``, computed stably (log-sum-exp).

    >>> log_softmax(np.array([[0.0, 0.0]]), dim=1)
    array([[-0.69314718, -0.69314718]])
    """
    _check_array("log_softmax", "input", input)
    _check_dim("log_softmax", input, dim)
    shifted = input - input.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def log_softmax_backward(grad_output, output, dim):
    """Gradient of :func:`log_softmax` from its output ``y``: ``g - exp(y) * sum(g, dim)``."""
    _check_array("log_softmax_backward", "output", output)
    _check_grad_output("log_softmax_backward", grad_output, output.shape, output.dtype)
    _check_dim("log_softmax_backward", output, dim)
    return grad_output - np.exp(output) * grad_output.sum(axis=dim, keepdims=True)


# ---------------------------------------------------------------------------------------
# Linear, batch norm, dropout
# ---------------------------------------------------------------------------------------
def _linear_setup(fn, input, weight, bias):
    _check_array(fn, "input", input, range(1, 33), "(*, in_features)")
    _check_array(fn, "weight", weight, (2,), "(out_features, in_features)")
    if bias is not None:
        _check_array(fn, "bias", bias, (1,), "(out_features,)")
    _check_same_dtype(fn, input=input, weight=weight, bias=bias)
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
    _check_grad_output(fn, grad_output, input.shape[:-1] + weight.shape[:1], input.dtype)
    g = grad_output.reshape(-1, weight.shape[0])                # (M, out_features)
    x = input.reshape(-1, weight.shape[1])                      # (M, in_features)
    grad_bias = None if bias is None else g.sum(axis=0)
    return grad_output @ weight, g.T @ x, grad_bias


def _bn_setup(fn, input, running_mean, running_var, weight, bias, training):
    """Check batch_norm's arguments; return ``(reduce axes, broadcast shape)``."""
    _check_array(fn, "input", input, range(2, 33), "(N, C, *)")
    c = input.shape[1]
    for name, a in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if a is not None:
            _check_array(fn, name, a, (1,), "(C,)")
            if a.shape != (c,):
                raise ValueError(f"{fn}: {name} must have shape ({c},) for input {input.shape} "
                                 f"with {c} channels, got {a.shape}")
    _check_same_dtype(fn, input=input, running_mean=running_mean, running_var=running_var,
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
    axes, shape = _bn_setup("batch_norm", input, running_mean, running_var, weight, bias, training)
    if training:
        _check_finite("batch_norm", "input", input)
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, axes, shape)[0]


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
    _check_grad_output(fn, grad_output, input.shape, input.dtype)
    xhat, inv_std, _ = _bn_normalise(input, running_mean, running_var, training, eps, axes, shape)
    grad_input, grad_weight, grad_bias = _bn_backward(grad_output, xhat, inv_std, weight, training, axes, shape)
    return grad_input, None if weight is None else grad_weight, None if bias is None else grad_bias


def _check_p(fn, p):
    if not isinstance(p, (int, float, np.floating, np.integer)) or isinstance(p, bool) or not 0 <= p <= 1:
        raise ValueError(f"{fn}: dropout probability p must be between 0 and 1, got {p!r}")


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
    _check_array("dropout", "input", input)
    _check_p("dropout", p)
    if not training or p == 0:
        return (input, np.ones(input.shape, dtype=bool)) if return_mask else input
    rng = np.random if generator is None else generator
    mask = rng.random(input.shape) >= p                         # keep with probability 1 - p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    out = np.multiply(input, mask * input.dtype.type(scale), out=input if inplace else None)
    return (out, mask) if return_mask else out


def dropout_backward(grad_output, mask, p=0.5, training=True):
    """Gradient of :func:`dropout`: ``grad_output * mask / (1 - p)`` (unchanged when not training)."""
    _check_array("dropout_backward", "grad_output", grad_output)
    _check_p("dropout_backward", p)
    if not training or p == 0:
        return grad_output
    if not isinstance(mask, np.ndarray) or mask.shape != grad_output.shape:
        raise ValueError(f"dropout_backward: mask must be the boolean array returned with return_mask=True, "
                         f"shape {grad_output.shape}, got {getattr(mask, 'shape', type(mask).__name__)}")
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return grad_output * (mask * grad_output.dtype.type(scale))


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------
def _reduce(fn, loss, reduction):
    if reduction == "mean":
        return loss.dtype.type(loss.mean())
    if reduction == "sum":
        return loss.dtype.type(loss.sum())
    return loss


def _mse_setup(fn, input, target, reduction):
    _check_array(fn, "input", input)
    _check_array(fn, "target", target)
    _check_same_dtype(fn, input=input, target=target)
    if input.shape != target.shape:
        raise ValueError(f"{fn}: input and target must have the same shape, got input {input.shape} "
                         f"and target {target.shape}; hint: broadcasting here is usually a bug")
    _check_reduction(fn, reduction)
    _check_finite(fn, "input", input)
    _check_finite(fn, "target", target)


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
    _check_array(fn, "input", input, range(1, 33), "(N, C) or (N, C, d1, ...) or (C,)")
    if not isinstance(target, np.ndarray) or not np.issubdtype(target.dtype, np.integer):
        given = target.dtype if isinstance(target, np.ndarray) else type(target).__name__
        raise TypeError(f"{fn}: target must be an integer array of class indices, got {given}; "
                        "hint: labels.astype(np.int64) (class-probability targets are not supported)")
    want = input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()
    if target.shape != want:
        raise ValueError(f"{fn}: target must have shape {want} (one class index per sample) for input "
                         f"{input.shape}, got {target.shape}")
    _check_reduction(fn, reduction)
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    bad = (target != ignore_index) & ((target < 0) | (target >= c))
    if bad.any():
        raise ValueError(f"{fn}: target values must be class indices in [0, {c - 1}] (or ignore_index="
                         f"{ignore_index}), got {target[bad].ravel()[0]} at position "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])}; hint: input has {c} classes")
    _check_finite(fn, "input", input)
    weight = _class_weight(fn, weight, c, input.dtype)
    x = np.moveaxis(input, 1, -1).reshape(-1, c) if input.ndim > 1 else input[None]
    t = target.reshape(-1).astype(np.int64)
    keep = t != ignore_index
    return x, np.where(keep, t, 0), keep, weight


def _class_weight(fn, weight, c, dtype):
    if weight is None:
        return np.ones(c, dtype=dtype)
    _check_array(fn, "weight", weight, (1,), "(C,)")
    if weight.shape != (c,):
        raise ValueError(f"{fn}: weight must have one value per class, shape ({c},), got {weight.shape}")
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
    _check_smoothing(fn, label_smoothing)
    x, t, keep, weight = _class_setup(fn, input, target, weight, ignore_index, reduction)
    logp = log_softmax(x, dim=1)
    w_t, total_w = _nll_parts(x, t, keep, weight)
    loss = -w_t * logp[np.arange(len(t)), t]
    if label_smoothing > 0:
        smooth = -(logp * weight).sum(axis=1) * keep
        loss = (1 - label_smoothing) * loss + (label_smoothing / x.shape[1]) * smooth
    return _finish(loss, reduction, total_w, target.shape)


def _check_smoothing(fn, label_smoothing):
    if not isinstance(label_smoothing, (int, float, np.floating)) or not 0 <= label_smoothing <= 1:
        raise ValueError(f"{fn}: label_smoothing must be a float in [0, 1], got {label_smoothing!r}")


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0):
    """Gradient of :func:`cross_entropy` with respect to the logits ``input``.

    For one sample with target t, ``d loss / d logp_c = -((1-e)*weight[t]*[c == t] + e/C*weight[c])``,
    and through log_softmax ``grad_logits = a - softmax(x) * sum_c(a_c)``. Without weights
    and smoothing this is the familiar ``softmax(x) - one_hot(t)`` (divided by N for 'mean').
    """
    fn = "cross_entropy_backward"
    _check_smoothing(fn, label_smoothing)
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
