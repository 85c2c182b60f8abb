"""Chapter 5's Fashion-MNIST classifier: data, model, named configurations, one training call.

Everything the chapter trains goes through :func:`train_classifier`, which builds the model of
a :class:`ClassifierConfig` and trains it with :func:`cnnbook.pytorch.train.fit` (validation every
epoch, best checkpoint kept). It never looks at the test set: every choice is made on the
validation split, and :func:`score_classifier` scores a finished model, single-view and with
test-time augmentation, on whichever split it is given (the test set once, at the end). The
benchmark (``benchmarks/bench_classifier.py``) calls the same functions, so the notebook and
the benchmark measure the same thing.

- :func:`prepare_data`: the train / validation / test split as normalized tensors, optionally
  restricted to a few classes (relabelled ``0..k-1``).
- :func:`random_shift_flip` / :class:`RandomShiftFlip`: batch-wise augmentation on tensors:
  every image shifted by its own whole number of pixels and mirrored with probability 1/2.
- :class:`FashionCNN`: the plain CNN of the CPU configuration; :class:`FashionResNet`: the
  wider residual network of the GPU configuration.
- :data:`CONFIGS`: ``"cpu"`` (at least 92.5% single-view test accuracy within 180 s on a 2-core
  CPU) and ``"gpu"`` (at least 95.0% within 30 s on a CUDA GPU).
- :func:`ablation_steps`: the improvement table's rows, from a plain baseline to a
  configuration, one change per row.
- :func:`predict_proba`: class probabilities, optionally averaged with the mirrored images
  (*test-time augmentation*).
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnbook.pytorch.data import CLASSES, load_tensors
from cnnbook.pytorch.models import BasicBlock
from cnnbook.pytorch.train import History, ModelCheckpoint, TensorLoader, fit, load_weights
from cnnbook.pytorch.utils import seed_everything

# ============================================================================ data


@dataclass
class FashionData:
    """Normalized Fashion-MNIST tensors, split into training, validation and test sets.

    Attributes
    ----------
    x_train, x_val, x_test : torch.Tensor
        Images ``(N, 1, 28, 28)``, float32, normalized with the training set's ``mean`` and ``std``.
    y_train, y_val, y_test : torch.Tensor
        Labels ``(N,)``, int64, in ``0 .. len(classes) - 1``.
    classes : tuple of str
        The class names, in label order.
    mean, std : float
        Pixel mean and standard deviation of the training images in [0, 1] (before normalizing).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple
    mean: float
    std: float

    @property
    def fill(self) -> float:
        """The normalized value of a black pixel (what shifted-in borders are filled with)."""
        return -self.mean / self.std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Back to pixel values in [0, 1]: ``x * std + mean``."""
        return x * self.std + self.mean


def _class_subset(images, labels, classes):
    """Keep the images of ``classes`` (names) and relabel them ``0 .. len(classes) - 1``."""
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"prepare_data: unknown classes {unknown}; Fashion-MNIST has {list(CLASSES)}")
    old = torch.tensor([CLASSES.index(c) for c in classes])
    keep = torch.isin(labels, old)
    new_label = torch.full((len(CLASSES),), -1, dtype=torch.long)
    new_label[old] = torch.arange(len(classes))
    return images[keep], new_label[labels[keep]]


def prepare_data(val_size: int = 5000, classes: Sequence[str] | None = None, split_seed: int = 0,
                 root=None) -> FashionData:
    """Load Fashion-MNIST, hold out a validation set, normalize with the training statistics.

    Parameters
    ----------
    val_size : int, default 5000
        Training images held out for validation (chosen at random with ``split_seed``);
        with ``classes``, the same fraction of the kept images is held out.
    classes : sequence of str, optional
        Keep only these classes (names from :data:`cnnbook.pytorch.data.CLASSES`), relabelled in the
        order given. Default: all ten.
    split_seed : int, default 0
        Seed of the random split (independent of the training seed).
    root : path, optional
        Data folder, as in :func:`cnnbook.pytorch.data.load_tensors`.

    Returns
    -------
    FashionData

    Shape:
        ``x_train (N_train, 1, 28, 28)`` with ``N_train = 60000 - val_size`` for ten classes;
        ``x_test (10000, 1, 28, 28)``.
    """
    x, y = load_tensors(train=True, root=root)
    x_test, y_test = load_tensors(train=False, root=root)
    if not isinstance(val_size, int) or not 0 < val_size < len(x):
        raise ValueError(f"prepare_data: val_size must be an int in (0, {len(x)}), got {val_size!r}")
    if classes is not None:
        classes = tuple(classes)
        val_size = round(val_size * sum(int((y == CLASSES.index(c)).sum()) for c in classes
                                        if c in CLASSES) / len(x))
        x, y = _class_subset(x, y, classes)
        x_test, y_test = _class_subset(x_test, y_test, classes)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    val, train = order[:val_size], order[val_size:]
    mean, std = x[train].mean().item(), x[train].std().item()
    norm = lambda t: (t - mean) / std  # noqa: E731
    return FashionData(norm(x[train]), y[train], norm(x[val]), y[val], norm(x_test), y_test,
                       classes or CLASSES, mean, std)


def random_shift_flip(x: torch.Tensor, max_shift: int = 2, hflip_p: float = 0.5, fill: float = 0.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image of a batch by its own random whole number of pixels; mirror some.

    The batch version of ``RandomCrop(H, padding=max_shift, fill=fill)`` followed by
    ``RandomHorizontalFlip(hflip_p)``: pad by ``max_shift`` pixels of value ``fill``, then cut
    each image's ``H x W`` window at its own offset in ``[0, 2*max_shift]``. Whole-pixel shifts
    keep the images sharp (no interpolation), and one indexing operation does the whole batch.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(N, C, H, W)``.
    max_shift : int, default 2
        Largest shift in pixels, up, down, left or right (0: no shift).
    hflip_p : float, default 0.5
        Probability that an image is mirrored left-right.
    fill : float, default 0
        Value of the pixels shifted in from outside (the normalized black, for example).
    generator : torch.Generator, optional
        A CPU generator for the random shifts and flips; default: torch's global random state
        on the images' device.

    Shape:
        input and output ``(N, C, H, W)``.
    """
    if x.ndim != 4:
        raise ValueError(f"random_shift_flip: x must be a batch (N, C, H, W), got shape {tuple(x.shape)}")
    if not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"random_shift_flip: max_shift must be an int >= 0, got {max_shift!r}")
    n, _, h, w = x.shape
    # Draw on the images' device unless a (CPU) generator is given: no copy, no GPU sync per batch.
    where = {"generator": generator} if generator is not None else {"device": x.device}
    flip = (torch.rand(n, **where) < hflip_p).to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if max_shift == 0:
        return x
    p = max_shift
    padded = F.pad(x, (p, p, p, p), value=fill)                             # (N, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * p + 1, (n, 1), **where).to(x.device)
    dx = torch.randint(0, 2 * p + 1, (n, 1), **where).to(x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]         # (N, 1, H, 1)
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]         # (N, 1, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]                                  # (N, C, H, W)


