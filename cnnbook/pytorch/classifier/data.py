"""Chapter 5's data: the train / validation / test split of Fashion-MNIST as normalized tensors."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cnnbook.pytorch.data import CLASSES, load_tensors


@dataclass
class FashionData:
    """Normalized Fashion-MNIST tensors, split into training, validation and test sets.

    Attributes
    ----------
    x_train, x_val, x_test : torch.Tensor
        Images ``(N, 1, 28, 28)``, float32, normalized with the training set's ``mean`` and ``std``.
    y_train, y_val, y_test : torch.Tensor
        Labels ``(N,)``, int64, in ``0 .. len(classes) - 1``.
    classes : tuple of str
        The class names, in label order.
    mean, std : float
        Pixel mean and standard deviation of the training images in [0, 1] (before normalizing).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple
    mean: float
    std: float

    @property
    def fill(self) -> float:
        """The normalized value of a black pixel (what shifted-in borders are filled with)."""
        return -self.mean / self.std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Back to pixel values in [0, 1]: ``x * std + mean``."""
        return x * self.std + self.mean


def _class_subset(images, labels, classes):
    """Keep the images of ``classes`` (names) and relabel them ``0 .. len(classes) - 1``."""
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"prepare_data: unknown classes {unknown}; Fashion-MNIST has {list(CLASSES)}")
    old = torch.tensor([CLASSES.index(c) for c in classes])
    keep = torch.isin(labels, old)
    new_label = torch.full((len(CLASSES),), -1, dtype=torch.long)
    new_label[old] = torch.arange(len(classes))
    return images[keep], new_label[labels[keep]]


def prepare_data(val_size: int = 5000, classes: Sequence[str] | None = None, split_seed: int = 0,
                 root=None) -> FashionData:
    """Load Fashion-MNIST, hold out a validation set, normalize with the training statistics.

    Parameters
    ----------
    val_size : int, default 5000
        Training images held out for validation (chosen at random with ``split_seed``);
        with ``classes``, the same fraction of the kept images is held out.
    classes : sequence of str, optional
        Keep only these classes (names from :data:`cnnbook.pytorch.data.CLASSES`), relabelled in the
        order given. Default: all ten.
    split_seed : int, default 0
        Seed of the random split (independent of the training seed).
    root : path, optional
        Data folder, as in :func:`cnnbook.pytorch.data.load_tensors`.

    Returns
    -------
    FashionData

    Shape:
        ``x_train (N_train, 1, 28, 28)`` with ``N_train = 60000 - val_size`` for ten classes;
        ``x_test (10000, 1, 28, 28)``.
    """
    x, y = load_tensors(train=True, root=root)
    x_test, y_test = load_tensors(train=False, root=root)
    if not isinstance(val_size, int) or not 0 < val_size < len(x):
        raise ValueError(f"prepare_data: val_size must be an int in (0, {len(x)}), got {val_size!r}")
    if classes is not None:
        classes = tuple(classes)
        val_size = round(val_size * sum(int((y == CLASSES.index(c)).sum()) for c in classes
                                        if c in CLASSES) / len(x))
        x, y = _class_subset(x, y, classes)
        x_test, y_test = _class_subset(x_test, y_test, classes)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    val, train = order[:val_size], order[val_size:]
    mean, std = x[train].mean().item(), x[train].std().item()
    norm = lambda t: (t - mean) / std  # noqa: E731
    return FashionData(norm(x[train]), y[train], norm(x[val]), y[val], norm(x_test), y_test,
                       classes or CLASSES, mean, std)
