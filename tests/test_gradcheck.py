"""cnnbook.scratch.gradcheck: the checker itself, and centred-difference checks of every backward."""
import doctest

import numpy as np
import pytest

import cnnbook.scratch.gradcheck
from cnnbook.scratch import functional as F, nn
from cnnbook.scratch.gradcheck import GradcheckError, gradcheck, gradcheck_module, numerical_gradient, relative_error

RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape)


def test_numerical_gradient_golden_and_restores_input():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    before = x.copy()
    np.testing.assert_allclose(numerical_gradient(lambda x: (x ** 3).sum(), x), 3 * before ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, before)
    g = np.array([[1.0, 0.0], [2.0, -1.0]])
    np.testing.assert_allclose(numerical_gradient(lambda x: np.sin(x), x, g), g * np.cos(before), rtol=1e-8)


def test_relative_error_golden():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([3.0, 4.0]), np.zeros(2)) == 1.0
    assert relative_error(np.array([1.0]), np.array([1.0 + 2e-6])) == pytest.approx(1e-6, rel=1e-3)


def test_gradcheck_atol_passes_only_noise_level_differences():
    x = randn(3)

    def zero(g, x):
        return np.zeros_like(x)
    assert gradcheck(lambda x: np.zeros(3) + 0 * x, [x], zero) == [0.0]
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: 1e-7 * x, [x], zero)                 # a real, if small, gradient missed


def test_gradcheck_fails_a_nan_or_infinite_gradient():
    """A NaN compares False with everything: a backward returning NaN must still fail, not pass."""
    x = randn(3)
    with pytest.raises(GradcheckError, match=r"inputs\[0\]: relative error nan"):
        gradcheck(np.sin, [x], lambda g, x: np.full(3, np.nan))
    with pytest.raises(GradcheckError, match=r"inputs\[0\]: relative error nan"):
        gradcheck(np.sin, [x], lambda g, x: np.array([np.inf, 0.0, 0.0]))
    layer = nn.Linear(2, 1, dtype=np.float64)
    layer.backward = lambda g: np.full((3, 2), np.nan)
    with pytest.raises(GradcheckError, match="input: relative error nan"):
        gradcheck_module(layer, randn(3, 2))


def test_gradcheck_catches_a_wrong_backward():
    x = randn(4, 3)
    with pytest.raises(GradcheckError, match=r"gradcheck: analytic and numerical gradients differ .*inputs\[0\]: relative error 0.333"):
        gradcheck(F.sigmoid, [x], lambda g, x: 2 * F.sigmoid_backward(g, F.sigmoid(x)))
    errors = gradcheck(F.relu, [x], lambda g, x: g, raise_exception=False)    # forgot the mask
    assert errors[0] > 0.1


OPS = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
               lambda g, x, w, b: F.conv2d_backward(g, x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
               [(2, 4, 6, 6), (4, 2, 3, 2), (4,)]),
    "conv2d same": (lambda x, w: F.conv2d(x, w, padding="same"),
                    lambda g, x, w: F.conv2d_backward(g, x, w, padding="same")[:2], [(1, 2, 5, 4), (3, 2, 2, 3)]),
    "conv2d_loop": (lambda x, w: F.conv2d_loop(x, w, stride=2),
                    lambda g, x, w: F.conv2d_backward_loop(g, x, w, stride=2)[:2], [(1, 2, 5, 5), (2, 2, 3, 3)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True),
                   lambda g, x: F.max_pool2d_backward(g, x, 3, 2, padding=1, ceil_mode=True), [(2, 2, 6, 6)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
                   lambda g, x: F.avg_pool2d_backward(g, x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
                   [(2, 2, 6, 6)]),
    "relu": (F.relu, F.relu_backward, [(3, 5)]),
    "leaky_relu": (F.leaky_relu, F.leaky_relu_backward, [(3, 5)]),
    "sigmoid": (F.sigmoid, lambda g, x: F.sigmoid_backward(g, F.sigmoid(x)), [(3, 5)]),
    "tanh": (F.tanh, lambda g, x: F.tanh_backward(g, F.tanh(x)), [(3, 5)]),
    "softmax": (lambda x: F.softmax(x, 1), lambda g, x: F.softmax_backward(g, F.softmax(x, 1), 1), [(3, 5)]),
    "log_softmax": (lambda x: F.log_softmax(x, 0), lambda g, x: F.log_softmax_backward(g, F.log_softmax(x, 0), 0), [(3, 5)]),
    "linear": (F.linear, F.linear_backward, [(2, 3, 4), (5, 4), (5,)]),
    "batch_norm train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                         lambda g, x, w, b: F.batch_norm_backward(g, x, None, None, w, b, training=True),
                         [(4, 3, 2, 2), (3,), (3,)]),
    "batch_norm eval": (lambda x, w, b: F.batch_norm(x, np.full(3, 0.5), np.full(3, 2.0), w, b),
                        lambda g, x, w, b: F.batch_norm_backward(g, x, np.full(3, 0.5), np.full(3, 2.0), w, b),
                        [(4, 3), (3,), (3,)]),
    "mse_loss": (lambda x, t: F.mse_loss(x, t), lambda g, x, t: (F.mse_loss_backward(g, x, t), None), [(3, 4), (3, 4)]),
}
LABELS = np.array([0, 2, 1, 2, -100])
CLASS_WEIGHT = np.array([0.5, 1.0, 2.0])
OPS.update({
    "cross_entropy": (lambda x: F.cross_entropy(x, LABELS, CLASS_WEIGHT, label_smoothing=0.2),
                      lambda g, x: F.cross_entropy_backward(g, x, LABELS, CLASS_WEIGHT, label_smoothing=0.2), [(5, 3)]),
    "cross_entropy none": (lambda x: F.cross_entropy(x, LABELS, reduction="none"),
                           lambda g, x: F.cross_entropy_backward(g, x, LABELS, reduction="none"), [(5, 3)]),
    "nll_loss": (lambda x: F.nll_loss(x, LABELS, CLASS_WEIGHT, reduction="sum"),
                 lambda g, x: F.nll_loss_backward(g, x, LABELS, CLASS_WEIGHT, reduction="sum"), [(5, 3)]),
})


