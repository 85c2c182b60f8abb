"""Classic CNN architectures sized for 28x28 grey images, a layer-by-layer summary, and weight init.

Every model takes NCHW input ``(N, in_channels, 28, 28)`` and returns raw class scores
(logits) ``(N, num_classes)``: PyTorch's :class:`torch.nn.CrossEntropyLoss` applies the
softmax itself, so no model ends in one.

- :class:`LeNet`: LeCun et al.'s LeNet-5 (1998), with ReLU and max pooling instead of the
  original tanh and subsampling.
- :class:`AlexNetStyle`: AlexNet's recipe (Krizhevsky et al., 2012) shrunk to 28x28:
  a large first kernel, five convolutions, three max-poolings, ReLU, dropout in the classifier.
- :class:`VGGStyle`: VGG's recipe (Simonyan & Zisserman, 2014): blocks of 3x3 'same'
  convolutions, each block ending in 2x2 max pooling.
- :class:`ResNetStyle`: ResNet's recipe (He et al., 2015): stages of :class:`BasicBlock`
  with identity shortcuts (1x1 projections where the shape changes), global average pooling.
  ``residual=False`` gives its *plain twin*: the same layers without the shortcuts.
- :class:`SmallCNN`: a configurable two-stage CNN for quick experiments.

Examples
--------
>>> LeNet()(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 10])
>>> count_parameters(LeNet())
61706
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnbook.pytorch.utils import check_module, eval_mode, format_table
from cnnbook.scratch import checks


def _check_positive(func: str, **kwargs) -> None:
    for name, value in kwargs.items():
        if not checks.is_int(value) or value < 1:
            raise ValueError(f"{func}: {name} must be a positive int, got {value!r}")


class LeNet(nn.Sequential):
    """LeNet-5 for 28x28 inputs (61,706 parameters with the defaults).

    conv 5x5 (pad 2) 6 -> ReLU -> maxpool 2 -> conv 5x5 16 -> ReLU -> maxpool 2
    -> flatten (16*5*5 = 400) -> fc 120 -> fc 84 -> fc ``num_classes``.

    Shape:
        input ``(N, in_channels, 28, 28)``; output ``(N, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        _check_positive("LeNet", in_channels=in_channels, num_classes=num_classes)
        super().__init__(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), nn.ReLU(),   # (N, 6, 28, 28)
            nn.MaxPool2d(2),                                                  # (N, 6, 14, 14)
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(),                       # (N, 16, 10, 10)
            nn.MaxPool2d(2),                                                  # (N, 16, 5, 5)
            nn.Flatten(),                                                     # (N, 400)
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )


