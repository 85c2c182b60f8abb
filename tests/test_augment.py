"""cnnbook.pytorch.augment: the one pad-and-gather shift, random shift/flip, test-time views, random affine."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnbook.pytorch import augment as A


def shift_loop(img, dy, dx, fill):
    """The definition, one pixel at a time: out[:, r, c] = img[:, r - dy, c - dx] inside, else fill."""
    c, h, w = img.shape
    out = torch.full_like(img, fill)
    for r in range(h):
        for col in range(w):
            if 0 <= r - dy < h and 0 <= col - dx < w:
                out[:, r, col] = img[:, r - dy, col - dx]
    return out


def test_shift_images_golden_case_by_hand():
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    assert A.shift_images(x, 1, 0)[0, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert A.shift_images(x, 0, -1, fill=-1.0)[0, 0].tolist() == [[2, 3, -1], [5, 6, -1], [8, 9, -1]]
    assert A.shift_images(x, -1, 1, fill=7.0)[0, 0].tolist() == [[7, 4, 5], [7, 7, 8], [7, 7, 7]]
    assert A.shift_images(x, 0, 0) is x
    two = torch.cat([x, x])                                   # per-image shifts
    out = A.shift_images(two, torch.tensor([1, 0]), torch.tensor([0, -1]))
    assert out[0, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert out[1, 0].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
       max_shift=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_random_shift_flip_matches_the_loop_definition(n, c, h, w, max_shift, seed):
    x = torch.randn(n, c, h, w)
    g = torch.Generator().manual_seed(seed)
    got = A.random_shift_flip(x, max_shift, 0.5, fill=-7.0, generator=torch.Generator().manual_seed(seed))
    flips = torch.rand(n, generator=g) < 0.5                 # the same draws, in the same order
    if max_shift:
        dy = max_shift - torch.randint(0, 2 * max_shift + 1, (n,), generator=g)
        dx = max_shift - torch.randint(0, 2 * max_shift + 1, (n,), generator=g)
    else:
        dy = dx = torch.zeros(n, dtype=torch.long)
    for i in range(n):
        img = x[i].flip(2) if flips[i] else x[i]
        torch.testing.assert_close(got[i], shift_loop(img, int(dy[i]), int(dx[i]), -7.0))


def test_random_shift_flip_moves_content_and_keeps_pixels_whole():
    x = torch.arange(64 * 25, dtype=torch.float32).view(64, 1, 5, 5) + 1.0   # no pixel equals the fill 0
    out = A.random_shift_flip(x, 2, 0.5, generator=torch.Generator().manual_seed(0))
    kept = out != 0
    assert kept.float().mean() > 0.5                         # not all fill: most pixels are the image's
    assert all(set(o[k].tolist()) <= set(i.flatten().tolist()) for o, i, k in zip(out, x, kept))
    assert not torch.equal(out, x)                           # something moved
    assert (out == 0).any()                                  # and some border was filled


def test_random_shift_flip_golden_flip_and_identity():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 1, 3, 4)
    assert torch.equal(A.random_shift_flip(x, 0, 1.0), x.flip(-1))
    assert torch.equal(A.random_shift_flip(x, 0, 0.0), x)


def test_tta_views_are_shifts_and_mirrors():
    x = torch.randn(2, 1, 5, 5)
    views = A.tta_views(x, flip=True, shift=1, fill=-2.0)
    assert len(views) == 10 and views[0] is x and torch.equal(views[1], x.flip(3))
    torch.testing.assert_close(views[2][0], shift_loop(x[0], 1, 0, -2.0))
    assert len(A.tta_views(x, flip=False, shift=0)) == 1


def test_augment_rejects_bad_input():
    with pytest.raises(ValueError, match=r"random_shift_flip: x must be a batch \(N, C, H, W\), got shape \(28, 28\)"):
        A.random_shift_flip(torch.zeros(28, 28))
    with pytest.raises(ValueError, match="random_shift_flip: max_shift must be an int >= 0, got -1"):
        A.random_shift_flip(torch.zeros(1, 1, 4, 4), max_shift=-1)
    with pytest.raises(ValueError, match=r"random_shift_flip: hflip_p must be a probability in \[0, 1\], got 2"):
        A.random_shift_flip(torch.zeros(1, 1, 4, 4), hflip_p=2)
    with pytest.raises(TypeError, match="shift_images: x must be a torch.Tensor of images"):
        A.shift_images([[1.0]], 1, 1)
    with pytest.raises(ValueError, match="tta_views: shift must be an int >= 0, got -1"):
        A.tta_views(torch.zeros(1, 1, 4, 4), shift=-1)
    with pytest.raises(ValueError, match=r"random_affine: translate and scale must be pairs"):
        A.random_affine(torch.zeros(1, 1, 4, 4), scale=(0.0, 1.0))


def test_random_affine_identity_flip_fill_and_per_sample_draws():
    x = torch.rand(4, 1, 6, 6)
    torch.testing.assert_close(A.random_affine(x), x)
    torch.testing.assert_close(A.random_affine(x, hflip_p=1.0), x.flip(-1))
    shrunk = A.random_affine(torch.ones(1, 1, 8, 8), scale=(0.5, 0.5), fill=0.25)
    assert shrunk[0, 0, 0, 0] == pytest.approx(0.25) and shrunk[0, 0, 4, 4] == pytest.approx(1.0)
    same = torch.rand(1, 1, 10, 10).repeat(2, 1, 1, 1)
    moved = A.random_affine(same, degrees=30, translate=(0.2, 0.2), generator=torch.Generator().manual_seed(0))
    assert moved.shape == same.shape and not torch.allclose(moved[0], moved[1])
    with pytest.raises(ValueError, match=r"random_affine: x must be a batch \(N, C, H, W\), got shape \(6, 6\)"):
        A.random_affine(torch.zeros(6, 6))


