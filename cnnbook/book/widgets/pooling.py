"""The pooling widget, :func:`pooling_explorer`: max and average pooling side by side, and
what a shift of a few pixels changes (from :mod:`cnnbook.scratch.functional`).
"""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from cnnbook.book.widgets._explorer import Explorer, _check_sequence
from cnnbook.book.widgets._pictures import _as_image, _images_dict, _panel, _png, _row
from cnnbook.scratch import checks


@dataclass(frozen=True)
class PoolFrame:
    """What one pooling-explorer picture shows."""
    mode: str               # "max" or "avg"
    kernel_size: int
    stride: int
    shift: int              # pixels the input was moved to the right
    input: np.ndarray       # (H, W), shifted
    output: np.ndarray      # (H_out, W_out) pooled shifted input
    reference: np.ndarray   # (H_out, W_out) pooled unshifted input


def _shift_right(image, pixels):
    out = np.zeros_like(image)
    out[:, pixels:] = image[:, :max(image.shape[1] - pixels, 0)]     # shifted past the edge: nothing left
    return out


def pool_frame(image, mode, kernel_size, shift, stride=None) -> PoolFrame:
    """Pool an image shifted right by ``shift`` pixels, and the unshifted one for comparison.

    >>> image = np.zeros((4, 4)); image[0, 0] = 1.0
    >>> frame = pool_frame(image, "max", kernel_size=2, shift=1)   # the bright pixel moves to column 1
    >>> frame.output.tolist() == frame.reference.tolist()         # still in the same 2x2 window
    True
    """
    from cnnbook.scratch import functional as F

    image = _as_image(image, "pool_frame", "image")
    if mode not in ("max", "avg"):
        raise ValueError(f"pool_frame: mode must be 'max' or 'avg', got {mode!r}")
    checks.as_int("pool_frame", "kernel_size", kernel_size, 1)
    checks.as_int("pool_frame", "shift", shift, 0)
    stride = kernel_size if stride is None else checks.as_int("pool_frame", "stride", stride, 1)
    pool = {"max": F.max_pool2d, "avg": F.avg_pool2d}[mode]
    shifted = _shift_right(image, shift)
    out = pool(shifted[None, None], kernel_size, stride=stride)[0, 0]
    ref = pool(image[None, None], kernel_size, stride=stride)[0, 0]
    return PoolFrame(mode, kernel_size, stride, shift, shifted, out, ref)


class PoolingExplorer(Explorer):
    title = "Pooling explorer: what max and average pooling keep, and what a small shift changes"
    help = ("The right panel compares the pooled shifted image with the pooled original: the "
            "smaller the change, the more the pooling absorbed the shift.")

    def __init__(self, images, kernel_sizes=(2, 4), shifts=(0, 1, 2)):
        self.image_arrays = images
        controls = [widgets.Dropdown(options=list(images), description="image"),
                    widgets.ToggleButtons(options=["max", "avg"], description="pooling",
                                          style={"button_width": "60px"}),
                    widgets.ToggleButtons(options=[f"{k}×{k}" for k in kernel_sizes], description="window",
                                          style={"button_width": "60px"}),
                    widgets.IntSlider(value=0, min=0, max=len(shifts) - 1, description="shift (px)")]
        stride = widgets.IntSlider(value=kernel_sizes[0], min=1, max=4, description="stride")
        super().__init__(controls, [list(images), ["max", "avg"], list(kernel_sizes), list(shifts)],
                         {"stride": stride})

    def compute(self, values):
        name, mode, k, shift = values
        return pool_frame(self.image_arrays[name], mode, k, shift)

    def live(self, values):
        name, mode, k, shift = values
        return pool_frame(self.image_arrays[name], mode, k, shift, stride=self.live_controls["stride"].value)

    def sync_live(self, values, level):
        if level == 2:  # a new window: stride = window, as torch's default
            self.live_controls["stride"].value = values[2]

    def draw(self, frame):
        change = np.abs(frame.output - frame.reference)
        hi = max(float(frame.input.max()), 1e-12)
        footer = (f"{frame.mode} pool {frame.kernel_size}×{frame.kernel_size}, stride {frame.stride}: "
                  f"{frame.input.shape[0]}×{frame.input.shape[1]} → {frame.output.shape[0]}×{frame.output.shape[1]}; "
                  f"shift {frame.shift}px changes the output by {change.mean():.3f} on average")
        return _png(_row([_panel(frame.input, f"input, shifted {frame.shift}px", vmin=0, vmax=hi),
                          _panel(frame.output, "pooled", vmin=0, vmax=hi),
                          _panel(change, "|change| vs no shift", cmap="Reds", vmin=0, vmax=hi)],
                         footer=footer))


def pooling_explorer(images=None, kernel_sizes=(2, 4), shifts=(0, 1, 2)) -> PoolingExplorer:
    """Max and average pooling side by side, and their robustness to a shift of a few pixels.

    Parameters
    ----------
    images : dict of str to array, optional
        Grey images ``(H, W)``; default: :func:`sample_photograph` and a white square.
    kernel_sizes : sequence of int, default (2, 4)
        Pooling windows (stride = window, as ``torch.nn.MaxPool2d`` does by default).
    shifts : sequence of int, default (0, 1, 2)
        Shifts to the right, in pixels.

    Returns
    -------
    PoolingExplorer
        Preset controls: image, pooling (max/avg), window, shift. Live control: stride.
    """
    images = _images_dict(images, "pooling_explorer")
    for name, values, minimum in (("kernel_sizes", kernel_sizes, 1), ("shifts", shifts, 0)):
        _check_sequence("pooling_explorer", name, values)
        for i, v in enumerate(values):
            checks.as_int("pooling_explorer", f"{name}[{i}]", v, minimum)
    if len(images) * 2 * len(kernel_sizes) * len(shifts) > 48:
        raise ValueError(f"pooling_explorer: {len(images)} images x 2 modes x {len(kernel_sizes)} windows x "
                         f"{len(shifts)} shifts is too many pictures for a light page (at most 48)")
    return PoolingExplorer(images, tuple(kernel_sizes), tuple(shifts))