@dataclass
class RandomShiftFlip:
    """:func:`random_shift_flip` as a callable, for ``TensorLoader(transform=...)``."""

    max_shift: int = 2
    hflip_p: float = 0.5
    fill: float = 0.0
    generator: torch.Generator | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return random_shift_flip(x, self.max_shift, self.hflip_p, self.fill, self.generator)


# ============================================================================ models


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


class FashionResNet(nn.Module):
    """A wider residual network for 28x28 images (the GPU configuration).

    A 3x3 stem, then stages of :class:`cnnbook.pytorch.models.BasicBlock` (each stage after the first
    halves H and W), global average pooling and a linear classifier.

    Parameters
    ----------
    channels : sequence of int, default (64, 128, 256)
        Channels of each stage.
    blocks_per_stage : int, default 2
    num_classes, in_channels : int, default 10, 1

    Shape:
        input ``(N, in_channels, H, W)``; output ``(N, num_classes)``; stage ``i`` works at
        ``H_i = ceil(H / 2**i)``.
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 256), blocks_per_stage: int = 2,
                 num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        if not channels or blocks_per_stage < 1:
            raise ValueError(f"FashionResNet: need at least one stage and one block per stage, got "
                             f"channels={channels!r}, blocks_per_stage={blocks_per_stage!r}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
        blocks, c = [], channels[0]
        for i, out in enumerate(channels):
            for j in range(blocks_per_stage):
                blocks.append(BasicBlock(c, out, stride=2 if (i > 0 and j == 0) else 1))
                c = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x)))         # (N, C, 1, 1)
        return self.fc(torch.flatten(x, 1))              # (N, num_classes)


# ============================================================================ configurations


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything that defines one training run of the chapter's classifier.

    A frozen dataclass: ``dataclasses.replace(config, epochs=3)`` makes a variant, and a
    misspelt field name raises ``TypeError`` instead of being ignored.

    Attributes
    ----------
    name : str
    architecture : {"cnn", "resnet"}
        :class:`FashionCNN` or :class:`FashionResNet`.
    channels : tuple of int
        Per-stage channels of the network.
    hidden : int
        Hidden fully connected width (``"cnn"`` only).
    blocks_per_stage : int
        Residual blocks per stage (``"resnet"`` only).
    batch_norm : bool
        Batch normalization in the ``"cnn"`` (the residual network always has it).
    dropout : float
        Dropout before the fully connected layers (``"cnn"`` only).
    epochs, batch_size : int
    lr : float
        Peak learning rate of SGD with Nesterov momentum.
    schedule : {"onecycle", "constant"}
        ``"onecycle"``: :class:`torch.optim.lr_scheduler.OneCycleLR`, stepped every batch.
    momentum, weight_decay : float
        Weight decay applies to weights, not to biases or batch-norm parameters.
    label_smoothing : float
        As in :class:`torch.nn.CrossEntropyLoss`.
    max_shift, hflip_p : int, float
        Augmentation (:func:`random_shift_flip`); ``max_shift=0, hflip_p=0`` turns it off.
    tta_shift : int
        Test-time augmentation in :func:`score_classifier` averages the image, its mirror image
        and, if ``tta_shift > 0``, both shifted by this many pixels up, down, left and right
        (ten views in all).
    val_size : int
        Training images held out for validation.
    device : {"cpu", "cuda"}
        Where the configuration is meant to run.
    channels_last : bool
        NHWC memory layout (faster convolutions on CPUs and on tensor cores).
    amp_dtype : {None, "bfloat16", "float16"}
        Mixed precision for the forward pass (``torch.autocast``).
    target_accuracy, budget_seconds : float
        What the configuration promises: single-view test accuracy at least ``target_accuracy``
        within ``budget_seconds`` of training.
    """

    name: str
    architecture: str = "cnn"
    channels: tuple = (32, 64)
    hidden: int = 128
    blocks_per_stage: int = 2
    batch_norm: bool = True
    dropout: float = 0.0
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.2
    schedule: str = "onecycle"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    max_shift: int = 2
    hflip_p: float = 0.5
    tta_shift: int = 1
    val_size: int = 5000
    device: str = "cpu"
    channels_last: bool = True
    amp_dtype: str | None = None
    target_accuracy: float = 0.925
    budget_seconds: float = 180.0


