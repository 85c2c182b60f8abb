"""What :func:`cnnbook.pytorch.train.fit` records: the :class:`History` of per-epoch logs, the
names of the metrics it can log, and the tracker that sums loss and confusion matrix on the device.

Metrics are computed from a confusion matrix accumulated on the device, batch after batch,
and read back once per epoch: the loop adds no host-device synchronisation per batch. Targets
outside ``[0, C)`` (``ignore_index=-100`` of :class:`torch.nn.CrossEntropyLoss`) are left out
of the metrics, as the loss leaves them out.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from cnnbook.pytorch import metrics as _metrics
from cnnbook.pytorch.utils import format_table


class History:
    """Per-epoch logs of :func:`~cnnbook.pytorch.train.fit`, as in Keras: ``history["val_loss"]`` is a list.

    Keys: ``"loss"`` and each metric (training), ``"val_loss"`` and ``"val_<metric>"``
    (when there is a validation loader), ``"lr"`` (learning rate at the start of the
    epoch) and ``"time"`` (seconds for the epoch, validation included). ``epoch`` lists the
    epoch numbers, starting at 1.

    Examples
    --------
    >>> h = History()
    >>> for epoch, loss in enumerate([0.9, 0.5, float("nan")], start=1):
    ...     h.append(epoch, {"val_loss": loss})
    >>> h.best("val_loss")              # a NaN epoch is never the best
    (2, 0.5)
    """

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict) -> None:
        if not hasattr(logs, "items"):
            raise TypeError(f"History.append: logs must be a dict name -> value, got {type(logs).__name__}")
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
        """Return ``(epoch, value)`` of the best epoch for ``monitor``; non-finite values never win.

        Raises
        ------
        ValueError
            If no epoch has a finite value (training diverged from the start).
        """
        values = self[monitor]
        finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
        if not finite:
            raise ValueError(f"History.best: no finite value of {monitor!r} in {len(values)} epochs "
                             f"({values[:3]}...): training diverged; lower the learning rate")
        pick = max if resolve_mode(mode, monitor, "History.best") == "max" else min
        _, i = pick(finite, key=lambda t: t[0])        # the first of equal values, as list.index
        return self.epoch[i], values[i]

    def __repr__(self) -> str:
        keys = list(self.history)
        if not keys:
            return "History(empty)"
        rows = [[e] + [_fmt(self.history[k][i]) for k in keys] for i, e in enumerate(self.epoch)]
        return str(format_table(["epoch", *keys], rows, align="r" * (len(keys) + 1), rule=False))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if (v != 0 and abs(v) < 1e-3) else f"{v:.4f}"
    return str(v)


def resolve_mode(mode: str, monitor: str, func: str) -> str:
    """``"min"`` or ``"max"``: ``mode`` itself, or for ``"auto"`` guessed from the monitored name.

    Examples
    --------
    >>> resolve_mode("auto", "val_accuracy", "EarlyStopping"), resolve_mode("auto", "val_loss", "x")
    ('max', 'min')
    """
    if not isinstance(monitor, str):
        raise TypeError(f"{func}: monitor must be the name of a log such as 'val_loss', got {monitor!r}")
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{func}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    maximize = ("acc", "precision", "recall", "f1", "auc")
    return "max" if any(k in monitor for k in maximize) else "min"


METRICS = {
    "accuracy": _metrics.accuracy_from_cm,
    "precision": lambda cm: _metrics.precision_from_cm(cm, average="macro"),
    "recall": lambda cm: _metrics.recall_from_cm(cm, average="macro"),
    "f1": lambda cm: _metrics.f1_from_cm(cm, average="macro"),
}


def metric_fns(metrics, func: str = "fit") -> dict[str, Callable]:
    """Names ("accuracy", "precision", "recall", "f1": macro averages) or callables f(cm) -> float."""
    if isinstance(metrics, dict):
        return dict(metrics)
    if isinstance(metrics, str):
        metrics = (metrics,)
    if metrics is not None and not hasattr(metrics, "__iter__"):
        raise TypeError(f"{func}: metrics must be a list of names or callables, got {type(metrics).__name__}")
    fns = {}
    for m in metrics or ():
        if callable(m):
            fns[getattr(m, "__name__", "metric")] = m
        elif m in METRICS:
            fns[m] = METRICS[m]
        else:
            raise ValueError(f"{func}: unknown metric {m!r}; use one of {sorted(METRICS)} "
                             "or a callable taking the confusion matrix")
    return fns


class Tracker:
    """Sums the loss and a confusion matrix on the device; reads them back once, in ``result``.

    It also remembers, on the device, the first batch whose loss was not finite
    (``first_nonfinite_batch()``, counted from 1; 0 if none).
    """

    def __init__(self, metric_fns: dict):
        self.metric_fns = metric_fns
        self.loss_sum, self.count, self.batches, self.cm, self.first_bad = None, 0, 0, None, None

    def update(self, loss: torch.Tensor | None, out: torch.Tensor, y: torch.Tensor | None) -> None:
        n = out.shape[0]
        self.count += n
        self.batches += 1
        if loss is not None:
            loss = loss.detach().float()
            self.loss_sum = loss * n if self.loss_sum is None else self.loss_sum + loss * n
            bad = ~torch.isfinite(loss)
            first = self.first_bad if self.first_bad is not None else torch.zeros_like(bad, dtype=torch.long)
            self.first_bad = torch.where(bad & (first == 0), self.batches, first)
        if self.metric_fns and y is not None:
            self._count_pairs(out, y)

    def _count_pairs(self, out: torch.Tensor, y: torch.Tensor) -> None:
        c = out.shape[1]
        target = y.argmax(1) if y.ndim == 2 else y.long()               # one-hot rows -> indices
        valid = (target >= 0) & (target < c)                              # ignore_index=-100 etc.
        pair = torch.where(valid, target * c + out.detach().argmax(1), c * c)   # c*c: the "ignored" bin
        counts = torch.bincount(pair, minlength=c * c + 1)[:c * c]
        self.cm = counts if self.cm is None else self.cm + counts

    def first_nonfinite_batch(self) -> int:
        return int(self.first_bad) if self.first_bad is not None else 0

    def result(self, prefix: str = "") -> dict:
        logs = {}
        if self.loss_sum is not None:
            logs[prefix + "loss"] = self.loss_sum.item() / max(self.count, 1)
        if self.cm is not None:
            c = math.isqrt(self.cm.numel())
            cm = self.cm.view(c, c).cpu().numpy()
            logs.update({prefix + name: float(fn(cm)) for name, fn in self.metric_fns.items()})
        return logs
