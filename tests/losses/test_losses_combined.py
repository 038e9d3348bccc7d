"""Report-000 objective, deep supervision, modules, registry and build_loss."""

from __future__ import annotations

import pytest
import torch

from sam2sod.losses import (
    LOSSES,
    BCELoss,
    DiceLoss,
    SODObjective,
    SSIMLoss,
    StructureLoss,
    WeightedLoss,
    bce_loss,
    build_loss,
    deep_supervision,
    dice_loss,
    sod_objective,
    ssim_loss,
    structure_loss,
)


def _data(seed: int = 0, b: int = 2, s: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, 1, s, s, generator=gen), (torch.rand(b, 1, s, s, generator=gen) > 0.5).float()


def test_sod_objective_is_weighted_sum_of_parts() -> None:
    logits, target = _data()
    total, parts = sod_objective(logits, target, bce=1.0, dice=2.0, ssim=0.5)
    b, d, s = bce_loss(logits, target), dice_loss(logits, target), ssim_loss(logits, target)
    assert set(parts) == {"bce", "dice", "ssim"}
    assert parts["dice"].item() == pytest.approx(d.item())
    assert total.item() == pytest.approx((b + 2 * d + 0.5 * s).item(), rel=1e-6)


def test_sod_objective_skips_zero_weights_and_reduction_none() -> None:
    logits, target = _data()
    total, parts = sod_objective(logits, target, ssim=0.0, reduction="none")
    assert set(parts) == {"bce", "dice"} and total.shape == (2,)
    with pytest.raises(ValueError):
        sod_objective(logits, target, bce=0, dice=0, ssim=0)


def test_sod_objective_perfect_and_gradient() -> None:
    _, target = _data(1)
    total, _ = sod_objective(30.0 * (2 * target - 1), target)
    assert total.item() == pytest.approx(0.0, abs=1e-4)
    logits = torch.randn(2, 1, 24, 24, requires_grad=True)
    sod_objective(logits, target)[0].backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_deep_supervision_resizes_target_and_weights() -> None:
    gen = torch.Generator().manual_seed(4)
    target = torch.zeros(2, 1, 16, 16)
    target[..., 4:12, 4:12] = 1.0
    outs = [torch.randn(2, 1, 16, 16, generator=gen), torch.randn(2, 1, 8, 8, generator=gen)]
    total, parts = deep_supervision(bce_loss, outs, target, weights=[1.0, 0.5])
    small = torch.zeros(2, 1, 8, 8)
    small[..., 2:6, 2:6] = 1.0  # exact 2x downsizing of the aligned square
    expected = bce_loss(outs[0], target) + 0.5 * bce_loss(outs[1], small)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(parts) == {"out0", "out1"}


def test_deep_supervision_with_tuple_losses() -> None:
    logits, target = _data(5)
    total, parts = deep_supervision(sod_objective, [logits, logits], target)
    single, sp = sod_objective(logits, target)
    assert total.item() == pytest.approx(2 * single.item(), rel=1e-6)
    assert parts["bce"].item() == pytest.approx(2 * sp["bce"].item(), rel=1e-6)
    with pytest.raises(ValueError):
        deep_supervision(bce_loss, [logits], target, weights=[1.0, 2.0])
    with pytest.raises(ValueError):
        deep_supervision(bce_loss, [], target)


def test_modules_match_functions() -> None:
    logits, target = _data(6)
    pairs = [
        (BCELoss(), bce_loss),
        (DiceLoss(), dice_loss),
        (SSIMLoss(), ssim_loss),
        (StructureLoss(), structure_loss),
    ]
    for mod, fn in pairs:
        assert mod(logits, target).item() == pytest.approx(fn(logits, target).item(), rel=1e-6)
    assert BCELoss(reduction="none")(logits, target).shape == (2,)
    total, parts = SODObjective(dice=0.0)(logits, target)
    assert set(parts) == {"bce", "ssim"}
    assert total.item() == pytest.approx((bce_loss(logits, target) + ssim_loss(logits, target)).item(), rel=1e-6)


def test_registry_and_build_loss() -> None:
    logits, target = _data(7)
    assert set(LOSSES) >= {"bce", "dice", "ssim", "structure"}
    sod = build_loss("sod")
    assert isinstance(sod, WeightedLoss) and sod.weights == {"bce": 1.0, "dice": 1.0, "ssim": 1.0}
    assert sod(logits, target)[0].item() == pytest.approx(sod_objective(logits, target)[0].item(), rel=1e-6)
    assert build_loss("structure")(logits, target)[0].item() == pytest.approx(structure_loss(logits, target).item())
    assert build_loss("bce+0.5*dice").weights == {"bce": 1.0, "dice": 0.5}
    assert build_loss({"ssim": 2}).weights == {"ssim": 2.0}
    assert build_loss("f3net").weights == {"structure": 1.0}
    for bad in ("focal", "bce+x*dice", {"bce": 0.0}):
        with pytest.raises(ValueError):
            build_loss(bad)
