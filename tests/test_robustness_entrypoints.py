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

from cnnbook.book import widgets as W
from cnnbook.book.glue import glue
from cnnbook.pytorch import experiments as X
from cnnbook.pytorch import twins as TW
from cnnbook.pytorch.history import History
from cnnbook.scratch import checks, functional as F, gradcheck as G, lenet as L, nn as snn
from conftest import assert_refused

NAN, INF = float("nan"), float("inf")
X28 = np.zeros((2, 1, 28, 28), np.float32)
LABELS2 = np.array([0, 1])
SCRATCH_LENET = L.lenet(generator=np.random.default_rng(0))


pytestmark = pytest.mark.usefixtures("one_torch_thread")

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


IMGS, TARGETS = torch.zeros(4, 1, 6, 6), torch.tensor([0, 1, 2, 0])
TINY_CNN = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(72, 3))
SGD = lambda params: torch.optim.SGD(params, lr=0.1)  # noqa: E731
NOT_TENSOR = st.one_of(st.none(), st.integers(), st.text(max_size=2), st.just(np.zeros((4, 1, 6, 6))))


def setting(**kwargs):
    return X.Setting(**{"make_model": lambda: TINY_CNN, "make_optimizer": SGD, "epochs": 1, **kwargs})


def run(settings="default", x=IMGS, y=TARGETS, val=(IMGS, TARGETS), seeds=(0,)):
    """run_settings with a one-epoch setting; every bad argument is refused before training."""
    settings = {"a": setting()} if isinstance(settings, str) and settings == "default" else settings
    return X.run_settings(settings, x, y, val, seeds=seeds, progress=False)


def history(**values):
    h = History()
    for epoch, logs in enumerate(zip(*values.values()), start=1):
        h.append(epoch, dict(zip(values, logs)))
    return h


RUNS = [(None, history(loss=[1.0, 0.5])), (None, {"loss": [0.9, 0.4]})]      # a History or a plain dict
NOT_RUNS = st.one_of(st.just([]), st.just({"a": RUNS}), st.none(), st.integers(), st.text(max_size=2),
                     st.just([history(loss=[1.0])]), st.just([(None, history(loss=[1.0]), 3)]),
                     st.just([(None, 1.5)]))
NOT_VALUES = st.one_of(st.none(), st.floats(), st.text(max_size=3), st.lists(st.floats(allow_nan=False), max_size=1),
                       st.lists(st.floats(), min_size=2, max_size=4).filter(lambda v: not np.isfinite(v).all()),
                       st.just([[0.1, 0.2], [0.3, 0.4]]), st.just(["a", "b"]))

EYE8 = np.eye(8)
CONV_NET = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
BAD_IMAGES = st.one_of(st.just({"a": "abc"}), st.just({"a": np.zeros((0, 0))}), st.just({"a": np.zeros((3, 4, 4))}),
                       st.just({"a": np.full((4, 4), np.nan)}), st.just([EYE8]), st.just({}))
BAD_OPTIONS = st.one_of(st.just(()), st.none(), st.integers(), st.text(max_size=3), st.just((0.1, 0.1)),
                        st.just((float("nan"),)), st.just(("a",)), st.just((float("inf"),)))
CONV_FIELDS = {"input_size": 1, "kernel_size": 1, "padding": 0, "stride": 1, "dilation": 1}


def conv_setting(**kwargs):
    return W.ConvSetting(**{"input_size": 5, "kernel_size": 3, **kwargs})


