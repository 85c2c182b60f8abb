"""Robustness of the PyTorch tools: bad input raises a TypeError/ValueError that names the function and
the argument; valid input, drawn by hypothesis, matches torch and scikit-learn."""
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn import metrics as skm
from torch import nn

from cnnbook.pytorch import augment as A
from cnnbook.pytorch import callbacks as CB
from cnnbook.pytorch import checkpoint as CK
from cnnbook.pytorch import classifier as C
from cnnbook.pytorch import explain as E
from cnnbook.pytorch import history as H
from cnnbook.pytorch import keras_like as K
from cnnbook.pytorch import metrics as M
from cnnbook.pytorch import models as Mo
from cnnbook.pytorch import plots as P
from cnnbook.pytorch import runs as R
from cnnbook.pytorch import train as T
from cnnbook.pytorch import utils as U
from cnnbook.pytorch.loader import TensorLoader
from conftest import assert_refused



pytestmark = pytest.mark.usefixtures("one_torch_thread")


NET = nn.Linear(4, 3)
OPT = torch.optim.SGD(NET.parameters(), lr=0.1)
X, Y = torch.randn(8, 4), torch.arange(8) % 3
LOADER = TensorLoader(X, Y, batch_size=4)
IMGS = torch.zeros(2, 1, 4, 4)
CE = nn.CrossEntropyLoss()

