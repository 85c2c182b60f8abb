"""What a torch model sees: :func:`feature_maps` (the outputs of named layers on one image)
and the widget :func:`feature_map_browser` (layer x channel). The only widget that needs torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from cnnbook.book.widgets._explorer import Explorer
from cnnbook.book.widgets._pictures import _panel, _png, _row, _signed_limits
from cnnbook.scratch import checks


@dataclass(frozen=True)
class FeatureFrame:
    """What one feature-map-browser picture shows."""
    layer: str
    channel: int
    image: np.ndarray              # (H, W) the input's first channel
    feature_map: np.ndarray | None  # (H', W'), or None when the layer has fewer channels
    n_channels: int
    shape: tuple                   # the layer's output shape without the batch dimension


def feature_maps(model, image, layers):
    """Run ``model`` once on ``image`` and return ``{layer name: output (C, H, W) array}``.

    The model runs in eval mode under ``torch.no_grad()``; its training flag is restored.
    """
    return _feature_maps("feature_maps", model, image, layers)


def _check_layers(fn, model, layers):
    """``model`` is a torch module and ``layers`` a non-empty list of the names of its submodules."""
    from cnnbook.pytorch.utils import check_module

    check_module(model, fn)
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"{fn}: layers must be a non-empty list of layer names, e.g. ['0', '2'], got {layers!r}")
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        names = [n for n in modules if n]
        raise ValueError(f"{fn}: no layer named {missing} in the model; its layers are {names}")
    return modules


def _feature_maps(fn, model, image, layers):
    import torch

    from cnnbook.pytorch.utils import eval_mode

    modules = _check_layers(fn, model, layers)
    x = _as_batch(fn, image)
    param = next(model.parameters(), None)
    x = x.to(param.device) if param is not None else x
    outputs, hooks = {}, []
    for name in layers:
        hooks.append(modules[name].register_forward_hook(
            lambda mod, args, out, name=name: outputs.__setitem__(name, out.detach())))
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    except RuntimeError as err:                      # torch says what does not fit, e.g. the channels
        raise ValueError(f"{fn}: the model cannot run on an image of shape {tuple(x.shape)}: {err}") from None
    finally:
        for h in hooks:
            h.remove()
    return {name: outputs[name][0].float().cpu().numpy() for name in layers}


def _as_batch(fn, image):
    """``image`` ``(C, H, W)`` or ``(N, C, H, W)`` as a float32 batch tensor with N >= 1."""
    import torch

    try:
        x = torch.as_tensor(image.detach().cpu() if hasattr(image, "detach") else np.asarray(image),
                            dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{fn}: image must be an array or tensor of numbers, got {type(image).__name__}") from None
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"{fn}: image must be (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}"
                         + ("; the batch holds no image" if x.ndim == 4 else ""))
    return x


class FeatureMapBrowser(Explorer):
    title = "Feature-map browser: what each layer of the network sees"
    help = "Each feature map is drawn with its own colour scale: blue negative, red positive."

    def __init__(self, model, images, layers, channels):
        self.model, self.image_batch, self.layer_names = model, images, list(layers)
        self.maps = _feature_maps("feature_map_browser", model, images[0], layers)
        controls = [widgets.Dropdown(options=self.layer_names, description="layer"),
                    widgets.IntSlider(value=0, min=0, max=channels - 1, description="channel")]
        live = {}
        if len(images) > 1:
            live["image"] = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image")
        super().__init__(controls, [self.layer_names, list(range(channels))], live)

    def compute(self, values):
        return self._frame(self.image_batch[0], self.maps, *values)

    def live(self, values):
        index = self.live_controls["image"].value if self.live_controls else 0
        maps = _feature_maps("feature_map_browser", self.model, self.image_batch[index], self.layer_names)
        return self._frame(self.image_batch[index], maps, *values)

    @staticmethod
    def _frame(image, maps, layer, channel):
        fmap = maps[layer]
        if fmap.ndim != 3:
            raise ValueError(f"feature_map_browser: layer {layer!r} outputs shape {fmap.shape} per image; "
                             "choose layers whose output is (C, H, W), e.g. convolutions, activations, pools")
        shown = fmap[channel] if channel < fmap.shape[0] else None
        return FeatureFrame(layer, channel, np.asarray(image)[0], shown, fmap.shape[0], tuple(fmap.shape))

    def draw(self, frame):
        panels = [_panel(frame.image, "input")]
        if frame.feature_map is None:
            text = f"layer {frame.layer} has only {frame.n_channels} channels"
            panels.append(_panel(np.zeros((2, 2)), "—", cmap="Greys"))
        else:
            lo, hi = _signed_limits(frame.feature_map)
            panels.append(_panel(frame.feature_map, f"{frame.layer}[{frame.channel}]", cmap="RdBu_r",
                                 vmin=lo, vmax=hi))
            text = (f"layer {frame.layer}, channel {frame.channel} of {frame.n_channels}, "
                    f"output {frame.shape[0]}×{frame.shape[1]}×{frame.shape[2]}")
        return _png(_row(panels, footer=text))


def feature_map_browser(model, image, layers, channels: int = 8) -> FeatureMapBrowser:
    """Browse the feature maps of a torch model on an image: layer x channel.

    Parameters
    ----------
    model : torch.nn.Module
        Run once in eval mode (its training flag is restored afterwards).
    image : array or tensor, shape ``(C, H, W)``, or a batch ``(N, C, H, W)``
        With a batch, the pictures use the first image; live, a slider picks any image.
    layers : list of str
        Names from ``model.named_modules()`` whose outputs are ``(N, C, H, W)``.
    channels : int, default 8
        Channels precomputed per layer (the page carries ``len(layers) * channels`` pictures).

    Returns
    -------
    FeatureMapBrowser
        Preset controls: layer, channel. Live control: image (with a batch).
    """
    fn = "feature_map_browser"
    _check_layers(fn, model, layers)
    x = _as_batch(fn, image)
    checks.as_int(fn, "channels", channels, 1)
    if len(layers) * channels > 48:
        raise ValueError(f"feature_map_browser: {len(layers)} layers x {channels} channels is too many "
                         "pictures for a light page (at most 48); pass fewer layers or channels")
    return FeatureMapBrowser(model, x.numpy(), list(layers), int(channels))
