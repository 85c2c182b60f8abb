"""cnnbook.book.widgets: precomputed frames equal a direct computation, controls are jslink-ed to
every Stack of their level, the ipywidgets-7 fallback (Tab), and the live callbacks."""
import io

import ipywidgets
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, strategies as st
from PIL import Image

from cnnbook.book import widgets as W
from cnnbook.book.widgets._explorer import _container_class, _index_of, _index_trait
from cnnbook.book.widgets._pictures import _square

RNG = np.random.default_rng(0)
IMAGES = {"noise": RNG.random((12, 12)), "square": _square(12)}


def torch_conv(x, k, **kw):
    return TF.conv2d(torch.tensor(x)[None, None], torch.tensor(k)[None, None], **kw)[0, 0].numpy()


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def check_tree(explorer, container=None):
    """Every container is linked by jslink, directly, to the control of its level."""
    container = container or ipywidgets.Stack
    n_levels = len(explorer.controls)
    assert len(explorer.links) == len(explorer.boxes)
    linked = {id(link.target[0]): link for link in explorer.links}
    for prefix, box in explorer.boxes.items():
        assert type(box) is container
        link = linked[id(box)]
        control = explorer.controls[len(prefix)]
        assert link.source == (control, _index_trait(control))
        assert link.target == (box, "selected_index")
        assert len(box.children) == len(explorer.options[len(prefix)])
        assert box.selected_index == _index_of(control)
    leaves = list(__import__("itertools").product(*(range(len(o)) for o in explorer.options)))
    assert sorted(explorer.images) == sorted(explorer.frames) == leaves
    for key in leaves:     # the leaf image sits at the end of the path of its key
        node = explorer.boxes[()]
        for i in key:
            node = node.children[i]
        assert node is explorer.images[key]
    assert n_levels == len(explorer.options)


def check_pictures(explorer):
    """Each picture is the PNG of its frame, and decodes to an RGB image."""
    for key, image in explorer.images.items():
        assert image.format == "png"
        assert image.value == explorer.draw(explorer.frames[key])
        assert decode(image.value).ndim == 3
        assert image.tooltip == explorer.describe(key) and explorer.labels(len(key) - 1)[key[-1]] in image.tooltip
    pictures = [image.value for image in explorer.images.values()]
    assert len(set(pictures)) == len(pictures), "each setting draws its own picture"
    live = [box for box in explorer.children if "cnnbook-live-only" in box._dom_classes]
    assert len(live) == (1 if explorer.live_controls else 0)
    if live:
        assert live[0].children[0].value.startswith("<small><i>Live only")


# ---------------------------------------------------------------------------------------
# kernel explorer
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernels():
    return W.kernel_explorer(IMAGES)


def test_kernel_frames_equal_torch_conv2d(kernels):
    assert len(kernels.frames) == 2 * len(W.CLASSIC_KERNELS)
    for (i, k), frame in kernels.frames.items():
        image = IMAGES[kernels.options[0][i]]
        kernel = np.asarray(W.CLASSIC_KERNELS[kernels.options[1][k]], dtype=np.float64)
        np.testing.assert_array_equal(frame.image, image)
        np.testing.assert_array_equal(frame.kernel, kernel)
        np.testing.assert_allclose(frame.feature_map, torch_conv(image, kernel, padding=1), atol=1e-12)


def test_kernel_pictures_and_links(kernels):
    check_tree(kernels)
    check_pictures(kernels)


def test_kernel_identity_frame_shows_the_image(kernels):
    frame = kernels.frames[(0, kernels.options[1].index("identity"))]
    np.testing.assert_allclose(frame.feature_map, frame.image)


def test_kernel_live_edit_redraws_the_current_picture():
    w = W.kernel_explorer(IMAGES)
    before = w.images[(0, 0)].value
    custom = np.arange(9.0).reshape(3, 3) - 4
    for cell, v in zip(w.cells, custom.ravel()):
        cell.value = float(v)
    expected = torch_conv(IMAGES["noise"], custom, padding=1)
    frame = w.live(w.values())
    np.testing.assert_allclose(frame.feature_map, expected, atol=1e-12)
    assert w.images[(0, 0)].value == w.draw(frame) != before
    w.controls[0].index = 1                       # another image keeps the custom kernel
    np.testing.assert_allclose(w.live(w.values()).kernel, custom)
    w.controls[1].index = 3                       # a preset kernel resets the cells
    chosen = np.asarray(W.CLASSIC_KERNELS[w.options[1][3]])
    np.testing.assert_allclose([c.value for c in w.cells], chosen.ravel())
    assert w.images[(1, 3)].value == w.draw(w.frames[(1, 3)])


