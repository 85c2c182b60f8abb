"""Mini-batches from tensors held in memory: :class:`TensorLoader`.

Much faster than a :class:`torch.utils.data.DataLoader` with per-image transforms on a laptop
CPU: a batch is one indexing operation, and augmentation is applied to the whole batch at once
(:mod:`cnnbook.pytorch.augment`). A standard ``DataLoader`` works everywhere a
``TensorLoader`` does.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


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
        Applied to the *first* tensor of each batch (e.g.
        :class:`cnnbook.pytorch.augment.RandomShiftFlip`).
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

    Examples
    --------
    >>> x, y = torch.arange(5.), torch.arange(5)
    >>> [b[1].tolist() for b in TensorLoader(x, y, batch_size=2)]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, transform: Callable | None = None,
                 generator: torch.Generator | None = None, sampler: Iterable[int] | None = None,
                 device=None):
        if not tensors:
            raise ValueError("TensorLoader: give at least one tensor, e.g. TensorLoader(x, y)")
        bad = [type(t).__name__ for t in tensors if not isinstance(t, torch.Tensor)]
        if bad:
            raise TypeError(f"TensorLoader: tensors must be torch.Tensors, got {bad}; "
                            "convert with torch.as_tensor(...) first")
        if any(t.ndim == 0 for t in tensors):
            raise ValueError(f"TensorLoader: tensors need a first dimension N (one entry per sample), got shapes "
                             f"{[tuple(t.shape) for t in tensors]}")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"TensorLoader: all tensors need the same first dimension, got "
                             f"{[len(t) for t in tensors]}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"TensorLoader: batch_size must be a positive int, got {batch_size!r}")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, bool):
                raise TypeError(f"TensorLoader: {name} must be True or False, got {flag!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"TensorLoader: generator must be a torch.Generator, got {type(generator).__name__}; "
                            "hint: torch.Generator().manual_seed(0)")
        if sampler is not None and not hasattr(sampler, "__iter__"):
            raise TypeError(f"TensorLoader: sampler must be an iterable of indices, got {type(sampler).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("TensorLoader: sampler and shuffle=True exclude each other (as in DataLoader)")
        if transform is not None and not callable(transform):
            raise TypeError(f"TensorLoader: transform must be callable, got {type(transform).__name__}")
        try:
            self.tensors = tuple(t.to(device) for t in tensors) if device is not None else tensors
        except RuntimeError as err:                 # torch: "Expected one of cpu, cuda, ... device type"
            raise ValueError(f"TensorLoader: device {device!r} is not a device here: {err}") from None
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
            indices = list(self.sampler)
            try:
                order = torch.as_tensor(indices, dtype=torch.long if not indices else None)
            except (TypeError, ValueError, RuntimeError):      # not numbers, or too large for int64
                order = None
            if order is None or order.ndim != 1 or order.is_floating_point() or order.dtype == torch.bool:
                raise ValueError(f"TensorLoader: sampler must yield integer indices, got {indices[:5]}")
            order = order.long()
            if len(order) and (order.min() < -n or order.max() >= n):
                raise ValueError(f"TensorLoader: sampler yielded indices in [{int(order.min())}, {int(order.max())}] "
                                 f"for {n} samples")
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
