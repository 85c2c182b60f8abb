"""Interactive widgets: see a convolution, a pooling, an activation and an optimizer at work.

=============================  ================================================================
:func:`kernel_explorer`        a 3x3 kernel slid over an image, and the feature map it makes
:func:`conv_arithmetic`        input size, kernel, padding, stride, dilation: the sliding
                               window step by step, and the output size
:func:`pooling_explorer`       max and average pooling, and what a small shift changes
:func:`activation_explorer`    sigmoid, tanh, ReLU, leaky ReLU and their derivatives
:func:`optimizer_race`         SGD, momentum, RMSprop and Adam on a 2-D loss surface
:func:`feature_map_browser`    the feature maps of a torch model, layer by layer, channel by channel
=============================  ================================================================

How one widget works in Jupyter, in Colab and in the static HTML book
---------------------------------------------------------------------
Each builder returns an :class:`Explorer`, an ``ipywidgets.VBox``. It holds a small grid of
precomputed pictures (PNG ``Image`` widgets, about 40 at most), one for each combination of
its *preset controls*. The pictures sit in a tree of ``Stack`` containers (``Tab`` under
ipywidgets 7, which has no ``Stack``), one level per preset control, and each preset control
is joined with ``jslink`` straight to every container of its level. In the static HTML book,
where no Python runs, moving a preset control therefore shows another precomputed picture.
With a running kernel, ``observe`` callbacks also redraw the picture shown from the current
setting, including the *live controls*, which only do something there.

The numbers come from :mod:`cnnbook.scratch.functional` (NumPy) and :mod:`cnnbook.scratch.optim`; only
:func:`feature_map_browser` needs torch. The data each picture is drawn from is kept in
``Explorer.frames`` (so tests and readers can check it), and ``Explorer.draw(frame)`` turns it
into the PNG bytes shown.
"""
from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from functools import lru_cache

import ipywidgets as widgets
import numpy as np
import traitlets

__all__ = ["Explorer", "kernel_explorer", "conv_arithmetic", "pooling_explorer",
           "activation_explorer", "optimizer_race", "feature_map_browser",
           "sample_photograph", "feature_maps", "CLASSIC_KERNELS", "loss_surface", "loss_surface_gradient",
           "optimizer_paths", "conv_frame", "pool_frame", "activation_frame", "ConvSetting", "CONV_PRESETS"]

PANEL = 112        # side of an image panel in display pixels (28x28 images: 4 pixels per pixel)


# ----------------------------------------------------------------------------------------
# The frame tree: preset controls jslink-ed straight to Stacks (Tabs) of PNG images
# ----------------------------------------------------------------------------------------
def _container_class():
    """``Stack`` (ipywidgets 8); ``Tab`` where there is none (ipywidgets 7.7, as on Colab)."""
    return getattr(widgets, "Stack", None) or widgets.Tab


def _selection_box(children, titles, index=0):
    cls = _container_class()
    box = cls(children=list(children))
    if cls is widgets.Tab:
        for i, title in enumerate(titles):
            box.set_title(i, str(title))
    box.selected_index = index
    return box


def _picture(png: bytes, text: str):
    """A PNG ``Image`` widget whose tooltip (its HTML ``title``) describes it, where possible.

    ipywidgets 8's views set ``title`` from ``tooltip`` only when the model's ``description`` is
    empty, and an ``Image`` has no ``description``: the view then fails with a TypeError. An
    empty synced ``description`` makes the tooltip work. ipywidgets 7 has no ``tooltip``.
    """
    if "tooltip" not in widgets.Image.class_trait_names():
        return widgets.Image(value=png, format="png")
    return _DescribedImage(value=png, format="png", tooltip=text)


class _DescribedImage(widgets.Image):
    """An ``Image`` with the empty ``description`` its view's tooltip code expects."""
    description = traitlets.Unicode("").tag(sync=True)


def _index_trait(control) -> str:
    """The integer trait of a control that says which option is chosen."""
    return "value" if isinstance(control, widgets.IntSlider) else "index"


def _index_of(control) -> int:
    return int(getattr(control, _index_trait(control)))


