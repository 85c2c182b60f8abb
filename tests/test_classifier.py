"""cnnbook.pytorch.classifier: augmentation, models, configurations, the training call (on tiny tensors)."""
import dataclasses

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cnnbook.pytorch import classifier as C
from cnnbook.pytorch import augment as A, plots as P
from cnnbook.pytorch.classifier import data as CD
from cnnbook.pytorch.data import CLASSES


def shift_flip_loop(image, dy, dx, flip, max_shift, fill):
    """The definition, one image at a time: mirror, pad, cut the window at (dy, dx)."""
    if flip:
        image = image.flip(-1)
    c, h, w = image.shape
    padded = torch.full((c, h + 2 * max_shift, w + 2 * max_shift), fill)
    padded[:, max_shift:max_shift + h, max_shift:max_shift + w] = image
    return padded[:, dy:dy + h, dx:dx + w]


# ---------------------------------------------------------------- augmentation

@given(n=st.integers(1, 5), c=st.integers(1, 3), h=st.integers(3, 9), w=st.integers(3, 9),
       max_shift=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_random_shift_flip_matches_the_loop_definition(n, c, h, w, max_shift, seed):
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    got = A.random_shift_flip(x, max_shift, 0.5, fill=-7.0, generator=torch.Generator().manual_seed(seed))
    # replay the same random draws, in the same order as the function makes them
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(n, generator=g) < 0.5
    if max_shift:
        dy = torch.randint(0, 2 * max_shift + 1, (n, 1), generator=g)[:, 0]
        dx = torch.randint(0, 2 * max_shift + 1, (n, 1), generator=g)[:, 0]
    else:
        dy = dx = torch.zeros(n, dtype=torch.long)
    want = torch.stack([shift_flip_loop(x[i], int(dy[i]), int(dx[i]), bool(flip[i]), max_shift, -7.0)
                        for i in range(n)])
    assert got.shape == x.shape
    assert torch.equal(got, want)


def test_random_shift_flip_golden_case():
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    # no shift, always mirrored: the columns reversed
    assert torch.equal(A.random_shift_flip(x, 0, 1.0), x.flip(-1))
    # never mirrored, no shift: unchanged
    assert torch.equal(A.random_shift_flip(x, 0, 0.0), x)
    # a shift keeps the multiset of interior values and fills the rest with `fill`
    out = A.random_shift_flip(x, 1, 0.0, fill=-1.0, generator=torch.Generator().manual_seed(0))
    kept = out[out != -1.0]
    assert set(kept.tolist()) <= set(x.flatten().tolist())


def test_random_shift_flip_rejects_bad_input():
    with pytest.raises(ValueError, match=r"random_shift_flip: x must be a batch \(N, C, H, W\), got shape \(28, 28\)"):
        A.random_shift_flip(torch.zeros(28, 28))
    with pytest.raises(ValueError, match="random_shift_flip: max_shift must be an int >= 0, got -1"):
        A.random_shift_flip(torch.zeros(1, 1, 4, 4), max_shift=-1)


def test_class_subset_relabels_in_the_given_order():
    labels = torch.tensor([0, 2, 4, 6, 1, 6, 0])
    images = torch.arange(7.0)
    x, y = CD._class_subset(images, labels, ("Shirt", "T-shirt/top"))   # Shirt is 6, T-shirt/top is 0
    assert x.tolist() == [0.0, 3.0, 5.0, 6.0]
    assert y.tolist() == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="prepare_data: unknown classes \\['Sock'\\]"):
        CD._class_subset(images, labels, ("Sock",))


# ---------------------------------------------------------------- models

def test_fashion_cnn_shapes_and_layer_names():
    model = C.FashionCNN((8, 16), hidden=32)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    names = [n for n, _ in model.named_children()]
    assert names == ["conv1", "pool1", "bn1", "relu1", "conv2", "pool2", "bn2", "relu2",
                     "flatten", "fc1", "relu_fc", "fc2"]
    assert model.fc1.in_features == 16 * 7 * 7
    assert model.conv1.bias is None                       # batch norm makes the bias redundant


