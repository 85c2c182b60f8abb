"""Data augmentation of whole batches on tensors: shifts, crops, flips and random affine maps.

- :func:`shift_images`: move each image of a batch by its own whole number of pixels,
  filling the uncovered border (pad, then gather). It is the one shift of the package:
  :func:`random_shift_flip` (training: ``RandomCrop`` with padding + ``RandomHorizontalFlip``)
  and :func:`tta_views` (testing: fixed shifts and mirror images) both call it.
- :func:`random_affine`: per-image random rotation, shift, zoom and flip in one
  ``grid_sample`` call (interpolated, so fractions of a pixel are possible).
- :class:`RandomShiftFlip` and :class:`BatchRandomAffine` hold the settings, for
  ``TensorLoader(transform=...)``.

torchvision's transforms, applied to a batch tensor, draw *one* set of random parameters for
the whole batch; the functions here draw one per image, on the images' device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnbook.scratch import checks

INF = float("inf")


def _check_batch(x, func: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{func}: x must be a torch.Tensor of images (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{func}: x must be a batch (N, C, H, W), got shape {tuple(x.shape)}")


def _check_probability(func: str, name: str, p) -> None:
    if not checks.is_number(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{func}: {name} must be a probability in [0, 1], got {p!r}")


def _as_shifts(func: str, name: str, shift, n: int, device) -> torch.Tensor:
    """An int, or integer tensor of N shifts, as a (N,) long tensor."""
    if checks.is_int(shift):
        return torch.full((n,), int(shift), dtype=torch.long, device=device)
    if not (isinstance(shift, torch.Tensor) and not shift.is_floating_point() and shift.dtype != torch.bool
            and shift.ndim <= 1 and shift.numel() in (1, n)):
        raise TypeError(f"{func}: {name} must be an int or an integer tensor of {n} shifts (one per image), "
                        f"got {shift!r}")
    return shift.to(device=device, dtype=torch.long).expand(n)


def _check_shift_flip(func: str, max_shift, hflip_p) -> None:
    if not checks.is_int(max_shift) or max_shift < 0:
        raise ValueError(f"{func}: max_shift must be an int >= 0, got {max_shift!r}")
    _check_probability(func, "hflip_p", hflip_p)


def _check_fill(func: str, fill) -> None:
    checks.check_number(func, "fill", fill, low=-INF, high=INF, low_open=True, high_open=True)


def _check_affine(func: str, degrees, translate, scale, hflip_p, fill) -> None:
    pairs = all(isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(checks.is_number, pair))
                for pair in (translate, scale))
    if not pairs or not min(scale) > 0:
        raise ValueError(f"{func}: translate and scale must be pairs (scale > 0), got "
                         f"translate={translate!r}, scale={scale!r}")
    checks.check_number(func, "degrees", degrees, high=INF, high_open=True)
    for i in range(2):
        checks.check_number(func, f"translate[{i}]", translate[i], high=1.0)
        checks.check_number(func, f"scale[{i}]", scale[i], high=INF, low_open=True, high_open=True)
    _check_probability(func, "hflip_p", hflip_p)
    _check_fill(func, fill)


def shift_images(x: torch.Tensor, dy, dx, fill: float = 0.0, pad: int | None = None) -> torch.Tensor:
    """Move image ``i`` of a batch ``dy[i]`` pixels down and ``dx[i]`` pixels right.

    Pixels shifted in from outside get the value ``fill``. Nothing is interpolated, so the
    images stay sharp. The loop version, for one image and one offset, is
    ``out[:, r, c] = x[:, r - dy, c - dx]`` where that lies inside the image, else ``fill``;
    here one pad and one indexing operation do the whole batch.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(N, C, H, W)``.
    dy, dx : int or integer tensor ``(N,)``
        Shifts in pixels (negative: up / left); an int shifts every image the same way.
    fill : float, default 0
    pad : int, optional
        Border added before gathering, at least the largest ``|dy|``, ``|dx|`` (a smaller one
        raises ``ValueError``); default: that largest shift. With shift tensors, it is read back
        from them: a device synchronisation on a GPU, which :func:`random_shift_flip` avoids
        (its shifts are at most ``max_shift``).

    Returns
    -------
    torch.Tensor
        ``(N, C, H, W)``; ``x`` itself when both shifts are the int 0.

    Examples
    --------
    >>> x = torch.arange(1., 10.).view(1, 1, 3, 3)
    >>> shift_images(x, 1, 0)[0, 0]
    tensor([[0., 0., 0.],
            [1., 2., 3.],
            [4., 5., 6.]])
    >>> shift_images(x, 0, -1, fill=-1.0)[0, 0]
    tensor([[ 2.,  3., -1.],
            [ 5.,  6., -1.],
            [ 8.,  9., -1.]])
    """
    func = "shift_images"
    _check_batch(x, func)
    _check_fill(func, fill)
    ints = checks.is_int(dy) and checks.is_int(dx)
    if ints and dy == 0 and dx == 0:
        return x
    largest = max(abs(dy), abs(dx)) if ints else None
    n = x.shape[0]
    dy, dx = _as_shifts(func, "dy", dy, n, x.device), _as_shifts(func, "dx", dx, n, x.device)
    if largest is None:
        largest = int(max(dy.abs().max(), dx.abs().max())) if n else 0      # one read-back from the device
    if pad is None:
        pad = largest
    elif not checks.is_int(pad) or pad < largest:
        raise ValueError(f"shift_images: pad must be an int >= the largest shift {largest}, got {pad!r}; "
                         "a smaller border would shift in pixels from the wrong place")
    return _shift_images(x, dy, dx, fill, int(pad))


def _shift_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, fill: float, p: int) -> torch.Tensor:
    """:func:`shift_images` without the checks: ``dy``, ``dx`` are (N,) long tensors, ``p`` >= every shift."""
    n, c, h, w = x.shape
    padded = F.pad(x, (p, p, p, p), value=fill)                             # (N, C, H+2p, W+2p)
    rows = (p - dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]   # (N, 1, H, 1)
    cols = (p - dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]   # (N, 1, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]                                  # (N, C, H, W)


def random_shift_flip(x: torch.Tensor, max_shift: int = 2, hflip_p: float = 0.5, fill: float = 0.0,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image of a batch by its own random whole number of pixels; mirror some.

    The batch version of ``RandomCrop(H, padding=max_shift, fill=fill)`` followed by
    ``RandomHorizontalFlip(hflip_p)``: each image is mirrored with probability ``hflip_p``,
    then moved by ``dy, dx`` drawn uniformly from ``-max_shift .. max_shift``
    (:func:`shift_images`). ``hflip_p=0`` gives a plain random crop.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(N, C, H, W)``.
    max_shift : int, default 2
        Largest shift in pixels, up, down, left or right (0: no shift).
    hflip_p : float, default 0.5
        Probability that an image is mirrored left-right.
    fill : float, default 0
        Value of the pixels shifted in from outside (the normalized black, for example).
    generator : torch.Generator, optional
        A CPU generator for the random shifts and flips; default: torch's global random state
        on the images' device.

    Shape:
        input and output ``(N, C, H, W)``.

    Examples
    --------
    >>> x = torch.arange(4.).view(1, 1, 2, 2)
    >>> random_shift_flip(x, max_shift=0, hflip_p=1.0)[0, 0]
    tensor([[1., 0.],
            [3., 2.]])
    """
    _check_batch(x, "random_shift_flip")
    _check_shift_flip("random_shift_flip", max_shift, hflip_p)
    _check_fill("random_shift_flip", fill)
    n = x.shape[0]
    # Draw on the images' device unless a (CPU) generator is given: no copy, no GPU sync per batch.
    where = {"generator": generator} if generator is not None else {"device": x.device}
    flip = (torch.rand(n, **where) < hflip_p).to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if max_shift == 0:
        return x
    dy = max_shift - torch.randint(0, 2 * max_shift + 1, (n,), **where).to(x.device)
    dx = max_shift - torch.randint(0, 2 * max_shift + 1, (n,), **where).to(x.device)
    return _shift_images(x, dy, dx, fill, max_shift)      # |dy|, |dx| <= max_shift: no read-back needed