class Explorer(widgets.VBox):
    """A widget of precomputed pictures that also recomputes live (base class of the six).

    Subclasses define ``compute(values) -> frame`` (the data drawn for a preset),
    ``draw(frame) -> bytes`` (a PNG), and for live controls ``live(values) -> frame`` and
    ``sync_live(values, level)`` (set the live controls to a preset's values).

    Attributes
    ----------
    controls : list of widgets
        The preset controls, one per level of the frame tree (outermost first).
    options : list of list
        The value behind each option of each preset control.
    live_controls : dict of str to widget
        Controls that act only with a running kernel.
    frames : dict of tuple to object
        The data each precomputed picture is drawn from, keyed by the preset controls'
        indices, e.g. ``frames[(image_index, kernel_index)]``.
    images : dict of tuple to ipywidgets.Image
        The picture widgets, same keys.
    boxes : dict of tuple to Stack (or Tab)
        The containers of the tree, keyed by the indices above them (``()`` is the root).
    links : list of ipywidgets.Link
        One ``jslink`` per container: (its level's control, ``"index"`` or ``"value"``) to
        (the container, ``"selected_index"``).
    """

    title = ""
    help = ""

    def __init__(self, controls, options, live_controls=None):
        self.controls, self.options = list(controls), [list(o) for o in options]
        self.live_controls = dict(live_controls or {})
        self.frames, self.images, self.boxes, self.links = {}, {}, {}, []
        self._syncing = False
        root = self._build(())
        row = widgets.HBox(self.controls, layout=widgets.Layout(flex_flow="row wrap"))  # wrap, don't squeeze
        parts = [widgets.HTML(f"<b>{self.title}</b>"), row, root]
        if self.live_controls:
            note = widgets.HTML("<small><i>Live only (these need a running kernel: Jupyter or "
                                "Colab; in the HTML book only the controls above respond):</i></small>")
            live_box = widgets.VBox([note, self.live_layout()])
            live_box.add_class("cnnbook-live-only")       # checkers skip these in the static HTML
            parts.append(live_box)
        if self.help:
            parts.append(widgets.HTML(f"<small>{self.help}</small>"))
        super().__init__(parts)
        for control in self.controls:
            control.observe(self._preset_changed, names=_index_trait(control))
        for control in self.live_controls.values():
            control.observe(self._live_changed, names="value")

    # -- the tree ------------------------------------------------------------------------
    def _build(self, prefix):
        level = len(prefix)
        if level == len(self.controls):
            self.frames[prefix] = self.compute(self.values(prefix))
            image = _picture(self.draw(self.frames[prefix]), self.describe(prefix))
            self.images[prefix] = image
            return image
        control = self.controls[level]
        children = [self._build(prefix + (i,)) for i in range(len(self.options[level]))]
        box = _selection_box(children, self.labels(level), _index_of(control))
        self.boxes[prefix] = box
        self.links.append(widgets.jslink((control, _index_trait(control)), (box, "selected_index")))
        return box

    def describe(self, key):
        """A one-line description of the picture at ``key`` (its tooltip, and a text alternative)."""
        return f"{self.title.split(':')[0]}: {self._settings(key)}"

    def _settings(self, key, sep=" "):
        return ", ".join(f"{c.description or 'option'}{sep}{self.labels(level)[i]}"
                         for level, (c, i) in enumerate(zip(self.controls, key)))

    def labels(self, level):
        """How the control at ``level`` names its options (its labels; a slider's numbers)."""
        control = self.controls[level]
        if isinstance(control, widgets.IntSlider):
            return [str(v) for v in self.options[level]]
        return [str(label) for label in control.options]

    def values(self, key=None):
        """The option values behind ``key`` (default: the current setting of the controls)."""
        key = self.key() if key is None else key
        return tuple(self.options[level][i] for level, i in enumerate(key))

    def key(self):
        """The indices of the current setting of the preset controls."""
        return tuple(_index_of(c) for c in self.controls)

    # -- live behaviour ------------------------------------------------------------------
    def live_layout(self):
        """The box that shows the live controls (a row, unless a subclass says otherwise)."""
        return widgets.HBox(list(self.live_controls.values()))

    def _preset_changed(self, change):
        if self._syncing:
            return
        self._syncing = True
        try:
            self.sync_live(self.values(), self.controls.index(change.owner))
        finally:
            self._syncing = False
        self.refresh()

    def _live_changed(self, change):
        if not self._syncing:
            self.refresh()

    def refresh(self):
        """Redraw the picture shown from the current setting (preset and live controls)."""
        self.images[self.key()].value = self.draw(self.live(self.values()))

    def live(self, values):
        return self.compute(values)

    def sync_live(self, values, level):
        """Set the live controls to match preset ``values`` after the control at ``level`` moved."""

    def compute(self, values):
        raise NotImplementedError

    def draw(self, frame) -> bytes:
        raise NotImplementedError

    def figure(self, keys, ncols=2, title=None):
        """A static matplotlib figure of some precomputed pictures, for print, GitHub and nbviewer.

        Parameters
        ----------
        keys : list of tuple
            Keys of :attr:`frames` to show, e.g. ``[(0, 0), (0, 3)]``.
        ncols : int, default 2
        title : str, optional
            The figure's title (default: the widget's title).

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt
        from PIL import Image

        missing = [k for k in keys if k not in self.images]
        if missing:
            raise ValueError(f"{type(self).__name__}.figure: no precomputed picture for keys {missing}; "
                             f"keys look like {next(iter(self.images))}")
        pictures = [np.asarray(Image.open(io.BytesIO(self.images[k].value)).convert("RGB")) for k in keys]
        nrows = -(-len(keys) // ncols)
        width = max(p.shape[1] for p in pictures) / 72 * ncols
        height = max(p.shape[0] for p in pictures) / 72 * nrows + 0.6
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, key, picture in zip(axes.flat, keys, pictures):
            ax.imshow(picture)
            ax.set_title(self._settings(key, sep=": "), fontsize=9)
        fig.suptitle(title or self.title.split(":")[0])
        fig.tight_layout()
        return fig

    def nbytes(self) -> int:
        """Total size of the precomputed PNGs (what the HTML page carries)."""
        return sum(len(image.value) for image in self.images.values())


# ----------------------------------------------------------------------------------------
# Drawing helpers (Pillow for pictures of arrays, matplotlib's Agg for curves)
# ----------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _font(size=12):
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def _text_width(text, size=12) -> int:
    return int(_font(size).getlength(text)) + 2


def _colorize(array, cmap="gray", vmin=None, vmax=None) -> np.ndarray:
    """Map a 2-D array to RGB bytes with a matplotlib colormap; ``(H, W)`` -> ``(H, W, 3)``."""
    import matplotlib

    a = np.asarray(array, dtype=np.float64)
    lo = np.min(a) if vmin is None else vmin
    hi = np.max(a) if vmax is None else vmax
    scaled = (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 0.5)
    rgba = matplotlib.colormaps[cmap](np.clip(scaled, 0, 1), bytes=True)
    return rgba[..., :3]


def _signed_limits(array):
    """Symmetric colour limits, so that 0 is the colormap's middle."""
    m = float(np.max(np.abs(array))) or 1.0
    return -m, m


