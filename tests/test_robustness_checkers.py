"""Every exercise checker marks a correct answer right, in float32 as in float64, and turns
every careless answer into a failed Feedback with a message, never an exception.

The careless answers: one that returns None, a tuple, raises, returns the wrong shape, returns
NaN, never returns (stopped by the time limit, shortened here), and a value where a function
is expected. ``ANSWERS`` holds one correct answer per public checker and precision; a checker
added to ``cnnbook.book.exercises.__all__`` without an entry here fails
``test_every_checker_has_answers``.
"""
import re
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnbook.book import exercises as ex
from cnnbook.book.exercises import _core

# These two take several answers at once (three functions; a dict of runs): their careless
# answers are tested on their own below.
SEVERAL_ANSWERS = {"check_training_loop", "check_ablation"}
CHECKERS = [name for name in ex.__all__ if name.startswith("check_") and name not in SEVERAL_ANSWERS]
SINGLE, DOUBLE = "float32", "float64"


def _t(a, precision):
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32 if precision == SINGLE else torch.float64)


def _np(tensor, precision):
    return tensor.detach().numpy().astype(precision)


# --------------------------------------------------------------------------- correct answers

def conv2d(precision):
    def answer(x, weight, bias=None, stride=1, padding=0):
        b = None if bias is None else _t(bias, precision)
        return F.conv2d(_t(x, precision), _t(weight, precision), b, stride=stride, padding=padding)
    return answer


def sgd_step(precision):
    def answer(param, grad, velocity, lr, momentum):
        velocity = (momentum * velocity + grad).astype(precision)
        return (param - lr * velocity).astype(precision), velocity
    return answer


def adam_step(precision):
    def answer(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        m = (betas[0] * m + (1 - betas[0]) * grad).astype(precision)
        v = (betas[1] * v + (1 - betas[1]) * grad ** 2).astype(precision)
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        return (param - lr * m_hat / (np.sqrt(v_hat) + eps)).astype(precision), m, v
    return answer


def precision_recall(precision):
    def answer(y, p, k):
        cm = np.zeros((k, k))
        np.add.at(cm, (y, p), 1)
        with np.errstate(all="ignore"):
            prec = np.nan_to_num(np.diag(cm) / cm.sum(axis=0))
            rec = np.nan_to_num(np.diag(cm) / cm.sum(axis=1))
        return prec.astype(precision), rec.astype(precision)
    return answer


def early_stopping(precision):
    def answer(losses, patience):
        best, best_epoch, wait = float("inf"), 0, 0
        for epoch, loss in enumerate(losses):
            if loss < best:
                best, best_epoch, wait = loss, epoch, 0
            else:
                wait += 1
                if wait == patience:
                    return _int(epoch, precision), _int(best_epoch, precision)
        return _int(len(losses) - 1, precision), _int(best_epoch, precision)
    return answer


def _int(value, precision):
    """Integer answers come as NumPy int32 in the 'float32' run, Python int in the other."""
    return np.int32(value) if precision == SINGLE else int(value)


def dropout(precision):
    def answer(x, p, training, rng):
        if not training:
            return x.astype(precision)
        return (x * (rng.random(x.shape) >= p) / (1 - p)).astype(precision)
    return answer


def most_confused(precision):
    def answer(cm, k):
        pairs = [(i, j, cm[i, j]) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j]]
        pairs = sorted(pairs, key=lambda t: (-t[2], t[0], t[1]))[:k]
        return [tuple(_int(v, precision) for v in t) for t in pairs]
    return answer


def saliency(precision):
    def answer(model, image, target):
        x = image[None].clone().requires_grad_(True)
        model(x)[0, target].backward()
        grad = x.grad[0].abs().amax(dim=0)
        return grad if precision == SINGLE else grad.double().numpy()
    return answer


class Residual(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.conv(x))


def transfer_head(precision):
    def answer(model, k):
        for p in model.parameters():
            p.requires_grad = False
        model.fc = torch.nn.Linear(model.fc.in_features, k)
        return model
    return answer


def classifier():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))


def sigmoid_derivative(precision):
    def answer(x):
        s = torch.sigmoid(_t(x, precision))
        return s * (1 - s)
    return answer


def conv2d_backward(precision):
    def answer(grad_output, x, weight, stride=1, padding=0):
        tx, tw = _t(x, precision).requires_grad_(True), _t(weight, precision).requires_grad_(True)
        F.conv2d(tx, tw, stride=stride, padding=padding).backward(_t(grad_output, precision))
        return tx.grad, tw.grad
    return answer


def receptive_field(precision):
    def answer(layers):
        r, jump = 1, 1
        for layer in layers:
            r += layer["dilation"] * (layer["kernel_size"] - 1) * jump
            jump *= layer["stride"]
        return _int(r, precision)
    return answer