# (call, exception, message): each message names the function and the argument at fault.
BAD_INPUTS = [
    (lambda: U.seed_everything("0"), TypeError, r"seed_everything: seed must be an int, got str"),
    (lambda: U.pick_device("tpu"), ValueError, r"pick_device: prefer must be one of"),
    (lambda: U.eval_mode("net").__enter__(), TypeError, r"eval_mode: model must be a torch.nn.Module, got str"),
    (lambda: U.format_table(["a", "b"], [[1]]), ValueError, r"format_table: row 0 has 1 cells for 2 columns"),
    (lambda: U.format_table(["a"], [[1]], align="c"), ValueError, r"format_table: align must be one 'l' or 'r'"),
    (lambda: A.shift_images(np.zeros((1, 1, 2, 2)), 1, 0), TypeError, r"shift_images: x must be a torch.Tensor"),
    (lambda: A.shift_images(torch.zeros(2, 2), 1, 0), ValueError, r"shift_images: x must be a batch \(N, C, H, W\)"),
    (lambda: A.random_shift_flip(IMGS, max_shift=1.5), ValueError, r"random_shift_flip: max_shift must be an int"),
    (lambda: A.random_shift_flip(IMGS, hflip_p=-0.1), ValueError, r"random_shift_flip: hflip_p must be a probability"),
    (lambda: A.tta_views(IMGS, shift=0.5), ValueError, r"tta_views: shift must be an int >= 0, got 0.5"),
    (lambda: A.random_affine(torch.zeros(4, 4)), ValueError, r"random_affine: x must be a batch"),
    (lambda: A.random_affine(IMGS, translate=(0.1,)), ValueError, r"random_affine: translate and scale must be pairs"),
    (lambda: TensorLoader(X, [0, 1]), TypeError, r"TensorLoader: tensors must be torch.Tensors, got \['list'\]"),
    (lambda: TensorLoader(X, batch_size=2.0), ValueError, r"TensorLoader: batch_size must be a positive int, got 2.0"),
    (lambda: TensorLoader(X, transform="flip"), TypeError, r"TensorLoader: transform must be callable, got str"),
    (lambda: H.resolve_mode("up", "loss", "EarlyStopping"), ValueError, r"EarlyStopping: mode must be 'auto', 'min' or 'max'"),
    (lambda: H.metric_fns(["auc"], "evaluate"), ValueError, r"evaluate: unknown metric 'auc'"),
    (lambda: H.History()["val_loss"], KeyError, r"History: no 'val_loss'"),
    (lambda: CB.EarlyStopping(patience=-1), ValueError, r"EarlyStopping: patience must be an int >= 0, got -1"),
    (lambda: CB.EarlyStopping(mode="best"), ValueError, r"EarlyStopping: mode must be"),
    (lambda: CB.ReduceLROnPlateau(factor=1.0), ValueError, r"ReduceLROnPlateau: factor must be in \(0, 1\)"),
    (lambda: CB.ModelCheckpoint("x.pt", mode="up"), ValueError, r"ModelCheckpoint: mode must be"),
    (lambda: CK.save_weights({"w": 1}, "x.pt"), TypeError, r"save_weights: model must be a torch.nn.Module, got dict"),
    (lambda: CK.load_weights(NET.state_dict(), "x.pt"), TypeError, r"load_weights: model must be a torch.nn.Module"),
    (lambda: T.fit("net", LOADER, OPT, CE, 1), TypeError, r"fit: model must be a torch.nn.Module, got str"),
    (lambda: T.fit(NET, LOADER, NET.parameters(), CE, 1), TypeError, r"fit: optimizer must be a torch.optim.Optimizer"),
    (lambda: T.fit(NET, LOADER, OPT, "ce", 1), TypeError, r"fit: loss_fn must be callable"),
    (lambda: T.fit(NET, LOADER, OPT, CE, 1.5), ValueError, r"fit: epochs must be a positive int, got 1.5"),
    (lambda: T.fit(NET, LOADER, OPT, CE, 1, progress="bar", device="cpu"), ValueError, r"fit: progress must be"),
    (lambda: T.fit(NET, LOADER, OPT, CE, 1, amp_dtype="half16", progress=False, device="cpu"), ValueError,
     r"fit: amp_dtype must be None, a torch.dtype or its name"),
    (lambda: T.evaluate(NET.state_dict(), LOADER), TypeError, r"evaluate: model must be a torch.nn.Module"),
    (lambda: T.evaluate(NET, []), ValueError, r"evaluate: loader yielded no batches"),
    (lambda: T.fit(NET, LOADER, OPT, CE, 1, val_loader=[], progress=False, device="cpu"), ValueError,
     r"evaluate: loader yielded no batches"),
    (lambda: T.predict(NET, X, batch_size=0), ValueError, r"predict: batch_size must be a positive int, got 0"),
    (lambda: T.predict(NET, X, views=[X]), TypeError, r"predict: views must be a callable"),
    (lambda: T.predict(NET, X[:0]), ValueError, r"predict: inputs hold no samples"),
    (lambda: R.fit_seeds(NET, lambda: LOADER, lambda p: OPT, 1), TypeError, r"fit_seeds: make_model must be a function that builds a fresh model"),
    (lambda: R.summarize_runs([1, 2]), TypeError, r"summarize_runs: results must be a mapping"),
    (lambda: K.Model(NET.state_dict()), TypeError, r"Model: net must be a torch.nn.Module, got OrderedDict"),
    (lambda: K.Model(NET, device="cpu").compile(optimizer="lbfgs"), ValueError, r"Model.compile: optimizer must be one of"),
    (lambda: K.Model(NET, device="cpu").compile(loss="hinge"), ValueError, r"Model.compile: loss must be one of"),
    (lambda: K.Model(NET, device="cpu").compile(metrics=["auc"]), ValueError, r"Model.compile: unknown metric 'auc'"),
    (lambda: M.confusion_matrix([0, 1], [0, 1], num_classes=1), ValueError, r"confusion_matrix: y_true holds labels outside \[0, 1\)"),
    (lambda: M.accuracy([[0, 1]], [0, 1]), ValueError, r"accuracy: y_true must be 1-D class indices"),
    (lambda: M.precision(["a"], ["a"]), TypeError, r"precision: y_true must hold integer class indices"),
    (lambda: M.recall([0, 1], [0, 1], num_classes=0), ValueError, r"recall: num_classes must be a positive int, got 0"),
    (lambda: M.f1_score([0, 1], [0, 1], labels=[-1]), ValueError, r"f1_score: labels must be distinct class indices >= 0"),
    (lambda: M.precision_from_cm(np.zeros((2, 3))), ValueError, r"precision_from_cm: cm must be a square \(C, C\)"),
    (lambda: M.recall_from_cm(np.eye(2), average="mean"), ValueError, r"recall_from_cm: average must be one of"),
    (lambda: M.classification_report([0, 1], [0, 1], class_names=["a"], num_classes=2), ValueError,
     r"classification_report: got 1 class_names for 2 classes"),
    (lambda: Mo.LeNet(num_classes=0), ValueError, r"LeNet: num_classes must be a positive int, got 0"),
    (lambda: Mo.ResNetStyle(stages=()), ValueError, r"ResNetStyle: stages must list at least one channel count"),
    (lambda: Mo.summary(NET, (4,)), ValueError, r"summary: input_size must be \(N, C, H, W\) or \(C, H, W\)"),
    (lambda: Mo.init_weights(NET, "he"), ValueError, r"init_weights: scheme must be one of"),
    (lambda: E.saliency(Mo.LeNet(), torch.zeros(1, 28, 28)), ValueError, r"saliency: images must be a batch \(N, C, H, W\)"),
    (lambda: E.saliency(Mo.LeNet(), torch.zeros(2, 1, 28, 28), target=[1, 2, 3]), ValueError,
     r"saliency: target has 3 entries for 2 images"),
    (lambda: E.grad_cam(Mo.LeNet(), torch.zeros(1, 1, 28, 28), nn.ReLU()), ValueError,
     r"grad_cam: layer ReLU is not a submodule of the model"),
    (lambda: P.image_grid(IMGS, titles=["a"]), ValueError, r"image_grid: got 1 titles for 2 images"),
    (lambda: P.image_grid(IMGS, ncols=0), ValueError, r"image_grid: ncols must be a positive int, got 0"),
    (lambda: P.show_images(torch.zeros(2, 2)), ValueError, r"image_grid: images must be \(N, C, H, W\)"),
    (lambda: P.show_predictions(IMGS, [0], torch.ones(2, 2) / 2, ["a", "b"]), ValueError,
     r"show_predictions: got 2 images, 1 labels and 2 rows of probabilities"),
    (lambda: P.plot_confusion_matrix(np.zeros(3)), ValueError, r"plot_confusion_matrix: cm must be square"),
    (lambda: P.plot_history({"loss": [1.0]}, metrics=("f1",)), ValueError, r"plot_history: no \['f1'\] in the history"),
    (lambda: C.most_confused_pairs(np.zeros((2, 2)), k=-1), ValueError, r"most_confused_pairs: k must be an int >= 0"),
    (lambda: C.most_confused_pairs(-np.ones((2, 2))), ValueError, r"most_confused_pairs: cm holds negative counts"),
    (lambda: C.most_confused_pairs(np.ones((2, 2)), ["a"]), ValueError, r"most_confused_pairs: got 1 class_names for 2"),
]


