"""Weight files: :func:`save_weights` writes a model's ``state_dict`` and, beside it, its SHA-256;
:func:`load_weights` checks that checksum before loading, so a damaged file is refused.

Loading uses ``torch.load(weights_only=True)``, which only unpickles tensors and plain
containers: a checkpoint file cannot run code when it is loaded.

Examples
--------
>>> import tempfile, torch
>>> net = torch.nn.Linear(2, 1)
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = save_weights(net, f"{tmp}/net.pt")
...     sorted(p.name for p in path.parent.iterdir())
...     torch.equal(load_weights(torch.nn.Linear(2, 1), path).weight, net.weight)
['net.pt', 'net.pt.sha256']
True
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
from torch import nn


def checksum_path(path) -> Path:
    """The file holding the SHA-256 of ``path``: the same name with ``.sha256`` appended."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _as_path(path, func: str) -> Path:
    if not isinstance(path, (str, Path)):
        raise TypeError(f"{func}: path must be a file name (str or pathlib.Path), got {type(path).__name__}")
    if Path(path).is_dir():
        raise ValueError(f"{func}: path {str(path)!r} is a folder; give a file name inside it, e.g. 'net.pt'")
    return Path(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_weights(model: nn.Module, path) -> Path:
    """``torch.save(model.state_dict(), path)`` and its SHA-256 beside it, creating the folder.

    Returns
    -------
    pathlib.Path
        ``path``; the checksum is in :func:`checksum_path` of it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_weights: model must be a torch.nn.Module, got {type(model).__name__}")
    path = _as_path(path, "save_weights")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    checksum_path(path).write_text(_sha256(path) + "\n")
    return path


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def load_weights(model: nn.Module, path, map_location=None) -> nn.Module:
    """Load a ``state_dict`` saved by :func:`save_weights` into ``model``; return ``model``.

    When the checksum file exists (always, for files from :func:`save_weights`), the file must
    match it; a file saved some other way is loaded unchecked.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file does not match its checksum (it was damaged or changed after saving), or
        its tensors do not fit the model (the message names the key).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"load_weights: model must be a torch.nn.Module, got {type(model).__name__}")
    path = _as_path(path, "load_weights")
    if not path.is_file():
        raise FileNotFoundError(f"load_weights: no file {path}")
    expected = checksum_path(path)
    if expected.is_file() and expected.read_text().strip() != _sha256(path):
        raise ValueError(f"load_weights: {path} does not match its checksum in {expected.name}: the "
                         "file was damaged or changed after it was saved; save the weights again")
    try:
        state = torch.load(path, map_location=map_location or _model_device(model), weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:       # not a file of torch.save
        raise ValueError(f"load_weights: {path} is not a weights file written by torch.save: "
                         f"{str(err).splitlines()[0]}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:                 # torch names the missing, unexpected or misshapen keys
        raise ValueError(f"load_weights: {path} does not fit {type(model).__name__}: {err}") from None
    return model
