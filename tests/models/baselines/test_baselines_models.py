"""Every registered baseline (plus PoolNet's edge variants): output contract, gradients, loss, state dicts,
parameter counts. Tiny inputs, one CPU thread (the machine is shared)."""

from __future__ import annotations

import io
import math
import warnings

import pytest
import torch

from sam2sod.models.baselines import BASELINES, BackboneRandomInitWarning, build_baseline

# the edge branch is the same code on both PoolNet backbones: test it once (ResNet-50), the cheaper VGG one below
VARIANTS = [(name, {}) for name in BASELINES] + [("poolnet", {"edge": True})]
IDS = [name + ("-edge" if cfg else "") for name, cfg in VARIANTS]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _build(name: str, cfg: dict, seed: int = 0) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BackboneRandomInitWarning)
        return build_baseline(name, image_size=64, seed=seed, **cfg)


@pytest.fixture(scope="module", params=VARIANTS, ids=IDS)
def variant(request):
    """(name, cfg, model): one model per variant, shared by this module's tests (they may change its weights)."""
    name, cfg = request.param
    return name, cfg, _build(name, cfg)


def _batch(size: int = 64, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed images and masks: a bright disc (b=0) and a square (b=1) on noise."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = (((yy - size / 2) ** 2 + (xx - size / 3) ** 2) < (size / 4) ** 2).float()
    square = ((yy > size // 4) & (yy < 3 * size // 4) & (xx > size // 3) & (xx < size - 4)).float()
    masks = torch.stack([disc, square])[:b, None]
    images = torch.randn(b, 3, size, size, generator=g) * 0.5 + masks * 1.5
    return images, masks


def _check_out(out: dict, b: int, size: int, n_aux: int | None = None):
    assert out["logits"].shape == (b, 1, size, size)
    assert isinstance(out["aux_logits"], list)
    for a in out["aux_logits"]:
        assert a.shape == (b, 1, size, size)
    for e in out.get("edge_logits", []):
        assert e.shape == (b, 1, size, size)
    if n_aux is not None:
        assert len(out["aux_logits"]) == n_aux


N_AUX = {"f3net": 5, "pfan": 0, "poolnet": 0, "poolnet_vgg": 0, "u2net": 6, "u2netp": 6}


@pytest.mark.parametrize("size", [32, 80], ids=["32px", "80px-not-multiple-of-32"])
def test_output_shapes(variant, size: int):
    """Outputs at input size for the smallest supported size (32) and a size that is not a multiple of 32."""
    name, cfg, model = variant
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size), None, multimask=False)
    _check_out(out, 1, size, N_AUX[name])
    assert ("edge_logits" in out) == bool(cfg.get("edge"))
    assert torch.isfinite(out["logits"]).all()


def test_every_parameter_gets_a_gradient(variant):
    _, _, model = variant
    model.train()
    model.zero_grad(set_to_none=True)
    images, masks = _batch()
    out = model(images)
    _check_out(out, 2, 64)
    loss, parts = model.compute_loss(out, masks)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert parts and all(isinstance(v, torch.Tensor) and v.dim() == 0 and torch.isfinite(v) for v in parts.values())
    loss.backward()
    missing = [k for k, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing[:5]
    bad = [k for k, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, bad[:5]


# PoolNet has no normalisation in its decoder; its paper trains with Adam at 5e-5
LR = {"poolnet": 3e-5, "poolnet_vgg": 3e-5}


def test_loss_decreases_on_a_fixed_batch(variant):
    name, _, model = variant
    model.train()
    images, masks = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=LR.get(name, 1e-4))
    losses = []
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        loss, _ = model.compute_loss(model(images), masks)
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(float(model.compute_loss(model(images), masks)[0]))
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses
    model.zero_grad(set_to_none=True)


def test_state_dict_round_trip(variant):
    name, cfg, model = variant
    model.eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    other = _build(name, cfg, seed=1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(other(x)["logits"], model(x)["logits"])  # different init
        other.load_state_dict(torch.load(buf, weights_only=True), strict=True)
        a, b = model(x), other(x)
    assert torch.equal(a["logits"], b["logits"])
    for u, v in zip(a["aux_logits"], b["aux_logits"], strict=True):
        assert torch.equal(u, v)


def test_param_count_matches_paper(variant):
    name, cfg, model = variant
    n = sum(p.numel() for p in model.parameters())
    paper = type(model).PAPER_PARAMS
    assert isinstance(paper, int)
    if cfg.get("edge"):  # PAPER_PARAMS is PoolNet without the edge branch, which adds ~0.6M
        assert paper < n < 1.02 * paper, (name, n, paper)
    else:
        assert abs(n - paper) <= 0.02 * paper, (name, n, paper)
    doc = type(model).__doc__ or ""
    assert "20" in doc and "Parameters" in doc  # cites the paper (venue, year) and states the count
    assert isinstance(model.pretrained_backbone, bool) and not model.pretrained_backbone


def test_poolnet_vgg_edge_branch():
    model = _build("poolnet_vgg", {"edge": True}).train()
    images, masks = _batch()
    out = model(images)
    _check_out(out, 2, 64, 0)
    assert len(out["edge_logits"]) == 4  # fused + one per fused FAM (3 on VGG-16)
    loss, parts = model.compute_loss(out, masks)
    assert set(parts) == {"bce", "edge"} and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
