"""cnnbook.scratch.nn layers against torch.nn: outputs, gradients, state_dict, modes, init, errors."""
import copy
import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import cnnbook.scratch
from cnnbook.scratch import fast, nn

TOL = dict(rtol=1e-10, atol=1e-12)


def compare_layer(ours, theirs, x, training=True, seed=0):
    """Load torch's weights into ours (float64), run forward and backward in both, compare all."""
    theirs, ours = theirs.double().train(training), ours.double().train(training)
    ours.load_state_dict(theirs.state_dict())
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt)
    grad = np.random.default_rng(seed).standard_normal(tuple(out_t.shape))
    out_t.backward(torch.tensor(grad))
    out = ours(x)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    np.testing.assert_allclose(ours.backward(grad), xt.grad.numpy(), **TOL)
    torch_params = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(torch_params)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, torch_params[name].grad.numpy(), **TOL)
    for (name, b), (tname, tb) in zip(ours.named_buffers(), theirs.named_buffers()):
        assert name == tname
        np.testing.assert_allclose(b, tb.numpy(), **TOL)


LAYERS = {
    "conv": (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2),
             lambda: torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 7, 7)),
    "conv same no bias": (lambda: nn.Conv2d(3, 2, (3, 2), padding="same", dilation=2, bias=False),
                          lambda: torch.nn.Conv2d(3, 2, (3, 2), padding="same", dilation=2, bias=False), (2, 3, 6, 5)),
    "conv wide stride 1": (lambda: nn.Conv2d(16, 8, 3, padding=1),          # the shifted-view path
                           lambda: torch.nn.Conv2d(16, 8, 3, padding=1), (2, 16, 6, 7)),
    "conv wide same dilated": (lambda: nn.Conv2d(16, 4, (2, 3), padding="same", dilation=(2, 1), bias=False),
                               lambda: torch.nn.Conv2d(16, 4, (2, 3), padding="same", dilation=(2, 1), bias=False),
                               (2, 16, 7, 5)),
    "linear": (lambda: nn.Linear(5, 3), lambda: torch.nn.Linear(5, 3), (4, 5)),
    "maxpool": (lambda: nn.MaxPool2d(3, 2, padding=1, ceil_mode=True),
                lambda: torch.nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), (2, 3, 8, 8)),
    "avgpool": (lambda: nn.AvgPool2d(2, padding=1, count_include_pad=False),
                lambda: torch.nn.AvgPool2d(2, padding=1, count_include_pad=False), (2, 3, 7, 7)),
    "relu": (nn.ReLU, torch.nn.ReLU, (3, 4)),
    "leaky": (lambda: nn.LeakyReLU(0.1), lambda: torch.nn.LeakyReLU(0.1), (3, 4)),
    "sigmoid": (nn.Sigmoid, torch.nn.Sigmoid, (3, 4)),
    "tanh": (nn.Tanh, torch.nn.Tanh, (3, 4)),
    "flatten": (nn.Flatten, torch.nn.Flatten, (2, 3, 4, 5)),
    "flatten middle": (lambda: nn.Flatten(1, 2), lambda: torch.nn.Flatten(1, 2), (2, 3, 4, 5)),
    "bn1d": (lambda: nn.BatchNorm1d(3), lambda: torch.nn.BatchNorm1d(3), (5, 3)),
    "bn1d 3d": (lambda: nn.BatchNorm1d(3, affine=False), lambda: torch.nn.BatchNorm1d(3, affine=False), (5, 3, 4)),
    "bn2d": (lambda: nn.BatchNorm2d(3, momentum=None), lambda: torch.nn.BatchNorm2d(3, momentum=None), (4, 3, 3, 3)),
    "bn2d no bias": (lambda: nn.BatchNorm2d(3, bias=False), lambda: torch.nn.BatchNorm2d(3, bias=False), (4, 3, 2, 2)),
    "bn2d untracked": (lambda: nn.BatchNorm2d(3, track_running_stats=False),
                       lambda: torch.nn.BatchNorm2d(3, track_running_stats=False), (4, 3, 3, 3)),
}


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("training", [True, False])
def test_layer_matches_torch(name, training):
    ours, theirs, shape = LAYERS[name]
    torch.manual_seed(0)
    x = np.random.default_rng(1).standard_normal(shape) * 2 + 0.5
    compare_layer(ours(), theirs(), x, training)