def test_kernel_explorer_errors():
    with pytest.raises(ValueError, match=r"kernel_explorer: kernel 'big' must be 3x3, got shape \(5, 5\)"):
        W.kernel_explorer(IMAGES, {"big": np.ones((5, 5))})
    with pytest.raises(TypeError, match="kernel_explorer: images must be a non-empty dict of name -> image, got list"):
        W.kernel_explorer([np.ones((4, 4))])
    with pytest.raises(ValueError, match=r"kernel_explorer: each of images must be a grey image of shape \(H, W\) or \(1, H, W\), got shape \(3, 4, 4\)"):
        W.kernel_explorer({"rgb": np.ones((3, 4, 4))})


# ---------------------------------------------------------------------------------------
# ipywidgets 7 fallback: no Stack -> Tab, same links
# ---------------------------------------------------------------------------------------
def test_fallback_to_tab_without_stack(monkeypatch):
    monkeypatch.delattr(ipywidgets, "Stack")
    assert _container_class() is ipywidgets.Tab
    w = W.pooling_explorer({"square": _square(8)}, kernel_sizes=(2,), shifts=(0, 1))
    check_tree(w, ipywidgets.Tab)
    root = w.boxes[()]
    assert [root.get_title(i) for i in range(len(root.children))] == ["square"]
    assert [w.boxes[(0,)].get_title(i) for i in range(2)] == ["max", "avg"]


# ---------------------------------------------------------------------------------------
# convolution arithmetic
# ---------------------------------------------------------------------------------------
def test_conv_frames_equal_torch_and_the_window_sum():
    w = W.conv_arithmetic()
    check_tree(w)
    check_pictures(w)
    assert len(w.frames) == 9 * len(W.CONV_PRESETS) <= 40
    for (p, step), f in w.frames.items():
        s = W.CONV_PRESETS[p]
        expected = torch_conv(f.input, f.kernel, padding=s.padding, stride=s.stride, dilation=s.dilation)
        np.testing.assert_allclose(f.output, expected, atol=1e-12)
        padded = np.pad(f.input, s.padding)
        i, j = divmod(step, 3)
        taps = np.array(f.window)
        assert f.output[i, j] == pytest.approx(np.sum(padded[taps[:, 0], taps[:, 1]] * f.kernel.ravel()))


@given(st.integers(1, 9), st.integers(1, 5), st.integers(0, 3), st.integers(1, 3), st.integers(1, 3))
def test_output_size_formula_matches_torch(n, k, p, s, d):
    setting = W.ConvSetting(n, k, padding=p, stride=s, dilation=d)
    if setting.output_size < 1:
        with pytest.raises(ValueError, match="conv_arithmetic: .* gives output size"):
            W.conv_frame(setting, 0)
        return
    frame = W.conv_frame(setting, setting.output_size ** 2 - 1)
    expected = torch_conv(frame.input, frame.kernel, padding=p, stride=s, dilation=d)
    assert frame.output.shape == expected.shape == (setting.output_size,) * 2
    np.testing.assert_allclose(frame.output, expected, atol=1e-12)


def test_conv_live_setting_covers_all_positions():
    w = W.conv_arithmetic()
    w.live_controls["input_size"].value = 7                 # preset 0 (k=3) -> 5x5 output
    assert len(w.boxes[(0,)].children) == 25 and w.controls[1].max == 24
    w.controls[1].value = 24
    shown = w.boxes[(0,)].children[24]
    assert shown.value == w.draw(W.conv_frame(W.ConvSetting(7, 3), 24))
    w.live_controls["kernel_size"].value = 5                # 3x3 output: the step is clamped to 8
    assert w.controls[1].value == 8 and len(w.boxes[(0,)].children) == 9
    w.live_controls["dilation"].value = 3                    # 7 - 3*4 - 1 < 0: no output, a message
    assert w.boxes[(0,)].children[8].value == w._message(W.ConvSetting(7, 5, dilation=3))
    w.controls[0].index = 1                                  # a preset restores its 9 steps
    assert w.live_setting() == W.CONV_PRESETS[1]
    assert len(w.boxes[(1,)].children) == 9 and w.controls[1].max == 8


def test_conv_arithmetic_errors():
    with pytest.raises(ValueError, match=r"conv_arithmetic: preset 5×5 input, 2×2 kernel gives a 4x4 output"):
        W.conv_arithmetic([W.ConvSetting(5, 2)])
    with pytest.raises(TypeError, match="presets must be ConvSetting objects, got dict"):
        W.conv_arithmetic([{"input_size": 5}])