def _panel(array, title="", *, cmap="gray", vmin=None, vmax=None, size=PANEL):
    """An array drawn as nearest-neighbour pixels about ``size`` wide, with a title above."""
    from PIL import Image, ImageDraw

    rgb = _colorize(array, cmap, vmin, vmax)
    scale = max(1, round(size / max(rgb.shape[:2])))
    pixels = Image.fromarray(np.repeat(np.repeat(rgb, scale, 0), scale, 1))
    out = Image.new("RGB", (max(pixels.width + 2, _text_width(title)), pixels.height + 20), "white")
    out.paste(pixels, (1, 19))
    ImageDraw.Draw(out).rectangle((0, 18, pixels.width + 1, pixels.height + 19), outline="#999999")  # a thin frame
    ImageDraw.Draw(out).text((0, 2), title, fill="black", font=_font(12))
    return out


def _number_grid(values, title="", *, cell=30, cmap="RdBu_r", fmt="{:g}"):
    """A small matrix drawn as coloured cells with its numbers written in."""
    from PIL import Image, ImageDraw

    values = np.asarray(values, dtype=np.float64)
    lo, hi = _signed_limits(values)
    rgb = _colorize(values, cmap, lo, hi)
    rows, cols = values.shape
    out = Image.new("RGB", (max(cols * cell + 1, _text_width(title)), rows * cell + 19), "white")
    draw = ImageDraw.Draw(out)
    draw.text((0, 2), title, fill="black", font=_font(12))
    for r, c in itertools.product(range(rows), range(cols)):
        box = (c * cell, 18 + r * cell, (c + 1) * cell, 18 + (r + 1) * cell)
        fill = tuple(int(v) for v in rgb[r, c])
        draw.rectangle(box, fill=fill, outline="black")
        ink = "white" if 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] < 110 else "black"
        draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), fmt.format(values[r, c]),
                  fill=ink, font=_font(10), anchor="mm")
    return out


def _row(panels, gap=14, footer=""):
    """Panels side by side on white, with optional lines of text below (``footer``, str or list)."""
    from PIL import Image, ImageDraw

    lines = [footer] if isinstance(footer, str) and footer else list(footer or [])
    width = max([sum(p.width for p in panels) + gap * (len(panels) - 1)]
                + [_text_width(line) for line in lines])
    top = max(p.height for p in panels) + 4
    out = Image.new("RGB", (width, top + 17 * len(lines)), "white")
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width + gap
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((0, top + 17 * i), line, fill="black", font=_font(12))
    return out


def _png(image) -> bytes:
    """PNG bytes of a Pillow image, with a 256-colour palette (deterministic: no metadata)."""
    buffer = io.BytesIO()
    image.quantize(colors=256, method=2, dither=0).save(buffer, format="PNG", optimize=True)  # palette: small
    return buffer.getvalue()


