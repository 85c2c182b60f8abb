"""cnnbook.scratch.functional against PyTorch: values and gradients, loop == vectorized, golden cases, errors."""
import os
import signal
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, strategies as st

from cnnbook.scratch import checks, fast, functional as F, nn

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}


def assert_close(ours, theirs, dtype=np.float64):
    """Same shape, same dtype, same values within the dtype's tolerance."""
    ours = np.asarray(ours)
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    assert ours.dtype == np.dtype(dtype), ours.dtype
    np.testing.assert_allclose(ours, theirs, **TOL[np.dtype(dtype).type])


def torch_run(fn, arrays, seed=0):
    """Run ``fn`` in torch on copies of ``arrays`` and backpropagate a random gradient.

    Returns ``(output, grad_output, grads)``; a grad is None where the array is None.
    """
    tensors = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    grad = np.asarray(np.random.default_rng(seed).standard_normal(tuple(out.shape)), dtype=arrays[0].dtype)
    out.backward(torch.from_numpy(grad))
    return out.detach().numpy(), grad, [None if t is None else t.grad.numpy() for t in tensors]


def randn(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------
@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
                             st.sampled_from(["valid", "same"])))
    stride = 1 if padding == "same" else draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    pair = padding if isinstance(padding, tuple) else (padding, padding)
    size = []
    for a in (0, 1):
        span = dilation[a] * (kernel[a] - 1) + 1
        pad_total = {"valid": 0, "same": span - 1}.get(pair[a], 2 * pair[a] if isinstance(pair[a], int) else 0)
        size.append(max(1, span - pad_total) + draw(st.integers(0, 4)))
    return dict(shape=(draw(st.integers(1, 3)), c_in, *size), weight=(c_out, c_in // groups, *kernel),
                bias=draw(st.booleans()), stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv_arrays(case, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    bias = randn(rng, case["weight"][0], dtype=dtype) if case["bias"] else None
    return randn(rng, *case["shape"], dtype=dtype), randn(rng, *case["weight"], dtype=dtype), bias


def conv_kwargs(case):
    return {k: case[k] for k in ("stride", "padding", "dilation", "groups")}


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@given(conv_cases())
def test_conv2d_matches_torch_values_and_gradients(case):
    x, w, b = conv_arrays(case)
    kw = conv_kwargs(case)
    out, grad, (gx, gw, gb) = torch_run(lambda x, w, b: TF.conv2d(x, w, b, **kw), [x, w, b])
    assert_close(F.conv2d(x, w, b, **kw), out)
    ours = F.conv2d_backward(grad, x, w, b, **kw)
    for mine, theirs in zip(ours, (gx, gw, gb)):
        if theirs is None:
            assert mine is None
        else:
            assert_close(mine, theirs)


@given(conv_cases())
def test_conv2d_loop_equals_vectorized(case):
    x, w, b = conv_arrays(case, seed=1)
    kw = conv_kwargs(case)
    np.testing.assert_allclose(F.conv2d_loop(x, w, b, **kw), F.conv2d(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    grad = np.random.default_rng(2).standard_normal(F.conv2d(x, w, b, **kw).shape)
    for loop, fast in zip(F.conv2d_backward_loop(grad, x, w, b, **kw), F.conv2d_backward(grad, x, w, b, **kw)):
        if fast is None:
            assert loop is None
        else:
            np.testing.assert_allclose(loop, fast, rtol=1e-12, atol=1e-12)


def assert_grads(ours, theirs, close=assert_close):
    """Gradients equal (None where the other side has None)."""
    for mine, other in zip(ours, theirs, strict=True):
        if other is None:
            assert mine is None
        else:
            close(mine, other)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("shape, weight, kw", [
    ((4, 1, 28, 28), (8, 1, 3, 3), dict(padding=1)),
    ((2, 6, 9, 11), (6, 2, 3, 2), dict(stride=2, dilation=(1, 2), groups=3, padding="valid")),
    ((2, 3, 8, 8), (4, 3, 4, 4), dict(padding="same", dilation=2)),
    ((2, 32, 28, 28), (32, 32, 3, 3), dict(padding=1)),              # the layers' shifted-view path from here on
    ((2, 32, 14, 14), (64, 32, 3, 3), dict(padding=1)),
    ((2, 64, 14, 14), (64, 64, 3, 3), dict(padding=1)),
    ((2, 16, 9, 7), (8, 16, 2, 3), dict(padding="same", dilation=(1, 2))),
    ((3, 16, 6, 5), (4, 16, 1, 3), dict(padding=(2, 0))),            # padding beyond the kernel's span
])
@pytest.mark.parametrize("via", ["functional", "fast"])
def test_conv2d_float32_matches_torch(shape, weight, kw, via):
    case = dict(shape=shape, weight=weight, bias=True)
    x, w, b = conv_arrays(case, dtype=np.float32)
    out, grad, grads = torch_run(lambda x, w, b: TF.conv2d(x, w, b, **kw), [x, w, b])
    if via == "functional":
        ours = (F.conv2d(x, w, b, **kw), *F.conv2d_backward(grad, x, w, b, **kw))
    else:
        mine, backward = fast.conv2d_forward(x, w, b, **kw)
        ours = (mine, *backward(grad))
    for mine, theirs in zip(ours, (out, *grads)):
        assert mine.dtype == np.float32 and mine.shape == theirs.shape
        # float32 sums of hundreds of terms: absolute error grows with the values' size
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(theirs).max()))


# ---------------------------------------------------------------------------------------
# conv2d's fast paths (cnnbook.scratch.fast), each forced for any shape
# ---------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("path", fast.CONV2D_PATHS)
@given(case=conv_cases())
def test_conv2d_fast_paths_match_torch_and_loop(path, case):
    """Every path, forced through ``path=``, gives torch's values and gradients and the loop version's."""
    if path == "shifted":                                   # stride 1, one group: the path's preconditions
        case = dict(case, stride=1, groups=1, weight=(case["weight"][0], case["shape"][1], *case["weight"][2:]))
    x, w, b = conv_arrays(case, seed=2)
    kw = conv_kwargs(case)
    out, grad, grads = torch_run(lambda x, w, b: TF.conv2d(x, w, b, **kw), [x, w, b])
    mine, backward = fast.conv2d_forward(x, w, b, **kw, path=path)
    assert_close(mine, out)
    ours = backward(grad)
    assert_grads(ours, grads)
    loop = F.conv2d_backward_loop(grad, x, w, b, **kw)
    assert_grads(ours, loop, lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12))
    assert backward(grad, input_grad=False)[0] is None


@pytest.mark.parametrize("padding, kernel, dilation", [((1, 2), (2, 4), (1, 1)), ((0, 1), (1, 2), (1, 2)),
                                                        ((2, 0), (1, 1), (1, 1)), ("same", (2, 3), (1, 2))])
def test_conv2d_shifted_path_at_the_padded_edges(padding, kernel, dilation):
    """Padding wider than the kernel's span and asymmetric 'same' padding: the shifted views
    read zeros wherever a tap falls off the image, never a neighbouring row's pixels."""
    rng = np.random.default_rng(3)
    x, w = randn(rng, 2, 3, 4, 5), randn(rng, 2, 3, *kernel)
    kw = dict(padding=padding, dilation=dilation)
    out, grad, grads = torch_run(lambda x, w: TF.conv2d(x, w, **kw), [x, w])
    mine, backward = fast.conv2d_forward(x, w, **kw, path="shifted")
    assert_close(mine, out)
    assert_grads(backward(grad)[:2], grads)


def test_conv2d_threads_split_the_batch_without_changing_results():
    rng = np.random.default_rng(0)
    x, w, g = randn(rng, 5, 16, 7, 6), randn(rng, 4, 16, 3, 3), randn(rng, 5, 4, 7, 6)
    before = fast.get_num_threads()
    try:
        results = {}
        for threads in (1, 3):
            fast.set_num_threads(threads)
            assert fast.get_num_threads() == threads
            for path in fast.CONV2D_PATHS:
                out, backward = fast.conv2d_forward(x, w, padding=1, path=path)
                results[threads, path] = (out, *backward(g)[:2])
    finally:
        fast.set_num_threads(before)
    for path in fast.CONV2D_PATHS:
        for one, three in zip(results[1, path], results[3, path]):
            np.testing.assert_allclose(one, three, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"set_num_threads: num_threads must be >= 1, got 0"):
        F.set_num_threads(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_conv2d_threads_work_in_a_forked_child():
    """A forked child inherits the thread pool but not its threads: it must make its own."""
    rng = np.random.default_rng(0)
    x, w = randn(rng, 4, 16, 6, 6), randn(rng, 3, 16, 3, 3)
    before = fast.get_num_threads()
    fast.set_num_threads(2)
    try:
        expected = fast.conv2d_forward(x, w, padding=1)[0]      # starts the pool's threads here
        pid = os.fork()
        if pid == 0:
            os._exit(0 if np.allclose(fast.conv2d_forward(x, w, padding=1)[0], expected) else 1)
        for _ in range(200):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("conv2d hung in a forked child")
    finally:
        fast.set_num_threads(before)
    assert status == 0


def test_conv2d_path_choice():
    """Wide stride-1 convolutions skip im2col; strided, grouped or narrow ones keep it, batch first on large outputs."""
    assert fast.conv2d_path((8, 16, 3, 3), (1, 1), 1, (7, 7)) == "shifted"
    assert fast.conv2d_path((8, 16, 3, 3), (2, 1), 1, (28, 28)) == "im2col_batch_first"
    assert fast.conv2d_path((8, 8, 3, 3), (1, 1), 2, (7, 7)) == "im2col_batch_last"
    assert fast.conv2d_path((8, 3, 3, 3), (1, 1), 1, (16, 16)) == "im2col_batch_first"
    with pytest.raises(ValueError, match=r"conv2d: path='shifted' needs stride=1 and groups=1"):
        fast.conv2d_forward(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), stride=2, path="shifted")
    with pytest.raises(ValueError, match=r"conv2d: path must be None or one of"):
        fast.conv2d_forward(np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3)), path="winograd")


