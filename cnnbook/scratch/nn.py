"""Layers in NumPy with the constructor signatures and state_dict keys of ``torch.nn``.

Each layer computes ``forward(x)`` (also reachable as ``layer(x)``) and, after it,
``backward(grad_output)``: that returns the gradient of the layer's input and **adds**
the gradients of its parameters to their ``.grad``, as torch's autograd accumulates them;
:meth:`Module.zero_grad` or an optimizer's ``zero_grad()`` resets them to None before the
next batch. Parameters are :class:`Parameter` objects (``.data`` and ``.grad``); running
statistics are buffers. ``state_dict()`` uses torch's key names (``"0.weight"``,
``"1.running_mean"``, ``"1.num_batches_tracked"``), so a torch model's ``state_dict()``
loads straight into the equivalent cnnbook model (tensors convert through ``np.asarray``).

A layer may be called several times in one forward pass (one ``ReLU`` object reused, one
``Linear`` applied twice to share its weights), as in torch: each call keeps what its
backward needs, and ``backward`` is then called once per call, in reverse order (as
``Sequential.backward`` does); the parameters' gradients add up over the calls. What a
layer keeps is forgotten when an outermost call (a model called from outside any module)
starts a new forward pass, so evaluating a model many times does not pile up memory.

Training and evaluation behaviour (dropout, batch norm) follows ``train()``/``eval()``;
saving what backward needs can be switched off with ``with no_grad():``, as in torch.
Initialisation follows torch (Kaiming-uniform with ``a=sqrt(5)``: bound ``1/sqrt(fan_in)``),
drawn from the ``generator`` argument or, when it is None, NumPy's global random state.
This module never imports torch.

Examples
--------
>>> import numpy as np
>>> from cnnbook.scratch import nn
>>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
>>> logits = model(np.zeros((2, 1, 8, 8), dtype=np.float32))
>>> logits.shape
(2, 10)
>>> loss_fn = nn.CrossEntropyLoss()
>>> loss = loss_fn(logits, np.array([3, 7]))
>>> grad_input = model.backward(loss_fn.backward())
>>> [name for name, p in model.named_parameters()]
['0.weight', '0.bias', '3.weight', '3.bias']
"""
from __future__ import annotations

import math
from collections import OrderedDict, namedtuple

import numpy as np

from . import checks, fast, functional as F
from .conv import conv_padding
from .normalization import batch_norm_forward

__all__ = ["Parameter", "Module", "no_grad", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "LeakyReLU",
           "Sigmoid", "Tanh", "Flatten", "Linear", "BatchNorm1d", "BatchNorm2d", "Dropout",
           "Sequential", "CrossEntropyLoss", "NLLLoss", "MSELoss"]

_GRAD_ENABLED = [True]
_CALL_DEPTH = [0]               # how many Module calls are running (nested) right now
_PASS = [0]                     # number of outermost Module calls so far: the forward pass's id
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class no_grad:
    """Context manager: forward passes inside it save nothing for backward (faster, less memory).

    >>> with no_grad():
    ...     y = ReLU()(np.ones(3))
    """

    def __enter__(self):
        self._previous = _GRAD_ENABLED[0]
        _GRAD_ENABLED[0] = False
        return self

    def __exit__(self, *exc):
        _GRAD_ENABLED[0] = self._previous
        return False


class Parameter:
    """A trainable array: ``data`` (ndarray) and ``grad`` (ndarray of the same shape, or None)."""

    __slots__ = ("data", "grad")

    def __init__(self, data):
        self.data = np.asarray(data)
        self.grad = None

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        return f"Parameter containing:\n{self.data!r}"


def _accumulate(param, grad):
    """Add ``grad`` to ``param.grad`` (which starts as None), as torch accumulates gradients."""
    if param.grad is None:
        param.grad = np.array(grad, dtype=param.data.dtype)
    else:
        param.grad += grad


def _rng(generator):
    """The generator to draw from: the given one, or NumPy's global random state."""
    return np.random if generator is None else generator


def _uniform(generator, bound, shape, dtype):
    return _rng(generator).uniform(-bound, bound, size=shape).astype(dtype)


