"""Convolution from scratch: the loop versions that define it, and one vectorized version.

``conv2d_loop`` is the definition (each output pixel is a window of the padded input times
a filter, summed); ``conv2d`` computes the same numbers with im2col and matrix products;
``conv2d_backward`` (and ``conv2d_backward_loop``) give the gradients of the input, the
weight and the bias. Faster paths for the layers live in :mod:`cnnbook.scratch.fast`.
This module never imports torch.

Examples
--------
>>> import numpy as np
>>> x = np.arange(9.0).reshape(1, 1, 3, 3)
>>> conv2d(x, np.ones((1, 1, 2, 2)))
array([[[[ 8., 12.],
         [20., 24.]]]])
"""
from __future__ import annotations

import warnings

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .checks import as_int, as_pair, check_array, check_grad_output, check_same_dtype, output_size, pad, tap

__all__ = ["conv2d", "conv2d_backward", "conv2d_loop", "conv2d_backward_loop", "im2col", "col2im"]

# im2col copies every input pixel KH*KW times; past this many bytes it warns first, because
# a student's large image can silently ask for more memory than the machine has.
IM2COL_WARN_BYTES = 2 ** 30


def conv_padding(fn, padding, kernel, stride, dilation):
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
    ph, pw = as_pair(fn, "padding", padding, 0)
    return (ph, ph, pw, pw)


def _conv_setup(fn, input, weight, bias, stride, padding, dilation, groups):
    """Check conv2d's arguments; return ``(stride, pads, dilation, groups, out_hw)``."""
    check_array(fn, "input", input, (4,), "(N, C_in, H, W)")
    check_array(fn, "weight", weight, (4,), "(C_out, C_in/groups, KH, KW)")
    if bias is not None:
        check_array(fn, "bias", bias, (1,), "(C_out,)")
    check_same_dtype(fn, input=input, weight=weight, bias=bias)
    stride, dilation = as_pair(fn, "stride", stride, 1), as_pair(fn, "dilation", dilation, 1)
    groups = as_int(fn, "groups", groups, 1)
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
    pads = conv_padding(fn, padding, weight.shape[2:], stride, dilation)
    out_hw = output_size(fn, input.shape[2:], weight.shape[2:], stride, pads, dilation)
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
    xp = pad(input, pads)
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
    xp = pad(input, pads)
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


def check_im2col_memory(fn, n, channels, kernel, out_hw, dtype):
    """Warn when im2col's columns for this call would take more than ``IM2COL_WARN_BYTES``."""
    nbytes = n * channels * kernel[0] * kernel[1] * out_hw[0] * out_hw[1] * np.dtype(dtype).itemsize
    if nbytes > IM2COL_WARN_BYTES:
        warnings.warn(f"{fn}: im2col will copy the input into {nbytes / 2 ** 30:.1f} GiB of columns "
                      f"({n} images x {channels * kernel[0] * kernel[1]} taps x {out_hw[0] * out_hw[1]} "
                      "positions); hint: use a smaller batch or image", stacklevel=3)
    return nbytes


def im2col(input, kernel, stride=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0), groups=1):
    """Every receptive field of ``input`` copied into a column, image by image and group by group.

    Parameters
    ----------
    input : ndarray, shape (N, C, H, W)
    kernel, stride, dilation : (int, int)
    pads : (top, bottom, left, right)
    groups : int

    Returns
    -------
    ndarray, shape (N, groups, C/groups*KH*KW, H_out*W_out)
        Column ``p`` of image ``n``, group ``g`` holds the window of output position ``p``.

    Examples
    --------
    >>> im2col(np.arange(9.0).reshape(1, 1, 3, 3), (2, 2))[0, 0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    out_hw = output_size("im2col", input.shape[2:], kernel, stride, pads, dilation)
    check_im2col_memory("im2col", input.shape[0], input.shape[1], kernel, out_hw, input.dtype)
    xp = pad(input, pads)
    (n, c), s = input.shape[:2], xp.strides
    windows = as_strided(xp, (n, c, *kernel, *out_hw),     # (N, C, KH, KW, H_out, W_out), no copy
                         (s[0], s[1], s[2] * dilation[0], s[3] * dilation[1], s[2] * stride[0], s[3] * stride[1]),
                         writeable=False)
    return windows.reshape(n, groups, c // groups * kernel[0] * kernel[1], out_hw[0] * out_hw[1])  # the copy


def col2im(grad_cols, tap_axis, in_hw, stride, pads, dilation):
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
            _, rows, columns = tap(i, j, stride, dilation, out_hw)
            grad_xp[(*skip, rows, columns)] += grad_cols[(*skip, i, j)]
    return grad_xp[(*skip, slice(top, top + h), slice(left, left + w))]


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as in every deep-learning library) over NCHW input.

    Vectorized with im2col (:func:`im2col`): every receptive field is copied into a column,
    and one matrix product per image and group multiplies all of them by the filters.
    The layers in :mod:`cnnbook.scratch.nn` use faster paths (:mod:`cnnbook.scratch.fast`)
    that give the same numbers.

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
    stride, pads, dilation, groups, out_hw = _conv_setup("conv2d", input, weight, bias, stride, padding,
                                                         dilation, groups)
    n, c_out = input.shape[0], weight.shape[0]
    cols = im2col(input, weight.shape[2:], stride, dilation, pads, groups)  # (N, G, C_in/G*KH*KW, H_out*W_out)
    w = weight.reshape(groups, c_out // groups, -1)                       # (G, C_out/G, C_in/G*KH*KW)
    out = np.matmul(w, cols).reshape(n, c_out, *out_hw)                   # (N, G, C_out/G, H_out*W_out)
    if bias is not None:
        out += bias[:, None, None]
    return out


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
    check_grad_output(fn, grad_output, (input.shape[0], weight.shape[0], *out_hw), input.dtype)
    (n, c_in, h, w), (c_out, _, kh, kw) = input.shape, weight.shape
    cols = im2col(input, (kh, kw), stride, dilation, pads, groups)        # (N, G, K, P), K = C_in/G*KH*KW
    g = grad_output.reshape(n, groups, c_out // groups, out_hw[0] * out_hw[1])   # (N, G, C_out/G, P)
    grad_weight = np.matmul(g, cols.transpose(0, 1, 3, 2)).sum(axis=0)    # (G, C_out/G, K)
    w_t = weight.reshape(groups, c_out // groups, -1).transpose(0, 2, 1)  # (G, K, C_out/G)
    grad_cols = np.matmul(w_t, g).reshape(n, c_in, kh, kw, *out_hw)       # what each column sent forward
    grad_input = col2im(grad_cols, 2, (h, w), stride, pads, dilation)
    grad_bias = None if bias is None else grad_output.sum(axis=(0, 2, 3))
    return np.ascontiguousarray(grad_input), grad_weight.reshape(weight.shape), grad_bias