def test_conv2d_golden():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])          # x[i, j] - x[i+1, j+1] = -5 everywhere
    np.testing.assert_array_equal(F.conv2d(x, w, np.array([1.0])), np.full((1, 1, 3, 3), -4.0))
    np.testing.assert_array_equal(F.conv2d(x, w, stride=2), np.full((1, 1, 2, 2), -5.0))
    gx, gw, gb = F.conv2d_backward(np.ones((1, 1, 3, 3)), x, w, np.array([1.0]))
    np.testing.assert_array_equal(gw, [[[[45.0, 54.0], [81.0, 90.0]]]])  # sums of the 3x3 corners
    np.testing.assert_array_equal(gb, [9.0])
    np.testing.assert_array_equal(gx[0, 0, 0], [1.0, 1.0, 1.0, 0.0])


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv2d_same_padding_puts_odd_pixel_last():
    x = np.random.default_rng(0).standard_normal((1, 1, 5, 5))
    w = np.random.default_rng(1).standard_normal((1, 1, 2, 2))
    assert F.conv2d(x, w, padding="same").shape == (1, 1, 5, 5)
    np.testing.assert_allclose(F.conv2d(x, w, padding="same"),
                               TF.conv2d(torch.tensor(x), torch.tensor(w), padding="same").numpy())


