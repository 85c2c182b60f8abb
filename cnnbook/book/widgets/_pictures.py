"""Drawing helpers of the widgets: arrays as pixel panels, matrices as numbered grids, panels
in a row, matplotlib curves on a reused Agg canvas, all encoded as small deterministic PNGs;
and the default images (a photograph, a white square).

Pillow draws pictures of arrays, matplotlib's Agg (not pyplot) draws curves. These pictures
are what the static HTML book carries, so they are laid out pixel by pixel, with their own
titles and colour scales; :func:`cnnbook.pytorch.plots.show_images` is the book's grid for
showing data images in a matplotlib figure.
"""
from __future__ import annotations

import io
import itertools
from functools import lru_cache

import numpy as np

PANEL = 112        # side of an image panel in display pixels (28x28 images: 4 pixels per pixel)


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


def _as_image(array, fn, name="each of images") -> np.ndarray:
    """A grey image as a float ``(H, W)`` array (accepts ``(1, H, W)`` and tensors)."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    try:
        a = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name} must be an array of numbers, got {type(array).__name__}") from None
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{fn}: {name} must be a grey image of shape (H, W) or (1, H, W), "
                         f"got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{fn}: {name} must hold finite numbers, got {np.count_nonzero(~np.isfinite(a))} "
                         "NaN or infinite pixel(s)")
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