# Inputs that each public function used to accept silently (a wrong or empty answer) or to crash on
# deep inside numpy/torch/matplotlib (IndexError, AttributeError, RuntimeError...).
CONV = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
BAD_BEFORE = [
    # silently wrong: pixels shifted in from the wrong place, fractions truncated, NaN images
    (lambda: A.shift_images(torch.arange(16.).view(1, 1, 4, 4), torch.tensor([2]), torch.tensor([0]), pad=1),
     ValueError, r"shift_images: pad must be an int >= the largest shift 2, got 1"),
    (lambda: A.shift_images(IMGS, torch.tensor([0.5, 0.5]), 0), TypeError,
     r"shift_images: dy must be an int or an integer tensor of 2 shifts"),
    (lambda: A.shift_images(IMGS, torch.tensor([1, 2, 3]), 0), TypeError, r"shift_images: dy must be .* of 2 shifts"),
    (lambda: A.shift_images(IMGS, 1, 0, pad=-1), ValueError, r"shift_images: pad must be an int >= the largest shift 1"),
    (lambda: A.random_affine(IMGS, degrees=float("nan")), ValueError, r"random_affine: degrees must be a finite number"),
    (lambda: A.random_affine(IMGS, scale=(1.0, float("inf"))), ValueError, r"random_affine: scale\[1\] must be a finite"),
    (lambda: A.random_affine(IMGS, hflip_p=2.0), ValueError, r"random_affine: hflip_p must be a probability"),
    (lambda: A.RandomShiftFlip(max_shift=-1), ValueError, r"RandomShiftFlip: max_shift must be an int >= 0, got -1"),
    (lambda: A.BatchRandomAffine(scale=(0, 1)), ValueError, r"BatchRandomAffine: translate and scale must be pairs"),
    (lambda: A.tta_views(IMGS, flip="no"), TypeError, r"tta_views: flip must be True or False, got 'no'"),
    (lambda: TensorLoader(X, Y, shuffle="no"), TypeError, r"TensorLoader: shuffle must be True or False, got 'no'"),
    (lambda: list(TensorLoader(X, Y, sampler=[0, 100])), ValueError,
     r"TensorLoader: sampler yielded indices in \[0, 100\] for 8 samples"),
    (lambda: TensorLoader(X, device="tpu"), ValueError, r"TensorLoader: device 'tpu' is not a device here"),
    (lambda: TensorLoader(X, shuffle=True, generator=0), TypeError, r"TensorLoader: generator must be a torch.Generator"),
    (lambda: M.confusion_matrix([], [], num_classes=0), ValueError, r"confusion_matrix: num_classes must be a positive int"),
    (lambda: M.confusion_matrix([0, 1], [0, 1], num_classes=2.5), ValueError, r"confusion_matrix: num_classes must be"),
    (lambda: M.confusion_matrix([10 ** 12], [0]), ValueError, r"confusion_matrix: the largest label is 1000000000000"),
    (lambda: M.precision([0, 1], [0, 1], num_classes=True), ValueError, r"precision: num_classes must be a positive int"),
    (lambda: M.precision([0, 1], [1, 1], zero_division="x"), TypeError, r"precision: zero_division must be a number"),
    (lambda: M.accuracy_from_cm(-np.eye(2)), ValueError, r"accuracy_from_cm: cm must hold finite counts >= 0"),
    (lambda: M.recall_from_cm(np.full((2, 2), np.nan)), ValueError, r"recall_from_cm: cm must hold finite counts"),
    (lambda: M.classification_report([0, 1], [0, 1], class_names="ab"), TypeError,
     r"classification_report: class_names must be a sequence of names"),
    (lambda: M.classification_report([0, 1], [0, 1], digits=-1), ValueError, r"classification_report: digits must be"),
    (lambda: P.image_grid(np.zeros((0, 4, 4))), ValueError, r"image_grid: images hold no image"),
    (lambda: P.image_grid(np.zeros((2, 4, 4)), titles="ab"), TypeError, r"image_grid: titles must be a sequence"),
    (lambda: P.image_grid(np.zeros((2, 4, 4)), ncols=True), ValueError, r"image_grid: ncols must be a positive int"),
    (lambda: P.show_images(np.zeros((2, 4, 4)), predictions=[0, 1]), ValueError,
     r"show_images: predictions need labels"),
    (lambda: P.show_images(np.zeros((2, 4, 4)), labels=[0, 5], class_names=["a"]), ValueError,
     r"show_images: labels must be class indices in \[0, 1\)"),
    (lambda: P.show_predictions(np.zeros((2, 4, 4)), [0, 1], np.ones((2, 3)) / 3, ["a", "b"]), ValueError,
     r"show_predictions: class_names must name the 3 classes of probs, got 2"),
    (lambda: P.show_predictions(np.zeros((2, 4, 4)), [0, 1], np.ones(2), ["a", "b"]), ValueError,
     r"show_predictions: probs must be a non-empty 2-D array"),
    (lambda: P.plot_history({"loss": [1.0], "accuracy": [1.0]}, axes=[plt.subplots()[1]]), ValueError,
     r"plot_history: got 1 axes for 2 metrics"),
    (lambda: P.plot_history({"loss": [1.0]}, metrics="loss"), TypeError, r"plot_history: metrics must be a non-empty"),
    (lambda: P.plot_curves({}), TypeError, r"plot_curves: curves must be a non-empty dict"),
    (lambda: P.plot_curves({"a": []}), ValueError, r"plot_curves: curves\['a'\] must be a non-empty"),
    (lambda: P.plot_curves({"a": [[1.0, 2.0], [1.0]]}), TypeError, r"plot_curves: curves\['a'\] must be an array"),
    (lambda: P.plot_comparison({"a": []}), ValueError, r"plot_comparison: results\['a'\] must be a non-empty 1-D"),
    (lambda: P.plot_confusion_matrix(np.eye(3), class_names=["a"]), ValueError,
     r"plot_confusion_matrix: got 1 class_names for 3 classes"),
    (lambda: P.plot_confusion_matrix(np.zeros((0, 0))), ValueError, r"plot_confusion_matrix: cm must be square"),
    (lambda: U.format_table("ab", [["1", "2"]]), TypeError, r"format_table: header must be a list of cells, got str"),
    (lambda: U.format_table(["a"], ["x"]), TypeError, r"format_table: row 0 must be a list of cells, got str"),
    (lambda: R.fit_seeds(lambda: NET, lambda: LOADER, lambda p: OPT, 1, seeds=()), ValueError,
     r"fit_seeds: seeds must be a non-empty sequence of ints"),
    (lambda: R.summarize_runs({"a": [1.0, 2.0]}), TypeError, r"summarize_runs: results must map each setting to a dict"),
    (lambda: R.summarize_runs({"a": {"x": [1.0]}}, digits=-1), ValueError, r"summarize_runs: digits must be an int"),
    (lambda: H.History().append(1, [1.0]), TypeError, r"History.append: logs must be a dict"),
    (lambda: H.metric_fns(3, "evaluate"), TypeError, r"evaluate: metrics must be a list of names"),
    (lambda: CB.EarlyStopping(monitor=3), TypeError, r"EarlyStopping: monitor must be the name of a log"),
    (lambda: CK.save_weights(NET, "."), ValueError, r"save_weights: path '.' is a folder"),
    (lambda: CK.load_weights(NET, 3), TypeError, r"load_weights: path must be a file name"),
    (lambda: K.Model(NET, device="tpu"), ValueError, r"Model: device must be a device name"),
    (lambda: K.Model(NET, device="cpu").compile().fit(X, verbose=0), ValueError, r"Model.fit: x is a tensor, so give"),
    (lambda: K.Model(NET, device="cpu").compile(learning_rate=-1), ValueError,
     r"Model.compile: learning_rate must be a finite number >= 0.0, got -1"),
    (lambda: K.Model(NET, device="cpu").compile().fit(X, Y, validation_data=[X, Y], verbose=0), TypeError,
     r"Model.fit: validation_data must be a tuple \(x_val, y_val\)"),
    (lambda: T.predict(NET, np.zeros((2, 4))), TypeError, r"predict: inputs must be a torch.Tensor or a loader"),
    (lambda: E.saliency(CONV, IMGS, target=7), ValueError, r"saliency: target must be class indices in \[0, 3\)"),
    (lambda: E.saliency(CONV, IMGS, target=1.5), TypeError, r"saliency: target must be a class index"),
    (lambda: E.saliency(CONV, IMGS.long()), TypeError, r"saliency: images must be floating point"),
    (lambda: E.saliency(CONV, np.zeros((2, 1, 4, 4))), TypeError, r"saliency: images must be a torch.Tensor"),
    (lambda: E.grad_cam("m", IMGS, CONV[1]), TypeError, r"grad_cam: model must be a torch.nn.Module, got str"),
    (lambda: E.grad_cam(CONV, IMGS, CONV[1], target=-1), ValueError, r"grad_cam: target must be class indices"),
    (lambda: E.show_explanations(np.zeros((2, 4, 4)), {"s": np.zeros((2, 5, 5))}), ValueError,
     r"show_explanations: maps\['s'\] must have the images' shape \(2, 4, 4\)"),
    (lambda: E.show_explanations(np.zeros((3, 4, 4)), {"s": np.zeros((3, 4, 4))}, titles=["a"]), ValueError,
     r"show_explanations: titles must give one title per image"),
    (lambda: C.predict_proba(CONV, np.zeros((2, 1, 4, 4)), tta=True), TypeError, r"predict_proba: x must be a torch"),
    (lambda: C.predict_proba(CONV, IMGS, tta="no"), TypeError, r"predict_proba: tta must be True or False"),
    (lambda: C.score_classifier(CONV, IMGS, torch.zeros(2), C.CONFIGS["cpu"]), ValueError,
     r"score_classifier: y must be 1-D integer class indices"),
    (lambda: C.score_classifier(CONV, IMGS, torch.zeros(2, dtype=torch.long), {"tta_shift": 1}), TypeError,
     r"score_classifier: config must be a ClassifierConfig"),
    (lambda: C.build_model(C.CONFIGS["cpu"], num_classes=0), ValueError, r"build_model: num_classes must be >= 1"),
    (lambda: C.make_optimizer("m", C.CONFIGS["cpu"], 10), TypeError, r"make_optimizer: model must be a torch.nn.Module"),
    (lambda: C.ablation_steps("cpu"), TypeError, r"ablation_steps: config must be a ClassifierConfig"),
    (lambda: C.config_table([C.CONFIGS["cpu"]]), TypeError, r"config_table: configs must be a dict"),
    (lambda: C.most_confused_pairs(np.ones((2, 2)), "ab"), TypeError, r"most_confused_pairs: class_names must be a seq"),
    (lambda: C.most_confused_pairs(np.full((2, 2), np.nan)), ValueError, r"most_confused_pairs: cm holds negative"),
    (lambda: C.train_classifier(C.CONFIGS["cpu"], data={"x": 1}), TypeError, r"train_classifier: data must be a Fashion"),
    (lambda: Mo.summary("m", (1, 28, 28)), TypeError, r"summary: model must be a torch.nn.Module, got str"),
    (lambda: Mo.count_parameters("m"), TypeError, r"count_parameters: model must be a torch.nn.Module"),
    (lambda: Mo.init_weights("m"), TypeError, r"init_weights: model must be a torch.nn.Module"),
    (lambda: Mo.activation_stds(CONV, np.zeros((1, 1, 4, 4))), TypeError, r"activation_stds: x must be a torch.Tensor"),
    (lambda: Mo.SmallCNN(channels=()), ValueError, r"SmallCNN: channels must list at least one channel count"),
    (lambda: Mo.LeNet(num_classes=True), ValueError, r"LeNet: num_classes must be a positive int, got True"),
]