@dataclass
class RandomShiftFlip:
    """:func:`random_shift_flip` as a callable, for ``TensorLoader(transform=...)``."""

    max_shift: int = 2
    hflip_p: float = 0.5
    fill: float = 0.0
    generator: torch.Generator | None = None

    def __post_init__(self):
        _check_shift_flip("RandomShiftFlip", self.max_shift, self.hflip_p)
        _check_fill("RandomShiftFlip", self.fill)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return random_shift_flip(x, self.max_shift, self.hflip_p, self.fill, self.generator)


def shift_image(x: torch.Tensor, dy: int, dx: int, fill: float = 0.0) -> torch.Tensor:
    """Move every image of a batch ``dy`` pixels down and ``dx`` pixels right (:func:`shift_images`)."""
    return shift_images(x, dy, dx, fill)


def tta_views(x: torch.Tensor, flip: bool = True, shift: int = 0, fill: float = 0.0) -> list:
    """The views averaged by test-time augmentation: the images, shifted by ``shift`` pixels
    in each of four directions (if ``shift``), each also mirrored (if ``flip``).

    Returns
    -------
    list of torch.Tensor
        ``(1 + 4*[shift > 0]) * (1 + flip)`` batches shaped like ``x``, the original first.

    Examples
    --------
    >>> len(tta_views(torch.zeros(2, 1, 4, 4), flip=True, shift=1))
    10
    """
    _check_batch(x, "tta_views")
    if not checks.is_int(shift) or shift < 0:
        raise ValueError(f"tta_views: shift must be an int >= 0, got {shift!r}")
    if not isinstance(flip, bool):
        raise TypeError(f"tta_views: flip must be True or False, got {flip!r}")
    offsets = [(0, 0)] + ([(shift, 0), (-shift, 0), (0, shift), (0, -shift)] if shift else [])
    views = []
    for dy, dx in offsets:
        v = shift_images(x, dy, dx, fill)
        views += [v, v.flip(3)] if flip else [v]
    return views


