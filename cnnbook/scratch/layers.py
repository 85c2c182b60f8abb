"""The layers of :mod:`cnnbook.scratch.nn`, with ``torch.nn``'s constructor signatures and
``state_dict`` keys: convolution, linear, batch norm, pooling, activations, flatten, dropout.

Convolution and max pooling run on the fast paths of :mod:`cnnbook.scratch.fast`; the other
layers call the definitions in :mod:`cnnbook.scratch.functional`. Each forward keeps what its
backward needs with :func:`cnnbook.scratch.module.save_for_backward`, call by call. This
module never imports torch.

Examples
--------
>>> import numpy as np
>>> layer = Linear(3, 2, generator=np.random.default_rng(0))
>>> layer(np.ones((4, 3), dtype=np.float32)).shape
(4, 2)
"""
from __future__ import annotations

import math

import numpy as np

from . import checks, fast, functional as F
from .conv import conv_padding
from .module import Module, Parameter, accumulate_grad, save_for_backward, saved_for_backward, uniform_init
from .normalization import batch_norm_forward

__all__ = ["Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "ReLU", "LeakyReLU",
           "Sigmoid", "Tanh", "Flatten", "Dropout"]


# ---------------------------------------------------------------------------------------
# Layers with parameters
# ---------------------------------------------------------------------------------------
class Conv2d(Module):
    """2-D convolution layer; see :func:`cnnbook.scratch.functional.conv2d`.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, padding, dilation, groups
        As in :func:`cnnbook.scratch.functional.conv2d` (padding also 'valid' or 'same').
    bias : bool, default True
    padding_mode : 'zeros'
        The only mode implemented.
    dtype : numpy dtype, default float32
    generator : numpy.random.Generator or None
        Source of the initial weights (None: NumPy's global random state).

    Notes
    -----
    Runs on :func:`cnnbook.scratch.fast.conv2d_forward`, which :func:`cnnbook.scratch.fast.conv2d_path`
    routes: stride-1 layers with ``groups=1`` and at least 16 input channels skip im2col and
    split the batch over :func:`cnnbook.scratch.functional.get_num_threads` threads (BLAS on one
    thread each); the other layers use im2col, image by image on the same threads when the
    output is at least 16x16, below that one product for the whole batch.

    Shape
    -----
    input (N, C_in, H, W) -> output (N, C_out, H_out, W_out) with
    ``H_out = floor((H + 2*padding[0] - dilation[0]*(kernel_size[0]-1) - 1) / stride[0]) + 1``.

    Examples
    --------
    >>> conv = Conv2d(1, 6, 5, padding=2, generator=np.random.default_rng(0))
    >>> conv
    Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
    >>> conv(np.zeros((8, 1, 28, 28), dtype=np.float32)).shape
    (8, 6, 28, 28)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", dtype=None, generator=None):
        super().__init__()
        fn = "Conv2d"
        in_channels, out_channels = checks.as_int(fn, "in_channels", in_channels, 1), checks.as_int(fn, "out_channels", out_channels, 1)
        groups = checks.as_int(fn, "groups", groups, 1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{fn}: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        if padding_mode != "zeros":
            raise ValueError(f"{fn}: only padding_mode='zeros' is implemented, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = checks.as_pair(fn, "kernel_size", kernel_size, 1)
        self.stride, self.dilation = checks.as_pair(fn, "stride", stride, 1), checks.as_pair(fn, "dilation", dilation, 1)
        self.padding = padding if isinstance(padding, str) else checks.as_pair(fn, "padding", padding, 0)
        conv_padding(fn, self.padding, self.kernel_size, self.stride, self.dilation)
        checks.check_bool(fn, "bias", bias)
        checks.check_generator(fn, generator)
        dtype = checks.check_float_dtype(fn, dtype)
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1 / math.sqrt(fan_in)                    # kaiming_uniform_(a=sqrt(5)), as torch
        self.weight = Parameter(uniform_init(generator, bound, (out_channels, in_channels // groups) + self.kernel_size, dtype))
        self.bias = Parameter(uniform_init(generator, bound, (out_channels,), dtype)) if bias else None

    def forward(self, input):
        bias = None if self.bias is None else self.bias.data
        out, backward = fast.conv2d_forward(input, self.weight.data, bias, self.stride, self.padding,
                                            self.dilation, self.groups, name="Conv2d")
        save_for_backward(self, backward)
        return out

    def backward(self, grad_output, input_grad=True):
        """Fill the parameters' ``.grad``; return the input's gradient (None if not ``input_grad``)."""
        grad_input, grad_weight, grad_bias = saved_for_backward(self)(grad_output, input_grad)
        accumulate_grad(self.weight, grad_weight)
        if self.bias is not None:
            accumulate_grad(self.bias, grad_bias)
        return grad_input

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class Linear(Module):
    """Fully connected layer ``y = x @ weight.T + bias``; see :func:`cnnbook.scratch.functional.linear`.

    Shape
    -----
    input (*, in_features) -> output (*, out_features).

    Examples
    --------
    >>> Linear(400, 120).weight.shape
    (120, 400)
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None, generator=None):
        super().__init__()
        self.in_features = checks.as_int("Linear", "in_features", in_features, 1)
        self.out_features = checks.as_int("Linear", "out_features", out_features, 1)
        checks.check_bool("Linear", "bias", bias)
        checks.check_generator("Linear", generator)
        dtype = checks.check_float_dtype("Linear", dtype)
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(uniform_init(generator, bound, (out_features, in_features), dtype))
        self.bias = Parameter(uniform_init(generator, bound, (out_features,), dtype)) if bias else None

    def forward(self, input):
        out = F.linear(input, self.weight.data, None if self.bias is None else self.bias.data)
        save_for_backward(self, input)
        return out

    def backward(self, grad_output, input_grad=True):
        """Fill the parameters' ``.grad``; return the input's gradient (None if not ``input_grad``)."""
        input = saved_for_backward(self)
        bias = None if self.bias is None else self.bias.data
        grad_input, grad_weight, grad_bias = F.linear_backward(grad_output, input, self.weight.data, bias)
        accumulate_grad(self.weight, grad_weight)
        if self.bias is not None:
            accumulate_grad(self.bias, grad_bias)
        return grad_input if input_grad else None

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _BatchNorm(Module):
    _ndims, _layout = (), ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=None,
                 *, bias=True):
        super().__init__()
        fn = type(self).__name__
        self.num_features = checks.as_int(fn, "num_features", num_features, 1)
        checks.check_number(fn, "eps", eps)
        if momentum is not None:                       # None: a cumulative average
            checks.check_number(fn, "momentum", momentum, high=1.0)
        for name, flag in (("affine", affine), ("track_running_stats", track_running_stats), ("bias", bias)):
            checks.check_bool(fn, name, flag)
        self.eps, self.momentum, self.affine = eps, momentum, affine
        self.track_running_stats = track_running_stats
        dtype = checks.check_float_dtype(fn, dtype)
        self.weight = Parameter(np.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype)) if affine and bias else None
        for name, value in (("running_mean", np.zeros(num_features, dtype)),
                            ("running_var", np.ones(num_features, dtype)),
                            ("num_batches_tracked", np.array(0, dtype=np.int64))):
            self.register_buffer(name, value if track_running_stats else None)

    def forward(self, input):
        name = type(self).__name__
        if not isinstance(input, np.ndarray) or input.ndim not in self._ndims:
            checks.check_array(name, "input", input, self._ndims, self._layout)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1                      # in place: the buffer stays the same array
            if self.momentum is None:                          # cumulative average, as torch
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch = self.training or self.running_mean is None
        w, b = self._affine()
        out, backward = batch_norm_forward(input, self.running_mean, self.running_var, w, b, use_batch, factor,
                                           self.eps, name=name)
        save_for_backward(self, backward)
        return out

    def backward(self, grad_output):
        grad_input, grad_w, grad_b = saved_for_backward(self)(grad_output)
        for param, grad in ((self.weight, grad_w), (self.bias, grad_b)):
            if param is not None:
                accumulate_grad(param, grad)
        return grad_input

    def _affine(self):
        return tuple(None if p is None else p.data for p in (self.weight, self.bias))

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) input; see :func:`cnnbook.scratch.functional.batch_norm`.

    Buffers ``running_mean``, ``running_var``, ``num_batches_tracked`` as in torch;
    ``momentum=None`` gives a cumulative average.

    >>> bn = BatchNorm1d(3)
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """
    _ndims, _layout = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) input, per channel; see :class:`BatchNorm1d`."""
    _ndims, _layout = (4,), "(N, C, H, W)"


