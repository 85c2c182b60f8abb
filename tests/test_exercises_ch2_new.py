"""The checkers of chapter 2's backward-pass and receptive-field exercises (§2.7, §2.9).

Each gets a correct answer written independently of the checker (loops, or torch), in float64
and in float32 (a correct float32 answer must pass), and the wrong answers students write,
with the hint each one gets pinned.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from cnnbook.book import exercises as ex


def assert_fails_with(feedback, *fragments):
    text = str(feedback)
    assert not feedback and text.startswith("✗"), text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in feedback:\n{text}"


def assert_passes(feedback):
    assert feedback and str(feedback).startswith("✓"), str(feedback)


# --------------------------------------------------------------------------- conv2d backward

def conv_backward_loops(grad_output, x, weight, stride=1, padding=0, dtype=np.float64, flip=False, first=False):
    """Each output window sends g * kernel back to its pixels and g * pixels to the kernel."""
    g, w = grad_output.astype(dtype), weight.astype(dtype)
    if flip:
        w = w[:, :, ::-1, ::-1]
    xp = np.pad(x.astype(dtype), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    kh, kw = w.shape[2:]
    for i, j in np.ndindex(g.shape[2:]):
        r, c = i * stride, j * stride
        images = slice(0, 1) if first else slice(None)
        gw += np.einsum("no,nckl->ockl", g[images, :, i, j], xp[images, :, r:r + kh, c:c + kw])
        gxp[:, :, r:r + kh, c:c + kw] += np.einsum("no,ockl->nckl", g[:, :, i, j], w)
    return gxp[:, :, padding:padding + x.shape[2], padding:padding + x.shape[3]], gw


def conv_backward_torch32(grad_output, x, weight, stride=1, padding=0):
    tx = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    tw = torch.tensor(weight, dtype=torch.float32, requires_grad=True)
    TF.conv2d(tx, tw, stride=stride, padding=padding).backward(torch.tensor(grad_output, dtype=torch.float32))
    return tx.grad, tw.grad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_backward_accepts_loops(dtype):
    assert_passes(ex.check_conv2d_backward(lambda g, x, w, stride=1, padding=0:
                                           conv_backward_loops(g, x, w, stride, padding, dtype)))


def test_conv2d_backward_accepts_float32_torch_tensors():
    assert_passes(ex.check_conv2d_backward(conv_backward_torch32))


def test_conv2d_backward_float32_is_not_judged_at_float64_precision():
    """The float32 answer differs from the float64 reference by more than float64's rtol."""
    rng = np.random.default_rng(0)
    x, w, g = rng.normal(size=(2, 3, 5, 5)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=(2, 4, 3, 3))
    gx32 = conv_backward_loops(g, x, w, dtype=np.float32)[0]
    gx64 = conv_backward_loops(g, x, w)[0]
    assert not np.allclose(gx32, gx64, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv2d_backward_flipped_kernel(dtype):
    wrong = lambda g, x, w, stride=1, padding=0: conv_backward_loops(g, x, w, stride, padding, dtype, flip=True)  # noqa: E731
    assert_fails_with(ex.check_conv2d_backward(wrong), "grad_x differs")
    if dtype == np.float64:
        assert_fails_with(ex.check_conv2d_backward(wrong), "flipped once, not twice")


def test_conv2d_backward_first_image_only():
    wrong = lambda g, x, w, stride=1, padding=0: conv_backward_loops(g, x, w, stride, padding, first=True)  # noqa: E731
    assert_fails_with(ex.check_conv2d_backward(wrong), "grad_weight differs", "not just the first")


def test_conv2d_backward_ignores_stride():
    wrong = lambda g, x, w, stride=1, padding=0: conv_backward_loops(g, x, w, 1, padding)  # noqa: E731
    assert_fails_with(ex.check_conv2d_backward(wrong), "3 of 5 cases pass", "grad_x differs")


def test_conv2d_backward_wrong_return_types():
    assert_fails_with(ex.check_conv2d_backward(lambda g, x, w, stride=1, padding=0: None),
                      "did you forget `return`?")
    assert_fails_with(ex.check_conv2d_backward(lambda g, x, w, stride=1, padding=0: np.zeros(3)),
                      "expected a tuple (grad_x, grad_weight)")
    swapped = lambda g, x, w, stride=1, padding=0: conv_backward_loops(g, x, w, stride, padding)[::-1]  # noqa: E731
    assert_fails_with(ex.check_conv2d_backward(swapped), "grad_x shape")


# --------------------------------------------------------------------------- receptive field

def receptive_field(layers):
    r, jump = 1, 1
    for layer in layers:
        r += layer["dilation"] * (layer["kernel_size"] - 1) * jump
        jump *= layer["stride"]
    return r


def test_receptive_field_accepts_the_recurrence():
    assert_passes(ex.check_receptive_field(receptive_field))


def test_receptive_field_accepts_numpy_integers():
    assert_passes(ex.check_receptive_field(lambda layers: np.int64(receptive_field(layers))))


def test_receptive_field_hints():
    no_jump = lambda layers: 1 + sum(l["dilation"] * (l["kernel_size"] - 1) for l in layers)  # noqa: E731,E741

    def jump_after(layers):
        r, jump = 1, 1
        for layer in layers:
            jump *= layer["stride"]
            r += layer["dilation"] * (layer["kernel_size"] - 1) * jump
        return r

    no_dilation = lambda layers: receptive_field([{**l, "dilation": 1} for l in layers])  # noqa: E731,E741
    assert_fails_with(ex.check_receptive_field(no_jump), "product of the strides of the layers before it")
    assert_fails_with(ex.check_receptive_field(jump_after), "does not widen its own window")
    assert_fails_with(ex.check_receptive_field(no_dilation), "spans dilation*(kernel_size-1)+1 pixels")
    assert_fails_with(ex.check_receptive_field(lambda layers: None), "did you forget `return`?")
    assert_fails_with(ex.check_receptive_field(lambda layers: (receptive_field(layers), 1)), "expected one int")


# --------------------------------------------------------------------------- layer norm backward

def layer_norm_backward_torch(grad_output, x, weight, eps=1e-5, dtype=torch.float64):
    tx = torch.tensor(x, dtype=dtype, requires_grad=True)
    tw = torch.tensor(weight, dtype=dtype, requires_grad=True)
    tb = torch.zeros(weight.shape, dtype=dtype, requires_grad=True)
    TF.layer_norm(tx, weight.shape, tw, tb, eps=eps).backward(torch.tensor(grad_output, dtype=dtype))
    return tx.grad, tw.grad, tb.grad


def layer_norm_backward_numpy(grad_output, x, weight, eps=1e-5, dtype=np.float64, drop=None, axis=1):
    g, x, w = (a.astype(dtype) for a in (grad_output, x, weight))
    inv_std = 1 / np.sqrt(x.var(axis=axis, keepdims=True) + eps)
    xhat = (x - x.mean(axis=axis, keepdims=True)) * inv_std
    gh = g * w
    grad_x = gh - (0 if drop == "mean" else gh.mean(axis=axis, keepdims=True))
    grad_x = grad_x - (0 if drop == "var" else xhat * (gh * xhat).mean(axis=axis, keepdims=True))
    return inv_std * grad_x, (g * xhat).sum(axis=0), g.sum(axis=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_norm_backward_accepts_numpy(dtype):
    assert_passes(ex.check_layer_norm_backward(
        lambda g, x, w, eps=1e-5: layer_norm_backward_numpy(g, x, w, eps, dtype)))


def test_layer_norm_backward_accepts_float32_torch():
    assert_passes(ex.check_layer_norm_backward(
        lambda g, x, w, eps=1e-5: layer_norm_backward_torch(g, x, w, eps, torch.float32)))


@pytest.mark.parametrize("drop, hint", [("var", "the path through the variance is missing"),
                                        ("mean", "the path through the mean is missing")])
def test_layer_norm_backward_missing_paths(drop, hint):
    wrong = lambda g, x, w, eps=1e-5: layer_norm_backward_numpy(g, x, w, eps, drop=drop)  # noqa: E731
    assert_fails_with(ex.check_layer_norm_backward(wrong), "grad_x differs", hint)
    wrong32 = lambda g, x, w, eps=1e-5: layer_norm_backward_numpy(g, x, w, eps, np.float32, drop=drop)  # noqa: E731
    assert_fails_with(ex.check_layer_norm_backward(wrong32), "grad_x differs")


def test_layer_norm_backward_batch_axis_and_weight():
    def batch_axis(g, x, w, eps=1e-5):
        gx = layer_norm_backward_numpy(g, x, w, eps, axis=0)[0]
        return (gx,) + layer_norm_backward_numpy(g, x, w, eps)[1:]
    assert_fails_with(ex.check_layer_norm_backward(batch_axis), "per sample (axis=1)")

    def no_weight(g, x, w, eps=1e-5):
        return (layer_norm_backward_numpy(g, x, np.ones_like(w), eps)[0],) + layer_norm_backward_numpy(g, x, w, eps)[1:]
    assert_fails_with(ex.check_layer_norm_backward(no_weight), "multiply the incoming gradient by weight")


def test_layer_norm_backward_wrong_bias_and_returns():
    def bias_mean(g, x, w, eps=1e-5):
        gx, gw, _ = layer_norm_backward_numpy(g, x, w, eps)
        return gx, gw, g.mean(axis=0)
    assert_fails_with(ex.check_layer_norm_backward(bias_mean), "grad_bias differs")
    assert_fails_with(ex.check_layer_norm_backward(lambda g, x, w, eps=1e-5: layer_norm_backward_numpy(g, x, w)[:2]),
                      "expected a tuple (grad_x, grad_weight, grad_bias)")
