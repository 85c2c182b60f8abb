"""cnnbook.scratch as careless students and unusual inputs use it: every public entry point
refuses bad input with a TypeError/ValueError that names the function and the argument, and
accepts every valid input (an empty batch included) with torch's answer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from cnnbook.scratch import conv, fast, functional as F, nn, optim
from conftest import assert_refused

X = np.zeros((2, 3, 8, 8))
W = np.ones((4, 3, 3, 3))
LOGITS, LABELS = np.zeros((4, 5)), np.array([0, 1, 2, 3])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------------------
# bad arguments, drawn: the message names the function and the argument
# ---------------------------------------------------------------------------------------
NOT_FLOAT_ARRAYS = st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=3),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=4),
    hnp.arrays(st.sampled_from([np.int64, np.int8, np.uint8, np.bool_, np.complex128]), hnp.array_shapes(max_dims=4)),
)
NOT_4D = hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=6).filter(lambda s: len(s) != 4))
BAD_POSITIVE_PAIR = st.one_of(
    st.integers(max_value=0), st.floats(), st.booleans(), st.text(min_size=1, max_size=3), st.none(),
    st.tuples(st.integers(1, 3)), st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    st.tuples(st.integers(max_value=0), st.integers(1, 3)), st.tuples(st.integers(1, 3), st.floats()),
)
BAD_PADDING = st.one_of(st.integers(max_value=-1), st.floats(), st.booleans(), st.none(),
                        st.text(min_size=1, max_size=4).filter(lambda s: s not in ("same", "valid")),
                        st.tuples(st.integers(0, 1), st.integers(max_value=-1)))
BAD_POSITIVE_INT = st.one_of(st.integers(max_value=0), st.floats(), st.booleans(), st.text(max_size=2), st.none())
BAD_PROBABILITY = st.one_of(st.floats().filter(lambda p: not 0 <= p <= 1), st.booleans(), st.text(max_size=2),
                            st.none())
BAD_FLAG = st.one_of(st.integers(), st.floats(), st.text(max_size=3), st.none())     # "no" would count as True
BAD_NONNEGATIVE = st.one_of(st.floats(max_value=-1e-12), st.just(float("nan")), st.booleans(), st.text(max_size=2),
                            st.none())
NOT_FLOAT_DTYPE = st.sampled_from([np.int64, np.uint8, "int32", np.complex128, np.bool_])
NOT_GENERATOR = st.one_of(st.integers(), st.text(min_size=1, max_size=2), st.just(np.random.RandomState(0)))

# (function named in the message, argument named in it, the call, bad values)
CASES = [
    ("conv2d", "input", lambda v: F.conv2d(v, W), NOT_FLOAT_ARRAYS | NOT_4D),
    ("conv2d", "weight", lambda v: F.conv2d(X, v), NOT_FLOAT_ARRAYS | NOT_4D),
    ("conv2d", "stride", lambda v: F.conv2d(X, W, stride=v), BAD_POSITIVE_PAIR),
    ("conv2d", "dilation", lambda v: F.conv2d(X, W, dilation=v), BAD_POSITIVE_PAIR),
    ("conv2d", "padding", lambda v: F.conv2d(X, W, padding=v), BAD_PADDING),
    ("conv2d", "groups", lambda v: F.conv2d(X, W, groups=v), BAD_POSITIVE_INT),
    ("conv2d_loop", "input", lambda v: F.conv2d_loop(v, W), NOT_FLOAT_ARRAYS | NOT_4D),
    ("conv2d_backward", "grad_output", lambda v: F.conv2d_backward(v, X, W), NOT_FLOAT_ARRAYS | NOT_4D),
    ("max_pool2d", "input", lambda v: F.max_pool2d(v, 2), NOT_FLOAT_ARRAYS | NOT_4D),
    ("max_pool2d", "kernel_size", lambda v: F.max_pool2d(X, v), BAD_POSITIVE_PAIR),
    ("max_pool2d", "stride", lambda v: F.max_pool2d(X, 2, v), BAD_POSITIVE_PAIR.filter(lambda v: v is not None)),
    ("max_pool2d", "dilation", lambda v: F.max_pool2d(X, 2, dilation=v), BAD_POSITIVE_PAIR),
    ("max_pool2d", "padding", lambda v: F.max_pool2d(X, 2, padding=v), BAD_PADDING),
    ("avg_pool2d", "input", lambda v: F.avg_pool2d(v, 2), NOT_FLOAT_ARRAYS | NOT_4D),
    ("avg_pool2d", "kernel_size", lambda v: F.avg_pool2d(X, v), BAD_POSITIVE_PAIR),
    ("relu", "input", F.relu, NOT_FLOAT_ARRAYS),
    ("leaky_relu", "input", F.leaky_relu, NOT_FLOAT_ARRAYS),
    ("sigmoid", "input", F.sigmoid, NOT_FLOAT_ARRAYS),
    ("tanh", "input", F.tanh, NOT_FLOAT_ARRAYS),
    ("softmax", "input", lambda v: F.softmax(v, 0), NOT_FLOAT_ARRAYS),
    ("softmax", "dim", lambda v: F.softmax(LOGITS, v), st.one_of(st.integers().filter(lambda d: not -2 <= d < 2),
                                                                 st.floats(), st.none(), st.text(max_size=2))),
    ("linear", "input", lambda v: F.linear(v, np.ones((2, 3))), NOT_FLOAT_ARRAYS),
    ("linear", "weight", lambda v: F.linear(np.ones((1, 3)), v), NOT_FLOAT_ARRAYS),
    ("batch_norm", "input", lambda v: F.batch_norm(v, None, None, training=True), NOT_FLOAT_ARRAYS),
    ("dropout", "p", lambda v: F.dropout(X, v), BAD_PROBABILITY),
    ("mse_loss", "target", lambda v: F.mse_loss(LOGITS, v), NOT_FLOAT_ARRAYS),
    ("cross_entropy", "input", lambda v: F.cross_entropy(v, LABELS), NOT_FLOAT_ARRAYS),
    ("cross_entropy", "target", lambda v: F.cross_entropy(LOGITS, v),
     st.one_of(st.none(), st.floats(), hnp.arrays(np.float64, (4,)), hnp.arrays(np.int64, (3,)),
               st.integers(5, 100).map(lambda k: np.array([0, 1, k, 2])))),
    ("cross_entropy", "label_smoothing", lambda v: F.cross_entropy(LOGITS, LABELS, label_smoothing=v), BAD_PROBABILITY),
    ("nll_loss", "reduction", lambda v: F.nll_loss(LOGITS, LABELS, reduction=v),
     st.one_of(st.text(max_size=5), st.none(), st.integers())),
    ("Conv2d", "in_channels", lambda v: nn.Conv2d(v, 4, 3), BAD_POSITIVE_INT),
    ("Conv2d", "kernel_size", lambda v: nn.Conv2d(3, 4, v), BAD_POSITIVE_PAIR),
    ("Conv2d", "input", lambda v: nn.Conv2d(3, 4, 3)(v), NOT_FLOAT_ARRAYS | NOT_4D),
    ("MaxPool2d", "input", lambda v: nn.MaxPool2d(2)(v), NOT_FLOAT_ARRAYS | NOT_4D),
    ("Linear", "out_features", lambda v: nn.Linear(3, v), BAD_POSITIVE_INT),
    ("ReLU", "input", lambda v: nn.ReLU()(v), NOT_FLOAT_ARRAYS),
    ("BatchNorm2d", "input", lambda v: nn.BatchNorm2d(3)(v), NOT_FLOAT_ARRAYS | NOT_4D),
    ("Dropout", "p", nn.Dropout, BAD_PROBABILITY),
    ("set_num_threads", "num_threads", F.set_num_threads, BAD_POSITIVE_INT),
    ("SGD", "lr", lambda v: optim.SGD([nn.Parameter(np.zeros(2))], lr=v),
     st.one_of(st.floats(max_value=-1e-9), st.text(max_size=2), st.none(), st.booleans())),
    ("Adam", "betas", lambda v: optim.Adam([nn.Parameter(np.zeros(2))], betas=v),
     st.one_of(st.floats(), st.tuples(st.floats(1, 10), st.floats(0, 0.9)), st.tuples(st.floats(0, 0.9)))),
    # the sweep of issue 16: flags, slopes, dtypes and generators that were taken silently
    ("nll_loss", "ignore_index", lambda v: F.nll_loss(LOGITS, LABELS, ignore_index=v),
     st.floats() | st.text(max_size=2) | st.none()),
    ("batch_norm", "training", lambda v: F.batch_norm(X, np.zeros(3), np.ones(3), training=v), BAD_FLAG),
    ("batch_norm", "momentum", lambda v: F.batch_norm(X, np.zeros(3), np.ones(3), training=True, momentum=v),
     BAD_PROBABILITY),
    ("batch_norm", "eps", lambda v: F.batch_norm(X, None, None, training=True, eps=v), BAD_NONNEGATIVE),
    ("dropout", "training", lambda v: F.dropout(X, 0.5, training=v), BAD_FLAG),
    ("dropout_backward", "training", lambda v: F.dropout_backward(X, np.ones(X.shape, bool), 0.5, training=v),
     BAD_FLAG),
    ("leaky_relu", "negative_slope", lambda v: F.leaky_relu(X, v), st.text(max_size=2) | st.none() | st.booleans()),
    ("max_pool2d", "ceil_mode", lambda v: F.max_pool2d(X, 2, ceil_mode=v), BAD_FLAG),
    ("Linear", "bias", lambda v: nn.Linear(3, 2, bias=v), BAD_FLAG),
    ("Linear", "dtype", lambda v: nn.Linear(3, 2, dtype=v), NOT_FLOAT_DTYPE),
    ("Linear", "generator", lambda v: nn.Linear(3, 2, generator=v), NOT_GENERATOR),
    ("Conv2d", "bias", lambda v: nn.Conv2d(3, 4, 3, bias=v), BAD_FLAG),
    ("Conv2d", "dtype", lambda v: nn.Conv2d(3, 4, 3, dtype=v), NOT_FLOAT_DTYPE),
    ("Conv2d", "generator", lambda v: nn.Conv2d(3, 4, 3, generator=v), NOT_GENERATOR),
    ("BatchNorm2d", "momentum", lambda v: nn.BatchNorm2d(3, momentum=v), BAD_PROBABILITY.filter(lambda v: v is not None)),
    ("BatchNorm2d", "eps", lambda v: nn.BatchNorm2d(3, eps=v), BAD_NONNEGATIVE),
    ("BatchNorm2d", "affine", lambda v: nn.BatchNorm2d(3, affine=v), BAD_FLAG),
    ("BatchNorm1d", "dtype", lambda v: nn.BatchNorm1d(3, dtype=v), NOT_FLOAT_DTYPE),
    ("Flatten", "start_dim", lambda v: nn.Flatten(start_dim=v)(X),
     st.integers().filter(lambda d: not -4 <= d < 4) | st.floats() | st.text(max_size=2)),
    ("MaxPool2d", "ceil_mode", lambda v: nn.MaxPool2d(2, ceil_mode=v)(X), BAD_FLAG),
    ("Sequential.train", "mode", lambda v: nn.Sequential(nn.ReLU()).train(v), BAD_FLAG),
    ("SGD", "nesterov", lambda v: optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1, momentum=0.9, nesterov=v), BAD_FLAG),
    ("Adam", "amsgrad", lambda v: optim.Adam([nn.Parameter(np.zeros(2))], amsgrad=v), BAD_FLAG),
    ("RMSprop", "centered", lambda v: optim.RMSprop([nn.Parameter(np.zeros(2))], centered=v), BAD_FLAG),
    ("RMSprop", "alpha", lambda v: optim.RMSprop([nn.Parameter(np.zeros(2))], alpha=v),
     st.floats(min_value=1.0, exclude_min=True) | BAD_NONNEGATIVE),
]


@pytest.mark.parametrize("fn, arg, call, bad", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
@given(data=st.data())
def test_bad_argument_is_refused_naming_function_and_argument(fn, arg, call, bad, data):
    assert_refused(call, data.draw(bad), f"{fn}", arg)


# ---------------------------------------------------------------------------------------
# valid inputs, drawn, empty batches included: torch's answers
# ---------------------------------------------------------------------------------------
@st.composite
def layer_cases(draw):
    n, c_in, c_out = draw(st.integers(0, 3)), draw(st.sampled_from([1, 3, 16])), draw(st.integers(1, 4))
    kernel, padding = draw(st.integers(1, 3)), draw(st.integers(0, 1))
    stride = draw(st.integers(1, 2))
    pool = draw(st.sampled_from([dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
                                 dict(kernel_size=2, ceil_mode=True)]))
    size = draw(st.integers(kernel + 2 * stride + 1, 10))          # the convolution gives at least 3x3
    return n, c_in, c_out, size, dict(kernel_size=kernel, stride=stride, padding=padding), pool


@given(layer_cases())
def test_conv_and_pool_layers_match_torch_empty_batches_included(case):
    n, c_in, c_out, size, conv_kw, pool_kw = case
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(c_in, c_out, **conv_kw), torch.nn.MaxPool2d(**pool_kw)).double()
    ours = nn.Sequential(nn.Conv2d(c_in, c_out, **conv_kw), nn.MaxPool2d(**pool_kw)).double()
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(n + size).standard_normal((n, c_in, size, size))
    xt = torch.tensor(x, requires_grad=True)
    expected = theirs(xt)
    grad = np.random.default_rng(1).standard_normal(tuple(expected.shape))
    expected.backward(torch.tensor(grad))
    out = ours(x)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.backward(grad), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("op, args", [("conv2d", (W,)), ("max_pool2d", (2,)), ("avg_pool2d", (2,))])
def test_functional_empty_batch_gives_an_empty_output_as_torch(op, args):
    x = np.zeros((0, 3, 8, 8))
    expected = getattr(TF, op)(torch.tensor(x), *(torch.tensor(a) if isinstance(a, np.ndarray) else a for a in args))
    out = getattr(F, op)(x, *args)
    assert out.shape == tuple(expected.shape) and out.dtype == x.dtype
    grads = getattr(F, f"{op}_backward")(np.zeros(out.shape), x, *args)
    grad_input = grads[0] if isinstance(grads, tuple) else grads
    assert grad_input.shape == x.shape
    if op == "conv2d":
        np.testing.assert_array_equal(grads[1], np.zeros_like(W))


# ---------------------------------------------------------------------------------------
# messages that must not mislead, and warnings before a silent disaster
# ---------------------------------------------------------------------------------------
def test_batch_axis_hint_only_for_an_input():
    with pytest.raises(ValueError, match=r"conv2d: input must be 4-dimensional .*hint: add a batch axis with input\[None\]"):
        F.conv2d(X[0], W)
    with pytest.raises(ValueError, match=r"conv2d: weight must be 4-dimensional") as error:
        F.conv2d(X, W[0])                                   # a 3-D weight has no batch axis to add
    assert "batch axis" not in str(error.value)


@pytest.mark.parametrize("call", [
    lambda w: F.cross_entropy(LOGITS, LABELS, weight=w), lambda w: F.nll_loss(LOGITS, LABELS, weight=w),
    lambda w: F.cross_entropy_backward(1.0, LOGITS, LABELS, weight=w), lambda w: nn.CrossEntropyLoss(weight=w)(LOGITS, LABELS),
])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_class_weight_is_refused(call, bad):
    weight = np.ones(5)
    weight[2] = bad
    with pytest.raises(ValueError, match=r"weight contains 1 NaN or infinite value"):
        call(weight)


@pytest.mark.parametrize("call", [
    lambda x: F.conv2d(x, np.ones((2, 2, 3, 3))),
    lambda x: nn.Conv2d(2, 2, 3, dtype=np.float64)(x),                    # the layer's im2col path
])
def test_im2col_on_a_large_input_warns_with_the_memory(call, monkeypatch):
    monkeypatch.setattr(conv, "IM2COL_WARN_BYTES", 10_000)
    with pytest.warns(UserWarning, match=r"im2col will copy the input into 0.0 GiB of columns \(4 images x 18 taps x "
                                         r"36 positions\); hint: use a smaller batch or image"):
        call(np.ones((4, 2, 8, 8)))
    monkeypatch.setattr(conv, "IM2COL_WARN_BYTES", 2 ** 30)
    with np.testing.assert_no_warnings():
        call(np.ones((4, 2, 8, 8)))


def test_sequential_append_refuses_a_name_with_a_hint():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"Sequential: module 1 must be a cnnbook.scratch.nn.Module .*got str 'relu'; "
                                        r"hint: write nn.Relu\(\) for a layer"):
        model.append("relu")
    assert len(model) == 1
    with pytest.raises(TypeError, match=r"Sequential: module 0 must be"):
        nn.Sequential(torch.nn.ReLU())


def test_load_state_dict_errors_name_the_key():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    with pytest.raises(TypeError, match=r"load_state_dict: cannot copy 1.num_batches_tracked: the state_dict has "
                                        r"dtype float64, the model int64"):
        model.load_state_dict({**state, "1.num_batches_tracked": np.array(2.5)})
    with pytest.raises(TypeError, match=r"load_state_dict: cannot copy 0.weight: the state_dict has dtype <U"):
        model.load_state_dict({**state, "0.weight": np.full((2, 1, 3, 3), "x")})
    with pytest.raises(ValueError, match=r"load_state_dict: size mismatch for 0.bias"):
        model.load_state_dict({**state, "0.bias": np.zeros(3)})


def test_fast_paths_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match=r"max_pool2d: path must be None, 'general' or .*'tiles', got 'tiles' for "
                                         r"kernel_size=\(3, 3\), stride=\(1, 1\)"):
        fast.max_pool2d_forward(X, 3, 1, path="tiles")
    out, backward = fast.conv2d_forward(X, W)
    with pytest.raises(ValueError, match=r"conv2d.backward: grad_output must have the shape of the forward output"):
        backward(np.zeros((2, 4, 8, 8)))


@given(shape=hnp.array_shapes(min_dims=1, max_dims=5, max_side=3), data=st.data())
def test_flatten_with_any_dims_in_range_equals_torch(shape, data):
    start, end = (data.draw(st.integers(-len(shape), len(shape) - 1)) for _ in range(2))
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    try:
        expected = torch.flatten(torch.tensor(x), start, end).numpy()
    except RuntimeError:                                   # start_dim after end_dim
        with pytest.raises(ValueError, match=r"Flatten: start_dim=.* comes after end_dim"):
            nn.Flatten(start, end)(x)
        return
    layer = nn.Flatten(start, end)
    np.testing.assert_array_equal(layer(x), expected)
    np.testing.assert_array_equal(layer.backward(np.ones(expected.shape)), np.ones(shape))


@given(momentum=st.floats(0, 1), eps=st.floats(1e-8, 1e-2), steps=st.integers(1, 3))     # torch refuses eps=0
def test_batch_norm_running_statistics_equal_torch_for_any_valid_momentum(momentum, eps, steps):
    ours = nn.BatchNorm2d(3, eps=eps, momentum=momentum, dtype=np.float64)
    theirs = torch.nn.BatchNorm2d(3, eps=eps, momentum=momentum).double()
    rng = np.random.default_rng(steps)
    for _ in range(steps):
        x = rng.standard_normal((4, 3, 2, 2))
        out = ours(x)
        expected = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-10, atol=1e-12)
