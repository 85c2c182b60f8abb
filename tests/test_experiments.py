"""Tests of cnnbook.pytorch.experiments: repeated runs, their summaries and test-time augmentation."""
import numpy as np
import pytest
import torch
from torch import nn

from cnnbook.pytorch.augment import shift_image
from cnnbook.pytorch.experiments import (Setting, curves, effect, final, mean_std, predict_tta,
                                         run_settings)


def _data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def _setting(**kw):
    make_model = lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(128, 3))
    return Setting(make_model, lambda p: torch.optim.SGD(p, lr=0.1), epochs=2, batch_size=16, **kw)


def test_run_settings_one_run_per_seed_and_reproducible():
    x, y = _data()
    val = _data(24, seed=1)
    runs = run_settings({"a": _setting(), "b": _setting()}, x, y, val, seeds=(0, 1), progress=False)
    again = run_settings({"a": _setting()}, x, y, val, seeds=(0,), progress=False)
    assert list(runs) == ["a", "b"] and [len(r) for r in runs.values()] == [2, 2]
    assert curves(runs["a"], "val_loss").shape == (2, 2)
    assert final(runs["a"], "val_loss")[0] == again["a"][0][1]["val_loss"][-1]   # same seed, same run
    assert final(runs["a"], "val_loss")[0] != final(runs["a"], "val_loss")[1]     # seeds differ


def test_run_settings_fresh_scheduler_per_run():
    x, y = _data()
    make = lambda opt, steps: torch.optim.lr_scheduler.OneCycleLR(opt, 0.5, total_steps=2 * steps)
    runs = run_settings({"one-cycle": _setting(make_scheduler=make, scheduler_step="batch")},
                        x, y, _data(24, 1), seeds=(0, 1), progress=False)
    lrs = curves(runs["one-cycle"], "lr")
    np.testing.assert_allclose(lrs[0], lrs[1])   # the second run starts its schedule afresh
    assert lrs[0, 0] < lrs[0, 1]                 # warm-up: the rate rises in the first epoch


def test_run_settings_rejects_bad_input():
    x, y = _data()
    with pytest.raises(ValueError, match=r"run_settings: expected images \(N, C, H, W\) and N labels"):
        run_settings({"a": _setting()}, x[:, 0], y, _data(24, 1), progress=False)
    with pytest.raises(TypeError, match="run_settings: x and y must be tensors, got ndarray"):
        run_settings({"a": _setting()}, x.numpy(), y, _data(24, 1), progress=False)
    with pytest.raises(ValueError, match="run_settings: seeds must name at least one seed"):
        run_settings({"a": _setting()}, x, y, _data(24, 1), seeds=(), progress=False)


def test_mean_std_and_curves_errors():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    with pytest.raises(ValueError, match="mean_std: need at least two values, got 1"):
        mean_std([0.5])
    with pytest.raises(ValueError, match=r"curves: the runs have different lengths \[2, 3\]"):
        curves([(None, {"loss": [1, 2]}), (None, {"loss": [1, 2, 3]})], "loss")


def test_effect_against_spread():
    e = effect([0.80, 0.81, 0.82], [0.70, 0.70, 0.70])
    assert e["diff"] == pytest.approx(0.11) and e["spread"] == pytest.approx(0.01) and e["clear"]
    assert not effect([0.70, 0.75, 0.80], [0.72, 0.74, 0.76])["clear"]   # 0.01 apart, spread 0.05


def test_predict_tta_without_views_is_plain_softmax_and_restores_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Dropout(0.5), nn.Flatten(), nn.Linear(128, 3))
    x = torch.randn(6, 1, 8, 8)
    model.train()
    plain = predict_tta(model, x)
    assert model.training
    model.eval()
    torch.testing.assert_close(plain, torch.softmax(model(x), 1))
    both = predict_tta(model, x, shifts=((0, 0), (1, 0)), hflip=True)
    views = [x, shift_image(x, 1, 0, 0.0)]
    views += [v.flip(-1) for v in views]
    expected = torch.stack([torch.softmax(model(v), 1) for v in views]).mean(0)
    torch.testing.assert_close(both, expected)
    with pytest.raises(ValueError, match=r"predict_tta: x must be a batch"):
        predict_tta(model, x[0])
