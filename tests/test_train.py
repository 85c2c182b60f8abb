"""The training tools on tiny synthetic tensors: loader, fit, callbacks, checkpoints, repeated runs, façade."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from cnnbook.pytorch import augment as A
from cnnbook.pytorch import callbacks as CB
from cnnbook.pytorch import checkpoint as CK
from cnnbook.pytorch import keras_like as K
from cnnbook.pytorch import metrics as M
from cnnbook.pytorch import runs as R
from cnnbook.pytorch import train as T
from cnnbook.pytorch.history import History
from cnnbook.pytorch.loader import TensorLoader


def blobs(n=256, c=3, d=8, seed=0):
    """Linearly separable Gaussian blobs: features (n, d), labels (n,)."""
    g = torch.Generator().manual_seed(seed)
    centers = 4 * torch.randn(c, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


def linear(d=8, c=3, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(d, c)


def quick_fit(model=None, epochs=3, **kw):
    x, y = blobs()
    model = model or linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kw.setdefault("val_loader", TensorLoader(x[:64], y[:64], batch_size=32))
    hist = T.fit(model, TensorLoader(x, y, batch_size=32, shuffle=True), opt, nn.CrossEntropyLoss(),
                 epochs, progress=False, device="cpu", **kw)
    return model, hist


# ---------------------------------------------------------------- TensorLoader, augmentation

def test_tensor_loader_visits_every_sample_once_per_epoch():
    x, y = torch.arange(10).float(), torch.arange(10)
    loader = TensorLoader(x, y, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(loader) == 3
    epoch1 = torch.cat([b[1] for b in loader])
    epoch2 = torch.cat([b[1] for b in loader])
    assert sorted(epoch1.tolist()) == list(range(10)) and not torch.equal(epoch1, epoch2)
    assert [len(b[0]) for b in loader] == [4, 4, 2]
    assert len(TensorLoader(x, y, batch_size=4, drop_last=True)) == 2
    for bx, by in TensorLoader(x, y, batch_size=3, shuffle=True):
        torch.testing.assert_close(bx, by.float())       # pairs stay together


def test_tensor_loader_generator_reproduces_order_and_transform_hits_inputs_only():
    x, y = torch.arange(8).float(), torch.arange(8)
    order = lambda: torch.cat([b[1] for b in TensorLoader(  # noqa: E731
        x, y, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(5))])
    assert torch.equal(order(), order())
    bx, by = next(iter(TensorLoader(x, y, batch_size=8, transform=lambda t: -t)))
    assert torch.equal(bx, -x) and torch.equal(by, y)


def test_tensor_loader_with_weighted_sampler_oversamples():
    y = torch.tensor([0] * 90 + [1] * 10)
    weights = torch.where(y == 1, 9.0, 1.0)
    sampler = WeightedRandomSampler(weights, num_samples=1000, generator=torch.Generator().manual_seed(0))
    labels = torch.cat([b[1] for b in TensorLoader(y.float(), y, batch_size=100, sampler=sampler)])
    assert len(labels) == 1000 and 0.4 < labels.float().mean() < 0.6


def test_tensor_loader_rejects_bad_input():
    with pytest.raises(ValueError, match=r"TensorLoader: all tensors need the same first dimension, got \[3, 2\]"):
        TensorLoader(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="TensorLoader: batch_size must be a positive int, got 0"):
        TensorLoader(torch.zeros(3), batch_size=0)
    with pytest.raises(ValueError, match="sampler and shuffle=True exclude each other"):
        TensorLoader(torch.zeros(3), sampler=[0, 1], shuffle=True)


# ---------------------------------------------------------------- fit, evaluate, predict

def test_fit_learns_separable_blobs_and_logs_every_epoch():
    model, hist = quick_fit(epochs=4, metrics=("accuracy", "f1"))
    assert hist.epoch == [1, 2, 3, 4]
    assert set(hist.history) == {"loss", "accuracy", "f1", "val_loss", "val_accuracy", "val_f1", "lr", "time"}
    assert hist["loss"][-1] < hist["loss"][0] and hist["val_accuracy"][-1] > 0.9
    assert hist.best("val_accuracy")[1] == max(hist["val_accuracy"])
    assert "val_accuracy" in repr(hist).splitlines()[0]


def test_evaluate_and_predict_agree_with_metrics_and_full_batch_loss():
    x, y = blobs(100)
    model = linear()
    logs = T.evaluate(model, TensorLoader(x, y, batch_size=7), nn.CrossEntropyLoss(), ("accuracy", "recall"))
    with torch.no_grad():
        out = model(x)
    assert logs["loss"] == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-5)
    assert logs["accuracy"] == pytest.approx(M.accuracy(y, out.argmax(1)))
    assert logs["recall"] == pytest.approx(M.recall(y, out.argmax(1), average="macro"))
    probs = T.predict(model, TensorLoader(x, y, batch_size=30))       # a loader: its labels are ignored
    torch.testing.assert_close(probs, out.softmax(1))
    torch.testing.assert_close(T.predict(model, x, batch_size=30), probs)   # a tensor: the same contract
    model.train()
    T.evaluate(model, TensorLoader(x, y, batch_size=50))
    assert model.training                        # evaluate restores the mode


def test_fit_with_dataloader_equals_fit_with_tensor_loader():
    x, y = blobs(96)
    runs = []
    for loader in (DataLoader(TensorDataset(x, y), batch_size=32), TensorLoader(x, y, batch_size=32)):
        model = linear(seed=1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        runs.append(T.fit(model, loader, opt, nn.CrossEntropyLoss(), 2, progress=False, device="cpu")["loss"])
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-6)


def test_seed_makes_fit_reproducible():
    a = quick_fit(linear(seed=3), seed=7)[1]["loss"]
    b = quick_fit(linear(seed=3), seed=7)[1]["loss"]
    c = quick_fit(linear(seed=3), seed=8)[1]["loss"]
    assert a == b and a != c


def test_schedulers_per_epoch_and_per_batch():
    x, y = blobs(64)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    hist = T.fit(model, TensorLoader(x, y, batch_size=16), opt, nn.CrossEntropyLoss(), 3,
                 scheduler=sched, progress=False, device="cpu")
    assert hist["lr"] == [1.0, 0.5, 0.25]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = TensorLoader(x, y, batch_size=16)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=3 * len(loader))
    hist = T.fit(model, loader, opt, nn.CrossEntropyLoss(), 3, scheduler=one_cycle,
                 scheduler_step="batch", progress=False, device="cpu")
    assert one_cycle.last_epoch == 12 and hist["lr"][1] > hist["lr"][0]   # one step per batch


def test_bf16_autocast_and_channels_last_train_a_conv_net():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > x.mean()).long()
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    hist = T.fit(net, TensorLoader(x, y, batch_size=16), opt, nn.CrossEntropyLoss(), 3, device="cpu",
                 amp_dtype=torch.bfloat16, channels_last=True, progress=False)
    assert all(math.isfinite(v) for v in hist["loss"]) and hist["loss"][-1] < hist["loss"][0]
    assert net[0].weight.dtype == torch.float32
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_fit_rejects_bad_arguments():
    x, y = blobs(8)
    args = (linear(), TensorLoader(x, y), torch.optim.SGD(linear().parameters(), lr=0.1), nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="fit: epochs must be a positive int, got 0"):
        T.fit(*args, 0)
    with pytest.raises(ValueError, match="fit: scheduler_step must be 'epoch' or 'batch', got 'step'"):
        T.fit(*args, 1, scheduler_step="step")
    with pytest.raises(ValueError, match="fit: unknown metric 'auc'"):
        T.fit(*args, 1, metrics=("auc",), progress=False)
    with pytest.raises(TypeError, match="fit: callbacks must be cnnbook.pytorch.callbacks.Callback instances"):
        T.fit(*args, 1, callbacks=[print])
    with pytest.raises(ValueError, match=r"EarlyStopping: monitor='val_loss' is not in the logs"):
        T.fit(*args, 1, callbacks=[CB.EarlyStopping()], progress=False, device="cpu")


# ---------------------------------------------------------------- callbacks

def drive(callback, values, monitor="val_loss"):
    """Feed a callback a sequence of monitored values; weights are set to the epoch number."""
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    state = CB.FitState(model, opt, History(), len(values))
    callback.on_train_begin(state)
    for epoch, v in enumerate(values, start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        callback.on_epoch_end(state, epoch, {monitor: v})
        if state.stop_training:
            break
    callback.on_train_end(state)
    return state


def test_early_stopping_waits_patience_epochs_then_restores_the_best():
    es = CB.EarlyStopping(patience=2, restore_best_weights=True)
    state = drive(es, [1.0, 0.5, 0.6, 0.7, 0.4])
    assert es.stopped_epoch == 4 and es.best_epoch == 2 and es.best == 0.5
    assert state.model.weight.item() == 2.0                 # weights of epoch 2 are back
    es = CB.EarlyStopping(patience=2, min_delta=0.1)
    drive(es, [1.0, 0.95, 0.92, 0.5])
    assert es.stopped_epoch == 3                             # 0.05 and 0.08 are below min_delta
    es = CB.EarlyStopping(monitor="val_accuracy", patience=1)
    drive(es, [0.5, 0.7, 0.6], monitor="val_accuracy")      # mode "auto" -> max
    assert es.best == 0.7 and es.stopped_epoch == 3
    state = drive(CB.EarlyStopping(patience=5), [3.0, 2.0, 1.0])
    assert not state.stop_training and state.model.weight.item() == 3.0


def test_reduce_lr_on_plateau_wraps_torch_scheduler_with_a_floor():
    cb = CB.ReduceLROnPlateau(factor=0.2, patience=1, min_lr=0.05)
    state = drive(cb, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert isinstance(cb.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert [e for e, _ in cb.reductions] == [3, 5]
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)   # 1 -> 0.2 -> floor 0.05
    with pytest.raises(ValueError, match="ReduceLROnPlateau: factor must be in \\(0, 1\\), got 2"):
        CB.ReduceLROnPlateau(factor=2)


def test_model_checkpoint_saves_best_and_loads_with_weights_only(tmp_path):
    cb = CB.ModelCheckpoint(tmp_path / "ckpt-{epoch}.pt", save_best_only=True)
    drive(cb, [1.0, 0.5, 0.8])
    assert [p.name for p in cb.saved] == ["ckpt-1.pt", "ckpt-2.pt"] and cb.best_path.name == "ckpt-2.pt"
    fresh = CK.load_weights(nn.Linear(1, 1), cb.best_path)
    assert fresh.weight.item() == 2.0
    state = torch.load(cb.best_path, weights_only=True)
    assert set(state) == {"weight", "bias"}


def test_fit_runs_callbacks_and_stops_early():
    es = CB.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    _, hist = quick_fit(epochs=5, callbacks=[es])
    assert len(hist) == 2 and es.stopped_epoch == 2       # epoch 1 always improves on +inf


# ---------------------------------------------------------------- Keras-like façade

def test_model_facade_compile_fit_evaluate_predict():
    x, y = blobs(200)
    torch.manual_seed(0)
    model = K.Model(nn.Linear(8, 3), device="cpu").compile(optimizer="sgd", learning_rate=0.1, momentum=0.9)
    assert isinstance(model.optimizer, torch.optim.SGD) and model.optimizer.param_groups[0]["momentum"] == 0.9
    hist = model.fit(x, y, batch_size=20, epochs=3, validation_split=0.2, verbose=0)
    assert hist is model.history and len(hist["val_accuracy"]) == 3
    logs = model.evaluate(x, y)
    assert set(logs) == {"loss", "accuracy"} and logs["accuracy"] > 0.9
    probs = model.predict(x[:5])
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(1), torch.ones(5))
    adam = K.Model(nn.Linear(8, 3), device="cpu").compile("rmsprop").optimizer
    assert adam.param_groups[0]["lr"] == 0.001                # Keras' default, not torch's 0.01


def test_model_facade_teaches_keras_differences():
    net = nn.Linear(8, 3)
    with pytest.raises(TypeError, match="Model.compile: got lr=; Keras renamed this argument learning_rate="):
        K.Model(net, device="cpu").compile(optimizer="adam", lr=0.001)
    with pytest.raises(RuntimeError, match=r"Model.fit: call compile\(optimizer=..., loss=...\) first"):
        K.Model(net, device="cpu").fit(torch.zeros(2, 8), torch.zeros(2, dtype=torch.long))
    x, y = blobs(40)
    model = K.Model(net, device="cpu").compile(loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="categorical_crossentropy: targets must be one-hot rows"):
        model.fit(x, y, verbose=0)
    one_hot = nn.functional.one_hot(y, 3).float()
    assert len(model.fit(x, one_hot, epochs=2, verbose=0)["loss"]) == 2
    keras_way = model.evaluate(x, one_hot)                     # one-hot rows are read back as classes
    torch_way = T.evaluate(net, TensorLoader(x, y), nn.CrossEntropyLoss())
    assert keras_way == pytest.approx(torch_way)


# ---------------------------------------------------------------- repeated runs

def test_fit_seeds_reproduces_each_seed_and_summarize_runs_tabulates():
    x, y = blobs(64)
    make = lambda: (lambda: TensorLoader(x, y, batch_size=16, shuffle=True))  # noqa: E731
    args = (lambda: nn.Linear(8, 3), make(), lambda p: torch.optim.SGD(p, lr=0.1), 2)
    a = R.fit_seeds(*args, seeds=(0, 1), progress=False, device="cpu")
    b = R.fit_seeds(*args, seeds=(0,), progress=False, device="cpu")
    assert len(a) == 2 and a[0][1]["loss"] == b[0][1]["loss"] != a[1][1]["loss"]
    table = R.summarize_runs({"A": {"loss": [1.0, 2.0, 3.0], "n": [5]}, "B": {"loss": [0.5]}})
    lines = repr(table).splitlines()
    assert lines[0].split() == ["setting", "loss", "n"]
    assert "2.000 ± 1.000 (n=3)" in lines[2] and lines[2].split()[-1] == "5"
    assert lines[3].split() == ["B", "0.500", "-"]


# ---------------------------------------------------------------- training that goes wrong (issue 16)

def test_a_non_finite_loss_stops_fit_naming_epoch_batch_and_remedy():
    x, y = blobs(64)
    x[40] = float("nan")                                     # batch 3 of 4 (batch_size 16, no shuffle)
    model = linear()
    es = CB.EarlyStopping(monitor="loss", restore_best_weights=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(T.NonFiniteLossError, match=r"fit: the training loss is not finite \(NaN or inf\) from "
                                                   r"batch 3 of epoch 1 .*smaller learning rate") as err:
        T.fit(model, TensorLoader(x, y, batch_size=16), opt, nn.CrossEntropyLoss(), 3, callbacks=[es],
              progress=False, device="cpu")
    assert len(err.value.history) == 0                       # no epoch finished
    x2, y2 = blobs(64)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    bad_second_epoch = [TensorLoader(x2, y2, batch_size=16), TensorLoader(x, y, batch_size=16)]

    class TwoEpochs:                                          # epoch 1 clean, epoch 2 hits the NaN
        def __iter__(self):
            return iter(bad_second_epoch.pop(0))

    es = CB.EarlyStopping(monitor="loss", restore_best_weights=True, patience=3)
    with pytest.raises(T.NonFiniteLossError, match="batch 3 of epoch 2") as err:
        T.fit(model, TwoEpochs(), opt, nn.CrossEntropyLoss(), 3, callbacks=[es], progress=False, device="cpu")
    assert len(err.value.history) == 1 and es.best_epoch == 1
    assert CB.weights_are_finite(model)                       # the best (finite) weights were put back


def test_history_best_ignores_non_finite_epochs():
    h = History()
    for e, (loss, acc) in enumerate([(0.5, 0.8), (float("nan"), 0.9), (float("inf"), 0.85), (0.6, float("nan"))], 1):
        h.append(e, {"val_loss": loss, "val_accuracy": acc})
    assert h.best("val_loss") == (1, 0.5)                    # min() would have kept the NaN of epoch 2
    assert h.best("val_accuracy") == (2, 0.9)
    nan = History()
    nan.append(1, {"val_loss": float("nan")})
    with pytest.raises(ValueError, match=r"History.best: no finite value of 'val_loss' in 1 epochs"):
        nan.best("val_loss")


def test_callbacks_never_keep_nan_weights_as_the_best(tmp_path):
    """val_accuracy stays finite when the weights are NaN (argmax of NaN picks a class): the weights decide."""
    model = nn.Linear(1, 1)
    state = CB.FitState(model, torch.optim.SGD(model.parameters(), lr=1.0), History(), 3)
    es = CB.EarlyStopping(monitor="val_accuracy", restore_best_weights=True, patience=5)
    ck = CB.ModelCheckpoint(tmp_path / "best.pt", monitor="val_accuracy", save_best_only=True)
    for cb in (es, ck):
        cb.on_train_begin(state)
    for epoch, (w, acc) in enumerate([(1.0, 0.5), (float("nan"), 0.9), (3.0, 0.6)], start=1):
        with torch.no_grad():
            model.weight.fill_(w)
        for cb in (es, ck):
            cb.on_epoch_end(state, epoch, {"val_accuracy": acc})
    es.on_train_end(state)
    assert es.best_epoch == 3 and model.weight.item() == 3.0
    assert ck.saved == [tmp_path / "best.pt"] * 2 and ck.best == 0.6
    assert CK.load_weights(nn.Linear(1, 1), ck.best_path).weight.item() == 3.0


def test_an_empty_training_loader_is_an_error():
    x, y = blobs(8)
    for loader in (TensorLoader(x, y, batch_size=16, drop_last=True), []):
        with pytest.raises(ValueError, match=r"fit: train_loader yielded no batches in epoch 1; is the training "
                                             r"set empty, or smaller than batch_size with drop_last=True\?"):
            T.fit(linear(), loader, torch.optim.SGD(linear().parameters(), lr=0.1), nn.CrossEntropyLoss(), 1,
                  progress=False, device="cpu")


def test_checkpoints_carry_a_checksum_and_a_flipped_byte_is_refused(tmp_path):
    model = linear()
    path = CK.save_weights(model, tmp_path / "w.pt")
    assert CK.checksum_path(path).read_text().strip() == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"load_weights: .*w.pt does not match its checksum in w.pt.sha256"):
        CK.load_weights(linear(), path)
    with pytest.raises(FileNotFoundError, match="load_weights: no file"):
        CK.load_weights(linear(), tmp_path / "missing.pt")


def test_load_weights_names_the_key_that_does_not_fit(tmp_path):
    path = CK.save_weights(nn.Linear(8, 3), tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"(?s)load_weights: .* does not fit Linear: .*size mismatch for weight"):
        CK.load_weights(nn.Linear(8, 4), path)
    with pytest.raises(ValueError, match=r"(?s)does not fit Sequential: .*Missing key\(s\) in state_dict: \"0.weight\""):
        CK.load_weights(nn.Sequential(nn.Linear(8, 3)), path)


def test_ignore_index_targets_are_left_out_of_the_metrics():
    x, y = blobs(96)
    y_ignored = y.clone()
    y_ignored[::3] = -100
    model = linear()
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    logs = T.evaluate(model, TensorLoader(x, y_ignored, batch_size=32), loss_fn, ("accuracy", "f1"))
    keep = y_ignored != -100
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert logs["accuracy"] == pytest.approx(M.accuracy(y[keep], pred[keep]))
    assert logs["f1"] == pytest.approx(M.f1_score(y[keep], pred[keep], average="macro", num_classes=3))
    hist = T.fit(model, TensorLoader(x, y_ignored, batch_size=32), torch.optim.SGD(model.parameters(), lr=0.1),
                 loss_fn, 2, metrics=("accuracy",), progress=False, device="cpu")
    assert len(hist["accuracy"]) == 2 and all(math.isfinite(v) for v in hist["loss"])
