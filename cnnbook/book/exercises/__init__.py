"""Checkers for the book's exercises: they test your answer and tell you what went wrong.

Every ``check_<name>(answer)`` runs your function (or inspects your value) on several
cases, compares it with the reference — PyTorch, scikit-learn or the formula — and returns
a :class:`Feedback`. A ``Feedback`` is true when every case passed; printed, it says which
case failed, how, and what the usual cause is::

    >>> from cnnbook.book.exercises import check_conv_output_size
    >>> def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    ...     return (size - kernel_size) // stride + 1          # forgot the padding
    >>> feedback = check_conv_output_size(conv_output_size)
    >>> bool(feedback)
    False

In a notebook, end the cell with ``feedback`` to read it, and ``assert feedback, feedback``
to stop when it failed. A function that still holds the placeholder
``raise NotImplementedError()`` is reported as "not written yet", not as an error.

Arrays go in as NumPy float64 arrays; your function may return NumPy arrays, Python
numbers, lists or torch tensors, in float64 or float32: the tolerance follows your answer's
dtype (a relative error of 1e-6, or ``sqrt(eps)`` of its dtype where that is larger: about
3.5e-4 for float32). Whatever
your function does (returns None or a tuple, raises, returns NaN), the checker answers with
feedback, never an exception. Each call of your function may take at most
``cnnbook.book.exercises._core.TIME_LIMIT`` seconds (10); a call that takes longer is
stopped and the feedback says so::

    >>> import numpy as np
    >>> from cnnbook.book.exercises import check_accuracy
    >>> print(check_accuracy(lambda logits, labels: (logits.argmax(1) == labels).mean().astype(np.float32)))
    ✓ check_accuracy: all 3 cases pass (checked against the fraction of correct argmax predictions). Well done!
    >>> def accuracy(logits, labels):
    ...     (logits.argmax(1) == labels).mean()                 # forgot `return`
    >>> print(check_accuracy(accuracy))                        # doctest: +ELLIPSIS
    ✗ check_accuracy: 0 of 3 cases pass (checked against the fraction of correct argmax predictions).
      - case logits of shape (3, 2), labels=[1, 1, 1]: returned None: did you forget `return`?
    ...

Each chapter's checkers live in their own module (``ch1`` ... ``ch6``); the machinery they
share (:class:`Feedback`, safe calls, comparisons) in ``_core``, the time limit of a call in
``_timelimit``. All are importable from here.
"""
from cnnbook.book.exercises._core import Feedback
from cnnbook.book.exercises.ch1 import *  # noqa: F401,F403
from cnnbook.book.exercises.ch2 import *  # noqa: F401,F403
from cnnbook.book.exercises.ch2_backward import *  # noqa: F401,F403
from cnnbook.book.exercises.ch3 import *  # noqa: F401,F403
from cnnbook.book.exercises.ch4 import *  # noqa: F401,F403
from cnnbook.book.exercises.ch5 import *  # noqa: F401,F403
from cnnbook.book.exercises.ch6 import *  # noqa: F401,F403
from cnnbook.book.exercises import ch1, ch2, ch2_backward, ch3, ch4, ch5, ch6

__all__ = ["Feedback"] + ch1.__all__ + ch2.__all__ + ch2_backward.__all__ + ch3.__all__ + ch4.__all__ + ch5.__all__ + ch6.__all__