CONFIGS = {
    # A 2-core CPU without bfloat16 hardware: float32, channels_last, a plain CNN whose
    # 28x28 layers are few and narrow; eight epochs of one-cycle SGD, gentle augmentation
    # (one-pixel shifts), ten-view test-time augmentation.
    "cpu": ClassifierConfig(name="cpu", architecture="cnn", channels=(32, 64), hidden=128,
                            epochs=8, batch_size=256, lr=0.2, max_shift=1, tta_shift=1,
                            device="cpu", target_accuracy=0.925, budget_seconds=180.0),
    # A CUDA GPU: a wider residual network, large batches, bfloat16 autocast, more epochs.
    "gpu": ClassifierConfig(name="gpu", architecture="resnet", channels=(64, 128, 256),
                            blocks_per_stage=2, epochs=24, batch_size=512, lr=0.4, max_shift=2,
                            tta_shift=1, device="cuda", amp_dtype="bfloat16",
                            target_accuracy=0.950, budget_seconds=30.0),
}


def build_model(config: ClassifierConfig, num_classes: int = 10) -> nn.Module:
    """The untrained network of ``config`` (weights from torch's current random state)."""
    if config.architecture == "cnn":
        return FashionCNN(config.channels, config.hidden, num_classes,
                          batch_norm=config.batch_norm, dropout=config.dropout)
    if config.architecture == "resnet":
        return FashionResNet(config.channels, config.blocks_per_stage, num_classes)
    raise ValueError(f"build_model: architecture must be 'cnn' or 'resnet', got {config.architecture!r}")