# ---------------------------------------------------------------------------------------
# pooling explorer
# ---------------------------------------------------------------------------------------
def test_pool_frames_equal_torch_pooling():
    w = W.pooling_explorer(IMAGES, kernel_sizes=(2, 3), shifts=(0, 2))
    check_tree(w)
    check_pictures(w)
    for (i, m, k, sh), f in w.frames.items():
        image = IMAGES[w.options[0][i]]
        size, shift = w.options[2][k], w.options[3][sh]
        shifted = np.zeros_like(image)
        shifted[:, shift:] = image[:, :image.shape[1] - shift]
        pool = TF.max_pool2d if w.options[1][m] == "max" else TF.avg_pool2d
        np.testing.assert_array_equal(f.input, shifted)
        np.testing.assert_allclose(f.output, pool(torch.tensor(shifted)[None, None], size)[0, 0].numpy())
        np.testing.assert_allclose(f.reference, pool(torch.tensor(image)[None, None], size)[0, 0].numpy())


def test_pool_live_stride():
    w = W.pooling_explorer(IMAGES)
    w.live_controls["stride"].value = 1
    frame = w.live(w.values())
    expected = TF.max_pool2d(torch.tensor(IMAGES["noise"])[None, None], 2, stride=1)[0, 0].numpy()
    np.testing.assert_allclose(frame.output, expected)
    assert w.images[w.key()].value == w.draw(frame)
    w.controls[2].index = 1                                  # window 4x4 -> stride 4
    assert w.live_controls["stride"].value == 4


def test_pooling_explorer_limits_the_page_weight():
    with pytest.raises(ValueError, match="pooling_explorer: 3 images x 2 modes x 3 windows x 3 shifts is too many"):
        W.pooling_explorer({str(i): _square(8) for i in range(3)}, kernel_sizes=(2, 3, 4))


# ---------------------------------------------------------------------------------------
# activation explorer
# ---------------------------------------------------------------------------------------
TORCH_ACT = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
             "leaky_relu": lambda t: TF.leaky_relu(t, 0.1)}