def small_explorer():
    return W.kernel_explorer({"a": EYE8}, {"identity": W.CLASSIC_KERNELS["identity"]})


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
    # cnnbook.pytorch.twins
    ("lenet_torch", "num_classes", lambda v: TW.lenet_torch(num_classes=v), BAD_POSITIVE_INT),
    ("lenet_torch", "batch_norm", lambda v: TW.lenet_torch(batch_norm=v), BAD_BOOL),
    ("torch_state_dict", "model", TW.torch_state_dict, NOT_SCRATCH_MODULE),
    ("compare_with_torch", "model", lambda v: TW.compare_with_torch(v, TW.lenet_torch(), X28), NOT_SCRATCH_MODULE),
    ("compare_with_torch", "torch_model", lambda v: TW.compare_with_torch(SCRATCH_LENET, v, X28),
     st.one_of(st.none(), st.text(max_size=2), st.just(SCRATCH_LENET))),
    ("compare_with_torch", "torch_model", lambda v: TW.compare_with_torch(SCRATCH_LENET, v, X28),
     st.builds(TW.lenet_torch, st.integers(1, 9), st.booleans()) | st.builds(TW.lenet_torch, st.just(10), st.just(False))),
    ("compare_with_torch", "images", lambda v: TW.compare_with_torch(SCRATCH_LENET, TW.lenet_torch(), v),
     NOT_FLOAT_ARRAYS | NOT_4D | st.just(X28[:0])),
    ("compare_with_torch", "batch_size", lambda v: TW.compare_with_torch(SCRATCH_LENET, TW.lenet_torch(), X28,
                                                                         batch_size=v), BAD_POSITIVE_INT),
    # cnnbook.pytorch.experiments
    ("Setting", "make_model", lambda v: setting(make_model=v), NOT_CALLABLE | st.just(TINY_CNN)),
    ("Setting", "make_optimizer", lambda v: setting(make_optimizer=v),
     NOT_CALLABLE | st.just(torch.optim.SGD(TINY_CNN.parameters(), lr=0.1))),
    ("Setting", "epochs", lambda v: setting(epochs=v), BAD_POSITIVE_INT),
    ("Setting", "batch_size", lambda v: setting(batch_size=v), BAD_POSITIVE_INT),
    ("Setting", "scheduler_step", lambda v: setting(scheduler_step=v), st.text(max_size=6).filter(
        lambda v: v not in ("epoch", "batch")) | st.none()),
    ("Setting", "callbacks", lambda v: setting(callbacks=v), st.just([]) | st.integers() | st.text(min_size=1)),
    ("Setting", "transform", lambda v: setting(transform=v), st.integers() | st.text(min_size=1)),
    ("run_settings", "settings", lambda v: run(settings=v),
     st.one_of(st.just({}), st.just([setting()]), st.none(), st.dictionaries(st.text(max_size=2), st.integers(),
                                                                            min_size=1, max_size=2))),
    ("run_settings", "x", lambda v: run(x=v), NOT_TENSOR | st.just(IMGS[:0]) | st.just(IMGS[0])),
    ("run_settings", "val", lambda v: run(val=v),
     st.one_of(st.just(IMGS), st.none(), st.just((IMGS,)), st.just((IMGS, TARGETS[:2])), st.just((IMGS[:0], TARGETS[:0])),
               st.tuples(NOT_TENSOR, st.just(TARGETS)))),
    ("run_settings", "seeds", lambda v: run(seeds=v),
     st.one_of(st.integers(), st.text(max_size=3), st.just(()), st.lists(st.floats() | st.text(max_size=1),
                                                                        min_size=1, max_size=3), st.none())),
    ("final", "runs", lambda v: X.final(v, "loss"), NOT_RUNS),
    ("final", "key", lambda v: X.final(RUNS, v), st.text(max_size=5).filter(lambda k: k != "loss") | st.integers()),
    ("curves", "runs", lambda v: X.curves(v, "loss"), NOT_RUNS),
    ("curves", "key", lambda v: X.curves(RUNS, v), st.text(max_size=5).filter(lambda k: k != "loss")),
    ("mean_std", "values", X.mean_std, NOT_VALUES),
    ("effect", "values", lambda v: X.effect(v, [0.5, 0.6]), NOT_VALUES),
    ("effect", "baseline", lambda v: X.effect([0.5, 0.6], v), NOT_VALUES),
    ("predict_tta", "model", lambda v: X.predict_tta(v, IMGS), NOT_CALLABLE | st.just(SCRATCH_LENET)),
    ("predict_tta", "x", lambda v: X.predict_tta(TINY_CNN, v), NOT_TENSOR | st.just(IMGS[0])),
    ("predict_tta", "shifts", lambda v: X.predict_tta(TINY_CNN, IMGS, shifts=v),
     st.one_of(st.just(()), st.tuples(st.integers(), st.integers()), st.lists(st.tuples(st.floats(), st.integers()),
                                                                             min_size=1, max_size=2),
               st.lists(st.tuples(st.integers(-2, 2)), min_size=1, max_size=2), st.none(), st.text(max_size=2))),
    ("predict_tta", "fill", lambda v: X.predict_tta(TINY_CNN, IMGS, fill=v), st.text(max_size=2) | st.none()),
    ("predict_tta", "hflip", lambda v: X.predict_tta(TINY_CNN, IMGS, hflip=v), BAD_BOOL),
    # cnnbook.book.glue
    ("glue", "name", lambda v: glue(v, 1, display=False), st.one_of(st.just(""), st.integers(), st.none())),
    ("glue", "display", lambda v: glue("answer", 1, display=v), BAD_BOOL),
    # cnnbook.book.widgets
    ("kernel_explorer", "images", W.kernel_explorer, BAD_IMAGES),
    ("kernel_explorer", "kernels", lambda v: W.kernel_explorer({"a": EYE8}, v),
     st.one_of(st.just({}), st.just([[1]]), st.integers(1), st.just("identity"))),
    ("kernel_explorer", "kernel", lambda v: W.kernel_explorer({"a": EYE8}, {"k": v}),   # "kernel 'k' must be"
     st.one_of(st.text(max_size=3), st.just(np.ones((2, 2))), st.just(np.full((3, 3), np.inf)), st.none())),
    *[("ConvSetting", name, lambda v, name=name: conv_setting(**{name: v}),
       st.integers(max_value=low - 1) | st.floats() | st.text(max_size=2) | st.booleans() | st.none())
      for name, low in CONV_FIELDS.items()],
    ("conv_frame", "setting", lambda v: W.conv_frame(v, 0), st.one_of(st.none(), st.text(max_size=2),
                                                                      st.just({"input_size": 5}))),
    ("conv_frame", "step", lambda v: W.conv_frame(conv_setting(), v), BAD_NONNEGATIVE_INT),
    ("conv_arithmetic", "presets", W.conv_arithmetic, st.one_of(st.just(()), st.integers(), st.none(),
                                                               st.just(conv_setting()), st.just([{"input_size": 5}]))),
    ("pool_frame", "image", lambda v: W.pool_frame(v, "max", 2, 0),
     st.one_of(st.text(min_size=1, max_size=2), st.just(np.zeros((2, 4, 4))), st.just(np.full((4, 4), np.nan)))),
    ("pool_frame", "mode", lambda v: W.pool_frame(EYE8, v, 2, 0), st.text(max_size=4).filter(
        lambda m: m not in ("max", "avg")) | st.none()),
    ("pool_frame", "kernel_size", lambda v: W.pool_frame(EYE8, "max", v, 0), BAD_POSITIVE_INT),
    ("pool_frame", "shift", lambda v: W.pool_frame(EYE8, "max", 2, v), BAD_NONNEGATIVE_INT),
    ("pool_frame", "stride", lambda v: W.pool_frame(EYE8, "max", 2, 0, stride=v),
     BAD_POSITIVE_INT.filter(lambda v: v is not None)),
    ("pooling_explorer", "images", W.pooling_explorer, BAD_IMAGES),
    ("pooling_explorer", "kernel_sizes", lambda v: W.pooling_explorer({"a": EYE8}, kernel_sizes=v),
     st.one_of(st.just(()), st.integers(), st.none(), st.lists(BAD_POSITIVE_INT, min_size=1, max_size=2))),
    ("pooling_explorer", "shifts", lambda v: W.pooling_explorer({"a": EYE8}, shifts=v),
     st.one_of(st.just(()), st.integers(), st.none(), st.lists(BAD_NONNEGATIVE_INT, min_size=1, max_size=2))),
    ("activation_explorer", "names", lambda v: W.activation_explorer(names=v),
     st.one_of(st.just(()), st.just("relu"), st.none(), st.lists(st.text(max_size=4), min_size=1, max_size=2))),
    ("activation_explorer", "points", lambda v: W.activation_explorer(points=v), BAD_OPTIONS),
    ("activation_explorer", "negative_slope", lambda v: W.activation_explorer(negative_slope=v),
     st.one_of(st.sampled_from([NAN, INF, -INF]), st.text(max_size=2), st.none(), st.booleans())),
    ("activation_and_derivative", "activation", lambda v: W.activation_and_derivative(v, np.zeros(2)),
     st.text(max_size=5).filter(lambda n: n not in W.ACTIVATIONS)),
    ("activation_and_derivative", "x", lambda v: W.activation_and_derivative("relu", v),
     st.one_of(st.text(min_size=1, max_size=2), st.just({"x": 1}))),
    ("activation_frame", "x0", lambda v: W.activation_frame("relu", v), st.text(max_size=2) | st.none()),
    ("optimizer_race", "lrs", lambda v: W.optimizer_race(lrs=v), BAD_OPTIONS | st.just((-0.1,)) | st.just((0,))),
    ("optimizer_race", "momenta", lambda v: W.optimizer_race(momenta=v), BAD_OPTIONS | st.just((1.0,))),
    ("optimizer_race", "steps", lambda v: W.optimizer_race(steps=v), BAD_POSITIVE_INT),
    ("optimizer_paths", "lr", lambda v: W.optimizer_paths(v, 0.9), BAD_NONNEGATIVE_NUMBER | st.just(INF)),
    ("optimizer_paths", "momentum", lambda v: W.optimizer_paths(0.1, v),
     BAD_NONNEGATIVE_NUMBER | st.floats(min_value=1.0)),
    ("optimizer_paths", "start", lambda v: W.optimizer_paths(0.1, 0.9, start=v),
     st.one_of(st.floats(), st.tuples(st.floats()), st.just((1, 2, 3)), st.just((NAN, 0.0)), st.text(max_size=2))),
    ("optimizer_paths", "steps", lambda v: W.optimizer_paths(0.1, 0.9, steps=v), BAD_NONNEGATIVE_INT),
    ("loss_surface_gradient", "w", W.loss_surface_gradient,
     st.one_of(st.floats(), st.just((1.0, 2.0, 3.0)), st.just((INF, 0.0)), st.none(), st.text(max_size=2))),
    ("feature_map_browser", "model", lambda v: W.feature_map_browser(v, torch.zeros(1, 8, 8), ["0"]),
     NOT_CALLABLE | st.just(SCRATCH_LENET)),
    ("feature_map_browser", "layers", lambda v: W.feature_map_browser(CONV_NET, torch.zeros(1, 8, 8), v),
     st.one_of(st.just([]), st.just("0"), st.just("conv1"), st.none(), st.just(["7"]))),
    ("feature_map_browser", "image", lambda v: W.feature_map_browser(CONV_NET, v, ["0"]),
     st.one_of(st.text(min_size=1, max_size=2), st.just(torch.zeros(0, 1, 8, 8)), st.just(torch.zeros(8, 8)),
               st.just(torch.zeros(3, 8, 8)))),
    ("feature_map_browser", "channels", lambda v: W.feature_map_browser(CONV_NET, torch.zeros(1, 8, 8), ["0"],
                                                                        channels=v), BAD_POSITIVE_INT),
    ("feature_maps", "model", lambda v: W.feature_maps(v, torch.zeros(1, 8, 8), ["0"]), NOT_CALLABLE),
    ("feature_maps", "layers", lambda v: W.feature_maps(CONV_NET, torch.zeros(1, 8, 8), v),
     st.one_of(st.just([]), st.just("0"), st.none(), st.just(["7"]))),
    ("feature_maps", "image", lambda v: W.feature_maps(CONV_NET, v, ["0"]),
     st.one_of(st.text(min_size=1, max_size=2), st.just(torch.zeros(0, 1, 8, 8)), st.just(torch.zeros(2, 8, 8)))),
    ("sample_photograph", "size", W.sample_photograph, st.integers(max_value=7) | st.floats() | st.booleans()),
]


