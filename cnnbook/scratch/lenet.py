"""Chapter 2's centrepiece: a LeNet-style CNN built from ``cnnbook.scratch.nn``, trained with
``cnnbook.scratch.optim`` on the real Fashion-MNIST, NumPy only.

The whole workflow in a few lines::

    import numpy as np
    from cnnbook.scratch import lenet as scratch_lenet
    (x_train, y_train), (x_test, y_test) = scratch_lenet.load_fashion_mnist()
    model = scratch_lenet.lenet(generator=np.random.default_rng(0))
    history = scratch_lenet.train_scratch(model, x_train, y_train, epochs=1, test=(x_test, y_test))
    history["test_accuracy"][-1], history["seconds"]

The same network in PyTorch, the conversion of its weights and the comparison of the two
live in :mod:`cnnbook.pytorch.twins`: this module never imports torch, not even to load the
data (the IDX files are read with NumPy).

Examples
--------
>>> import numpy as np
>>> model = lenet(generator=np.random.default_rng(0))
>>> predict(model, np.zeros((3, 1, 28, 28), dtype=np.float32)).shape
(3, 10)
>>> sum(p.data.size for p in model.parameters())
61750
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from . import checks, nn, optim

__all__ = ["load_fashion_mnist", "lenet", "lenet_layers", "train_scratch", "predict"]


def _read_idx(path: Path, header: int) -> np.ndarray:
    """The uint8 payload of an IDX file (16-byte header for images, 8 for labels)."""
    return np.frombuffer(path.read_bytes(), dtype=np.uint8, offset=header)


def load_fashion_mnist(root=None):
    """Fashion-MNIST as NumPy arrays, read straight from the verified IDX files.

    Returns
    -------
    ((x_train, y_train), (x_test, y_test))
        Images float32 in [0, 1], shape (N, 1, 28, 28); labels int64, shape (N,);
        N = 60,000 and 10,000.
    """
    # finds and verifies the files (the search order and checksums live there); it imports
    # torchvision only to download files that no local source has
    from cnnbook.pytorch.data import ensure_fashion_mnist

    raw = Path(ensure_fashion_mnist(root)) / "FashionMNIST" / "raw"
    splits = []
    for prefix in ("train", "t10k"):
        images = _read_idx(raw / f"{prefix}-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28)
        labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte", 8).astype(np.int64)
        splits.append((images.astype(np.float32) / 255, labels))
    return tuple(splits)


# ---------------------------------------------------------------- argument checks
def _check_architecture(fn, num_classes, batch_norm):
    checks.as_int(fn, "num_classes", num_classes, 1)
    if not isinstance(batch_norm, bool):
        raise TypeError(f"{fn}: batch_norm must be True or False, got {batch_norm!r}")


def _check_model(fn, model):
    if not isinstance(model, nn.Module):
        hint = ("; hint: this is a torch model, use cnnbook.pytorch.train" if type(model).__module__.startswith("torch")
                else "; hint: build one with lenet()")
        raise TypeError(f"{fn}: model must be a cnnbook.scratch.nn.Module, got {type(model).__name__}{hint}")


def _check_data(fn, images, labels, names=("images", "labels")):
    """Images (N, C, H, W) float32/float64 and N integer class indices."""
    checks.check_array(fn, names[0], images, ndim=(4,), layout="(N, C, H, W)")
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{fn}: {names[1]} must be a 1-D NumPy array of integer class indices, got "
                        f"{type(labels).__name__} {getattr(labels, 'dtype', '')} of shape {np.shape(labels)}")
    if len(labels) != len(images):
        raise ValueError(f"{fn}: got {len(images)} {names[0]} but {len(labels)} {names[1]}; give one label per image")
    if len(images) == 0:
        raise ValueError(f"{fn}: {names[0]} hold no samples")


# ---------------------------------------------------------------- the network
def lenet_layers(nn, num_classes=10, batch_norm=True, layer_kwargs=None, norm_kwargs=None):
    """LeNet-5's layers for 28x28 inputs, with ReLU, max pooling and (optionally) batch norm.

    ``nn`` is the namespace the layers come from: :mod:`cnnbook.scratch.nn` here, ``torch.nn``
    for the torch twin (:func:`cnnbook.pytorch.twins.lenet_torch`), so both have the same
    layers in the same order, hence the same ``state_dict`` keys. ``layer_kwargs`` go to
    every Conv2d and Linear, ``norm_kwargs`` to every BatchNorm2d.
    """
    missing = [name for name in ("Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear")
               if not hasattr(nn, name)]
    if missing:
        raise TypeError(f"lenet_layers: nn must be a namespace of layers such as cnnbook.scratch.nn or "
                        f"torch.nn, got {type(nn).__name__} without {missing}")
    _check_architecture("lenet_layers", num_classes, batch_norm)
    kw, norm_kw = layer_kwargs or {}, norm_kwargs or {}
    norm = (lambda c: [nn.BatchNorm2d(c, **norm_kw)]) if batch_norm else (lambda c: [])
    return [nn.Conv2d(1, 6, 5, padding=2, **kw), *norm(6), nn.ReLU(), nn.MaxPool2d(2),   # (N, 6, 14, 14)
            nn.Conv2d(6, 16, 5, **kw), *norm(16), nn.ReLU(), nn.MaxPool2d(2),            # (N, 16, 5, 5)
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120, **kw), nn.ReLU(),
            nn.Linear(120, 84, **kw), nn.ReLU(), nn.Linear(84, num_classes, **kw)]


def lenet(num_classes=10, batch_norm=True, generator=None, dtype=np.float32):
    """A LeNet-style CNN as a :class:`cnnbook.scratch.nn.Sequential` (about 62,000 parameters).

    conv 5x5 (6, padding 2) -> [batch norm] -> ReLU -> max pool 2 -> conv 5x5 (16) ->
    [batch norm] -> ReLU -> max pool 2 -> flatten -> 120 -> ReLU -> 84 -> ReLU -> ``num_classes``.

    Parameters
    ----------
    num_classes : int, default 10
    batch_norm : bool, default True
        Insert BatchNorm2d after each convolution (faster, steadier training).
    generator : numpy.random.Generator or None
        Source of the initial weights (None: NumPy's global random state).
    dtype : default float32

    Shape
    -----
    input (N, 1, 28, 28) -> logits (N, num_classes).
    """
    _check_architecture("lenet", num_classes, batch_norm)
    checks.check_generator("lenet", generator)
    checks.check_float_dtype("lenet", dtype)
    return nn.Sequential(*lenet_layers(nn, num_classes, batch_norm, dict(generator=generator, dtype=dtype),
                                       dict(dtype=dtype)))


@contextlib.contextmanager
def _blas_threads(threads):
    """Limit the BLAS threads NumPy uses inside the block (needs threadpoolctl; else no-op)."""
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def _batches(n, batch_size, rng):
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def predict(model, images, batch_size=1000):
    """Logits (N, num_classes) of ``model`` in evaluation mode, batch by batch, saving nothing
    for backward; ``predict(...).argmax(axis=1)`` are the predicted classes."""
    _check_model("predict", model)
    checks.check_array("predict", "images", images, ndim=(4,), layout="(N, C, H, W)")
    checks.as_int("predict", "batch_size", batch_size, 1)
    starts = range(0, len(images), batch_size) if len(images) else [0]   # no images: one empty batch, (0, C)
    was_training = model.training
    model.eval()
    with nn.no_grad():
        logits = np.concatenate([model(images[i:i + batch_size]) for i in starts])
    model.train(was_training)
    return logits


def train_scratch(model, images, labels, *, epochs=1, batch_size=128, lr=3e-3, subset=None, test=None,
                  optimizer=None, lr_decay=True, generator=None, progress=True, blas_threads=1):
    """Train ``model`` with mini-batches, cross-entropy and Adam: forward, backward, step.

    Parameters
    ----------
    model : cnnbook.scratch.nn.Module
        Maps (N, 1, 28, 28) images to logits.
    images, labels : ndarray
        Training data: float32 (N, 1, 28, 28) and int64 (N,).
    epochs : int, default 1
    batch_size : int, default 128
    lr : float, default 3e-3
        Adam's learning rate (ignored when ``optimizer`` is given).
    subset : int or None
        Train on this many training images, drawn once at random (None: all).
    test : (images, labels) or None
        Evaluated after every epoch (not counted in ``seconds``).
    optimizer : cnnbook.scratch.optim.Optimizer or None
        Default: ``Adam(model.parameters(), lr)``.
    lr_decay : bool, default True
        Lower each group's learning rate linearly to 0 over the run (a steadier finish).
    generator : numpy.random.Generator or None
        Shuffling and the subset (None: ``np.random.default_rng(0)``).
    progress : bool, default True
        Show a tqdm progress bar per epoch.
    blas_threads : int or None, default 1
        BLAS threads during training. LeNet's matrix products are small: one thread is as
        fast, and avoids OpenBLAS's threads spinning when other programs share the cores.
        None keeps NumPy's setting.

    Returns
    -------
    dict
        ``loss`` (per step), ``lr`` (per step), ``train_accuracy`` (per epoch, on the batches
        seen), ``test_accuracy`` (per epoch, if ``test``), ``epoch_seconds``, ``seconds``
        (total training time), ``n_train``.
    """
    from tqdm.auto import tqdm

    _check_training_args(model, images, labels, epochs, batch_size, lr, subset, test, optimizer, generator,
                         blas_threads)
    rng = generator if generator is not None else np.random.default_rng(0)
    if subset is not None:
        keep = rng.choice(len(images), size=subset, replace=False)
        images, labels = images[keep], labels[keep]
    opt = optimizer if optimizer is not None else optim.Adam(model.parameters(), lr=lr)
    base_lrs = [group["lr"] for group in opt.param_groups]
    loss_fn = nn.CrossEntropyLoss()
    total_steps = epochs * -(-len(images) // batch_size)
    history = dict(loss=[], lr=[], train_accuracy=[], test_accuracy=[], epoch_seconds=[], n_train=len(images))
    with _blas_threads(blas_threads):
        for epoch in range(epochs):
            model.train()
            start, correct = time.perf_counter(), 0
            bar = tqdm(_batches(len(images), batch_size, rng), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress)
            for batch in bar:
                if lr_decay:
                    for group, base in zip(opt.param_groups, base_lrs):
                        group["lr"] = base * (1 - len(history["loss"]) / total_steps)
                logits = model(images[batch])
                loss = loss_fn(logits, labels[batch])
                opt.zero_grad()
                model.backward(loss_fn.backward(), input_grad=False)
                opt.step()
                correct += int((logits.argmax(axis=1) == labels[batch]).sum())
                history["loss"].append(float(loss))
                history["lr"].append(opt.param_groups[0]["lr"])
                bar.set_postfix(loss=f"{float(loss):.3f}", refresh=False)
            history["epoch_seconds"].append(time.perf_counter() - start)
            history["train_accuracy"].append(correct / len(images))
            if test is not None:
                predicted = predict(model, test[0]).argmax(axis=1)
                history["test_accuracy"].append(float((predicted == test[1]).mean()))
    history["seconds"] = float(sum(history["epoch_seconds"]))
    return history


def _check_training_args(model, images, labels, epochs, batch_size, lr, subset, test, optimizer, generator,
                         blas_threads):
    fn = "train_scratch"
    _check_model(fn, model)
    _check_data(fn, images, labels)
    checks.as_int(fn, "epochs", epochs, 1)
    checks.as_int(fn, "batch_size", batch_size, 1)
    checks.check_number(fn, "lr", lr)
    if subset is not None and checks.as_int(fn, "subset", subset, 1) > len(images):
        raise ValueError(f"{fn}: subset must be at most the number of images, {len(images)}, got {subset}")
    if test is not None:
        if not (isinstance(test, (tuple, list)) and len(test) == 2):
            raise TypeError(f"{fn}: test must be None or a pair (images, labels), got {type(test).__name__}")
        _check_data(fn, *test, names=("test[0] (images)", "test[1] (labels)"))
    if optimizer is not None and not isinstance(optimizer, optim.Optimizer):
        raise TypeError(f"{fn}: optimizer must be None or a cnnbook.scratch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    checks.check_generator(fn, generator)
    if blas_threads is not None:
        checks.as_int(fn, "blas_threads", blas_threads, 1)