# ---------------------------------------------------------------------------------------
# Layers without parameters
# ---------------------------------------------------------------------------------------
class MaxPool2d(Module):
    """Max pooling layer; see :func:`cnnbook.scratch.functional.max_pool2d`.

    >>> MaxPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, input):
        out, backward = fast.max_pool2d_forward(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                                self.ceil_mode, self.return_indices, name="MaxPool2d")
        save_for_backward(self, backward)
        return out

    def backward(self, grad_output):
        return saved_for_backward(self)(grad_output)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Average pooling layer; see :func:`cnnbook.scratch.functional.avg_pool2d`."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def _kwargs(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode,
                    count_include_pad=self.count_include_pad, divisor_override=self.divisor_override)

    def forward(self, input):
        out = F.avg_pool2d(input, **self._kwargs())
        save_for_backward(self, input)
        return out

    def backward(self, grad_output):
        return F.avg_pool2d_backward(grad_output, saved_for_backward(self), **self._kwargs())

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class ReLU(Module):
    """``max(0, x)``; see :func:`cnnbook.scratch.functional.relu`."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        checks.check_array("ReLU", "input", input)
        save_for_backward(self, ~(input <= 0))                 # where the gradient passes (NaN too, as torch)
        return np.maximum(input, 0, out=input if self.inplace else None)

    def backward(self, grad_output):
        passes = saved_for_backward(self)
        checks.check_grad_output("ReLU.backward", grad_output, passes.shape, grad_output.dtype)
        return grad_output * passes

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``x`` if ``x > 0`` else ``negative_slope * x``; see :func:`cnnbook.scratch.functional.leaky_relu`."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        checks.check_array("LeakyReLU", "input", input)
        positive = input > 0
        save_for_backward(self, positive)
        if self.inplace:
            return np.multiply(input, self.negative_slope, out=input, where=~positive)
        return np.where(positive, input, input * self.negative_slope)

    def backward(self, grad_output):
        positive = saved_for_backward(self)
        checks.check_grad_output("LeakyReLU.backward", grad_output, positive.shape, grad_output.dtype)
        return np.where(positive, grad_output, grad_output * self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """Logistic sigmoid; see :func:`cnnbook.scratch.functional.sigmoid`."""

    def forward(self, input):
        out = F.sigmoid(input)
        save_for_backward(self, out)
        return out

    def backward(self, grad_output):
        return F.sigmoid_backward(grad_output, saved_for_backward(self))


class Tanh(Module):
    """Hyperbolic tangent; see :func:`cnnbook.scratch.functional.tanh`."""

    def forward(self, input):
        out = F.tanh(input)
        save_for_backward(self, out)
        return out

    def backward(self, grad_output):
        return F.tanh_backward(grad_output, saved_for_backward(self))


class Flatten(Module):
    """Flatten axes ``start_dim..end_dim`` into one, e.g. (N, C, H, W) -> (N, C*H*W).

    >>> Flatten()(np.zeros((2, 16, 5, 5))).shape
    (2, 400)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = checks.as_int("Flatten", "start_dim", start_dim, -32)
        self.end_dim = checks.as_int("Flatten", "end_dim", end_dim, -32)

    def forward(self, input):
        if not isinstance(input, np.ndarray):
            checks.check_array("Flatten", "input", input)
        for name, dim in (("start_dim", self.start_dim), ("end_dim", self.end_dim)):
            if not -max(input.ndim, 1) <= dim < max(input.ndim, 1):
                raise ValueError(f"Flatten: {name}={dim} is out of range for input of shape {input.shape}")
        start, end = self.start_dim % max(input.ndim, 1), self.end_dim % max(input.ndim, 1)
        if start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim} comes after end_dim={self.end_dim} "
                             f"for input of shape {input.shape}")
        save_for_backward(self, input.shape)
        merged = int(np.prod(input.shape[start:end + 1]))       # not -1: an empty batch has no size to infer from
        return input.reshape(input.shape[:start] + (merged,) + input.shape[end + 1:])

    def backward(self, grad_output):
        return grad_output.reshape(saved_for_backward(self))

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zero elements with probability ``p`` in training (scaling the rest by ``1/(1-p)``).

    ``generator`` (a NumPy Generator) makes the masks reproducible; None uses NumPy's
    global random state. In evaluation mode the layer passes its input through.
    """

    def __init__(self, p=0.5, inplace=False, generator=None):
        super().__init__()
        checks.check_dropout_p("Dropout", p)
        self.p, self.inplace, self.generator = p, inplace, generator

    def forward(self, input):
        out, mask = F.dropout(input, self.p, self.training, self.inplace, generator=self.generator, return_mask=True)
        save_for_backward(self, (mask, self.training))
        return out

    def backward(self, grad_output):
        mask, training = saved_for_backward(self)
        return F.dropout_backward(grad_output, mask, self.p, training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