def _as_image(array, fn) -> np.ndarray:
    """A grey image as a float ``(H, W)`` array (accepts ``(1, H, W)`` and tensors)."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{fn}: each of images must be a grey image of shape (H, W) or (1, H, W), "
                         f"got shape {a.shape}")
    return a


def _images_dict(images, fn):
    """The images a widget shows, checked: default, a photograph and a white square."""
    if images is None:
        return {"photograph": sample_photograph(64), "square": _square(28)}
    if not isinstance(images, dict) or not images:
        raise TypeError(f"{fn}: images must be a non-empty dict of name -> image, got {type(images).__name__}")
    return {str(k): _as_image(v, fn) for k, v in images.items()}


def _square(size):
    a = np.zeros((size, size))
    a[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
    return a


def sample_photograph(size: int = 96) -> np.ndarray:
    """A real photograph, grey, square: Grace Hopper, as shipped with matplotlib's sample data.

    Parameters
    ----------
    size : int, default 96
        Side in pixels of the returned image (the face, cropped square and resized).

    Returns
    -------
    numpy.ndarray of shape ``(size, size)``, float64 in ``[0, 1]``
    """
    import matplotlib.cbook
    from PIL import Image

    if not isinstance(size, int) or size < 8:
        raise ValueError(f"sample_photograph: size must be an int >= 8, got {size!r}")
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photo = Image.open(f).convert("L")
        w, h = photo.size                                # 512 x 600
        photo = photo.crop((0, 0, w, w)).resize((size, size), Image.LANCZOS)
    return np.asarray(photo, dtype=np.float64) / 255.0


# ----------------------------------------------------------------------------------------
# 1. Kernel explorer
# ----------------------------------------------------------------------------------------
CLASSIC_KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "Gaussian blur": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "vertical edges (Sobel x)": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "horizontal edges (Sobel y)": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "outline (Laplacian)": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
}


@dataclass(frozen=True)
class KernelFrame:
    """What one kernel-explorer picture shows."""
    image: np.ndarray        # (H, W)
    kernel: np.ndarray       # (3, 3)
    feature_map: np.ndarray  # (H, W): conv2d(image, kernel, padding=1)


class KernelExplorer(Explorer):
    title = "Kernel explorer: a 3×3 kernel slid over an image makes a feature map"
    help = ("The feature map is <code>cnnbook.scratch.functional.conv2d(image, kernel, padding=1)</code>; "
            "blue is negative, red positive.")

    def __init__(self, images, kernels):
        image_names, kernel_names = list(images), list(kernels)
        self.image_arrays, self.kernel_arrays = images, kernels
        cells = [widgets.FloatText(value=float(kernels[kernel_names[0]][r, c]),
                                   layout=widgets.Layout(width="64px")) for r in range(3) for c in range(3)]
        self.cells = cells
        grid = widgets.GridBox(cells, layout=widgets.Layout(grid_template_columns="repeat(3, 68px)"))
        controls = [widgets.Dropdown(options=image_names, description="image"),
                    widgets.Dropdown(options=kernel_names, description="kernel",
                                     style={"description_width": "initial"})]
        self._grid = grid
        super().__init__(controls, [image_names, kernel_names], {f"k{i}": c for i, c in enumerate(cells)})

    def live_layout(self):
        return self._grid

    def compute(self, values):
        image_name, kernel_name = values
        return self._frame(self.image_arrays[image_name], self.kernel_arrays[kernel_name])

    @staticmethod
    def _frame(image, kernel):
        from cnnbook.scratch import functional as F

        feature_map = F.conv2d(image[None, None], kernel[None, None], padding=1)[0, 0]
        return KernelFrame(image, kernel, feature_map)

    def live(self, values):
        kernel = np.array([c.value for c in self.cells], dtype=np.float64).reshape(3, 3)
        return self._frame(self.image_arrays[values[0]], kernel)

    def sync_live(self, values, level):
        if level == 1:  # a preset kernel was chosen: show its entries (a new image keeps them)
            for cell, v in zip(self.cells, self.kernel_arrays[values[1]].ravel()):
                cell.value = float(v)

    def draw(self, frame):
        lo, hi = _signed_limits(frame.feature_map)
        return _png(_row([_panel(frame.image, "input"),
                          _number_grid(frame.kernel, "kernel", fmt="{:.2g}"),
                          _panel(frame.feature_map, "feature map", cmap="RdBu_r", vmin=lo, vmax=hi)],
                         footer=f"feature map range [{frame.feature_map.min():.2f}, {frame.feature_map.max():.2f}]"))


def kernel_explorer(images=None, kernels=None) -> KernelExplorer:
    """Choose (or, live, edit) a 3x3 kernel and an image; see the feature map.

    Parameters
    ----------
    images : dict of str to array, optional
        Grey images, each ``(H, W)`` or ``(1, H, W)``, e.g. Fashion-MNIST images and a
        photograph. Default: :func:`sample_photograph` and a white square.
    kernels : dict of str to 3x3 array, optional
        Default: :data:`CLASSIC_KERNELS` (identity, blurs, sharpen, edges, outline).

    Returns
    -------
    KernelExplorer
        Preset controls: image, kernel (``len(images) * len(kernels)`` pictures).
        Live controls: the nine kernel entries.

    Examples
    --------
    >>> w = kernel_explorer({"square": np.eye(8)})
    >>> sorted(w.frames)[:2]
    [(0, 0), (0, 1)]
    """
    images = _images_dict(images, "kernel_explorer")
    kernels = {str(k): np.asarray(v, dtype=np.float64) for k, v in (kernels or CLASSIC_KERNELS).items()}
    for name, k in kernels.items():
        if k.shape != (3, 3):
            raise ValueError(f"kernel_explorer: kernel {name!r} must be 3x3, got shape {k.shape}")
    return KernelExplorer(images, kernels)


# ----------------------------------------------------------------------------------------
# 2. Convolution arithmetic
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvSetting:
    """One convolution's geometry (square input and kernel), with torch's meanings."""
    input_size: int
    kernel_size: int
    padding: int = 0
    stride: int = 1
    dilation: int = 1

    @property
    def output_size(self) -> int:
        """``floor((H + 2*padding - dilation*(K-1) - 1) / stride) + 1``."""
        return (self.input_size + 2 * self.padding - self.dilation * (self.kernel_size - 1) - 1) // self.stride + 1

    def label(self) -> str:
        parts = [f"{self.input_size}×{self.input_size} input", f"{self.kernel_size}×{self.kernel_size} kernel"]
        parts += [f"{name} {v}" for name, v, default in
                  (("padding", self.padding, 0), ("stride", self.stride, 1), ("dilation", self.dilation, 1))
                  if v != default]
        return ", ".join(parts)


CONV_PRESETS = (ConvSetting(5, 3), ConvSetting(3, 3, padding=1), ConvSetting(5, 3, padding=1, stride=2),
                ConvSetting(7, 3, dilation=2))


@dataclass(frozen=True)
class ConvFrame:
    """What one convolution-arithmetic picture shows."""
    setting: ConvSetting
    step: int               # which output position, row-major
    input: np.ndarray       # (H, W) small integers
    kernel: np.ndarray      # (K, K) small integers
    output: np.ndarray      # (H_out, W_out) = conv2d(input, kernel, padding, stride, dilation)
    window: tuple           # (row, col) of each kernel tap in the padded input


def _conv_example(setting: ConvSetting):
    """Small integer input and kernel for a setting (fixed: seeded by the sizes)."""
    rng = np.random.default_rng(setting.input_size * 10 + setting.kernel_size)
    x = rng.integers(0, 4, size=(setting.input_size,) * 2).astype(np.float64)
    k = rng.integers(-1, 2, size=(setting.kernel_size,) * 2).astype(np.float64)
    return x, k


def conv_frame(setting: ConvSetting, step: int) -> ConvFrame:
    """The data of one step: the window's taps (padded coordinates) and the output so far."""
    from cnnbook.scratch import functional as F

    n = setting.output_size
    if n < 1:
        raise ValueError(f"conv_arithmetic: {setting.label()} gives output size {n}; "
                         "make the input larger or the kernel, dilation or stride smaller")
    x, k = _conv_example(setting)
    out = F.conv2d(x[None, None], k[None, None], padding=setting.padding, stride=setting.stride,
                   dilation=setting.dilation)[0, 0]
    step = min(step, n * n - 1)
    i, j = divmod(step, n)
    taps = tuple((i * setting.stride + a * setting.dilation, j * setting.stride + b * setting.dilation)
                 for a in range(setting.kernel_size) for b in range(setting.kernel_size))
    return ConvFrame(setting, step, x, k, out, taps)


