"""The public entry points the other robustness files leave out: gradient checking and the NumPy
LeNet (``cnnbook.scratch``), its torch twin, the experiment helpers, the widgets and ``glue``.

As in ``test_robustness_scratch.py``: a bad argument, drawn by hypothesis, raises a
TypeError/ValueError whose message starts with the function's name and names the argument; a
valid input, drawn too, gives torch's (or the plain formula's) answer.
"""
import re
import statistics

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from cnnbook.scratch import functional as F, gradcheck as G, lenet as L, nn as snn

NAN, INF = float("nan"), float("inf")
X28 = np.zeros((2, 1, 28, 28), np.float32)
LABELS2 = np.array([0, 1])
SCRATCH_LENET = L.lenet(generator=np.random.default_rng(0))

# ---------------------------------------------------------------------------------------
# kinds of bad values
# ---------------------------------------------------------------------------------------
NOT_CALLABLE = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2))
BAD_POSITIVE_INT = st.one_of(st.integers(max_value=0), st.floats(), st.booleans(), st.text(max_size=2), st.none())
BAD_NONNEGATIVE_INT = st.one_of(st.integers(max_value=-1), st.floats(), st.booleans(), st.text(max_size=2), st.none())
BAD_POSITIVE_NUMBER = st.one_of(st.floats(max_value=0.0), st.just(NAN), st.booleans(), st.text(max_size=2), st.none())
BAD_NONNEGATIVE_NUMBER = st.one_of(st.floats(max_value=-1e-12), st.just(NAN), st.booleans(), st.text(max_size=2),
                                   st.none())
BAD_BOOL = st.one_of(st.integers(), st.text(max_size=3), st.none(), st.floats())
NOT_FLOAT_ARRAYS = st.one_of(
    st.none(), st.integers(), st.text(max_size=3), st.lists(st.floats(allow_nan=False), min_size=1, max_size=4),
    hnp.arrays(st.sampled_from([np.int64, np.uint8, np.bool_, np.complex128]), hnp.array_shapes(max_dims=4)),
    st.builds(torch.zeros, st.integers(1, 2), st.just(1), st.just(28), st.just(28)),
)
NOT_4D = hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=5, max_side=3).filter(lambda s: len(s) != 4))
NOT_SCRATCH_MODULE = st.one_of(st.none(), st.text(max_size=3), st.just(torch.nn.Linear(2, 2)), st.just({"w": 1}))
NOT_GENERATOR = st.one_of(st.integers(), st.text(max_size=2), st.just(np.random.RandomState(0)))


def bad_labels(n):
    """Label arrays that do not fit ``n`` images: wrong length, floats, 2-D, lists, tensors."""
    return st.one_of(
        hnp.arrays(np.int64, st.integers(0, 6).filter(lambda k: k != n), elements=st.integers(0, 9)),
        hnp.arrays(np.float64, (n,), elements=st.floats(0, 9)),
        hnp.arrays(np.int64, (n, 1), elements=st.integers(0, 9)),
        st.lists(st.integers(0, 9), min_size=n, max_size=n), st.just(torch.zeros(n, dtype=torch.long)), st.none())


def train(**kwargs):
    """train_scratch on two blank images; every bad argument is refused before any step."""
    args = dict(model=SCRATCH_LENET, images=X28, labels=LABELS2, progress=False)
    args.update(kwargs)
    return L.train_scratch(args.pop("model"), args.pop("images"), args.pop("labels"), **args)


