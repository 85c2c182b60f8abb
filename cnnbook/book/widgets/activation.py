"""The activation widget, :func:`activation_explorer`: sigmoid, tanh, ReLU and leaky ReLU,
their derivatives (the backward functions of :mod:`cnnbook.scratch.functional`) and the
tangent at a point.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from cnnbook.book.widgets._explorer import Explorer, _check_options
from cnnbook.book.widgets._pictures import _Canvas
from cnnbook.scratch import checks


ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")


def activation_and_derivative(name, x, negative_slope=0.1):
    """``f(x)`` and ``f'(x)`` for one of :data:`ACTIVATIONS`, from :mod:`cnnbook.scratch.functional`.

    The derivative is the backward function applied to an upstream gradient of ones.

    >>> y, dy = activation_and_derivative("sigmoid", np.array([0.0]))
    >>> float(y[0]), float(dy[0])                          # σ(0) = 1/2, σ'(0) = σ(0)(1 - σ(0))
    (0.5, 0.25)
    """
    from cnnbook.scratch import functional as F

    try:
        if isinstance(x, str):                    # NumPy would read "1" as 1.0
            raise TypeError
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"activation_and_derivative: x must be an array of numbers, got {type(x).__name__}") from None
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
    raise ValueError(f"activation_and_derivative: unknown activation {name!r}; choose from {ACTIVATIONS}")


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
    if not checks.is_number(x0):
        raise TypeError(f"activation_frame: x0 must be a number, got {x0!r}")
    x = np.linspace(-6, 6, 241) if x is None else x
    y, dy = activation_and_derivative(name, x, negative_slope)
    (y0,), (dy0,) = activation_and_derivative(name, np.array([float(x0)]), negative_slope)
    return ActivationFrame(name, negative_slope, x, y, dy, float(x0), float(y0), float(dy0))


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
        slope = widgets.FloatSlider(value=negative_slope, min=min(0.0, negative_slope), max=max(0.5, negative_slope),
                                    step=0.01,
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
    fn = "activation_explorer"
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise TypeError(f"{fn}: names must be a non-empty tuple of activation names, e.g. ('relu',), got {names!r}")
    unknown = [n for n in names if n not in ACTIVATIONS]
    if unknown:
        raise ValueError(f"{fn}: unknown activations {unknown} in names; choose from {ACTIVATIONS}")
    _check_options(fn, "points", points, low=-np.inf, low_open=True)
    checks.check_number(fn, "negative_slope", negative_slope, -np.inf, np.inf, high_open=True, low_open=True)
    return ActivationExplorer(tuple(names), tuple(float(p) for p in points), float(negative_slope))