def layer_norm_backward(precision):
    def answer(grad_output, x, weight, eps=1e-5):
        tx, tw = _t(x, precision).requires_grad_(True), _t(weight, precision).requires_grad_(True)
        tb = torch.zeros(weight.shape, dtype=tx.dtype, requires_grad=True)
        F.layer_norm(tx, weight.shape, tw, tb, eps=eps).backward(_t(grad_output, precision))
        return tx.grad, tw.grad, tb.grad
    return answer


ANSWERS = {
    "check_conv_param_count": lambda pr: lambda i, o, k, bias=True: _int(o * (i * k * k + bias), pr),
    "check_accuracy": lambda pr: lambda z, y: np.mean(z.argmax(1) == y).astype(pr),
    "check_conv_output_size": lambda pr: lambda s, k, stride=1, padding=0, dilation=1: _int(
        (s + 2 * padding - dilation * (k - 1) - 1) // stride + 1, pr),
    "check_corr2d": lambda pr: lambda x, k: conv2d(pr)(x[None, None], k[None, None])[0, 0],
    "check_conv2d": conv2d,
    "check_max_pool2d": lambda pr: lambda x, k, stride=None: F.max_pool2d(_t(x, pr), k, stride),
    "check_activation_derivative": sigmoid_derivative,
    "check_log_softmax": lambda pr: lambda z: torch.log_softmax(_t(z, pr), dim=-1),
    "check_cross_entropy": lambda pr: lambda z, y: F.cross_entropy(_t(z, pr), torch.from_numpy(y)),
    "check_sgd_momentum_step": sgd_step,
    "check_kaiming_std": lambda pr: lambda s: np.sqrt(2 / np.prod(s[1:])).astype(pr),
    "check_kaiming_normal": lambda pr: lambda s: torch.nn.init.kaiming_normal_(torch.empty(s, dtype=getattr(torch, pr))),
    "check_confusion_matrix": lambda pr: lambda y, p, k: np.histogram2d(y, p, bins=k, range=[[0, k], [0, k]])[0].astype(pr),
    "check_precision_recall": precision_recall,
    "check_classifier": None,  # takes a model, see model_answer
    "check_adam_step": adam_step,
    "check_early_stopping": early_stopping,
    "check_batch_norm": lambda pr: lambda x, g, b, eps=1e-5: F.batch_norm(
        _t(x, pr), None, None, _t(g, pr), _t(b, pr), training=True, eps=eps),
    "check_dropout": dropout,
    "check_hflip": lambda pr: lambda x: torch.flip(_t(x, pr), dims=[-1]),
    "check_residual_block": lambda pr: Residual,
    "check_f1": lambda pr: lambda p, r: np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0).astype(pr),
    "check_most_confused": most_confused,
    "check_saliency": saliency,
    "check_separable_param_count": lambda pr: lambda i, o, k: _int(i * k * k + i * o, pr),
    "check_transfer_head": transfer_head,
    "check_conv2d_backward": conv2d_backward,
    "check_receptive_field": receptive_field,
    "check_layer_norm_backward": layer_norm_backward,
}
TORCH_INPUT = {"check_transfer_head"}  # the checker builds the float32 model itself


def test_every_checker_has_answers():
    assert sorted(ANSWERS) == sorted(CHECKERS)


def _precisions(name):
    return [SINGLE] if name in TORCH_INPUT else [SINGLE, DOUBLE]


@pytest.mark.parametrize("name, precision", [(n, p) for n in CHECKERS for p in _precisions(n)])
def test_a_correct_answer_passes_in_either_precision(name, precision):
    if name == "check_classifier":
        feedback = ex.check_classifier(classifier().to(getattr(torch, precision)))
    elif name == "check_residual_block":
        feedback = ex.check_residual_block(lambda c: Residual(c).to(getattr(torch, precision)))
    else:
        feedback = getattr(ex, name)(ANSWERS[name](precision))
    assert feedback, str(feedback)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_activation_derivatives_in_float32_pass(activation):
    def derivative(x):
        t = _t(x, SINGLE).requires_grad_(True)
        f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
             "leaky_relu": lambda v: F.leaky_relu(v, 0.01)}[activation]
        f(t).sum().backward()
        return t.grad
    assert ex.check_activation_derivative(derivative, activation)


# --------------------------------------------------------------------------- careless answers

def _nan_like(value):
    if isinstance(value, torch.nn.Module) and isinstance(getattr(value, "fc", None), torch.nn.Linear):
        with torch.no_grad():
            value.fc.weight.fill_(float("nan"))  # a transfer-learning head that gives NaN scores
        return value
    if isinstance(value, torch.nn.Module):
        return NaNOut(value)
    if isinstance(value, torch.Tensor):
        return value.detach() * float("nan")
    if isinstance(value, np.ndarray):
        return np.full(value.shape, np.nan)
    if isinstance(value, (tuple, list)):
        return type(value)(_nan_like(v) for v in value)
    return float("nan")