def lenet_pair(batch_norm=True):
    """The same small CNN in cnnbook.scratch.nn and torch.nn."""
    def build(m):
        norm = [m.BatchNorm2d(6)] if batch_norm else []
        return m.Sequential(m.Conv2d(1, 6, 5, padding=2), *norm, m.ReLU(), m.MaxPool2d(2),
                            m.Conv2d(6, 16, 5), m.ReLU(), m.AvgPool2d(2), m.Flatten(),
                            m.Linear(16 * 5 * 5, 32), m.Tanh(), m.Dropout(0.3), m.Linear(32, 10))
    return build(nn), build(torch.nn)


@pytest.mark.parametrize("training", [True, False])
def test_whole_network_matches_torch_through_several_steps(training):
    ours, theirs = lenet_pair()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    theirs[-2].p = ours[-2].p = 0.0                          # dropout's masks cannot match torch's
    for _ in range(3):                                       # running statistics evolve identically
        compare_layer(ours, theirs, rng.random((4, 1, 28, 28)), training)
        ours.zero_grad(), theirs.zero_grad()


def test_state_dict_keys_and_round_trip_from_torch():
    ours, theirs = lenet_pair()
    torch.manual_seed(3)
    theirs.train()(torch.rand(8, 1, 28, 28))                 # move the running statistics away from 0/1
    theirs.eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert "1.num_batches_tracked" in ours.state_dict()
    result = ours.load_state_dict(theirs.state_dict())       # torch tensors load directly
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert ours.state_dict()["0.weight"].dtype == np.float32
    assert int(ours.state_dict()["1.num_batches_tracked"]) == 1
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours.eval()(x), expected, rtol=1e-4, atol=1e-5)
    back = lenet_pair()[1]                                   # and back into a fresh torch model
    back.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(back.eval()(torch.from_numpy(x)).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_state_dict_shares_memory_like_torch():
    layer = nn.Linear(2, 2)
    state = layer.state_dict()
    assert state["weight"] is layer.weight.data
    snapshot = copy.deepcopy(state)
    layer.weight.data += 1
    assert not np.allclose(snapshot["weight"], layer.weight.data)


def test_load_state_dict_errors_and_non_strict():
    ours = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"load_state_dict: keys do not match: missing \['2.bias'\], unexpected \['9.x'\]"):
        state = dict(ours.state_dict())
        state.pop("2.bias")
        ours.load_state_dict({**state, "9.x": np.zeros(1)})
    with pytest.raises(ValueError, match=r"size mismatch for 0.weight: the state_dict has shape \(4, 3\), the model \(3, 4\)"):
        ours.load_state_dict({**ours.state_dict(), "0.weight": np.zeros((4, 3))})
    result = ours.load_state_dict({"0.bias": np.ones(3)}, strict=False)
    assert "0.weight" in result.missing_keys
    np.testing.assert_array_equal(ours[0].bias.data, np.ones(3))


def test_default_init_matches_torch_bounds_and_is_reproducible():
    conv = nn.Conv2d(16, 32, 3, generator=np.random.default_rng(0))
    bound = 1 / np.sqrt(16 * 9)                              # kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), ..)
    assert conv.weight.dtype == np.float32 and conv.weight.shape == (32, 16, 3, 3)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.weight.data).max() > 0.99 * bound
    assert abs(conv.weight.data.std() - bound / np.sqrt(3)) < 0.02 * bound
    torch_conv = torch.nn.Conv2d(16, 32, 3)
    assert abs(torch_conv.weight.detach().abs().max().item() - np.abs(conv.weight.data).max()) < 0.01 * bound
    again = nn.Conv2d(16, 32, 3, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(again.weight.data, conv.weight.data)
    linear = nn.Linear(100, 10, generator=np.random.default_rng(1))
    assert np.abs(linear.bias.data).max() <= 0.1
    np.random.seed(5)
    first = nn.Linear(3, 3).weight.data
    np.random.seed(5)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.data, first)   # global state when no generator