@pytest.mark.parametrize("call, error, message", BAD_BEFORE, ids=[m[:40] for _, _, m in BAD_BEFORE])
def test_input_once_accepted_silently_or_crashing_deep_is_refused_by_name(call, error, message):
    with pytest.raises(error, match=message):
        call()
    plt.close("all")


@pytest.mark.parametrize("call, error, message", BAD_INPUTS, ids=[m[:40] for _, _, m in BAD_INPUTS])
def test_bad_input_raises_an_error_naming_function_and_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
    plt.close("all")


# ---------------------------------------------------------------- valid input against torch and scikit-learn

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), h=st.integers(1, 6), w=st.integers(1, 6), data=st.data())
def test_shift_images_equals_a_torch_roll_with_the_border_filled(n, h, w, data):
    x = torch.randn(n, 2, h, w, dtype=torch.float64)
    dy = data.draw(st.lists(st.integers(-h, h), min_size=n, max_size=n))
    dx = data.draw(st.lists(st.integers(-w, w), min_size=n, max_size=n))
    got = A.shift_images(x, torch.tensor(dy), torch.tensor(dx), fill=-3.0)
    rows, cols = torch.arange(h), torch.arange(w)
    for i in range(n):
        want = torch.roll(x[i], shifts=(dy[i], dx[i]), dims=(1, 2))
        inside = ((rows - dy[i] >= 0) & (rows - dy[i] < h))[:, None] & ((cols - dx[i] >= 0) & (cols - dx[i] < w))[None]
        torch.testing.assert_close(got[i], torch.where(inside, want, torch.tensor(-3.0, dtype=torch.float64)))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 40), batch=st.integers(1, 50), seed=st.integers(0, 1000))
