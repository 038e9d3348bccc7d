"""Prompt simulation: invariants over many seeds, determinism, probabilities, collation, oracle prompts."""

from __future__ import annotations

import math

import pytest
import torch

from sam2sod.data.prompts import (
    PromptBatch,
    PromptConfig,
    Prompts,
    collate_prompts,
    jitter_box,
    lowres_logits,
    noisy_lowres_mask,
    oracle_prompts,
    sample_points,
    simulate_prompts,
    tight_box,
)

SEEDS = range(60)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blob(seed: int, size: int = 64, min_r: float = 6, max_r: float = 20) -> torch.Tensor:
    """Random union of 1-3 ellipses, ``1,size,size`` float in {0, 1}, never empty."""
    g = _gen(10_000 + seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    m = torch.zeros(size, size, dtype=torch.bool)
    for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
        cy, cx = (torch.rand(2, generator=g) * (size - 2 * min_r) + min_r).tolist()
        ry, rx = (torch.rand(2, generator=g) * (max_r - min_r) + min_r).tolist()
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return m.float()[None]


def _rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(1, h, w)
    m[0, y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return m


def _iou_box(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two inclusive-pixel xyxy boxes."""
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(0.0, float(ix)) * max(0.0, float(iy))
    area = lambda r: float((r[2] - r[0] + 1) * (r[3] - r[1] + 1))  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _same(a: Prompts, b: Prompts) -> bool:
    fields = ("points", "labels", "box", "mask_input")
    for f in fields:
        x, y = getattr(a, f), getattr(b, f)
        if (x is None) != (y is None) or (x is not None and not torch.equal(x, y)):
            return False
    return True


# ---------------------------------------------------------------- points
def test_sample_points_on_and_off_mask() -> None:
    for seed in SEEDS:
        mask = _blob(seed)
        pts, lbl = sample_points(mask, 3, 2, _gen(seed))
        assert pts.dtype == torch.float32 and lbl.dtype == torch.int64
        assert lbl.tolist() == [1, 1, 1, 0, 0]
        assert len({tuple(p) for p in pts.tolist()}) == 5  # distinct pixels
        for (x, y), lab in zip(pts.tolist(), lbl.tolist(), strict=True):
            assert x == int(x) and y == int(y) and 0 <= x < 64 and 0 <= y < 64
            assert (mask[0, int(y), int(x)] > 0.5) == (lab == 1)


def test_sample_points_fewer_pixels_fewer_points() -> None:
    mask = torch.zeros(8, 8)
    mask[2, 3] = mask[5, 6] = 1.0
    pts, lbl = sample_points(mask, 5, 0, _gen(0))
    assert lbl.tolist() == [1, 1] and sorted(pts.tolist()) == [[3.0, 2.0], [6.0, 5.0]]
    pts, lbl = sample_points(torch.ones(1, 4, 4), 2, 3, _gen(0))
    assert lbl.tolist() == [1, 1]  # no background pixels
    pts, lbl = sample_points(mask, 0, 0, _gen(0))
    assert pts.shape == (0, 2) and lbl.shape == (0,)


def test_soft_mask_binarised_at_half() -> None:
    mask = torch.full((1, 6, 6), 0.4)
    mask[0, 1, 2] = 0.6
    pts, lbl = sample_points(mask, 3, 0, _gen(1))
    assert pts.tolist() == [[2.0, 1.0]] and lbl.tolist() == [1]
    assert tight_box(mask).tolist() == [2.0, 1.0, 2.0, 1.0]


# ---------------------------------------------------------------- boxes
def test_tight_box_hand_value() -> None:
    assert tight_box(_rect(40, 50, 10, 29, 5, 44)).tolist() == [5.0, 10.0, 44.0, 29.0]
    assert tight_box(torch.zeros(5, 5)) is None


def test_jitter_box_inside_image_and_near_object() -> None:
    boxes = set()
    for seed in SEEDS:
        mask = _blob(seed, min_r=10)
        tight = tight_box(mask)
        box = jitter_box(mask, _gen(seed), max_shift=0.1, min_shift_px=2.0)
        boxes.add(tuple(box.tolist()))
        assert box.shape == (4,) and box.dtype == torch.float32
        assert 0 <= box[0] <= box[2] <= 63 and 0 <= box[1] <= box[3] <= 63
        w, h = float(tight[2] - tight[0] + 1), float(tight[3] - tight[1] + 1)
        d = torch.tensor([max(0.1 * w, 2.0), max(0.1 * h, 2.0)] * 2)
        assert ((box - tight).abs() <= d + 1e-4).all()
        assert _iou_box(box, tight) > 0.5
    assert len(boxes) == len(SEEDS)  # really random


def test_jitter_box_tiny_object_and_cap() -> None:
    mask = torch.zeros(1, 16, 16)
    mask[0, 0, 15] = 1.0  # single pixel in a corner
    for seed in range(30):
        box = jitter_box(mask, _gen(seed), min_shift_px=3.0)
        assert 0 <= box[0] <= box[2] <= 15 and 0 <= box[1] <= box[3] <= 15
        assert box[0] >= 12 - 1e-4 and box[3] <= 3 + 1e-4
    big = _rect(256, 256, 0, 255, 0, 255)
    for seed in range(10):
        box = jitter_box(big, _gen(seed), max_shift=0.5, max_shift_px=5.0)
        assert box[0] <= 5 and box[2] >= 250
    with pytest.raises(ValueError):
        jitter_box(torch.zeros(4, 4), _gen(0))


# ---------------------------------------------------------------- mask prompts
def test_noisy_lowres_mask_shape_differs_overlaps() -> None:
    grew = shrank = 0
    for seed in SEEDS:
        mask = _blob(seed, size=256, min_r=40, max_r=90)
        noisy = noisy_lowres_mask(mask, _gen(seed), 64)
        clean = lowres_logits(mask, 64)
        assert noisy.shape == clean.shape == (1, 64, 64) and noisy.dtype == torch.float32
        assert set(noisy.unique().tolist()) <= {-10.0, 10.0}
        n, c = noisy > 0, clean > 0
        assert not torch.equal(n, c)
        assert (n & c).sum() / (n | c).sum() > 0.45
        assert bool((n <= c).all()) or bool((n >= c).all())  # an erosion or a dilation
        grew += int((n >= c).all())
        shrank += int((n <= c).all())
    assert grew > 10 and shrank > 10


def test_noisy_mask_erosion_never_erases_object() -> None:
    mask = _rect(64, 64, 32, 35, 32, 35)  # 1 low-res pixel at 16x16
    for seed in range(20):
        assert (noisy_lowres_mask(mask, _gen(seed), 16, min_kernel=5, max_kernel=9, logit_scale=4.0) > 0).any()
    with pytest.raises(ValueError):
        noisy_lowres_mask(mask, _gen(0), 16, min_kernel=4, max_kernel=6)
    # a 2x2 object straddling four 4x4 cells covers none by half: every touched cell is kept
    tiny = _rect(64, 64, 31, 32, 31, 32)
    assert (lowres_logits(tiny, 16)[0] > 0).nonzero().tolist() == [[7, 7], [7, 8], [8, 7], [8, 8]]


# ---------------------------------------------------------------- simulate_prompts
ALL = PromptConfig(p_prompt_free=0.0, p_points=1.0, p_box=1.0, p_mask=1.0, k_fg=2, k_bg=1)


def test_simulate_all_kinds_follow_conventions() -> None:
    for seed in range(20):
        mask = _blob(seed)
        p = simulate_prompts(mask, ALL, _gen(seed))
        assert p.kinds == ("points", "box", "mask") and not p.is_empty
        assert p.labels is not None and p.labels.tolist() == [1, 1, 0]
        assert p.mask_input is not None and p.mask_input.shape == (1, 16, 16)
        assert p.box is not None and 0 <= p.box[0] <= p.box[2] <= 63


def test_simulate_deterministic_per_seed() -> None:
    mask = _blob(3)
    for seed in range(20):
        assert _same(simulate_prompts(mask, ALL, _gen(seed)), simulate_prompts(mask[0], ALL, _gen(seed)))
    draws = [simulate_prompts(mask, ALL, _gen(seed)) for seed in range(20)]
    distinct = sum(not _same(draws[i], draws[j]) for i in range(20) for j in range(i + 1, 20))
    assert distinct == 20 * 19 // 2


def test_empty_mask_and_prompt_free_config() -> None:
    for seed in range(20):
        assert simulate_prompts(torch.zeros(1, 32, 32), ALL, _gen(seed)).is_empty
    never = PromptConfig(p_prompt_free=1.0, p_points=1.0, p_box=1.0, p_mask=1.0)
    assert all(simulate_prompts(_blob(s), never, _gen(s)).is_empty for s in range(50))


def test_probabilities_respected() -> None:
    cfg = PromptConfig(p_prompt_free=0.3, p_points=0.6, p_box=0.4, p_mask=0.2)
    gen, mask, n = _gen(123), _blob(7), 500
    counts = {"points": 0, "box": 0, "mask": 0, "empty": 0}
    for _ in range(n):
        p = simulate_prompts(mask, cfg, gen)
        counts["empty"] += p.is_empty
        for k in p.kinds:
            counts[k] += 1
    assert counts["points"] / n == pytest.approx(0.7 * 0.6, abs=0.07)
    assert counts["box"] / n == pytest.approx(0.7 * 0.4, abs=0.07)
    assert counts["mask"] / n == pytest.approx(0.7 * 0.2, abs=0.06)
    assert cfg.effective_prompt_free == pytest.approx(0.3 + 0.7 * 0.4 * 0.6 * 0.8)
    assert counts["empty"] / n == pytest.approx(cfg.effective_prompt_free, abs=0.07)


def test_prompt_config_validation() -> None:
    assert PromptConfig(mask_kernel=[3, 5]).mask_kernel == (3, 5)  # type: ignore[arg-type]
    for bad in ({"p_box": 1.5}, {"k_fg": -1}, {"mask_kernel": (4, 6)}, {"mask_kernel": (7, 3)}, {"logit_scale": 0}):
        with pytest.raises(ValueError):
            PromptConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Prompts(points=torch.zeros(1, 2))
    with pytest.raises(ValueError):
        Prompts(box=torch.zeros(2, 2))
    assert Prompts().is_empty and Prompts(points=torch.zeros(0, 2), labels=torch.zeros(0)).is_empty


# ---------------------------------------------------------------- collate
def test_collate_padding_labels_has_mask() -> None:
    m = torch.full((1, 16, 16), 10.0)
    samples = [
        Prompts(points=torch.tensor([[1.0, 2.0], [3.0, 4.0]]), labels=torch.tensor([1, 0])),
        Prompts(box=torch.tensor([5.0, 6.0, 7.0, 8.0])),
        Prompts(mask_input=m),
        Prompts(),
        Prompts(points=torch.tensor([[9.0, 9.0]]), labels=torch.tensor([1]), box=torch.tensor([1.0, 2.0, 30.0, 40.0])),
    ]
    batch = collate_prompts(samples, 64)
    assert isinstance(batch, PromptBatch) and batch.batch_size == 5
    assert batch.points.shape == (5, 3, 2) and batch.points.dtype == torch.float32
    assert batch.labels.dtype == torch.int64
    assert batch.labels.tolist() == [[1, 0, -1], [2, 3, -1], [-1, -1, -1], [-1, -1, -1], [2, 3, 1]]
    assert batch.points[0].tolist() == [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]
    assert batch.points[1].tolist() == [[5.0, 6.0], [7.0, 8.0], [0.0, 0.0]]
    assert batch.points[4].tolist() == [[1.0, 2.0], [30.0, 40.0], [9.0, 9.0]]
    assert batch.points[2:4].abs().sum() == 0
    assert batch.mask_input.shape == (5, 1, 16, 16) and batch.mask_input.dtype == torch.float32
    assert batch.has_mask.tolist() == [False, False, True, False, False]
    assert torch.equal(batch.mask_input[2], m) and batch.mask_input[[0, 1, 3, 4]].abs().sum() == 0
    assert batch.has_points.tolist() == [True, True, False, False, True]
    moved = batch.to("cpu")
    assert isinstance(moved, PromptBatch) and torch.equal(moved.labels, batch.labels)


def test_collate_edge_cases() -> None:
    assert collate_prompts([Prompts(), Prompts()], 64) is None
    only_mask = collate_prompts([Prompts(mask_input=torch.zeros(1, 8, 12))], (32, 48))
    assert only_mask is not None and only_mask.labels.tolist() == [[-1]] and only_mask.points.shape == (1, 1, 2)
    with pytest.raises(ValueError):
        collate_prompts([Prompts(mask_input=torch.zeros(1, 8, 8))], 64)
    sims = [simulate_prompts(_blob(s), ALL, _gen(s)) for s in range(4)]
    batch = collate_prompts(sims, 64)
    assert batch is not None and batch.labels.tolist() == [[2, 3, 1, 1, 0]] * 4 and batch.has_mask.all()


# ---------------------------------------------------------------- oracle
def test_oracle_prompts_hand_values() -> None:
    mask = _rect(32, 32, 10, 18, 10, 18)  # 9x9 square
    assert oracle_prompts(mask, "box").box.tolist() == [10.0, 10.0, 18.0, 18.0]
    p = oracle_prompts(mask, "points")
    # centre is farthest inside; the bottom-right corner is farthest from the square (sqrt(13^2+13^2))
    assert p.points.tolist() == [[14.0, 14.0], [31.0, 31.0]] and p.labels.tolist() == [1, 0]
    assert math.hypot(31 - 18, 31 - 18) > math.hypot(0 - 10, 0 - 10)
    low = oracle_prompts(_rect(32, 32, 8, 15, 4, 11), "mask", logit_scale=5.0).mask_input
    expected = torch.full((1, 8, 8), -5.0)
    expected[0, 2:4, 1:3] = 5.0
    assert torch.equal(low, expected)
    full = oracle_prompts(torch.ones(20, 30), "points")
    assert full.labels.tolist() == [1] and full.points.tolist() == [[14.0, 9.0]]


def test_oracle_prompts_deterministic_and_valid() -> None:
    for seed in range(20):
        mask = _blob(seed)
        for kind in ("box", "points", "mask"):
            assert _same(oracle_prompts(mask, kind), oracle_prompts(mask.clone(), kind))  # type: ignore[arg-type]
        p = oracle_prompts(mask, "points")
        (fx, fy), (bx, by) = p.points.tolist()
        assert mask[0, int(fy), int(fx)] == 1 and mask[0, int(by), int(bx)] == 0
        assert torch.equal(oracle_prompts(mask, "box").box, tight_box(mask))
    assert oracle_prompts(torch.zeros(16, 16), "box").is_empty
    with pytest.raises(ValueError):
        oracle_prompts(_blob(0), "scribble")  # type: ignore[arg-type]