def random_affine(x: torch.Tensor, degrees: float = 0.0, translate: tuple = (0.0, 0.0),
                  scale: tuple = (1.0, 1.0), hflip_p: float = 0.0, fill: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate, shift, zoom and flip every image of a batch by its own random amount.

    The batch version of ``torchvision.transforms.v2.RandomAffine`` + ``RandomHorizontalFlip``.
    Pixels are interpolated (bilinear), so shifts may be fractions of a pixel; for whole-pixel
    shifts that keep images sharp, use :func:`random_shift_flip`.

    Parameters
    ----------
    x : torch.Tensor
        Images ``(N, C, H, W)``.
    degrees : float, default 0
        Rotation angle drawn uniformly from ``[-degrees, degrees]``.
    translate : (float, float), default (0, 0)
        Maximal horizontal and vertical shift as fractions of the width and height.
    scale : (float, float), default (1, 1)
        Zoom factor range (> 1 enlarges).
    hflip_p : float, default 0
        Probability of a horizontal flip.
    fill : float, default 0
        Value of the pixels that come from outside the image.
    generator : torch.Generator, optional
        CPU generator for the random parameters.

    Shape:
        input and output ``(N, C, H, W)``.

    Examples
    --------
    >>> x = torch.rand(3, 1, 5, 5)
    >>> torch.allclose(random_affine(x), x, atol=1e-6)     # all ranges empty: the identity
    True
    """
    _check_batch(x, "random_affine")
    _check_affine("random_affine", degrees, translate, scale, hflip_p, fill)
    n = x.shape[0]
    u = lambda lo, hi: (torch.rand(n, generator=generator) * (hi - lo) + lo)  # noqa: E731
    angle = torch.deg2rad(u(-degrees, degrees))
    zoom = u(*scale)
    flip = torch.where(torch.rand(n, generator=generator) < hflip_p, -1.0, 1.0)
    tx, ty = 2 * u(-translate[0], translate[0]), 2 * u(-translate[1], translate[1])  # grid spans [-1, 1]
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                         torch.stack([sin * flip, cos, ty], 1)], 1)               # (N, 2, 3)
    theta = theta.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)               # (N, H, W, 2)
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


@dataclass
class BatchRandomAffine:
    """A callable holding :func:`random_affine`'s settings, for ``TensorLoader(transform=...)``."""

    degrees: float = 0.0
    translate: tuple = (0.0, 0.0)
    scale: tuple = (1.0, 1.0)
    hflip_p: float = 0.0
    fill: float = 0.0
    generator: torch.Generator | None = None

    def __post_init__(self):
        _check_affine("BatchRandomAffine", self.degrees, self.translate, self.scale, self.hflip_p, self.fill)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return random_affine(x, self.degrees, self.translate, self.scale, self.hflip_p, self.fill,
                             self.generator)