@pytest.mark.parametrize("name", list(OPS))
def test_backward_matches_centred_differences(name):
    f, backward, shapes = OPS[name]
    inputs = [randn(*s) for s in shapes]
    errors = gradcheck(f, inputs, backward)
    grads = backward(np.ones(np.shape(f(*inputs))), *inputs)
    skipped = [g is None for g in (grads if isinstance(grads, tuple) else [grads])]
    assert [bool(np.isnan(e)) for e in errors] == skipped      # NaN only where backward gave no gradient
    assert all(e < 1e-6 for e, skip in zip(errors, skipped) if not skip) and not all(skipped)


def test_dropout_backward_with_a_fixed_mask():
    x = randn(4, 6)
    mask = F.dropout(x, 0.4, generator=np.random.default_rng(1), return_mask=True)[1]
    errors = gradcheck(lambda x: x * mask / 0.6, [x], lambda g, x: F.dropout_backward(g, mask, 0.4))
    assert errors[0] < 1e-8 and 0 < mask.sum() < mask.size


def test_gradcheck_module_on_a_cnn_restores_its_state():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, generator=np.random.default_rng(0)), nn.BatchNorm2d(2),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3, generator=np.random.default_rng(1)))
    model.double()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    errors = gradcheck_module(model, randn(3, 1, 4, 4))
    assert set(errors) == {"input", "0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias"}
    # the conv bias before batch norm has a zero gradient: its relative error is noise, atol passes it
    assert max(e for name, e in errors.items() if name != "0.bias") < 1e-6
    assert np.abs(model[0].bias.data).max() > 0
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])    # running statistics restored
    assert model[0].weight.grad is None


ERRORS = [
    ("float32", lambda: gradcheck(F.relu, [np.ones(3, np.float32)], F.relu_backward), TypeError,
     r"gradcheck: inputs\[0\] must be float64 for a meaningful check, got float32; hint: x.astype\(np.float64\)"),
    ("nan", lambda: numerical_gradient(np.sum, np.array([np.nan])), ValueError,
     r"numerical_gradient: inputs\[0\] contains 1 NaN or infinite value"),
    ("count", lambda: gradcheck(F.linear, [randn(2, 3), randn(4, 3)], lambda g, x, w: F.linear_backward(g, x, w)[:1]),
     ValueError, r"gradcheck: backward returned 1 gradients for 2 inputs"),
    ("shape", lambda: gradcheck(F.relu, [randn(2, 3)], lambda g, x: g.T), ValueError,
     r"gradcheck: gradient 0 has shape \(3, 2\), but inputs\[0\] has \(2, 3\)"),
    ("module dtype", lambda: gradcheck_module(nn.Linear(2, 2), randn(1, 2)), TypeError,
     r"gradcheck_module: inputs\[1\] must be float64 .*model.double\(\)"),
]


@pytest.mark.parametrize("name, call, error, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_gradcheck_errors(name, call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_docstring_examples_run():
    result = doctest.testmod(cnnbook.scratch.gradcheck)
    assert result.attempted > 3 and result.failed == 0
