"""Argument checks and window geometry shared by every op in ``cnnbook.scratch``.

The checks raise ``TypeError``/``ValueError`` naming the function, the argument, what was
expected, what was given and a hint; the geometry helpers compute output sizes, pad
images and index the pixels one kernel tap sees. The ops in ``functional``, the layers
in ``nn`` and the optimizers in ``optim`` all use these, so an error reads the same
wherever a student makes it. This module never imports torch.

Examples
--------
>>> import numpy as np
>>> as_pair("conv2d", "stride", 2, 1)
(2, 2)
>>> output_size("conv2d", (28, 28), (5, 5), (1, 1), (2, 2, 2, 2), (1, 1))
(28, 28)
"""
from __future__ import annotations

import numpy as np

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("mean", "sum", "none")


def check_array(fn, name, x, ndim=None, layout=""):
    """Raise unless ``x`` is a float32/float64 ndarray with one of the allowed ``ndim``."""
    if not isinstance(x, np.ndarray):
        hint = "call .numpy() on a torch tensor" if hasattr(x, "detach") else "wrap it with np.asarray(...)"
        raise TypeError(f"{fn}: {name} must be a NumPy array, got {type(x).__name__}; hint: {hint}")
    if x.dtype not in FLOATS:
        raise TypeError(f"{fn}: {name} must have dtype float32 or float64, got {x.dtype}; "
                        f"hint: convert it with {name}.astype(np.float32)")
    if ndim is not None and x.ndim not in ndim:
        want = f"at least {ndim.start}" if isinstance(ndim, range) else " or ".join(map(str, ndim))
        batch_hint = name == "input" and x.ndim == min(ndim) - 1    # only an input has a batch axis to add
        raise ValueError(f"{fn}: {name} must be {want}-dimensional {layout}, got shape {x.shape}"
                         + (f"; hint: add a batch axis with {name}[None]" if batch_hint else ""))


def check_same_dtype(fn, **arrays):
    """Raise when the given (non-None) arrays do not share one dtype."""
    given = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(given.values())) > 1:
        listing = ", ".join(f"{name} is {dtype}" for name, dtype in given.items())
        raise TypeError(f"{fn}: all arrays must have the same dtype, but {listing}; "
                        f"hint: convert them with .astype(...) to one dtype")


def check_finite(fn, name, x):
    """Raise when ``x`` holds NaN or +-inf (min and max are finite iff every entry is)."""
    if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{fn}: {name} contains {bad} NaN or infinite value(s) out of {x.size}; "
                         "they would spread into every gradient. Hint: check the data, or lower "
                         "the learning rate if training diverged")


def is_int(value):
    """Whether ``value`` is a Python or NumPy integer (bools excluded)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_bool(fn, name, value):
    """Raise unless ``value`` is True or False (a string such as "no" would count as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be True or False, got {value!r}")


def check_float_dtype(fn, dtype):
    """Return ``dtype`` (None: float32) as a NumPy float32/float64 dtype; raise for any other."""
    if dtype is None:
        return np.dtype(np.float32)
    if dtype not in FLOATS:                       # np.float32 == np.dtype("float32") == "float32"
        raise TypeError(f"{fn}: dtype must be np.float32 or np.float64, got {dtype!r}")
    return np.dtype(dtype)


def check_generator(fn, generator):
    """Raise unless ``generator`` is None or a ``numpy.random.Generator``."""
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"{fn}: generator must be None or a numpy.random.Generator, got {generator!r}; "
                        "hint: np.random.default_rng(0)")


