"""BCE, Dice and SSIM losses against values worked out by hand with plain Python math."""

from __future__ import annotations

import math

import pytest
import torch

from sam2sod.losses import bce_loss, dice_loss, gaussian_window, ssim, ssim_loss

LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).view(1, 1, len(rows), len(rows[0]))


LOGITS = _t([[0.0, LN3], [-LN3, 0.0]])  # probs 0.5, 0.75, 0.25, 0.5
TARGET = _t([[1.0, 1.0], [0.0, 0.0]])


def _perfect(target: torch.Tensor) -> torch.Tensor:
    return 30.0 * (2.0 * target - 1.0)


# ---------------------------------------------------------------- BCE
def test_bce_hand_value() -> None:
    # pixels: p=.5,t=1 -> ln2 ; p=.75,t=1 -> -ln .75 ; p=.25,t=0 -> -ln .75 ; p=.5,t=0 -> ln2
    expected = (2 * math.log(2.0) - 2 * math.log(0.75)) / 4
    assert bce_loss(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_bce_soft_target_hand_value() -> None:
    target = _t([[0.5, 0.5], [0.2, 1.0]])
    p = [0.5, 0.75, 0.25, 0.5]
    t = [0.5, 0.5, 0.2, 1.0]
    expected = sum(-(ti * math.log(pi) + (1 - ti) * math.log(1 - pi)) for pi, ti in zip(p, t, strict=True)) / 4
    assert bce_loss(LOGITS, target).item() == pytest.approx(expected, rel=1e-6)


def test_bce_soft_target_minimum_at_target() -> None:
    target = torch.tensor([0.1, 0.3, 0.6, 0.9]).view(1, 1, 2, 2)
    logits = torch.logit(target).clone().requires_grad_(True)
    bce_loss(logits, target).backward()
    assert logits.grad is not None and logits.grad.abs().max().item() < 1e-6


def test_bce_stable_for_huge_logits() -> None:
    logits = torch.tensor([1e4, -1e4, 80.0, -80.0]).view(1, 1, 2, 2).requires_grad_(True)
    target = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)
    loss = bce_loss(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(2e4 / 4, rel=1e-5)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


# ---------------------------------------------------------------- Dice
def test_dice_hand_value() -> None:
    # sum(p*t) = .5 + .75 = 1.25, sum(p) = 2, sum(t) = 2
    expected = 1 - (2 * 1.25 + 1.0) / (2.0 + 2.0 + 1.0)
    assert dice_loss(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)
    expected_eps0 = 1 - (2 * 1.25) / 4.0
    assert dice_loss(LOGITS, TARGET, eps=0.0).item() == pytest.approx(expected_eps0, rel=1e-6)


def test_dice_empty_target_empty_prediction_is_zero() -> None:
    target = torch.zeros(1, 1, 4, 4)
    assert dice_loss(_perfect(target), target).item() == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- SSIM
def test_gaussian_window_normalised_and_symmetric() -> None:
    w = gaussian_window(11, 1.5)
    assert w.shape == (11, 11)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(w, w.T) and torch.allclose(w, w.flip(0))
    # ratio edge/centre along the middle row = exp(-5^2 / (2 sigma^2))
    assert w[5, 0].item() / w[5, 5].item() == pytest.approx(math.exp(-25 / (2 * 1.5**2)), rel=1e-5)
    with pytest.raises(ValueError):
        gaussian_window(4)


def test_ssim_window1_hand_value() -> None:
    # window 1: local mean = pixel, variances 0 -> SSIM = (2xy + C1) / (x^2 + y^2 + C1)
    c1 = 0.01**2
    p = [0.5, 0.75, 0.25, 0.5]
    t = [1.0, 1.0, 0.0, 0.0]
    s = sum((2 * x * y + c1) / (x * x + y * y + c1) for x, y in zip(p, t, strict=True)) / 4
    assert ssim_loss(LOGITS, TARGET, window=1).item() == pytest.approx(1 - s, rel=1e-5)


def _ref_ssim(x: list[list[float]], y: list[list[float]], size: int, sigma: float) -> float:
    """Plain-Python SSIM with a Gaussian window and zero padding."""
    g = [math.exp(-((i - size // 2) ** 2) / (2 * sigma**2)) for i in range(size)]
    g = [v / sum(g) for v in g]
    h, w, r = len(x), len(x[0]), size // 2
    c1, c2 = 0.01**2, 0.03**2

    def at(a: list[list[float]], i: int, j: int) -> float:
        return a[i][j] if 0 <= i < h and 0 <= j < w else 0.0

    total = 0.0
    for i in range(h):
        for j in range(w):
            mx = my = sxx = syy = sxy = 0.0
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    k = g[di + r] * g[dj + r]
                    a, b = at(x, i + di, j + dj), at(y, i + di, j + dj)
                    mx, my = mx + k * a, my + k * b
                    sxx, syy, sxy = sxx + k * a * a, syy + k * b * b, sxy + k * a * b
            vx, vy, cxy = sxx - mx * mx, syy - my * my, sxy - mx * my
            total += ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return total / (h * w)


def test_ssim_window3_matches_plain_python_reference() -> None:
    x = [[0.5, 0.75, 0.25], [0.5, 0.5, 0.75], [0.25, 0.25, 0.5]]
    y = [[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.5]]
    logits = torch.logit(torch.tensor(x, dtype=torch.float64)).view(1, 1, 3, 3)
    expected = 1 - _ref_ssim(x, y, 3, 1.5)
    assert ssim_loss(logits, _t(y).double(), window=3, sigma=1.5).item() == pytest.approx(expected, rel=1e-9)
    assert ssim_loss(logits.float(), _t(y), window=3, sigma=1.5).item() == pytest.approx(expected, abs=1e-3)


def test_ssim_of_identical_maps_is_one() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 24, 24, generator=gen)
    for padding in ("zero", "reflect"):
        s = ssim(x, x.clone(), padding=padding)  # type: ignore[arg-type]
        assert s.shape == (3,)
        assert torch.allclose(s, torch.ones(3), atol=1e-5)


def test_ssim_reflect_constant_maps_hand_value() -> None:
    # constant maps a, b with reflect padding: variances 0 -> (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.75, 0.25, 0.01**2
    logits = torch.full((1, 1, 16, 16), LN3, dtype=torch.float64)
    target = torch.full((1, 1, 16, 16), b, dtype=torch.float64)
    expected = 1 - (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim_loss(logits, target, padding="reflect").item() == pytest.approx(expected, rel=1e-9)
    # float32 computes variances as E[x^2] - E[x]^2: a few 1e-4 of cancellation error on flat maps
    got32 = ssim_loss(logits.float(), target.float(), padding="reflect").item()
    assert got32 == pytest.approx(expected, abs=1e-3)


# ---------------------------------------------------------------- shared properties
LOSS_FNS = [bce_loss, dice_loss, ssim_loss]


@pytest.mark.parametrize("fn", LOSS_FNS)
def test_perfect_prediction_near_zero(fn) -> None:
    gen = torch.Generator().manual_seed(1)
    target = (torch.rand(2, 1, 32, 32, generator=gen) > 0.5).float()
    assert fn(_perfect(target), target).item() == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("fn", LOSS_FNS)
def test_gradient_finite_and_reduction_none(fn) -> None:
    gen = torch.Generator().manual_seed(2)
    logits = (3 * torch.randn(3, 1, 20, 20, generator=gen)).requires_grad_(True)
    target = torch.rand(3, 1, 20, 20, generator=gen)  # soft target
    per = fn(logits, target, reduction="none")
    assert per.shape == (3,)
    assert torch.isfinite(per).all() and (per >= -1e-6).all()
    assert fn(logits, target).item() == pytest.approx(per.mean().item(), rel=1e-6)
    per.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", LOSS_FNS)
def test_low_precision_logits_give_float32_loss(fn) -> None:
    logits = torch.randn(2, 1, 16, 16).to(torch.bfloat16)
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    loss = fn(logits, target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("fn", LOSS_FNS)
def test_shape_mismatch_and_bad_reduction_raise(fn) -> None:
    with pytest.raises(ValueError):
        fn(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError):
        fn(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), reduction="sum")
