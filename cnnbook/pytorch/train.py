"""The training loop the book writes by hand, packaged: :func:`fit`, :func:`evaluate`, :func:`predict`.

- :func:`fit`: trains for some epochs and returns a :class:`~cnnbook.pytorch.history.History` of
  per-epoch training and validation loss and metrics, learning rate and time; optional
  learning-rate scheduler (stepped per epoch or per batch), callbacks
  (:mod:`cnnbook.pytorch.callbacks`), mixed precision (``amp_dtype``), ``channels_last``,
  progress bars (``tqdm.auto``) and seeding. A loss that stops being finite ends training with
  :class:`NonFiniteLossError`, which names the epoch and batch (Keras: ``TerminateOnNaN``).
- :func:`evaluate`: loss and metrics of a model over a loader, in eval mode.
- :func:`predict`: the one prediction function for a torch model: class probabilities ``(N, C)``.

Where the other pieces live: :class:`~cnnbook.pytorch.loader.TensorLoader` (mini-batches from
tensors), :mod:`cnnbook.pytorch.augment` (batch augmentation), :mod:`cnnbook.pytorch.callbacks`,
:mod:`cnnbook.pytorch.checkpoint` (weight files), :mod:`cnnbook.pytorch.runs` (the same
training over several seeds) and :mod:`cnnbook.pytorch.keras_like` (Keras' ``compile``/``fit`` façade).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from cnnbook.pytorch.callbacks import Callback, FitState
from cnnbook.pytorch.history import History, Tracker, _fmt, metric_fns
from cnnbook.pytorch.utils import check_module, eval_mode, pick_device, seed_everything


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``history`` holds the epochs before it."""

    def __init__(self, message: str, history: History | None = None):
        super().__init__(message)
        self.history = history


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


def _as_dtype(amp_dtype, func: str):
    if amp_dtype is None or isinstance(amp_dtype, torch.dtype):
        return amp_dtype
    if isinstance(amp_dtype, str) and isinstance(getattr(torch, amp_dtype, None), torch.dtype):
        return getattr(torch, amp_dtype)
    raise ValueError(f"{func}: amp_dtype must be None, a torch.dtype or its name ('bfloat16'), got {amp_dtype!r}")


def _autocast(device: torch.device, amp_dtype):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


# ============================================================================ one epoch, evaluation

def train_one_epoch(model, loader, optimizer, loss_fn, device, metric_fns=None, scheduler=None,
                    amp_dtype=None, channels_last=False, scaler=None, progress=None, epoch: int = 1) -> dict:
    """One pass over ``loader``: forward, loss, backward, step. Return the epoch's training logs.

    ``scheduler`` (if given) is stepped after every batch. Loss and metrics are
    accumulated on ``device`` and read back once at the end.

    Raises
    ------
    ValueError
        If ``loader`` yields no batch.
    NonFiniteLossError
        If the loss of some batch was NaN or infinite (checked once, at the end of the epoch).
    """
    model.train()
    tracker = Tracker(metric_fns or {})
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
    if tracker.batches == 0:
        raise ValueError(f"fit: train_loader yielded no batches in epoch {epoch}; is the training set "
                         "empty, or smaller than batch_size with drop_last=True?")
    bad = tracker.first_nonfinite_batch()
    if bad:
        raise NonFiniteLossError(
            f"fit: the training loss is not finite (NaN or inf) from batch {bad} of epoch {epoch} "
            f"(learning rate {optimizer.param_groups[0]['lr']:.3g}); training stopped, the weights are "
            "no longer usable. Try a smaller learning rate, gradient clipping "
            "(torch.nn.utils.clip_grad_norm_), or check the inputs and targets for NaN/inf.")
    return tracker.result()


def _eval_outputs(model, loader, device, amp_dtype, channels_last):
    """Yield ``(model(x), y)`` for every batch, in eval mode under ``torch.inference_mode``;
    the model's train/eval mode is restored afterwards (also when the caller stops early)."""
    device = torch.device(device) if device is not None else _model_device(model)
    with eval_mode(model), torch.inference_mode():
        for batch in loader:
            x, y = _to_device(*_split_batch(batch), device, channels_last)
            with _autocast(device, amp_dtype):
                out = model(x)
            yield out, y