def is_number(value):
    """Whether ``value`` is a real Python or NumPy number (bools excluded)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_number(fn, name, value, low=0.0, high=None, high_open=False, low_open=False):
    """Raise unless ``value`` is a number with ``low <= value`` (``<`` with ``low_open``) and,
    if ``high`` is given, ``value <= high`` (``<`` with ``high_open``); NaN is always refused."""
    ok = is_number(value) and (value > low if low_open else value >= low)
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:                              # "a number >= 0.0 and < 1.0", "a finite number > 0.0"
        bounds = []
        if low != -np.inf:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None and high != np.inf:
            bounds.append(f"{'<' if high_open else '<='} {high}")
        kind = "a finite number" if high == np.inf else "a number"
        raise ValueError(f"{fn}: {name} must be {kind} {' and '.join(bounds)}".rstrip() + f", got {value!r}")


def as_int(fn, name, value, minimum):
    """Return ``value`` as an int >= ``minimum``."""
    if not is_int(value):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


_PAIR_HINTS = {"stride": "stride=1 moves the window one pixel at a time",
               "dilation": "dilation=1 means no gaps between kernel taps",
               "padding": "padding adds that many zeros on each side",
               "kernel_size": "kernel_size=3 means a 3x3 window"}


def as_pair(fn, name, value, minimum):
    """Return ``value`` (an int or a pair of ints) as a pair of ints >= ``minimum``."""
    pair = (value, value) if is_int(value) else value
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(is_int(v) for v in pair)):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}; "
                         f"hint: {_PAIR_HINTS.get(name, '')}")
    return int(pair[0]), int(pair[1])


def check_reduction(fn, reduction):
    """Raise unless ``reduction`` is one of 'mean', 'sum', 'none'."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_dropout_p(fn, p):
    """Raise unless the dropout probability ``p`` is a number in [0, 1]."""
    if not isinstance(p, (int, float, np.floating, np.integer)) or isinstance(p, bool) or not 0 <= p <= 1:
        raise ValueError(f"{fn}: dropout probability p must be between 0 and 1, got {p!r}")


def check_smoothing(fn, label_smoothing):
    """Raise unless ``label_smoothing`` is a number in [0, 1]."""
    number = isinstance(label_smoothing, (int, float, np.floating)) and not isinstance(label_smoothing, bool)
    if not number or not 0 <= label_smoothing <= 1:
        raise ValueError(f"{fn}: label_smoothing must be a float in [0, 1], got {label_smoothing!r}")


def check_grad_output(fn, grad_output, shape, dtype):
    """Raise unless ``grad_output`` is an array of the forward output's shape and dtype."""
    check_array(fn, "grad_output", grad_output)
    if grad_output.shape != tuple(shape):
        raise ValueError(f"{fn}: grad_output must have the shape of the forward output "
                         f"{tuple(shape)}, got {grad_output.shape}")
    check_same_dtype(fn, input=np.empty(0, dtype), grad_output=grad_output)


# Window geometry shared by convolution and pooling
def output_size(fn, in_hw, kernel, stride, pads, dilation, ceil_mode=False):
    """Output height and width of a sliding window; raise when the window does not fit.

    ``H_out = floor((H + pad_top + pad_bottom - dilation*(KH-1) - 1) / stride) + 1``
    (``ceil`` with ``ceil_mode``, keeping the last window's start inside input or padding).
    """
    out = []
    for size, k, s, (lo, hi), d in zip(in_hw, kernel, stride, (pads[:2], pads[2:]), dilation):
        span, padded = d * (k - 1) + 1, size + lo + hi
        if span > padded:
            raise ValueError(
                f"{fn}: kernel {kernel[0]}x{kernel[1]} (dilation {dilation[0]}x{dilation[1]}) spans "
                f"{span} pixels, larger than the padded input size {padded} (input {in_hw[0]}x{in_hw[1]}, "
                f"padding {pads}); the output size would be below 1. Hint: use a smaller kernel or "
                "dilation, more padding, or a larger input")
        n = -(-(padded - span) // s) + 1 if ceil_mode else (padded - span) // s + 1
        if ceil_mode and (n - 1) * s >= size + lo:
            n -= 1
        out.append(n)
    return tuple(out)


def pad(x, pads, value=0.0):
    """Pad the last two axes of ``x`` by ``pads = (top, bottom, left, right)`` with ``value``."""
    if not any(pads):
        return x
    top, bottom, left, right = pads
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def tap(kh, kw, stride, dilation, out_hw):
    """Index of the pixels that kernel tap ``(kh, kw)`` sees, one per output position."""
    (sh, sw), (dh, dw), (ho, wo) = stride, dilation, out_hw
    return (..., slice(kh * dh, kh * dh + sh * (ho - 1) + 1, sh),
            slice(kw * dw, kw * dw + sw * (wo - 1) + 1, sw))
