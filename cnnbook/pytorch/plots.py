"""Plotting helpers every chapter reuses: image grids, learning curves, comparisons, confusion matrices.

:func:`image_grid` is the one grid of images; :func:`show_images` (labels, predictions) and
:func:`show_predictions` (probabilities) only write its titles.

Each function draws with matplotlib, titles and labels its axes, and returns the matplotlib
``Figure`` (so a notebook cell can end in it). Pass ``ax=`` (or ``axes=``) to draw into an
existing figure instead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cnnbook.pytorch.metrics import _check_cm
from cnnbook.scratch import checks


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _integer_xticks(ax):
    """Ticks only at whole numbers on the x axis (epochs, layers: no "epoch 2.5")."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def _numeric(values, func: str, name: str) -> np.ndarray:
    """``values`` (array, tensor or nested lists of equal length) as a NumPy array of numbers."""
    try:
        v = _to_numpy(values)
    except ValueError:                                   # ragged nested lists
        v = None
    if v is None or not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
        raise TypeError(f"{func}: {name} must be an array of numbers (rows of equal length), "
                        f"got {type(values).__name__}")
    return v


def _as_numbers(values, func: str, name: str, ndims=(1, 2)) -> np.ndarray:
    """``values`` as a non-empty float array with one of ``ndims``."""
    v = _numeric(values, func, name).astype(float)
    if v.ndim not in ndims or v.size == 0:
        raise ValueError(f"{func}: {name} must be a non-empty {' or '.join(f'{d}-D' for d in ndims)} array, "
                         f"got shape {v.shape}")
    return v


def _check_names(func: str, name: str, values) -> None:
    """``values`` is None or a sequence with one entry per item (a string is not a list of titles)."""
    if values is not None and (isinstance(values, str) or not hasattr(values, "__len__")):
        raise TypeError(f"{func}: {name} must be a sequence, one entry per item, got {type(values).__name__}")


def _check_class_indices(func: str, name: str, labels, num_classes: int) -> None:
    indices = np.asarray(_to_numpy(labels))
    if indices.size and (not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0
                         or indices.max() >= num_classes):
        raise ValueError(f"{func}: {name} must be class indices in [0, {num_classes}), got {indices.tolist()}")


def _figure_of(ax, figsize):
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _as_image_batch(images, func: str) -> np.ndarray:
    """``(N, H, W)`` for grey images, ``(N, H, W, 3)`` for colour ones, from NCHW, NHWC or NHW."""
    imgs = _numeric(images, func, "images")
    if imgs.ndim == 4 and imgs.shape[1] in (1, 3) and imgs.shape[-1] not in (1, 3):
        imgs = imgs.transpose(0, 2, 3, 1)  # NCHW -> NHWC for imshow
    if imgs.ndim == 4 and imgs.shape[-1] == 1:
        imgs = imgs[..., 0]
    if imgs.ndim not in (3, 4):
        raise ValueError(f"{func}: images must be (N, C, H, W), (N, H, W) or (N, H, W, C), "
                         f"got shape {np.shape(images)}")
    if len(imgs) == 0:
        raise ValueError(f"{func}: images hold no image, shape {np.shape(images)}")
    return imgs