def test_predict_and_evaluate_equal_torch_for_any_batching(n, batch, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    x, y = torch.randn(n, 4), torch.randint(0, 3, (n,))
    with torch.no_grad():
        logits = net.eval()(x)
    net.train()
    torch.testing.assert_close(T.predict(net, x, batch_size=batch), logits.softmax(1))
    logs = T.evaluate(net, TensorLoader(x, y, batch_size=batch), CE, ("accuracy", "precision", "recall", "f1"))
    assert net.training
    assert logs["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    pred = logits.argmax(1).numpy()
    assert logs["accuracy"] == pytest.approx(skm.accuracy_score(y.numpy(), pred))
    for name, sk in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        want = sk(y.numpy(), pred, average="macro", labels=[0, 1, 2], zero_division=0)   # C from the model
        assert logs[name] == pytest.approx(want), name


@settings(max_examples=30, deadline=None)
@given(c=st.integers(1, 6), seed=st.integers(0, 2**16), k=st.integers(0, 40),
       dtype=st.sampled_from([torch.uint8, torch.int32, torch.int64]))
def test_most_confused_pairs_follows_the_checker_order_on_any_integer_matrix(c, seed, k, dtype):
    g = torch.Generator().manual_seed(seed)
    cm = torch.randint(0, 4, (c, c), generator=g).to(dtype)            # small counts: many ties and zeros
    want = sorted(((int(cm[i, j]), i, j) for i in range(c) for j in range(c) if i != j and cm[i, j] > 0),
                  key=lambda t: (-t[0], t[1], t[2]))[:k]
    assert C.most_confused_pairs(cm, k=k) == [(i, j, n) for n, i, j in want]


def test_most_confused_pairs_golden_ties_zeros_and_unsigned_diagonal():
    cm = torch.tensor([[200, 0, 3], [3, 9, 0], [1, 3, 250]], dtype=torch.uint8)
    # the old version filled the uint8 diagonal with -1 (= 255) and listed (0, 0, 255) first
    assert C.most_confused_pairs(cm, k=10) == [(0, 2, 3), (1, 0, 3), (2, 1, 3), (2, 0, 1)]
    assert C.most_confused_pairs(np.eye(3, dtype=int), k=3) == []      # no mistakes, no zero-count pairs


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.one_of(st.floats(-5, 5), st.just(float("nan")), st.just(float("inf"))), min_size=1,
                       max_size=8))