# (function named in the message, argument named in it, the call, bad values)
CASES = [
    # cnnbook.scratch.gradcheck
    ("numerical_gradient", "f", lambda v: G.numerical_gradient(v, np.ones(2)), NOT_CALLABLE),
    ("numerical_gradient", "eps", lambda v: G.numerical_gradient(np.sum, np.ones(2), eps=v), BAD_POSITIVE_NUMBER),
    ("numerical_gradient", "grad_output", lambda v: G.numerical_gradient(lambda x: 2 * x, np.ones(3), grad_output=v),
     st.one_of(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3).filter(lambda s: s != (3,))),
               hnp.arrays(np.float64, (3,), elements=st.sampled_from([NAN, INF, -INF])),
               st.text(min_size=1, max_size=3))),
    ("relative_error", "a", lambda v: G.relative_error(v, np.ones(3)),
     st.one_of(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3).filter(lambda s: s != (3,))),
               st.text(min_size=1, max_size=3), st.just({"a": 1}))),
    ("gradcheck", "inputs", lambda v: G.gradcheck(lambda x: x, v, lambda g, x: g),
     st.one_of(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2)), st.none(), st.integers(), st.just([]),
               st.just(()), st.lists(hnp.arrays(np.float32, 2), min_size=1, max_size=2))),
    ("gradcheck", "f", lambda v: G.gradcheck(v, [np.ones(3)], lambda g, x: g), NOT_CALLABLE),
    ("gradcheck", "backward", lambda v: G.gradcheck(lambda x: x, [np.ones(3)], v), NOT_CALLABLE),
    ("gradcheck", "eps", lambda v: G.gradcheck(lambda x: x, [np.ones(3)], lambda g, x: g, eps=v), BAD_POSITIVE_NUMBER),
    ("gradcheck", "tol", lambda v: G.gradcheck(lambda x: x, [np.ones(3)], lambda g, x: g, tol=v),
     BAD_NONNEGATIVE_NUMBER),
    ("gradcheck", "atol", lambda v: G.gradcheck(lambda x: x, [np.ones(3)], lambda g, x: g, atol=v),
     BAD_NONNEGATIVE_NUMBER),
    ("gradcheck", "grad_output", lambda v: G.gradcheck(lambda x: x, [np.ones(3)], lambda g, x: g, grad_output=v),
     hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3).filter(lambda s: s != (3,)))),
    ("gradcheck_module", "module", lambda v: G.gradcheck_module(v, np.ones((1, 2))), NOT_SCRATCH_MODULE),
    ("gradcheck_module", "grad_output",
     lambda v: G.gradcheck_module(snn.Linear(2, 2).double(), np.ones((1, 2)), grad_output=v),
     hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3).filter(lambda s: s != (1, 2)))),
    # cnnbook.scratch.lenet
    ("lenet", "num_classes", lambda v: L.lenet(num_classes=v), BAD_POSITIVE_INT),
    ("lenet", "batch_norm", lambda v: L.lenet(batch_norm=v), BAD_BOOL),
    ("lenet", "dtype", lambda v: L.lenet(dtype=v), st.sampled_from([np.int64, np.uint8, "int32", np.complex128, 3])),
    ("lenet", "generator", lambda v: L.lenet(generator=v), NOT_GENERATOR),
    ("lenet_layers", "nn", L.lenet_layers, st.one_of(st.none(), st.text(max_size=3), st.integers(), st.just(np))),
    ("lenet_layers", "num_classes", lambda v: L.lenet_layers(snn, num_classes=v), BAD_POSITIVE_INT),
    ("predict", "model", lambda v: L.predict(v, X28), NOT_SCRATCH_MODULE),
    ("predict", "images", lambda v: L.predict(SCRATCH_LENET, v), NOT_FLOAT_ARRAYS | NOT_4D),
    ("predict", "batch_size", lambda v: L.predict(SCRATCH_LENET, X28, batch_size=v), BAD_POSITIVE_INT),
    ("train_scratch", "model", lambda v: train(model=v), NOT_SCRATCH_MODULE),
    ("train_scratch", "images", lambda v: train(images=v), NOT_FLOAT_ARRAYS | NOT_4D),
    ("train_scratch", "labels", lambda v: train(labels=v), bad_labels(2)),
    ("train_scratch", "epochs", lambda v: train(epochs=v), BAD_POSITIVE_INT),
    ("train_scratch", "batch_size", lambda v: train(batch_size=v), BAD_POSITIVE_INT),
    ("train_scratch", "lr", lambda v: train(lr=v), BAD_NONNEGATIVE_NUMBER),
    ("train_scratch", "subset", lambda v: train(subset=v), BAD_POSITIVE_INT.filter(lambda v: v is not None)
     | st.integers(3, 10**6)),
    ("train_scratch", "test", lambda v: train(test=v),
     st.one_of(st.just(X28), st.integers(), st.tuples(st.just(X28)), st.tuples(st.just(X28), bad_labels(2)),
               st.tuples(NOT_FLOAT_ARRAYS, st.just(LABELS2)))),
    ("train_scratch", "optimizer", lambda v: train(optimizer=v),
     st.one_of(st.text(max_size=3), st.integers(), st.just(torch.optim.SGD([torch.zeros(1, requires_grad=True)], 0.1)))),
    ("train_scratch", "generator", lambda v: train(generator=v), NOT_GENERATOR),
    ("train_scratch", "blas_threads", lambda v: train(blas_threads=v), BAD_POSITIVE_INT.filter(lambda v: v is not None)),
]