class AlexNetStyle(nn.Sequential):
    """AlexNet's recipe at 28x28: 5x5 stem, five convolutions, three max-poolings, dropout.

    Parameters
    ----------
    width : int, default 16
        Channels of the first convolution; later ones use 2x and 3x this.
    dropout : float, default 0.5
        Dropout probability in the classifier, as in AlexNet.

    Shape:
        input ``(N, in_channels, 28, 28)`` -> 14 -> 7 -> 3 after the pools;
        output ``(N, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16,
                 hidden: int = 256, dropout: float = 0.5):
        _check_positive("AlexNetStyle", in_channels=in_channels, num_classes=num_classes,
                        width=width, hidden=hidden)
        w1, w2, w3 = width, 2 * width, 3 * width
        super().__init__(
            nn.Conv2d(in_channels, w1, kernel_size=5, padding=2), nn.ReLU(),  # (N, w1, 28, 28)
            nn.MaxPool2d(2),                                                  # (N, w1, 14, 14)
            nn.Conv2d(w1, w2, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                                  # (N, w2, 7, 7)
            nn.Conv2d(w2, w3, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(w3, w3, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(w3, w2, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                                  # (N, w2, 3, 3)
            nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(w2 * 3 * 3, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )


class VGGStyle(nn.Sequential):
    """VGG's recipe: blocks of 3x3 'same' convolutions, each block closed by 2x2 max pooling.

    Parameters
    ----------
    blocks : sequence of sequence of int, default ((16, 16), (32, 32))
        Output channels of the convolutions of each block. Each block halves H and W.
    batch_norm : bool, default False
        Insert :class:`torch.nn.BatchNorm2d` after each convolution (VGG-BN).
    hidden : int, default 128
        Width of the hidden fully connected layer.

    Shape:
        input ``(N, in_channels, 28, 28)``; after ``b`` blocks ``H = floor(28 / 2**b)``;
        output ``(N, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 blocks: Sequence[Sequence[int]] = ((16, 16), (32, 32)), batch_norm: bool = False,
                 hidden: int = 128, dropout: float = 0.5, input_size: int = 28):
        _check_positive("VGGStyle", in_channels=in_channels, num_classes=num_classes, hidden=hidden)
        if not blocks or any(len(b) == 0 for b in blocks):
            raise ValueError(f"VGGStyle: blocks must be a non-empty sequence of non-empty channel "
                             f"lists, got {blocks!r}")
        layers, c, size = [], in_channels, input_size
        for block in blocks:
            for out in block:
                layers.append(nn.Conv2d(c, out, kernel_size=3, padding=1))
                layers += [nn.BatchNorm2d(out)] if batch_norm else []
                layers.append(nn.ReLU())
                c = out
            layers.append(nn.MaxPool2d(2))
            size //= 2
        if size < 1:
            raise ValueError(f"VGGStyle: {len(blocks)} blocks halve {input_size}x{input_size} "
                             f"inputs to nothing; use at most {input_size.bit_length() - 1} blocks")
        layers += [nn.Flatten(), nn.Linear(c * size * size, hidden), nn.ReLU(),
                   nn.Dropout(dropout), nn.Linear(hidden, num_classes)]
        super().__init__(*layers)


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 'same' convolutions plus a shortcut, ``relu(F(x) + s(x))``.

    The shortcut ``s`` is the identity when the shape is unchanged, else a 1x1 convolution
    with the block's stride (a *projection*, 投影) so that ``F(x)`` and ``s(x)`` can be added.
    With ``residual=False`` there is no shortcut at all: ``relu(F(x))`` (the plain twin).

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int, default 1
        Stride of the first convolution (2 halves H and W).
    batch_norm : bool, default True
        Batch normalization after each convolution (and in the projection).
    residual : bool, default True

    Shape:
        input ``(N, in_channels, H, W)``; output ``(N, out_channels, H_out, W_out)`` with
        ``H_out = floor((H + 2*1 - 3) / stride) + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 batch_norm: bool = True, residual: bool = True):
        super().__init__()
        _check_positive("BasicBlock", in_channels=in_channels, out_channels=out_channels, stride=stride)
        norm = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not batch_norm)
        self.bn1 = norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=not batch_norm)
        self.bn2 = norm(out_channels)
        self.relu = nn.ReLU()
        self.residual = residual
        self.shortcut = nn.Identity()
        if residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=not batch_norm),
                norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)       # same shape by construction
        return self.relu(out)


