"""Repeated training runs for the book's experiments: settings x seeds, measured on a validation split.

One *setting* is everything that defines a training run except the seed (model, optimizer,
schedule, augmentation, loss, epochs). :func:`run_settings` trains every setting once per
seed on the same in-memory tensors and returns the runs; :func:`final`, :func:`curves` and
:func:`mean_std` read them, and :func:`cnnbook.pytorch.runs.summarize_runs` tabulates them.
:func:`predict_tta` averages a model's predictions over shifted copies of each image
(test-time augmentation). The training augmentation itself is :mod:`cnnbook.pytorch.augment`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from cnnbook.pytorch.augment import shift_image
from cnnbook.pytorch.loader import TensorLoader
from cnnbook.pytorch.train import fit, predict
from cnnbook.pytorch.utils import check_module, seed_everything
from cnnbook.scratch import checks

__all__ = ["Setting", "run_settings", "final", "curves", "mean_std", "effect", "predict_tta"]


@dataclass
class Setting:
    """One training recipe, without its seed.

    Parameters
    ----------
    make_model : callable ``() -> nn.Module``
        Called after seeding, so the initial weights depend on the seed.
    make_optimizer : callable ``(params) -> torch.optim.Optimizer``
    epochs : int
    make_scheduler : callable ``(optimizer, steps_per_epoch) -> LRScheduler``, optional
        A fresh scheduler per run (a scheduler holds its optimizer, so it cannot be shared).
    scheduler_step : {"epoch", "batch"}, default "epoch"
        As in :func:`cnnbook.pytorch.train.fit` ("batch" for ``OneCycleLR``).
    transform : callable, optional
        Batch augmentation applied by the training loader (e.g. :class:`Shift`).
    loss_fn : callable, optional
        Default ``nn.CrossEntropyLoss()``.
    batch_size : int, default 64
    callbacks : callable ``() -> list of Callback``, optional
        Fresh callbacks per run (they keep state).
    """

    make_model: Callable[[], nn.Module]
    make_optimizer: Callable
    epochs: int
    make_scheduler: Callable | None = None
    scheduler_step: str = "epoch"
    transform: Callable | None = None
    loss_fn: Callable | None = None
    batch_size: int = 64
    callbacks: Callable | None = None

    def __post_init__(self):
        if isinstance(self.make_model, nn.Module) or not callable(self.make_model):
            raise TypeError(f"Setting: make_model must be a function that builds a fresh model (e.g. "
                            f"lambda: LeNet()), got {type(self.make_model).__name__}; each seed needs its "
                            "own initial weights")
        hints = {"make_optimizer": "lambda params: torch.optim.SGD(params, lr=0.1)",
                 "make_scheduler": "lambda optimizer, steps_per_epoch: ...", "transform": "RandomShiftFlip()",
                 "loss_fn": "nn.CrossEntropyLoss()", "callbacks": "lambda: [EarlyStopping()]"}
        for name, hint in hints.items():
            value = getattr(self, name)
            if not callable(value) and (value is not None or name == "make_optimizer"):
                raise TypeError(f"Setting: {name} must be callable, e.g. {hint}, got {type(value).__name__}")
        checks.as_int("Setting", "epochs", self.epochs, 1)
        checks.as_int("Setting", "batch_size", self.batch_size, 1)
        if self.scheduler_step not in ("epoch", "batch"):
            raise ValueError(f"Setting: scheduler_step must be 'epoch' or 'batch', got {self.scheduler_step!r}")


def _check_data(func, x, y, names=("x", "y")):
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"{func}: {names[0]} and {names[1]} must be tensors, got {type(x).__name__} and "
                        f"{type(y).__name__}")
    if x.ndim != 4 or len(x) != len(y):
        raise ValueError(f"{func}: expected images (N, C, H, W) and N labels, "
                         f"got {names[0]} {tuple(x.shape)} and {names[1]} {tuple(y.shape)}")
    if len(x) == 0:
        raise ValueError(f"{func}: {names[0]} holds no images")


def _check_settings(func, settings, val, seeds):
    if not isinstance(settings, Mapping):
        raise TypeError(f"{func}: settings must be a dict of name -> Setting, got {type(settings).__name__}")
    if not settings:
        raise ValueError(f"{func}: settings must name at least one Setting, got an empty {type(settings).__name__}")
    bad = {name: type(s).__name__ for name, s in settings.items() if not isinstance(s, Setting)}
    if bad:
        raise TypeError(f"{func}: settings must map each name to a Setting, got {bad}")
    if not (isinstance(val, (tuple, list)) and len(val) == 2):
        raise TypeError(f"{func}: val must be a pair (images, labels), got {type(val).__name__}")
    _check_data(func, *val, names=("val[0]", "val[1]"))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise TypeError(f"{func}: seeds must be a sequence of ints, e.g. (0, 1, 2), got {seeds!r}")
    if len(seeds) == 0:
        raise ValueError(f"{func}: seeds must name at least one seed, got an empty sequence")
    if not all(checks.is_int(seed) for seed in seeds):
        raise TypeError(f"{func}: seeds must be ints, got {list(seeds)!r}")


def run_settings(settings: Mapping[str, Setting], x: torch.Tensor, y: torch.Tensor, val: tuple,
                 seeds: Sequence[int] = (0, 1, 2), device="cpu", progress: bool = True) -> dict:
    """Train every setting once per seed on ``(x, y)``; validate on ``val`` after every epoch.

    Parameters
    ----------
    settings : mapping name -> :class:`Setting`
    x, y : torch.Tensor
        Training images ``(N, C, H, W)`` (already normalized) and class indices ``(N,)``.
    val : (torch.Tensor, torch.Tensor)
        Validation images and labels: every choice in the book is made on these, never on
        the test set.
    seeds : sequence of int, default (0, 1, 2)
        Each seed fixes the initial weights, the shuffling, dropout and augmentation.
    device : default "cpu"
        Models and inputs use the ``channels_last`` layout (faster convolutions on CPUs).

    Returns
    -------
    dict
        name -> ``[(model, history), ...]``, one pair per seed, in the order of ``seeds``.
    """
    _check_data("run_settings", x, y)
    _check_settings("run_settings", settings, val, seeds)
    from tqdm.auto import tqdm

    val_loader = TensorLoader(*val, batch_size=1000)
    runs = {}
    for name, s in tqdm(settings.items(), desc="settings", disable=not progress):
        runs[name] = []
        for seed in seeds:
            seed_everything(seed)
            model = s.make_model()
            loader = TensorLoader(x, y, batch_size=s.batch_size, shuffle=True, transform=s.transform)
            optimizer = s.make_optimizer(model.parameters())
            scheduler = s.make_scheduler(optimizer, len(loader)) if s.make_scheduler else None
            history = fit(model, loader, optimizer, s.loss_fn or nn.CrossEntropyLoss(), s.epochs,
                          val_loader=val_loader, scheduler=scheduler, scheduler_step=s.scheduler_step,
                          callbacks=s.callbacks() if s.callbacks else (), device=device,
                          channels_last=True, progress=False, seed=seed)
            runs[name].append((model, history))
    return runs


def final(runs: Sequence, key: str) -> list:
    """The last epoch's value of ``key`` (e.g. ``"val_accuracy"``) in each run."""
    return [values[-1] for values in _run_values(runs, key, "final")]


