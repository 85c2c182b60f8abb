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
from cnnbook.pytorch.utils import seed_everything

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


def _check_data(func, x, y):
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"{func}: x and y must be tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.ndim != 4 or len(x) != len(y):
        raise ValueError(f"{func}: expected images (N, C, H, W) and N labels, "
                         f"got x {tuple(x.shape)} and y {tuple(y.shape)}")


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
    _check_data("run_settings", *val)
    if len(seeds) == 0:
        raise ValueError("run_settings: seeds must name at least one seed, got an empty sequence")
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
    return [history[key][-1] for _, history in runs]


def curves(runs: Sequence, key: str) -> np.ndarray:
    """Per-epoch values of ``key``, one row per run: shape ``(runs, epochs)``.

    Raises ValueError when the runs stopped after different numbers of epochs.
    """
    rows = [history[key] for _, history in runs]
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f"curves: the runs have different lengths {[len(r) for r in rows]}; "
                         "read early-stopped runs one by one")
    return np.array(rows)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1, as :func:`summarize_runs`) of repeated runs."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"mean_std: need at least two values, got {len(v)} (shape {v.shape})")
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
    (m, s), (m0, s0) = mean_std(values), mean_std(baseline)
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
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"predict_tta: x must be a batch (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}")

    def views(batch):
        shifted = [shift_image(batch, dy, dx, fill) for dy, dx in shifts]
        return shifted + [v.flip(-1) for v in shifted] if hflip else shifted

    return predict(model, x, views=views)
