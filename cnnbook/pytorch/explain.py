"""Where does a trained CNN look? Gradient saliency and Grad-CAM, and a figure to show them.

- :func:`saliency` (Simonyan, Vedaldi & Zisserman, 2014): how strongly each input pixel
  changes the score of a class, ``|d score_c / d x|``, maximized over the input channels.
- :func:`grad_cam` (Selvaraju et al., 2017): the feature maps of one convolutional layer,
  weighted by the average gradient of the class score over each map, summed, passed through
  ReLU and upsampled to the input size: coarser than saliency, but class-specific and less
  noisy.
- :func:`show_explanations`: images, their maps and the predicted class in one figure.

Both maps use the *score* (the logit before softmax) of the target class, as the papers do,
and leave the model's weights and train/eval mode unchanged.

Examples
--------
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
>>> saliency(net, torch.ones(1, 1, 2, 2), target=1).shape
torch.Size([1, 2, 2])
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnbook.pytorch.utils import check_module, eval_mode


def _check_images(model, x, func: str) -> None:
    check_module(model, func)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{func}: images must be a torch.Tensor batch (N, C, H, W), got {type(x).__name__}; "
                        "hint: torch.as_tensor(images)")
    if x.ndim != 4:
        raise ValueError(f"{func}: images must be a batch (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{func}: images must be floating point (normalized as in training), got {x.dtype}")


def _targets(model: nn.Module, x: torch.Tensor, target, func: str) -> torch.Tensor:
    """``target`` as a (N,) tensor of class indices; None means the predicted classes."""
    if target is None:
        with torch.no_grad():
            return model(x).argmax(1)
    try:
        indices = torch.as_tensor(target, device=x.device)
    except (TypeError, ValueError, RuntimeError):
        indices = None
    if indices is None or indices.is_floating_point() or indices.dtype == torch.bool:
        raise TypeError(f"{func}: target must be a class index, a sequence of them or None, got {target!r}")
    target = indices.long().reshape(-1)
    if target.numel() == 1:
        target = target.expand(len(x))
    if len(target) != len(x):
        raise ValueError(f"{func}: target has {len(target)} entries for {len(x)} images; "
                         "give one class per image, a single class, or None")
    return target


def _class_scores(func: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each image's score of its target class, summed (each image's score depends on it only)."""
    num_classes = logits.shape[1]
    if len(target) and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"{func}: target must be class indices in [0, {num_classes}), got {target.tolist()}")
    return logits.gather(1, target[:, None]).sum()


def saliency(model: nn.Module, images: torch.Tensor, target=None) -> torch.Tensor:
    """Vanilla gradient saliency: ``|d score_target / d image|``, maximized over channels.

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode; its mode and weights are left as they were.
    images : torch.Tensor
        A batch ``(N, C, H, W)``, prepared as the model expects (normalized).
    target : int, sequence of int or None, default None
        The class whose score is differentiated, per image; None: the predicted class.

    Returns
    -------
    torch.Tensor
        ``(N, H, W)``, on the images' device, not normalized (compare maps with one scale).
    """
    _check_images(model, images, "saliency")
    with eval_mode(model):
        target = _targets(model, images, target, "saliency")
        x = images.detach().clone().requires_grad_(True)
        scores = _class_scores("saliency", model(x), target)
        (grad,) = torch.autograd.grad(scores, x)
    return grad.abs().amax(dim=1)                             # (N, H, W)


