"""A small training toolkit on top of PyTorch: the loop the book writes by hand, packaged.

- :class:`TensorLoader`: mini-batches from in-memory tensors (shuffled with a
  ``torch.Generator``, optional batch-level augmentation), much faster than a
  ``DataLoader`` with per-image transforms on a laptop CPU. A standard
  :class:`torch.utils.data.DataLoader` works everywhere a ``TensorLoader`` does.
- :func:`random_affine` / :class:`BatchRandomAffine`: per-sample random rotation, shift,
  zoom and flip of a whole batch in one ``grid_sample`` call.
- :func:`fit`: the training loop, returning a :class:`History` of per-epoch training and
  validation loss and metrics, learning rate and time; optional learning-rate scheduler
  (stepped per epoch or per batch), callbacks, mixed precision (``amp_dtype``),
  ``channels_last``, progress bars (``tqdm.auto``) and seeding.
- Callbacks as in Keras: :class:`EarlyStopping`, :class:`ReduceLROnPlateau` (around
  :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`), :class:`ModelCheckpoint`.
- :func:`evaluate`, :func:`predict`, :func:`save_weights`, :func:`load_weights`.
- :class:`Model`: a Keras-like façade, ``Model(net).compile(...).fit(...)``, so that the
  vocabulary of Keras maps one to one onto the PyTorch objects above.

Metrics are computed from a confusion matrix accumulated on the device, batch after batch,
and read back once per epoch: the loop adds no host-device synchronisation per batch.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnbook.pytorch import metrics as _metrics
from cnnbook.pytorch.utils import pick_device, seed_everything

# ============================================================================ data

class TensorLoader:
    """Iterate over tensors in mini-batches: ``for x, y in TensorLoader(x, y, batch_size=128)``.

    Parameters
    ----------
    *tensors : torch.Tensor
        Tensors with the same first dimension N (typically images and labels).
    batch_size : int, default 32
    shuffle : bool, default False
        Draw a new random order every epoch (``torch.randperm`` with ``generator``).
    drop_last : bool, default False
        Skip the last, smaller batch.
    transform : callable, optional
        Applied to the *first* tensor of each batch (e.g. :class:`BatchRandomAffine`).
    generator : torch.Generator, optional
        Source of the shuffling order; default: torch's global generator (seeded by
        :func:`cnnbook.pytorch.utils.seed_everything` and by ``fit(seed=...)``).
    sampler : iterable of int, optional
        Indices to visit each epoch, e.g. a :class:`torch.utils.data.WeightedRandomSampler`;
        excludes ``shuffle``.
    device : torch.device or str, optional
        Move the tensors there once, up front.

    Shape:
        each batch is a tuple of ``tensors[i][idx]`` with ``len(idx) <= batch_size``.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, transform: Callable | None = None,
                 generator: torch.Generator | None = None, sampler: Iterable[int] | None = None,
                 device=None):
        if not tensors:
            raise ValueError("TensorLoader: give at least one tensor, e.g. TensorLoader(x, y)")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"TensorLoader: all tensors need the same first dimension, got "
                             f"{[len(t) for t in tensors]}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"TensorLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("TensorLoader: sampler and shuffle=True exclude each other (as in DataLoader)")
        self.tensors = tuple(t.to(device) for t in tensors) if device is not None else tensors
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.transform, self.generator, self.sampler = transform, generator, sampler

    def _num_samples(self) -> int:
        return len(self.sampler) if self.sampler is not None else len(self.tensors[0])

    def __len__(self) -> int:
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.tensors[0])
        if self.sampler is not None:
            order = torch.as_tensor(list(self.sampler), dtype=torch.long)
        elif self.shuffle:
            order = torch.randperm(n, generator=self.generator)
        else:
            order = None
        device = self.tensors[0].device
        if order is not None:
            order = order.to(device)
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self._num_samples())
            if order is None:
                batch = [t[lo:hi] for t in self.tensors]
            else:
                idx = order[lo:hi]
                batch = [t[idx] for t in self.tensors]
            if self.transform is not None:
                batch[0] = self.transform(batch[0])
            yield tuple(batch)