def evaluate(model: nn.Module, loader, loss_fn: Callable | None = None, metrics=("accuracy",),
             device=None, amp_dtype=None, channels_last: bool = False) -> dict:
    """Loss (if ``loss_fn``) and metrics of ``model`` over ``loader``, in eval mode, without grad.

    ``metrics`` as in :func:`fit`; ``device`` defaults to the model's. Targets outside
    ``[0, C)`` (``ignore_index=-100``) are left out of the metrics.

    Returns
    -------
    dict
        e.g. ``{"loss": 0.41, "accuracy": 0.86}``. The model's train/eval mode is restored.

    Examples
    --------
    >>> net = torch.nn.Linear(2, 2)
    >>> x, y = torch.randn(6, 2), torch.tensor([0, 1, -100, 0, 1, -100])
    >>> sorted(evaluate(net, [(x, y)], torch.nn.CrossEntropyLoss()))
    ['accuracy', 'loss']
    """
    check_module(model, "evaluate")
    amp_dtype = _as_dtype(amp_dtype, "evaluate")
    tracker = Tracker(metric_fns(metrics, "evaluate"))
    for out, y in _eval_outputs(model, loader, device, amp_dtype, channels_last):
        with _autocast(out.device, amp_dtype):
            loss = loss_fn(out, y) if (loss_fn is not None and y is not None) else None
        tracker.update(loss, out, y)
    if tracker.batches == 0:
        raise ValueError("evaluate: loader yielded no batches; is the (validation) set empty?")
    return tracker.result()


def _batches(inputs, batch_size: int):
    """A tensor is cut into batches of ``batch_size``; anything else is taken as a loader."""
    if isinstance(inputs, torch.Tensor):
        return [inputs[i:i + batch_size] for i in range(0, len(inputs), batch_size)]
    if hasattr(inputs, "__array__") or not hasattr(inputs, "__iter__"):   # a NumPy array would be cut into rows
        raise TypeError(f"predict: inputs must be a torch.Tensor or a loader, got {type(inputs).__name__}; "
                        "hint: torch.as_tensor(inputs)")
    return inputs


def predict(model: nn.Module, inputs, batch_size: int = 1000, device=None, amp_dtype=None,
            channels_last: bool = False, views: Callable | None = None) -> torch.Tensor:
    """Class probabilities (softmax of the model's logits) for every sample, in eval mode.

    The one prediction function of the package for a torch model (the Keras-like
    ``Model.predict`` and chapter 5's ``predict_proba`` call it).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(N, C)``; its train/eval mode is restored afterwards.
    inputs : torch.Tensor or iterable of batches
        Images ``(N, ...)``, or a loader yielding ``x`` or ``(x, y, ...)`` (the targets are ignored).
    batch_size : int, default 1000
        Used when ``inputs`` is a tensor.
    device : torch.device or str, optional
        Default: the model's.
    amp_dtype : torch.dtype or str, optional
        Forward pass under ``torch.autocast`` with this dtype.
    channels_last : bool, default False
    views : callable, optional
        Test-time augmentation: ``views(x)`` returns a list of batches shaped like ``x``
        (e.g. :func:`cnnbook.pytorch.augment.tta_views`); their probabilities are averaged.

    Returns
    -------
    torch.Tensor
        ``(N, C)`` float32 on the CPU, rows summing to 1, in the order of ``inputs``.

    Examples
    --------
    >>> probs = predict(torch.nn.Linear(3, 4), torch.randn(5, 3))
    >>> probs.shape, bool(torch.allclose(probs.sum(1), torch.ones(5)))
    (torch.Size([5, 4]), True)
    """
    check_module(model, "predict")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"predict: batch_size must be a positive int, got {batch_size!r}")
    if views is not None and not callable(views):
        raise TypeError(f"predict: views must be a callable x -> list of batches, got {type(views).__name__}")
    amp_dtype = _as_dtype(amp_dtype, "predict")
    device = torch.device(device) if device is not None else _model_device(model)
    out = []
    with eval_mode(model), torch.inference_mode():
        for batch in _batches(inputs, batch_size):
            x, _ = _split_batch(batch)
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"predict: inputs must yield batches x or (x, y) of tensors, got {type(x).__name__}")
            x, _ = _to_device(x, None, device, False)
            p = 0
            batch_views = views(x) if views is not None else [x]
            for v in batch_views:
                if channels_last and v.ndim == 4:
                    v = v.contiguous(memory_format=torch.channels_last)
                with _autocast(device, amp_dtype):
                    p = p + model(v).float().softmax(1)
            out.append((p / len(batch_views)).cpu())
    if not out:
        raise ValueError("predict: inputs hold no samples")
    return torch.cat(out)