# ---------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------
@st.composite
def pool_cases(draw, dilated=True):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    size = [max(1, dilation[a] * (kernel[a] - 1) + 1 - 2 * padding[a]) + draw(st.integers(0, 5)) for a in (0, 1)]
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()))
    if dilated:
        kw["dilation"] = dilation
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size), kw


@given(pool_cases())
def test_max_pool2d_matches_torch_values_indices_and_gradient(case):
    shape, kw = case
    x = randn(np.random.default_rng(0), *shape)
    t = torch.tensor(x, requires_grad=True)
    t_out, t_idx = TF.max_pool2d(t, return_indices=True, **kw)
    if torch.isinf(t_out).any():             # a dilated window saw only padding: torch answers -inf
        with pytest.raises(ValueError, match="covers only padding"):   # and an index outside the input
            F.max_pool2d(x, **kw)
        return
    grad = np.random.default_rng(1).standard_normal(tuple(t_out.shape))
    t_out.backward(torch.tensor(grad))
    out, idx = F.max_pool2d(x, return_indices=True, **kw)
    assert_close(out, t_out)
    np.testing.assert_array_equal(idx, t_idx.numpy())
    assert idx.dtype == np.int64
    assert_close(F.max_pool2d_backward(grad, x, **kw), t.grad)
    assert_close(F.max_pool2d_backward(grad, x, indices=idx, **kw), t.grad)
    np.testing.assert_array_equal(F.max_pool2d_loop(x, **kw), out)


def test_max_pool2d_nan_and_inf_follow_torch():
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = np.nan
    x[1, 1, 3:, 3:] = -np.inf                              # windows with nothing but -inf
    x[1, 0, 3, 3] = np.inf
    for kw in (dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=2, ceil_mode=True, padding=1)):
        out, idx = F.max_pool2d(x, return_indices=True, **kw)
        t_out, t_idx = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
        np.testing.assert_array_equal(out, t_out.numpy())
        np.testing.assert_array_equal(idx, t_idx.numpy())


def test_max_pool2d_golden_ties_go_to_the_first_maximum():
    x = np.ones((1, 1, 2, 4), dtype=np.float32)
    x[0, 0, 1, 3] = 2.0
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(out, [[[[1.0, 2.0]]]])
    np.testing.assert_array_equal(idx, [[[[0, 7]]]])
    np.testing.assert_array_equal(F.max_pool2d_backward(np.ones((1, 1, 1, 2), np.float32), x, 2),
                                  [[[[1, 0, 0, 0], [0, 0, 0, 1]]]])


@given(st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(st.integers(0, 2), st.integers(0, 2)),
       st.booleans(), st.sampled_from([np.float32, np.float64]), st.sampled_from(["ties", "nan", "inf"]))
