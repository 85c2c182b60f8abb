"""The machinery every widget shares: :class:`Explorer`, a tree of precomputed pictures.

Each preset control is ``jslink``-ed straight to the containers (``Stack``, or ``Tab`` under
ipywidgets 7) of its level, so that the static HTML book switches pictures without Python;
with a running kernel, ``observe`` callbacks also redraw the picture from the live controls.
The pictures themselves are drawn by :mod:`cnnbook.book.widgets._pictures`.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np
import traitlets

from cnnbook.scratch import checks


def _check_sequence(fn, name, values):
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"{fn}: {name} must be a non-empty tuple of numbers, got {values!r}")


def _check_options(fn, name, values, low, high=np.inf, low_open=False, high_open=True):
    """The values a preset control offers: a non-empty sequence of distinct finite numbers in range."""
    _check_sequence(fn, name, values)
    for i, v in enumerate(values):
        checks.check_number(fn, f"{name}[{i}]", v, low, high, high_open=high_open, low_open=low_open)
    labels = [f"{v:g}" for v in values]            # what the control shows
    if len(set(labels)) != len(labels):
        raise ValueError(f"{fn}: {name} must be distinct, got {list(values)}")


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
        # Not cnnbook.pytorch.plots.show_images: these are finished PNGs (their own titles,
        # colour scales and layout), shown at their pixel size (72 dpi), not data images
        # scaled into equal cells; and the widgets need no torch.
        import matplotlib.pyplot as plt
        from PIL import Image

        name = f"{type(self).__name__}.figure"
        if not isinstance(keys, (list, tuple)) or not keys:
            raise TypeError(f"{name}: keys must be a non-empty list of keys of frames, e.g. "
                            f"[{next(iter(self.images))}], got {keys!r}")
        checks.as_int(name, "ncols", ncols, 1)
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