def random_affine(x: torch.Tensor, degrees: float = 0.0, translate: tuple = (0.0, 0.0),
                  scale: tuple = (1.0, 1.0), hflip_p: float = 0.0, fill: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate, shift, zoom and flip every image of a batch by its own random amount.

    The batch version of ``torchvision.transforms.v2.RandomAffine`` + ``RandomHorizontalFlip``
    (which, applied to a batch tensor, draw *one* set of parameters for the whole batch).

    Parameters
    ----------
    x : torch.Tensor
        Images ``(N, C, H, W)``.
    degrees : float, default 0
        Rotation angle drawn uniformly from ``[-degrees, degrees]``.
    translate : (float, float), default (0, 0)
        Maximal horizontal and vertical shift as fractions of the width and height.
    scale : (float, float), default (1, 1)
        Zoom factor range (> 1 enlarges).
    hflip_p : float, default 0
        Probability of a horizontal flip.
    fill : float, default 0
        Value of the pixels that come from outside the image.
    generator : torch.Generator, optional
        CPU generator for the random parameters.

    Shape:
        input and output ``(N, C, H, W)``.
    """
    if x.ndim != 4:
        raise ValueError(f"random_affine: x must be a batch (N, C, H, W), got shape {tuple(x.shape)}")
    n = x.shape[0]
    u = lambda lo, hi: (torch.rand(n, generator=generator) * (hi - lo) + lo)  # noqa: E731
    angle = torch.deg2rad(u(-degrees, degrees))
    zoom = u(*scale)
    flip = torch.where(torch.rand(n, generator=generator) < hflip_p, -1.0, 1.0)
    tx, ty = 2 * u(-translate[0], translate[0]), 2 * u(-translate[1], translate[1])  # grid spans [-1, 1]
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                         torch.stack([sin * flip, cos, ty], 1)], 1)               # (N, 2, 3)
    theta = theta.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)               # (N, H, W, 2)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


def random_crop(x: torch.Tensor, padding: int = 2, fill: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image of a batch by its own random whole number of pixels (pad, then crop).

    The batch version of ``torchvision.transforms.v2.RandomCrop(size, padding=padding)``:
    each image is padded by ``padding`` pixels of value ``fill`` on every side and a window of
    the original size is cut out at a random offset in ``[0, 2 * padding]``. Unlike a shift by
    a fraction of a pixel (:func:`random_affine`), nothing is interpolated, so images stay sharp.

    Shape:
        input and output ``(N, C, H, W)``.
    """
    if x.ndim != 4:
        raise ValueError(f"random_crop: x must be a batch (N, C, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, value=fill)                                   # (N, C, H+2p, W+2p)
    oy, ox = (torch.randint(0, 2 * padding + 1, (2, n), generator=generator)).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]       # (N, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]       # (N, 1, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


@dataclass
class BatchRandomAffine:
    """A callable holding :func:`random_affine`'s settings, for ``TensorLoader(transform=...)``."""

    degrees: float = 0.0
    translate: tuple = (0.0, 0.0)
    scale: tuple = (1.0, 1.0)
    hflip_p: float = 0.0
    fill: float = 0.0
    generator: torch.Generator | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return random_affine(x, self.degrees, self.translate, self.scale, self.hflip_p, self.fill,
                             self.generator)


# ============================================================================ history

class History:
    """Per-epoch logs of :func:`fit`, as in Keras: ``history.history["val_loss"]`` is a list.

    Keys: ``"loss"`` and each metric (training), ``"val_loss"`` and ``"val_<metric>"``
    (when there is a validation loader), ``"lr"`` (learning rate at the start of the
    epoch) and ``"time"`` (seconds for the epoch, validation included). ``epoch`` lists the
    epoch numbers, starting at 1.
    """

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list:
        if key not in self.history:
            raise KeyError(f"History: no {key!r}; available: {sorted(self.history)}")
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def best(self, monitor: str = "val_loss", mode: str = "auto") -> tuple[int, float]:
        """Return ``(epoch, value)`` of the best epoch for ``monitor``."""
        values = self[monitor]
        pick = max if _resolve_mode(mode, monitor, "History.best") == "max" else min
        i = values.index(pick(values))
        return self.epoch[i], values[i]

    def __repr__(self) -> str:
        keys = list(self.history)
        if not keys:
            return "History(empty)"
        head = ["epoch", *keys]
        rows = [[str(e)] + [_fmt(self.history[k][i]) for k in keys] for i, e in enumerate(self.epoch)]
        widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
        return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [head, *rows])


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if (v != 0 and abs(v) < 1e-3) else f"{v:.4f}"
    return str(v)


