"""Robustness of the PyTorch tools: bad input raises a TypeError/ValueError that names the function and
the argument; valid input, drawn by hypothesis, matches torch and scikit-learn."""
import dataclasses

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
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
