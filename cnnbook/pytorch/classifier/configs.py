"""Chapter 5's named configurations, the model and optimizer each builds, and the ablation's rows."""
from __future__ import annotations

import dataclasses
import inspect
import textwrap
from dataclasses import dataclass

import torch
from torch import nn

from cnnbook.pytorch.utils import Table, check_module, format_table
from cnnbook.scratch import checks
from cnnbook.pytorch.classifier.nets import FashionCNN, FashionResNet


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
        Weight decay applies to weights, not to biases or batch-norm parameters. With
        ``schedule="onecycle"`` the scheduler replaces ``momentum`` by its own cycle, 0.95 -> 0.85
        -> 0.95 (PyTorch's default ``cycle_momentum=True``; see :func:`onecycle_momentum`), so
        ``momentum`` is used by constant-rate runs only.
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


def check_config(config, func: str) -> None:
    """Raise a ``TypeError`` naming ``func`` unless ``config`` is a :class:`ClassifierConfig`."""
    if not isinstance(config, ClassifierConfig):
        raise TypeError(f"{func}: config must be a ClassifierConfig (e.g. CONFIGS['cpu']), got {type(config).__name__}")


def build_model(config: ClassifierConfig, num_classes: int = 10) -> nn.Module:
    """The untrained network of ``config`` (weights from torch's current random state)."""
    check_config(config, "build_model")
    checks.as_int("build_model", "num_classes", num_classes, 1)
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
    check_config(config, "ablation_steps")
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

    The one-cycle scheduler keeps PyTorch's default ``cycle_momentum=True``: it also cycles the
    momentum (:func:`onecycle_momentum`), overriding ``config.momentum``.

    Returns
    -------
    (torch.optim.SGD, scheduler or None)
        The one-cycle scheduler must be stepped after every batch.
    """
    check_module(model, "make_optimizer")
    check_config(config, "make_optimizer")
    checks.as_int("make_optimizer", "steps_per_epoch", steps_per_epoch, 1)
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




def onecycle_momentum() -> tuple[float, float]:
    """``(base_momentum, max_momentum)`` of :class:`torch.optim.lr_scheduler.OneCycleLR`'s defaults.

    :func:`make_optimizer` leaves ``cycle_momentum`` at PyTorch's default ``True``, so with
    ``schedule="onecycle"`` the scheduler overrides ``config.momentum``: the momentum starts at
    ``max_momentum``, falls to ``base_momentum`` while the rate climbs to its peak, and returns
    to ``max_momentum`` while the rate decays.
    """
    params = inspect.signature(torch.optim.lr_scheduler.OneCycleLR).parameters
    return params["base_momentum"].default, params["max_momentum"].default


def config_table(configs=None) -> str:
    """A plain-text table of the named configurations (one row per field, one column each).

    The ``momentum`` row shows the momentum the optimizer really uses: with the one-cycle
    schedule it is the scheduler's cycle (see :func:`onecycle_momentum`), marked ``*`` and
    explained under the table; ``config.momentum`` applies to constant-rate runs only.
    """
    configs = configs or CONFIGS
    if not hasattr(configs, "values") or not all(isinstance(c, ClassifierConfig) for c in configs.values()):
        raise TypeError(f"config_table: configs must be a dict of name -> ClassifierConfig, got "
                        f"{type(configs).__name__}")
    fields = [f.name for f in dataclasses.fields(ClassifierConfig) if f.name != "name"]
    low, high = onecycle_momentum()

    def cell(config, field):
        if field == "momentum" and config.schedule == "onecycle":
            return f"{high}→{low}→{high} *"
        return getattr(config, field)

    rows = [[f] + [cell(c, f) for c in configs.values()] for f in fields]
    table = format_table(["", *configs], rows, rule=False)
    if not any(c.schedule == "onecycle" for c in configs.values()):
        return table
    fields_momentum = sorted({c.momentum for c in configs.values()})
    note = (f"* one-cycle also cycles the momentum (OneCycleLR's cycle_momentum=True, PyTorch's default): "
            f"{high} at the first batch, {low} at the peak rate, {high} again at the last batch. The "
            f"momentum field ({', '.join(map(str, fields_momentum))}) applies only with schedule 'constant'.")
    return Table(table + "\n" + textwrap.fill(note, width=100, subsequent_indent="  "))
