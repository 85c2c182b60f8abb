"""Two convolution widgets: :func:`kernel_explorer` (a 3x3 kernel slid over an image, and
its feature map) and :func:`conv_arithmetic` (padding, stride, dilation: the sliding window
step by step, and the output size). The numbers come from :func:`cnnbook.scratch.functional.conv2d`.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from cnnbook.book.widgets._explorer import Explorer
from cnnbook.book.widgets._pictures import (_font, _images_dict, _number_grid, _panel, _png, _row,
                                            _signed_limits, _text_width)
from cnnbook.scratch import checks


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
    kernels = CLASSIC_KERNELS if kernels is None else kernels
    if not isinstance(kernels, dict) or not kernels:
        raise TypeError(f"kernel_explorer: kernels must be a non-empty dict of name -> 3x3 array, "
                        f"got {type(kernels).__name__}")
    arrays = {}
    for name, k in kernels.items():
        try:
            arrays[str(name)] = np.asarray(k, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"kernel_explorer: kernel {name!r} must be a 3x3 array of numbers, got {k!r}") from None
        if arrays[str(name)].shape != (3, 3):
            raise ValueError(f"kernel_explorer: kernel {name!r} must be 3x3, got shape {arrays[str(name)].shape}")
        if not np.isfinite(arrays[str(name)]).all():
            raise ValueError(f"kernel_explorer: kernel {name!r} must hold finite numbers, got {k!r}")
    return KernelExplorer(images, arrays)


@dataclass(frozen=True)
class ConvSetting:
    """One convolution's geometry (square input and kernel), with torch's meanings."""
    input_size: int
    kernel_size: int
    padding: int = 0
    stride: int = 1
    dilation: int = 1

    def __post_init__(self):
        for name, minimum in (("input_size", 1), ("kernel_size", 1), ("padding", 0), ("stride", 1), ("dilation", 1)):
            checks.as_int("ConvSetting", name, getattr(self, name), minimum)

    @property
    def output_size(self) -> int:
        """``floor((H + 2*padding - dilation*(K-1) - 1) / stride) + 1``.

        >>> ConvSetting(5, 3, padding=1, stride=2).output_size     # floor((5 + 2 - 2 - 1) / 2) + 1
        3
        """
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
    """The data of one step: the window's taps (padded coordinates) and the output so far.

    >>> frame = conv_frame(ConvSetting(3, 2), step=1)          # 2x2 output, second position
    >>> frame.window                                          # the taps, (row, col) in the input
    ((0, 1), (0, 2), (1, 1), (1, 2))
    >>> bool(frame.output[0, 1] == (frame.input[0:2, 1:3] * frame.kernel).sum())
    True
    """
    from cnnbook.scratch import functional as F

    if not isinstance(setting, ConvSetting):
        raise TypeError(f"conv_frame: setting must be a ConvSetting, got {type(setting).__name__}")
    checks.as_int("conv_frame", "step", step, 0)
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
                    widgets.IntSlider(value=0, min=0, max=self.STEPS - 1, description="position")]
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
        """Live: any setting; the position slider and the current Stack cover all its output positions."""
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
               f"position {frame.step} (of 0–{n * n - 1}, row by row): output[{i}, {j}] = Σ (blue cells × kernel) = {frame.output[i, j]:g}"]
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
        the position slider's nine values walk over every output position.

    Returns
    -------
    ConvArithmetic
        Preset controls: setting, step (``9 * len(presets)`` pictures). Live controls:
        input_size, kernel_size, padding, stride, dilation (the position slider then covers all
        ``H_out**2`` positions).
    """
    if isinstance(presets, ConvSetting) or not hasattr(presets, "__iter__"):
        raise TypeError(f"conv_arithmetic: presets must be a sequence of ConvSetting objects, "
                        f"got {type(presets).__name__}")
    presets = tuple(presets)
    if not presets:
        raise ValueError("conv_arithmetic: presets must hold at least one ConvSetting, got none")
    for s in presets:
        if not isinstance(s, ConvSetting):
            raise TypeError(f"conv_arithmetic: presets must be ConvSetting objects, got {type(s).__name__}")
        if s.output_size != 3:
            raise ValueError(f"conv_arithmetic: preset {s.label()} gives a {s.output_size}x{s.output_size} "
                             "output; presets must give 3x3 so that 9 steps cover it")
    return ConvArithmetic(presets)