def test_activation_frames_equal_torch_autograd():
    w = W.activation_explorer(points=(-2, 0.5, 3))
    check_tree(w)
    for (a, p), f in w.frames.items():
        x = torch.tensor(f.x, requires_grad=True)
        y = TORCH_ACT[w.options[0][a]](x)
        y.sum().backward()
        np.testing.assert_allclose(f.y, y.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(f.dy, x.grad.numpy(), atol=1e-12)
        x0 = torch.tensor([w.options[1][p]], dtype=torch.float64, requires_grad=True)
        TORCH_ACT[w.options[0][a]](x0).sum().backward()
        assert f.x0 == w.options[1][p] and f.dy0 == pytest.approx(x0.grad.item())
    assert w.images[(0, 1)].value == w.draw(w.frames[(0, 1)])


def test_activation_live_negative_slope():
    w = W.activation_explorer(names=("leaky_relu",), points=(-1.0,))
    w.live_controls["negative_slope"].value = 0.3
    frame = w.live(w.values())
    assert frame.dy0 == pytest.approx(0.3) and frame.y0 == pytest.approx(-0.3)
    assert w.images[(0, 0)].value == w.draw(frame)


def test_activation_explorer_errors():
    with pytest.raises(ValueError, match=r"activation_explorer: unknown activations \['gelu'\]"):
        W.activation_explorer(names=("relu", "gelu"))


# ---------------------------------------------------------------------------------------
# optimizer race
# ---------------------------------------------------------------------------------------
def torch_path(make, start, steps):
    w = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer, path = make([w]), [w.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        (w[0] ** 2 / 20 + w[1] ** 2).backward()
        optimizer.step()
        path.append(w.detach().clone())
    return torch.stack(path).numpy()


def test_race_paths_equal_torch_optim():
    w = W.optimizer_race(lrs=(0.03, 0.3), momenta=(0.5, 0.9), steps=20)
    check_tree(w)
    check_pictures(w)
    for (i, j), frame in w.frames.items():
        lr, m = w.options[0][i], w.options[1][j]
        expected = {"SGD": lambda p: torch.optim.SGD(p, lr=lr),
                    f"SGD, momentum {m:g}": lambda p: torch.optim.SGD(p, lr=lr, momentum=m),
                    "RMSprop": lambda p: torch.optim.RMSprop(p, lr=lr),
                    "Adam": lambda p: torch.optim.Adam(p, lr=lr)}
        assert list(frame.paths) == list(expected)
        for name, make in expected.items():
            np.testing.assert_allclose(frame.paths[name], torch_path(make, W.RACE_START, 20), rtol=1e-10, atol=1e-12)


def test_race_gradient_is_the_surface_derivative():
    w = np.array([1.3, -0.7])
    eps = 1e-6
    numeric = [(W.loss_surface(*(w + d)) - W.loss_surface(*(w - d))) / (2 * eps) for d in np.eye(2) * eps]
    np.testing.assert_allclose(W.loss_surface_gradient(w), numeric, rtol=1e-8)


def test_race_live_start_and_steps():
    w = W.optimizer_race(lrs=(0.1,), momenta=(0.9,), steps=10)
    w.live_controls["start_w1"].value = 3.0
    w.live_controls["steps"].value = 7
    frame = w.live(w.values())
    assert all(p.shape == (8, 2) and tuple(p[0]) == (3.0, W.RACE_START[1]) for p in frame.paths.values())
    assert w.images[(0, 0)].value == w.draw(frame)
    with pytest.raises(ValueError, match="optimizer_race: 9 learning rates x 5 momenta is too many"):
        W.optimizer_race(lrs=range(1, 10), momenta=range(5))


# ---------------------------------------------------------------------------------------
# feature-map browser
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(4, 6, 3), torch.nn.Flatten(), torch.nn.Linear(6 * 36, 10))


def test_feature_maps_equal_the_model_prefix(model):
    x = torch.rand(2, 1, 16, 16)
    model.train()
    w = W.feature_map_browser(model, x, ["1", "3"], channels=5)
    assert model.training                                    # restored
    check_tree(w)
    check_pictures(w)
    with torch.no_grad():
        relu_out, conv_out = model[:2](x[:1])[0].numpy(), model[:4](x[:1])[0].numpy()
    for c in range(4):
        np.testing.assert_allclose(w.frames[(0, c)].feature_map, relu_out[c], atol=1e-6)
    assert w.frames[(0, 4)].feature_map is None and w.frames[(0, 4)].n_channels == 4
    for c in range(5):
        np.testing.assert_allclose(w.frames[(1, c)].feature_map, conv_out[c], atol=1e-6)
    w.live_controls["image"].value = 1                       # live: the second image
    with torch.no_grad():
        np.testing.assert_allclose(w.live(w.values()).feature_map, model[:2](x[1:])[0, 0].numpy(), atol=1e-6)


def test_feature_map_browser_errors(model):
    x = torch.rand(1, 16, 16)
    with pytest.raises(ValueError, match=r"no layer named \['conv9'\] in the model; its layers are \['0', '1'"):
        W.feature_map_browser(model, x, ["conv9"])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        W.feature_map_browser(lambda t: t, x, ["0"])
    with pytest.raises(ValueError, match=r"layer '4' outputs shape \(216,\) per image"):
        W.feature_map_browser(model, x, ["4"])
    with pytest.raises(ValueError, match="7 layers x 8 channels is too many"):
        W.feature_map_browser(model, x, ["0"] * 7)
    with pytest.raises(ValueError, match=r"image must be \(C, H, W\) or \(N, C, H, W\), got shape \(16, 16\)"):
        W.feature_map_browser(model, torch.rand(16, 16), ["0"])


# ---------------------------------------------------------------------------------------
# all widgets: light pages, deterministic pictures
# ---------------------------------------------------------------------------------------
def test_default_widgets_stay_light():
    for w in (W.kernel_explorer(), W.conv_arithmetic(), W.pooling_explorer(), W.activation_explorer(),
              W.optimizer_race()):
        assert len(w.images) <= 40
        assert w.nbytes() < 300_000, (type(w).__name__, w.nbytes())


def test_sample_photograph_is_a_real_grey_photo():
    photo = W.sample_photograph(32)
    assert photo.shape == (32, 32) and 0 <= photo.min() < 0.2 and 0.8 < photo.max() <= 1
    assert photo.std() > 0.1
    with pytest.raises(ValueError, match="sample_photograph: size must be an int >= 8, got 4"):
        W.sample_photograph(4)


def test_pictures_are_deterministic():
    """The same widget built twice carries the same bytes (the HTML book does not change by itself)."""
    first, second = W.kernel_explorer(IMAGES), W.kernel_explorer(IMAGES)
    assert [i.value for i in first.images.values()] == [i.value for i in second.images.values()]


def test_static_figure_shows_the_chosen_pictures(kernels):
    import matplotlib.pyplot as plt

    fig = kernels.figure([(0, 0), (1, 3), (0, 2)], ncols=2, title="three kernels")
    try:
        shown = [ax for ax in fig.axes if ax.images]
        assert len(shown) == 3 and len(fig.axes) == 4               # a 2x2 grid, the last cell empty
        np.testing.assert_array_equal(shown[1].images[0].get_array(), decode(kernels.images[(1, 3)].value))
        assert shown[1].get_title() == f"image: square, kernel: {kernels.options[1][3]}"
        assert fig._suptitle.get_text() == "three kernels"
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match=r"KernelExplorer.figure: no precomputed picture for keys \[\(5, 0\)\]"):
        kernels.figure([(5, 0)])
