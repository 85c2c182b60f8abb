"""Keras' vocabulary on PyTorch objects: ``Model(net).compile(...).fit(...)``.

:class:`Model` wraps a :class:`torch.nn.Module` and maps Keras' ``compile`` / ``fit`` /
``evaluate`` / ``predict`` / ``summary`` one to one onto :func:`cnnbook.pytorch.train.fit`,
:func:`~cnnbook.pytorch.train.evaluate`, :func:`~cnnbook.pytorch.train.predict` and
:func:`cnnbook.pytorch.models.summary`, so that a reader who knows Keras sees what each word
means in PyTorch. Optimizers and losses are named as in Keras (:data:`OPTIMIZERS`, :data:`LOSSES`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cnnbook.pytorch.history import History, metric_fns
from cnnbook.pytorch.loader import TensorLoader
from cnnbook.pytorch.train import evaluate, fit, predict
from cnnbook.pytorch.utils import pick_device
from cnnbook.scratch import checks

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
    if learning_rate is not None:
        checks.check_number("Model.compile", "learning_rate", learning_rate, high=float("inf"), high_open=True)
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
        if y is None and func != "Model.predict":
            raise ValueError(f"{func}: x is a tensor, so give its targets y too (or a loader that yields (x, y))")
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
        try:
            self.device = torch.device(device) if device is not None else pick_device()
        except (RuntimeError, TypeError) as err:       # torch: "Expected one of cpu, cuda, ... device type"
            raise ValueError(f"Model: device must be a device name such as 'cpu' or 'cuda', got {device!r}: "
                             f"{err}") from None
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
        metric_fns(self.metrics, "Model.compile")   # fail now on an unknown metric name
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
        if isinstance(validation_data, list) and len(validation_data) == 2 and all(
                isinstance(v, torch.Tensor) for v in validation_data):
            raise TypeError("Model.fit: validation_data must be a tuple (x_val, y_val) or a loader, got a list of "
                            "two tensors; hint: validation_data=(x_val, y_val)")
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
        """Class probabilities ``(N, C)``, float32 on the CPU, for tensors ``x`` or a loader
        (:func:`cnnbook.pytorch.train.predict`)."""
        loader = _as_loader(x, None, batch_size, False, "Model.predict")
        return predict(self.net, loader, device=self.device)

    def summary(self, input_size) -> "object":
        """Per-layer table of output shapes and parameters (:func:`cnnbook.pytorch.models.summary`)."""
        from cnnbook.pytorch.models import summary

        return summary(self.net, input_size, device=self.device)
