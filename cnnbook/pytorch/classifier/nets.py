"""Chapter 5's networks: the plain CNN of the CPU configuration, the residual one of the GPU configuration."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from cnnbook.pytorch.models import ResNetStyle


class FashionCNN(nn.Sequential):
    """A plain CNN for 28x28 images: stages of conv 3x3 -> max-pool 2 -> batch norm -> ReLU, then an MLP.

    Pooling comes right after the convolution, before batch norm and ReLU: max-pooling commutes
    with ReLU and (for a positive scale) with batch norm's per-channel affine map, so the
    result is nearly the same as the usual conv -> BN -> ReLU -> pool, while batch norm and
    ReLU touch four times fewer values. On a CPU, where these memory-bound layers cost as much
    as the convolutions, that saves about a quarter of the training time.

    Parameters
    ----------
    channels : sequence of int, default (32, 64)
        Output channels of each stage; each stage halves H and W.
    hidden : int, default 128
        Width of the hidden fully connected layer.
    num_classes : int, default 10
    in_channels : int, default 1
    input_size : int, default 28
        Height (= width) of the input images.
    batch_norm : bool, default True
        False drops the batch-norm layers (and gives the convolutions a bias).
    dropout : float, default 0
        Dropout probability before each fully connected layer (0: none).

    Shape:
        input ``(N, in_channels, input_size, input_size)``; output ``(N, num_classes)``.
        After stage ``i`` the maps are ``(N, channels[i], S_i, S_i)``, ``S_i = floor(S_{i-1} / 2)``.

    Examples
    --------
    >>> import torch
    >>> FashionCNN()(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, channels: Sequence[int] = (32, 64), hidden: int = 128, num_classes: int = 10,
                 in_channels: int = 1, input_size: int = 28, batch_norm: bool = True, dropout: float = 0.0):
        if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"FashionCNN: channels must be positive ints, got {channels!r}")
        if input_size >> len(channels) < 1:
            raise ValueError(f"FashionCNN: {len(channels)} stages halve a {input_size}x{input_size} "
                             "image to nothing; use fewer stages")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"FashionCNN: dropout must be in [0, 1), got {dropout!r}")
        layers, c, size = OrderedDict(), in_channels, input_size
        for i, out in enumerate(channels, start=1):
            layers[f"conv{i}"] = nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm)
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            if batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm2d(out)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            c, size = out, size // 2
        layers["flatten"] = nn.Flatten()                                # (N, c * size * size)
        if dropout:
            layers["drop1"] = nn.Dropout(dropout)
        layers["fc1"] = nn.Linear(c * size * size, hidden)
        layers["relu_fc"] = nn.ReLU(inplace=True)
        if dropout:
            layers["drop2"] = nn.Dropout(dropout)
        layers["fc2"] = nn.Linear(hidden, num_classes)
        super().__init__(layers)


class FashionResNet(ResNetStyle):
    """The GPU configuration's residual network: :class:`cnnbook.pytorch.models.ResNetStyle`
    with the chapter's argument order and defaults (three stages of two blocks, 64 to 256 channels).

    Parameters
    ----------
    channels : sequence of int, default (64, 128, 256)
        Channels of each stage (``ResNetStyle``'s ``stages``).
    blocks_per_stage : int, default 2
    num_classes, in_channels : int, default 10, 1

    Shape:
        input ``(N, in_channels, H, W)``; output ``(N, num_classes)``; stage ``i`` works at
        ``H_i = ceil(H / 2**i)``.
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 256), blocks_per_stage: int = 2,
                 num_classes: int = 10, in_channels: int = 1):
        if not channels or not isinstance(blocks_per_stage, int) or blocks_per_stage < 1:
            raise ValueError(f"FashionResNet: need at least one stage and one block per stage, got "
                             f"channels={channels!r}, blocks_per_stage={blocks_per_stage!r}")
        super().__init__(in_channels, num_classes, stages=tuple(channels), blocks_per_stage=blocks_per_stage)