def ablation_steps(config: ClassifierConfig, baseline_lr: float = 0.05) -> dict:
    """The improvement table's rows: from a plain baseline to ``config``, one change per row.

    The baseline is ``config`` without batch norm, with a constant learning rate
    ``baseline_lr``, no label smoothing and no augmentation. Each later row changes one field
    group of the row before it; the last row equals ``config`` (everything but the changed
    fields, epochs included, is ``config``'s).

    Returns
    -------
    dict of str -> ClassifierConfig
        Six rows, in order: ``"baseline"``, ``"+ batch norm"``, ``"+ peak rate"`` (constant
        ``config.lr``), ``"+ one-cycle schedule"``, ``"+ label smoothing"``,
        ``"+ shifts and mirrors"``.
    """
    if config.architecture != "cnn" or not config.batch_norm:
        raise ValueError(f"ablation_steps: config must be a 'cnn' with batch_norm=True, got "
                         f"architecture={config.architecture!r}, batch_norm={config.batch_norm!r}")
    row = dataclasses.replace(config, batch_norm=False, schedule="constant", lr=baseline_lr,
                              label_smoothing=0.0, max_shift=0, hflip_p=0.0)
    changes = [("+ batch norm", dict(batch_norm=True)), ("+ peak rate", dict(lr=config.lr)),
               ("+ one-cycle schedule", dict(schedule=config.schedule)),
               ("+ label smoothing", dict(label_smoothing=config.label_smoothing)),
               ("+ shifts and mirrors", dict(max_shift=config.max_shift, hflip_p=config.hflip_p))]
    steps = {"baseline": row}
    for name, change in changes:
        steps[name] = row = dataclasses.replace(row, **change)
    return steps


def make_optimizer(model: nn.Module, config: ClassifierConfig, steps_per_epoch: int):
    """SGD with Nesterov momentum (weight decay on weights only) and its learning-rate schedule.

    Returns
    -------
    (torch.optim.SGD, scheduler or None)
        The one-cycle scheduler must be stepped after every batch.
    """
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]          # biases, batch-norm scales
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    if config.schedule == "constant":
        return optimizer, None
    if config.schedule != "onecycle":
        raise ValueError(f"make_optimizer: schedule must be 'onecycle' or 'constant', got {config.schedule!r}")
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch)
    return optimizer, scheduler


def _resolve_device(config: ClassifierConfig, device) -> torch.device:
    device = torch.device(device if device is not None else config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train_classifier: configuration {config.name!r} wants device 'cuda', "
                         "but CUDA is not available here; pass device='cpu' to run it on the CPU anyway")
    return device


# ============================================================================ training and scoring


def shift_image(x: torch.Tensor, dy: int, dx: int, fill: float = 0.0) -> torch.Tensor:
    """Move every image of a batch ``dy`` pixels down and ``dx`` pixels right, filling with ``fill``.

    Shape:
        input and output ``(N, C, H, W)``; negative ``dy``/``dx`` move up/left.
    """
    if dy == 0 and dx == 0:
        return x
    s = max(abs(dy), abs(dx))
    h, w = x.shape[-2:]
    padded = F.pad(x, (s, s, s, s), value=fill)                         # (N, C, H+2s, W+2s)
    return padded[..., s - dy:s - dy + h, s - dx:s - dx + w]


