"""Small helpers every chapter uses: seeding, choosing a device, eval mode for a block, text tables.

- :func:`seed_everything`, :func:`pick_device`;
- :func:`check_module`: the type check of every ``model`` argument in the package;
- :func:`eval_mode`: a ``with`` block in which a model is in eval mode, restored afterwards
  (every prediction, evaluation, summary and explanation in the package goes through it);
- :func:`format_table` and :class:`Table`: the one plain-text table printer of the package.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence

import numpy as np


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python, NumPy and (if installed) torch; return a fresh NumPy Generator.

    Examples
    --------
    >>> int(seed_everything(3).integers(10)) == int(seed_everything(3).integers(10))
    True
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed_everything: seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def pick_device(prefer: str | None = None):
    """Return the best available ``torch.device``: CUDA, then Apple's MPS, then the CPU.

    ``prefer`` ("cpu", "cuda", "mps") forces a choice and raises ``ValueError`` when that
    device is not available here.

    Examples
    --------
    >>> pick_device("cpu")
    device(type='cpu')
    """
    import torch

    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if prefer is not None:
        if prefer not in available:
            raise ValueError(f"pick_device: prefer must be one of {sorted(available)}, got {prefer!r}")
        if not available[prefer]:
            raise ValueError(f"pick_device: device {prefer!r} is not available on this machine")
        return torch.device(prefer)
    for name in ("cuda", "mps"):
        if available[name]:
            return torch.device(name)
    return torch.device("cpu")


def check_module(model, func: str) -> None:
    """Raise a ``TypeError`` naming ``func`` unless ``model`` is a ``torch.nn.Module``.

    Examples
    --------
    >>> check_module("LeNet", "fit")
    Traceback (most recent call last):
    ...
    TypeError: fit: model must be a torch.nn.Module, got str
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{func}: model must be a torch.nn.Module, got {type(model).__name__}")


@contextlib.contextmanager
def eval_mode(model):
    """Put ``model`` in eval mode for a ``with`` block, then restore its train/eval mode.

    Dropout is off and batch norm uses its running statistics inside the block; the mode
    comes back also when the block raises. Gradients are not switched off: combine with
    ``torch.no_grad()`` where none are needed.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Dropout(0.5)
    >>> with eval_mode(net):
    ...     net.training
    False
    >>> net.training
    True
    """
    if not (hasattr(model, "training") and hasattr(model, "train")):
        raise TypeError(f"eval_mode: model must be a torch.nn.Module, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class Table(str):
    """A string that a notebook shows as it is (its ``repr`` is the text itself)."""

    def __repr__(self) -> str:
        return str(self)


def format_table(header: Sequence, rows: Sequence[Sequence], align: str | None = None,
                 rule: bool = True) -> Table:
    """Lay out ``rows`` under ``header`` in columns as wide as their widest cell.

    Parameters
    ----------
    header : sequence
        One entry per column (converted with ``str``).
    rows : sequence of sequences
        Each as long as ``header``; cells are converted with ``str``.
    align : str, optional
        One letter per column, ``"l"`` (left) or ``"r"`` (right); default: the first column
        left, the others right (names, then numbers).
    rule : bool, default True
        A line of dashes under the header.

    Returns
    -------
    Table

    Examples
    --------
    >>> format_table(["model", "acc"], [["LeNet", "0.91"], ["ResNet", "0.93"]])
    model    acc
    ------------
    LeNet   0.91
    ResNet  0.93
    """
    _check_cells("header", header)
    _check_cells("rows", rows)
    for i, row in enumerate(rows):
        _check_cells(f"row {i}", row)
    if not isinstance(rule, bool):
        raise TypeError(f"format_table: rule must be True or False, got {rule!r}")
    header = [str(h) for h in header]
    rows = [[str(c) for c in r] for r in rows]
    bad = [i for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise ValueError(f"format_table: row {bad[0]} has {len(rows[bad[0]])} cells for "
                         f"{len(header)} columns")
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"format_table: align must be one 'l' or 'r' per column, got {align!r}")
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                         for c, w, a in zip(cells, widths, align)).rstrip()

    lines = [line(header)] + (["-" * (sum(widths) + 2 * (len(widths) - 1))] if rule else [])
    return Table("\n".join(lines + [line(r) for r in rows]))


def _check_cells(name: str, cells) -> None:
    """A list (or tuple, or array) of cells; a string is not: "ab" would be two cells."""
    if isinstance(cells, str) or not isinstance(cells, (Sequence, np.ndarray)):
        raise TypeError(f"format_table: {name} must be a list of cells, got {type(cells).__name__} {cells!r}")