@pytest.mark.parametrize("fn, arg, call, bad", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
@given(data=st.data())
def test_bad_argument_is_refused_naming_function_and_argument(fn, arg, call, bad, data):
    assert_refused(call, data.draw(bad), f"{fn}:", arg)


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


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=8),
       baseline=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=8))
def test_mean_std_and_effect_are_the_sample_statistics(values, baseline):
    mean, std = X.mean_std(values)
    assert mean == pytest.approx(statistics.fmean(values), rel=1e-9, abs=1e-6)
    assert std == pytest.approx(statistics.stdev(values), rel=1e-7, abs=1e-6)
    e = X.effect(values, baseline)
    spread = max(statistics.stdev(values), statistics.stdev(baseline))
    assert e["diff"] == pytest.approx(statistics.fmean(values) - statistics.fmean(baseline), rel=1e-9, abs=1e-6)
    assert e["spread"] == pytest.approx(spread, rel=1e-7, abs=1e-6)
    if abs(abs(e["diff"]) - 2 * spread) > 1e-6 * (1 + spread):        # away from the boundary
        assert e["clear"] == (abs(e["diff"]) > 2 * spread)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), n_runs=st.integers(1, 4), epochs=st.integers(1, 5))
def test_final_and_curves_read_every_run(data, n_runs, epochs):
    rows = [data.draw(st.lists(st.floats(allow_nan=False), min_size=epochs, max_size=epochs)) for _ in range(n_runs)]
    runs = [(None, history(val_loss=row) if i % 2 else {"val_loss": row}) for i, row in enumerate(rows)]
    assert X.final(runs, "val_loss") == [row[-1] for row in rows]
    np.testing.assert_array_equal(X.curves(runs, "val_loss"), np.array(rows))