def test_gradients_accumulate_until_zero_grad():
    layer = nn.Linear(3, 2)
    x, g = np.ones((4, 3), np.float32), np.ones((4, 2), np.float32)
    layer(x)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_train_eval_modes_propagate_and_dropout():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5, generator=np.random.default_rng(0)))
    assert model.training and model[1].training
    x = np.ones((50, 4), np.float32)
    model.eval()
    assert not model[1].training
    np.testing.assert_array_equal(model[1](x), x)
    np.testing.assert_array_equal(model[1].backward(x), x)
    model.train()
    out = model[1](x)
    assert set(np.unique(out)) == {0.0, 2.0}
    np.testing.assert_array_equal(model[1].backward(np.ones_like(x)), out)   # same mask, same scale


def test_float_double_and_dtype_errors():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    assert model.double()[0].weight.dtype == np.float64 and model[1].running_mean.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64
    with pytest.raises(TypeError, match=r"Conv2d: all arrays must have the same dtype, but input is float32, weight is float64"):
        model(np.zeros((2, 1, 5, 5), np.float32))
    assert model.float()(np.zeros((2, 1, 5, 5), np.float32)).dtype == np.float32


def test_no_grad_saves_nothing():
    layer = nn.Conv2d(1, 2, 3)
    with nn.no_grad():
        layer(np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(RuntimeError, match=r"Conv2d.backward: nothing saved from a forward pass"):
        layer.backward(np.zeros((1, 2, 3, 3), np.float32))
    layer(np.zeros((1, 1, 5, 5), np.float32))
    assert layer.backward(np.zeros((1, 2, 3, 3), np.float32)).shape == (1, 1, 5, 5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_modules_match_torch(reduction):
    rng = np.random.default_rng(0)
    x, t, w = rng.standard_normal((6, 4)), rng.integers(0, 4, 6), rng.uniform(0.5, 2, 4)
    pairs = [(nn.CrossEntropyLoss(w, reduction=reduction, label_smoothing=0.1),
              torch.nn.CrossEntropyLoss(torch.tensor(w), reduction=reduction, label_smoothing=0.1), t),
             (nn.NLLLoss(w, reduction=reduction), torch.nn.NLLLoss(torch.tensor(w), reduction=reduction), t),
             (nn.MSELoss(reduction), torch.nn.MSELoss(reduction=reduction), rng.standard_normal((6, 4)))]
    for ours, theirs, target in pairs:
        xt = torch.tensor(x, requires_grad=True)
        loss_t = theirs(xt, torch.tensor(target))
        grad = np.ones(()) if reduction != "none" else rng.standard_normal(loss_t.shape)
        loss_t.backward(torch.tensor(grad))
        np.testing.assert_allclose(ours(x, target), loss_t.detach().numpy(), **TOL)
        np.testing.assert_allclose(ours.backward(grad), xt.grad.numpy(), **TOL)
    assert list(nn.CrossEntropyLoss(w).state_dict()) == list(torch.nn.CrossEntropyLoss(torch.tensor(w)).state_dict())


def test_repr_matches_torch():
    ours, theirs = lenet_pair()
    assert repr(ours) == repr(theirs)
    assert repr(nn.Conv2d(3, 8, 3, padding="same", bias=False)) == repr(torch.nn.Conv2d(3, 8, 3, padding="same", bias=False))


@pytest.mark.parametrize("c_in", [3, 16])                      # im2col path, shifted-view path
def test_conv_layer_float32_weight_gradient_only(c_in):
    layer = nn.Conv2d(c_in, 8, 3, padding=1, generator=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((3, c_in, 9, 8)).astype(np.float32)
    grad = np.random.default_rng(2).standard_normal((3, 8, 9, 8)).astype(np.float32)
    expected = "shifted" if c_in == 16 else "im2col_batch_last"
    assert fast.conv2d_path(layer.weight.shape, layer.stride, layer.groups, (9, 8)) == expected
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(layer.weight.data, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, wt, torch.tensor(layer.bias.data), padding=1)
    out.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(layer(x), out.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert layer.backward(grad, input_grad=False) is None
    assert layer.weight.grad.dtype == np.float32
    np.testing.assert_allclose(layer.weight.grad, wt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_sequential_backward_can_skip_the_input_gradient():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, dtype=np.float64), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2, dtype=np.float64))
    x, g = np.random.default_rng(0).standard_normal((2, 1, 5, 5)), np.ones((2, 2))
    model(x)
    full = model.backward(g)
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model(x)
    assert full.shape == x.shape and model.backward(g, input_grad=False) is None
    for p, expected in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, expected)
    assert nn.Sequential(nn.ReLU(), nn.Linear(2, 1))(np.ones((1, 2), np.float32)).shape == (1, 1)


def test_sequential_container():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    model.append(nn.Linear(3, 2))
    assert len(model) == 3 and isinstance(model[-1], nn.Linear)
    assert isinstance(model[:2], nn.Sequential) and len(model[:2]) == 2
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    assert len(list(model.parameters())) == 4


class TwoBranch(nn.Module):
    """A custom module: attributes register parameters and children, as in torch."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 3)
        self.scale = nn.Parameter(np.ones(3))

    def forward(self, x):
        return self.body(x) * self.scale.data


def test_custom_module_registration():
    m = TwoBranch()
    assert [n for n, _ in m.named_parameters()] == ["scale", "body.weight", "body.bias"]
    assert set(m.state_dict()) == {"scale", "body.weight", "body.bias"}
    m.body = nn.Linear(3, 1)
    assert m.state_dict()["body.weight"].shape == (1, 3)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.booleans())
def test_conv_layer_shapes_hypothesis(c_in, c_out, padding, bias):
    layer = nn.Conv2d(c_in, c_out, 3, padding=padding, bias=bias, dtype=np.float64)
    theirs = torch.nn.Conv2d(c_in, c_out, 3, padding=padding, bias=bias)
    compare_layer(layer, theirs, np.random.default_rng(c_in).standard_normal((2, c_in, 5, 6)))


MODULE_ERRORS = [
    ("groups", lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, r"Conv2d: groups=2 must divide in_channels=3"),
    ("padding mode", lambda: nn.Conv2d(3, 4, 3, padding_mode="reflect"), ValueError,
     r"Conv2d: only padding_mode='zeros' is implemented"),
    ("same strided", lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), ValueError, r"Conv2d: padding='same' needs stride=1"),
    ("channels", lambda: nn.Conv2d(3, 4, 3)(np.zeros((1, 1, 5, 5), np.float32)), ValueError,
     r"Conv2d: input has 1 channels but weight expects 3"),
    ("linear features", lambda: nn.Linear(4, 2)(np.zeros((3, 5), np.float32)), ValueError,
     r"linear: input has 5 features \(last axis\) but weight expects 4"),
    ("bn2d ndim", lambda: nn.BatchNorm2d(3)(np.zeros((4, 3), np.float32)), ValueError,
     r"BatchNorm2d: input must be 4-dimensional \(N, C, H, W\), got shape \(4, 3\)"),
    ("bn1d ndim", lambda: nn.BatchNorm1d(3)(np.zeros((4, 3, 2, 2), np.float32)), ValueError,
     r"BatchNorm1d: input must be 2 or 3-dimensional"),
    ("dropout p", lambda: nn.Dropout(-0.1), ValueError, r"Dropout: dropout probability p must be between 0 and 1"),
    ("sequential", lambda: nn.Sequential(nn.ReLU(), lambda x: x), TypeError,
     r"Sequential: module 1 must be a cnnbook.scratch.nn.Module \(a layer object such as nn.ReLU\(\)\), got function"),
    ("backward first", lambda: nn.Linear(2, 2).backward(np.zeros((1, 2))), RuntimeError,
     r"Linear.backward: nothing saved from a forward pass; call the layer first \(outside no_grad\(\)\), and call "
     r"backward once per forward call, in reverse order"),
    ("loss backward first", lambda: nn.CrossEntropyLoss().backward(), RuntimeError, r"CrossEntropyLoss.backward: nothing saved"),
    ("grad shape", lambda: (lambda m: (m(np.ones((2, 3))), m.backward(np.ones((2, 4)))))(nn.ReLU()), ValueError,
     r"ReLU.backward: grad_output must have the shape of the forward output \(2, 3\), got \(2, 4\)"),
    ("reduction", lambda: nn.MSELoss("avg"), ValueError, r"MSELoss: reduction must be one of"),
    ("in_channels", lambda: nn.Conv2d(0, 4, 3), ValueError, r"Conv2d: in_channels must be >= 1, got 0"),
    ("flatten dims", lambda: nn.Flatten(2, 1)(np.zeros((2, 3, 4))), ValueError, r"Flatten: start_dim=2 comes after end_dim=1"),
]


@pytest.mark.parametrize("name, call, error, match", MODULE_ERRORS, ids=[e[0] for e in MODULE_ERRORS])
def test_module_errors(name, call, error, match):
    with pytest.raises(error, match=match):
        call()


SCRATCH_MODULES = ["activations", "checks", "conv", "fast", "fast_conv", "functional", "gradcheck", "layers",
                   "lenet", "linear", "losses", "module", "nn", "normalization", "optim", "pool", "threads"]


@pytest.mark.parametrize("name", SCRATCH_MODULES)
def test_docstring_examples_run(name):
    """Every module of cnnbook.scratch has examples, and they run (as ``pytest --doctest-modules`` runs them)."""
    module = importlib.import_module(f"cnnbook.scratch.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0


def test_every_scratch_module_is_listed():
    files = {path.stem for path in Path(cnnbook.scratch.__file__).parent.glob("*.py")} - {"__init__"}
    assert files == set(SCRATCH_MODULES)


def test_scratch_lenet_trains_on_real_data_and_matches_torch():
    from cnnbook.pytorch import twins
    from cnnbook.scratch import lenet as scratch_lenet

    (x_train, y_train), (x_test, y_test) = scratch_lenet.load_fashion_mnist()
    assert x_train.shape == (60000, 1, 28, 28) and x_train.dtype == np.float32 and y_test.shape == (10000,)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and set(np.unique(y_train)) == set(range(10))
    model = scratch_lenet.lenet(generator=np.random.default_rng(0))
    assert list(model.state_dict()) == list(twins.lenet_torch().state_dict())
    history = scratch_lenet.train_scratch(model, x_train, y_train, epochs=2, batch_size=64, subset=1024,
                                    test=(x_test[:500], y_test[:500]), progress=False)
    assert len(history["loss"]) == 2 * 16 and history["n_train"] == 1024
    assert np.mean(history["loss"][-8:]) < np.mean(history["loss"][:8])   # it learns
    assert history["lr"][0] == 3e-3 and history["lr"][-1] < 3e-4            # linear decay
    assert history["test_accuracy"][-1] > 0.4                              # 10 classes: chance is 0.1
    check = twins.compare_with_torch(model, twins.lenet_torch(), x_test[:300])
    assert check["same_predictions"] and check["max_logit_difference"] < 1e-9


NO_TORCH = """
import importlib, pkgutil, sys
import numpy as np
import cnnbook.scratch
names = [m.name for m in pkgutil.iter_modules(cnnbook.scratch.__path__)]
for name in names:
    importlib.import_module(f"cnnbook.scratch.{name}")
from cnnbook.scratch import lenet, optim
model = lenet.lenet(generator=np.random.default_rng(0))
x, y = np.random.default_rng(1).random((8, 1, 28, 28), dtype=np.float32), np.arange(8)
lenet.train_scratch(model, x, y, epochs=1, batch_size=4, progress=False, test=(x, y))
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
opt.load_state_dict(opt.state_dict())
(x_train, _), _ = lenet.load_fashion_mnist()
print(len(names), x_train.shape[0], "torch" in sys.modules)
"""


def test_scratch_never_imports_torch():
    """Every module of cnnbook.scratch imported, a LeNet trained a step and the data loaded, in a
    fresh interpreter: torch is never imported."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [str(len(SCRATCH_MODULES)), "60000", "False"]


# ---------------------------------------------------------------------------------------
# a layer object used several times in one forward pass (legal in torch): gradients add up
# ---------------------------------------------------------------------------------------
def relu_reused(m):
    relu = m.ReLU()
    return m.Sequential(m.Linear(4, 5), relu, m.Linear(5, 5), relu, m.Linear(5, 2)), (3, 4)


def linear_shared(m):
    lin = m.Linear(4, 4)
    return m.Sequential(lin, m.Tanh(), lin, m.Sigmoid(), lin), (3, 4)


def conv_block_shared(m):
    block = m.Sequential(m.Conv2d(16, 16, 3, padding=1), m.BatchNorm2d(16), m.ReLU())
    pool = m.MaxPool2d(2)
    return m.Sequential(block, pool, block, pool, m.Flatten(), m.Linear(16, 3)), (2, 16, 4, 4)


def conv_im2col_shared(m):
    conv, pool = m.Conv2d(3, 3, 3, padding=1, stride=(1, 2)), m.MaxPool2d(3, stride=1, padding=1)
    return m.Sequential(conv, pool, m.LeakyReLU(0.1), conv, pool, m.Dropout(0.0)), (2, 3, 5, 9)


@pytest.mark.parametrize("build", [relu_reused, linear_shared, conv_block_shared, conv_im2col_shared])
def test_layer_used_twice_in_one_pass_matches_torch(build):
    """Values, input gradient, parameter gradients (summed over the uses) and buffers (batch norm
    updated once per use) equal torch's; a shared parameter is listed once, as torch lists it."""
    torch.manual_seed(0)
    theirs, shape = build(torch.nn)
    ours, _ = build(nn)
    compare_layer(ours, theirs, np.random.default_rng(0).standard_normal(shape))
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_layer_reuse_trains_like_torch_with_an_optimizer():
    """Three SGD steps of a model sharing one Linear: the shared weight moves once per step, as in torch."""
    from cnnbook.scratch import optim

    torch.manual_seed(0)
    theirs, _ = linear_shared(torch.nn)
    ours, _ = linear_shared(nn)
    theirs, ours = theirs.double(), ours.double()
    ours.load_state_dict(theirs.state_dict())
    opt, topt = optim.SGD(ours.parameters(), lr=0.5), torch.optim.SGD(theirs.parameters(), lr=0.5)
    x = np.random.default_rng(1).standard_normal((3, 4))
    for _ in range(3):
        opt.zero_grad(), topt.zero_grad()
        ours.backward(np.ones((3, 4)) - ours(x))
        theirs(torch.tensor(x)).backward(torch.tensor(np.ones((3, 4))) - theirs(torch.tensor(x)).detach())
        opt.step(), topt.step()
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), **TOL)