def test_max_pool2d_tiling_path_matches_torch_and_general_path(kernel, extra, ceil_mode, dtype, special):
    """kernel_size == stride, no padding (MaxPool2d(2)): values, indices and gradients exactly as torch,
    ties (small integers) to the first maximum, NaN and inf in the input and in the gradient."""
    rng = np.random.default_rng(sum(kernel) + 3 * sum(extra))
    x = rng.integers(-2, 3, (3, 2, 2 * kernel[0] + extra[0], 2 * kernel[1] + extra[1])).astype(dtype)
    x.flat[rng.integers(0, x.size, 3)] = {"ties": 0.0, "nan": np.nan, "inf": -np.inf}[special]
    kw = dict(kernel_size=kernel, ceil_mode=ceil_mode)
    t = torch.tensor(x, requires_grad=True)
    t_out, t_idx = TF.max_pool2d(t, return_indices=True, **kw)
    grad = randn(rng, *t_out.shape, dtype=dtype)
    grad.flat[0] = {"ties": 1.0, "nan": np.nan, "inf": np.inf}[special]   # reaches only its winner
    t_out.backward(torch.from_numpy(grad))
    divisible = all(size % k == 0 for size, k in zip(x.shape[2:], kernel))
    if ceil_mode and not divisible:                          # a partial last window: only the general path
        with pytest.raises(ValueError, match="max_pool2d: path must be None, 'general' or"):
            fast.max_pool2d_forward(x, **kw, path="tiles")
        return
    results = [fast.max_pool2d_forward(x, **kw, return_indices=True, path=path) for path in ("tiles", "general")]
    results.append(((*F.max_pool2d(x, **kw, return_indices=True),), lambda g: F.max_pool2d_backward(g, x, **kw)))
    for (out, idx), backward in results:
        np.testing.assert_array_equal(out, t_out.detach().numpy())
        np.testing.assert_array_equal(idx, t_idx.numpy())
        grad_input = backward(grad)
        assert grad_input.dtype == dtype and not np.signbit(grad_input[grad_input == 0]).any()
        np.testing.assert_array_equal(grad_input, t.grad.numpy())


def test_max_pool2d_tiling_path_splits_the_batch_without_changing_results():
    x = np.maximum(randn(np.random.default_rng(0), 5, 3, 8, 6, dtype=np.float32), 0)   # ReLU'd: ties at 0
    g = randn(np.random.default_rng(1), 5, 3, 4, 3, dtype=np.float32)
    before = fast.get_num_threads()
    try:
        results = []
        for threads in (1, 3):
            fast.set_num_threads(threads)
            (out, idx), backward = fast.max_pool2d_forward(x, 2, return_indices=True, path="tiles")
            results.append((out, idx, backward(g)))
    finally:
        fast.set_num_threads(before)
    for one, three in zip(*results):
        np.testing.assert_array_equal(one, three)


@given(pool_cases(dilated=False), st.booleans(), st.sampled_from([None, 1, 3]))
def test_avg_pool2d_matches_torch_and_loop(case, count_include_pad, divisor_override):
    shape, kw = case
    kw = dict(kw, count_include_pad=count_include_pad, divisor_override=divisor_override)
    x = randn(np.random.default_rng(0), *shape)
    out, grad, (gx,) = torch_run(lambda t: TF.avg_pool2d(t, **kw), [x])
    assert_close(F.avg_pool2d(x, **kw), out)
    assert_close(F.avg_pool2d_backward(grad, x, **kw), gx)
    np.testing.assert_allclose(F.avg_pool2d_loop(x, **kw), out, rtol=1e-12, atol=1e-12)


def test_avg_pool2d_golden_edge_divisors():
    ones = np.ones((1, 1, 5, 5))
    out = F.avg_pool2d(ones, 2, stride=2, padding=1, ceil_mode=True)
    np.testing.assert_array_equal(out[0, 0], [[0.25, 0.5, 0.5], [0.5, 1, 1], [0.5, 1, 1]])
    np.testing.assert_array_equal(F.avg_pool2d(ones, 2, padding=1, count_include_pad=False), np.ones((1, 1, 3, 3)))
    # the last ceil-mode window (rows 4..6 of 6) is cut at the input's edge: divisor 3*2, not 3*3
    np.testing.assert_array_equal(F.avg_pool2d(np.ones((1, 1, 6, 6)), 3, stride=2, ceil_mode=True), np.ones((1, 1, 3, 3)))


@pytest.mark.parametrize("op", ["max", "avg"])
def test_pools_float32_match_torch(op):
    x = randn(np.random.default_rng(0), 4, 3, 28, 28, dtype=np.float32)
    ours, ours_bwd = (F.max_pool2d, F.max_pool2d_backward) if op == "max" else (F.avg_pool2d, F.avg_pool2d_backward)
    theirs = TF.max_pool2d if op == "max" else TF.avg_pool2d
    out, grad, (gx,) = torch_run(lambda t: theirs(t, 2), [x])
    assert_close(ours(x, 2), out, np.float32)
    assert_close(ours_bwd(grad, x, 2), gx, np.float32)


# ---------------------------------------------------------------------------------------
# activations, softmax, linear
# ---------------------------------------------------------------------------------------
ACTIVATIONS = [
    ("relu", F.relu, lambda x, y, g: F.relu_backward(g, x), TF.relu),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x, y, g: F.leaky_relu_backward(g, x, 0.2),
     lambda t: TF.leaky_relu(t, 0.2)),
    ("sigmoid", F.sigmoid, lambda x, y, g: F.sigmoid_backward(g, y), torch.sigmoid),
    ("tanh", F.tanh, lambda x, y, g: F.tanh_backward(g, y), torch.tanh),
    ("softmax", lambda x: F.softmax(x, dim=1), lambda x, y, g: F.softmax_backward(g, y, dim=1),
     lambda t: TF.softmax(t, dim=1)),
    ("log_softmax", lambda x: F.log_softmax(x, dim=-1), lambda x, y, g: F.log_softmax_backward(g, y, dim=-1),
     lambda t: TF.log_softmax(t, dim=-1)),
]