def shifted(x, dy, dx, fill):
    """The reference shift: torch.roll, then ``fill`` where the roll wrapped around."""
    h, w = x.shape[-2:]
    rows, cols = torch.arange(h) - dy, torch.arange(w) - dx
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None]
    return torch.where(inside, torch.roll(x, (dy, dx), dims=(2, 3)), torch.tensor(fill))


@settings(max_examples=20, deadline=None)
@given(shifts=st.lists(st.tuples(st.integers(-7, 7), st.integers(-7, 7)), min_size=1, max_size=4),
       hflip=st.booleans(), fill=st.floats(-3, 3), n=st.integers(1, 4), seed=st.integers(0, 99))
def test_predict_tta_averages_the_softmax_of_every_view(shifts, hflip, fill, n, seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Dropout(0.5), torch.nn.Flatten(),
                                torch.nn.Linear(72, 3)).train()
    x = torch.randn(n, 1, 6, 6)
    views = [shifted(x, dy, dx, fill) for dy, dx in shifts]
    views += [v.flip(-1) for v in views] if hflip else []
    with torch.no_grad():
        expected = torch.stack([model.eval()(v).softmax(1) for v in views]).mean(0)
    model.train()
    torch.testing.assert_close(X.predict_tta(model, x, shifts=shifts, fill=fill, hflip=hflip), expected)
    assert model.training