class Module:
    """Base class: parameters, buffers and sub-modules registered by attribute assignment."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise TypeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            self._buffers[name] = value
            return
        self.__dict__.pop(name, None)            # one name, one place
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:                                    # a plain attribute (or a parameter set to None)
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for store in ("_parameters", "_buffers", "_modules"):
            found = self.__dict__.get(store, {})
            if name in found:
                return found[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def register_buffer(self, name, array):
        """Register a non-trainable array saved in ``state_dict`` (e.g. running statistics)."""
        self._buffers[name] = array

    def __call__(self, *args, **kwargs):
        if _CALL_DEPTH[0] == 0:                  # an outermost call: a new forward pass
            _PASS[0] += 1
        _CALL_DEPTH[0] += 1
        try:
            return self.forward(*args, **kwargs)
        finally:
            _CALL_DEPTH[0] -= 1

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, grad_output):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    # -- traversal ------------------------------------------------------------------
    def _all_named_modules(self, prefix=""):
        """Every path to a sub-module, a shared one under each of its names (state_dict's keys)."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child._all_named_modules(f"{prefix}.{name}" if prefix else name)

    def named_modules(self, prefix=""):
        """``(name, module)`` pairs, this module first; a module used twice comes once, as in torch."""
        seen = set()
        for name, module in self._all_named_modules(prefix):
            if id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return iter(self._modules.values())

    def _named(self, store):
        seen = set()
        for prefix, module in self.named_modules():
            for name, value in getattr(module, store).items():
                if value is not None and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self):
        """``(name, Parameter)`` pairs, torch's order: own parameters, then each child's; a shared
        parameter comes once (so an optimizer updates it once)."""
        return self._named("_parameters")

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        return self._named("_buffers")

    # -- modes and gradients --------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (dropout active, batch norm uses and updates batch statistics)."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Set evaluation mode: same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self):
        """Reset every parameter's ``.grad`` to None (torch's default ``set_to_none=True``)."""
        for p in self.parameters():
            p.grad = None

    def _cast(self, dtype):
        for module in self.modules():
            for p in module._parameters.values():
                p.data, p.grad = p.data.astype(dtype), None
            for name, b in module._buffers.items():
                if b is not None and b.dtype.kind == "f":
                    module._buffers[name] = b.astype(dtype)
        return self

    def float(self):
        """Convert parameters and floating buffers to float32 (in place); return self."""
        return self._cast(np.float32)

    def double(self):
        """Convert parameters and floating buffers to float64 (in place); return self."""
        return self._cast(np.float64)

    # -- state ----------------------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers by torch's key names, e.g. ``"0.weight"``.

        As in torch, the arrays *are* the model's (no copy): use ``copy.deepcopy`` to keep a
        snapshot while training goes on.
        """
        state = OrderedDict()
        for prefix, module in self._all_named_modules():
            pre = f"{prefix}." if prefix else ""
            for name, p in module._parameters.items():
                state[pre + name] = p.data
            for name, b in module._buffers.items():
                if b is not None:
                    state[pre + name] = b
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (or CPU torch tensors) into the parameters and buffers, by key.

        Raises
        ------
        ValueError
            A shape differs, or (with ``strict``) keys are missing or unexpected.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, as torch returns.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"load_state_dict: keys do not match: missing {missing}, unexpected {unexpected}; "
                             "hint: build the same architecture (same layer order) as the saved model")
        for key in own:
            if key in state_dict:
                try:
                    value = np.asarray(state_dict[key])
                except (TypeError, ValueError, RuntimeError) as error:
                    raise TypeError(f"load_state_dict: {key} must be an array or a CPU tensor, got "
                                    f"{type(state_dict[key]).__name__} ({error})") from None
                if value.shape != own[key].shape:
                    raise ValueError(f"load_state_dict: size mismatch for {key}: the state_dict has shape "
                                     f"{value.shape}, the model {own[key].shape}")
                try:
                    np.copyto(own[key], value, casting="same_kind")
                except TypeError as error:
                    raise TypeError(f"load_state_dict: cannot copy {key}: the state_dict has dtype {value.dtype}, "
                                    f"the model {own[key].dtype} ({error}); hint: convert the value with "
                                    f".astype({own[key].dtype})") from None
        return IncompatibleKeys(missing, unexpected)

    # -- printing -------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


def _save(module, saved):
    """Keep what this call of ``module`` needs for its backward (nothing under ``no_grad()``).

    Calls of one forward pass pile up (a layer used twice keeps both); the first call of
    a new pass forgets the previous pass's.
    """
    if not _GRAD_ENABLED[0]:
        return
    kept = module.__dict__.get("_saved")
    if kept is None or kept[0] != _PASS[0]:
        kept = (_PASS[0], [])
        object.__setattr__(module, "_saved", kept)
    kept[1].append(saved)


def _saved(module):
    """What the latest call of ``module`` not yet gone back through saved for its backward."""
    kept = module.__dict__.get("_saved")
    if not kept or not kept[1]:
        raise RuntimeError(f"{type(module).__name__}.backward: nothing saved from a forward pass; call the "
                           "layer first (outside no_grad()), and call backward once per forward call, in "
                           "reverse order")
    return kept[1].pop()


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
    Stride-1 layers with ``groups=1`` and at least 16 input channels skip im2col and split
    the batch over :func:`cnnbook.scratch.functional.get_num_threads` threads (BLAS on one thread
    each). The other layers use im2col: image by image, split over the same threads, when
    the output is at least 16x16; below that one product for the whole batch, with NumPy's
    BLAS on its own threads.

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
        dtype = np.dtype(dtype or np.float32)
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1 / math.sqrt(fan_in)                    # kaiming_uniform_(a=sqrt(5)), as torch
        self.weight = Parameter(_uniform(generator, bound, (out_channels, in_channels // groups) + self.kernel_size, dtype))
        self.bias = Parameter(_uniform(generator, bound, (out_channels,), dtype)) if bias else None

    def forward(self, input):
        bias = None if self.bias is None else self.bias.data
        out, backward = fast.conv2d_forward(input, self.weight.data, bias, self.stride, self.padding,
                                            self.dilation, self.groups, name="Conv2d")
        _save(self, backward)
        return out

    def backward(self, grad_output, input_grad=True):
        """Fill the parameters' ``.grad``; return the input's gradient (None if not ``input_grad``)."""
        grad_input, grad_weight, grad_bias = _saved(self)(grad_output, input_grad)
        _accumulate(self.weight, grad_weight)
        if self.bias is not None:
            _accumulate(self.bias, grad_bias)
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
        dtype = np.dtype(dtype or np.float32)
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(_uniform(generator, bound, (out_features, in_features), dtype))
        self.bias = Parameter(_uniform(generator, bound, (out_features,), dtype)) if bias else None

    def forward(self, input):
        out = F.linear(input, self.weight.data, None if self.bias is None else self.bias.data)
        _save(self, input)
        return out

    def backward(self, grad_output, input_grad=True):
        """Fill the parameters' ``.grad``; return the input's gradient (None if not ``input_grad``)."""
        input = _saved(self)
        bias = None if self.bias is None else self.bias.data
        grad_input, grad_weight, grad_bias = F.linear_backward(grad_output, input, self.weight.data, bias)
        _accumulate(self.weight, grad_weight)
        if self.bias is not None:
            _accumulate(self.bias, grad_bias)
        return grad_input if input_grad else None

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _BatchNorm(Module):
    _ndims, _layout = (), ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=None,
                 *, bias=True):
        super().__init__()
        self.num_features = checks.as_int(type(self).__name__, "num_features", num_features, 1)
        self.eps, self.momentum, self.affine = eps, momentum, affine
        self.track_running_stats = track_running_stats
        dtype = np.dtype(dtype or np.float32)
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
        _save(self, backward)
        return out

    def backward(self, grad_output):
        grad_input, grad_w, grad_b = _saved(self)(grad_output)
        for param, grad in ((self.weight, grad_w), (self.bias, grad_b)):
            if param is not None:
                _accumulate(param, grad)
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
        _save(self, backward)
        return out

    def backward(self, grad_output):
        return _saved(self)(grad_output)

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
        _save(self, input)
        return out

    def backward(self, grad_output):
        return F.avg_pool2d_backward(grad_output, _saved(self), **self._kwargs())

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class ReLU(Module):
    """``max(0, x)``; see :func:`cnnbook.scratch.functional.relu`."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        checks.check_array("ReLU", "input", input)
        _save(self, ~(input <= 0))                 # where the gradient passes (NaN too, as torch)
        return np.maximum(input, 0, out=input if self.inplace else None)

    def backward(self, grad_output):
        passes = _saved(self)
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
        _save(self, positive)
        if self.inplace:
            return np.multiply(input, self.negative_slope, out=input, where=~positive)
        return np.where(positive, input, input * self.negative_slope)

    def backward(self, grad_output):
        positive = _saved(self)
        checks.check_grad_output("LeakyReLU.backward", grad_output, positive.shape, grad_output.dtype)
        return np.where(positive, grad_output, grad_output * self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """Logistic sigmoid; see :func:`cnnbook.scratch.functional.sigmoid`."""

    def forward(self, input):
        out = F.sigmoid(input)
        _save(self, out)
        return out

    def backward(self, grad_output):
        return F.sigmoid_backward(grad_output, _saved(self))


class Tanh(Module):
    """Hyperbolic tangent; see :func:`cnnbook.scratch.functional.tanh`."""

    def forward(self, input):
        out = F.tanh(input)
        _save(self, out)
        return out

    def backward(self, grad_output):
        return F.tanh_backward(grad_output, _saved(self))


class Flatten(Module):
    """Flatten axes ``start_dim..end_dim`` into one, e.g. (N, C, H, W) -> (N, C*H*W).

    >>> Flatten()(np.zeros((2, 16, 5, 5))).shape
    (2, 400)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        if not isinstance(input, np.ndarray):
            checks.check_array("Flatten", "input", input)
        start, end = self.start_dim % max(input.ndim, 1), self.end_dim % max(input.ndim, 1)
        if start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim} comes after end_dim={self.end_dim} "
                             f"for input of shape {input.shape}")
        _save(self, input.shape)
        merged = int(np.prod(input.shape[start:end + 1]))       # not -1: an empty batch has no size to infer from
        return input.reshape(input.shape[:start] + (merged,) + input.shape[end + 1:])

    def backward(self, grad_output):
        return grad_output.reshape(_saved(self))

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
        _save(self, (mask, self.training))
        return out

    def backward(self, grad_output):
        mask, training = _saved(self)
        return F.dropout_backward(grad_output, mask, self.p, training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Sequential(Module):
    """Modules applied one after the other; backward runs them in reverse.

    Sub-modules are named "0", "1", ... as in torch, which gives the state_dict keys.

    >>> model = Sequential(Linear(4, 3), ReLU(), Linear(3, 2))
    >>> len(model), type(model[1]).__name__, list(model.state_dict())
    (3, 'ReLU', ['0.weight', '0.bias', '2.weight', '2.bias'])
    """

    def __init__(self, *modules):
        super().__init__()
        for module in modules:
            self.append(module)

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*modules[index])
        return modules[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        """Add ``module`` at the end; return self."""
        if not isinstance(module, Module):
            hint = f"; hint: write nn.{module.capitalize()}() for a layer" if isinstance(module, str) else ""
            raise TypeError(f"Sequential: module {len(self)} must be a cnnbook.scratch.nn.Module (a layer object "
                            f"such as nn.ReLU()), got {type(module).__name__} {module!r}{hint}")
        self._modules[str(len(self))] = module
        return self

    def forward(self, input):
        for module in self:
            input = module(input)
        return input

    def backward(self, grad_output, input_grad=True):
        """Backward through every module in reverse; return the input's gradient.

        ``input_grad=False`` (the input is data, not something to learn) lets a first
        Conv2d/Linear/Sequential skip computing it, as torch skips inputs that do not
        require grad; None is returned then.
        """
        modules = list(self)
        for module in reversed(modules[1:]):
            grad_output = module.backward(grad_output)
        if input_grad:
            return modules[0].backward(grad_output)
        if isinstance(modules[0], (Conv2d, Linear, Sequential)):
            return modules[0].backward(grad_output, input_grad=False)
        modules[0].backward(grad_output)
        return None


# ---------------------------------------------------------------------------------------
# Losses: ``loss = criterion(logits, target)``, then ``criterion.backward()``
# ---------------------------------------------------------------------------------------
class _Loss(Module):
    def backward(self, grad_output=1.0):
        """Gradient of the loss with respect to the input (``grad_output`` defaults to 1)."""
        input, target = _saved(self)
        return self._backward(grad_output, input, target)

    def forward(self, input, target):
        loss = self._forward(input, target)
        _save(self, (input, target))
        return loss


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits against class indices; see :func:`cnnbook.scratch.functional.cross_entropy`.

    >>> loss_fn = CrossEntropyLoss()
    >>> float(loss_fn(np.zeros((2, 4)), np.array([0, 3]))) == float(np.log(4))
    True
    >>> loss_fn.backward()
    array([[-0.375,  0.125,  0.125,  0.125],
           [ 0.125,  0.125,  0.125, -0.375]])
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        checks.check_reduction("CrossEntropyLoss", reduction)
        checks.check_smoothing("CrossEntropyLoss", label_smoothing)
        if weight is not None:
            self.register_buffer("weight", np.asarray(weight))
        else:
            object.__setattr__(self, "weight", None)
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def _kwargs(self):
        return dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                    label_smoothing=self.label_smoothing)

    def _forward(self, input, target):
        return F.cross_entropy(input, target, **self._kwargs())

    def _backward(self, grad_output, input, target):
        return F.cross_entropy_backward(grad_output, input, target, **self._kwargs())


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities; see :func:`cnnbook.scratch.functional.nll_loss`."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__()
        checks.check_reduction("NLLLoss", reduction)
        if weight is not None:
            self.register_buffer("weight", np.asarray(weight))
        else:
            object.__setattr__(self, "weight", None)
        self.ignore_index, self.reduction = ignore_index, reduction

    def _forward(self, input, target):
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)

    def _backward(self, grad_output, input, target):
        return F.nll_loss_backward(grad_output, input, target, self.weight, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    """Mean squared error; see :func:`cnnbook.scratch.functional.mse_loss`."""

    def __init__(self, reduction="mean"):
        super().__init__()
        checks.check_reduction("MSELoss", reduction)
        self.reduction = reduction

    def _forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)

    def _backward(self, grad_output, input, target):
        return F.mse_loss_backward(grad_output, input, target, self.reduction)
