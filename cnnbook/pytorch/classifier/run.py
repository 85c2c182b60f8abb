"""Chapter 5's training call and its scoring: train on the training split, choose on validation,
score a finished model (single view and test-time augmentation) on the split it is given."""
from __future__ import annotations

import functools
import math
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnbook.pytorch.augment import RandomShiftFlip, tta_views
from cnnbook.pytorch.callbacks import ModelCheckpoint
from cnnbook.pytorch.checkpoint import load_weights
from cnnbook.pytorch.history import History
from cnnbook.pytorch.loader import TensorLoader
from cnnbook.pytorch.train import fit, predict
from cnnbook.pytorch.utils import check_module, seed_everything
from cnnbook.pytorch.classifier.data import FashionData, prepare_data
from cnnbook.pytorch.classifier.configs import (ClassifierConfig, _resolve_device, build_model, check_config,
                                                make_optimizer)
from cnnbook.scratch import checks


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
    check_module(model, "predict_proba")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"predict_proba: x must be a torch.Tensor of images (N, C, H, W), got {type(x).__name__}")
    if not isinstance(tta, bool):
        raise TypeError(f"predict_proba: tta must be True or False, got {tta!r}")
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
    check_module(model, "score_classifier")
    check_config(config, "score_classifier")
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        raise TypeError(f"score_classifier: x and y must be tensors, got {type(x).__name__} and {type(y).__name__}")
    if y.ndim != 1 or y.is_floating_point():
        raise ValueError(f"score_classifier: y must be 1-D integer class indices, got shape {tuple(y.shape)} "
                         f"{y.dtype}")
    if len(x) != len(y):
        raise ValueError(f"score_classifier: got {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise ValueError("score_classifier: x holds no images")
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
    if not checks.is_int(seed):
        raise TypeError(f"train_classifier: seed must be an int, got {seed!r}")
    if data is not None and not isinstance(data, FashionData):
        raise TypeError(f"train_classifier: data must be a FashionData (from prepare_data), got {type(data).__name__}")
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
    if isinstance(class_names, str):
        raise TypeError(f"most_confused_pairs: class_names must be a sequence of names, got the string {class_names!r}")
    try:
        cm = torch.as_tensor(cm)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"most_confused_pairs: cm must be a (C, C) array of counts, got {type(cm).__name__}") from None
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"most_confused_pairs: cm must be square (C, C), got shape {tuple(cm.shape)}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError(f"most_confused_pairs: k must be an int >= 0, got {k!r}")
    if (cm < 0).any() or (cm.is_floating_point() and not torch.isfinite(cm).all()):
        raise ValueError("most_confused_pairs: cm holds negative counts or NaN; pass a confusion matrix of counts")
    if class_names is not None and len(class_names) != len(cm):
        raise ValueError(f"most_confused_pairs: got {len(class_names)} class_names for {len(cm)} classes")
    c = len(cm)
    pairs = [(cm[i, j].item(), i, j) for i in range(c) for j in range(c) if i != j and cm[i, j] > 0]
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    name = (lambda i: class_names[i]) if class_names is not None else (lambda i: i)  # noqa: E731
    return [(name(i), name(j), count) for count, i, j in pairs[:k]]