@pytest.mark.parametrize("kwargs, arg", [(dict(keys=[]), "keys"), (dict(keys=(0, 0)), "keys"), (dict(keys=None), "keys"),
                                         (dict(keys=[(0, 0)], ncols=0), "ncols"),
                                         (dict(keys=[(0, 0)], ncols=1.5), "ncols")])
def test_explorer_figure_refuses_bad_keys_and_columns(kwargs, arg):
    with pytest.raises((TypeError, ValueError), match=rf"^KernelExplorer.figure: .*\b{arg}\b"):
        small_explorer().figure(**kwargs)


def test_widget_sliders_cover_the_values_of_the_precomputed_pictures():
    # before: the live sliders clamped a value outside their range, and showed another
    # setting than the precomputed pictures (a leaky ReLU slope of 0.8 as 0.5, 400 steps as 300)
    slope = W.activation_explorer(names=("leaky_relu",), points=(0,), negative_slope=0.8).live_controls["negative_slope"]
    assert slope.value == 0.8
    steps = W.optimizer_race(lrs=(0.1,), momenta=(0.9,), steps=400).live_controls["steps"]
    assert steps.value == 400


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 9), k=st.integers(1, 5), p=st.integers(0, 3), s=st.integers(1, 3), d=st.integers(1, 3),
       step=st.integers(0, 100))
