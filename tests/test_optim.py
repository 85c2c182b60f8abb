"""cnnbook.scratch.optim against torch.optim: trajectories over 25 steps for every option, groups, errors."""
import copy
import doctest

import numpy as np
import pytest
import torch

import cnnbook.scratch.optim
from cnnbook.scratch import nn, optim

STEPS = 25


def gradient(w, k):
    """A gradient that depends on the weights and the step (a non-quadratic loss), NumPy or torch."""
    lib = torch if isinstance(w, torch.Tensor) else np
    return lib.sin(3 * w) + 0.5 * w + 0.1 * (k % 4) - 0.2


def trajectories(ours_cls, theirs_cls, kwargs, dtype=np.float64, steps=STEPS):
    """Run both optimizers on the same starting weights and gradients; yield weights per step."""
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    ours = [nn.Parameter(w.copy()) for w in start]
    theirs = [torch.tensor(w, requires_grad=True) for w in start]
    opt, topt = ours_cls(ours, **kwargs), theirs_cls(theirs, **kwargs)
    for k in range(steps):
        opt.zero_grad(), topt.zero_grad()
        for p, t in zip(ours, theirs):
            p.grad = gradient(p.data, k)
            t.grad = gradient(t.detach(), k)
        opt.step(), topt.step()
        yield [p.data for p in ours], [t.detach().numpy() for t in theirs]


CASES = [
    (optim.SGD, torch.optim.SGD, dict(lr=0.1)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.5)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, weight_decay=0.1)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.Adam, torch.optim.Adam, dict()),
    (optim.Adam, torch.optim.Adam, dict(lr=0.05, betas=(0.8, 0.9), eps=1e-6)),
    (optim.Adam, torch.optim.Adam, dict(lr=0.05, weight_decay=0.1)),
    (optim.Adam, torch.optim.Adam, dict(lr=0.05, amsgrad=True)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=0.05)),
    (optim.AdamW, torch.optim.AdamW, dict(lr=0.05, weight_decay=0.5, betas=(0.5, 0.99))),
    (optim.AdamW, torch.optim.AdamW, dict(lr=0.05, weight_decay=0.1, amsgrad=True, eps=1e-4)),
    (optim.RMSprop, torch.optim.RMSprop, dict()),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-6)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, weight_decay=0.1)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, momentum=0.9)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, centered=True)),
    (optim.RMSprop, torch.optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.05)),
]


@pytest.mark.parametrize("ours, theirs, kwargs", CASES,
                         ids=[f"{c[0].__name__}-{'-'.join(f'{k}={v}' for k, v in c[2].items())}" for c in CASES])
def test_trajectory_matches_torch_float64(ours, theirs, kwargs):
    for mine, expected in trajectories(ours, theirs, kwargs):
        for a, b in zip(mine, expected):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    start = np.random.default_rng(0).standard_normal((3, 4))
    assert np.abs(mine[0] - start).max() > 1e-3                  # the weights did move


@pytest.mark.parametrize("ours, theirs, kwargs", [CASES[1], CASES[9], CASES[12], CASES[18]],
                         ids=["SGD", "Adam", "AdamW", "RMSprop"])