@pytest.mark.parametrize("fn, arg, call, bad", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
@given(data=st.data())
def test_bad_argument_is_refused_naming_function_and_argument(fn, arg, call, bad, data):
    value = data.draw(bad)
    with pytest.raises((TypeError, ValueError)) as error:
        call(value)
    message = str(error.value)
    assert message.startswith(f"{fn}:") and re.search(rf"\b{re.escape(arg)}\b", message), message


def test_train_scratch_refuses_labels_of_another_length_that_it_used_to_train_on():
    # before: 2 images and 3 labels trained silently (the labels were indexed with the images' order)
    with pytest.raises(ValueError, match=r"train_scratch: got 2 images but 3 labels; give one label per image"):
        train(labels=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"train_scratch: epochs must be >= 1, got 0"):   # before: an empty history
        train(epochs=0)


# ---------------------------------------------------------------------------------------
# valid inputs: torch's answers
# ---------------------------------------------------------------------------------------
FUNCTIONS = {"sin": (np.sin, torch.sin), "tanh": (np.tanh, torch.tanh), "cube": (lambda x: x ** 3, lambda x: x ** 3),
             "softplus": (lambda x: np.logaddexp(0, x), torch.nn.functional.softplus)}


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(FUNCTIONS)), data=st.data(),
       x=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=4), elements=st.floats(-2, 2)))
def test_numerical_gradient_equals_torch_autograd(name, x, data):
    ours, theirs = FUNCTIONS[name]
    g = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-2, 2)))
    before = x.copy()
    xt = torch.tensor(x, requires_grad=True)
    theirs(xt).backward(torch.tensor(g))
    np.testing.assert_allclose(G.numerical_gradient(ours, x, g), xt.grad.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(x, before)                   # perturbed in place, then restored


@settings(max_examples=25, deadline=None)
@given(a=hnp.arrays(np.float64, (4, 3), elements=st.floats(-1e3, 1e3)), b=hnp.arrays(np.float64, (4, 3),
                                                                                    elements=st.floats(-1e3, 1e3)))
def test_relative_error_is_the_formula_and_symmetric(a, b):
    ta, tb = torch.tensor(a), torch.tensor(b)
    scale = (torch.linalg.norm(ta) + torch.linalg.norm(tb)).item()
    want = 0.0 if scale == 0 else (torch.linalg.norm(ta - tb) / scale).item()
    assert G.relative_error(a, b) == pytest.approx(want, rel=1e-12, abs=1e-300)
    assert G.relative_error(a, b) == pytest.approx(G.relative_error(b, a)) and 0.0 <= G.relative_error(a, b) <= 1.0


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), fin=st.integers(1, 4), fout=st.integers(1, 3), seed=st.integers(0, 99))
def test_gradcheck_passes_a_correct_backward_and_fails_a_wrong_one(n, fin, fout, seed):
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal((n, fin)), rng.standard_normal((fout, fin)), rng.standard_normal(fout)]
    errors = G.gradcheck(F.linear, inputs, F.linear_backward)
    assert len(errors) == 3 and max(errors) < 1e-7
    with pytest.raises(G.GradcheckError, match=r"inputs\[0\]: relative error 0.333"):
        G.gradcheck(F.linear, inputs, lambda g, x, w, b: (2 * F.linear_backward(g, x, w, b)[0],) +
                    F.linear_backward(g, x, w, b)[1:])


def test_gradcheck_module_restores_the_module_when_the_check_fails():
    model = snn.Sequential(snn.Linear(2, 3), snn.BatchNorm1d(3)).double()
    before = {k: np.array(v) for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"gradcheck_module: grad_output must have the output's shape \(4, 3\)"):
        G.gradcheck_module(model, np.random.default_rng(0).standard_normal((4, 2)), grad_output=np.ones((4, 2)))
    for key, value in model.state_dict().items():        # the forward pass moved the running statistics back
        np.testing.assert_array_equal(value, before[key], err_msg=key)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(0, 5), batch_size=st.integers(1, 4), seed=st.integers(0, 2**16), batch_norm=st.booleans(),
       num_classes=st.integers(1, 12))
def test_scratch_lenet_predict_equals_its_torch_twin_empty_batches_included(n, batch_size, seed, batch_norm,
                                                                          num_classes):
    from cnnbook.pytorch import twins

    rng = np.random.default_rng(seed)
    model = L.lenet(num_classes, batch_norm, generator=rng, dtype=np.float64)
    theirs = twins.lenet_torch(num_classes, batch_norm).double()
    theirs.load_state_dict(twins.torch_state_dict(model))
    x = rng.standard_normal((n, 1, 28, 28))
    with torch.no_grad():
        expected = theirs.eval()(torch.from_numpy(x)).numpy()
    logits = L.predict(model, x, batch_size=batch_size)
    assert logits.shape == (n, num_classes)
    np.testing.assert_allclose(logits, expected, rtol=1e-9, atol=1e-12)
    if n:
        check = twins.compare_with_torch(model, theirs, x, batch_size=batch_size)
        assert check["same_predictions"] and check["n"] == n and check["max_logit_difference"] < 1e-9
