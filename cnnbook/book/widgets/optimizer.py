"""The optimizer widget, :func:`optimizer_race`: SGD, momentum, RMSprop and Adam
(:mod:`cnnbook.scratch.optim`) racing down an elongated bowl, :func:`loss_surface`.
"""
from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from cnnbook.book.widgets._explorer import Explorer, _check_options, _check_sequence
from cnnbook.book.widgets._pictures import _Canvas
from cnnbook.scratch import checks


def loss_surface(w1, w2):
    """The race track: an elongated bowl ``w1**2 / 20 + w2**2``, 20 times steeper along w2.

    Works elementwise on arrays (for contour plots). Its minimum is 0 at (0, 0).
    """
    return np.asarray(w1) ** 2 / 20 + np.asarray(w2) ** 2


def loss_surface_gradient(w):
    """Gradient of :func:`loss_surface` at ``w = (w1, w2)``: ``(w1 / 10, 2 * w2)``.

    >>> loss_surface_gradient((-4.5, 1.5))
    array([-0.45,  3.  ])
    """
    w = _as_point("loss_surface_gradient", "w", w)
    return np.array([w[0] / 10, 2 * w[1]])


RACE_START = (-4.5, 1.5)


def _as_point(fn, name, w):
    """``w`` as a float array ``(w1, w2)``: a point of the plane, finite."""
    try:
        point = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        point = None
    if point is None or point.shape != (2,) or not np.isfinite(point).all():
        raise ValueError(f"{fn}: {name} must be a point (w1, w2) of two finite numbers, got {w!r}")
    return point


def optimizer_paths(lr, momentum, start=RACE_START, steps=50):
    """Run SGD, SGD with momentum, RMSprop and Adam (all :mod:`cnnbook.scratch.optim`) on the bowl.

    Returns
    -------
    dict of str to ndarray of shape ``(steps + 1, 2)``
        Each optimizer's positions, the start included.
    """
    from cnnbook.scratch import nn, optim

    fn = "optimizer_paths"
    checks.check_number(fn, "lr", lr, high=np.inf, high_open=True)
    checks.check_number(fn, "momentum", momentum, high=1.0, high_open=True)
    start = _as_point(fn, "start", start)
    checks.as_int(fn, "steps", steps, 0)
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
                "steps": widgets.IntSlider(value=steps, min=1, max=max(300, steps), description="steps")}
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
    fn = "optimizer_race"
    _check_sequence(fn, "lrs", lrs)
    _check_sequence(fn, "momenta", momenta)
    if len(lrs) * len(momenta) > 40:
        raise ValueError(f"optimizer_race: {len(lrs)} learning rates x {len(momenta)} momenta is too many "
                         "pictures for a light page (at most 40)")
    _check_options(fn, "lrs", lrs, low=0.0, low_open=True)
    _check_options(fn, "momenta", momenta, low=0.0, high=1.0)
    checks.as_int(fn, "steps", steps, 1)
    return OptimizerRace(tuple(float(v) for v in lrs), tuple(float(v) for v in momenta), int(steps))