def test_trajectory_matches_torch_float32(ours, theirs, kwargs):
    for mine, expected in trajectories(ours, theirs, kwargs, dtype=np.float32):
        for a, b in zip(mine, expected):
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_param_groups_and_missing_gradients_like_torch():
    a, b, c = (nn.Parameter(np.ones(3)) for _ in range(3))
    ta, tb, tc = (torch.ones(3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": [b, c], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    topt = torch.optim.SGD([{"params": [ta]}, {"params": [tb, tc], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[0]["momentum"] == 0
    for _ in range(3):
        a.grad, b.grad = np.full(3, 2.0), np.full(3, -1.0)   # c has no gradient: left alone
        ta.grad, tb.grad = torch.full((3,), 2.0, dtype=torch.float64), torch.full((3,), -1.0, dtype=torch.float64)
        opt.step(), topt.step()
    for p, t in zip((a, b, c), (ta, tb, tc)):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)
    np.testing.assert_array_equal(c.data, np.ones(3))


def test_zero_grad_and_in_place_updates():
    layer = nn.Linear(2, 2)
    weight_array = layer.weight.data
    opt = optim.Adam(layer.parameters(), lr=0.1)
    layer(np.ones((1, 2), np.float32))
    layer.backward(np.ones((1, 2), np.float32))
    opt.step()
    assert layer.weight.data is weight_array                  # state_dict arrays follow the updates
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(layer.weight.grad, 0)
    opt.zero_grad()
    assert layer.weight.grad is None


def test_training_steps_match_torch_end_to_end():
    """Forward, backward and SGD with momentum on a small CNN: weights equal torch's after 5 steps."""
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5)).double()
    ours = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 5)).double()
    ours.load_state_dict(theirs.state_dict())
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    loss_fn, tloss_fn = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.random((8, 1, 8, 8)), rng.integers(0, 5, 8)
        opt.zero_grad(), topt.zero_grad()
        loss = loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())
        opt.step()
        tloss = tloss_fn(theirs(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        topt.step()
        assert loss == pytest.approx(tloss.item(), rel=1e-10)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-9, atol=1e-12)


ERRORS = [
    ("lr", lambda p: optim.SGD(p, lr=-1), ValueError, r"SGD: lr must be a number >= 0.0, got -1"),
    ("nesterov", lambda p: optim.SGD(p, lr=0.1, nesterov=True), ValueError,
     r"SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum=0"),
    ("betas", lambda p: optim.Adam(p, betas=(0.9, 1.0)), ValueError, r"Adam: betas\[1\] must be a number >= 0.0 and < 1.0, got 1.0"),
    ("betas pair", lambda p: optim.AdamW(p, betas=0.9), ValueError, r"AdamW: betas must be a pair of floats"),
    ("eps", lambda p: optim.RMSprop(p, eps=-1e-8), ValueError, r"RMSprop: eps must be a number >= 0.0"),
    ("arrays", lambda p: optim.SGD([np.zeros(3)], lr=0.1), TypeError,
     r"SGD.add_param_group: params must be cnnbook.scratch.nn.Parameter objects \(e.g. model.parameters\(\)\), got ndarray"),
    ("single", lambda p: optim.SGD(p[0], lr=0.1), TypeError, r"SGD: params must be an iterable of Parameters"),
    ("empty", lambda p: optim.Adam([]), ValueError, r"Adam: got an empty parameter list"),
    ("model", lambda p: optim.SGD(nn.Sequential(nn.Linear(2, 2)), lr=0.1), TypeError,
     r"SGD: params must be an iterable of Parameters, got a single Sequential; hint: pass model.parameters\(\)"),
    ("group lr", lambda p: optim.SGD([{"params": p, "lr": -0.5}], lr=0.1), ValueError,
     r"SGD \(group 0\): lr must be a number >= 0.0, got -0.5"),
    ("group betas", lambda p: optim.Adam([{"params": p[:1]}, {"params": p[1:], "betas": (0.9, 1.5)}]), ValueError,
     r"Adam \(group 1\): betas\[1\] must be a number >= 0.0 and < 1.0, got 1.5"),
    ("group nesterov", lambda p: optim.SGD([{"params": p, "nesterov": True}], lr=0.1), ValueError,
     r"SGD \(group 0\): nesterov=True needs momentum > 0"),
    ("group typo", lambda p: optim.SGD([{"params": p, "learning_rate": 0.5}], lr=0.1), ValueError,
     r"SGD.add_param_group: unknown hyper-parameter\(s\) \['learning_rate'\] in a group; SGD takes"),
    ("group dict", lambda p: optim.SGD([{"lr": 0.5}], lr=0.1), TypeError,
     r"SGD.add_param_group: a parameter group must be a dict with a 'params' entry"),
    ("two groups", lambda p: optim.SGD([{"params": p}, {"params": p[:1]}], lr=0.1), ValueError,
     r"SGD.add_param_group: some parameters appear more than once"),
    ("twice in a group", lambda p: optim.Adam([p[0], p[0]]), ValueError, r"Adam.add_param_group: some parameters appear"),
]


@pytest.mark.parametrize("name, call, error, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_optimizer_errors(name, call, error, match):
    with pytest.raises(error, match=match):
        call([nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(2))])


def test_torch_refuses_the_same_parameter_in_two_groups_too():
    t = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        torch.optim.SGD([{"params": [t]}, {"params": [t]}], lr=0.1)


def test_gradient_of_the_wrong_shape_is_refused():
    p = nn.Parameter(np.zeros((2, 3)))
    opt = optim.Adam([p])
    p.grad = np.zeros(3)
    with pytest.raises(ValueError, match=r"Adam.step: the gradient of parameter 0 of group 0 must be an array of the "
                                         r"parameter's shape \(2, 3\), got \(3,\)"):
        opt.step()
    np.testing.assert_array_equal(p.data, 0)


RESUMABLE = [(optim.SGD, dict(lr=0.05, momentum=0.9)), (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
             (optim.Adam, dict(lr=0.05)), (optim.Adam, dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
             (optim.AdamW, dict(lr=0.05)), (optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True))]


def run(opt, params, first, last):
    for k in range(first, last):
        opt.zero_grad()
        for p in params:
            p.grad = gradient(p.data, k)
        opt.step()


@pytest.mark.parametrize("cls, kwargs", RESUMABLE, ids=[f"{c.__name__}-{'-'.join(k)}" for c, k in RESUMABLE])
def test_state_dict_resumes_exactly(cls, kwargs):
    """Train k steps, save, build a new optimizer on a copy of the weights, load, continue: the same
    weights as the uninterrupted run, bit for bit; the saved state does not follow later steps."""
    rng = np.random.default_rng(0)
    params = [nn.Parameter(rng.standard_normal((3, 4))), nn.Parameter(rng.standard_normal(5))]
    opt = cls([{"params": params[:1]}, {"params": params[1:], "lr": 0.02}], **kwargs)
    run(opt, params, 0, 7)
    saved, weights = opt.state_dict(), [p.data.copy() for p in params]
    frozen = copy.deepcopy(saved)
    run(opt, params, 7, 15)                                        # the uninterrupted run
    resumed = [nn.Parameter(w) for w in weights]
    opt2 = cls([{"params": resumed[:1]}, {"params": resumed[1:]}], **kwargs)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[1]["lr"] == 0.02
    run(opt2, resumed, 7, 15)
    for p, q in zip(params, resumed):
        np.testing.assert_array_equal(p.data, q.data)
    for key, value in frozen["state"][0].items():
        np.testing.assert_array_equal(saved["state"][0][key], value)


@pytest.mark.parametrize("cls, kwargs", RESUMABLE, ids=[f"{c.__name__}-{'-'.join(k)}" for c, k in RESUMABLE])
def test_state_dict_layout_is_torchs(cls, kwargs):
    """The same keys as torch's state dict, and torch's state dict loads and continues as torch does."""
    start = np.random.default_rng(0).standard_normal(4)
    ours, theirs = nn.Parameter(start.copy()), torch.tensor(start, requires_grad=True)
    opt, topt = cls([ours], **kwargs), getattr(torch.optim, cls.__name__)([theirs], **kwargs)
    for k in range(3):
        ours.grad, theirs.grad = gradient(ours.data, k), gradient(theirs.detach(), k)
        opt.step(), topt.step()
    mine, torchs = opt.state_dict(), topt.state_dict()
    assert set(mine["state"][0]) == set(torchs["state"][0])
    assert set(mine["param_groups"][0]) <= set(torchs["param_groups"][0])
    fresh = nn.Parameter(theirs.detach().numpy().copy())
    loaded = cls([fresh], **kwargs)
    loaded.load_state_dict(torchs)
    for k in range(3, 6):
        fresh.grad, theirs.grad = gradient(fresh.data, k), gradient(theirs.detach(), k)
        loaded.step(), topt.step()
    np.testing.assert_allclose(fresh.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


LOAD_ERRORS = [
    ("groups", lambda sd: {**sd, "param_groups": sd["param_groups"] * 2}, ValueError,
     r"Adam.load_state_dict: the state dict has 2 parameter groups, the optimizer 1"),
    ("shape", lambda sd: {**sd, "state": {0: {**sd["state"][0], "exp_avg": np.zeros(4)}}}, ValueError,
     r"Adam.load_state_dict: state\[0\]\['exp_avg'\] has shape \(4,\), but its parameter has shape \(3,\)"),
    ("lr", lambda sd: {**sd, "param_groups": [{**sd["param_groups"][0], "lr": -1}]}, ValueError,
     r"Adam.load_state_dict: lr must be a number >= 0.0, got -1"),
    ("maximize", lambda sd: {**sd, "param_groups": [{**sd["param_groups"][0], "maximize": True}]}, ValueError,
     r"Adam.load_state_dict: options \{'maximize': True\} are not implemented by Adam"),
    ("not a state dict", lambda sd: sd["state"], ValueError, r"Adam.load_state_dict: expected a dict with keys"),
]


@pytest.mark.parametrize("name, change, error, match", LOAD_ERRORS, ids=[e[0] for e in LOAD_ERRORS])
def test_load_state_dict_errors(name, change, error, match):
    p = nn.Parameter(np.zeros(3))
    opt = optim.Adam([p])
    p.grad = np.ones(3)
    opt.step()
    with pytest.raises(error, match=match):
        optim.Adam([nn.Parameter(np.zeros(3))]).load_state_dict(change(opt.state_dict()))


def test_nan_gradient_is_refused():
    p = nn.Parameter(np.zeros(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.array([0.0, np.nan, 1.0])
    with pytest.raises(ValueError, match=r"SGD.step: the gradient of parameter 0 of group 0 \(shape \(3,\)\) contains 1 NaN"):
        opt.step()
    np.testing.assert_array_equal(p.data, 0)


def test_docstring_examples_run():
    result = doctest.testmod(cnnbook.scratch.optim)
    assert result.attempted > 3 and result.failed == 0