class ConvArithmetic(Explorer):
    title = "Convolution arithmetic: the sliding window, step by step"
    help = ("Output size per side: H<sub>out</sub> = ⌊(H + 2·padding − dilation·(K − 1) − 1) / stride⌋ + 1. "
            "Grey cells are padding (zeros); the blue cells are the kernel's taps; each output "
            "value is the sum of tap × kernel.")
    STEPS = 9

    def __init__(self, presets):
        self.presets = list(presets)
        labels = [p.label() for p in self.presets]
        controls = [widgets.Dropdown(options=labels, description="setting",
                                     layout=widgets.Layout(width="420px")),
                    widgets.IntSlider(value=0, min=0, max=self.STEPS - 1, description="step")]
        first = self.presets[0]
        live = {name: widgets.IntSlider(value=getattr(first, name), min=lo, max=hi, description=name,
                                        style={"description_width": "initial"},
                                        layout=widgets.Layout(width="220px"))
                for name, lo, hi in (("input_size", 1, 9), ("kernel_size", 1, 5), ("padding", 0, 3),
                                     ("stride", 1, 3), ("dilation", 1, 3))}
        self._live_images = {}
        super().__init__(controls, [self.presets, list(range(self.STEPS))], live)

    def live_layout(self):
        row = list(self.live_controls.values())
        return widgets.VBox([widgets.HBox(row[:3]), widgets.HBox(row[3:])])

    def values(self, key=None):
        preset, step = self.key() if key is None else key
        return self.presets[preset], step     # live, the step may go past the 9 precomputed ones

    def compute(self, values):
        return conv_frame(*values)

    def live_setting(self):
        return ConvSetting(**{name: c.value for name, c in self.live_controls.items()})

    def sync_live(self, values, level):
        if level == 0:  # a preset setting was chosen: the live sliders show it
            for name, control in self.live_controls.items():
                control.value = getattr(values[0], name)

    def refresh(self):
        """Live: any setting; the step slider and the current Stack cover all its output positions."""
        setting, (preset, step) = self.live_setting(), self.key()
        images = self._live_images.setdefault(preset, [self.images[(preset, s)] for s in range(self.STEPS)])
        if setting.output_size < 1:
            images[min(step, len(images) - 1)].value = self._message(setting)
            return
        positions = setting.output_size ** 2
        images.extend(widgets.Image(format="png") for _ in range(positions - len(images)))
        self._syncing = True
        try:
            self.boxes[(preset,)].children = images[:positions]
            self.controls[1].max = positions - 1       # clamps the step
        finally:
            self._syncing = False
        step = self.controls[1].value
        images[step].value = self.draw(conv_frame(setting, step))

    def _message(self, setting):
        from PIL import Image, ImageDraw

        text = f"{setting.label()}: output size {setting.output_size} < 1"
        out = Image.new("RGB", (_text_width(text), 40), "white")
        ImageDraw.Draw(out).text((0, 10), text, fill="darkred", font=_font(12))
        return _png(out)

    def draw(self, frame):
        return _png(_draw_conv(frame))


def _draw_conv(frame: ConvFrame, cell=22):
    """Padded input with the window, kernel, and output so far, with the formula below."""
    from PIL import Image, ImageDraw

    s = frame.setting
    n, p = s.output_size, s.padding
    size = s.input_size + 2 * p
    padded = np.zeros((size, size))
    padded[p:p + s.input_size, p:p + s.input_size] = frame.input
    i, j = divmod(frame.step, n)
    title = f"input {s.input_size}×{s.input_size}, padding {p}"
    inp = Image.new("RGB", (max(size * cell + 1, _text_width(title)), size * cell + 19), "white")
    d = ImageDraw.Draw(inp)
    d.text((0, 2), title, fill="black", font=_font(12))
    taps = set(frame.window)
    for r, c in itertools.product(range(size), range(size)):
        inside = p <= r < p + s.input_size and p <= c < p + s.input_size
        fill = "#6fa8dc" if (r, c) in taps else ("white" if inside else "#dddddd")
        box = (c * cell, 19 + r * cell, (c + 1) * cell, 19 + (r + 1) * cell)
        d.rectangle(box, fill=fill, outline="black" if inside else "#aaaaaa")
        d.text((box[0] + cell / 2, box[1] + cell / 2), f"{padded[r, c]:g}", fill="black",
               font=_font(10), anchor="mm")
    done = np.full((n, n), np.nan)
    done.flat[:frame.step + 1] = frame.output.flat[:frame.step + 1]
    out = _output_grid(done, (i, j), cell)
    formula = [f"H_out = ⌊(H + 2·padding − dilation·(K−1) − 1) / stride⌋ + 1 "
               f"= ⌊({s.input_size} + 2·{p} − {s.dilation}·({s.kernel_size}−1) − 1) / {s.stride}⌋ + 1 = {n}",
               f"step {frame.step + 1} of {n * n}: output[{i}, {j}] = Σ (blue cells × kernel) = {frame.output[i, j]:g}"]
    return _row([inp, _number_grid(frame.kernel, f"kernel {s.kernel_size}×{s.kernel_size}", cell=cell), out],
                footer=formula)


