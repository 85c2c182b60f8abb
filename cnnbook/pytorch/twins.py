"""The torch twin of chapter 2's NumPy LeNet: the same network in ``torch.nn``, its weights
converted, and the two compared.

:mod:`cnnbook.scratch.lenet` builds and trains the LeNet in NumPy alone; this module puts it
next to PyTorch, which is where torch belongs: ``lenet_torch`` builds the same layers from
``torch.nn`` (hence the same ``state_dict`` keys), ``torch_state_dict`` turns the NumPy
model's weights into tensors, and ``compare_with_torch`` checks that both give the same
predictions.

Examples
--------
>>> import numpy as np
>>> from cnnbook.scratch import lenet as scratch_lenet
>>> ours = scratch_lenet.lenet(generator=np.random.default_rng(0))
>>> theirs = lenet_torch()
>>> theirs.load_state_dict(torch_state_dict(ours))
<All keys matched successfully>
>>> compare_with_torch(ours, theirs, np.zeros((4, 1, 28, 28), dtype=np.float32))["same_predictions"]
True
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from cnnbook.scratch import checks
from cnnbook.scratch import nn as scratch_nn
from cnnbook.scratch.lenet import _check_architecture, lenet_layers, predict

__all__ = ["lenet_torch", "torch_state_dict", "compare_with_torch"]


def lenet_torch(num_classes=10, batch_norm=True):
    """:func:`cnnbook.scratch.lenet.lenet` in PyTorch: the same layers, the same state_dict keys."""
    _check_architecture("lenet_torch", num_classes, batch_norm)
    return torch.nn.Sequential(*lenet_layers(torch.nn, num_classes, batch_norm))


def torch_state_dict(model):
    """``model.state_dict()`` of a :mod:`cnnbook.scratch.nn` model as torch tensors (copies),
    for ``torch_model.load_state_dict``."""
    _check_scratch_model("torch_state_dict", model)
    return {key: torch.from_numpy(np.array(value)) for key, value in model.state_dict().items()}


def compare_with_torch(model, torch_model, images, batch_size=1000):
    """Load ``model``'s weights into ``torch_model`` and compare predictions, both in float64.

    float64 keeps rounding differences (about 1e-12) far below any gap between two logits,
    so the predicted classes must be identical. Neither argument is modified.

    Returns
    -------
    dict
        ``same_predictions`` (bool), ``n_different``, ``max_logit_difference``, ``n``.
    """
    fn = "compare_with_torch"
    _check_scratch_model(fn, model)
    if not isinstance(torch_model, torch.nn.Module):
        raise TypeError(f"{fn}: torch_model must be a torch.nn.Module, got {type(torch_model).__name__}; "
                        "hint: lenet_torch()")
    checks.check_array(fn, "images", images, ndim=(4,), layout="(N, C, H, W)")
    if len(images) == 0:
        raise ValueError(f"{fn}: images hold no samples")
    checks.as_int(fn, "batch_size", batch_size, 1)
    ours = copy.deepcopy(model).double()
    theirs = copy.deepcopy(torch_model).double().eval()
    try:
        theirs.load_state_dict(torch_state_dict(ours))
    except RuntimeError as err:              # torch names the missing, unexpected or misshapen keys
        raise ValueError(f"{fn}: model's weights do not fit torch_model: {err}") from None
    images = images.astype(np.float64)
    logits = predict(ours, images, batch_size)
    with torch.no_grad():
        expected = torch.cat([theirs(torch.from_numpy(images[i:i + batch_size]))
                              for i in range(0, len(images), batch_size)]).numpy()
    different = int((logits.argmax(axis=1) != expected.argmax(axis=1)).sum())
    return dict(same_predictions=different == 0, n_different=different, n=len(images),
                max_logit_difference=float(np.abs(logits - expected).max()))


def _check_scratch_model(fn, model):
    if not isinstance(model, scratch_nn.Module):
        raise TypeError(f"{fn}: model must be a cnnbook.scratch.nn.Module (the NumPy network), got "
                        f"{type(model).__name__}; hint: cnnbook.scratch.lenet.lenet()")