@pytest.mark.parametrize("name, fwd, bwd, theirs", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), scale=st.sampled_from([1.0, 30.0]))
def test_activation_matches_torch(name, fwd, bwd, theirs, shape, scale):
    x = randn(np.random.default_rng(len(shape)), *shape) * scale   # scale 30: overflow territory
    out, grad, (gx,) = torch_run(theirs, [x])
    y = fwd(x)
    assert_close(y, out)
    assert_close(bwd(x, y, grad), gx)


@pytest.mark.parametrize("name, fwd, bwd, theirs", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_float32(name, fwd, bwd, theirs):
    x = randn(np.random.default_rng(0), 8, 10, dtype=np.float32) * 5
    out, grad, (gx,) = torch_run(theirs, [x])
    assert_close(fwd(x), out, np.float32)
    assert_close(bwd(x, fwd(x), grad), gx, np.float32)


def test_activation_goldens():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(F.relu(x), [0, 0, 3])
    np.testing.assert_array_equal(F.relu_backward(np.ones(3), x), [0, 0, 1])
    np.testing.assert_allclose(F.leaky_relu(x, 0.5), [-1, 0, 3])
    np.testing.assert_allclose(F.leaky_relu_backward(np.ones(3), x, 0.5), [0.5, 0.5, 1])
    np.testing.assert_allclose(F.sigmoid(np.array([0.0, -1000.0, 1000.0])), [0.5, 0.0, 1.0])
    np.testing.assert_allclose(F.tanh(np.array([0.0])), [0.0])
    np.testing.assert_allclose(F.softmax(np.array([[1.0, 1.0, 1.0, 1.0]]), dim=1), [[0.25] * 4])
    np.testing.assert_allclose(F.log_softmax(np.array([[1000.0, 1000.0]]), dim=1), [[-np.log(2)] * 2])


@given(lead=st.lists(st.integers(1, 4), min_size=0, max_size=2), fin=st.integers(1, 6),
       fout=st.integers(1, 6), bias=st.booleans())
def test_linear_matches_torch(lead, fin, fout, bias):
    rng = np.random.default_rng(fin * 10 + fout)
    x, w = randn(rng, *lead, fin), randn(rng, fout, fin)
    b = randn(rng, fout) if bias else None
    out, grad, grads = torch_run(TF.linear, [x, w, b])
    assert_close(F.linear(x, w, b), out)
    assert_grads(F.linear_backward(grad, x, w, b), grads)


def test_linear_golden():
    out = F.linear(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0], [0.0, 2.0]]), np.array([0.5, -1.0]))
    np.testing.assert_array_equal(out, [[3.5, 3.0]])


# ---------------------------------------------------------------------------------------
# batch norm and dropout
# ---------------------------------------------------------------------------------------
@given(ndim=st.integers(2, 4), c=st.integers(1, 3), affine=st.booleans(),
       momentum=st.sampled_from([0.1, 0.5, 1.0]), dtype=st.sampled_from([np.float64, np.float32]))
def test_batch_norm_running_stats_and_gradients_over_steps(ndim, c, affine, momentum, dtype):
    rng = np.random.default_rng(ndim * 7 + c)
    shape = (4, c) + (3,) * (ndim - 2)
    rm, rv = randn(rng, c, dtype=dtype), rng.uniform(0.5, 2, c).astype(dtype)
    w, b = (randn(rng, c, dtype=dtype), randn(rng, c, dtype=dtype)) if affine else (None, None)
    t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
    for step, training in enumerate([True, True, True, False, True, False]):
        x = randn(rng, *shape, dtype=dtype) * 2 + 1
        out, grad, (gx, gw, gb) = torch_run(
            lambda x, w, b: TF.batch_norm(x, t_rm, t_rv, w, b, training, momentum, 1e-5), [x, w, b], seed=step)
        assert_close(F.batch_norm(x, rm, rv, w, b, training, momentum, 1e-5), out, dtype)
        assert_close(rm, t_rm, dtype)                       # updated in place, like torch's
        assert_close(rv, t_rv, dtype)
        assert_grads(F.batch_norm_backward(grad, x, rm, rv, w, b, training, 1e-5), (gx, gw, gb),
                     lambda mine, theirs: assert_close(mine, theirs, dtype))


def test_batch_norm_golden():
    x = np.array([[1.0], [3.0]])
    rm, rv = np.zeros(1), np.ones(1)
    np.testing.assert_allclose(F.batch_norm(x, rm, rv, training=True, eps=0.0), [[-1.0], [1.0]])
    np.testing.assert_allclose(rm, [0.2])                  # 0.9 * 0 + 0.1 * 2
    np.testing.assert_allclose(rv, [1.1])                  # 0.9 * 1 + 0.1 * 2 (unbiased variance of 1, 3)
    np.testing.assert_allclose(F.batch_norm(x, rm, rv, training=False, eps=0.0),
                               (x - 0.2) / np.sqrt(1.1))


