"""The machinery every checker shares: :class:`Feedback`, calling the answer safely (with a
time limit), comparing arrays with a tolerance that follows the answer's dtype, and
diagnosing common mistakes.

A checker never raises because of the answer it checks: an answer that raises, returns
``None``, a tuple, an array of the wrong shape, NaN, or never returns becomes a failed
:class:`Feedback` that says so.

>>> from cnnbook.book.exercises._core import _compare
>>> import numpy as np
>>> _compare(np.float32(1 / 3), 1 / 3) is None      # float32 precision is enough for a float32 answer
True
>>> _compare(0.3333, 1 / 3)
'output differs from the expected by up to 3.33e-05 (got 0.3333, expected 0.333333)'
>>> _compare((np.ones(2), 0), np.ones(2))
'returned a tuple of 2 items, expected an array of shape (2,): return only the output'
"""
from __future__ import annotations

import numbers
from typing import Callable

import numpy as np

from cnnbook.book.exercises._timelimit import TooSlow, call_with_time_limit

TIME_LIMIT = 10.0
"""Seconds one call of an answer may take before the checker stops it (None: no limit)."""

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
    stopped : bool, default False
        True when checking stopped because of the answer as a whole (not written yet, not a
        function, too slow); ``failures`` then holds the one reason.

    Examples
    --------
    >>> print(Feedback("check_x", 3, ["case n=2: returned 5, expected 4"], "the formula"))
    ✗ check_x: 2 of 3 cases pass (checked against the formula).
      - case n=2: returned 5, expected 4
    >>> bool(Feedback("check_x", 3, [], "the formula"))
    True
    """

    def __init__(self, name: str, total: int, failures: list[str], reference: str, stopped: bool = False):
        self.name, self.total, self.failures, self.reference = name, total, list(failures), reference
        self.stopped = stopped

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"✓ {self.name}: all {self.total} cases pass (checked against {self.reference}). Well done!"
        if self.stopped:
            return f"✗ {self.name}: {self.failures[0]}."
        good = self.total - len(self.failures)
        lines = [f"✗ {self.name}: {good} of {self.total} cases pass (checked against {self.reference})."]
        lines += [f"  - {line}" for line in self.failures[:_MAX_SHOWN]]
        if len(self.failures) > _MAX_SHOWN:
            lines.append(f"  ... and {len(self.failures) - _MAX_SHOWN} more failed cases.")
        return "\n".join(lines)

    __repr__ = __str__


# --------------------------------------------------------------------------- calling the answer

class _Stop(Exception):
    """Checking stops: the answer as a whole failed; the message says why."""

    per_case = False  # whether the message names the case it happened on


class _NotWritten(_Stop):
    """The answer still raises NotImplementedError."""

    def __init__(self):
        super().__init__(_NOT_WRITTEN)


class _TooSlow(_Stop):
    """The answer did not return within the time limit."""

    per_case = True

    def __init__(self, limit):
        super().__init__(f"no answer after {limit:g} s (the time limit of one call), so checking stopped: "
                         "is there a loop that never ends?")


class _Raised(Exception):
    """The answer raised some other exception; the message names it."""


def _call(fn: Callable, *args, **kwargs):
    """Call the student's function within :data:`TIME_LIMIT`; turn its exceptions into feedback."""
    if not callable(fn):
        raise _Stop(f"expected a function, got {_a(fn)}: pass the function itself, as in "
                    "check_x(my_function), not the result of calling it, my_function(...)")
    try:
        with np.errstate(all="ignore"):  # overflow shows up as NaN in the feedback instead
            return _limited(fn, args, kwargs)
    except NotImplementedError:
        raise _NotWritten() from None
    except _Stop:
        raise
    except (Exception, SystemExit) as exc:  # any bug in the answer becomes feedback, never a crash
        raise _Raised(f"raised {type(exc).__name__}: {exc}") from None


def _limited(fn, args=(), kwargs=None):
    """``fn(*args, **kwargs)`` within :data:`TIME_LIMIT`; raises :class:`_TooSlow` after it."""
    try:
        return call_with_time_limit(fn, args, kwargs or {}, TIME_LIMIT)
    except TooSlow as exc:
        raise _TooSlow(exc.limit) from None


def _torch_call(module, x):
    """``module(x)`` without gradients, as safely as :func:`_call`."""
    import torch

    with torch.no_grad():
        return _call(module, x)


def _a(value) -> str:
    """'a tuple', 'an int', 'an ndarray of shape (2, 3)': what a value is, for feedback."""
    if value is None:
        return "None"
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" or name == "ndarray" else "a"
    shape = getattr(value, "shape", None)
    return f"{article} {name}" + (f" of shape {tuple(shape)}" if shape is not None and len(shape) else "")


# --------------------------------------------------------------------------- reading the answer

