"""F3Net structure loss, IoU-head loss and multi-mask selection, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from sam2sod.losses import bce_loss, best_mask_loss, iou_head_loss, mask_iou, structure_loss

LN3 = math.log(3.0)


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).view(1, 1, len(rows), len(rows[0]))


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _bce(x: float, t: float) -> float:
    p = _sig(x)
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def _expected_structure(xs: list[float], ts: list[float], weighted_bce: bool = True) -> float:
    # On a 2x2 image every 31x31 window (padding 15, count_include_pad) covers all 4 pixels: avg = sum(t)/961
    avg = sum(ts) / 961.0
    w = [1 + 5 * abs(avg - t) for t in ts]
    if weighted_bce:
        wbce = sum(wi * _bce(x, t) for wi, x, t in zip(w, xs, ts, strict=True)) / sum(w)
    else:
        wbce = sum(_bce(x, t) for x, t in zip(xs, ts, strict=True)) / len(xs)
    p = [_sig(x) for x in xs]
    inter = sum(wi * pi * t for wi, pi, t in zip(w, p, ts, strict=True))
    union = sum(wi * (pi + t) for wi, pi, t in zip(w, p, ts, strict=True))
    return wbce + 1 - (inter + 1) / (union - inter + 1)


XS = [0.0, LN3, -LN3, 0.0]
TS = [1.0, 1.0, 0.0, 0.0]


def test_structure_loss_hand_value() -> None:
    logits, target = _t([XS[:2], XS[2:]]), _t([TS[:2], TS[2:]])
    assert structure_loss(logits, target).item() == pytest.approx(_expected_structure(XS, TS), rel=1e-5)


def test_structure_loss_legacy_bce_hand_value() -> None:
    logits, target = _t([XS[:2], XS[2:]]), _t([TS[:2], TS[2:]])
    got = structure_loss(logits, target, legacy_unweighted_bce=True).item()
    assert got == pytest.approx(_expected_structure(XS, TS, weighted_bce=False), rel=1e-5)


def test_structure_loss_soft_target_hand_value() -> None:
    ts = [0.9, 0.6, 0.3, 0.0]
    logits, target = _t([XS[:2], XS[2:]]), _t([ts[:2], ts[2:]])
    assert structure_loss(logits, target).item() == pytest.approx(_expected_structure(XS, ts), rel=1e-5)


def test_structure_weights_emphasise_edges() -> None:
    # a wrong pixel on the object boundary costs more than the same mistake deep in the background
    target = torch.zeros(1, 1, 64, 64)
    target[..., 16:48, 16:48] = 1.0
    good = 30.0 * (2 * target - 1)
    edge, far = good.clone(), good.clone()
    edge[..., 32, 15] = 30.0  # just outside the object's left edge
    far[..., 63, 63] = 30.0  # far corner
    assert structure_loss(edge, target).item() > structure_loss(far, target).item()


def test_structure_loss_perfect_gradient_reduction() -> None:
    gen = torch.Generator().manual_seed(0)
    target = (torch.rand(2, 1, 40, 40, generator=gen) > 0.5).float()
    assert structure_loss(30.0 * (2 * target - 1), target).item() == pytest.approx(0.0, abs=1e-4)
    logits = torch.randn(2, 1, 40, 40, generator=gen).requires_grad_(True)
    per = structure_loss(logits, torch.rand(2, 1, 40, 40, generator=gen), reduction="none")
    assert per.shape == (2,) and torch.isfinite(per).all()
    per.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


# ---------------------------------------------------------------- IoU head
def test_mask_iou_hand_values() -> None:
    target = _t([[1.0, 0.0], [0.0, 0.0]])
    logits = torch.tensor([[[1.0, 1.0], [-1.0, -1.0]], [[-1.0, -1.0], [-1.0, -1.0]]]).view(1, 2, 2, 2)
    assert mask_iou(logits, target).tolist() == [[0.5, 0.0]]
    empty = torch.zeros(1, 1, 2, 2)
    assert mask_iou(-torch.ones(1, 1, 2, 2), empty).tolist() == [[1.0]]


def test_iou_head_loss_hand_value_and_gradient() -> None:
    target = _t([[1.0, 0.0], [0.0, 0.0]])
    logits = torch.tensor([[[1.0, 1.0], [-1.0, -1.0]], [[-1.0, -1.0], [-1.0, -1.0]]]).view(1, 2, 2, 2)
    logits.requires_grad_(True)
    pred = torch.tensor([[0.5, 0.3]], requires_grad=True)
    loss = iou_head_loss(pred, logits, target)
    assert loss.item() == pytest.approx(((0.5 - 0.5) ** 2 + (0.3 - 0.0) ** 2) / 2, rel=1e-6)
    loss.backward()
    assert pred.grad is not None and pred.grad[0].tolist() == pytest.approx([0.0, 0.3])
    assert logits.grad is None  # actual IoU is a constant target
    assert iou_head_loss(pred, logits, target, reduction="none").shape == (1,)


def test_iou_head_loss_resizes_target_and_checks_shapes() -> None:
    target = torch.zeros(2, 1, 16, 16)
    target[..., :8, :] = 1.0
    logits = torch.full((2, 3, 4, 4), -5.0)
    logits[:, :, :2, :] = 5.0  # exactly the (downsized) target -> IoU 1
    assert iou_head_loss(torch.ones(2, 3), logits, target).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError):
        iou_head_loss(torch.ones(2, 2), logits, target)


def test_best_mask_loss_picks_minimum() -> None:
    gen = torch.Generator().manual_seed(3)
    target = (torch.rand(2, 1, 8, 8, generator=gen) > 0.5).float()
    perfect = 30.0 * (2 * target - 1)
    noise = torch.randn(2, 1, 8, 8, generator=gen)
    logits = torch.cat([noise, torch.cat([perfect[:1], noise[1:]]), torch.cat([noise[:1], perfect[1:]])], 1)
    loss, idx = best_mask_loss(bce_loss, logits, target)
    assert idx.tolist() == [1, 2]
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