def test_batch_norm_without_running_stats_in_training():
    x = randn(np.random.default_rng(0), 5, 2)
    np.testing.assert_allclose(F.batch_norm(x, None, None, training=True),
                               TF.batch_norm(torch.tensor(x), None, None, training=True).numpy())


def test_dropout_statistics_seed_and_gradient():
    x = np.ones((200, 100), dtype=np.float32)
    out, mask = F.dropout(x, 0.3, generator=np.random.default_rng(0), return_mask=True)
    assert out.dtype == np.float32 and mask.dtype == bool
    assert abs(mask.mean() - 0.7) < 0.01                   # 20,000 draws: sd of the mean is 0.003
    np.testing.assert_allclose(out[mask], 1 / 0.7, rtol=1e-6)
    assert np.all(out[~mask] == 0)
    again = F.dropout(x, 0.3, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)              # same seed, same mask
    grad = F.dropout_backward(np.full_like(x, 2.0), mask, 0.3)
    np.testing.assert_allclose(grad, np.where(mask, 2 / 0.7, 0), rtol=1e-6)


def test_dropout_edge_cases():
    x = np.arange(4.0)
    assert F.dropout(x, 0.5, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 0.0), x)
    np.testing.assert_array_equal(F.dropout(x, 1.0), np.zeros(4))
    y = x.copy()
    F.dropout(y, 1.0, inplace=True)
    np.testing.assert_array_equal(y, np.zeros(4))
    np.random.seed(3)
    first = F.dropout(np.ones(50), 0.5)
    np.random.seed(3)
    np.testing.assert_array_equal(F.dropout(np.ones(50), 0.5), first)   # global state when no generator


# ---------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), reduction=st.sampled_from(checks.REDUCTIONS))
def test_mse_loss_matches_torch(shape, reduction):
    rng = np.random.default_rng(len(shape))
    x, t = randn(rng, *shape), randn(rng, *shape)
    out, grad, (gx, _) = torch_run(lambda a, b: TF.mse_loss(a, b, reduction=reduction), [x, t])
    assert_close(F.mse_loss(x, t, reduction), out)
    assert_close(F.mse_loss_backward(grad, x, t, reduction), gx)


@st.composite
def class_cases(draw):
    c = draw(st.integers(2, 5))
    extra = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    target = rng.integers(0, c, size=(n, *extra))
    if draw(st.booleans()):
        target.ravel()[rng.random(target.size) < 0.3] = -100         # some ignored targets
        target.ravel()[0] = 0                                         # keep at least one
    weight = rng.uniform(0.2, 2.0, c) if draw(st.booleans()) else None
    return (randn(rng, n, c, *extra) * 3, target, weight,
            draw(st.sampled_from(checks.REDUCTIONS)), draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])))


@given(class_cases())
def test_cross_entropy_matches_torch(case):
    x, t, w, reduction, ls = case
    kw = dict(weight=None if w is None else torch.tensor(w), reduction=reduction, label_smoothing=ls)
    out, grad, (gx,) = torch_run(lambda a: TF.cross_entropy(a, torch.tensor(t), **kw), [x])
    kw["weight"] = w
    assert_close(F.cross_entropy(x, t, **kw), out)
    assert_close(F.cross_entropy_backward(grad, x, t, **kw), gx)


@given(class_cases())
def test_nll_loss_matches_torch(case):
    x, t, w, reduction, _ = case
    logp = F.log_softmax(x, dim=1)
    out, grad, (gx,) = torch_run(lambda a: TF.nll_loss(a, torch.tensor(t), None if w is None else torch.tensor(w),
                                                       reduction=reduction), [logp])
    assert_close(F.nll_loss(logp, t, w, reduction=reduction), out)
    assert_close(F.nll_loss_backward(grad, logp, t, w, reduction=reduction), gx)


def test_cross_entropy_unbatched_and_float32():
    x = randn(np.random.default_rng(0), 7, dtype=np.float32)
    t = np.array(3)
    out, grad, (gx,) = torch_run(lambda a: TF.cross_entropy(a, torch.tensor(t), label_smoothing=0.2), [x])
    assert_close(F.cross_entropy(x, t, label_smoothing=0.2), out, np.float32)
    assert_close(F.cross_entropy_backward(grad, x, t, label_smoothing=0.2), gx, np.float32)
    x32 = randn(np.random.default_rng(1), 64, 10, dtype=np.float32) * 4
    t32 = np.random.default_rng(2).integers(0, 10, 64)
    out, grad, (gx,) = torch_run(lambda a: TF.cross_entropy(a, torch.tensor(t32)), [x32])
    assert_close(F.cross_entropy(x32, t32), out, np.float32)
    assert_close(F.cross_entropy_backward(grad, x32, t32), gx, np.float32)


