"""Checkers for the exercises of chapter 4 (Techniques and tuning)."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from cnnbook.book.exercises._core import Feedback, _a, _call, _compare, _number, _pair, _rng, _run, _to_array, _torch_call, _trajectory_problem, _with_hint

__all__ = ['check_adam_step', 'check_early_stopping', 'check_batch_norm', 'check_dropout', 'check_hflip', 'check_residual_block']

def _adam_reference(p0, grads, lr, betas, eps, bias_correction=True):
    m, v, p, out = np.zeros_like(p0), np.zeros_like(p0), p0.copy(), []
    for t, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        mh, vh = (m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)) if bias_correction else (m, v)
        p = p - lr * mh / (np.sqrt(vh) + eps)
        out.append(p)
    return out


def check_adam_step(fn: Callable) -> Feedback:
    """Check ``fn(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8) -> (param, m, v)``.

    One Adam step at step number ``t`` (1, 2, ...): update the moving averages ``m`` and
    ``v``, correct their bias with ``1 - beta**t``, then
    ``param = param - lr * m_hat / (sqrt(v_hat) + eps)``. The reference runs
    ``torch.optim.Adam`` for 5 steps.
    """
    import torch

    rng = _rng(8)
    cases = [dict(lr=0.1, betas=(0.9, 0.999)), dict(lr=0.01, betas=(0.8, 0.99))]
    for c in cases:
        c["_param"], c["_grads"] = rng.normal(size=(4,)), [rng.normal(size=(4,)) for _ in range(5)]

    def one(c):
        lr, betas, p0, grads = c["lr"], c["betas"], c["_param"], c["_grads"]
        p, m, v, got = p0.copy(), np.zeros_like(p0), np.zeros_like(p0), []
        for t, g in enumerate(grads, start=1):
            result = _call(fn, p.copy(), g.copy(), m.copy(), v.copy(), t, lr=lr, betas=betas, eps=1e-8)
            if not isinstance(result, tuple) or len(result) != 3:
                return f"returned {type(result).__name__}, expected a tuple (param, m, v)"
            if any(r is None for r in result):
                return "returned None inside the tuple: return (param, m, v)"
            p, m, v = (_to_array(r) for r in result)
            if p is None or m is None or v is None:
                return f"returned ({', '.join(_a(r) for r in result)}), expected three arrays (param, m, v)"
            got.append(p)
        tp = torch.tensor(p0, requires_grad=True)
        opt = torch.optim.Adam([tp], lr=lr, betas=betas, eps=1e-8)
        expected = []
        for g in grads:
            tp.grad = torch.tensor(g)
            opt.step()
            expected.append(tp.detach().numpy().copy())
        problem = _trajectory_problem(got, expected)
        if problem and all(_compare(a, b) is None for a, b in
                           zip(got, _adam_reference(p0, grads, lr, betas, 1e-8, bias_correction=False))):
            return f"{problem}: did you forget the bias correction m / (1 − β₁ᵗ) and v / (1 − β₂ᵗ)?"
        return problem

    return _run("check_adam_step", "torch.optim.Adam", cases, one)


def check_early_stopping(fn: Callable) -> Feedback:
    """Check ``fn(val_losses, patience) -> (stop_epoch, best_epoch)``, epochs counted from 0.

    Training stops after the epoch at which the validation loss has not improved on its best
    value for ``patience`` epochs in a row (as Keras' ``EarlyStopping`` does);
    ``best_epoch`` is the epoch of the lowest loss
    seen by then, whose weights are restored. If that never happens, training runs to the
    last epoch.
    """
    losses = [[1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.6], [1.0, 0.9, 0.8, 0.7, 0.6],
              [0.5, 0.6, 0.7, 0.8, 0.9, 0.4], [1.0, 0.9, 0.95, 0.85, 0.9, 0.91, 0.92, 0.5]]
    cases = [dict(val_losses=l, patience=p) for l, p in [(losses[0], 2), (losses[0], 4), (losses[1], 1),
                                                          (losses[2], 3), (losses[3], 2), (losses[3], 1)]]

    def one(c):
        got = _call(fn, list(c["val_losses"]), c["patience"])
        expected = _early_stop(c["val_losses"], c["patience"])
        if got is None:
            return "returned None: did you forget `return`?"
        if not isinstance(got, tuple) or len(got) != 2:
            return f"returned {got!r}, expected a tuple (stop_epoch, best_epoch)"
        epochs = [_number(g)[0] for g in got]
        if any(e is None or not np.isfinite(e) or e != int(e) for e in epochs):
            return f"returned {got!r}, expected a tuple of two whole epoch numbers (stop_epoch, best_epoch)"
        got = tuple(int(e) for e in epochs)
        if got == expected:
            return None
        problem = f"returned {got}, expected {expected}"
        if got[0] == expected[0] + 1:
            return f"{problem}: stop as soon as `patience` epochs passed without improvement (one epoch too late)"
        if got[0] == expected[0] - 1:
            return f"{problem}: wait `patience` full epochs without improvement before stopping"
        if got[1] == got[0] and expected[1] != expected[0]:
            return f"{problem}: the best epoch is the one with the lowest loss, not the last one"
        return problem

    return _run("check_early_stopping", "Keras-style early stopping", cases, one)


def _early_stop(losses, patience):
    best, best_epoch, wait = math.inf, 0, 0
    for epoch, loss in enumerate(losses):
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return len(losses) - 1, best_epoch


# --------------------------------------------------------------------------- techniques

def check_batch_norm(fn: Callable) -> Feedback:
    """Check ``fn(x, gamma, beta, eps=1e-5) -> y``: batch normalization in training mode, NCHW.

    Each channel is normalized with the mean and the (biased) variance over the batch and
    both spatial axes, ``(N, H, W)``, then scaled by ``gamma`` and shifted by ``beta``
    (shapes ``(C,)``). The reference is ``torch.nn.functional.batch_norm(training=True)``.
    """
    import torch
    import torch.nn.functional as F

    rng = _rng(13)
    cases = [dict(x=rng.normal(2.0, 3.0, size=s), gamma=rng.uniform(0.5, 2, size=s[1]),
                  beta=rng.normal(size=s[1])) for s in [(4, 2, 3, 3), (8, 3, 2, 2), (2, 4, 5, 5)]]

    def one(c):
        x, g, b = c["x"], c["gamma"], c["beta"]
        got = _call(fn, x.copy(), g.copy(), b.copy(), eps=1e-5)
        t = torch.from_numpy
        expected = F.batch_norm(t(x), None, None, t(g), t(b), training=True, eps=1e-5).numpy()

        def bn(axes, ddof=0, affine=True):
            y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, ddof=ddof, keepdims=True) + 1e-5)
            return y * g[None, :, None, None] + b[None, :, None, None] if affine else y

        hints = [(bn((0, 2, 3), ddof=1), "use the biased variance (divide by n, ddof=0), as PyTorch does when normalizing"),
                 (bn((0, 2, 3), affine=False), "did you forget to scale by gamma and shift by beta?"),
                 (bn((1, 2, 3)), "that normalizes each example (layer norm): batch norm averages over (N, H, W) per channel"),
                 (bn((0,)), "average over the spatial axes too: statistics over (N, H, W), one pair per channel"),
                 (bn((0, 1, 2, 3)), "one mean and variance per channel, not one for the whole tensor")]
        return _with_hint(_compare(got, expected, rtol=1e-5, atol=1e-6), got, expected, hints)

    return _run("check_batch_norm", "torch.nn.functional.batch_norm (training mode)", cases, one)


def check_dropout(fn: Callable) -> Feedback:
    """Check ``fn(x, p, training, rng) -> y``: inverted dropout.

    In training, each element is zeroed with probability ``p`` (draw with the NumPy
    Generator ``rng``) and the survivors are multiplied by ``1 / (1 - p)``, so the expected
    value is unchanged; in evaluation (``training=False``) ``y`` equals ``x``.
    """
    cases = [dict(p=0.5, training=True), dict(p=0.2, training=True), dict(p=0.5, training=False),
             dict(p=0.0, training=True)]

    def one(c):
        x = np.full((200, 100), 2.0)
        answer = _call(fn, x.copy(), c["p"], c["training"], np.random.default_rng(0))
        got = _to_array(answer)
        if got is None or got.shape != x.shape or isinstance(answer, tuple):
            return _compare(answer, x)
        if not np.all(np.isfinite(got)):
            return "output contains NaN or infinity, expected finite values"
        if not c["training"]:
            return None if np.allclose(got, x) else "in evaluation mode dropout does nothing: return x unchanged"
        kept = got != 0
        frac_zero = 1 - kept.mean()
        if abs(frac_zero - c["p"]) > 0.02:
            if abs(frac_zero - (1 - c["p"])) < 0.02:
                return f"{frac_zero:.0%} of the values are zero, expected about {c['p']:.0%}: p is the probability to drop, not to keep"
            return f"{frac_zero:.0%} of the values are zero, expected about {c['p']:.0%}"
        scale = 1 / (1 - c["p"])
        if not np.allclose(got[kept], 2.0 * scale):
            if np.allclose(got[kept], 2.0):
                return "kept values are unchanged: multiply them by 1/(1 − p) so the mean stays the same (inverted dropout)"
            worst = got[kept].flat[np.argmax(np.abs(got[kept] - 2.0 * scale))]
            return f"kept values should be x / (1 − p) ({_pair(float(worst), 2.0 * scale)[0]})"
        return None

    return _run("check_dropout", "inverted dropout", cases, one)


def check_hflip(fn: Callable) -> Feedback:
    """Check ``fn(images) -> flipped``: mirror a batch of NCHW images left to right.

    The reference is ``torch.flip(images, dims=[-1])`` (what
    ``torchvision.transforms.RandomHorizontalFlip`` does when it flips).
    """
    rng = _rng(14)
    cases = [dict(images=np.arange(6.0).reshape(1, 1, 2, 3)), dict(images=rng.normal(size=(3, 1, 5, 4))),
             dict(images=rng.normal(size=(2, 3, 4, 6)))]

    def one(c):
        x = c["images"]
        got = _call(fn, x.copy())
        hints = [(x[:, :, ::-1, :], "that flips top to bottom (the height axis, -2): flip the width axis, -1"),
                 (x[::-1], "that reverses the order of the batch: flip each image's width axis, -1"),
                 (x[:, ::-1], "that reverses the channels: flip the width axis, -1"),
                 (np.swapaxes(x, -1, -2), "that transposes the image: flip the width axis, -1")]
        return _with_hint(_compare(got, x[..., ::-1]), got, x[..., ::-1], hints)

    return _run("check_hflip", "torch.flip(images, dims=[-1])", cases, one)


def check_residual_block(make_block: Callable) -> Feedback:
    """Check ``make_block(channels) -> torch.nn.Module``, a residual block ``y = relu(x + F(x))``.

    The block keeps the shape ``(N, channels, H, W)``. With every parameter set to zero,
    ``F(x) = 0`` and the block must reduce to the skip connection: ``relu(x)`` (or ``x``,
    if the block ends without activation). That is the whole point of the residual
    connection: the identity is easy to learn.
    """
    import torch

    cases = [dict(channels=c, input_shape=s) for c, s in [(4, (2, 4, 8, 8)), (8, (1, 8, 5, 5)), (1, (3, 1, 6, 6))]]

    def one(c):
        block = _call(make_block, c["channels"])
        if not isinstance(block, torch.nn.Module):
            return f"returned a {type(block).__name__}, expected a torch.nn.Module"
        x = torch.randn(*c["input_shape"], generator=torch.Generator().manual_seed(0))
        param = next(block.parameters(), None)
        x = x if param is None else x.to(param.device, param.dtype)  # a block on the GPU, or in float64
        block.eval()
        y = _torch_call(block, x)
        if not isinstance(y, torch.Tensor):
            return f"the block returned {_a(y)}, expected a tensor"
        if not torch.isfinite(y).all():
            return "the output contains NaN or infinity"
        if tuple(y.shape) != tuple(x.shape):
            return (f"output shape {tuple(y.shape)}, expected {tuple(x.shape)}: a residual block keeps "
                    "the shape so x + F(x) is defined (use padding=kernel_size//2 and stride 1)")
        with torch.no_grad():
            for p in block.parameters():
                p.zero_()
        y0 = _torch_call(block, x)
        if torch.allclose(y0, torch.relu(x), atol=1e-6) or torch.allclose(y0, x, atol=1e-6):
            return None
        if torch.allclose(y0, torch.zeros_like(y0)):
            return "with every weight set to zero the block returned zeros: is the skip connection x + F(x) missing?"
        return "with every weight set to zero the block should return relu(x) (or x): check the skip connection"

    return _run("check_residual_block", "shape kept; zero weights leave the skip connection", cases, one)


# --------------------------------------------------------------------------- debugging and ablations

__all__ += ['check_training_loop', 'check_ablation']


def _loop_reference(model, batches, optimizer, loss_fn, zero_grad=True):
    model.train()
    for x, y in batches:
        loss = loss_fn(model(x), y)
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _check_train_epoch(train_epoch):
    import copy

    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).double()
    batches = [(torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 3, (8,))) for _ in range(3)]
    results = {}
    for name, zero in (("right", True), ("no zero_grad", False)):
        m = copy.deepcopy(model)
        _loop_reference(m, batches, torch.optim.SGD(m.parameters(), lr=0.1), torch.nn.CrossEntropyLoss(), zero)
        results[name] = m.weight.detach()
    m = copy.deepcopy(model)
    _call(train_epoch, m, batches, torch.optim.SGD(m.parameters(), lr=0.1), torch.nn.CrossEntropyLoss())
    got = m.weight.detach()
    if torch.allclose(got, results["right"]):
        return None
    if torch.allclose(got, results["no zero_grad"]):
        return ("the weights after one epoch differ from torch's loop: the gradients of earlier batches "
                "are still added in; call optimizer.zero_grad() before loss.backward()")
    return "the weights after one epoch differ from the reference loop (forward, loss, zero_grad, backward, step)"


def _check_evaluate(evaluate):
    import torch

    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(32, 3))
    x, y = torch.randn(300, 6), torch.randint(0, 3, (300,))
    model.eval()
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    torch.manual_seed(2)
    got = _call(evaluate, model, x, y)
    try:
        got = float(got)
    except (TypeError, ValueError):
        return f"returned {got!r}, expected the accuracy as a number"
    if abs(got - expected) < 1e-9:
        return None
    return (f"returned accuracy {got:.4f}, expected {expected:.4f}: call model.eval() before predicting, "
            "otherwise dropout (and batch norm) still behave as in training")


def _check_standardize(standardize):
    rng = _rng(3)
    train, val = rng.normal(2.0, 3.0, size=(50, 1, 4, 4)), rng.normal(-1.0, 0.5, size=(20, 1, 4, 4))
    got = _call(standardize, train.copy(), val.copy())
    if not isinstance(got, tuple) or len(got) != 2:
        return f"returned {type(got).__name__}, expected a tuple (train, val)"
    got_train, got_val = (_to_array(g) for g in got)
    mean, std = train.mean(), train.std()
    if _compare(got_val, (val - mean) / std) is None and _compare(got_train, (train - mean) / std) is None:
        return None
    both = np.concatenate([train.ravel(), val.ravel()])
    if _compare(got_val, (val - both.mean()) / both.std()) is None:
        return ("the validation images were standardized with statistics of training AND validation "
                "images: the validation set leaks into preprocessing; use the training set's mean and std")
    if _compare(got_val, (val - val.mean()) / val.std()) is None:
        return "each set was standardized with its own statistics; use the training set's for both"
    return "the outputs differ from (x - mean) / std with the training set's mean and std"


def check_training_loop(train_epoch: Callable, evaluate: Callable, standardize: Callable) -> Feedback:
    """Check the three repaired functions of the "debug this training loop" exercise.

    ``train_epoch(model, batches, optimizer, loss_fn)`` runs one epoch over ``(x, y)`` batches
    (forward, loss, ``zero_grad``, backward, step); ``evaluate(model, x, y) -> accuracy`` predicts
    in evaluation mode; ``standardize(x_train, x_val) -> (x_train, x_val)`` uses the training
    set's mean and standard deviation only. Each is compared with the reference, and the three
    classic bugs (no ``zero_grad``, no ``eval()``, statistics that include validation images)
    are named when they are the cause.
    """
    parts = {"train_epoch": (_check_train_epoch, train_epoch), "evaluate": (_check_evaluate, evaluate),
             "standardize": (_check_standardize, standardize)}
    cases = [dict(part=name) for name in parts]
    return _run("check_training_loop", "a correct PyTorch loop", cases,
                lambda c: parts[c["part"]][0](parts[c["part"]][1]))


def check_ablation(runs: dict, baseline: str = "baseline") -> Feedback:
    """Check the design of an ablation: ``runs`` maps setting -> list of ``(model, history)``.

    A sound ablation has a baseline, at least one other setting, at least 3 seeds per setting,
    the same number of epochs everywhere, and a validation score in every history (choices
    are made on the validation split, never on the test set).
    """
    cases = [dict(rule=r) for r in ("baseline", "settings", "seeds", "epochs", "validation")]

    def one(c):
        if not isinstance(runs, dict) or not runs:
            return f"runs must be a non-empty dict setting -> [(model, history), ...], got {type(runs).__name__}"
        lengths = {len(h["loss"]) if "loss" in h else -1 for r in runs.values() for _, h in r}
        rule = c["rule"]
        if rule == "baseline" and baseline not in runs:
            return f"no setting named {baseline!r}: every change is measured against a baseline"
        if rule == "settings" and len(runs) < 2:
            return "only one setting: an ablation changes one thing against the baseline"
        if rule == "seeds" and min(len(r) for r in runs.values()) < 3:
            return "fewer than 3 seeds for some setting: without repeats the seed spread is unknown"
        if rule == "epochs" and len(lengths) > 1:
            return f"the runs trained for different numbers of epochs {sorted(lengths)}: change one thing at a time"
        if rule == "validation" and not all("val_accuracy" in h for r in runs.values() for _, h in r):
            return "some run has no val_accuracy: pass the validation split as val_loader (never the test set)"
        return None

    return _run("check_ablation", "the rules of a fair comparison", cases, one)