def test_fashion_cnn_without_batch_norm_and_with_dropout():
    model = C.FashionCNN((4,), hidden=8, num_classes=4, batch_norm=False, dropout=0.5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model.conv1.bias is not None
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 2
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 4)


def test_pool_before_batch_norm_equals_the_usual_order_in_eval_mode():
    """max-pool commutes with ReLU and with batch norm's positive-scale affine map."""
    torch.manual_seed(0)
    model = C.FashionCNN((4,), hidden=8).eval()
    model.bn1.running_mean.uniform_(-1, 1)
    model.bn1.running_var.uniform_(0.5, 2)
    model.bn1.weight.data.uniform_(0.5, 2)               # positive scale
    x = torch.randn(5, 1, 28, 28)
    usual = model.pool1(model.relu1(model.bn1(model.conv1(x))))
    ours = model.relu1(model.bn1(model.pool1(model.conv1(x))))
    torch.testing.assert_close(ours, usual)


def test_fashion_cnn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="FashionCNN: channels must be positive ints, got \\(\\)"):
        C.FashionCNN(())
    with pytest.raises(ValueError, match="FashionCNN: 5 stages halve a 28x28 image to nothing"):
        C.FashionCNN((1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="FashionCNN: dropout must be in \\[0, 1\\), got 1.0"):
        C.FashionCNN(dropout=1.0)


def test_fashion_resnet_shapes():
    model = C.FashionResNet((8, 16), blocks_per_stage=1)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="FashionResNet: need at least one stage"):
        C.FashionResNet(())


# ---------------------------------------------------------------- configurations

def test_configs_cover_cpu_and_gpu_with_their_targets():
    cpu, gpu = C.CONFIGS["cpu"], C.CONFIGS["gpu"]
    assert (cpu.device, cpu.target_accuracy, cpu.budget_seconds) == ("cpu", 0.925, 180.0)
    assert (gpu.device, gpu.target_accuracy, gpu.budget_seconds) == ("cuda", 0.950, 30.0)
    assert isinstance(C.build_model(cpu), C.FashionCNN)
    assert isinstance(C.build_model(gpu), C.FashionResNet)
    assert "architecture" in C.config_table()


def test_config_is_frozen_and_rejects_unknown_fields():
    cfg = C.CONFIGS["cpu"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 1
    with pytest.raises(TypeError, match="epoch"):
        dataclasses.replace(cfg, epoch=1)
    with pytest.raises(ValueError, match="build_model: architecture must be 'cnn' or 'resnet', got 'vit'"):
        C.build_model(dataclasses.replace(cfg, architecture="vit"))


def test_make_optimizer_decays_weights_only_and_schedules_one_cycle():
    cfg = dataclasses.replace(C.CONFIGS["cpu"], epochs=2, lr=0.3)
    model = C.FashionCNN((4,), hidden=8)
    opt, sched = C.make_optimizer(model, cfg, steps_per_epoch=5)
    decay, no_decay = opt.param_groups
    assert all(p.ndim > 1 for p in decay["params"]) and decay["weight_decay"] == cfg.weight_decay
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert opt.defaults["nesterov"] and sched.total_steps == 10
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.3, rel=0.05) and lrs[0] < 0.3 / 10 and lrs[-1] < lrs[0]
    opt, sched = C.make_optimizer(model, dataclasses.replace(cfg, schedule="constant"), 5)
    assert sched is None
    with pytest.raises(ValueError, match="make_optimizer: schedule must be 'onecycle' or 'constant', got 'cosine'"):
        C.make_optimizer(model, dataclasses.replace(cfg, schedule="cosine"), 5)


# ---------------------------------------------------------------- training on tiny data