def curves(runs: Sequence, key: str) -> np.ndarray:
    """Per-epoch values of ``key``, one row per run: shape ``(runs, epochs)``.

    Raises ValueError when the runs stopped after different numbers of epochs.
    """
    rows = _run_values(runs, key, "curves")
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f"curves: the runs have different lengths {[len(r) for r in rows]}; "
                         "read early-stopped runs one by one")
    return np.array(rows)


def _run_values(runs, key, func) -> list:
    """Each run's per-epoch values of ``key``, checked: ``runs`` is a non-empty list of (model, history)."""
    if isinstance(runs, Mapping):
        first = next(iter(runs), "name")
        raise TypeError(f"{func}: runs must be a list of (model, history) pairs, got a {type(runs).__name__}; "
                        f"hint: pass one setting's runs, e.g. runs[{first!r}]")
    if isinstance(runs, (str, bytes)) or not isinstance(runs, Sequence):
        raise TypeError(f"{func}: runs must be a list of (model, history) pairs, got {type(runs).__name__}")
    if len(runs) == 0:
        raise ValueError(f"{func}: runs must hold at least one (model, history) pair, got an empty sequence")
    rows = []
    for i, run in enumerate(runs):
        if not (isinstance(run, (tuple, list)) and len(run) == 2 and hasattr(run[1], "__getitem__")):
            raise TypeError(f"{func}: runs[{i}] must be a (model, history) pair, got {type(run).__name__}")
        history = run[1]
        if key not in history:
            keys = sorted(getattr(history, "history", history))
            raise ValueError(f"{func}: key {key!r} is not in the history of runs[{i}]; it has {keys}")
        if len(history[key]) == 0:
            raise ValueError(f"{func}: runs[{i}] has no epochs of {key!r}")
        rows.append(list(history[key]))
    return rows


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as :func:`summarize_runs`) of repeated runs."""
    return _mean_std(values, "mean_std", "values")


def _mean_std(values, func, name) -> tuple[float, float]:
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        v = None
    if v is None or v.ndim == 0:
        raise TypeError(f"{func}: {name} must be a sequence of numbers, one per run, got {type(values).__name__}")
    if v.ndim != 1:
        raise ValueError(f"{func}: {name} must be 1-D, one value per run, got shape {v.shape}")
    if len(v) < 2:
        raise ValueError(f"{func}: need at least two values, got {len(v)} in {name}; one run shows no spread")
    if not np.isfinite(v).all():
        raise ValueError(f"{func}: {name} hold NaN or infinite values {v.tolist()}; a run diverged: "
                         "lower its learning rate, or leave it out and say so")
    return float(v.mean()), float(v.std(ddof=1))


def effect(values: Sequence[float], baseline: Sequence[float]) -> dict:
    """How a setting's repeated runs differ from the baseline's, against the seed-to-seed spread.

    Returns
    -------
    dict
        ``diff`` (difference of the means), ``spread`` (the larger of the two sample standard
        deviations) and ``clear`` (True when ``|diff|`` exceeds twice the spread: a difference
        that seeds alone rarely produce with 3 runs each; False means "this experiment cannot
        tell").
    """
    (m, s), (m0, s0) = _mean_std(values, "effect", "values"), _mean_std(baseline, "effect", "baseline")
    spread = max(s, s0)
    return {"diff": m - m0, "spread": spread, "clear": abs(m - m0) > 2 * spread}


def predict_tta(model: nn.Module, x: torch.Tensor, shifts: Sequence[tuple] = ((0, 0),),
                fill: float = 0.0, hflip: bool = False) -> torch.Tensor:
    """Class probabilities averaged over shifted (and optionally mirrored) copies of each image.

    Parameters
    ----------
    model : nn.Module
        Evaluated in eval mode (its mode is restored afterwards).
    x : torch.Tensor
        Images ``(N, C, H, W)``, normalized as in training.
    shifts : sequence of (dy, dx), default ((0, 0),)
        Whole-pixel shifts; ``((0, 0),)`` alone is plain prediction.
    fill : float, default 0
        Value of the uncovered pixels (a black pixel after normalization).
    hflip : bool, default False
        Also average over the mirrored copy of every shifted image.

    Returns
    -------
    torch.Tensor
        ``(N, num_classes)`` probabilities: the mean of the softmax outputs.
    """
    check_module(model, "predict_tta")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"predict_tta: x must be a torch.Tensor of images (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"predict_tta: x must be a batch (N, C, H, W), got shape {tuple(x.shape)}")
    pairs = isinstance(shifts, Sequence) and all(
        isinstance(s, (tuple, list)) and len(s) == 2 and all(checks.is_int(v) for v in s) for s in shifts)
    if not pairs or len(shifts) == 0:
        raise ValueError(f"predict_tta: shifts must be a non-empty sequence of (dy, dx) pairs of ints, "
                         f"got {shifts!r}")
    if not checks.is_number(fill):
        raise TypeError(f"predict_tta: fill must be a number, got {fill!r}")
    if not isinstance(hflip, bool):
        raise TypeError(f"predict_tta: hflip must be True or False, got {hflip!r}")

    def views(batch):
        shifted = [shift_image(batch, dy, dx, fill) for dy, dx in shifts]
        return shifted + [v.flip(-1) for v in shifted] if hflip else shifted

    return predict(model, x, views=views)
