"""``glue``: put a number computed in a cell into the book's prose.

In the book build, myst-nb's ``glue`` stores the value under a name, and the text cites it
with ``{glue:text}`name```; the value is always the one the cell just computed. Outside the
build (JupyterLab, Colab, a laptop without myst-nb) there is no prose to fill in, so the value
is shown instead, or nothing when ``display=False``: the notebook runs the same everywhere.

>>> from cnnbook.book.glue import glue
>>> glue("answer", 42, display=False)   # no output, with or without myst-nb
"""
from __future__ import annotations

__all__ = ["glue"]


def glue(name: str, value, display: bool = True) -> None:
    """Store ``value`` under ``name`` for the book's text (myst-nb), or show it without myst-nb.

    Parameters
    ----------
    name : str
        The key the text uses, as in ``{glue:text}`name```.
    value : object
        The value (a number, a string, a figure, ...).
    display : bool, default True
        Also show the value in the cell's output.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"glue: name must be a non-empty string, got {name!r}")
    if not isinstance(display, bool):
        raise TypeError(f"glue: display must be True or False, got {display!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show
            show(value)
        return
    myst_glue(name, value, display=display)