def tta_views(x: torch.Tensor, flip: bool = True, shift: int = 0, fill: float = 0.0) -> list:
    """The views averaged by test-time augmentation: the images, shifted by ``shift`` pixels
    in each of four directions (if ``shift``), each also mirrored (if ``flip``).

    Returns
    -------
    list of torch.Tensor
        ``(1 + 4*[shift > 0]) * (1 + flip)`` batches shaped like ``x``, the original first.
    """
    offsets = [(0, 0)] + ([(shift, 0), (-shift, 0), (0, shift), (0, -shift)] if shift else [])
    views = []
    for dy, dx in offsets:
        v = shift_image(x, dy, dx, fill)
        views += [v, v.flip(3)] if flip else [v]
    return views


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, tta: bool = False, tta_shift: int = 0,
                  fill: float = 0.0, batch_size: int = 1000, channels_last: bool = False,
                  amp_dtype=None) -> torch.Tensor:
    """Class probabilities for images ``x``, in eval mode, optionally with test-time augmentation.

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor
        Images ``(N, C, H, W)``, prepared as for training (normalized).
    tta : bool, default False
        Average the softmax outputs over :func:`tta_views`: the image and its mirror image,
        and with ``tta_shift`` the four shifted copies of each.
    tta_shift : int, default 0
    fill : float, default 0
        Value shifted in at the borders (the normalized black, :attr:`FashionData.fill`).
    batch_size : int, default 1000
    channels_last : bool, default False
    amp_dtype : torch.dtype or str, optional

    Shape:
        ``x (N, C, H, W)`` -> ``(N, num_classes)`` float32 on the CPU.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    dtype = getattr(torch, amp_dtype) if isinstance(amp_dtype, str) else amp_dtype
    out = []
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            views = tta_views(xb, flip=True, shift=tta_shift, fill=fill) if tta else [xb]
            p = 0
            for v in views:
                if channels_last:
                    v = v.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    p = p + model(v).float().softmax(1)
            out.append((p / len(views)).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


@dataclass
class Scores:
    """Accuracy of a trained network on one split, single-view and with test-time augmentation.

    Attributes
    ----------
    accuracy, accuracy_tta : float
        Share of correct predictions from the image alone, and from the average over
        :func:`tta_views`.
    probs, probs_tta : torch.Tensor
        The class probabilities behind them, ``(N, num_classes)``.
    """

    accuracy: float
    accuracy_tta: float
    probs: torch.Tensor
    probs_tta: torch.Tensor


def score_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: ClassifierConfig,
                     fill: float = 0.0) -> Scores:
    """Score a trained network on images ``x`` with labels ``y``: single view and with TTA.

    Call it on the validation split to choose, on the test split once, for the final model.

    Parameters
    ----------
    model : torch.nn.Module
    x, y : torch.Tensor
        Normalized images ``(N, C, H, W)`` and labels ``(N,)``.
    config : ClassifierConfig
        Gives ``tta_shift``, ``channels_last`` and ``amp_dtype``.
    fill : float, default 0
        The normalized black (:attr:`FashionData.fill`), shifted in by the TTA views.
    """
    if len(x) != len(y):
        raise ValueError(f"score_classifier: got {len(x)} images but {len(y)} labels")
    kw = dict(channels_last=config.channels_last, amp_dtype=config.amp_dtype)
    probs = predict_proba(model, x, **kw)
    probs_tta = predict_proba(model, x, tta=True, tta_shift=config.tta_shift, fill=fill, **kw)
    y = y.cpu()
    accuracy = lambda p: (p.argmax(1) == y).float().mean().item()  # noqa: E731
    return Scores(accuracy(probs), accuracy(probs_tta), probs, probs_tta)


@dataclass
class ClassifierRun:
    """The outcome of :func:`train_classifier`.

    Attributes
    ----------
    config : ClassifierConfig
    seed : int
    model : torch.nn.Module
        The trained network with the weights of its best validation epoch, on ``device``.
    history : cnnbook.pytorch.train.History
    train_seconds : float
        Wall-clock time of :func:`cnnbook.pytorch.train.fit` (the epochs and their validation passes).
    best_epoch : int
        Epoch of the highest validation accuracy (the checkpoint that was reloaded).
    val_accuracy : float
        Single-view validation accuracy of that epoch.
    device : torch.device
    """

    config: ClassifierConfig
    seed: int
    model: nn.Module
    history: History
    train_seconds: float
    best_epoch: int
    val_accuracy: float
    device: torch.device


def train_classifier(config: ClassifierConfig, seed: int = 0, data: FashionData | None = None,
                     device=None, checkpoint=None, progress: bool | str = True) -> ClassifierRun:
    """Train ``config``'s network from scratch on ``data`` and keep its best validation epoch.

    The test images are not touched: score the finished model with :func:`score_classifier`.

    Parameters
    ----------
    config : ClassifierConfig
        For example ``CONFIGS["cpu"]`` or a ``dataclasses.replace`` of it.
    seed : int, default 0
        Seeds the initial weights, the shuffling and the augmentation.
    data : FashionData, optional
        Default: ``prepare_data(config.val_size)`` (all ten classes).
    device : str or torch.device, optional
        Default: ``config.device``; raises ``ValueError`` if that is CUDA and there is none.
    checkpoint : path, optional
        File for the best weights (``state_dict``); default: a temporary file, deleted afterwards.
    progress : bool or "batch", default True
        Progress bars of :func:`cnnbook.pytorch.train.fit`.

    Returns
    -------
    ClassifierRun
    """
    if not isinstance(config, ClassifierConfig):
        raise TypeError(f"train_classifier: config must be a ClassifierConfig (e.g. CONFIGS['cpu']), "
                        f"got {type(config).__name__}")
    device = _resolve_device(config, device)
    data = data if data is not None else prepare_data(config.val_size)
    seed_everything(seed)
    model = build_model(config, num_classes=len(data.classes))
    augment = RandomShiftFlip(config.max_shift, config.hflip_p, data.fill)
    train_loader = TensorLoader(data.x_train, data.y_train, batch_size=config.batch_size, shuffle=True,
                                transform=augment, device=device)
    val_loader = TensorLoader(data.x_val, data.y_val, batch_size=1000, device=device)
    optimizer, scheduler = make_optimizer(model, config, len(train_loader))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    amp = getattr(torch, config.amp_dtype) if config.amp_dtype else None
    benchmark_before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"     # fixed shapes: let cuDNN pick its kernels
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(checkpoint) if checkpoint is not None else Path(tmp) / "best.pt"
        saver = ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
        start = time.perf_counter()
        try:
            history = fit(model, train_loader, optimizer, loss_fn, config.epochs, val_loader=val_loader,
                          callbacks=[saver], scheduler=scheduler, scheduler_step="batch", device=device,
                          amp_dtype=amp, channels_last=config.channels_last, progress=progress)
            if device.type == "cuda":
                torch.cuda.synchronize()
        finally:
            torch.backends.cudnn.benchmark = benchmark_before
        seconds = time.perf_counter() - start
        load_weights(model, path)
    best_epoch, val_accuracy = history.best("val_accuracy")
    return ClassifierRun(config, seed, model, history, seconds, best_epoch, val_accuracy, device)


def most_confused_pairs(cm, class_names: Sequence[str] | None = None, k: int = 5) -> list:
    """The ``k`` largest off-diagonal entries of a confusion matrix, largest first.

    Parameters
    ----------
    cm : array (C, C)
        ``cm[i, j]`` counts samples of true class ``i`` predicted as ``j``.
    class_names : sequence of str, optional
    k : int, default 5

    Returns
    -------
    list of (true, predicted, count)
        Names when ``class_names`` is given, else indices.
    """
    cm = torch.as_tensor(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"most_confused_pairs: cm must be square (C, C), got shape {tuple(cm.shape)}")
    off = cm.clone()
    off.fill_diagonal_(-1)
    values, flat = off.flatten().topk(min(k, cm.shape[0] * (cm.shape[0] - 1)))
    c = cm.shape[0]
    name = (lambda i: class_names[i]) if class_names is not None else (lambda i: i)  # noqa: E731
    return [(name(int(f) // c), name(int(f) % c), int(v)) for v, f in zip(values, flat)]


def config_table(configs=None) -> str:
    """A plain-text table of the named configurations (one column each)."""
    configs = configs or CONFIGS
    fields = [f.name for f in dataclasses.fields(ClassifierConfig) if f.name != "name"]
    names = list(configs)
    width = max(len(f) for f in fields)
    col = max(14, *(len(str(getattr(c, f))) for c in configs.values() for f in fields))
    rows = [" " * width + "  " + "  ".join(n.rjust(col) for n in names)]
    rows += [f.ljust(width) + "  " + "  ".join(str(getattr(configs[n], f)).rjust(col) for n in names)
             for f in fields]
    return "\n".join(rows)


def show_predictions(images, labels, probs, class_names: Sequence[str], ncols: int = 8,
                     title: str = "Predictions", size: float = 1.45):
    """A grid of images, each titled with the predicted class and probability and the true class.

    Parameters
    ----------
    images : array or tensor ``(N, 1, H, W)`` or ``(N, H, W)``, pixel values for display
    labels : sequence of int
        True classes.
    probs : array or tensor ``(N, C)``
        Predicted class probabilities.
    class_names : sequence of str
    ncols : int, default 8
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        Titles read "predicted p / true: name p"; a wrong prediction is titled in red.
    """
    import matplotlib.pyplot as plt

    imgs = torch.as_tensor(images).detach().cpu()
    imgs = imgs[:, 0] if imgs.ndim == 4 else imgs
    probs = torch.as_tensor(probs).detach().cpu()
    n = len(imgs)
    if len(labels) != n or len(probs) != n:
        raise ValueError(f"show_predictions: got {n} images, {len(labels)} labels and {len(probs)} "
                         "rows of probabilities; give one of each per image")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.35) * nrows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        pred, true = int(probs[i].argmax()), int(labels[i])
        ax.imshow(imgs[i].numpy(), cmap="gray")
        ax.set_title(f"{class_names[pred]} {probs[i, pred]:.2f}\ntrue: {class_names[true]} {probs[i, true]:.2f}",
                     fontsize=7, color="black" if pred == true else "red")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