class ResNetStyle(nn.Module):
    """A small ResNet: 3x3 stem, stages of :class:`BasicBlock`, global average pooling, fc.

    Parameters
    ----------
    stages : sequence of int, default (16, 32, 64)
        Channels of each stage; every stage after the first starts with stride 2.
    blocks_per_stage : int, default 1
        Basic blocks per stage (two convolutions each). Depth in conv layers:
        ``1 + 2 * blocks_per_stage * len(stages)`` (+ projections).
    residual : bool, default True
        False builds the plain twin: identical layers, no shortcuts.
    batch_norm : bool, default True
    stem_stride : int, default 1
        2 starts the network at 14x14 (four times cheaper).

    Shape:
        input ``(N, in_channels, H, W)``; output ``(N, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, stages: Sequence[int] = (16, 32, 64),
                 blocks_per_stage: int = 1, residual: bool = True, batch_norm: bool = True,
                 stem_stride: int = 1):
        super().__init__()
        _check_positive("ResNetStyle", in_channels=in_channels, num_classes=num_classes,
                        blocks_per_stage=blocks_per_stage, stem_stride=stem_stride)
        if not stages:
            raise ValueError(f"ResNetStyle: stages must list at least one channel count, got {stages!r}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stages[0], 3, stride=stem_stride, padding=1, bias=not batch_norm),
            nn.BatchNorm2d(stages[0]) if batch_norm else nn.Identity(), nn.ReLU())
        blocks, c = [], stages[0]
        for i, out in enumerate(stages):
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(c, out, stride, batch_norm=batch_norm, residual=residual))
                c = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))   # (N, C) -> (N, num_classes)


class SmallCNN(nn.Sequential):
    """A configurable CNN for quick experiments: ``len(channels)`` stages of conv-ReLU-pool, then fc.

    Each stage: conv 3x3 'same' -> [BatchNorm2d] -> ReLU -> maxpool 2. Then flatten ->
    [Dropout] -> fc ``hidden`` -> ReLU -> [Dropout] -> fc ``num_classes``.

    Parameters
    ----------
    channels : sequence of int, default (16, 32)
    hidden : int, default 64
    batch_norm : bool, default False
    dropout : float, default 0.0
        Dropout probability before each fully connected layer (0 disables it).

    Shape:
        input ``(N, in_channels, 28, 28)``; output ``(N, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: Sequence[int] = (16, 32),
                 hidden: int = 64, batch_norm: bool = False, dropout: float = 0.0, input_size: int = 28):
        _check_positive("SmallCNN", in_channels=in_channels, num_classes=num_classes, hidden=hidden)
        if isinstance(channels, str) or not isinstance(channels, Sequence) or not channels:
            raise ValueError(f"SmallCNN: channels must list at least one channel count, got {channels!r}")
        _check_positive("SmallCNN", **{f"channels[{i}]": c for i, c in enumerate(channels)})
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"SmallCNN: dropout must be in [0, 1), got {dropout}")
        layers, c, size = [], in_channels, input_size
        for out in channels:
            layers.append(nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm))
            layers += [nn.BatchNorm2d(out)] if batch_norm else []
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            c, size = out, size // 2
        drop = [nn.Dropout(dropout)] if dropout > 0 else []
        layers += [nn.Flatten(), *drop, nn.Linear(c * size * size, hidden), nn.ReLU(),
                   *drop, nn.Linear(hidden, num_classes)]
        super().__init__(*layers)


# ----------------------------------------------------------------------------- summary

@dataclass
class ModelSummary:
    """Rows ``(layer name, type, output shape, parameters)`` and the totals; prints as a table."""

    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    input_size: tuple = ()

    def __str__(self) -> str:
        body = [(n, t, tuple(s) if s != "?" else s, f"{p:,}") for n, t, s, p in self.rows]
        table = format_table(("Layer", "Type", "Output shape", "Param #"), body, align="lllr")
        rule = table.splitlines()[1]
        return "\n".join([f"input: {tuple(self.input_size)}", table, rule,
                          f"Total params: {self.total_params:,}",
                          f"Trainable params: {self.trainable_params:,}"])

    __repr__ = __str__


def _selected_modules(model: nn.Module, depth: int | None):
    """Leaves (modules without children) or, with ``depth``, modules at that nesting depth."""
    for name, module in model.named_modules():
        if module is model:
            continue
        level = name.count(".") + 1
        is_leaf = next(module.children(), None) is None
        if (depth is None and is_leaf) or (depth is not None and (level == depth or (is_leaf and level < depth))):
            yield name, module