def test_conv_frame_equals_torch_conv2d_and_its_window(n, k, p, s, d, step):
    setting = W.ConvSetting(n, k, padding=p, stride=s, dilation=d)
    if setting.output_size < 1:
        with pytest.raises(ValueError, match=r"conv_arithmetic: .* gives output size"):
            W.conv_frame(setting, step)
        return
    frame = W.conv_frame(setting, step)
    expected = torch.nn.functional.conv2d(torch.tensor(frame.input)[None, None], torch.tensor(frame.kernel)[None, None],
                                          padding=p, stride=s, dilation=d)[0, 0]
    np.testing.assert_allclose(frame.output, expected.numpy(), atol=1e-12)
    padded = np.pad(frame.input, p)
    i, j = divmod(frame.step, setting.output_size)
    window = np.array([padded[r, c] for r, c in frame.window]).reshape(k, k)
    assert frame.output[i, j] == pytest.approx((window * frame.kernel).sum())


@settings(max_examples=30, deadline=None)
@given(image=hnp.arrays(np.float64, st.tuples(st.integers(4, 9), st.integers(4, 9)), elements=st.floats(-5, 5)),
       mode=st.sampled_from(["max", "avg"]), k=st.integers(1, 4), shift=st.integers(0, 12), stride=st.integers(1, 3))
def test_pool_frame_equals_torch_pooling_of_the_shifted_image(image, mode, k, shift, stride):
    frame = W.pool_frame(image, mode, k, shift, stride=stride)
    shifted = np.zeros_like(image)
    shifted[:, shift:] = image[:, :max(image.shape[1] - shift, 0)]
    pool = torch.nn.functional.max_pool2d if mode == "max" else torch.nn.functional.avg_pool2d
    np.testing.assert_array_equal(frame.input, shifted)
    np.testing.assert_allclose(frame.output, pool(torch.tensor(shifted)[None, None], k, stride)[0, 0].numpy(), atol=1e-12)
    np.testing.assert_allclose(frame.reference, pool(torch.tensor(image)[None, None], k, stride)[0, 0].numpy(),
                               atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(w=st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)))
