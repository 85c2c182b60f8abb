"""A time limit for one call of a student's answer, so that a checker stops an endless loop.

In the main thread (where Jupyter runs cells) a SIGALRM timer interrupts the answer; elsewhere
(another thread, as under some test runners, or Windows, which has no SIGALRM) the answer runs
in a helper thread that is abandoned after the limit.

>>> call_with_time_limit(sum, ([1, 2, 3],), {}, limit=1.0)
6
>>> import time
>>> call_with_time_limit(time.sleep, (5,), {}, limit=0.1)
Traceback (most recent call last):
...
cnnbook.book.exercises._timelimit.TooSlow: no answer after 0.1 s
"""
from __future__ import annotations

import ctypes
import signal
import sys
import threading
import time

import numpy as np


class TooSlow(Exception):
    """The call did not return within ``limit`` seconds."""

    def __init__(self, limit):
        super().__init__(f"no answer after {limit:g} s")
        self.limit = limit


class TimedOut(BaseException):
    """Raised inside the answer when its time is up. A BaseException, like KeyboardInterrupt,
    so that an ``except Exception`` in the answer does not swallow it."""


def call_with_time_limit(fn, args, kwargs, limit):
    """``fn(*args, **kwargs)``, stopped after ``limit`` seconds (None or 0: no limit).

    In the main thread (Jupyter runs cells there) a SIGALRM timer interrupts the answer. Where
    that is impossible (another thread, as under some test runners, or Windows) the answer runs
    in a helper thread and is abandoned after the limit; a pure-Python loop there is also
    interrupted, a long ``sleep`` or NumPy call ends on its own.
    """
    if not limit or limit <= 0:
        return fn(*args, **kwargs)
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        return _by_alarm(fn, args, kwargs, limit)
    return _by_thread(fn, args, kwargs, limit)


def _by_alarm(fn, args, kwargs, limit):
    state = {"running": True, "fired": False}

    def on_alarm(signum, frame):
        if state["running"]:
            state["fired"] = True
            raise TimedOut()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, limit)  # a timer someone else set: restored below
    start = time.monotonic()
    try:
        try:
            result = fn(*args, **kwargs)
        finally:
            state["running"] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except TimedOut:
        raise TooSlow(limit) from None
    finally:
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))
    if state["fired"]:  # the answer caught the interruption with a bare `except:`
        raise TooSlow(limit)
    return result


def _by_thread(fn, args, kwargs, limit):
    torch = sys.modules.get("torch")
    grad_mode = torch.is_grad_enabled() if torch is not None else None  # thread-local in torch
    box = {}

    def run():
        try:
            if torch is not None:
                torch.set_grad_enabled(grad_mode)
            with np.errstate(all="ignore"):
                box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=run, name="cnnbook-checked-answer", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(TimedOut))
        raise TooSlow(limit)
    if "error" in box:
        raise box["error"]
    return box["value"]