def _output_grid(done, current, cell):
    from PIL import Image, ImageDraw

    n = done.shape[0]
    title = f"output {n}×{n}"
    out = Image.new("RGB", (max(n * cell + 1, _text_width(title)), n * cell + 19), "white")
    d = ImageDraw.Draw(out)
    d.text((0, 2), title, fill="black", font=_font(12))
    for r, c in itertools.product(range(n), range(n)):
        box = (c * cell, 19 + r * cell, (c + 1) * cell, 19 + (r + 1) * cell)
        d.rectangle(box, fill="#f6b26b" if (r, c) == current else "white", outline="black",
                    width=2 if (r, c) == current else 1)
        if not np.isnan(done[r, c]):
            d.text((box[0] + cell / 2, box[1] + cell / 2), f"{done[r, c]:g}", fill="black",
                   font=_font(10), anchor="mm")
    return out


def conv_arithmetic(presets=CONV_PRESETS) -> ConvArithmetic:
    """Input size, kernel size, padding, stride, dilation: the window step by step, the output size.

    Parameters
    ----------
    presets : sequence of ConvSetting, default :data:`CONV_PRESETS`
        The settings precomputed for the HTML book. Each should give a 3x3 output, so that
        the step slider's nine positions walk over every output position.

    Returns
    -------
    ConvArithmetic
        Preset controls: setting, step (``9 * len(presets)`` pictures). Live controls:
        input_size, kernel_size, padding, stride, dilation (the step slider then covers all
        ``H_out**2`` positions).
    """
    presets = tuple(presets)
    for s in presets:
        if not isinstance(s, ConvSetting):
            raise TypeError(f"conv_arithmetic: presets must be ConvSetting objects, got {type(s).__name__}")
        if s.output_size != 3:
            raise ValueError(f"conv_arithmetic: preset {s.label()} gives a {s.output_size}x{s.output_size} "
                             "output; presets must give 3x3 so that 9 steps cover it")
    return ConvArithmetic(presets)


# ----------------------------------------------------------------------------------------
# 3. Pooling explorer
# ----------------------------------------------------------------------------------------
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
    out[:, pixels:] = image[:, :image.shape[1] - pixels]
    return out


def pool_frame(image, mode, kernel_size, shift, stride=None) -> PoolFrame:
    """Pool an image shifted right by ``shift`` pixels, and the unshifted one for comparison."""
    from cnnbook.scratch import functional as F

    pool = {"max": F.max_pool2d, "avg": F.avg_pool2d}[mode]
    stride = kernel_size if stride is None else stride
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
    if len(images) * 2 * len(kernel_sizes) * len(shifts) > 48:
        raise ValueError(f"pooling_explorer: {len(images)} images x 2 modes x {len(kernel_sizes)} windows x "
                         f"{len(shifts)} shifts is too many pictures for a light page (at most 48)")
    return PoolingExplorer(images, tuple(kernel_sizes), tuple(shifts))


# ----------------------------------------------------------------------------------------
# 4. Activation explorer
# ----------------------------------------------------------------------------------------
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")


def activation_and_derivative(name, x, negative_slope=0.1):
    """``f(x)`` and ``f'(x)`` for one of :data:`ACTIVATIONS`, from :mod:`cnnbook.scratch.functional`.

    The derivative is the backward function applied to an upstream gradient of ones.
    """
    from cnnbook.scratch import functional as F

    x = np.asarray(x, dtype=np.float64)
    ones = np.ones_like(x)
    if name == "sigmoid":
        y = F.sigmoid(x)
        return y, F.sigmoid_backward(ones, y)
    if name == "tanh":
        y = F.tanh(x)
        return y, F.tanh_backward(ones, y)
    if name == "relu":
        return F.relu(x), F.relu_backward(ones, x)
    if name == "leaky_relu":
        return (F.leaky_relu(x, negative_slope),
                F.leaky_relu_backward(ones, x, negative_slope))
    raise ValueError(f"activation_explorer: unknown activation {name!r}; choose from {ACTIVATIONS}")


@dataclass(frozen=True)
class ActivationFrame:
    """What one activation-explorer picture shows."""
    name: str
    negative_slope: float
    x: np.ndarray    # (K,) the plotted inputs
    y: np.ndarray    # (K,) f(x)
    dy: np.ndarray   # (K,) f'(x)
    x0: float        # the marked point
    y0: float
    dy0: float


def activation_frame(name, x0, negative_slope=0.1, x=None) -> ActivationFrame:
    x = np.linspace(-6, 6, 241) if x is None else x
    y, dy = activation_and_derivative(name, x, negative_slope)
    (y0,), (dy0,) = activation_and_derivative(name, np.array([float(x0)]), negative_slope)
    return ActivationFrame(name, negative_slope, x, y, dy, float(x0), float(y0), float(dy0))


class _Canvas:
    """One reusable matplotlib figure (Agg, not pyplot) drawn into PNG bytes."""

    def __init__(self, figsize, ncols=1):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=figsize, dpi=72)
        FigureCanvasAgg(self.figure)
        self.axes = self.figure.subplots(1, ncols, squeeze=False)[0]
        self.figure.subplots_adjust(left=0.1, right=0.98, bottom=0.18, top=0.88, wspace=0.3)

    def png(self, background_key=None, moving=()) -> bytes:
        """Draw and encode. With ``background_key``, everything but the ``moving`` artists is
        drawn once per key and reused (blitting): only the moving artists are redrawn."""
        from PIL import Image

        canvas = self.figure.canvas
        if background_key is None:
            canvas.draw()
        else:
            if getattr(self, "_background_key", None) != background_key:
                for artist in moving:
                    artist.set_animated(True)
                canvas.draw()
                self._background, self._background_key = canvas.copy_from_bbox(self.figure.bbox), background_key
            canvas.restore_region(self._background)
            for artist in moving:
                self.figure.draw_artist(artist)
        image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
        return _png(image)


