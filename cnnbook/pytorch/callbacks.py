"""Callbacks for :func:`cnnbook.pytorch.train.fit`, with Keras' names and defaults.

- :class:`Callback`: the base class, three hooks (train begin, epoch end, train end);
  :class:`FitState` is what ``fit`` shares with them.
- :class:`EarlyStopping`: stop when a monitored value stalls; optionally restore the best weights.
- :class:`ReduceLROnPlateau`: a thin wrapper around torch's scheduler of the same name.
- :class:`ModelCheckpoint`: save the weights (with a checksum) every epoch or at each improvement.

An epoch whose weights are not finite (the training diverged) never counts as the best one:
no callback restores or saves NaN weights as "best".

Examples
--------
>>> net = torch.nn.Linear(1, 1)
>>> state = FitState(net, torch.optim.SGD(net.parameters(), lr=0.1), History(), epochs=5)
>>> stop = EarlyStopping(patience=2)
>>> stop.on_train_begin(state)
>>> for epoch, loss in enumerate([0.9, 0.7, float("nan"), 0.8], start=1):
...     stop.on_epoch_end(state, epoch, {"val_loss": loss})
>>> stop.best_epoch, stop.stopped_epoch          # the NaN epoch is no improvement
(2, 4)
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cnnbook.pytorch.checkpoint import save_weights
from cnnbook.pytorch.history import History, resolve_mode


@dataclass
class FitState:
    """What :func:`~cnnbook.pytorch.train.fit` shares with its callbacks; a callback sets
    ``stop_training`` to stop."""

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


def weights_are_finite(model: nn.Module) -> bool:
    """True when every floating-point parameter and buffer of ``model`` is finite."""
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


class _Improvement:
    """Tracks the best value of a monitored quantity: ``improved(v)`` by more than ``min_delta``.

    A non-finite value never improves, and neither does any value while the weights are not finite.
    """

    def __init__(self, monitor: str, mode: str, min_delta: float, func: str):
        self.monitor, self.min_delta = monitor, abs(min_delta)
        self.mode = resolve_mode(mode, monitor, func)
        self.reset()

    def reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, value: float, model: nn.Module | None = None) -> bool:
        if not math.isfinite(value):
            return False
        if self.mode == "min":
            better = value < self.best - self.min_delta
        else:
            better = value > self.best + self.min_delta
        return better and (model is None or weights_are_finite(model))


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
        An epoch with non-finite weights or value is never the best.

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
        if self.tracker.improved(value, state.model):
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
        self.mode = resolve_mode(mode, monitor, "ReduceLROnPlateau")
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

    Each file gets its SHA-256 beside it (:func:`cnnbook.pytorch.checkpoint.save_weights`),
    which :func:`cnnbook.pytorch.checkpoint.load_weights` checks.

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
        improved = self.tracker.improved(value, state.model)
        if improved:
            self.tracker.best = value
        if improved or not self.save_best_only:
            path = Path(self.filepath.format(epoch=epoch, **logs))
            save_weights(state.model, path)
            self.saved.append(path)
            if improved:
                self.best_path = path
