"""The exercise checkers accept right answers and explain wrong ones.

Each checker gets one correct answer (written independently of the checker: loops, formulas,
scikit-learn or cnnbook's reference) and the typical wrong answers a student writes; the tests
pin the hint each wrong answer gets.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnbook.book import exercises as ex


def _t(a):
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))


def not_written(*args, **kwargs):
    raise NotImplementedError()


def assert_fails_with(feedback, *fragments):
    text = str(feedback)
    assert not feedback and not feedback.passed and text.startswith("✗"), text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in feedback:\n{text}"


def assert_passes(feedback):
    assert feedback and feedback.passed and str(feedback).startswith("✓"), str(feedback)
    assert "Well done!" in str(feedback)


# --------------------------------------------------------------------------- Feedback itself

def test_feedback_truthiness_and_text():
    good = ex.Feedback("check_x", 3, [], "the formula")
    assert good and repr(good) == str(good) == "✓ check_x: all 3 cases pass (checked against the formula). Well done!"
    bad = ex.Feedback("check_x", 6, [f"case {i}: wrong" for i in range(5)], "the formula")
    assert not bad
    assert str(bad).splitlines() == [
        "✗ check_x: 1 of 6 cases pass (checked against the formula).",
        "  - case 0: wrong", "  - case 1: wrong", "  - case 2: wrong",
        "  ... and 2 more failed cases."]


# check_classifier/check_residual_block take a model, check_training_loop three functions (below),
# check_ablation the runs a student's code produced (no function to hold a placeholder).
@pytest.mark.parametrize("name", [n for n in ex.__all__ if n.startswith("check_")
                                  and n not in ("check_classifier", "check_residual_block",
                                                "check_training_loop", "check_ablation")])
def test_every_checker_reports_the_placeholder_as_not_written(name):
    feedback = getattr(ex, name)(not_written)
    assert str(feedback).replace("[sigmoid]", "") == f"✗ {name}: not written yet: replace `raise NotImplementedError()` with your code."


def test_training_loop_placeholders_are_not_written():
    assert "not written yet" in str(ex.check_training_loop(not_written, not_written, not_written))


def test_residual_block_placeholder_is_not_written():
    assert "not written yet" in str(ex.check_residual_block(not_written))


@pytest.mark.parametrize("name", ["check_conv2d", "check_corr2d", "check_hflip", "check_log_softmax"])
def test_missing_return_is_named(name):
    assert_fails_with(getattr(ex, name)(lambda *a, **k: None), "returned None: did you forget `return`?")


def test_an_exception_in_the_answer_becomes_feedback():
    def broken(x, kernel):
        return x[100]
    assert_fails_with(ex.check_corr2d(broken), "raised IndexError: index 100 is out of bounds")


# --------------------------------------------------------------------------- sizes & counts

def out_size(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def test_conv_output_size():
    assert_passes(ex.check_conv_output_size(out_size))
    always_wrong = ex.check_conv_output_size(lambda *a, **k: -1)      # every case is really checked
    assert len(always_wrong.failures) == always_wrong.total > 1


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, k, stride=1, padding=0, dilation=1: out_size(s, k, stride, 0, dilation),
     "returned 26, expected 28: did you forget the padding (add 2*padding)?"),
    (lambda s, k, stride=1, padding=0, dilation=1: (s + padding - dilation * (k - 1) - 1) // stride + 1,
     "padding goes on both sides: add 2*padding, not padding"),
    (lambda s, k, stride=1, padding=0, dilation=1: out_size(s, k, 1, padding, dilation),
     "returned 5, expected 3: did you forget to divide by the stride?"),
    (lambda s, k, stride=1, padding=0, dilation=1: out_size(s, k, stride, padding, 1),
     "dilation spreads the kernel: it spans dilation*(kernel_size-1)+1 pixels"),
    (lambda s, k, stride=1, padding=0, dilation=1: out_size(s, k, stride, padding, dilation) - 1,
     "did you forget the +1 (the first position of the window)?"),
    (lambda s, k, stride=1, padding=0, dilation=1: (s + 2 * padding - dilation * (k - 1) - 1) / stride + 1,
     "returned the float 24.0, expected the int 24: use floor division `//`"),
])
def test_conv_output_size_hints(wrong, hint):
    assert_fails_with(ex.check_conv_output_size(wrong), hint)


def test_conv_param_count():
    assert_passes(ex.check_conv_param_count(lambda i, o, k, bias=True: o * (i * k * k + bias)))
    assert_fails_with(ex.check_conv_param_count(lambda i, o, k, bias=True: i * o * k * k),
                      "case in_channels=1, out_channels=6, kernel_size=5, bias=True: returned 150, expected 156: "
                      "did you forget the bias (one per output channel)?")
    assert_fails_with(ex.check_conv_param_count(lambda i, o, k, bias=True: i * o * k * k + o),
                      "with bias=False there is no bias to count")
    assert_fails_with(ex.check_conv_param_count(lambda i, o, k, bias=True: o * (k * k + bias)),
                      "each filter spans every input channel: multiply by in_channels")
    assert_fails_with(ex.check_conv_param_count(lambda i, o, k, bias=True: o * (i * k + bias)),
                      "the kernel is kernel_size × kernel_size: square it")


def test_separable_param_count():
    assert_passes(ex.check_separable_param_count(lambda i, o, k: i * k * k + i * o))
    assert_fails_with(ex.check_separable_param_count(lambda i, o, k: i * o * k * k),
                      "returned 432, expected 75: that is a standard convolution")
    assert_fails_with(ex.check_separable_param_count(lambda i, o, k: i * k * k),
                      "you counted the depthwise part only")
    assert_fails_with(ex.check_separable_param_count(lambda i, o, k: i * o),
                      "you counted the pointwise part only")


# --------------------------------------------------------------------------- convolution & pooling

def corr2d_loops(x, kernel):
    kh, kw = kernel.shape
    y = np.zeros((x.shape[0] - kh + 1, x.shape[1] - kw + 1))
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] = (x[i:i + kh, j:j + kw] * kernel).sum()
    return y


def test_corr2d():
    assert_passes(ex.check_corr2d(corr2d_loops))
    assert_fails_with(ex.check_corr2d(lambda x, k: corr2d_loops(x, k[::-1, ::-1])),
                      "case x=[[0, 1, 2], [3, 4, 5], [6, 7, 8]], kernel=[[0, 1], [2, 3]]: output differs from the "
                      "expected by up to 14 at index (0, 0) (got 5, expected 19): you flipped the kernel")
    assert_fails_with(ex.check_corr2d(lambda x, k: corr2d_loops(x.T, k.T)), "rows and columns are swapped")
    same = lambda x, k: corr2d_loops(np.pad(x, k.shape[0] // 2), k)  # noqa: E731
    assert_fails_with(ex.check_corr2d(same), "no padding here: the output is (H - KH + 1) × (W - KW + 1)")


def conv2d_loops(x, weight, bias=None, stride=1, padding=0):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out, w_out = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = np.zeros((n, c_out, h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, weight)
    return y if bias is None else y + bias[None, :, None, None]


def test_conv2d():
    assert_passes(ex.check_conv2d(conv2d_loops))
    assert_fails_with(ex.check_conv2d(lambda x, w, b=None, stride=1, padding=0: conv2d_loops(x, w, b, stride)),
                      "output shape (1, 4, 4, 4), expected (1, 4, 6, 6): did you forget the padding?")
    assert_fails_with(ex.check_conv2d(lambda x, w, b=None, stride=1, padding=0: conv2d_loops(x, w, b, 1, padding)),
                      "did you forget the stride (step the window by `stride`)?")
    assert_fails_with(ex.check_conv2d(lambda x, w, b=None, stride=1, padding=0: conv2d_loops(x, w, None, stride, padding)),
                      "did you forget to add the bias (one per output channel)?")
    assert_fails_with(ex.check_conv2d(lambda x, w, b=None, stride=1, padding=0:
                                      conv2d_loops(x, w[:, :, ::-1, ::-1], b, stride, padding)),
                      "you flipped the kernel: CNN layers compute cross-correlation (no flip)")


def max_pool_loops(x, kernel_size, stride=None):
    s = stride or kernel_size
    n, c, h, w = x.shape
    y = np.empty((n, c, (h - kernel_size) // s + 1, (w - kernel_size) // s + 1))
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            y[:, :, i, j] = x[:, :, i * s:i * s + kernel_size, j * s:j * s + kernel_size].max(axis=(2, 3))
    return y


def test_max_pool2d():
    assert_passes(ex.check_max_pool2d(max_pool_loops))
    avg = lambda x, k, stride=None: F.avg_pool2d(_t(x), k, stride).numpy()  # noqa: E731
    assert_fails_with(ex.check_max_pool2d(avg), "that is the average: max pooling keeps the largest value")
    assert_fails_with(ex.check_max_pool2d(lambda x, k, stride=None: max_pool_loops(x, k, stride or 1)),
                      "output shape (1, 1, 3, 3), expected (1, 1, 2, 2): stride defaults to kernel_size")
    assert_fails_with(ex.check_max_pool2d(lambda x, k, stride=None: -max_pool_loops(-x, k, stride)),
                      "that is the minimum")


# --------------------------------------------------------------------------- activations & losses

def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("activation, derivative", [
    ("sigmoid", lambda x: sigmoid(x) * (1 - sigmoid(x))),
    ("tanh", lambda x: 1 - np.tanh(x) ** 2),
    ("relu", lambda x: (x > 0).astype(float)),
    ("leaky_relu", lambda x: np.where(x > 0, 1.0, 0.01)),
])
def test_activation_derivative(activation, derivative):
    assert_passes(ex.check_activation_derivative(derivative, activation))


@pytest.mark.parametrize("activation, wrong, hint", [
    ("sigmoid", sigmoid, "that is sigmoid(x) itself, not its derivative"),
    ("sigmoid", lambda x: sigmoid(x) * (1 + sigmoid(x)), "σ(x)·(1 − σ(x)), with a minus"),
    ("tanh", lambda x: 1 - np.tanh(x), "square the tanh"),
    ("tanh", lambda x: 1 - x ** 2, "square tanh(x), not x"),
    ("relu", lambda x: (x >= 0).astype(float), "at x = 0 PyTorch takes ReLU's derivative as 0"),
    ("leaky_relu", lambda x: (x > 0).astype(float), "the negative side has slope 0.01, not 0"),
])
def test_activation_derivative_hints(activation, wrong, hint):
    assert_fails_with(ex.check_activation_derivative(wrong, activation), hint)


def test_activation_derivative_rejects_unknown_activation():
    with pytest.raises(ValueError, match=r"check_activation_derivative: activation must be one of .*got 'elu'"):
        ex.check_activation_derivative(np.sign, "elu")


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def test_log_softmax():
    assert_passes(ex.check_log_softmax(log_softmax))
    naive = lambda z: z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # noqa: E731
    assert_fails_with(ex.check_log_softmax(naive), "3 of 4 cases pass",
                      "output contains NaN or infinity for large logits: subtract each row's maximum before `exp`")
    assert_fails_with(ex.check_log_softmax(lambda z: np.exp(log_softmax(z))),
                      "those are the probabilities (softmax): take their log")
    assert_fails_with(ex.check_log_softmax(lambda z: log_softmax(z.T).T), "normalize each row (axis=-1")
    no_add_back = lambda z: z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))  # noqa: E731
    assert_fails_with(ex.check_log_softmax(no_add_back), "add it back")


def cross_entropy(z, y):
    return -log_softmax(z)[np.arange(len(y)), y].mean()


def test_cross_entropy():
    assert_passes(ex.check_cross_entropy(cross_entropy))
    assert_fails_with(ex.check_cross_entropy(lambda z, y: -log_softmax(z)[np.arange(len(y)), y].sum()),
                      "that is the sum over the batch: PyTorch takes the mean (divide by N)")
    assert_fails_with(ex.check_cross_entropy(lambda z, y: -cross_entropy(z, y)), "the sign is wrong")
    assert_fails_with(ex.check_cross_entropy(lambda z, y: cross_entropy(np.exp(log_softmax(z)), y)),
                      "cross_entropy applies log-softmax itself (you applied softmax twice)")
    naive = lambda z, y: -np.log((np.exp(z) / np.exp(z).sum(-1, keepdims=True))[np.arange(len(y)), y]).mean()  # noqa: E731
    assert_fails_with(ex.check_cross_entropy(naive), "for large logits, compute log-softmax stably")
    assert_fails_with(ex.check_cross_entropy(lambda z, y: -log_softmax(z)[np.arange(len(y)), y]),
                      "return one number, the mean over the batch")


# --------------------------------------------------------------------------- optimizers

def sgd_step(param, grad, velocity, lr, momentum):
    velocity = momentum * velocity + grad
    return param - lr * velocity, velocity


def test_sgd_momentum_step():
    assert_passes(ex.check_sgd_momentum_step(sgd_step))

    def ema(param, grad, velocity, lr, momentum):
        velocity = momentum * velocity + (1 - momentum) * grad
        return param - lr * velocity, velocity
    assert_fails_with(ex.check_sgd_momentum_step(ema), "1 of 3 cases pass", "not the (1 − momentum)-weighted average")

    def ascent(param, grad, velocity, lr, momentum):
        p, v = sgd_step(param, grad, velocity, lr, momentum)
        return 2 * param - p, v
    assert_fails_with(ex.check_sgd_momentum_step(ascent), "the step goes against the gradient")
    assert_fails_with(ex.check_sgd_momentum_step(lambda p, g, v, lr, momentum: (p - lr * g, v)),
                      "the momentum term is missing")
    assert_fails_with(ex.check_sgd_momentum_step(lambda p, g, v, lr, momentum: p - lr * g),
                      "expected a tuple of 2 arrays (the new parameter and state)")


def adam_step(param, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, correct=True):
    m = betas[0] * m + (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * grad ** 2
    m_hat, v_hat = (m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)) if correct else (m, v)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def test_adam_step():
    assert_passes(ex.check_adam_step(adam_step))
    no_correction = lambda *a, **k: adam_step(*a, **k, correct=False)  # noqa: E731
    assert_fails_with(ex.check_adam_step(no_correction), "did you forget the bias correction")


# --------------------------------------------------------------------------- data & metrics

def test_accuracy():
    assert_passes(ex.check_accuracy(lambda z, y: float(np.mean(z.argmax(1) == y))))
    assert_fails_with(ex.check_accuracy(lambda z, y: 100 * np.mean(z.argmax(1) == y)),
                      "accuracy differs from the expected by up to 66 (got 66.6667, expected 0.666667): "
                      "that is a percentage")
    assert_fails_with(ex.check_accuracy(lambda z, y: np.sum(z.argmax(1) == y)), "that is the number of correct")
    assert_fails_with(ex.check_accuracy(lambda z, y: np.mean(z.argmax(1) != y)), "that is the error rate")


def test_kaiming_std():
    import math
    assert_passes(ex.check_kaiming_std(lambda s: math.sqrt(2 / math.prod(s[1:]))))
    assert_passes(ex.check_kaiming_std(lambda s: torch.tensor(2 / math.prod(s[1:])).sqrt()))
    assert_fails_with(ex.check_kaiming_std(lambda s: math.sqrt(2 / (s[0] * math.prod(s[2:])))), "uses fan_out")
    assert_fails_with(ex.check_kaiming_std(lambda s: math.sqrt(2 / s[1])), "not only the input channels")
    assert_fails_with(ex.check_kaiming_std(lambda s: math.sqrt(1 / math.prod(s[1:]))), "hence the 2")
    assert_fails_with(ex.check_kaiming_std(lambda s: 2 / math.prod(s[1:])), "that is the variance")
    fan = lambda s: (math.prod(s[1:]), s[0] * math.prod(s[2:]))
    assert_fails_with(ex.check_kaiming_std(lambda s: math.sqrt(2 / sum(fan(s)))), "Xavier's rule")


def test_kaiming_normal():
    import math
    std = lambda s: math.sqrt(2 / math.prod(s[1:]))
    gen = torch.Generator().manual_seed(0)
    assert_passes(ex.check_kaiming_normal(lambda s: torch.randn(s, generator=gen) * std(s)))
    assert_passes(ex.check_kaiming_normal(lambda s: torch.nn.init.kaiming_normal_(torch.empty(s), generator=gen)))
    rng = np.random.default_rng(0)
    assert_passes(ex.check_kaiming_normal(lambda s: rng.normal(0, std(s), size=s).astype(np.float32)))
    assert_fails_with(ex.check_kaiming_normal(lambda s: torch.randn(s, generator=gen) * std(s) * 1.2),
                      "standard deviation is", "ratio 1.2")
    bound = lambda s: math.sqrt(3) * std(s)  # a uniform draw with the right standard deviation
    assert_fails_with(ex.check_kaiming_normal(lambda s: (2 * torch.rand(s, generator=gen) - 1) * bound(s)),
                      "look uniformly distributed")
    assert_fails_with(ex.check_kaiming_normal(lambda s: torch.randn(s, generator=gen) * std(s) + std(s)),
                      "the weights' mean is")
    assert_fails_with(ex.check_kaiming_normal(lambda s: torch.randn(s[:2], generator=gen)), "expected shape")
    assert_fails_with(ex.check_kaiming_normal(lambda s: std(s)), "expected a tensor of shape")


def confusion_loops(y_true, y_pred, k):
    cm = np.zeros((k, k), dtype=int)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    return cm


def test_confusion_matrix():
    assert_passes(ex.check_confusion_matrix(confusion_loops))
    assert_fails_with(ex.check_confusion_matrix(lambda y, p, k: confusion_loops(y, p, k).T),
                      "rows and columns are swapped: rows are the true classes")


def test_precision_recall_against_scikit_learn():
    from sklearn.metrics import precision_score, recall_score

    def sk(y, p, k):
        kw = dict(labels=list(range(k)), average=None, zero_division=0)
        return precision_score(y, p, **kw), recall_score(y, p, **kw)
    assert_passes(ex.check_precision_recall(sk))
    assert_fails_with(ex.check_precision_recall(lambda y, p, k: sk(y, p, k)[::-1]),
                      "precision and recall are swapped")
    assert_fails_with(ex.check_precision_recall(lambda y, p, k: sk(y, p, k)[0]), "expected a tuple (precision, recall)")


def early_stopping(losses, patience):
    best, best_epoch, wait = float("inf"), 0, 0
    for epoch, loss in enumerate(losses):
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait == patience:
                return epoch, best_epoch
    return len(losses) - 1, best_epoch


def test_early_stopping():
    assert_passes(ex.check_early_stopping(early_stopping))
    assert_fails_with(ex.check_early_stopping(lambda l, p: early_stopping(l, p + 1)),
                      "case val_losses=[1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.6], patience=2: returned (5, 2), "
                      "expected (4, 2): stop as soon as `patience` epochs passed without improvement")
    assert_fails_with(ex.check_early_stopping(lambda l, p: early_stopping(l, p - 1) if p > 1 else early_stopping(l, p)),
                      "wait `patience` full epochs without improvement before stopping")
    last = lambda l, p: (early_stopping(l, p)[0],) * 2  # noqa: E731
    assert_fails_with(ex.check_early_stopping(last), "the best epoch is the one with the lowest loss")
    assert_fails_with(ex.check_early_stopping(lambda l, p: 3), "returned 3, expected a tuple (stop_epoch, best_epoch)")


# --------------------------------------------------------------------------- techniques

def batch_norm(x, gamma, beta, eps=1e-5, axes=(0, 2, 3), ddof=0, affine=True):
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, ddof=ddof, keepdims=True) + eps)
    return y * gamma[None, :, None, None] + beta[None, :, None, None] if affine else y


def test_batch_norm():
    assert_passes(ex.check_batch_norm(batch_norm))
    for kwargs, hint in [(dict(ddof=1), "use the biased variance"), (dict(affine=False), "scale by gamma and shift"),
                         (dict(axes=(1, 2, 3)), "that normalizes each example (layer norm)"),
                         (dict(axes=(0,)), "average over the spatial axes too"),
                         (dict(axes=(0, 1, 2, 3)), "one mean and variance per channel")]:
        assert_fails_with(ex.check_batch_norm(lambda x, g, b, eps=1e-5: batch_norm(x, g, b, eps, **kwargs)), hint)


def dropout(x, p, training, rng):
    if not training or p == 0:
        return x
    return x * (rng.random(x.shape) >= p) / (1 - p)


def test_dropout():
    assert_passes(ex.check_dropout(dropout))
    assert_fails_with(ex.check_dropout(lambda x, p, t, rng: dropout(x, p, t, rng) * (1 - p) if t else x),
                      "case p=0.5, training=True: kept values are unchanged: multiply them by 1/(1 − p)")
    assert_fails_with(ex.check_dropout(lambda x, p, t, rng: dropout(x, p, True, rng)),
                      "case p=0.5, training=False: in evaluation mode dropout does nothing")
    assert_fails_with(ex.check_dropout(lambda x, p, t, rng: dropout(x, 1 - p, t, rng) if 0 < p else x),
                      "p is the probability to drop, not to keep")


def test_hflip():
    assert_passes(ex.check_hflip(lambda x: x[..., ::-1]))
    assert_passes(ex.check_hflip(lambda x: torch.flip(_t(x), dims=[-1])))  # tensors are accepted
    assert_fails_with(ex.check_hflip(lambda x: x[:, :, ::-1]), "that flips top to bottom")
    assert_fails_with(ex.check_hflip(lambda x: x[::-1]), "that reverses the order of the batch")
    assert_fails_with(ex.check_hflip(lambda x: np.swapaxes(x, -1, -2)), "output shape (3, 1, 4, 5), expected "
                      "(3, 1, 5, 4): that transposes the image")


class Residual(torch.nn.Module):
    def __init__(self, channels, skip=True, padding=1):
        super().__init__()
        self.skip = skip
        self.f = torch.nn.Sequential(
            torch.nn.Conv2d(channels, channels, 3, padding=padding), torch.nn.BatchNorm2d(channels), torch.nn.ReLU(),
            torch.nn.Conv2d(channels, channels, 3, padding=padding), torch.nn.BatchNorm2d(channels))

    def forward(self, x):
        fx = self.f(x)
        return torch.relu(fx + x) if self.skip else torch.relu(fx)


def test_residual_block():
    assert_passes(ex.check_residual_block(Residual))
    assert_fails_with(ex.check_residual_block(lambda c: Residual(c, skip=False)),
                      "with every weight set to zero the block returned zeros: is the skip connection x + F(x) missing?")
    assert_fails_with(ex.check_residual_block(lambda c: Residual(c, padding=0)), "raised RuntimeError")
    assert_fails_with(ex.check_residual_block(lambda c: torch.nn.Conv2d(c, c, 3)),
                      "output shape (2, 4, 6, 6), expected (2, 4, 8, 8): a residual block keeps the shape")
    assert_fails_with(ex.check_residual_block(lambda c: "block"), "returned a str, expected a torch.nn.Module")


def test_classifier():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 10))
    model.train()
    assert_passes(ex.check_classifier(model))
    assert model.training, "the checker restores the model's mode"
    assert_fails_with(ex.check_classifier(model, max_params=1000), "27,090 parameters, at most 1,000 allowed: make it smaller")
    assert_fails_with(ex.check_classifier(torch.nn.Sequential(torch.nn.Conv2d(1, 10, 3))),
                      "output shape (1, 10, 26, 26), expected (1, 10): did you forget to flatten")
    five = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 5))
    assert_fails_with(ex.check_classifier(five), "the last layer needs 10 outputs, one score per class")

    class Unused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = torch.nn.Linear(784, 10), torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.used(x.flatten(1))
    assert_fails_with(ex.check_classifier(Unused()), "no gradient reaches spare.weight, spare.bias")


def test_transfer_head():
    def right(model, k):
        for p in model.parameters():
            p.requires_grad = False
        model.fc = torch.nn.Linear(model.fc.in_features, k)
        return model

    def unfrozen(model, k):
        model.fc = torch.nn.Linear(model.fc.in_features, k)
        return model

    def frozen_head(model, k):
        model.fc = torch.nn.Linear(model.fc.in_features, k)
        for p in model.parameters():
            p.requires_grad = False
        return model
    assert_passes(ex.check_transfer_head(right))
    assert_fails_with(ex.check_transfer_head(unfrozen), "backbone parameters still train (e.g. conv1.weight)")
    assert_fails_with(ex.check_transfer_head(frozen_head), "the new head is frozen too")
    assert_fails_with(ex.check_transfer_head(lambda m, k: right(m, 7)), "model.fc should be a Linear(512, 10) layer")
    assert_fails_with(ex.check_transfer_head(lambda m, k: None), "returned a NoneType: return the model")


# --------------------------------------------------------------------------- cnnbook's reference passes its own checks

def test_cnnbook_functional_passes_the_checkers():
    cf = pytest.importorskip("cnnbook.scratch.functional")
    assert_passes(ex.check_conv2d(lambda x, w, b=None, stride=1, padding=0: cf.conv2d(x, w, b, stride=stride, padding=padding)))
    assert_passes(ex.check_max_pool2d(lambda x, k, stride=None: cf.max_pool2d(x, k, stride=stride)))
    assert_passes(ex.check_log_softmax(lambda z: cf.log_softmax(z, dim=-1)))
    assert_passes(ex.check_cross_entropy(lambda z, y: cf.cross_entropy(z, y)))
    assert_passes(ex.check_batch_norm(lambda x, g, b, eps=1e-5: cf.batch_norm(
        x, np.zeros(x.shape[1]), np.ones(x.shape[1]), g, b, training=True, eps=eps)))


# --------------------------------------------------------------------------- analysis (chapter 5)

def f1(p, r):
    with np.errstate(all="ignore"):
        return np.where(p + r > 0, 2 * p * r / (p + r), 0.0)


def test_f1():
    assert_passes(ex.check_f1(f1))
    assert_fails_with(ex.check_f1(lambda p, r: (p + r) / 2), "that is the arithmetic mean")
    assert_fails_with(ex.check_f1(lambda p, r: 2 * p * r / (p + r)),
                      "returned NaN where precision and recall are both 0: define F1 as 0 there")
    assert_fails_with(ex.check_f1(lambda p, r: np.sqrt(p * r)), "that is the geometric mean")


def most_confused(cm, k):
    pairs = [(i, j, int(cm[i, j])) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j]]
    return sorted(pairs, key=lambda t: (-t[2], t[0], t[1]))[:k]


def test_most_confused():
    assert_passes(ex.check_most_confused(most_confused))
    assert_fails_with(ex.check_most_confused(lambda cm, k: [(j, i, n) for i, j, n in most_confused(cm, k)]),
                      "case cm=[[50, 3, 9], [1, 40, 0], [12, 3, 30]], k=2: returned [(0, 2, 12), (2, 0, 9)], "
                      "expected [(2, 0, 12), (0, 2, 9)]: the row is the true class")
    with_diagonal = lambda cm, k: sorted([(i, j, int(cm[i, j])) for i in range(len(cm)) for j in range(len(cm))],  # noqa: E731
                                         key=lambda t: -t[2])[:k]
    assert_fails_with(ex.check_most_confused(with_diagonal), "leave out the diagonal (correct predictions, e.g. (0, 0, 50))")
    assert_fails_with(ex.check_most_confused(lambda cm, k: most_confused(cm, k)[::-1]), "sort the largest count first")
    assert_fails_with(ex.check_most_confused(lambda cm, k: 7), "expected a list of (true, predicted, count) tuples")


def saliency(model, image, target):
    x = image[None].clone().requires_grad_(True)
    model.eval()
    model(x)[0, target].backward()
    return x.grad[0].abs().amax(dim=0)


def test_saliency():
    assert_passes(ex.check_saliency(saliency))

    def signed(model, image, target):
        x = image[None].clone().requires_grad_(True)
        model(x)[0, target].backward()
        return x.grad[0].amax(dim=0)

    def of_loss(model, image, target):
        x = image[None].clone().requires_grad_(True)
        F.cross_entropy(model(x), torch.tensor([target])).backward()
        return x.grad[0].abs().amax(dim=0)

    def stepping(model, image, target):
        torch.optim.SGD(model.parameters(), lr=0.1).zero_grad()
        result = saliency(model, image, target)
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        return result
    assert_fails_with(ex.check_saliency(signed), "take the absolute value of the gradient")
    assert_fails_with(ex.check_saliency(of_loss), "use the class score (the logit of target), not the loss")
    assert_fails_with(ex.check_saliency(stepping), "the model's weights changed")
    assert_fails_with(ex.check_saliency(lambda m, x, t: x[0]), "saliency differs from the expected")