def tiny_data(n=96, classes=("T-shirt/top", "Trouser", "Bag")):
    """Three classes drawn as different synthetic patterns, already 'normalized'."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % len(classes)
    x = 0.3 * torch.randn(n, 1, 28, 28, generator=g)
    x[y == 0, :, :14] += 2.0
    x[y == 1, :, :, :14] += 2.0
    x[y == 2, :, 10:18, 10:18] -= 2.0
    split = lambda a: (a[:64], a[64:80], a[80:])  # noqa: E731
    (xt, xv, xs), (yt, yv, ys) = split(x), split(y)
    return C.FashionData(xt, yt, xv, yv, xs, ys, classes, 0.3, 0.35)


def tiny_config(**kw):
    kw = {"name": "tiny", "channels": (4,), "hidden": 8, "epochs": 3, "batch_size": 16, "lr": 0.1,
          "device": "cpu", **kw}
    return C.ClassifierConfig(**kw)


def test_train_classifier_learns_and_reloads_the_best_epoch(tmp_path):
    data = tiny_data()
    run = C.train_classifier(tiny_config(), seed=1, data=data, checkpoint=tmp_path / "best.pt",
                             progress=False)
    assert len(run.history) == 3 and run.train_seconds > 0
    assert (run.best_epoch, run.val_accuracy) == run.history.best("val_accuracy")
    assert not hasattr(run, "test_accuracy")                 # training never looks at the test set
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in run.model.state_dict().items())
    val = C.score_classifier(run.model, data.x_val, data.y_val, run.config, data.fill)
    assert val.accuracy == run.val_accuracy                  # the reloaded epoch is the best one


def test_score_classifier_reports_single_view_and_tta():
    data = tiny_data()
    run = C.train_classifier(tiny_config(), seed=1, data=data, progress=False)
    s = C.score_classifier(run.model, data.x_test, data.y_test, run.config, data.fill)
    assert s.probs.shape == s.probs_tta.shape == (16, 3)
    torch.testing.assert_close(s.probs.sum(1), torch.ones(16))
    assert s.accuracy == (s.probs.argmax(1) == data.y_test).float().mean().item()
    assert s.accuracy > 0.9                                  # three easy patterns
    views = A.tta_views(data.x_test, True, run.config.tta_shift, data.fill)
    want = torch.stack([C.predict_proba(run.model, v) for v in views]).mean(0)
    torch.testing.assert_close(s.probs_tta, want)
    with pytest.raises(ValueError, match="score_classifier: got 16 images but 3 labels"):
        C.score_classifier(run.model, data.x_test, data.y_test[:3], run.config)


def test_train_classifier_is_reproducible_with_a_seed():
    data = tiny_data()
    a = C.train_classifier(tiny_config(epochs=1), seed=3, data=data, progress=False)
    b = C.train_classifier(tiny_config(epochs=1), seed=3, data=data, progress=False)
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_ablation_steps_change_one_thing_per_row_and_end_at_the_config():
    config = C.CONFIGS["cpu"]
    steps = C.ablation_steps(config)
    rows = list(steps.values())
    assert rows[-1] == config and len(rows) == 6
    assert not rows[0].batch_norm and rows[0].schedule == "constant" and rows[0].max_shift == 0
    for a, b in zip(rows, rows[1:]):
        changed = {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}
        assert changed and (len(changed) == 1 or changed == {"max_shift", "hflip_p"}), changed
    with pytest.raises(ValueError, match="ablation_steps: config must be a 'cnn' with batch_norm=True"):
        C.ablation_steps(C.CONFIGS["gpu"])


def test_train_classifier_checks_config_and_device():
    with pytest.raises(TypeError, match="train_classifier: config must be a ClassifierConfig"):
        C.train_classifier({"epochs": 1})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="configuration 'gpu' wants device 'cuda', but CUDA is not available"):
            C.train_classifier(C.CONFIGS["gpu"], data=tiny_data())


def test_predict_proba_with_tta_averages_image_and_mirror():
    torch.manual_seed(0)
    model = C.FashionCNN((4,), hidden=8).eval()
    x = torch.randn(6, 1, 28, 28)
    plain = C.predict_proba(model, x, batch_size=4)
    mirrored = C.predict_proba(model, x.flip(3), batch_size=4)
    torch.testing.assert_close(C.predict_proba(model, x, tta=True, batch_size=4), (plain + mirrored) / 2)
    torch.testing.assert_close(plain, model(x).softmax(1).detach())


def test_shift_image_golden_case():
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    assert A.shift_image(x, 1, 0, fill=0.0)[0, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert A.shift_image(x, 0, -1, fill=-1.0)[0, 0].tolist() == [[2, 3, -1], [5, 6, -1], [8, 9, -1]]
    assert A.shift_image(x, 0, 0) is x


def test_tta_views_are_shifts_and_mirrors():
    x = torch.randn(2, 1, 5, 5)
    views = A.tta_views(x, flip=True, shift=1, fill=-2.0)
    assert len(views) == 10 and torch.equal(views[0], x) and torch.equal(views[1], x.flip(3))
    assert torch.equal(views[2], A.shift_image(x, 1, 0, -2.0))
    assert len(A.tta_views(x, flip=True, shift=0)) == 2 and len(A.tta_views(x, flip=False, shift=2)) == 5


def test_predict_proba_with_shifts_averages_ten_views():
    torch.manual_seed(0)
    model = C.FashionCNN((4,), hidden=8).eval()
    x = torch.randn(3, 1, 28, 28)
    want = torch.stack([model(v).softmax(1) for v in A.tta_views(x, True, 1, fill=-0.8)]).mean(0)
    got = C.predict_proba(model, x, tta=True, tta_shift=1, fill=-0.8)
    torch.testing.assert_close(got, want.detach())


def test_most_confused_pairs_golden_case():
    cm = torch.tensor([[50, 3, 9], [1, 40, 0], [7, 2, 30]])
    assert C.most_confused_pairs(cm, k=3) == [(0, 2, 9), (2, 0, 7), (0, 1, 3)]
    assert C.most_confused_pairs(cm, ["a", "b", "c"], k=1) == [("a", "c", 9)]
    with pytest.raises(ValueError, match="most_confused_pairs: cm must be square"):
        C.most_confused_pairs(torch.zeros(2, 3))


def test_prepare_data_splits_and_normalizes_the_real_data():
    data = C.prepare_data(val_size=5000)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (55000, 5000, 10000)
    assert abs(data.x_train.mean().item()) < 1e-4 and abs(data.x_train.std().item() - 1) < 1e-4
    assert 0.28 < data.mean < 0.29 and 0.35 < data.std < 0.36
    assert torch.bincount(data.y_test).tolist() == [1000] * 10
    assert data.fill == pytest.approx((0 - data.mean) / data.std)
    four = C.prepare_data(classes=("T-shirt/top", "Pullover", "Coat", "Shirt"))
    assert four.classes == ("T-shirt/top", "Pullover", "Coat", "Shirt")
    assert (len(four.x_train) + len(four.x_val), len(four.x_val), len(four.x_test)) == (24000, 2000, 4000)
    assert set(four.y_train.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="prepare_data: val_size must be an int in \\(0, 60000\\), got 0"):
        C.prepare_data(val_size=0)


def test_show_predictions_titles_carry_both_probabilities():
    import matplotlib
    matplotlib.use("Agg")
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    fig = P.show_predictions(torch.rand(2, 1, 8, 8), [0, 1], probs, ["a", "b", "c"], title="t")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["a 0.70\ntrue: a 0.70", "c 0.60\ntrue: b 0.30"]
    assert fig.axes[1].title.get_color() == "red"
    with pytest.raises(ValueError, match="show_predictions: got 2 images, 1 labels"):
        P.show_predictions(torch.rand(2, 1, 8, 8), [0], probs, ["a", "b", "c"])


def test_benchmark_records_single_view_and_tta_per_seed():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_classifier.py"
    spec = importlib.util.spec_from_file_location("bench_classifier", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    record = bench.bench_config(tiny_config(epochs=1), [0, 1], tiny_data())
    assert [r["seed"] for r in record["runs"]] == [0, 1]
    for key in ("test_accuracy", "test_accuracy_tta", "val_accuracy", "val_accuracy_tta", "train_cpu_seconds"):
        assert len(record[key]["per_seed"]) == 2, key
    assert record["met_target_every_seed"] == all(r["test_accuracy"] >= 0.925 and r["train_seconds"] <= 180
                                                  for r in record["runs"])
    assert record["hardware"]["cpu"] and record["hardware"]["torch_threads"] >= 1