def test_backward_once_per_call_and_a_new_pass_forgets_the_old():
    lin = nn.Linear(2, 2, dtype=np.float64)
    x1, x2, g = np.ones((1, 2)), np.full((1, 2), 2.0), np.ones((1, 2))
    lin(x1)
    with nn.no_grad():                                  # saves nothing and keeps what was saved
        lin(x2)
    lin.backward(g)
    np.testing.assert_array_equal(lin.weight.grad, g.T @ x1)
    with pytest.raises(RuntimeError, match="Linear.backward: nothing saved from a forward pass"):
        lin.backward(g)                                 # one forward, one backward
    lin(x1)
    lin(x2)                                             # an outermost call: a new pass
    lin.backward(g)
    with pytest.raises(RuntimeError, match="call backward once per forward call"):
        lin.backward(g)


def test_many_forward_calls_without_backward_do_not_pile_up_memory():
    """Each outermost call starts a new pass: a layer keeps one pass's worth (a 1 MB mask here), not fifty."""
    import tracemalloc

    relu, x = nn.ReLU(), np.ones(10 ** 6)
    relu(x)
    tracemalloc.start()
    try:
        for _ in range(50):
            relu(x)
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < 3 * 10 ** 6


def test_a_model_pickles_and_copies_after_a_forward_pass():
    """What a forward pass saved (functions over its arrays) is not part of the model: pickling works
    and a copy starts with nothing saved."""
    import pickle

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 2))
    x = np.random.default_rng(0).standard_normal((3, 1, 6, 6)).astype(np.float32)
    out = model(x)
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        np.testing.assert_array_equal(twin(x), out)
        with pytest.raises(RuntimeError, match="nothing saved"):
            copy.deepcopy(twin).backward(np.ones_like(out))
    model.backward(np.ones_like(out))                   # the original still has its pass
    assert model[0].weight.grad is not None
