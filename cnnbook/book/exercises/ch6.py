"""Checkers for the exercises of chapter 6 (Summary and outlook)."""
from __future__ import annotations

import copy
import functools
from typing import Callable

from cnnbook.book.exercises._core import Feedback, _a, _call, _number, _run, _torch_call

__all__ = ['check_separable_param_count', 'check_transfer_head']

def check_separable_param_count(fn: Callable) -> Feedback:
    """Check ``fn(in_channels, out_channels, kernel_size) -> int`` for a separable convolution.

    A depthwise-separable convolution (MobileNet) is a depthwise ``kernel_size`` convolution
    (``groups=in_channels``) followed by a 1×1 pointwise convolution, both without bias. The
    reference counts the parameters of those two ``torch.nn.Conv2d`` layers.
    """
    import torch

    grid = [(3, 16, 3), (32, 64, 3), (64, 128, 5), (16, 16, 7)]
    cases = [dict(in_channels=i, out_channels=o, kernel_size=k) for i, o, k in grid]

    def one(c):
        i, o, k = c["in_channels"], c["out_channels"], c["kernel_size"]
        got, problem = _number(_call(fn, i, o, k))
        if problem:
            return problem
        layers = [torch.nn.Conv2d(i, i, k, groups=i, bias=False), torch.nn.Conv2d(i, o, 1, bias=False)]
        expected = sum(p.numel() for layer in layers for p in layer.parameters())
        if got == expected:
            return None
        hints = [
            (i * o * k * k, "that is a standard convolution; split it into a depthwise and a 1×1 pointwise one"),
            (i * k * k, "you counted the depthwise part only: add the 1×1 pointwise convolution (in × out)"),
            (i * o, "you counted the pointwise part only: add the depthwise kernels (in × k × k)"),
            (i * i * k * k + i * o, "the depthwise convolution has groups=in_channels: one k×k kernel per channel"),
        ]
        for value, hint in hints:
            if value != expected and got == value:
                return f"returned {got!r}, expected {expected}: {hint}"
        return f"returned {got!r}, expected {expected}"

    return _run("check_separable_param_count", "a depthwise + pointwise torch.nn.Conv2d pair", cases, one)


@functools.lru_cache(maxsize=1)
def _resnet18():
    import torchvision

    return torchvision.models.resnet18(weights=None)


def check_transfer_head(fn: Callable) -> Feedback:
    """Check ``fn(model, num_classes) -> model`` that prepares a torchvision ResNet for transfer learning.

    Freeze every pre-trained parameter (``requires_grad = False``) and replace the last
    layer, ``model.fc``, by a new ``torch.nn.Linear`` with ``num_classes`` outputs (trainable).
    The checker builds ``torchvision.models.resnet18(weights=None)`` (no download).
    """
    import torch

    cases = [dict(num_classes=10), dict(num_classes=3)]

    def one(c):
        model = copy.deepcopy(_resnet18())
        in_features = model.fc.in_features
        got = _call(fn, model, c["num_classes"])
        if not isinstance(got, torch.nn.Module):
            return f"returned a {type(got).__name__}: return the model"
        fc = getattr(got, "fc", None)
        if not isinstance(fc, torch.nn.Linear) or fc.out_features != c["num_classes"]:
            return f"model.fc should be a Linear({in_features}, {c['num_classes']}) layer, got {fc}"
        if fc.in_features != in_features:
            return f"the new head takes {fc.in_features} inputs, but the backbone gives {in_features} features"
        frozen_head = [n for n, p in fc.named_parameters() if not p.requires_grad]
        if frozen_head:
            return "the new head is frozen too: create it after freezing, so its parameters train"
        trainable = [n for n, p in got.named_parameters() if p.requires_grad and not n.startswith("fc.")]
        if trainable:
            return (f"{len(trainable)} backbone parameters still train (e.g. {trainable[0]}): "
                    "set requires_grad = False on every parameter before replacing fc")
        y = _torch_call(got.eval(), torch.rand(2, 3, 64, 64))
        if not isinstance(y, torch.Tensor):
            return f"the model returned {_a(y)}, expected a tensor of scores"
        if not torch.isfinite(y).all():
            return "the scores contain NaN or infinity"
        return None if tuple(y.shape) == (2, c["num_classes"]) else f"output shape {tuple(y.shape)}, expected (2, {c['num_classes']})"

    return _run("check_transfer_head", "torchvision's resnet18: frozen backbone, new trainable head", cases, one)