class ActivationExplorer(Explorer):
    title = "Activation explorer: each function and its derivative"
    help = ("The red line is the tangent at x₀: its slope is the derivative, the factor by which "
            "the activation scales a gradient flowing back through it.")

    def __init__(self, names, points, negative_slope):
        self._canvas = _Canvas((6.6, 2.5), ncols=2)
        left, right = self._canvas.axes
        self._lines = (left.plot([], [], color="C0")[0], left.plot([], [], color="C3")[0],
                       left.plot([], [], "o", color="C3")[0], right.plot([], [], color="C1")[0],
                       right.plot([], [], "o", color="C3")[0])
        for ax, label in ((left, "f(x)"), (right, "f'(x)")):
            ax.set(xlabel="x", ylabel=label, xlim=(-6, 6))
            ax.grid(alpha=0.3)
        right.set_ylim(-0.1, 1.1)
        self.negative_slope = negative_slope
        controls = [widgets.ToggleButtons(options=list(names), description="function",
                                          style={"button_width": "auto"}),
                    widgets.SelectionSlider(options=[f"{p:g}" for p in points], value=f"{points[len(points) // 2]:g}",
                                            description="x₀")]
        slope = widgets.FloatSlider(value=negative_slope, min=0.0, max=0.5, step=0.01,
                                    description="leaky_relu negative_slope",
                                    style={"description_width": "initial"}, layout=widgets.Layout(width="420px"))
        super().__init__(controls, [list(names), list(points)], {"negative_slope": slope})

    def compute(self, values):
        return activation_frame(values[0], values[1], self.negative_slope)

    def live(self, values):
        return activation_frame(values[0], values[1], self.live_controls["negative_slope"].value)

    def draw(self, frame):
        left, right = self._canvas.axes
        curve, tangent, point, dcurve, dpoint = self._lines
        near = np.abs(frame.x - frame.x0) <= 1.5
        curve.set_data(frame.x, frame.y)
        tangent.set_data(frame.x[near], frame.y0 + frame.dy0 * (frame.x[near] - frame.x0))
        point.set_data([frame.x0], [frame.y0])
        dcurve.set_data(frame.x, frame.dy)
        dpoint.set_data([frame.x0], [frame.dy0])
        low, high = float(frame.y.min()), float(frame.y.max())
        left.set_ylim(low - 0.1 * (high - low) - 0.05, high + 0.1 * (high - low) + 0.05)
        name = frame.name + (f"(x, {frame.negative_slope:g})" if frame.name == "leaky_relu" else "(x)")
        left.set_title(f"{name};  f(x₀) = {frame.y0:.3f}", fontsize=11)
        right.set_title(f"derivative;  f'(x₀) = {frame.dy0:.3f}", fontsize=11)
        moving = (tangent, point, dpoint, left.title, right.title)
        return self._canvas.png((frame.name, frame.negative_slope), moving)


def activation_explorer(names=ACTIVATIONS, points=(-4, -3, -2, -1, 0, 1, 2, 3, 4),
                        negative_slope=0.1) -> ActivationExplorer:
    """Sigmoid, tanh, ReLU and leaky ReLU with their derivatives, and the tangent at a point.

    Parameters
    ----------
    names : sequence of str, default :data:`ACTIVATIONS`
    points : sequence of float, default -4 ... 4
        The points x₀ the slider offers.
    negative_slope : float, default 0.1
        Leaky ReLU's slope for x < 0 in the precomputed pictures (torch's default, 0.01, would
        be invisible on the plot).

    Returns
    -------
    ActivationExplorer
        Preset controls: function, x₀. Live control: leaky ReLU's negative_slope.
    """
    unknown = [n for n in names if n not in ACTIVATIONS]
    if unknown:
        raise ValueError(f"activation_explorer: unknown activations {unknown}; choose from {ACTIVATIONS}")
    return ActivationExplorer(tuple(names), tuple(float(p) for p in points), float(negative_slope))


# ----------------------------------------------------------------------------------------
# 5. Optimizer race
# ----------------------------------------------------------------------------------------
def loss_surface(w1, w2):
    """The race track: an elongated bowl ``w1**2 / 20 + w2**2``, 20 times steeper along w2.

    Works elementwise on arrays (for contour plots). Its minimum is 0 at (0, 0).
    """
    return np.asarray(w1) ** 2 / 20 + np.asarray(w2) ** 2


def loss_surface_gradient(w):
    """Gradient of :func:`loss_surface` at ``w = (w1, w2)``: ``(w1 / 10, 2 * w2)``."""
    w = np.asarray(w, dtype=np.float64)
    return np.array([w[0] / 10, 2 * w[1]])


RACE_START = (-4.5, 1.5)


def optimizer_paths(lr, momentum, start=RACE_START, steps=50):
    """Run SGD, SGD with momentum, RMSprop and Adam (all :mod:`cnnbook.scratch.optim`) on the bowl.

    Returns
    -------
    dict of str to ndarray of shape ``(steps + 1, 2)``
        Each optimizer's positions, the start included.
    """
    from cnnbook.scratch import nn, optim

    makers = {"SGD": lambda p: optim.SGD(p, lr=lr),
              f"SGD, momentum {momentum:g}": lambda p: optim.SGD(p, lr=lr, momentum=momentum),
              "RMSprop": lambda p: optim.RMSprop(p, lr=lr),
              "Adam": lambda p: optim.Adam(p, lr=lr)}
    paths = {}
    for name, make in makers.items():
        w = nn.Parameter(np.array(start, dtype=np.float64))
        optimizer, path = make([w]), [w.data.copy()]
        for _ in range(steps):
            optimizer.zero_grad()
            w.grad = loss_surface_gradient(w.data)
            optimizer.step()
            path.append(w.data.copy())
        paths[name] = np.array(path)
    return paths


