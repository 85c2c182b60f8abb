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
The machinery lives in :mod:`cnnbook.scratch.module`, the layers in
:mod:`cnnbook.scratch.layers`; this module gathers them and adds ``Sequential`` and the losses.
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

import numpy as np

from . import checks, functional as F
from .layers import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, LeakyReLU, Linear, MaxPool2d,
                     ReLU, Sigmoid, Tanh)
from .module import IncompatibleKeys, Module, Parameter, no_grad, save_for_backward, saved_for_backward

__all__ = ["Parameter", "Module", "no_grad", "IncompatibleKeys", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU",
           "LeakyReLU", "Sigmoid", "Tanh", "Flatten", "Linear", "BatchNorm1d", "BatchNorm2d", "Dropout",
           "Sequential", "CrossEntropyLoss", "NLLLoss", "MSELoss"]


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
        input, target = saved_for_backward(self)
        return self._backward(grad_output, input, target)

    def forward(self, input, target):
        loss = self._forward(input, target)
        save_for_backward(self, (input, target))
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
