"""Augmentation: mixup/cutmix target mass and area, cutout, and flip/crop vs torchvision.transforms.v2."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labkit.data import augment
from labkit.config import RegConfig
from labkit.data import Data
from labkit.data.pipeline import TrainBatches


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 8) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen(1))


def test_mixup_targets_sum_to_one_and_blend():
    x = torch.randn(6, 3, 8, 8, generator=gen(0))
    t = F.one_hot(torch.arange(6) % 3, 3).float()
    mx, mt = augment.mixup(x, t, 0.3)
    assert torch.allclose(mt.sum(1), torch.ones(6))
    # float32 tolerances: mixup's fused multiply-add and this expression round differently (an element that
    # nearly cancels to 0 missed allclose's absolute 1e-8 in one unseeded run out of many)
    torch.testing.assert_close(mx, 0.3 * x + 0.7 * x.roll(1, 0))
    torch.testing.assert_close(mt, 0.3 * t + 0.7 * t.roll(1, 0))


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.37, 0.5, 0.9, 0.999])
def test_cutmix_lambda_is_the_true_pasted_area(lam):
    g = gen(int(lam * 1000))
    for _ in range(20):
        x = torch.arange(4).float().view(4, 1, 1, 1).expand(4, 3, 32, 32).clone()  # image i is all i
        t = F.one_hot(torch.arange(4), 4).float()
        out, target, lam_true = augment.cutmix(x, t, lam, g)
        pasted = (out[0, 0] != 0).float().mean().item()  # pixels of image 0 taken from its partner (image 3)
        assert lam_true == pytest.approx(1 - pasted)
        assert torch.allclose(target.sum(1), torch.ones(4))
        assert target[0, 0].item() == pytest.approx(lam_true) and target[0, 3].item() == pytest.approx(1 - lam_true)


def test_sample_lambda_is_seeded_and_in_range():
    a = [augment.sample_lambda(0.4, gen(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2] and 0 <= a[0] <= 1
    g = gen(0)
    vals = torch.tensor([augment.sample_lambda(1.0, g) for _ in range(2000)])
    assert abs(vals.mean().item() - 0.5) < 0.03  # Beta(1, 1) is uniform


def test_cutout_zeros_one_square():
    x = torch.ones(50, 3, 32, 32)
    out = augment.cutout(x, 8, gen())
    for img in out:
        zero = img[0] == 0
        assert torch.equal(zero, (img == 0).all(0))  # every channel zeroed together
        ys, xs = torch.nonzero(zero, as_tuple=True)
        assert 0 < len(ys) <= 64
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert h * w == len(ys) and h <= 8 and w <= 8  # a solid rectangle (a square clipped at the border)
    assert (out == 0).float().sum(dim=(1, 2, 3)).max() == 3 * 64


def test_flip_matches_v2_horizontal_flip():
    from torchvision.transforms import v2  # here, not at collection: torchvision costs each worker ~0.6 s

    x = images()
    out = augment.flip(x, gen())
    flipped = v2.RandomHorizontalFlip(p=1.0)(x[0])
    n_flipped = 0
    for a, b in zip(out, x):
        if torch.equal(a, b):
            continue
        assert torch.equal(a, v2.RandomHorizontalFlip(p=1.0)(b))
        n_flipped += 1
    assert 0 < n_flipped < len(x) and torch.equal(flipped, x[0].flip(2))


def test_crop_is_a_window_of_the_reflect_padded_image_as_v2():
    from torchvision.transforms import v2

    x = images(20)
    out = augment.crop(x, 4, gen())
    padded = v2.Pad(4, padding_mode="reflect")(x)
    for a, p in zip(out, padded):
        hits = [(i, j) for i in range(9) for j in range(9) if torch.equal(p[:, i:i + 32, j:j + 32], a)]
        assert hits, "each crop is some 32x32 window of the reflect-padded image"
    # and v2.RandomCrop with reflect padding can produce exactly such windows
    torch.manual_seed(0)
    ref = v2.RandomCrop(32, padding=4, padding_mode="reflect")(x[0])
    assert any(torch.equal(padded[0][:, i:i + 32, j:j + 32], ref) for i in range(9) for j in range(9))
    assert out.dtype == torch.uint8 and out.shape == x.shape


def test_flip_crop_in_one_gather_equals_flip_then_crop():
    """The pipeline's fused gather gives the pixels (and leaves the generator) exactly as flip, then crop."""
    x = images(64)
    for flip in (False, True):
        for pad in (0, 4):
            g1, g2 = gen(), gen()
            ref = augment.crop(augment.flip(x, g1) if flip else x, pad, g1)
            assert torch.equal(augment.flip_crop(x, flip, pad, g2), ref)
            assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def _image_data(n: int = 64) -> Data:
    x = images(n)
    y = torch.arange(n) % 10
    return Data("t", "image", [str(i) for i in range(10)], x, y, x[:0], y[:0], x[:0], y[:0],
                torch.full((3,), 0.5), torch.full((3,), 0.25))


def test_train_batches_soft_targets_and_seeding():
    d = _image_data()
    reg = RegConfig(mixup=0.4, cutmix=1.0, cutout=8)
    b = TrainBatches(d, reg, 16, seed=3)
    batches = list(b.epoch())
    assert len(batches) == 4
    for x, t, y in batches:
        assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32
        assert torch.allclose(t.sum(1), torch.ones(16))
    again = list(TrainBatches(d, reg, 16, seed=3).epoch())
    assert all(torch.equal(a[0], b_[0]) and torch.equal(a[1], b_[1]) for a, b_ in zip(batches, again))
    labels = torch.cat([y for _, _, y in batches]).sort().values
    assert torch.equal(labels, d.train_y.sort().values)  # each example once per epoch
