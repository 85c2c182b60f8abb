"""The machinery every checker shares: :class:`Feedback`, calling the answer safely,
comparing arrays and diagnosing common mistakes."""
from __future__ import annotations

from typing import Callable

import numpy as np
_MAX_SHOWN = 3
_NOT_WRITTEN = "not written yet: replace `raise NotImplementedError()` with your code"


class Feedback:
    """The verdict of a checker: true when every case passed; its text says what failed.

    Parameters
    ----------
    name : str
        The checker's name, e.g. ``"check_conv2d"``.
    total : int
        How many cases were tried.
    failures : list of str
        One line per failed case, each with its hint.
    reference : str
        What the answer was checked against, e.g. ``"torch.nn.functional.conv2d"``.
    """

    def __init__(self, name: str, total: int, failures: list[str], reference: str):
        self.name, self.total, self.failures, self.reference = name, total, list(failures), reference

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"✓ {self.name}: all {self.total} cases pass (checked against {self.reference}). Well done!"
        if len(self.failures) == 1 and self.failures[0] == _NOT_WRITTEN:
            return f"✗ {self.name}: {_NOT_WRITTEN}."
        good = self.total - len(self.failures)
        lines = [f"✗ {self.name}: {good} of {self.total} cases pass (checked against {self.reference})."]
        lines += [f"  - {line}" for line in self.failures[:_MAX_SHOWN]]
        if len(self.failures) > _MAX_SHOWN:
            lines.append(f"  ... and {len(self.failures) - _MAX_SHOWN} more failed cases.")
        return "\n".join(lines)

    __repr__ = __str__


class _NotWritten(Exception):
    """The answer still raises NotImplementedError."""


class _Raised(Exception):
    """The answer raised some other exception; the message names it."""


def _call(fn: Callable, *args, **kwargs):
    """Call the student's function; turn its exceptions into feedback."""
    try:
        with np.errstate(all="ignore"):  # overflow shows up as NaN in the feedback instead
            return fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotWritten() from None
    except Exception as exc:  # any bug in the answer becomes feedback, never a crash
        raise _Raised(f"raised {type(exc).__name__}: {exc}") from None


def _to_array(value):
    """NumPy view of an answer (arrays, lists, numbers, torch tensors), or None if impossible."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr


def _compare(got, expected, rtol=1e-6, atol=1e-8, what="output"):
    """Return None when ``got`` matches ``expected``, else a sentence saying how it differs."""
    if got is None:
        return "returned None: did you forget `return`?"
    arr = _to_array(got)
    expected = np.asarray(expected, dtype=np.float64)
    if arr is None:
        return f"returned a {type(got).__name__}, expected an array of shape {expected.shape}"
    if arr.shape != expected.shape:
        return f"{what} shape {arr.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(arr)) and np.all(np.isfinite(expected)):
        return f"{what} contains NaN or infinity, expected finite values"
    if not np.allclose(arr, expected, rtol=rtol, atol=atol):
        err = np.abs(arr - expected)
        where = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
        at = f" at index {tuple(int(i) for i in where)}" if err.ndim else ""
        return (f"{what} differs from the expected by up to {err.max():.3g}{at} "
                f"(got {arr[where]:.6g}, expected {expected[where]:.6g})")
    return None


def _close(a, b):
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and np.allclose(a, b, rtol=1e-6, atol=1e-8)


def _diagnose(got, expected, hints):
    """The hint of the first common mistake whose result ``got`` reproduces, or None.

    ``hints`` is a list of ``(wrong_result, hint)``; mistakes that give the right answer on
    this case are skipped. A wrong result equal to ``got`` wins; failing that, when ``got``
    has the wrong shape, one with the same shape as ``got``.
    """
    arr = _to_array(got) if got is not None else None
    expected = np.asarray(expected, dtype=np.float64)
    if arr is None:
        return None
    wrongs = [(np.asarray(w, dtype=np.float64), h) for w, h in hints]
    wrongs = [(w, h) for w, h in wrongs if not _close(w, expected)]
    for wrong, hint in wrongs:
        if _close(arr, wrong):
            return hint
    if arr.shape != expected.shape:
        return next((h for w, h in wrongs if w.shape == arr.shape), None)
    return None


def _run(name: str, reference: str, cases: list, check_one: Callable) -> Feedback:
    """Run ``check_one(case)`` (None or a failure sentence) on every case; collect feedback."""
    failures = []
    for case in cases:
        try:
            problem = check_one(case)
        except _NotWritten:
            return Feedback(name, len(cases), [_NOT_WRITTEN], reference)
        except _Raised as exc:
            problem = str(exc)
        if problem:
            failures.append(f"{_describe(case)}: {problem}")
    return Feedback(name, len(cases), failures, reference)


def _describe(case: dict) -> str:
    """'case x of shape (1, 2, 5, 5), padding=1' from a case dict.

    Small hand-written arrays (whole numbers, at most 12) are shown in full, others by shape;
    keys that start with ``_`` are hidden.
    """
    parts = []
    for key, value in case.items():
        if key.startswith("_"):
            continue
        if isinstance(value, np.ndarray) and (value.size > 12 or np.any(value != np.round(value))):
            parts.append(f"{key} of shape {value.shape}")
        elif isinstance(value, np.ndarray):
            parts.append(f"{key}={value.astype(np.int64).tolist()}")
        else:
            parts.append(f"{key}={value!r}")
    return "case " + ", ".join(parts)


def _with_hint(problem, got, expected, hints):
    """Append the diagnosed hint, if any, to a failure sentence (None stays None)."""
    if problem is None:
        return None
    hint = _diagnose(got, expected, hints)
    return f"{problem}: {hint}" if hint else problem


def _rng(seed=0):
    return np.random.default_rng(seed)


def _trajectory_problem(got, expected):
    for step, (g, e) in enumerate(zip(got, expected), start=1):
        problem = _compare(g, e, what=f"parameter after step {step}")
        if problem:
            return problem
    return None


def _torch_call(module, x):
    import torch

    try:
        with torch.no_grad():
            return module(x)
    except NotImplementedError:
        raise _NotWritten() from None
    except Exception as exc:
        raise _Raised(f"raised {type(exc).__name__}: {exc}") from None
