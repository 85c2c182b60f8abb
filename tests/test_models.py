"""cnnbook.pytorch.models: output shapes, parameter counts by hand, the residual block, summary, init."""
import pytest
import torch
from torch import nn

from cnnbook.pytorch import models as Mo

ALL = [Mo.LeNet, Mo.AlexNetStyle, Mo.VGGStyle, Mo.ResNetStyle, Mo.SmallCNN]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_model_maps_28x28_batches_to_logits(cls):
    torch.manual_seed(0)
    model = cls(in_channels=1, num_classes=10)
    out = model(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_lenet_parameter_count_by_hand():
    by_hand = (6 * 1 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert Mo.count_parameters(Mo.LeNet()) == by_hand == 61_706


def test_basic_block_identity_and_projection_shortcuts():
    same = Mo.BasicBlock(8, 8)
    assert isinstance(same.shortcut, nn.Identity)
    down = Mo.BasicBlock(8, 16, stride=2)
    assert isinstance(down.shortcut[0], nn.Conv2d) and down.shortcut[0].kernel_size == (1, 1)
    assert down(torch.randn(2, 8, 14, 14)).shape == (2, 16, 7, 7)
    plain = Mo.BasicBlock(8, 16, stride=2, residual=False)
    assert isinstance(plain.shortcut, nn.Identity)   # no projection in the plain twin


def test_basic_block_adds_the_shortcut():
    torch.manual_seed(0)
    block = Mo.BasicBlock(4, 4, batch_norm=False)
    for p in block.conv2.parameters():
        nn.init.zeros_(p)          # F(x) = 0, so the block is relu(0 + x)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), torch.relu(x))
    block.residual = False
    torch.testing.assert_close(block(x), torch.zeros_like(x))


def test_plain_twin_has_the_same_layers_minus_projections():
    res = Mo.ResNetStyle(stages=(8, 16), blocks_per_stage=2)
    plain = Mo.ResNetStyle(stages=(8, 16), blocks_per_stage=2, residual=False)
    proj = 8 * 16 + 2 * 16       # one 1x1 conv (no bias, BN follows) + its batch norm
    assert Mo.count_parameters(res) - Mo.count_parameters(plain) == proj
    assert plain(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_summary_rows_shapes_and_totals():
    model = Mo.LeNet()
    s = Mo.summary(model, (1, 28, 28))
    names = [r[0] for r in s.rows]
    assert names[0] == "0" and len(s.rows) == 12
    assert s.rows[0][2] == (1, 6, 28, 28) and s.rows[0][3] == 156
    assert s.rows[5][2] == (1, 16, 5, 5) and s.rows[-1][2] == (1, 10)
    assert sum(r[3] for r in s.rows) == s.total_params == s.trainable_params == 61_706
    text = str(s)
    assert "Output shape" in text and "Total params: 61,706" in text


def test_summary_depth_and_shared_modules_count_once():
    model = Mo.ResNetStyle(stages=(8, 16))
    s1 = Mo.summary(model, (2, 1, 28, 28), depth=1)
    assert [r[0] for r in s1.rows] == ["stem", "blocks", "pool", "fc"]
    assert s1.rows[1][2] == (2, 16, 14, 14)
    assert sum(r[3] for r in s1.rows) == s1.total_params
    s = Mo.summary(model, (1, 28, 28))     # the shared ReLU of a block appears twice, counted once
    assert sum(r[3] for r in s.rows) == s.total_params
    assert model.training                   # summary restores the mode


def test_summary_and_constructors_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"summary: input_size must be \(N, C, H, W\) or \(C, H, W\), got \(28,\)"):
        Mo.summary(Mo.LeNet(), (28,))
    with pytest.raises(ValueError, match="VGGStyle: 5 blocks halve 28x28 inputs to nothing; use at most 4 blocks"):
        Mo.VGGStyle(blocks=[[4]] * 5)
    with pytest.raises(ValueError, match="SmallCNN: dropout must be in \\[0, 1\\), got 1.5"):
        Mo.SmallCNN(dropout=1.5)
    with pytest.raises(ValueError, match="BasicBlock: stride must be a positive int, got 0"):
        Mo.BasicBlock(4, 4, stride=0)


@pytest.mark.parametrize("scheme", ["kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform"])
def test_init_weights_scales_by_fan_in(scheme):
    torch.manual_seed(0)
    lin = Mo.init_weights(nn.Sequential(nn.Linear(400, 300), nn.BatchNorm1d(300)), scheme)
    fan_in, fan_out = 400, 300
    want = (2 / fan_in) ** 0.5 if scheme.startswith("kaiming") else 2 ** 0.5 * (2 / (fan_in + fan_out)) ** 0.5
    assert lin[0].weight.std().item() == pytest.approx(want, rel=0.05)
    assert lin[0].bias.abs().sum() == 0 and (lin[1].weight == 1).all()


def test_init_weights_rejects_unknown_scheme_and_zeros_kills_signal():
    with pytest.raises(ValueError, match=r"init_weights: scheme must be one of .* got 'he'"):
        Mo.init_weights(nn.Linear(2, 2), "he")
    model = Mo.init_weights(Mo.SmallCNN(), "zeros")
    assert (model(torch.randn(2, 1, 28, 28)) == 0).all()


def test_activation_stds_shrink_with_tiny_init_and_hold_with_kaiming():
    torch.manual_seed(0)
    deep = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(256, 256), nn.ReLU())])
    x = torch.randn(512, 256)
    small = [s for _, s in Mo.activation_stds(Mo.init_weights(deep, "normal", std=0.01), x)]
    assert len(small) == 8 and small[-1] < 1e-6
    he = [s for _, s in Mo.activation_stds(Mo.init_weights(deep, "kaiming_normal"), x)]
    assert 0.2 < he[-1] / he[0] < 5