def test_loss_goldens():
    x = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    t = np.array([0, 1])
    assert F.cross_entropy(x, t) == pytest.approx((np.log(2) + np.log(4 / 3)) / 2)
    assert F.cross_entropy(x, t, reduction="sum") == pytest.approx(np.log(2) + np.log(4 / 3))
    # softmax - one_hot, divided by N = 2
    np.testing.assert_allclose(F.cross_entropy_backward(1.0, x, t), [[-0.25, 0.25], [0.125, -0.125]])
    assert F.nll_loss(np.log(np.array([[0.5, 0.5]])), np.array([1])) == pytest.approx(np.log(2))
    assert F.mse_loss(np.array([1.0, 3.0]), np.zeros(2)) == 5.0
    np.testing.assert_array_equal(F.mse_loss_backward(1.0, np.array([1.0, 3.0]), np.zeros(2)), [1.0, 3.0])
    assert isinstance(F.mse_loss(np.ones(2, np.float32), np.zeros(2, np.float32)), np.float32)


def test_cross_entropy_all_ignored_is_nan_like_torch():
    x, t = np.zeros((2, 3)), np.array([-100, -100])
    assert np.isnan(F.cross_entropy(x, t))
    assert np.isnan(TF.cross_entropy(torch.tensor(x), torch.tensor(t)).item())


# ---------------------------------------------------------------------------------------
# clear errors, each message pinned
# ---------------------------------------------------------------------------------------
X = np.zeros((2, 3, 8, 8), dtype=np.float32)
W = np.zeros((4, 3, 3, 3), dtype=np.float32)
LOGITS = np.zeros((4, 10))
LABELS = np.array([0, 1, 2, 3])

