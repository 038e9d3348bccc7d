"""Joint transforms: a marked pixel must land at the same, expected place in image and mask."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sam2sod.data import (
    AugmentConfig,
    ColorJitter,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomRotation,
    RandomScaleCrop,
    RandomVerticalFlip,
    Resize,
    build_transform,
    denormalize,
)
from sam2sod.errors import SodError

H, W = 32, 48  # non-square on purpose


def marked(y: int, x: int, h: int = H, w: int = W) -> dict:
    """Image and mask with the same single bright pixel at (y, x); image channels 1, 2 hold a ramp."""
    image = torch.zeros(3, h, w)
    mask = torch.zeros(1, h, w)
    image[0, y, x] = 1.0
    mask[0, y, x] = 1.0
    image[1] = torch.linspace(0, 1, w)[None, :].expand(h, w)
    image[2] = 0.5
    return {"image": image, "mask": mask, "name": "m", "orig_size": (h, w)}


def peak(t: torch.Tensor) -> tuple[int, int]:
    idx = int(torch.argmax(t))
    return idx // t.shape[-1], idx % t.shape[-1]


def centroid(t: torch.Tensor) -> tuple[float, float]:
    t = t.clamp(min=0)
    ys = torch.arange(t.shape[-2], dtype=t.dtype)[:, None]
    xs = torch.arange(t.shape[-1], dtype=t.dtype)[None, :]
    total = t.sum()
    return float((t * ys).sum() / total), float((t * xs).sum() / total)


def assert_same_place(out: dict) -> tuple[int, int]:
    """Image channel 0 and the mask went through the same geometry: equal everywhere, same argmax."""
    assert out["image"].shape[-2:] == out["mask"].shape[-2:]
    torch.testing.assert_close(out["image"][0], out["mask"][0], atol=1e-5, rtol=0)
    assert peak(out["image"][0]) == peak(out["mask"][0])
    assert out["mask"].min() >= 0 and out["mask"].max() <= 1
    return peak(out["mask"][0])


def test_hflip_moves_x_to_w_minus_1_minus_x() -> None:
    out = RandomHorizontalFlip(p=1.0)(marked(5, 7), torch.Generator().manual_seed(0))
    assert assert_same_place(out) == (5, W - 1 - 7)
    assert out["image"][1, 0, 0] == 1.0  # the ramp is mirrored too
    same = RandomHorizontalFlip(p=0.0)(marked(5, 7), torch.Generator().manual_seed(0))
    assert assert_same_place(same) == (5, 7)


def test_vflip_moves_y_to_h_minus_1_minus_y() -> None:
    out = RandomVerticalFlip(p=1.0)(marked(5, 7), np.random.default_rng(0))
    assert assert_same_place(out) == (H - 1 - 5, 7)


def expected_rotation(y: float, x: float, degrees: float, h: int = H, w: int = W) -> tuple[float, float]:
    """Counter-clockwise (as displayed) rotation about the image centre, y pointing down."""
    a = math.radians(degrees)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    dx, dy = x - cx, y - cy
    return cy - math.sin(a) * dx + math.cos(a) * dy, cx + math.cos(a) * dx + math.sin(a) * dy


@pytest.mark.parametrize("degrees", [90.0, -90.0, 30.0, -17.0, 180.0])
def test_rotation_forced_angle_lands_where_computed(degrees: float) -> None:
    y, x = 10, 30
    t = RandomRotation((degrees, degrees), p=1.0)
    out = t(marked(y, x), torch.Generator().manual_seed(3))
    got = assert_same_place(out)
    ey, ex = expected_rotation(y, x, degrees)
    assert abs(got[0] - ey) <= 1.0 and abs(got[1] - ex) <= 1.0
    cy, cx = centroid(out["mask"][0])
    assert abs(cy - ey) <= 0.5 and abs(cx - ex) <= 0.5


def test_rotation_90_direction_is_counter_clockwise() -> None:
    # A pixel right of the centre goes above it.
    y, x = 15, 30  # centre is (15.5, 23.5): 6.5 px right of it, 0.5 px up
    out = RandomRotation((90, 90), p=1.0)(marked(y, x), None)
    assert assert_same_place(out) == (9, 23)  # 6.5 px up of the centre, 0.5 px left


def test_random_rotation_seeded_and_consistent() -> None:
    t = RandomRotation(40, p=1.0)
    a = t(marked(12, 20), torch.Generator().manual_seed(7))
    b = t(marked(12, 20), torch.Generator().manual_seed(7))
    c = t(marked(12, 20), torch.Generator().manual_seed(8))
    assert_same_place(a)
    torch.testing.assert_close(a["mask"], b["mask"])
    assert not torch.allclose(a["mask"], c["mask"])
    n1 = t(marked(12, 20), np.random.default_rng(5))
    n2 = t(marked(12, 20), np.random.default_rng(5))
    assert_same_place(n1)
    torch.testing.assert_close(n1["image"], n2["image"])


def test_rotation_padding_modes() -> None:
    ones = {"image": torch.ones(3, H, W), "mask": torch.ones(1, H, W)}
    zeros = RandomRotation((45, 45), p=1.0, padding="zeros")(ones, None)
    refl = RandomRotation((45, 45), p=1.0, padding="reflection")(ones, None)
    assert zeros["image"][:, 0, 0].max() == 0 and zeros["mask"][0, 0, 0] == 0
    assert torch.allclose(refl["image"], torch.ones(3, H, W)) and torch.allclose(refl["mask"], ones["mask"])
    with pytest.raises(SodError):
        RandomRotation(10, padding="wrap")


@pytest.mark.parametrize("scale", [1.5, 0.5, 0.8])
def test_scale_crop_consistent_and_where_expected(scale: float) -> None:
    y, x = 16, 24
    t = RandomScaleCrop((scale, scale), p=1.0)
    offsets = set()
    for seed in range(6):
        out = t(marked(y, x), torch.Generator().manual_seed(seed))
        assert out["image"].shape == (3, H, W) and out["mask"].shape == (1, H, W)
        assert_same_place(out)
        nh, nw = round(H * scale), round(W * scale)
        cy, cx = centroid(out["mask"][0])
        # position = scaled position - crop offset (zoom in) or + pad offset (zoom out), offset integer
        sy, sx = (y + 0.5) * nh / H - 0.5, (x + 0.5) * nw / W - 0.5
        for c, s, lim in ((cy, sy, abs(nh - H)), (cx, sx, abs(nw - W))):
            offset = (s - c) if scale > 1 else (c - s)
            assert -0.6 <= offset <= lim + 0.6
            assert abs(offset - round(offset)) <= 0.6
            offsets.add(round(offset))
    assert len(offsets) > 2  # the crop/pad position is random
    if scale < 1:  # zoom out leaves a zero border somewhere
        assert (out["image"].abs().sum(0) == 0).any()


def test_resize_position_and_sizes() -> None:
    y, x = 10, 30
    out = Resize((64, 96))(marked(y, x), None)
    assert out["image"].shape == (3, 64, 96) and out["mask"].shape == (1, 64, 96)
    assert_same_place(out)
    cy, cx = centroid(out["mask"][0])
    assert abs(cy - ((y + 0.5) * 2 - 0.5)) <= 0.5 and abs(cx - ((x + 0.5) * 2 - 0.5)) <= 0.5
    small = Resize(16)(marked(y, x), None)
    assert small["image"].shape == (3, 16, 16)
    py, px = assert_same_place(small)
    assert abs(py - (y + 0.5) * 16 / H) <= 1 and abs(px - (x + 0.5) * 16 / W) <= 1


def test_color_jitter_image_only_and_in_range() -> None:
    sample = marked(3, 3)
    out = ColorJitter(0.5, 0.5, 0.5, p=1.0)(sample, torch.Generator().manual_seed(1))
    assert torch.equal(out["mask"], sample["mask"])
    assert not torch.allclose(out["image"], sample["image"])
    assert out["image"].min() >= 0 and out["image"].max() <= 1
    assert torch.equal(ColorJitter(p=0.0)(sample, None)["image"], sample["image"])


def test_normalize_and_denormalize() -> None:
    sample = {"image": torch.full((3, 2, 2), 0.5), "mask": torch.zeros(1, 2, 2)}
    out = Normalize()(sample, None)
    expected = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(out["image"][:, 0, 0], expected)
    torch.testing.assert_close(denormalize(out["image"]), sample["image"])


def test_compose_works_without_mask() -> None:
    t = Compose([Resize(8), RandomHorizontalFlip(1.0), RandomRotation(20, 1.0), RandomScaleCrop((1.2, 1.2), 1.0)])
    out = t({"image": torch.rand(3, H, W)}, torch.Generator().manual_seed(0))
    assert out["image"].shape == (3, 8, 8) and "mask" not in out


def test_build_transform_eval_is_deterministic_resize_normalize() -> None:
    cfg = AugmentConfig(size=24)
    t = build_transform(cfg, train=False)
    assert [type(s).__name__ for s in t.transforms] == ["Resize", "Normalize"]
    a = t(marked(5, 5), torch.Generator().manual_seed(0))
    b = t(marked(5, 5), torch.Generator().manual_seed(1))
    assert a["image"].shape == (3, 24, 24)
    torch.testing.assert_close(a["image"], b["image"])


def test_build_transform_train() -> None:
    cfg = AugmentConfig(size=(24, 32), vflip=0.5, rotate_p=1.0, crop_prob=1.0)
    t = build_transform(cfg, train=True)
    names = [type(s).__name__ for s in t.transforms]
    assert names == [
        "Resize",
        "RandomHorizontalFlip",
        "RandomVerticalFlip",
        "ColorJitter",
        "RandomRotation",
        "RandomScaleCrop",
        "Normalize",
    ]
    outs = [t(marked(12, 20), torch.Generator().manual_seed(s)) for s in range(3)]
    assert all(o["image"].shape == (3, 24, 32) and o["mask"].shape == (1, 24, 32) for o in outs)
    assert not torch.allclose(outs[0]["mask"], outs[1]["mask"])
    off = AugmentConfig(size=8, hflip=0, rotate_p=0, crop_prob=0, jitter_p=0, normalize=False)
    assert [type(s).__name__ for s in build_transform(off, True).transforms] == ["Resize"]


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 0}, {"hflip": 1.5}, {"rotate_deg": -1}, {"scale": (1.2, 0.8)}, {"brightness": 2}, {"padding": "x"}],
)
def test_augment_config_validation(kwargs: dict) -> None:
    with pytest.raises(SodError, match="augment"):
        AugmentConfig(**kwargs)


def test_augment_config_from_dict() -> None:
    cfg = AugmentConfig.from_dict({"size": [32, 48], "scale": [0.9, 1.1]})
    assert cfg.size == (32, 48) and cfg.scale == (0.9, 1.1)
    with pytest.raises(SodError, match="unknown augment option.*hflp.*valid: size"):
        AugmentConfig.from_dict({"hflp": 0.5})