# ============================================================================ fit

def _check_fit_args(model, optimizer, loss_fn, epochs, scheduler_step, callbacks):
    check_module(model, "fit")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"fit: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}; "
                        "e.g. torch.optim.SGD(model.parameters(), lr=0.1)")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable (outputs, targets) -> loss, got {type(loss_fn).__name__}")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"fit: scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
    bad = [c for c in callbacks if not isinstance(c, Callback)]
    if bad:
        raise TypeError(f"fit: callbacks must be cnnbook.pytorch.callbacks.Callback instances, got {bad!r}")


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
        :class:`~cnnbook.pytorch.loader.TensorLoader`, :class:`torch.utils.data.DataLoader`,
        or any iterable.
    optimizer : torch.optim.Optimizer
    loss_fn : callable ``(outputs, targets) -> scalar tensor`` (mean over the batch)
    epochs : int
    metrics : sequence of str or callable, default ("accuracy",)
        "accuracy", "precision", "recall", "f1" (macro averages) or ``f(cm) -> float``.
        Targets outside ``[0, C)`` (``ignore_index=-100``) are left out of the metrics.
    callbacks : sequence of :class:`~cnnbook.pytorch.callbacks.Callback`
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped after every epoch or, with ``scheduler_step="batch"``, after every batch
        (e.g. ``OneCycleLR``). A torch ``ReduceLROnPlateau`` is stepped with ``val_loss``.
    device : torch.device or str, optional
        Default :func:`cnnbook.pytorch.utils.pick_device` (CUDA, then MPS, then CPU).
    amp_dtype : torch.dtype or str, optional
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

    Raises
    ------
    NonFiniteLossError
        When the training loss becomes NaN or infinite; the callbacks' ``on_train_end`` has run
        (``EarlyStopping(restore_best_weights=True)`` has put the best finite weights back) and
        the error's ``history`` holds the finished epochs.
    ValueError
        When ``train_loader`` yields no batch.
    """
    _check_fit_args(model, optimizer, loss_fn, epochs, scheduler_step, callbacks)
    if seed is not None:
        seed_everything(seed)
    device = torch.device(device) if device is not None else pick_device()
    amp_dtype = _as_dtype(amp_dtype, "fit")
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    fns = metric_fns(metrics, "fit")
    scaler = torch.amp.GradScaler(device.type) if (amp_dtype == torch.float16 and device.type == "cuda") else None
    history = History()
    state = FitState(model, optimizer, history, epochs)
    for cb in callbacks:
        cb.on_train_begin(state)
    bars = _ProgressBars(progress, epochs)
    batch_scheduler = scheduler if scheduler_step == "batch" else None
    try:
        for epoch in range(1, epochs + 1):
            start, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
            batch_bar = bars.batches(len(train_loader) if hasattr(train_loader, "__len__") else None, epoch)
            logs = train_one_epoch(model, train_loader, optimizer, loss_fn, device, fns, batch_scheduler,
                                   amp_dtype, channels_last, scaler, batch_bar, epoch=epoch)
            if val_loader is not None:
                val = evaluate(model, val_loader, loss_fn, fns, device, amp_dtype, channels_last)
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
    except NonFiniteLossError as err:
        err.history = history
        raise
    finally:
        for cb in callbacks:
            cb.on_train_end(state)
        bars.close()
    return history


class _ProgressBars:
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
