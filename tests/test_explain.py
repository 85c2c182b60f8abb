"""cnnbook.pytorch.explain: saliency and Grad-CAM against their definitions, on small models."""
import matplotlib
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from cnnbook.pytorch import explain as E
from cnnbook.pytorch.classifier import FashionCNN

matplotlib.use("Agg")


def linear_model(c=2, h=5, w=4, k=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k))


def cam_model(c_in=1, k=4, classes=3, seed=0):
    """conv -> ReLU -> global average pool -> linear: Grad-CAM reduces to CAM (Zhou et al., 2016)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(c_in, k, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(k, classes))


# ---------------------------------------------------------------- saliency

def test_saliency_of_a_linear_model_is_the_weight_row():
    """Golden case: score_c = w_c . x + b_c, so d score_c / dx = w_c whatever x is."""
    model = linear_model()
    x = torch.randn(3, 2, 5, 4)
    got = E.saliency(model, x, target=[0, 2, 1])
    w = model[1].weight.detach().reshape(3, 2, 5, 4)
    want = w[[0, 2, 1]].abs().amax(dim=1)
    torch.testing.assert_close(got, want)


@given(n=st.integers(1, 4), c=st.integers(1, 3), size=st.integers(4, 9), seed=st.integers(0, 1000))
def test_saliency_matches_autograd_image_by_image(n, c, size, seed):
    model = cam_model(c_in=c, seed=seed)
    x = torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed))
    got = E.saliency(model, x)                                    # target: the predicted class
    for i in range(n):
        xi = x[i:i + 1].clone().requires_grad_(True)
        out = model(xi)
        (g,) = torch.autograd.grad(out[0, out.argmax()], xi)
        torch.testing.assert_close(got[i], g[0].abs().amax(0))


def test_saliency_keeps_weights_and_mode():
    model = FashionCNN((4,), hidden=8).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    E.saliency(model, torch.randn(2, 1, 28, 28), target=3)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # BN stats too


def test_saliency_rejects_bad_input():
    with pytest.raises(ValueError, match=r"saliency: images must be a batch \(N, C, H, W\), got shape \(5, 4\)"):
        E.saliency(linear_model(), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="saliency: target has 2 entries for 3 images"):
        E.saliency(linear_model(), torch.zeros(3, 2, 5, 4), target=[0, 1])


# ---------------------------------------------------------------- Grad-CAM

def test_grad_cam_with_global_average_pooling_is_cam():
    """Golden case: with GAP then a linear layer, the Grad-CAM weights are fc.weight[c] / (h*w)."""
    model = cam_model()
    x = torch.randn(2, 1, 6, 6)
    got = E.grad_cam(model, x, model[1], target=[2, 0])
    acts = model[1](model[0](x)).detach()                         # (2, 4, 6, 6)
    w = model[4].weight.detach()[[2, 0]]                          # (2, 4)
    cam = torch.relu((w[:, :, None, None] * acts).sum(1)) / 36    # same size: no upsampling
    want = cam / cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    torch.testing.assert_close(got, want)


def test_grad_cam_upsamples_to_the_image_and_lies_in_0_1():
    torch.manual_seed(0)
    model = FashionCNN((4, 8), hidden=8)
    x = torch.randn(3, 1, 28, 28)
    cam = E.grad_cam(model, x, model.relu2)                       # relu2 is 7x7
    assert cam.shape == (3, 28, 28)
    assert cam.min() >= 0 and cam.max() <= 1 + 1e-6
    assert model.training                                          # mode restored


def test_grad_cam_rejects_foreign_or_flat_layers():
    model = cam_model()
    with pytest.raises(ValueError, match="grad_cam: layer Conv2d is not a submodule of the model"):
        E.grad_cam(model, torch.zeros(1, 1, 6, 6), nn.Conv2d(1, 1, 3))
    with pytest.raises(ValueError, match=r"grad_cam: the layer's output has shape \(1, 4\)"):
        E.grad_cam(model, torch.zeros(1, 1, 6, 6), model[3])


def test_show_explanations_draws_one_row_per_map():
    imgs = torch.rand(3, 1, 8, 8)
    fig = E.show_explanations(imgs, {"saliency": torch.rand(3, 8, 8), "Grad-CAM": torch.rand(3, 8, 8)},
                              titles=["a", "b", "c"])
    assert len(fig.axes) == 9
    assert fig.axes[3].get_ylabel() == "saliency" and fig.axes[0].get_title() == "a"
