"""Checkers for the exercises of chapter 5 (A complete image-classification task)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from cnnbook.book.exercises._core import Feedback, _call, _compare, _rng, _run, _to_array, _with_hint

__all__ = ['check_f1', 'check_most_confused', 'check_saliency']

def check_f1(fn: Callable) -> Feedback:
    """Check ``fn(precision, recall) -> f1``, elementwise, with 0 where both are 0.

    F1 is the harmonic mean ``2 * P * R / (P + R)``; the reference is
    :func:`cnnbook.pytorch.metrics.f1_score`'s rule (scikit-learn's with ``zero_division=0``).
    """
    rng = _rng(15)
    cases = [dict(precision=np.array([1.0, 0.5, 0.0, 0.8]), recall=np.array([1.0, 0.25, 0.0, 0.0])),
             dict(precision=rng.uniform(size=10), recall=rng.uniform(size=10))]

    def one(c):
        p, r = c["precision"], c["recall"]
        got = _call(fn, p.copy(), r.copy())
        with np.errstate(all="ignore"):
            expected = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
            hints = [((p + r) / 2, "that is the arithmetic mean; F1 is the harmonic mean 2PR/(P+R)"),
                     (p * r, "F1 is 2PR/(P+R), not the product"),
                     (np.sqrt(p * r), "that is the geometric mean; F1 is the harmonic mean 2PR/(P+R)")]
        arr = _to_array(got) if got is not None else None
        if arr is not None and arr.shape == expected.shape and np.isnan(arr).any():
            return "returned NaN where precision and recall are both 0: define F1 as 0 there"
        return _with_hint(_compare(got, expected, what="F1"), got, expected, hints)

    return _run("check_f1", "the harmonic mean of precision and recall", cases, one)


def _confused(cm, k):
    off = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] > 0]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(i, j, n) for n, i, j in off[:k]]


def check_most_confused(fn: Callable) -> Feedback:
    """Check ``fn(cm, k) -> [(true, predicted, count), ...]``: the ``k`` largest mistakes.

    ``cm`` is a confusion matrix (rows: true class, columns: prediction). The answer lists
    the ``k`` largest off-diagonal counts, largest first (ties: smaller true class, then
    smaller predicted class first), as tuples of three ints; zero counts never appear.
    """
    rng = _rng(16)
    small = np.array([[50, 3, 9], [1, 40, 0], [12, 3, 30]])
    cases = [dict(cm=small, k=2), dict(cm=small, k=5), dict(cm=rng.integers(0, 30, size=(10, 10)), k=4)]

    def one(c):
        cm, k = c["cm"], c["k"]
        got = _call(fn, cm.copy(), k)
        expected = _confused(cm, k)
        if got is None:
            return "returned None: did you forget `return`?"
        try:
            got = [tuple(int(v) for v in t) for t in got]
        except (TypeError, ValueError):
            return f"returned {got!r}, expected a list of (true, predicted, count) tuples"
        if got == expected:
            return None
        problem = f"returned {got}, expected {expected}"
        diagonal = [t for t in got if len(t) == 3 and t[0] == t[1]]
        if diagonal:
            return f"{problem}: leave out the diagonal (correct predictions, e.g. {diagonal[0]})"
        if [(j, i, n) for i, j, n in got] == expected:
            return f"{problem}: the row is the true class, the column the prediction: (cm[i, j] is true i predicted j)"
        if sorted(got, key=lambda t: (-t[2], t[0], t[1])) == expected:
            return f"{problem}: sort the largest count first"
        return problem

    return _run("check_most_confused", "the largest off-diagonal counts", cases, one)


def _tiny_model():
    import torch

    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 8 * 8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def check_saliency(fn: Callable) -> Feedback:
    """Check ``fn(model, image, target) -> saliency``: a vanilla gradient saliency map.

    ``image`` is a tensor ``(C, H, W)``; the answer is ``(H, W)``: the absolute value of the
    gradient of the score (the logit, before softmax) of class ``target`` with respect to the
    input pixels, maximized over channels. The model stays unchanged (put it in eval mode).
    The reference uses ``torch.autograd`` on a small fixed CNN.
    """
    import torch

    gen = torch.Generator().manual_seed(1)
    cases = [dict(target=t, _image=torch.rand(1, 8, 8, generator=gen)) for t in (0, 2)]

    def reference(model, image, target, score=True, absolute=True):
        x = image.clone()[None].requires_grad_(True)
        out = model(x)
        value = out[0, target] if score else torch.nn.functional.cross_entropy(out, torch.tensor([target]))
        (grad,) = torch.autograd.grad(value, x)
        grad = grad[0].abs() if absolute else grad[0]
        return grad.max(dim=0).values.numpy()

    def one(c):
        model, image = _tiny_model().eval(), c["_image"]
        before = [p.detach().clone() for p in model.parameters()]
        got = _call(fn, model, image.clone(), c["target"])
        if any(not torch.equal(b, p) for b, p in zip(before, model.parameters())):
            return "the model's weights changed: compute the gradient of the input, do not step an optimizer"
        expected = reference(model, image, c["target"])
        hints = [(reference(model, image, c["target"], absolute=False), "take the absolute value of the gradient"),
                 (reference(model, image, c["target"], score=False),
                  "use the class score (the logit of target), not the loss")]
        return _with_hint(_compare(got, expected, rtol=1e-4, atol=1e-6, what="saliency"), got, expected, hints)

    return _run("check_saliency", "torch.autograd on a small CNN", cases, one)