def grad_cam(model: nn.Module, images: torch.Tensor, layer: nn.Module, target=None) -> torch.Tensor:
    """Grad-CAM maps of ``layer`` for the ``target`` class, upsampled to the image size.

    With ``A`` the layer's output ``(N, K, h, w)`` and ``y`` the target's score:
    ``weights = mean over (h, w) of dy/dA`` (shape ``(N, K)``), ``cam = relu(sum_k weights_k * A_k)``,
    then bilinear upsampling to ``(H, W)`` and division by each map's maximum.

    Parameters
    ----------
    model : torch.nn.Module
    images : torch.Tensor
        A batch ``(N, C, H, W)``.
    layer : torch.nn.Module
        A submodule of ``model`` whose output is ``(N, K, h, w)``, usually the last
        convolutional stage (e.g. ``model.relu2`` of a :class:`cnnbook.pytorch.classifier.FashionCNN`).
    target : int, sequence of int or None, default None
        None: the predicted class of each image.

    Returns
    -------
    torch.Tensor
        ``(N, H, W)`` in [0, 1] (a map that is zero everywhere stays zero).

    Shape:
        images ``(N, C, H, W)`` -> ``(N, H, W)``.
    """
    _check_images(model, images, "grad_cam")
    if not any(m is layer for m in model.modules()):
        raise ValueError(f"grad_cam: layer {type(layer).__name__} is not a submodule of the model; "
                         "pass the module object itself, e.g. model.relu2")
    saved = {}
    hook = layer.register_forward_hook(lambda mod, args, out: saved.__setitem__("a", out))
    try:
        with eval_mode(model):
            target = _targets(model, images, target, "grad_cam")
            scores = _class_scores("grad_cam", model(images.detach()), target)
    finally:
        hook.remove()
    acts = saved["a"]
    if acts.ndim != 4:
        raise ValueError(f"grad_cam: the layer's output has shape {tuple(acts.shape)}; choose a layer "
                         "whose output is (N, K, h, w), such as a convolution or its ReLU")
    (grads,) = torch.autograd.grad(scores, acts)
    weights = grads.mean(dim=(2, 3), keepdim=True)                          # (N, K, 1, 1)
    cam = F.relu((weights * acts).sum(1, keepdim=True))                    # (N, 1, h, w)
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).detach()                                           # (N, H, W)


def show_explanations(images, maps: dict, titles: Sequence[str] | None = None,
                      title: str = "Where the network looks", cmap: str = "inferno"):
    """One column per image: the image, then each map overlaid on it.

    Parameters
    ----------
    images : array or tensor ``(N, 1, H, W)`` or ``(N, H, W)``, pixel values for display
    maps : dict of str to array ``(N, H, W)``
        Row label -> maps, e.g. ``{"saliency": s, "Grad-CAM": g}``.
    titles : sequence of str, optional
        One per column (e.g. "true: Shirt / predicted: T-shirt/top 0.61").
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    func = "show_explanations"
    imgs = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    imgs = imgs[:, 0] if imgs.ndim == 4 else imgs                           # (N, H, W)
    if imgs.ndim != 3 or len(imgs) == 0:
        raise ValueError(f"{func}: images must be a non-empty batch (N, 1, H, W) or (N, H, W), got shape "
                         f"{np.shape(images)}")
    if not hasattr(maps, "items"):
        raise TypeError(f"{func}: maps must be a dict of row label -> maps (N, H, W), got {type(maps).__name__}")
    rows = [("image", None)] + [(k, np.asarray(v.detach().cpu() if hasattr(v, "detach") else v))
                                for k, v in maps.items()]
    bad = [k for k, v in rows[1:] if v.shape != imgs.shape]
    if bad:
        raise ValueError(f"{func}: maps[{bad[0]!r}] must have the images' shape {imgs.shape} (one map per image, "
                         f"pixel for pixel), got {dict(rows)[bad[0]].shape}")
    if titles is not None and (isinstance(titles, str) or len(titles) != len(imgs)):
        raise ValueError(f"{func}: titles must give one title per image ({len(imgs)}), got {titles!r}")
    n = len(imgs)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n, 1.7 * len(rows) + 0.6), squeeze=False)
    for r, (label, values) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            ax.imshow(imgs[j], cmap="gray")
            if values is not None:
                ax.imshow(values[j], cmap=cmap, alpha=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
            if r == 0 and titles is not None:
                ax.set_title(titles[j], fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
