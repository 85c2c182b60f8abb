"""The machinery of :mod:`cnnbook.scratch.nn`: ``Parameter``, the ``Module`` base class
(registration, traversal, modes, ``state_dict``), ``no_grad``, and how a layer keeps what
its backward needs, call by call.

A layer's ``forward`` hands :func:`save_for_backward` what its ``backward`` will need (a
``backward`` function closing over it, or the arrays themselves); ``backward`` takes it back
with :func:`saved_for_backward`, last call first. Calls of one forward pass pile up, so a
layer used twice gets both gradients, added into its parameters' ``.grad`` with
:func:`accumulate_grad`; the first call of a new pass (an outermost module call) forgets the
previous pass's. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> p = Parameter(np.zeros(2))
>>> accumulate_grad(p, np.ones(2)); accumulate_grad(p, np.ones(2))
>>> p.grad
array([2., 2.])
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from . import checks

__all__ = ["Parameter", "Module", "no_grad", "save_for_backward", "saved_for_backward", "accumulate_grad",
           "uniform_init", "IncompatibleKeys"]

_GRAD_ENABLED = [True]
_CALL_DEPTH = [0]               # how many Module calls are running (nested) right now
_PASS = [0]                     # number of outermost Module calls so far: the forward pass's id
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class no_grad:
    """Context manager: forward passes inside it save nothing for backward (faster, less memory).

    >>> from cnnbook.scratch import nn
    >>> with no_grad():
    ...     y = nn.ReLU()(np.ones(3))
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


def accumulate_grad(param, grad):
    """Add ``grad`` to ``param.grad`` (which starts as None), as torch accumulates gradients."""
    if param.grad is None:
        param.grad = np.array(grad, dtype=param.data.dtype)
    else:
        param.grad += grad


def _rng(generator):
    """The generator to draw from: the given one, or NumPy's global random state."""
    return np.random if generator is None else generator


def uniform_init(generator, bound, shape, dtype):
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

    def __getstate__(self):
        """Pickle and ``copy.deepcopy`` copy the model, not what a forward pass saved for backward."""
        state = dict(self.__dict__)
        state.pop("_saved", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

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
        checks.check_bool(f"{type(self).__name__}.train", "mode", mode)
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


def save_for_backward(module, saved):
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


def saved_for_backward(module):
    """What the latest call of ``module`` not yet gone back through saved for its backward."""
    kept = module.__dict__.get("_saved")
    if not kept or not kept[1]:
        raise RuntimeError(f"{type(module).__name__}.backward: nothing saved from a forward pass; call the "
                           "layer first (outside no_grad()), and call backward once per forward call, in "
                           "reverse order")
    return kept[1].pop()