ERRORS = [
    ("ndim", lambda: F.conv2d(X[0], W), ValueError,
     r"conv2d: input must be 4-dimensional \(N, C_in, H, W\), got shape \(3, 8, 8\); hint: add a batch axis"),
    ("weight ndim", lambda: F.conv2d(X, W[0]), ValueError, r"conv2d: weight must be 4-dimensional"),
    ("channels", lambda: F.conv2d(X, W[:, :1]), ValueError,
     r"conv2d: input has 3 channels but weight expects 1 .*input \(2, 3, 8, 8\), weight \(4, 1, 3, 3\)"),
    ("groups divide", lambda: F.conv2d(X, W[:, :1], groups=2), ValueError,
     r"conv2d: groups=2 must divide both the input channels \(3\) and the output channels \(4\)"),
    ("groups channels", lambda: F.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((4, 1, 3, 3)), groups=2),
     ValueError, r"input has 4 channels but weight expects 2 \(weight.shape\[1\]=1 times groups=2\)"),
    ("groups zero", lambda: F.conv2d(X, W, groups=0), ValueError, r"conv2d: groups must be >= 1, got 0"),
    ("kernel too large", lambda: F.conv2d(X[:, :, :2, :2], W), ValueError,
     r"conv2d: kernel 3x3 \(dilation 1x1\) spans 3 pixels, larger than the padded input size 2"),
    ("output below 1", lambda: F.max_pool2d(X, 3, dilation=4), ValueError,
     r"max_pool2d: .*the output size would be below 1"),
    ("stride", lambda: F.conv2d(X, W, stride=0), ValueError, r"conv2d: stride must be >= 1, got 0; hint"),
    ("pool stride", lambda: F.max_pool2d(X, 2, stride=(1, 0)), ValueError, r"max_pool2d: stride must be >= 1"),
    ("dilation", lambda: F.conv2d(X, W, dilation=0), ValueError, r"conv2d: dilation must be >= 1, got 0"),
    ("negative padding", lambda: F.conv2d(X, W, padding=-1), ValueError, r"conv2d: padding must be >= 0, got -1"),
    ("same strided", lambda: F.conv2d(X, W, stride=2, padding="same"), ValueError,
     r"conv2d: padding='same' needs stride=1, got stride=\(2, 2\)"),
    ("padding word", lambda: F.conv2d(X, W, padding="full"), ValueError,
     r"padding must be an int, a pair, 'valid' or 'same', got 'full'"),
    ("stride type", lambda: F.conv2d(X, W, stride=1.5), TypeError, r"conv2d: stride must be an int or a pair of ints, got 1.5"),
    ("kernel_size", lambda: F.avg_pool2d(X, 0), ValueError, r"avg_pool2d: kernel_size must be >= 1, got 0"),
    ("padding-only window", lambda: F.max_pool2d(np.zeros((1, 1, 1, 1)), (1, 2), padding=(0, 1), dilation=(1, 2)),
     ValueError, r"max_pool2d: with kernel_size=\(1, 2\), dilation=\(1, 2\) and padding=\(0, 1\), the window of "
     r"output column 0 covers only padding, no input pixel"),
    ("pool padding", lambda: F.max_pool2d(X, 3, padding=2), ValueError,
     r"max_pool2d: padding must be at most half of kernel_size, got padding=\(2, 2\)"),
    ("int dtype", lambda: F.conv2d(X.astype(np.int64), W), TypeError,
     r"conv2d: input must have dtype float32 or float64, got int64; hint: convert it with input.astype"),
    ("int relu", lambda: F.relu(np.arange(3)), TypeError, r"relu: input must have dtype float32 or float64"),
    ("not array", lambda: F.max_pool2d(X.tolist(), 2), TypeError, r"max_pool2d: input must be a NumPy array, got list"),
    ("torch tensor", lambda: F.relu(torch.zeros(3)), TypeError, r"relu: input must be a NumPy array, got Tensor; hint: call .numpy\(\)"),
    ("mixed dtypes", lambda: F.conv2d(X, W.astype(np.float64)), TypeError,
     r"conv2d: all arrays must have the same dtype, but input is float32, weight is float64"),
    ("bias shape", lambda: F.conv2d(X, W, np.zeros(3, np.float32)), ValueError, r"conv2d: bias must have shape \(4,\)"),
    ("grad_output shape", lambda: F.conv2d_backward(np.zeros((2, 4, 8, 8), np.float32), X, W), ValueError,
     r"conv2d_backward: grad_output must have the shape of the forward output \(2, 4, 6, 6\), got \(2, 4, 8, 8\)"),
    ("divisor", lambda: F.avg_pool2d(X, 2, divisor_override=0), ValueError, r"avg_pool2d: divisor_override must be a non-zero int"),
    ("indices", lambda: F.max_pool2d_backward(np.zeros((2, 3, 4, 4), np.float32), X, 2, indices=np.zeros(3)),
     ValueError, r"max_pool2d_backward: indices must be the int64 array"),
    ("linear features", lambda: F.linear(np.zeros((2, 5)), np.zeros((3, 4))), ValueError,
     r"linear: input has 5 features \(last axis\) but weight expects 4"),
    ("float targets", lambda: F.cross_entropy(LOGITS, LABELS.astype(float)), TypeError,
     r"cross_entropy: target must be an integer array of class indices, got float64; hint: labels.astype\(np.int64\)"),
    ("target range", lambda: F.cross_entropy(LOGITS, np.array([0, 1, 10, 3])), ValueError,
     r"cross_entropy: target values must be class indices in \[0, 9\] .*got 10 at position \(2,\)"),
    ("negative target", lambda: F.nll_loss(LOGITS, np.array([0, -1, 1, 3])), ValueError,
     r"nll_loss: target values must be class indices in \[0, 9\].*got -1"),
    ("target shape", lambda: F.cross_entropy(LOGITS, LABELS[:, None]), ValueError,
     r"cross_entropy: target must have shape \(4,\) .*got \(4, 1\)"),
    ("class weight", lambda: F.cross_entropy(LOGITS, LABELS, weight=np.ones(3)), ValueError,
     r"cross_entropy: weight must have one value per class, shape \(10,\), got \(3,\)"),
    ("mse shapes", lambda: F.mse_loss(np.zeros((3, 2)), np.zeros(3)), ValueError,
     r"mse_loss: input and target must have the same shape, got input \(3, 2\) and target \(3,\)"),
    ("nan logits", lambda: F.cross_entropy(np.where(np.eye(4, 10) > 0, np.nan, 0.0), LABELS), ValueError,
     r"cross_entropy: input contains 4 NaN or infinite value\(s\) out of 40"),
    ("inf target", lambda: F.mse_loss(np.zeros(2), np.array([0.0, np.inf])), ValueError,
     r"mse_loss: target contains 1 NaN or infinite value"),
    ("nan batch norm", lambda: F.batch_norm(np.array([[np.nan], [1.0]]), None, None, training=True), ValueError,
     r"batch_norm: input contains 1 NaN or infinite value"),
    ("reduction", lambda: F.mse_loss(np.zeros(2), np.zeros(2), reduction="avg"), ValueError,
     r"mse_loss: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"),
    ("smoothing", lambda: F.cross_entropy(LOGITS, LABELS, label_smoothing=1.5), ValueError,
     r"cross_entropy: label_smoothing must be a float in \[0, 1\], got 1.5"),
    ("bn one value", lambda: F.batch_norm(np.zeros((1, 3)), None, None, training=True), ValueError,
     r"batch_norm: training needs more than 1 value per channel"),
    ("bn eval", lambda: F.batch_norm(np.zeros((2, 3)), None, None), ValueError,
     r"batch_norm: evaluation \(training=False\) needs running_mean and running_var"),
    ("bn stats shape", lambda: F.batch_norm(np.zeros((2, 3)), np.zeros(2), np.ones(2)), ValueError,
     r"batch_norm: running_mean must have shape \(3,\)"),
    ("dropout p", lambda: F.dropout(np.zeros(3), 1.5), ValueError,
     r"dropout: dropout probability p must be between 0 and 1, got 1.5"),
    ("softmax dim", lambda: F.softmax(LOGITS, None), TypeError, r"softmax: dim must be an int \(e.g. dim=1"),
    ("softmax dim range", lambda: F.log_softmax(LOGITS, 2), ValueError, r"log_softmax: dim must be in \[-2, 1\]"),
    ("loss grad shape", lambda: F.cross_entropy_backward(np.ones(4), LOGITS, LABELS), ValueError,
     r"cross_entropy_backward: grad_output must have the loss's shape \(\) for reduction='mean'"),
]


@pytest.mark.parametrize("name, call, error, match", ERRORS, ids=[e[0] for e in ERRORS])
def test_clear_errors(name, call, error, match):
    with pytest.raises(error, match=match):
        call()