def image_grid(images, titles: Sequence[str] | None = None, colors: Sequence[str] | None = None,
               ncols: int = 8, title: str | None = None, cmap: str = "gray", size: float = 1.2):
    """The one image grid of the package: images in rows of ``ncols``, each with its own title.

    Parameters
    ----------
    images : array or tensor, shape ``(N, C, H, W)``, ``(N, H, W)`` or ``(N, H, W, C)``
        Grey images are shown as they are (min to max per image); colour ones clipped to [0, 1].
    titles, colors : sequence of str, optional
        One title (may hold a line break) and one title colour per image.
    ncols : int, default 8
    title : str, optional
        The figure's title.
    size : float, default 1.2
        Inches per image.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = image_grid(np.zeros((3, 4, 4)), titles=["a", "b", "c"], ncols=2)
    >>> [ax.get_title() for ax in fig.axes]
    ['a', 'b', 'c', '']
    """
    plt = _plt()
    imgs = _as_image_batch(images, "image_grid")
    n = len(imgs)
    for name, seq in (("titles", titles), ("colors", colors)):
        _check_names("image_grid", name, seq)
        if seq is not None and len(seq) != n:
            raise ValueError(f"image_grid: got {len(seq)} {name} for {n} images; give one per image")
    if not checks.is_int(ncols) or ncols < 1:
        raise ValueError(f"image_grid: ncols must be a positive int, got {ncols!r}")
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    lines = max((t.count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(size * ncols, (size + 0.17 * lines) * nrows + (0.5 if title else 0)))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(np.clip(imgs[i], 0, 1) if imgs.ndim == 4 else imgs[i], cmap=cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7 if lines > 1 else 8,
                         color=colors[i] if colors is not None else "black")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_images(images, labels=None, class_names=None, predictions=None, ncols: int = 8,
                title: str | None = None, cmap: str = "gray", size: float = 1.2):
    """Show a grid of images, each titled with its label (and prediction, when given).

    Parameters
    ----------
    images : array or tensor, shape ``(N, C, H, W)``, ``(N, H, W)`` or ``(N, H, W, C)``
        Values are shown as they are (min to max per image for one channel).
    labels, predictions : sequence of int, optional
        Class indices; a wrong prediction is titled in red.
    class_names : sequence of str, optional
        Names used in the titles instead of the indices.
    ncols : int, default 8
    title : str, optional
        The figure's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    func = "show_images"
    if predictions is not None and labels is None:
        raise ValueError(f"{func}: predictions need labels to be compared with; pass labels= too")
    n = len(_as_image_batch(images, "image_grid"))                   # the grid's own check
    for arg, values in (("labels", labels), ("predictions", predictions)):
        _check_names(func, arg, values)
        if values is not None and len(values) != n:
            raise ValueError(f"{func}: got {len(values)} {arg} for {n} images; give one per image")
        if values is not None:
            _check_class_indices(func, arg, values, len(class_names) if class_names is not None else np.inf)
    _check_names(func, "class_names", class_names)
    name = (lambda k: class_names[int(k)]) if class_names is not None else (lambda k: str(int(k)))
    titles = colors = None
    if labels is not None and predictions is not None:
        titles = [f"{name(p)}\n(true: {name(t)})" for t, p in zip(labels, predictions)]
        colors = ["black" if int(t) == int(p) else "red" for t, p in zip(labels, predictions)]
    elif labels is not None:
        titles = [name(t) for t in labels]
    return image_grid(images, titles, colors, ncols=ncols, title=title, cmap=cmap, size=size)


def show_predictions(images, labels, probs, class_names: Sequence[str], ncols: int = 8,
                     title: str = "Predictions", size: float = 1.45):
    """A grid of images, each titled with the predicted class and probability and the true class.

    Parameters
    ----------
    images : array or tensor ``(N, 1, H, W)`` or ``(N, H, W)``, pixel values for display
    labels : sequence of int
        True classes.
    probs : array or tensor ``(N, C)``
        Predicted class probabilities.
    class_names : sequence of str
    ncols : int, default 8
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        Titles read "predicted p / true: name p"; a wrong prediction is titled in red.
    """
    func = "show_predictions"
    probs = _as_numbers(probs, func, "probs", ndims=(2,))
    _check_names(func, "labels", labels)
    n = len(_as_image_batch(images, "image_grid"))
    if len(labels) != n or len(probs) != n:
        raise ValueError(f"show_predictions: got {n} images, {len(labels)} labels and {len(probs)} "
                         "rows of probabilities; give one of each per image")
    _check_names(func, "class_names", class_names)
    if class_names is None or len(class_names) != probs.shape[1]:
        raise ValueError(f"{func}: class_names must name the {probs.shape[1]} classes of probs, got "
                         f"{None if class_names is None else len(class_names)}")
    _check_class_indices(func, "labels", labels, probs.shape[1])
    preds, trues = probs.argmax(1), [int(t) for t in labels]
    titles = [f"{class_names[p]} {probs[i, p]:.2f}\ntrue: {class_names[t]} {probs[i, t]:.2f}"
              for i, (p, t) in enumerate(zip(preds, trues))]
    colors = ["black" if p == t else "red" for p, t in zip(preds, trues)]
    return image_grid(images, titles, colors, ncols=ncols, title=title, size=size)


def _history_dict(history) -> Mapping:
    return history.history if hasattr(history, "history") else history


def plot_history(history, metrics: Sequence[str] = ("loss", "accuracy"), axes=None,
                 label: str | None = None, title: str | None = None):
    """Plot learning curves (学习曲线): one panel per metric, training and validation.

    Parameters
    ----------
    history : cnnbook.pytorch.train.History or mapping
        Per-epoch lists, keyed like Keras: ``"loss"``, ``"val_loss"``, ``"accuracy"``, ...
    metrics : sequence of str, default ("loss", "accuracy")
        Metrics to plot; a missing ``"val_<m>"`` is simply not drawn.
    axes : sequence of matplotlib Axes, optional
        One per metric; pass the same axes again to overlay several runs (use ``label``).
    label : str, optional
        Prefix of the legend entries.
    """
    plt = _plt()
    hist = _history_dict(history)
    if not isinstance(hist, Mapping):
        raise TypeError(f"plot_history: history must be a History or a dict of per-epoch lists, "
                        f"got {type(history).__name__}")
    if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics:
        raise TypeError(f"plot_history: metrics must be a non-empty sequence of names, e.g. ('loss',), got {metrics!r}")
    missing = [m for m in metrics if m not in hist and f"val_{m}" not in hist]
    if missing:
        raise ValueError(f"plot_history: no {missing} in the history; it has {sorted(hist)}")
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
        axes = axes[0]
    elif len(axes) != len(metrics):
        raise ValueError(f"plot_history: got {len(axes)} axes for {len(metrics)} metrics; give one per metric")
    fig = axes[0].figure
    prefix = f"{label} " if label else ""
    for ax, m in zip(axes, metrics):
        for key, style, kind in ((m, "-", "train"), (f"val_{m}", "--", "validation")):
            if key in hist and len(hist[key]):
                epochs = np.arange(1, len(hist[key]) + 1)
                ax.plot(epochs, hist[key], style, marker="o", ms=3, label=f"{prefix}{kind}")
        ax.set_xlabel("epoch")
        _integer_xticks(ax)
        ax.set_ylabel(m)
        ax.set_title(m if title is None else f"{title}: {m}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_curves(curves: Mapping[str, object], xlabel: str = "epoch", ylabel: str = "",
                title: str = "", ax=None, logy: bool = False):
    """Plot one curve per label; a 2-D entry (runs x steps) is drawn as mean ± std band.

    Parameters
    ----------
    curves : mapping label -> array of shape ``(T,)`` or ``(R, T)``
        ``R`` repeated runs (e.g. seeds) of ``T`` steps each.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError(f"plot_curves: curves must be a non-empty dict of label -> values, got {type(curves).__name__}")
    curves = {label: np.atleast_2d(_as_numbers(values, "plot_curves", f"curves[{label!r}]"))
              for label, values in curves.items()}
    fig, ax = _figure_of(ax, (5.5, 3.6))
    for label, v in curves.items():
        x = np.arange(1, v.shape[1] + 1)
        mean = v.mean(axis=0)
        (line,) = ax.plot(x, mean, marker="o", ms=3, label=label if len(v) == 1 else f"{label} (n={len(v)})")
        if len(v) > 1:
            std = v.std(axis=0, ddof=1)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    if logy:
        ax.set_yscale("log")
    _integer_xticks(ax)                 # x counts steps 1..T, whatever its label
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_comparison(results: Mapping[str, Sequence[float]], ylabel: str = "", title: str = "",
                    ax=None):
    """Compare settings: each run as a grey dot, the mean ± standard deviation as an error bar.

    Parameters
    ----------
    results : mapping label -> sequence of float
        The measured values of each setting (one per seed or repetition).
    """
    if not isinstance(results, Mapping) or not results:
        raise TypeError(f"plot_comparison: results must be a non-empty dict of label -> values, "
                        f"got {type(results).__name__}")
    results = {label: _as_numbers(v, "plot_comparison", f"results[{label!r}]", ndims=(1,))
               for label, v in results.items()}
    labels = list(results)
    fig, ax = _figure_of(ax, (1.1 * len(labels) + 2.5, 3.4))
    x = np.arange(len(labels))
    for i, label in enumerate(labels):
        v = results[label]
        ax.plot(np.full(len(v), x[i]) + np.linspace(-0.12, 0.12, len(v)), v, ".", color="0.6", ms=6)
        std = v.std(ddof=1) if len(v) > 1 else 0.0
        ax.errorbar(x[i], v.mean(), yerr=std, fmt="o", color=f"C{i % 10}", capsize=5, ms=7)
    long = max(len(s) for s in labels) > 8
    ax.set_xticks(x, labels, rotation=20 if long else 0, ha="right" if long else "center")
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm, class_names=None, normalize: str | None = None, ax=None,
                          title: str = "Confusion matrix", cmap: str = "Blues"):
    """Draw a confusion matrix (混淆矩阵) as an annotated heatmap.

    Parameters
    ----------
    cm : array, shape ``(C, C)``
        Counts, rows = true class, columns = predicted class
        (:func:`cnnbook.pytorch.metrics.confusion_matrix`).
    class_names : sequence of str, optional
    normalize : {None, "true", "pred"}, default None
        ``"true"`` divides each row by its sum (the diagonal is then the recall),
        ``"pred"`` each column (the diagonal is then the precision).
    """
    cm = _to_numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.size == 0:
        raise ValueError(f"plot_confusion_matrix: cm must be square (C, C), got shape {cm.shape}")
    cm = _check_cm(cm, "plot_confusion_matrix").astype(float)
    _check_names("plot_confusion_matrix", "class_names", class_names)
    if class_names is not None and len(class_names) != len(cm):
        raise ValueError(f"plot_confusion_matrix: got {len(class_names)} class_names for {len(cm)} classes")
    if normalize not in (None, "true", "pred"):
        raise ValueError(f"plot_confusion_matrix: normalize must be None, 'true' or 'pred', got {normalize!r}")
    if normalize:
        axis = 1 if normalize == "true" else 0
        sums = cm.sum(axis=axis, keepdims=True)
        cm = np.divide(cm, sums, out=np.zeros_like(cm), where=sums != 0)
    c = len(cm)
    fig, ax = _figure_of(ax, (0.55 * c + 2.5, 0.55 * c + 1.8))
    im = ax.imshow(cm, cmap=cmap)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    names = list(class_names) if class_names is not None else [str(k) for k in range(c)]
    ax.set_xticks(range(c), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(c), names, fontsize=8)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(c):
        for j in range(c):
            text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=6 if c > 6 else 8,
                    color="white" if cm[i, j] > threshold else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    return fig