def test_history_best_is_the_best_finite_value(values):
    h = H.History()
    for e, v in enumerate(values, start=1):
        h.append(e, {"val_loss": v})
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        with pytest.raises(ValueError, match="History.best: no finite value"):
            h.best()
        return
    epoch, best = h.best()
    assert best == min(finite) and epoch == values.index(min(finite)) + 1


def tiny_fashion(n=96):
    """Three synthetic patterns as 'normalized' 28x28 images, split 64 / 16 / 16."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    x[y == 0, :, :14] += 2.0
    x[y == 1, :, :, :14] += 2.0
    split = lambda a: (a[:64], a[64:80], a[80:])  # noqa: E731
    (xt, xv, xs), (yt, yv, ys) = split(x), split(y)
    return C.FashionData(xt, yt, xv, yv, xs, ys, ("a", "b", "c"), 0.3, 0.35)


def test_train_classifier_with_an_absurd_learning_rate_raises_or_warns():
    config = C.ClassifierConfig(name="absurd", channels=(4,), hidden=8, epochs=2, batch_size=16, device="cpu")
    with pytest.raises(T.NonFiniteLossError, match=r"fit: the training loss is not finite .* of epoch 1 "
                                                   r"\(learning rate .*\); training stopped"):
        C.train_classifier(dataclasses.replace(config, lr=1e6), data=tiny_fashion(), progress=False)
    with pytest.raises(ValueError, match=r"train_classifier: no epoch of configuration 'absurd' gave finite "
                                         r"weights and validation accuracy \(lr=10000.0\); lower the learning rate"):
        C.train_classifier(dataclasses.replace(config, lr=1e4), data=tiny_fashion(), progress=False)
    with pytest.warns(RuntimeWarning, match=r"train_classifier: the best validation accuracy of configuration "
                                            r"'absurd' is 0.375, about chance level \(1/3\).*lr=100.0"):
        C.train_classifier(dataclasses.replace(config, lr=1e2), data=tiny_fashion(), progress=False)


# ---------------------------------------------------------------- bad arguments, drawn by hypothesis
NAN, INF = float("nan"), float("inf")
BAD_POSITIVE_INT = st.one_of(st.integers(max_value=0), st.floats(), st.booleans(), st.text(max_size=2))
BAD_PROBABILITY = st.one_of(st.floats().filter(lambda p: not 0 <= p <= 1), st.booleans(), st.text(max_size=2),
                            st.none())
BAD_FINITE = st.one_of(st.sampled_from([NAN, INF, -INF]), st.text(max_size=2), st.none(), st.booleans())
BAD_FLAG = st.one_of(st.integers(), st.text(max_size=3), st.none())

# (function named in the message, argument named in it, the call, bad values)
CASES = [
    ("shift_images", "dy", lambda v: A.shift_images(IMGS, v, 0),
     st.one_of(st.floats(), st.booleans(), st.text(max_size=2), st.none(),
               st.lists(st.floats(-2, 2), min_size=2, max_size=2).map(torch.tensor),
               st.lists(st.integers(-2, 2), min_size=3, max_size=5).map(torch.tensor))),
    ("shift_images", "pad", lambda v: A.shift_images(IMGS, 2, -1, pad=v),
     st.integers(max_value=1) | st.floats() | st.text(max_size=1)),
    ("shift_images", "fill", lambda v: A.shift_images(IMGS, 1, 0, fill=v), BAD_FINITE),
    ("random_shift_flip", "max_shift", lambda v: A.random_shift_flip(IMGS, max_shift=v), BAD_POSITIVE_INT.filter(
        lambda v: v != 0)),
    ("random_shift_flip", "hflip_p", lambda v: A.random_shift_flip(IMGS, hflip_p=v), BAD_PROBABILITY),
    ("RandomShiftFlip", "hflip_p", lambda v: A.RandomShiftFlip(hflip_p=v), BAD_PROBABILITY),
    ("tta_views", "shift", lambda v: A.tta_views(IMGS, shift=v), st.integers(max_value=-1) | st.floats() | st.booleans()),
    ("tta_views", "flip", lambda v: A.tta_views(IMGS, flip=v), BAD_FLAG),
    ("random_affine", "degrees", lambda v: A.random_affine(IMGS, degrees=v), BAD_FINITE | st.floats(max_value=-1e-9)),
    ("random_affine", "translate", lambda v: A.random_affine(IMGS, translate=v),
     st.one_of(st.tuples(st.floats(1.0001, 1e9), st.floats(0, 1)), st.tuples(st.floats(-1e9, -1e-9), st.floats(0, 1)),
               st.tuples(st.floats(0, 1)), st.text(max_size=2), st.none())),
    ("random_affine", "scale", lambda v: A.random_affine(IMGS, scale=v),
     st.one_of(st.tuples(st.floats(max_value=0), st.floats(0.5, 2)), st.tuples(st.floats(0.5, 2), st.just(INF)),
               st.tuples(st.floats(0.5, 2)), st.none())),
    ("random_affine", "hflip_p", lambda v: A.random_affine(IMGS, hflip_p=v), BAD_PROBABILITY),
    ("BatchRandomAffine", "degrees", lambda v: A.BatchRandomAffine(degrees=v), BAD_FINITE),
    ("TensorLoader", "batch_size", lambda v: TensorLoader(X, Y, batch_size=v), BAD_POSITIVE_INT | st.none()),
    ("TensorLoader", "shuffle", lambda v: TensorLoader(X, Y, shuffle=v), BAD_FLAG),
    ("TensorLoader", "drop_last", lambda v: TensorLoader(X, Y, drop_last=v), BAD_FLAG),
    ("TensorLoader", "generator", lambda v: TensorLoader(X, Y, shuffle=True, generator=v),
     st.integers() | st.text(min_size=1, max_size=2) | st.just(np.random.default_rng(0))),
    ("TensorLoader", "sampler", lambda v: list(TensorLoader(X, Y, sampler=v)),
     st.integers() | st.lists(st.integers(), min_size=1, max_size=5).filter(lambda s: max(s) >= 8 or min(s) < -8)
     | st.lists(st.floats(0, 7), min_size=1, max_size=3)),
    ("confusion_matrix", "num_classes", lambda v: M.confusion_matrix([0, 1], [1, 0], num_classes=v),
     BAD_POSITIVE_INT | st.integers(10_001, 10**12)),
    ("recall", "num_classes", lambda v: M.recall([0, 1], [1, 0], num_classes=v), BAD_POSITIVE_INT),
    ("precision", "zero_division", lambda v: M.precision([0, 1], [1, 1], zero_division=v),
     st.text(max_size=3) | st.none() | st.booleans()),
    ("accuracy_from_cm", "cm", M.accuracy_from_cm,
     st.one_of(hnp.arrays(np.float64, (3, 3), elements=st.floats(max_value=-1e-9) | st.sampled_from([NAN, INF])),
               hnp.arrays(np.int64, st.sampled_from([(2, 3), (4,), (1, 2, 2)])), st.just([["a", "b"], ["c", "d"]]))),
    ("f1_from_cm", "cm", lambda v: M.f1_from_cm(v, average="macro"),
     hnp.arrays(np.float64, (2, 2), elements=st.floats(max_value=-1e-9) | st.just(NAN))),
    ("classification_report", "digits", lambda v: M.classification_report([0, 1], [0, 1], digits=v),
     st.integers(max_value=-1) | st.floats() | st.text(max_size=2)),
    ("image_grid", "ncols", lambda v: P.image_grid(np.zeros((2, 4, 4)), ncols=v), BAD_POSITIVE_INT),
    ("image_grid", "titles", lambda v: P.image_grid(np.zeros((2, 4, 4)), titles=v),
     st.text(max_size=4) | st.lists(st.text(max_size=2), max_size=4).filter(lambda t: len(t) != 2)),
    ("plot_curves", "curves", P.plot_curves,
     st.one_of(st.just({}), st.lists(st.floats(), max_size=3), st.none(),
               st.dictionaries(st.text(max_size=2), st.just([]) | st.just([["x"]]) | st.just(np.zeros((2, 2, 2))),
                               min_size=1, max_size=2))),
    ("plot_comparison", "results", P.plot_comparison,
     st.one_of(st.just({}), st.lists(st.floats(), max_size=3), st.none(),
               st.dictionaries(st.text(max_size=2), st.just([]) | st.just(["x"]), min_size=1, max_size=2))),
    ("format_table", "header", lambda v: U.format_table(v, []), st.text(max_size=3) | st.integers() | st.none()),
    ("format_table", "rows", lambda v: U.format_table(["a"], v), st.text(max_size=3) | st.integers() | st.none()),
    ("summarize_runs", "digits", lambda v: R.summarize_runs({"a": {"x": [1.0, 2.0]}}, digits=v),
     st.integers(max_value=-1) | st.floats() | st.text(max_size=2) | st.none()),
    ("saliency", "target", lambda v: E.saliency(CONV, IMGS, target=v),
     st.integers().filter(lambda t: not 0 <= t < 3) | st.floats() | st.text(min_size=1, max_size=2)
     | st.lists(st.integers(0, 2), min_size=3, max_size=4)),
    ("saliency", "images", lambda v: E.saliency(CONV, v),
     st.one_of(st.just(np.zeros((2, 1, 4, 4))), st.just(IMGS[0]), st.just(IMGS.long()), st.none())),
    ("grad_cam", "model", lambda v: E.grad_cam(v, IMGS, CONV[1]), st.none() | st.text(max_size=2)),
    ("most_confused_pairs", "class_names", lambda v: C.most_confused_pairs(np.ones((2, 2)), v),
     st.text(max_size=3) | st.lists(st.text(max_size=2), max_size=4).filter(lambda n: len(n) != 2)),
]


@pytest.mark.parametrize("fn, arg, call, bad", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_bad_argument_is_refused_naming_function_and_argument(fn, arg, call, bad, data):
    try:
        assert_refused(call, data.draw(bad), f"{fn}:", arg)
    finally:
        plt.close("all")


# ---------------------------------------------------------------- valid input, drawn: torch's answers
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), extra=st.integers(0, 3), data=st.data())
def test_shift_images_with_any_large_enough_pad_equals_the_default(n, extra, data):
    x = torch.randn(n, 2, 5, 6, dtype=torch.float64)
    dy = torch.tensor(data.draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)))
    dx = torch.tensor(data.draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n)))
    largest = int(max(dy.abs().max(), dx.abs().max()))
    want = A.shift_images(x, dy, dx, fill=1.5)
    torch.testing.assert_close(A.shift_images(x, dy, dx, fill=1.5, pad=largest + extra), want)
    for i in range(n):                                   # one image at a time, with int shifts
        torch.testing.assert_close(A.shift_images(x[i:i + 1], int(dy[i]), int(dx[i]), fill=1.5), want[i:i + 1])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), seed=st.integers(0, 999), data=st.data())
def test_saliency_for_any_target_equals_torch_autograd(n, seed, data):
    torch.manual_seed(seed)
    x = torch.randn(n, 1, 4, 4)
    target = data.draw(st.one_of(st.integers(0, 2), st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    classes = torch.as_tensor(target).expand(n) if isinstance(target, int) else torch.tensor(target)
    xg = x.clone().requires_grad_(True)
    CONV.eval()
    CONV(xg)[torch.arange(n), classes].sum().backward()
    CONV.train()
    torch.testing.assert_close(E.saliency(CONV, x, target=target), xg.grad.abs().amax(1))


@settings(max_examples=30, deadline=None)
@given(order=st.lists(st.integers(-8, 7), max_size=12), batch=st.integers(1, 5))
def test_tensor_loader_with_a_sampler_yields_those_rows(order, batch):
    got = [b for b in TensorLoader(X, Y, batch_size=batch, sampler=order)]
    assert len(got) == -(-len(order) // batch)
    if order:
        torch.testing.assert_close(torch.cat([b[0] for b in got]), X[torch.tensor(order)])
        torch.testing.assert_close(torch.cat([b[1] for b in got]), Y[torch.tensor(order)])


@settings(max_examples=20, deadline=None)
@given(degrees=st.floats(0, 180), t=st.floats(0, 1), s=st.tuples(st.floats(0.5, 1), st.floats(1, 2)),
       fill=st.floats(-3, 3), seed=st.integers(0, 99))
def test_random_affine_with_valid_ranges_gives_finite_images_and_mirrors_exactly(degrees, t, s, fill, seed):
    x = torch.rand(3, 1, 6, 6)
    out = A.random_affine(x, degrees, (t, t), s, 0.5, fill, generator=torch.Generator().manual_seed(seed))
    assert out.shape == x.shape and torch.isfinite(out).all()
    torch.testing.assert_close(A.random_affine(x, hflip_p=1.0), x.flip(3), atol=1e-5, rtol=0)
