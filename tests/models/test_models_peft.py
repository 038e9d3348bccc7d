"""adapter_cbam: identity at init, what trains, frozen weights, norm modes, parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sam2sod.models import count_params, create_model
from sam2sod.models.freeze import is_norm
from sam2sod.models.peft.adapter_cbam import CBAM, Adapter

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 64
TRAINABLE = (".adapters.", ".cbams.", "sam_prompt_encoder.", "sam_mask_decoder.")


@pytest.fixture(scope="module")
def frozen_and_tuned():
    return (create_model("decoder_only", image_size=S, seed=5),
            create_model("adapter_cbam", image_size=S, seed=5))


def _all_prompts(prompts_cls, b: int = 2):
    """Every prompt kind (fg, bg, box corners, padding, mask) and one sample without a mask."""
    return prompts_cls(
        points=torch.tensor([[[5.0, 6.0], [40.0, 50.0], [10.0, 10.0], [30.0, 30.0]]] * b),
        labels=torch.tensor([[1, 0, 2, 3], [2, 3, 1, -1]][:b]),
        mask_input=torch.randn(b, 1, S // 4, S // 4, generator=torch.Generator().manual_seed(0)),
        has_mask=torch.tensor([True, False][:b]),
    )


def test_identity_at_init(frozen_and_tuned, prompts_cls) -> None:
    frozen, tuned = frozen_and_tuned
    x = torch.randn(2, 3, S, S)
    with torch.no_grad():
        for prompts in (None, _all_prompts(prompts_cls)):
            for multimask in (False, True):
                a, b = frozen(x, prompts, multimask), tuned(x, prompts, multimask)
                assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_keys_preserved_and_modules_placed(frozen_and_tuned) -> None:
    frozen, tuned = frozen_and_tuned
    base_keys, tuned_keys = set(frozen.state_dict()), set(tuned.state_dict())
    assert base_keys < tuned_keys
    assert all(".adapters." in k or ".cbams." in k for k in tuned_keys - base_keys)
    trunk = tuned.image_encoder.trunk
    assert len(trunk.cbams) == len(trunk.blocks) == 12 and len(trunk.adapters) == 4
    assert [a.up.out_features for a in trunk.adapters] == [96, 192, 384, 768]
    assert [a.down.out_features for a in trunk.adapters] == [24, 48, 96, 192]  # ratio 0.25
    # the modules are wired in: a non-zero gate / adapter changes the output
    x = torch.randn(1, 3, S, S)
    with torch.no_grad():
        before = tuned(x)["logits"]
        trunk.cbams[4].gate_channel.fill_(0.5)
        changed_cbam = tuned(x)["logits"]
        trunk.cbams[4].gate_channel.zero_()
        torch.nn.init.normal_(trunk.adapters[1].up.weight, std=0.1)
        changed_adapter = tuned(x)["logits"]
        trunk.adapters[1].up.weight.zero_()
        assert torch.equal(tuned(x)["logits"], before)
    assert not torch.allclose(before, changed_cbam) and not torch.allclose(before, changed_adapter)


def test_adapter_and_cbam_math() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 32)  # channels-last (B,H,W,C) like Hiera blocks
    ad, cb = Adapter(32, 0.5), CBAM(32, reduction=8, kernel_size=7)
    assert torch.equal(ad(x), x) and torch.equal(cb(x), x)
    with torch.no_grad():
        cb.gate_channel.fill_(1.0)
        cb.gate_spatial.fill_(1.0)
        mlp = cb.channel.mlp
        mc = torch.sigmoid(mlp(x.mean((1, 2))) + mlp(x.amax((1, 2))))[:, None, None, :]
        y = x + mc * x
        maps = torch.stack([y.mean(-1), y.amax(-1)], dim=1)
        ms = torch.sigmoid(F.conv2d(maps, cb.spatial.conv.weight, cb.spatial.conv.bias, padding=3))
        expected = y + ms.permute(0, 2, 3, 1) * y
        torch.testing.assert_close(cb(x), expected)
        torch.nn.init.normal_(ad.up.weight)
        torch.testing.assert_close(ad(x), x + ad.up(F.gelu(ad.down(x))))


def test_exactly_intended_params_get_grads_and_adamw_step(prompts_cls) -> None:
    model = create_model("adapter_cbam", image_size=S, seed=2).train()
    out = model(torch.randn(2, 3, S, S), _all_prompts(prompts_cls), multimask=False)
    loss = out["logits"].mean() + out["iou"].sum() + out["object_score_logits"].sum()
    loss.backward()
    names = dict(model.named_parameters())
    for n, p in names.items():
        intended = any(t in n for t in TRAINABLE)
        assert p.requires_grad == intended, n
        assert (p.grad is not None) == intended, n
    before = {n: p.detach().clone() for n, p in names.items()}
    opt = torch.optim.AdamW([p for p in names.values() if p.requires_grad], lr=1e-3, weight_decay=1e-2)
    opt.step()
    unchanged = [n for n, p in names.items() if p.requires_grad and torch.equal(p, before[n])]
    assert not unchanged
    assert all(torch.equal(p, before[n]) for n, p in names.items() if not p.requires_grad)


@pytest.mark.parametrize("method", ["adapter_cbam", "decoder_only", "full"])
def test_frozen_norms_stay_in_eval(method: str) -> None:
    model = create_model(method, image_size=32).train()
    assert model.training
    norms = {n: m for n, m in model.named_modules() if is_norm(m)}
    assert norms
    for n, m in norms.items():
        frozen = not any(p.requires_grad for p in m.parameters())
        assert m.training == (not frozen), n
        if method != "full" and n.startswith("image_encoder."):
            assert not m.training, n
    assert any(m.training for n, m in norms.items() if n.startswith("sam_mask_decoder."))
    if method == "adapter_cbam":
        assert model.image_encoder.trunk.adapters.training and model.image_encoder.trunk.cbams[0].training
    model.eval()
    assert not any(m.training for m in model.modules())


# hiera tiny (sam2.1_hiera_t.yaml): embed_dim 96, stages (1, 2, 7, 2), width doubling at each stage
HIERA_TINY_STAGES = ((96, 1), (192, 2), (384, 7), (768, 2))


def test_adapter_and_cbam_counts_follow_their_formulas() -> None:
    """Adapter after each stage: Linear(d, h) + Linear(h, d) = 2dh + d + h with h = round(d * ratio). CBAM after
    each block: channel MLP Linear(d, c) + Linear(c, d) = 2dc + c + d with c = max(4, d // reduction), the
    spatial 7x7 conv 2 -> 1 (2 * 49 + 1) and two per-channel gates (2d)."""
    ratio, reduction, k = 0.25, 16, 7
    model = create_model("adapter_cbam", image_size=32, adapter_ratio=ratio, cbam_reduction=reduction,
                         cbam_kernel_size=k)
    trunk = model.image_encoder.trunk
    assert [b.dim_out for b in trunk.blocks] == [d for d, n in HIERA_TINY_STAGES for _ in range(n)]
    adapters = sum(2 * d * round(d * ratio) + d + round(d * ratio) for d, _ in HIERA_TINY_STAGES)
    cbams = sum(n * (2 * d * max(4, d // reduction) + max(4, d // reduction) + d + 2 * k * k + 1 + 2 * d)
                for d, n in HIERA_TINY_STAGES)
    counts = count_params(model)
    assert counts["adapters"] == (adapters, adapters)
    assert counts["cbam"] == (cbams, cbams)
    decoder_only = count_params(create_model("decoder_only", image_size=32))
    assert counts["total"] == (decoder_only["total"][0] + adapters + cbams,
                               decoder_only["total"][1] + adapters + cbams)


@pytest.mark.parametrize("method", ["adapter_cbam", "decoder_only", "full"])
def test_count_params_add_up(method: str) -> None:
    model = create_model(method, image_size=32)
    counts = count_params(model)
    groups = {g: c for g, c in counts.items() if g != "total"}
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts["total"] == (total, trainable)
    assert sum(t for t, _ in groups.values()) == total and sum(tr for _, tr in groups.values()) == trainable
    assert "decoder" not in groups
    enc = sum(p.numel() for n, p in model.named_parameters()
              if n.startswith("image_encoder.") and ".adapters." not in n and ".cbams." not in n)
    assert groups["image_encoder"][0] == enc
    if method == "adapter_cbam":
        assert groups["image_encoder"][1] == 0 and groups["no_mem_embed"][1] == 0
        assert groups["adapters"][0] == groups["adapters"][1] > 0
        assert groups["cbam"][0] == groups["cbam"][1] > 0
        assert trainable == groups["adapters"][0] + groups["cbam"][0] + groups["prompt_encoder"][0] \
            + groups["mask_decoder"][0]
    elif method == "decoder_only":
        assert set(groups) == {"image_encoder", "prompt_encoder", "mask_decoder", "no_mem_embed"}
        assert trainable == groups["prompt_encoder"][0] + groups["mask_decoder"][0]
    else:
        assert trainable == total