class OldFashionResNet(nn.Module):
    """Chapter 5's residual network as it was written before it became a ResNetStyle (the reference)."""

    def __init__(self, channels=(64, 128, 256), blocks_per_stage=2, num_classes=10, in_channels=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
        blocks, c = [], channels[0]
        for i, out in enumerate(channels):
            for j in range(blocks_per_stage):
                blocks.append(Mo.BasicBlock(c, out, stride=2 if (i > 0 and j == 0) else 1))
                c = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


@pytest.mark.parametrize("channels, blocks", [((8, 16), 1), ((4, 8, 16), 2)])
def test_the_gpu_configuration_network_is_resnet_style_with_the_same_keys_and_outputs(channels, blocks):
    from cnnbook.pytorch import classifier as C

    torch.manual_seed(0)
    old = OldFashionResNet(channels, blocks, num_classes=7)
    new = C.build_model(C.ClassifierConfig(name="t", architecture="resnet", channels=channels,
                                           blocks_per_stage=blocks), num_classes=7)
    assert isinstance(new, Mo.ResNetStyle)
    assert list(new.state_dict()) == list(old.state_dict())
    new.load_state_dict(old.state_dict())
    x = torch.randn(3, 1, 28, 28)
    for mode in ("train", "eval"):
        getattr(old, mode)(), getattr(new, mode)()
        torch.testing.assert_close(new(x), old(x), rtol=0, atol=0)


def test_summary_prints_one_table_with_totals():
    text = str(Mo.summary(Mo.LeNet(), (1, 1, 28, 28)))
    lines = text.splitlines()
    assert lines[0] == "input: (1, 1, 28, 28)" and lines[1].split() == ["Layer", "Type", "Output", "shape", "Param", "#"]
    assert set(lines[2]) == {"-"} and lines[-2] == "Total params: 61,706"
    assert any(line.split()[-1] == "2,416" for line in lines)       # conv2: 6*16*5*5 + 16