class NaNOut(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * float("nan")


def _forever():
    while True:
        time.sleep(0.01)


def careless(kind, right):
    """An answer that makes the mistake ``kind`` where ``right`` would answer correctly."""
    def answer(*args, **kwargs):
        if kind == "none":
            return None
        if kind == "tuple":
            return right(*args, **kwargs), "cache"
        if kind == "raises":
            raise ValueError("careless")
        if kind == "wrong_shape":
            return np.zeros((2, 3, 4))
        if kind == "nan":
            return _nan_like(right(*args, **kwargs))
        return _forever()
    return answer


class CarelessModel(torch.nn.Module):
    """A classifier whose forward makes the mistake ``kind``."""

    def __init__(self, kind):
        super().__init__()
        self.kind, self.linear = kind, torch.nn.Linear(28 * 28, 10)

    def forward(self, x):
        answer = careless(self.kind, lambda x: self.linear(x.flatten(1)))(x)
        return torch.from_numpy(answer) if isinstance(answer, np.ndarray) else answer


FRAGMENTS = {  # what the feedback must mention, whatever the checker
    "none": r"None",
    "tuple": r"tuple",
    "raises": r"raised ValueError: careless",
    "wrong_shape": r"shape|array|tuple",
    "nan": r"(?i)nan|infinity|whole",
    "forever": r"no answer after 0\.2 s \(the time limit of one call\), so checking stopped",
}


def _check(name, answer):
    if name == "check_classifier":
        return ex.check_classifier(answer)
    return getattr(ex, name)(answer)


@pytest.mark.parametrize("kind", list(FRAGMENTS))
@pytest.mark.parametrize("name", CHECKERS)
def test_a_careless_answer_gets_feedback_not_an_exception(name, kind, monkeypatch):
    if kind == "forever":
        monkeypatch.setattr(_core, "TIME_LIMIT", 0.2)
    if name == "check_classifier":
        answer = CarelessModel(kind)
    else:
        answer = careless(kind, ANSWERS[name](SINGLE))
    start = time.monotonic()
    feedback = _check(name, answer)
    text = str(feedback)
    assert not feedback and text.startswith(f"✗ {name}"), text
    assert re.search(FRAGMENTS[kind], text), text
    if kind == "forever":
        assert time.monotonic() - start < 10, "checking stops at the first call that runs out of time"


@pytest.mark.parametrize("name", [n for n in CHECKERS if n != "check_classifier"])
def test_a_value_instead_of_a_function_is_named(name):
    feedback = getattr(ex, name)(np.zeros(3))
    assert str(feedback).replace("[sigmoid]", "") == (
        f"✗ {name}: expected a function, got an ndarray of shape (3,): pass the function itself, as in "
        "check_x(my_function), not the result of calling it, my_function(...).")


def test_a_class_instead_of_a_model_is_named():
    assert "pass an instance, Residual()" in str(ex.check_classifier(Residual))


def test_the_time_limit_works_outside_the_main_thread(monkeypatch):
    """Where no SIGALRM can be used (another thread, Windows), a helper thread runs the answer."""
    monkeypatch.setattr(_core, "TIME_LIMIT", 0.2)
    result = {}
    worker = threading.Thread(target=lambda: result.update(fb=ex.check_conv2d(careless("forever", None))))
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    assert "no answer after 0.2 s" in str(result["fb"])
    ok = threading.Thread(target=lambda: result.update(fb=ex.check_conv2d(conv2d(SINGLE))))
    ok.start()
    ok.join(30)
    assert result["fb"], str(result["fb"])


def test_the_time_limit_keeps_an_outer_timer(monkeypatch):
    """A SIGALRM timer set by someone else (e.g. pytest-timeout) is restored afterwards."""
    import signal

    fired = []

    def outer(*args):
        fired.append(True)
    previous = signal.signal(signal.SIGALRM, outer)
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        assert ex.check_accuracy(ANSWERS["check_accuracy"](DOUBLE))
        remaining, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        assert 0 < remaining <= 5.0
        assert signal.getsignal(signal.SIGALRM) is outer
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not fired


def test_an_answer_that_swallows_the_interruption_is_still_stopped(monkeypatch):
    monkeypatch.setattr(_core, "TIME_LIMIT", 0.2)

    def stubborn(z, y):
        try:
            _forever()
        except BaseException:  # noqa: BLE001 - the careless student's bare except
            return 0.5
    assert "no answer after 0.2 s" in str(ex.check_accuracy(stubborn))


# --------------------------------------------------------------------------- feedback that does not contradict itself

@pytest.mark.parametrize("relative_error", [2e-6, 1e-3])
def test_a_near_miss_prints_numbers_that_differ(relative_error):
    """Above the tolerance, so the printed numbers must differ (at 6 digits they would not)."""
    feedback = ex.check_accuracy(lambda z, y: np.mean(z.argmax(1) == y) * (1 + relative_error))
    for got, expected in re.findall(r"got (\S+), expected (\S+?)\)", str(feedback)):
        assert got != expected, str(feedback)
    assert not feedback


def test_numbers_equal_at_six_digits_get_more_digits_and_the_tolerance():
    assert _core._compare(0.1234567 * (1 + 2e-6), 0.1234567) == (
        "output differs from the expected by up to 2.47e-07 (got 0.123456947, expected 0.1234567); "
        "a float64 answer may differ by 1e-06 relative plus 1.5e-08 absolute")


def test_the_float32_conv2d_of_the_issue_passes_and_a_float32_mistake_still_fails():
    assert ex.check_conv2d(conv2d(SINGLE))
    wrong = lambda x, w, b=None, stride=1, padding=0: conv2d(SINGLE)(x, w, None, stride, padding)  # noqa: E731
    assert "did you forget to add the bias" in str(ex.check_conv2d(wrong))


def test_dropout_near_miss_prints_numbers_that_differ():
    text = str(ex.check_dropout(lambda x, p, t, rng: dropout(SINGLE)(x, p, t, rng) * (1 + 1e-4) if t else x))
    assert "kept values should be x / (1 − p) (got 4.0004, expected 4)" in text, text


@pytest.mark.parametrize("answer, message", [
    (lambda z, y: (0.5, 0.5), "returned a tuple"),   # numbers only: read as an array of shape (2,)
    (lambda z, y: np.ones(3), "returned an array of shape (3,), expected one number (the accuracy)"),
    (lambda z, y: "0.5", "returned a str, expected one number"),
    (lambda z, y: {"acc": 0.5}, "returned a dict, expected one number"),
])
def test_answers_of_the_wrong_kind_are_named(answer, message):
    text = str(ex.check_accuracy(answer))
    assert message.replace("returned a tuple", "returned an array of shape (2,)") in text, text


@pytest.mark.parametrize("name, answer, message", [
    ("check_conv_param_count", lambda i, o, k, bias=True: np.array([1, 2]), "returned an array of shape (2,), expected one number"),
    ("check_conv_output_size", lambda s, k, **kw: torch.tensor([3, 4]), "returned an array of shape (2,), expected one number"),
    ("check_early_stopping", lambda l, p: (np.array([1, 2]), 0), "expected a tuple of two whole epoch numbers"),
    ("check_sgd_momentum_step", lambda p, g, v, lr, momentum: ("p", "v"), "returned (a str, a str), expected arrays"),
    ("check_adam_step", lambda p, g, m, v, t, **kw: (p, None, v), "returned None inside the tuple"),
    ("check_dropout", lambda x, p, t, rng: (x, x != 0), "returned a tuple of 2 items, expected an array of shape (200, 100)"),
    ("check_hflip", lambda x: 0.0, "returned one number, expected an array of shape (1, 1, 2, 3)"),
    ("check_f1", lambda p, r: exit(), "raised SystemExit"),
])
def test_crashes_of_the_old_checkers_are_feedback(name, answer, message):
    text = str(getattr(ex, name)(answer))
    assert message in text, text


# --------------------------------------------------------------------------- several answers at once

def _train_epoch(model, batches, optimizer, loss_fn):
    model.train()
    for x, y in batches:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def _standardize(train, val):
    return (train - train.mean()) / train.std(), (val - train.mean()) / train.std()


def test_the_training_loop_checker_passes_the_right_answer():
    assert ex.check_training_loop(_train_epoch, _evaluate, _standardize)


# train_epoch's return value is unused, so a tuple or NaN returned after a correct epoch is no mistake.
@pytest.mark.parametrize("part, kind", [(p, k) for p in (0, 1, 2) for k in FRAGMENTS
                                        if not (p == 0 and k in ("tuple", "nan"))])
def test_a_careless_part_of_the_training_loop_gets_feedback(part, kind, monkeypatch):
    if kind == "forever":
        monkeypatch.setattr(_core, "TIME_LIMIT", 0.2)
    answers = [_train_epoch, _evaluate, _standardize]
    answers[part] = careless(kind, answers[part])
    feedback = ex.check_training_loop(*answers)
    assert not feedback and str(feedback).startswith("✗ check_training_loop"), str(feedback)


@pytest.mark.parametrize("runs", [None, (1, 2), {"baseline": None}, {"baseline": [("model", None)] * 3},
                                  {"baseline": [(None, {"val_accuracy": [float("nan")]})] * 3}])
def test_careless_ablation_runs_get_feedback(runs):
    feedback = ex.check_ablation(runs)
    assert not feedback and str(feedback).startswith("✗ check_ablation"), str(feedback)
