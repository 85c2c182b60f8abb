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
- :class:`FashionCNN`: the plain CNN of the CPU configuration; :class:`FashionResNet`: the
  wider residual network of the GPU configuration (a :class:`cnnbook.pytorch.models.ResNetStyle`).
- :data:`CONFIGS`: ``"cpu"`` (at least 92.5% single-view test accuracy within 180 s on a 2-core
  CPU) and ``"gpu"`` (at least 95.0% within 30 s on a CUDA GPU).
- :func:`ablation_steps`: the improvement table's rows, from a plain baseline to a
  configuration, one change per row.
- :func:`predict_proba`: class probabilities, optionally averaged with the mirrored images
  (*test-time augmentation*).

The augmentation (:func:`~cnnbook.pytorch.augment.random_shift_flip`, ``tta_views``) lives in
:mod:`cnnbook.pytorch.augment`, the image grid (``show_predictions``) in :mod:`cnnbook.pytorch.plots`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
import warnings
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnbook.pytorch.augment import RandomShiftFlip, random_shift_flip, shift_image, tta_views  # noqa: F401
from cnnbook.pytorch.callbacks import ModelCheckpoint
from cnnbook.pytorch.checkpoint import load_weights
from cnnbook.pytorch.data import CLASSES, load_tensors
from cnnbook.pytorch.history import History
from cnnbook.pytorch.loader import TensorLoader
from cnnbook.pytorch.models import ResNetStyle
from cnnbook.pytorch.plots import show_predictions  # noqa: F401
from cnnbook.pytorch.train import fit, predict
from cnnbook.pytorch.utils import format_table, seed_everything

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


def predict_proba(model: nn.Module, x: torch.Tensor, tta: bool = False, tta_shift: int = 0,
                  fill: float = 0.0, batch_size: int = 1000, channels_last: bool = False,
                  amp_dtype=None) -> torch.Tensor:
    """:func:`cnnbook.pytorch.train.predict` with the chapter's test-time augmentation.

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor
        Images ``(N, C, H, W)``, prepared as for training (normalized).
    tta : bool, default False
        Average the softmax outputs over :func:`cnnbook.pytorch.augment.tta_views`: the image
        and its mirror image, and with ``tta_shift`` the four shifted copies of each.
    tta_shift : int, default 0
    fill : float, default 0
        Value shifted in at the borders (the normalized black, :attr:`FashionData.fill`).
    batch_size, channels_last, amp_dtype :
        As in :func:`cnnbook.pytorch.train.predict`.

    Shape:
        ``x (N, C, H, W)`` -> ``(N, num_classes)`` float32 on the CPU.
    """
    views = functools.partial(tta_views, flip=True, shift=tta_shift, fill=fill) if tta else None
    return predict(model, x, batch_size=batch_size, channels_last=channels_last, amp_dtype=amp_dtype,
                   views=views)


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
        if saver.best_path is None:
            raise ValueError(f"train_classifier: no epoch of configuration {config.name!r} gave finite weights "
                             f"and validation accuracy (lr={config.lr}); lower the learning rate")
        load_weights(model, path)
    _warn_if_chance_level(history, config, len(data.classes))
    best_epoch, val_accuracy = history.best("val_accuracy")
    return ClassifierRun(config, seed, model, history, seconds, best_epoch, val_accuracy, device)


def _warn_if_chance_level(history: History, config: ClassifierConfig, num_classes: int) -> None:
    """Warn when the best validation accuracy is no better than guessing: the run did not learn."""
    best = max((v for v in history["val_accuracy"] if math.isfinite(v)), default=0.0)
    if best <= 1.2 / num_classes:
        warnings.warn(f"train_classifier: the best validation accuracy of configuration {config.name!r} is "
                      f"{best:.3f}, about chance level (1/{num_classes}): the network did not learn. With "
                      f"lr={config.lr}, try a smaller learning rate.", RuntimeWarning, stacklevel=3)


def most_confused_pairs(cm, class_names: Sequence[str] | None = None, k: int = 5) -> list:
    """The ``k`` largest off-diagonal entries of a confusion matrix, largest first.

    Ties are ordered by true class, then predicted class; zero counts never appear (a matrix
    with fewer than ``k`` mistakes gives fewer pairs).

    Parameters
    ----------
    cm : array (C, C)
        ``cm[i, j]`` counts samples of true class ``i`` predicted as ``j`` (no negative entries).
    class_names : sequence of str, optional
    k : int, default 5

    Returns
    -------
    list of (true, predicted, count)
        Names when ``class_names`` is given, else indices.

    Examples
    --------
    >>> most_confused_pairs([[5, 2, 0], [2, 5, 1], [0, 0, 9]], k=5)
    [(0, 1, 2), (1, 0, 2), (1, 2, 1)]
    """
    cm = torch.as_tensor(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"most_confused_pairs: cm must be square (C, C), got shape {tuple(cm.shape)}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError(f"most_confused_pairs: k must be an int >= 0, got {k!r}")
    if (cm < 0).any():
        raise ValueError("most_confused_pairs: cm holds negative counts; pass a confusion matrix of counts")
    if class_names is not None and len(class_names) != len(cm):
        raise ValueError(f"most_confused_pairs: got {len(class_names)} class_names for {len(cm)} classes")
    c = len(cm)
    pairs = [(cm[i, j].item(), i, j) for i in range(c) for j in range(c) if i != j and cm[i, j] > 0]
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    name = (lambda i: class_names[i]) if class_names is not None else (lambda i: i)  # noqa: E731
    return [(name(i), name(j), count) for count, i, j in pairs[:k]]


def config_table(configs=None) -> str:
    """A plain-text table of the named configurations (one row per field, one column each)."""
    configs = configs or CONFIGS
    fields = [f.name for f in dataclasses.fields(ClassifierConfig) if f.name != "name"]
    rows = [[f] + [getattr(c, f) for c in configs.values()] for f in fields]
    return format_table(["", *configs], rows, rule=False)