def _to_array(value):
    """NumPy view of an answer (arrays, lists, numbers, torch tensors), or None if impossible.

    A floating-point answer keeps its dtype, so that a float32 answer is compared with
    float32's tolerance; anything else becomes float64.
    """
    try:
        if hasattr(value, "detach"):
            value = value.detach().cpu().float().numpy() if str(value.dtype) == "torch.bfloat16" \
                else value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            return arr
        if arr.dtype.kind in "USc":  # text is not a number, even "0.5"; complex has no order
            return None
        return arr.astype(np.float64) if arr.dtype.kind in "biu" else np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        return None


def _number(got):
    """``(value, None)`` when the answer is one number (Python, NumPy, 0-d array or tensor),
    else ``(None, why not)``."""
    if got is None:
        return None, "returned None: did you forget `return`?"
    if isinstance(got, (bool, np.bool_)):
        return None, f"returned the bool {got!r}, expected a number"
    if isinstance(got, numbers.Real):
        return got, None
    if isinstance(got, np.ndarray) or hasattr(got, "detach"):
        if len(got.shape) == 0:
            return _number(got.item())
        return None, f"returned an array of shape {tuple(got.shape)}, expected one number"
    return None, f"returned {_a(got)}, expected one number"


def _tolerance(dtype, expected, rtol, atol):
    """The checker's ``(rtol, atol)``, loosened to what an answer of ``dtype`` can reach.

    A floating-point answer is allowed a relative error of ``sqrt(eps)`` of its dtype (about
    3.5e-4 for float32, 1.5e-8 for float64) and the same times the largest expected value as
    absolute error (cancellation in a sum loses precision relative to its largest terms).
    """
    if np.dtype(dtype).kind != "f":
        return rtol, atol
    loose = float(np.sqrt(np.finfo(dtype).eps))
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    return max(rtol, loose), max(atol, loose * scale)


def _pair(got, expected):
    """'got 0.1234571, expected 0.1234568': the two numbers with enough digits to differ."""
    for digits in (6, 9, 12, 17):
        a, b = f"{got:.{digits}g}", f"{expected:.{digits}g}"
        if a != b:
            return f"got {a}, expected {b}", digits > 6
    return f"got {got!r}, expected {expected!r}", True


def _compare(got, expected, rtol=1e-6, atol=1e-8, what="output"):
    """Return None when ``got`` matches ``expected``, else a sentence saying how it differs.

    ``rtol`` and ``atol`` are the tolerances for a float64 answer; a lower-precision answer
    (float32, float16) gets its dtype's, see :func:`_tolerance`.
    """
    expected = np.asarray(expected, dtype=np.float64)
    wanted = "one number" if expected.shape == () else f"an array of shape {expected.shape}"
    if got is None:
        return "returned None: did you forget `return`?"
    if isinstance(got, tuple) and not all(isinstance(v, numbers.Real) for v in got):
        return f"returned a tuple of {len(got)} items, expected {wanted}: return only the {what}"
    arr = _to_array(got)
    if arr is None:
        return f"returned {_a(got)}, expected {wanted}"
    if arr.shape != expected.shape:
        if expected.shape == ():
            return f"returned an array of shape {arr.shape}, expected one number (the {what})"
        if arr.shape == ():
            return f"returned one number, expected an array of shape {expected.shape}"
        return f"{what} shape {arr.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(arr)) and np.all(np.isfinite(expected)):
        return f"{what} contains NaN or infinity, expected finite values"
    rtol, atol = _tolerance(arr.dtype, expected, rtol, atol)
    got64 = arr.astype(np.float64)
    if np.allclose(got64, expected, rtol=rtol, atol=atol):
        return None
    err = np.abs(got64 - expected)
    where = np.unravel_index(np.nanargmax(err), err.shape) if err.ndim else ()
    at = f" at index {tuple(int(i) for i in where)}" if err.ndim else ""
    numbers_, close = _pair(float(got64[where]), float(expected[where]))
    sentence = f"{what} differs from the expected by up to {np.nanmax(err):.3g}{at} ({numbers_})"
    if close:
        sentence += f"; a {arr.dtype} answer may differ by {rtol:.2g} relative plus {atol:.2g} absolute"
    return sentence


def _close(a, b, rtol=1e-6, atol=1e-8):
    """Whether ``a`` equals ``b`` within the tolerance of ``a``'s dtype."""
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return False
    rtol, atol = _tolerance(a.dtype, np.asarray(b, dtype=np.float64), rtol, atol)
    return bool(np.allclose(a.astype(np.float64), b, rtol=rtol, atol=atol))


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
    """Run ``check_one(case)`` (None or a failure sentence) on every case; collect feedback.

    Nothing the answer does escapes as an exception: an answer that is not a function, not
    written or too slow stops the checking with that one reason; any other surprise in a case
    (an answer the checker cannot read) becomes that case's failure.
    """
    failures = []
    for case in cases:
        try:
            problem = check_one(case)
        except _Stop as stop:
            reason = f"{_describe(case)}: {stop}" if stop.per_case else str(stop)
            return Feedback(name, len(cases), [reason], reference, stopped=True)
        except _Raised as exc:
            problem = str(exc)
        except Exception as exc:  # an answer of a kind the checker did not foresee
            problem = f"could not check the answer ({type(exc).__name__}: {exc})"
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