@dataclass(frozen=True)
class RaceFrame:
    """What one optimizer-race picture shows."""
    lr: float
    momentum: float
    paths: dict      # name -> (steps + 1, 2) positions


class OptimizerRace(Explorer):
    title = "Optimizer race on an elongated bowl: learning rate and momentum"
    help = ("The loss is w₁²/20 + w₂²: a valley 20 times steeper across (w₂) than along (w₁). "
            "The legend gives each optimizer's final loss.")

    def __init__(self, lrs, momenta, steps):
        self.steps = steps
        self._canvas = _Canvas((6.6, 3.6))
        ax = self._canvas.axes[0]
        g1, g2 = np.meshgrid(np.linspace(-5, 5, 201), np.linspace(-2.5, 2.5, 101))
        ax.contour(g1, g2, loss_surface(g1, g2), levels=np.geomspace(0.01, 6, 12), cmap="Greys", linewidths=0.7)
        ax.plot([0], [0], "k*", ms=10)
        ax.set(xlim=(-5, 5), ylim=(-2.5, 2.5), xlabel="w₁", ylabel="w₂")
        self._canvas.figure.subplots_adjust(left=0.1, right=0.98, bottom=0.14, top=0.9)
        self._lines = [ax.plot([], [], ".-", color=f"C{i}", ms=3, lw=1.2)[0] for i in range(4)]
        controls = [widgets.SelectionSlider(options=[f"{lr:g}" for lr in lrs], value=f"{lrs[len(lrs) // 2]:g}",
                                            description="lr"),
                    widgets.ToggleButtons(options=[f"{m:g}" for m in momenta], description="momentum",
                                          style={"button_width": "50px"})]
        live = {"start_w1": widgets.FloatSlider(value=RACE_START[0], min=-5, max=5, step=0.1, description="start w₁"),
                "start_w2": widgets.FloatSlider(value=RACE_START[1], min=-2.5, max=2.5, step=0.1, description="start w₂"),
                "steps": widgets.IntSlider(value=steps, min=5, max=300, description="steps")}
        super().__init__(controls, [list(lrs), list(momenta)], live)

    def compute(self, values):
        return RaceFrame(*values, optimizer_paths(*values, steps=self.steps))

    def live(self, values):
        start = (self.live_controls["start_w1"].value, self.live_controls["start_w2"].value)
        return RaceFrame(*values, optimizer_paths(*values, start, self.live_controls["steps"].value))

    def draw(self, frame):
        ax = self._canvas.axes[0]
        for line, (name, path) in zip(self._lines, frame.paths.items()):
            line.set_data(path[:, 0], path[:, 1])
            line.set_label(f"{name}: loss {float(loss_surface(*path[-1])):.2g}")
        legend = ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
        steps = len(next(iter(frame.paths.values()))) - 1
        ax.set_title(f"{steps} steps from ({frame.paths['SGD'][0][0]:g}, {frame.paths['SGD'][0][1]:g}), "
                     f"lr = {frame.lr:g}", fontsize=11)
        return self._canvas.png("bowl", (*self._lines, legend, ax.title))


def optimizer_race(lrs=(0.01, 0.03, 0.1, 0.3, 0.9), momenta=(0.5, 0.8, 0.9), steps=50) -> OptimizerRace:
    """SGD, SGD with momentum, RMSprop and Adam racing down :func:`loss_surface`.

    Parameters
    ----------
    lrs : sequence of float
        Learning rates offered (the same for all four optimizers).
    momenta : sequence of float
        Momentum of the second SGD.
    steps : int, default 50

    Returns
    -------
    OptimizerRace
        Preset controls: lr, momentum. Live controls: start point, number of steps.
    """
    if len(lrs) * len(momenta) > 40:
        raise ValueError(f"optimizer_race: {len(lrs)} learning rates x {len(momenta)} momenta is too many "
                         "pictures for a light page (at most 40)")
    return OptimizerRace(tuple(float(v) for v in lrs), tuple(float(v) for v in momenta), int(steps))


# ----------------------------------------------------------------------------------------
# Feature-map browser (torch)
# ----------------------------------------------------------------------------------------
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
    import torch

    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        names = [n for n in modules if n]
        raise ValueError(f"feature_map_browser: no layer named {missing} in the model; its layers are {names}")
    outputs, hooks = {}, []
    for name in layers:
        hooks.append(modules[name].register_forward_hook(
            lambda mod, args, out, name=name: outputs.__setitem__(name, out.detach())))
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        x = torch.as_tensor(image, dtype=torch.float32)
        x = x.to(param.device) if param is not None else x
        with torch.no_grad():
            model(x[None] if x.ndim == 3 else x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return {name: outputs[name][0].float().cpu().numpy() for name in layers}


class FeatureMapBrowser(Explorer):
    title = "Feature-map browser: what each layer of the network sees"
    help = "Each feature map is drawn with its own colour scale: blue negative, red positive."

    def __init__(self, model, images, layers, channels):
        self.model, self.image_batch, self.layer_names = model, images, list(layers)
        self.maps = feature_maps(model, images[0], layers)
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
        maps = feature_maps(self.model, self.image_batch[index], self.layer_names)
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
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"feature_map_browser: model must be a torch.nn.Module, got {type(model).__name__}")
    x = image.detach().cpu() if hasattr(image, "detach") else torch.as_tensor(np.asarray(image))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"feature_map_browser: image must be (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    if not layers:
        raise ValueError("feature_map_browser: layers must name at least one layer")
    if len(layers) * channels > 48:
        raise ValueError(f"feature_map_browser: {len(layers)} layers x {channels} channels is too many "
                         "pictures for a light page (at most 48); pass fewer layers or channels")
    return FeatureMapBrowser(model, x.float().numpy(), list(layers), int(channels))