def summary(model: nn.Module, input_size: Sequence[int], depth: int | None = None,
            device=None) -> ModelSummary:
    """Run one dummy batch through ``model`` and tabulate each layer's output shape and parameters.

    Like Keras' ``model.summary()``, computed with forward hooks, in call order.

    Parameters
    ----------
    model : torch.nn.Module
    input_size : sequence of int
        Shape of one input batch, e.g. ``(1, 1, 28, 28)``; a 3-tuple ``(C, H, W)`` gets batch 1.
    depth : int, optional
        Show modules at this nesting depth (1 = the model's direct children) instead of the
        leaves; a row then counts all parameters inside its module.
    device : torch.device, optional
        Default: the device of the model's first parameter (CPU if none).

    Returns
    -------
    ModelSummary
        ``.rows`` is a list of ``(name, type, output shape, parameter count)``; ``str()`` is the table.
    """
    check_module(model, "summary")
    size = tuple(int(s) for s in input_size)
    if len(size) == 3:
        size = (1, *size)
    if len(size) < 2:
        raise ValueError(f"summary: input_size must be (N, C, H, W) or (C, H, W), got {tuple(input_size)}")
    if depth is not None and depth < 1:
        raise ValueError(f"summary: depth must be None or >= 1, got {depth}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    rows, seen, hooks = [], set(), []

    def hook_for(name):
        def hook(module, inputs, output):
            recurse = depth is not None
            params = [p for p in module.parameters(recurse=recurse) if id(p) not in seen]
            seen.update(id(p) for p in params)
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else "?"
            rows.append((name, type(module).__name__, shape, sum(p.numel() for p in params)))
        return hook

    for name, module in _selected_modules(model, depth):
        hooks.append(module.register_forward_hook(hook_for(name)))
    try:
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(size, device=device))
    finally:
        for h in hooks:
            h.remove()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelSummary(rows, total, trainable, size)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    check_module(model, "count_parameters")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------- initialization

INIT_SCHEMES = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal", "zeros")


def init_weights(model: nn.Module, scheme: str = "kaiming_normal", nonlinearity: str = "relu",
                 std: float = 0.01) -> nn.Module:
    """Re-initialize every convolution and linear layer of ``model`` in place; return ``model``.

    Weights follow ``scheme`` and biases are set to zero; batch-norm layers get weight 1,
    bias 0. (PyTorch's own default for ``Conv2d``/``Linear`` is ``kaiming_uniform_`` with
    ``a=sqrt(5)``, i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.)

    Parameters
    ----------
    scheme : {"kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal", "zeros"}
        "kaiming_*" (He et al., 2015) keeps the variance of ReLU activations constant
        across layers (std ``sqrt(2 / fan_in)``); "xavier_*" (Glorot & Bengio, 2010) suits
        tanh/sigmoid; "normal" draws N(0, ``std``**2); "zeros" shows why symmetric
        initialization fails (every unit of a layer then stays identical).
    nonlinearity : str, default "relu"
        Passed to the Kaiming initializers (and to the Xavier gain).
    std : float, default 0.01
        Standard deviation of the "normal" scheme.
    """
    check_module(model, "init_weights")
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init_weights: scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            if scheme.startswith("kaiming"):
                getattr(nn.init, scheme + "_")(m.weight, nonlinearity=nonlinearity)
            elif scheme.startswith("xavier"):
                gain = nn.init.calculate_gain(nonlinearity) if nonlinearity in ("relu", "tanh", "sigmoid") else 1.0
                getattr(nn.init, scheme + "_")(m.weight, gain=gain)
            elif scheme == "normal":
                nn.init.normal_(m.weight, 0.0, std)
            else:
                nn.init.zeros_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def activation_stds(model: nn.Module, x: torch.Tensor, layer_type: type = nn.ReLU) -> list:
    """Standard deviation of the output of every ``layer_type`` module, for one batch ``x``.

    A quick diagnostic of initialization: with a good scheme the values stay of the same
    order from the first layer to the last; with a bad one they shrink towards 0 or explode.

    Returns
    -------
    list of (name, float)
        In call order.
    """
    check_module(model, "activation_stds")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"activation_stds: x must be a torch.Tensor batch, got {type(x).__name__}")
    stds, hooks = [], []
    for name, m in model.named_modules():
        if isinstance(m, layer_type):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: stds.append((name, out.float().std().item()))))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return stds