def test_loss_surface_gradient_equals_torch_autograd(w):
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    (wt[0] ** 2 / 20 + wt[1] ** 2).backward()                 # the bowl of loss_surface
    assert W.loss_surface(*w) == pytest.approx(w[0] ** 2 / 20 + w[1] ** 2)
    np.testing.assert_allclose(W.loss_surface_gradient(w), wt.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# cnnbook.scratch.checks: the shared checks themselves
# ---------------------------------------------------------------------------------------
def _poisoned(case):
    """A finite array with one entry replaced by NaN or +-inf (drawn directly: filtering rarely finds one)."""
    array, value, index = case
    array = array.copy()
    array.flat[index % array.size] = value
    return array


CHECKS = [
    ("as_int", "arg", lambda v: checks.as_int("f", "arg", v, 1), BAD_POSITIVE_INT.filter(lambda v: v is not None) | st.none()),
    ("as_pair", "arg", lambda v: checks.as_pair("f", "arg", v, 1),
     st.one_of(BAD_POSITIVE_INT, st.tuples(st.integers(1, 3)), st.tuples(st.integers(max_value=0), st.integers(1, 3)),
               st.tuples(st.integers(1, 3), st.floats()), st.tuples(*[st.integers(1, 3)] * 3))),
    ("check_number", "arg", lambda v: checks.check_number("f", "arg", v, 0.0, 1.0, high_open=True),
     st.one_of(st.floats().filter(lambda v: not 0 <= v < 1), st.booleans(), st.text(max_size=2), st.none())),
    ("check_bool", "arg", lambda v: checks.check_bool("f", "arg", v), BAD_BOOL),
    ("check_float_dtype", "dtype", lambda v: checks.check_float_dtype("f", v),
     st.sampled_from([np.int64, np.uint8, "int32", np.complex128, np.bool_, "abc"])),
    ("check_generator", "generator", lambda v: checks.check_generator("f", v), NOT_GENERATOR),
    ("check_array", "arg", lambda v: checks.check_array("f", "arg", v, (4,)), NOT_FLOAT_ARRAYS | NOT_4D),
    ("check_finite", "arg", lambda v: checks.check_finite("f", "arg", v),
     st.tuples(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=3), elements=st.floats(-1e3, 1e3)),
               st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 26)).map(_poisoned)),
    ("check_grad_output", "grad_output", lambda v: checks.check_grad_output("f", v, (2, 3), np.float64),
     NOT_FLOAT_ARRAYS | hnp.arrays(np.float64, hnp.array_shapes(max_dims=3).filter(lambda s: s != (2, 3)))
     | st.just(np.zeros((2, 3), np.float32))),
    ("check_reduction", "reduction", lambda v: checks.check_reduction("f", v), st.text(max_size=5).filter(
        lambda r: r not in checks.REDUCTIONS) | st.none()),
]


@pytest.mark.parametrize("name, arg, call, bad", CHECKS, ids=[c[0] for c in CHECKS])
@given(data=st.data())
def test_shared_checks_name_the_function_and_argument_they_are_given(name, arg, call, bad, data):
    with pytest.raises((TypeError, ValueError)) as error:
        call(data.draw(bad))
    message = str(error.value)                  # "f" is the function the caller names, "arg" its argument
    assert message.startswith("f: ") and re.search(rf"\b{arg}\b", message), message


@given(value=st.integers(1, 10**6) | st.tuples(st.integers(1, 9), st.integers(1, 9)),
       number=st.floats(0, 1, exclude_max=True), flag=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64, "float32", None]))
def test_shared_checks_pass_valid_values_through(value, number, flag, dtype):
    pair = checks.as_pair("f", "arg", value, 1)
    assert pair == ((value, value) if isinstance(value, int) else value) and all(type(v) is int for v in pair)
    checks.check_number("f", "arg", number, 0.0, 1.0, high_open=True)
    checks.check_bool("f", "arg", flag)
    assert checks.check_float_dtype("f", dtype) in (np.dtype(np.float32), np.dtype(np.float64))


@settings(max_examples=40, deadline=None)
@given(size=st.tuples(st.integers(1, 9), st.integers(1, 9)), kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), ceil_mode=st.booleans())
def test_output_size_equals_torch_pooling_and_convolution(size, kernel, stride, padding, dilation, ceil_mode):
    x = torch.zeros(1, 1, *size)
    pads = (padding[0], padding[0], padding[1], padding[1])
    try:
        ours = checks.output_size("f", size, kernel, stride, pads, dilation, ceil_mode)
    except ValueError as error:
        assert str(error).startswith("f: kernel") and "larger than the padded input" in str(error)
        with pytest.raises(RuntimeError):
            torch.nn.functional.conv2d(x, torch.zeros(1, 1, *kernel), stride=stride, padding=padding, dilation=dilation)
        return
    if not ceil_mode:
        conv = torch.nn.functional.conv2d(x, torch.zeros(1, 1, *kernel), stride=stride, padding=padding,
                                          dilation=dilation)
        assert ours == tuple(conv.shape[2:])
    if all(2 * p <= k for p, k in zip(padding, kernel)):        # torch's pooling asks for this
        pool = torch.nn.functional.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        assert ours == tuple(pool.shape[2:])