def _resolve_mode(mode: str, monitor: str, func: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{func}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    maximize = ("acc", "precision", "recall", "f1", "auc")
    return "max" if any(k in monitor for k in maximize) else "min"


# ============================================================================ metrics on device

METRICS = {
    "accuracy": _metrics.accuracy_from_cm,
    "precision": lambda cm: _metrics.precision_from_cm(cm, average="macro"),
    "recall": lambda cm: _metrics.recall_from_cm(cm, average="macro"),
    "f1": lambda cm: _metrics.f1_from_cm(cm, average="macro"),
}


def _metric_fns(metrics) -> dict[str, Callable]:
    """Names ("accuracy", "precision", "recall", "f1": macro averages) or callables f(cm) -> float."""
    if isinstance(metrics, dict):
        return dict(metrics)
    if isinstance(metrics, str):
        metrics = (metrics,)
    fns = {}
    for m in metrics or ():
        if callable(m):
            fns[getattr(m, "__name__", "metric")] = m
        elif m in METRICS:
            fns[m] = METRICS[m]
        else:
            raise ValueError(f"fit: unknown metric {m!r}; use one of {sorted(METRICS)} "
                             "or a callable taking the confusion matrix")
    return fns


class _Tracker:
    """Sums the loss and a confusion matrix on the device; reads them back once, in ``result``."""

    def __init__(self, metric_fns: dict):
        self.metric_fns = metric_fns
        self.loss_sum, self.count, self.cm = None, 0, None

    def update(self, loss: torch.Tensor | None, out: torch.Tensor, y: torch.Tensor | None) -> None:
        n = out.shape[0]
        self.count += n
        if loss is not None:
            batch_sum = loss.detach().float() * n
            self.loss_sum = batch_sum if self.loss_sum is None else self.loss_sum + batch_sum
        if self.metric_fns and y is not None:
            c = out.shape[1]
            target = y.argmax(1) if y.ndim == 2 else y                    # one-hot rows -> indices
            counts = torch.bincount(target * c + out.detach().argmax(1), minlength=c * c)
            self.cm = counts if self.cm is None else self.cm + counts

    def result(self, prefix: str = "") -> dict:
        logs = {}
        if self.loss_sum is not None:
            logs[prefix + "loss"] = self.loss_sum.item() / max(self.count, 1)
        if self.cm is not None:
            c = math.isqrt(self.cm.numel())
            cm = self.cm.view(c, c).cpu().numpy()
            logs.update({prefix + name: float(fn(cm)) for name, fn in self.metric_fns.items()})
        return logs


def _split_batch(batch):
    if isinstance(batch, (list, tuple)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def _to_device(x, y, device, channels_last: bool):
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    if y is not None:
        y = y.to(device, non_blocking=True)
    return x, y


def _autocast(device: torch.device, amp_dtype):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


# ============================================================================ callbacks

@dataclass
class FitState:
    """What :func:`fit` shares with its callbacks; a callback sets ``stop_training`` to stop."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    history: History
    epochs: int
    stop_training: bool = False
    extra: dict = field(default_factory=dict)


class Callback:
    """Base class: override any of the three hooks. ``epoch`` counts from 1."""

    def on_train_begin(self, state: FitState) -> None:
        pass

    def on_epoch_end(self, state: FitState, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self, state: FitState) -> None:
        pass


def _monitored(logs: dict, monitor: str, func: str) -> float:
    if monitor not in logs:
        raise ValueError(f"{func}: monitor={monitor!r} is not in the logs {sorted(logs)}; "
                         "val_* keys need fit(val_loader=...)")
    return logs[monitor]


class _Improvement:
    """Tracks the best value of a monitored quantity: ``improved(v)`` by more than ``min_delta``."""

    def __init__(self, monitor: str, mode: str, min_delta: float, func: str):
        self.monitor, self.min_delta = monitor, abs(min_delta)
        self.mode = _resolve_mode(mode, monitor, func)
        self.reset()

    def reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras' names and defaults).

    Parameters
    ----------
    monitor : str, default "val_loss"
    min_delta : float, default 0
        Smallest change that counts as an improvement.
    patience : int, default 0
        Epochs without improvement before stopping.
    mode : {"auto", "min", "max"}, default "auto"
        "auto": "max" for accuracy-like names, else "min".
    restore_best_weights : bool, default False
        At the end of training, load the weights of the best epoch back into the model.

    Attributes
    ----------
    best, best_epoch, stopped_epoch : the best value, its epoch (from 1), and the epoch at
        which training stopped (None if it ran to the end).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", restore_best_weights: bool = False):
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.tracker = _Improvement(monitor, mode, min_delta, "EarlyStopping")
        self.monitor, self.patience, self.restore_best_weights = monitor, patience, restore_best_weights

    def on_train_begin(self, state):
        self.tracker.reset()
        self.wait, self.best_epoch, self.stopped_epoch, self.best_weights = 0, None, None, None

    @property
    def best(self) -> float:
        return self.tracker.best

    def on_epoch_end(self, state, epoch, logs):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self.tracker.improved(value):
            self.tracker.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(state.model.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop_training, self.stopped_epoch = True, epoch

    def on_train_end(self, state):
        if self.restore_best_weights and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs.

    A thin wrapper around :class:`torch.optim.lr_scheduler.ReduceLROnPlateau` with Keras'
    names and defaults: ``min_delta`` is an absolute threshold (torch: ``threshold`` with
    ``threshold_mode="abs"``), ``min_lr`` the floor.

    Attributes
    ----------
    scheduler : the torch scheduler, created when training begins.
    reductions : list of (epoch, new learning rate).
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor, "ReduceLROnPlateau")
        self.kwargs = dict(mode=self.mode, factor=factor, patience=patience, threshold=min_delta,
                           threshold_mode="abs", cooldown=cooldown, min_lr=min_lr)
        self.scheduler, self.reductions = None, []

    def on_train_begin(self, state):
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(state.optimizer, **self.kwargs)
        self.reductions = []

    def on_epoch_end(self, state, epoch, logs):
        before = state.optimizer.param_groups[0]["lr"]
        self.scheduler.step(_monitored(logs, self.monitor, "ReduceLROnPlateau"))
        after = state.optimizer.param_groups[0]["lr"]
        if after < before:
            self.reductions.append((epoch, after))


class ModelCheckpoint(Callback):
    """Save the model's ``state_dict`` after each epoch, or only when ``monitor`` improves.

    Parameters
    ----------
    filepath : str or Path
        May contain ``{epoch}`` and log keys, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.pt"``.
    monitor, mode : as in :class:`EarlyStopping`.
    save_best_only : bool, default False

    Attributes
    ----------
    saved : list of Path, best : best monitored value, best_path : its file.
    """

    def __init__(self, filepath, monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = False):
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self.tracker = _Improvement(monitor, mode, 0.0, "ModelCheckpoint")

    def on_train_begin(self, state):
        self.tracker.reset()
        self.saved, self.best_path = [], None

    @property
    def best(self) -> float:
        return self.tracker.best

    def on_epoch_end(self, state, epoch, logs):
        value = _monitored(logs, self.monitor, "ModelCheckpoint")
        improved = self.tracker.improved(value)
        if improved:
            self.tracker.best = value
        if improved or not self.save_best_only:
            path = Path(self.filepath.format(epoch=epoch, **logs))
            save_weights(state.model, path)
            self.saved.append(path)
            if improved:
                self.best_path = path


def save_weights(model: nn.Module, path) -> Path:
    """``torch.save(model.state_dict(), path)``, creating the folder; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def load_weights(model: nn.Module, path, map_location=None) -> nn.Module:
    """Load a ``state_dict`` saved by :func:`save_weights` into ``model``; return ``model``.

    Uses ``torch.load(weights_only=True)``, which only unpickles tensors and plain
    containers, so a checkpoint file cannot run code when it is loaded.
    """
    if map_location is None:
        map_location = _model_device(model)
    state = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(state)
    return model


# ============================================================================ the loop

def train_one_epoch(model, loader, optimizer, loss_fn, device, metric_fns=None, scheduler=None,
                    amp_dtype=None, channels_last=False, scaler=None, progress=None) -> dict:
    """One pass over ``loader``: forward, loss, backward, step. Return the epoch's training logs.

    ``scheduler`` (if given) is stepped after every batch. Loss and metrics are
    accumulated on ``device`` and read back once at the end.
    """
    model.train()
    tracker = _Tracker(metric_fns or {})
    for batch in loader:
        x, y = _to_device(*_split_batch(batch), device, channels_last)
        with _autocast(device, amp_dtype):
            out = model(x)
            loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        tracker.update(loss, out, y)
        if progress is not None:
            progress.update(1)
    return tracker.result()


def evaluate(model: nn.Module, loader, loss_fn: Callable | None = None, metrics=("accuracy",),
             device=None, amp_dtype=None, channels_last: bool = False) -> dict:
    """Loss (if ``loss_fn``) and metrics of ``model`` over ``loader``, in eval mode, without grad.

    ``metrics`` as in :func:`fit`; ``device`` defaults to the model's.

    Returns
    -------
    dict
        e.g. ``{"loss": 0.41, "accuracy": 0.86}``. The model's train/eval mode is restored.
    """
    tracker = _Tracker(_metric_fns(metrics))
    for out, y in _eval_outputs(model, loader, device, amp_dtype, channels_last):
        with _autocast(out.device, amp_dtype):
            loss = loss_fn(out, y) if (loss_fn is not None and y is not None) else None
        tracker.update(loss, out, y)
    return tracker.result()


def _eval_outputs(model, loader, device, amp_dtype, channels_last):
    """Yield ``(model(x), y)`` for every batch, in eval mode under ``torch.inference_mode``;
    the model's train/eval mode is restored afterwards (also when the caller stops early)."""
    device = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in loader:
                x, y = _to_device(*_split_batch(batch), device, channels_last)
                with _autocast(device, amp_dtype):
                    out = model(x)
                yield out, y
    finally:
        model.train(was_training)


def predict(model: nn.Module, loader, device=None, amp_dtype=None,
            channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class probabilities (softmax of the model's logits) for every sample of ``loader``.

    Returns
    -------
    probs : torch.Tensor, ``(N, C)`` float32 on the CPU
    labels : torch.Tensor ``(N,)`` on the CPU, or None when the loader yields no labels
    """
    probs, labels = [], []
    for out, y in _eval_outputs(model, loader, device, amp_dtype, channels_last):
        probs.append(torch.softmax(out.float(), dim=1).cpu())
        if y is not None:
            labels.append(y.cpu())
    return torch.cat(probs), (torch.cat(labels) if labels else None)


def _check_fit_args(epochs, scheduler_step, callbacks):
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"fit: scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
    bad = [c for c in callbacks if not isinstance(c, Callback)]
    if bad:
        raise TypeError(f"fit: callbacks must be cnnbook.pytorch.train.Callback instances, got {bad!r}")


def _step_epoch_scheduler(scheduler, logs):
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(logs.get("val_loss", logs.get("loss")))
    else:
        scheduler.step()


def fit(model: nn.Module, train_loader, optimizer: torch.optim.Optimizer, loss_fn: Callable,
        epochs: int, val_loader=None, metrics=("accuracy",), callbacks: Sequence[Callback] = (),
        scheduler=None, scheduler_step: str = "epoch", device=None, amp_dtype=None,
        channels_last: bool = False, progress: bool | str = True, seed: int | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs; return the :class:`History` of per-epoch logs.

    Parameters
    ----------
    model : torch.nn.Module
        Moved to ``device`` (and to ``channels_last`` memory format if asked).
    train_loader, val_loader : iterable of (inputs, targets)
        :class:`TensorLoader`, :class:`torch.utils.data.DataLoader`, or any iterable.
    optimizer : torch.optim.Optimizer
    loss_fn : callable ``(outputs, targets) -> scalar tensor`` (mean over the batch)
    epochs : int
    metrics : sequence of str or callable, default ("accuracy",)
        "accuracy", "precision", "recall", "f1" (macro averages) or ``f(cm) -> float``.
    callbacks : sequence of :class:`Callback`
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped after every epoch or, with ``scheduler_step="batch"``, after every batch
        (e.g. ``OneCycleLR``). A torch ``ReduceLROnPlateau`` is stepped with ``val_loss``.
    device : torch.device or str, optional
        Default :func:`cnnbook.pytorch.utils.pick_device` (CUDA, then MPS, then CPU).
    amp_dtype : torch.dtype, optional
        Run forward pass and loss under ``torch.autocast`` with this dtype, e.g.
        ``torch.bfloat16`` (CPU or CUDA) or ``torch.float16`` (CUDA, with a gradient scaler).
    channels_last : bool, default False
        Use NHWC memory layout for model and inputs (faster convolutions on many CPUs).
    progress : bool or "batch", default True
        A ``tqdm.auto`` bar over epochs; "batch" adds a bar over the batches of each epoch.
    seed : int, optional
        Seed Python, NumPy and torch first (shuffling, dropout, augmentation). Seed before
        building the model to make its initial weights reproducible too.

    Returns
    -------
    History
        ``loss``, each metric, ``val_*`` (with ``val_loader``), ``lr`` and ``time`` per epoch.
    """
    _check_fit_args(epochs, scheduler_step, callbacks)
    if seed is not None:
        seed_everything(seed)
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    metric_fns = _metric_fns(metrics)
    scaler = torch.amp.GradScaler(device.type) if (amp_dtype == torch.float16 and device.type == "cuda") else None
    history = History()
    state = FitState(model, optimizer, history, epochs)
    for cb in callbacks:
        cb.on_train_begin(state)
    bars = _progress_bars(progress, epochs)
    batch_scheduler = scheduler if scheduler_step == "batch" else None
    for epoch in range(1, epochs + 1):
        start, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        batch_bar = bars.batches(len(train_loader) if hasattr(train_loader, "__len__") else None, epoch)
        logs = train_one_epoch(model, train_loader, optimizer, loss_fn, device, metric_fns,
                               batch_scheduler, amp_dtype, channels_last, scaler, batch_bar)
        if val_loader is not None:
            val = evaluate(model, val_loader, loss_fn, metric_fns, device, amp_dtype, channels_last)
            logs.update({f"val_{k}": v for k, v in val.items()})
        logs.update(lr=lr, time=time.perf_counter() - start)
        history.append(epoch, logs)
        for cb in callbacks:
            cb.on_epoch_end(state, epoch, logs)
        if scheduler is not None and scheduler_step == "epoch":
            _step_epoch_scheduler(scheduler, logs)
        bars.epoch_done(logs)
        if state.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end(state)
    bars.close()
    return history


class _progress_bars:
    """An epoch bar (and optionally a batch bar) from tqdm.auto, or nothing."""

    def __init__(self, progress, epochs):
        if progress not in (True, False, "batch"):
            raise ValueError(f"fit: progress must be True, False or 'batch', got {progress!r}")
        self.per_batch, self.bar, self.batch_bar = progress == "batch", None, None
        if progress:
            from tqdm.auto import tqdm

            self.tqdm = tqdm
            self.bar = tqdm(total=epochs, desc="fit", unit="epoch")

    def batches(self, total, epoch):
        if not self.per_batch:
            return None
        if self.batch_bar is not None:
            self.batch_bar.close()
        self.batch_bar = self.tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False)
        return self.batch_bar

    def epoch_done(self, logs):
        if self.bar is not None:
            self.bar.set_postfix({k: _fmt(v) for k, v in logs.items() if k != "time"}, refresh=False)
            self.bar.update(1)

    def close(self):
        for b in (self.batch_bar, self.bar):
            if b is not None:
                b.close()


# ============================================================================ repeated runs

def fit_seeds(make_model: Callable[[], nn.Module], make_loader: Callable, make_optimizer: Callable,
              epochs: int, seeds: Sequence[int] = (0, 1, 2), loss_fn: Callable | None = None,
              progress: bool = True, desc: str = "seeds", **fit_kwargs) -> list:
    """Train one fresh model per seed and return ``[(model, history), ...]``.

    For each seed: :func:`cnnbook.pytorch.utils.seed_everything`, then ``make_model()`` (so the
    initial weights depend on the seed), ``make_loader()``, ``make_optimizer(params)`` and
    :func:`fit` with ``seed=seed`` and ``fit_kwargs`` (``val_loader``, ``device``...).
    ``loss_fn`` defaults to :class:`torch.nn.CrossEntropyLoss`. ``progress`` shows one bar
    over the seeds (``tqdm.auto``); the runs themselves show none.
    """
    from tqdm.auto import tqdm

    runs = []
    for seed in tqdm(seeds, desc=desc, leave=False, disable=not progress):
        seed_everything(seed)
        model = make_model()
        history = fit(model, make_loader(), make_optimizer(model.parameters()),
                      loss_fn if loss_fn is not None else nn.CrossEntropyLoss(), epochs,
                      progress=False, seed=seed, **fit_kwargs)
        runs.append((model, history))
    return runs


class Table(str):
    """A string that a notebook shows as it is (its ``repr`` is the text itself)."""

    def __repr__(self) -> str:
        return str(self)


def summarize_runs(results, digits: int = 3) -> Table:
    """Tabulate repeated runs as ``mean ± std`` (sample standard deviation, n runs).

    Parameters
    ----------
    results : mapping setting -> mapping measure -> sequence of float
        e.g. ``{"Adam": {"train loss": [0.41, 0.43, 0.40]}, "SGD": {...}}``.

    Returns
    -------
    Table
        One row per setting, one column per measure.
    """
    settings = list(results)
    measures = list(dict.fromkeys(m for s in settings for m in results[s]))
    cell = {}
    for s in settings:
        for m in measures:
            v = torch.as_tensor(list(results[s].get(m, [])), dtype=torch.float64)
            if len(v) == 0:
                cell[s, m] = "-"
            elif len(v) == 1 and float(v.item()).is_integer():
                cell[s, m] = f"{int(v.item())}"
            elif len(v) == 1:
                cell[s, m] = f"{v.item():.{digits}f}"
            else:
                cell[s, m] = f"{v.mean().item():.{digits}f} ± {v.std().item():.{digits}f} (n={len(v)})"
    w0 = max(len("setting"), *(len(s) for s in settings))
    widths = [max(len(m), *(len(cell[s, m]) for s in settings)) for m in measures]
    lines = ["  ".join(["setting".ljust(w0)] + [m.rjust(w) for m, w in zip(measures, widths)])]
    lines.append("-" * len(lines[0]))
    for s in settings:
        lines.append("  ".join([s.ljust(w0)] + [cell[s, m].rjust(w) for m, w in zip(measures, widths)]))
    return Table("\n".join(lines))


# ============================================================================ Keras-like façade

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}
# Keras' default learning rates (torch's differ for RMSprop, 1e-2, and Adagrad, 1e-2).
KERAS_DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.001, "adagrad": 0.001}


class CategoricalCrossEntropy(nn.Module):
    """Keras' ``categorical_crossentropy``: targets are one-hot (or probability) rows ``(N, C)``.

    PyTorch's :class:`torch.nn.CrossEntropyLoss` accepts both class indices and
    probability rows; this wrapper insists on rows, as Keras does, and says what to use instead.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim != 2 or not target.is_floating_point():
            raise ValueError(
                f"categorical_crossentropy: targets must be one-hot rows (N, C) of floats, got shape "
                f"{tuple(target.shape)} {target.dtype}; for class indices use "
                "loss='sparse_categorical_crossentropy' (torch.nn.CrossEntropyLoss)")
        return F.cross_entropy(logits, target)


LOSSES = {"sparse_categorical_crossentropy": nn.CrossEntropyLoss,
          "categorical_crossentropy": CategoricalCrossEntropy,
          "cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss, "mean_squared_error": nn.MSELoss}


def _make_optimizer(optimizer, params, learning_rate, kwargs) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        if learning_rate is not None or kwargs:
            raise ValueError("Model.compile: learning_rate/optimizer options go to the optimizer "
                             "you built; pass them there, or give the optimizer by name")
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"Model.compile: optimizer must be one of {sorted(OPTIMIZERS)} or a "
                         f"torch.optim.Optimizer, got {optimizer!r}")
    name = optimizer.lower()
    lr = KERAS_DEFAULT_LR[name] if learning_rate is None else learning_rate
    return OPTIMIZERS[name](params, lr=lr, **kwargs)


def _make_loss(loss) -> Callable:
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"Model.compile: loss must be one of {sorted(LOSSES)} or a callable, got {loss!r}")
        return LOSSES[loss]()
    if not callable(loss):
        raise TypeError(f"Model.compile: loss must be a name or a callable, got {type(loss).__name__}")
    return loss


def _as_loader(x, y, batch_size, shuffle, func):
    if x is None:
        raise ValueError(f"{func}: give x (a tensor, with y) or a loader")
    if isinstance(x, torch.Tensor) or hasattr(x, "__array__"):
        x = torch.as_tensor(x)
        tensors = (x,) if y is None else (x, torch.as_tensor(y))
        return TensorLoader(*tensors, batch_size=batch_size, shuffle=shuffle)
    if y is not None:
        raise ValueError(f"{func}: x is a loader, so y must be None (the loader yields the targets)")
    return x


class Model:
    """Keras' ``compile`` / ``fit`` / ``evaluate`` / ``predict`` around a PyTorch module.

    ``compile`` here only *creates the optimizer and the loss*: it is what Keras calls
    compiling a model, and it has nothing to do with :func:`torch.compile` (which turns a
    model's Python code into optimized kernels).

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> model = Model(net, device="cpu").compile(optimizer="adam", metrics=["accuracy"])
    >>> type(model.optimizer).__name__, type(model.loss_fn).__name__
    ('Adam', 'CrossEntropyLoss')
    """

    def __init__(self, net: nn.Module, device=None):
        if not isinstance(net, nn.Module):
            raise TypeError(f"Model: net must be a torch.nn.Module, got {type(net).__name__}")
        self.net = net
        self.device = torch.device(device) if device is not None else pick_device()
        self.net.to(self.device)
        self.optimizer = self.loss_fn = None
        self.metrics, self.history = ("accuracy",), None

    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=("accuracy",),
                learning_rate: float | None = None, **optimizer_kwargs) -> "Model":
        """Create the optimizer and the loss function; return ``self``.

        Parameters
        ----------
        optimizer : {"sgd", "adam", "adamw", "rmsprop", "adagrad"} or torch.optim.Optimizer
            A name builds the torch optimizer with Keras' default learning rate for it
            (SGD 0.01, the others 0.001) unless ``learning_rate`` is given.
        loss : str or callable, default "sparse_categorical_crossentropy"
            "sparse_categorical_crossentropy" (class indices) is
            :class:`torch.nn.CrossEntropyLoss`; "categorical_crossentropy" wants one-hot rows.
        metrics : sequence, default ("accuracy",)
        learning_rate : float, optional
        **optimizer_kwargs
            Passed to the optimizer (``momentum=0.9``, ``weight_decay=...``).
        """
        if "lr" in optimizer_kwargs:
            raise TypeError("Model.compile: got lr=; Keras renamed this argument learning_rate= "
                            "(torch.optim optimizers still call it lr)")
        self.optimizer = _make_optimizer(optimizer, self.net.parameters(), learning_rate, optimizer_kwargs)
        self.loss_fn = _make_loss(loss)
        self.metrics = tuple(metrics or ())
        _metric_fns(self.metrics)   # fail now on an unknown metric name
        return self

    def _require_compiled(self, func):
        if self.optimizer is None:
            raise RuntimeError(f"Model.{func}: call compile(optimizer=..., loss=...) first")

    def fit(self, x=None, y=None, batch_size: int = 32, epochs: int = 1, validation_data=None,
            validation_split: float = 0.0, callbacks=(), shuffle: bool = True, verbose: int = 1,
            **fit_kwargs) -> History:
        """Keras' ``fit``: tensors (``x``, ``y``) or a loader; returns and stores the History.

        ``validation_data`` is a tuple ``(x_val, y_val)`` or a loader;
        ``validation_split`` holds out the *last* fraction of ``x`` and ``y``, before
        shuffling, as Keras does. Other keywords (``scheduler``, ``amp_dtype``, ``seed``...)
        go to :func:`fit`.
        """
        self._require_compiled("fit")
        if validation_split:
            if not 0.0 < validation_split < 1.0 or not isinstance(x, torch.Tensor):
                raise ValueError(f"Model.fit: validation_split needs tensors x, y and a fraction in (0, 1), "
                                 f"got {validation_split!r}")
            cut = int(len(x) * (1 - validation_split))
            x, y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
        train = _as_loader(x, y, batch_size, shuffle, "Model.fit")
        val = None
        if validation_data is not None:
            val = (_as_loader(*validation_data, batch_size, False, "Model.fit")
                   if isinstance(validation_data, tuple) else validation_data)
        self.history = fit(self.net, train, self.optimizer, self.loss_fn, epochs, val_loader=val,
                           metrics=self.metrics, callbacks=callbacks, device=self.device,
                           progress=bool(verbose), **fit_kwargs)
        return self.history

    def evaluate(self, x=None, y=None, batch_size: int = 32) -> dict:
        """Loss and metrics on ``(x, y)`` or a loader, as a dict (Keras: ``return_dict=True``)."""
        self._require_compiled("evaluate")
        loader = _as_loader(x, y, batch_size, False, "Model.evaluate")
        return evaluate(self.net, loader, self.loss_fn, self.metrics, self.device)

    def predict(self, x=None, batch_size: int = 32) -> torch.Tensor:
        """Class probabilities ``(N, C)`` for tensors ``x`` or a loader."""
        loader = _as_loader(x, None, batch_size, False, "Model.predict")
        return predict(self.net, loader, self.device)[0]

    def summary(self, input_size) -> "object":
        """Per-layer table of output shapes and parameters (:func:`cnnbook.pytorch.models.summary`)."""
        from cnnbook.pytorch.models import summary

        return summary(self.net, input_size, device=self.device)
