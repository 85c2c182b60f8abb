"""The same training repeated over seeds, and its table: :func:`fit_seeds`, :func:`summarize_runs`.

Effects smaller than the spread between seeds are not effects: the book trains every compared
setting with at least three seeds and reports ``mean ± std``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from cnnbook.pytorch.train import fit
from cnnbook.pytorch.utils import Table, format_table, seed_everything
from cnnbook.scratch import checks


def fit_seeds(make_model: Callable[[], nn.Module], make_loader: Callable, make_optimizer: Callable,
              epochs: int, seeds: Sequence[int] = (0, 1, 2), loss_fn: Callable | None = None,
              progress: bool = True, desc: str = "seeds", **fit_kwargs) -> list:
    """Train one fresh model per seed and return ``[(model, history), ...]``.

    For each seed: :func:`cnnbook.pytorch.utils.seed_everything`, then ``make_model()`` (so the
    initial weights depend on the seed), ``make_loader()``, ``make_optimizer(params)`` and
    :func:`fit` with ``seed=seed`` and ``fit_kwargs`` (``val_loader``, ``device``...).
    ``loss_fn`` defaults to :class:`torch.nn.CrossEntropyLoss`. ``progress`` shows one bar
    over the seeds (``tqdm.auto``); the runs themselves show none.
    """
    from tqdm.auto import tqdm

    for name, f in (("make_model", make_model), ("make_loader", make_loader), ("make_optimizer", make_optimizer)):
        if not callable(f):
            raise TypeError(f"fit_seeds: {name} must be a callable (it is called once per seed), "
                            f"got {type(f).__name__}")
    if isinstance(make_model, nn.Module):
        raise TypeError(f"fit_seeds: make_model must be a function that builds a fresh model "
                        f"(e.g. lambda: LeNet()), got the model {type(make_model).__name__} itself; "
                        "each seed needs its own initial weights")
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) == 0:
        raise ValueError(f"fit_seeds: seeds must be a non-empty sequence of ints, e.g. (0, 1, 2), got {seeds!r}")
    if not all(checks.is_int(seed) for seed in seeds):
        raise TypeError(f"fit_seeds: seeds must be ints, got {list(seeds)!r}")
    runs = []
    for seed in tqdm(seeds, desc=desc, leave=False, disable=not progress):
        seed_everything(seed)
        model = make_model()
        history = fit(model, make_loader(), make_optimizer(model.parameters()),
                      loss_fn if loss_fn is not None else nn.CrossEntropyLoss(), epochs,
                      progress=False, seed=seed, **fit_kwargs)
        runs.append((model, history))
    return runs


def summarize_runs(results, digits: int = 3) -> Table:
    """Tabulate repeated runs as ``mean ± std`` (sample standard deviation, n runs).

    Parameters
    ----------
    results : mapping setting -> mapping measure -> sequence of float
        e.g. ``{"Adam": {"train loss": [0.41, 0.43, 0.40]}, "SGD": {...}}``.

    Returns
    -------
    Table
        One row per setting, one column per measure.

    Examples
    --------
    >>> summarize_runs({"Adam": {"loss": [0.4, 0.5, 0.6]}, "SGD": {"loss": [0.9]}})
    setting                 loss
    ----------------------------
    Adam     0.500 ± 0.100 (n=3)
    SGD                    0.900
    """
    if not hasattr(results, "items"):
        raise TypeError(f"summarize_runs: results must be a mapping setting -> {{measure: values}}, "
                        f"got {type(results).__name__}")
    bad = [s for s in results if not hasattr(results[s], "items")]
    if bad:
        raise TypeError(f"summarize_runs: results must map each setting to a dict measure -> values, but "
                        f"{bad[0]!r} maps to a {type(results[bad[0]]).__name__}; "
                        "e.g. {'Adam': {'loss': [0.4, 0.5]}}")
    if not checks.is_int(digits) or digits < 0:
        raise ValueError(f"summarize_runs: digits must be an int >= 0, got {digits!r}")
    settings = list(results)
    measures = list(dict.fromkeys(m for s in settings for m in results[s]))
    rows = [[s] + [_mean_std(results[s].get(m, []), digits, f"{s!r}, {m!r}") for m in measures] for s in settings]
    return format_table(["setting", *measures], rows)


def _mean_std(values, digits: int, where: str) -> str:
    try:
        v = torch.as_tensor(list(values), dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"summarize_runs: results[{where}] must be a sequence of numbers, got {values!r}") from None
    if v.ndim != 1:
        raise ValueError(f"summarize_runs: results[{where}] must be a flat sequence of numbers, got shape "
                         f"{tuple(v.shape)}")
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{int(v.item())}" if float(v.item()).is_integer() else f"{v.item():.{digits}f}"
    return f"{v.mean().item():.{digits}f} ± {v.std().item():.{digits}f} (n={len(v)})"
