"""lora: LoRALinear math, targets, merge for export."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.errors import SodError
from sam2sod.models import create_model, method_options
from sam2sod.models.peft.lora import LoRALinear, lora_modules, merge_lora

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 32


def test_lora_linear_math_and_keys() -> None:
    torch.manual_seed(0)
    base = nn.Linear(16, 24)
    lora = LoRALinear(base, rank=3, alpha=6.0)
    x = torch.randn(2, 5, 16)
    assert torch.equal(lora(x), base(x))  # B = 0 at init
    assert set(dict(lora.named_parameters())) == {"weight", "bias", "lora_A", "lora_B"}
    assert lora.weight is base.weight and lora.lora_A.shape == (3, 16) and lora.lora_B.shape == (24, 3)
    with torch.no_grad():
        lora.lora_B.normal_()
    expected = base(x) + 2.0 * (x @ lora.lora_A.T @ lora.lora_B.T)
    torch.testing.assert_close(lora(x), expected)
    merged = lora.merged_linear()
    torch.testing.assert_close(merged(x), F.linear(x, base.weight + 2.0 * lora.lora_B @ lora.lora_A, base.bias))


def test_options_targets_and_trainability() -> None:
    assert method_options("lora") == {"rank": 4, "alpha": 4.0, "dropout": 0.0, "targets": "qkv,proj"}
    model = create_model("lora", image_size=S, rank=2, targets="qkv,proj,mlp")
    names = [n for n, _ in lora_modules(model)]
    assert len(names) == 12 * 4
    assert all(n.endswith(("attn.qkv", "attn.proj", "mlp.layers.0", "mlp.layers.1")) for n in names)
    assert all(m.rank == 2 for _, m in lora_modules(model))
    blk = model.image_encoder.trunk.blocks[1]  # stage change: block proj shortcut untouched
    assert isinstance(blk.proj, nn.Linear) and not isinstance(blk.proj, LoRALinear)
    assert "image_encoder.trunk.blocks.1.attn.qkv.weight" in model.state_dict()
    for bad in ("qkv,mlp2", "", "q"):
        with pytest.raises(SodError, match="lora targets"):
            create_model("lora", image_size=S, targets=bad)
    with pytest.raises(SodError, match="rank"):
        create_model("lora", image_size=S, rank=0)


def test_merge_equals_unmerged_and_removes_lora(prompts_cls) -> None:
    model = create_model("lora", image_size=S, seed=1, targets="qkv,proj,mlp")
    ref = create_model("decoder_only", image_size=S, seed=1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, m in lora_modules(model):
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.02)
    x = torch.randn(2, 3, S, S, generator=g)
    with torch.no_grad():
        before = model(x, multimask=True)
        assert not torch.allclose(before["logits"], ref(x, multimask=True)["logits"])
        merge_lora(model)
        after = model(x, multimask=True)
    assert not lora_modules(model) and model.method == "lora_merged"
    assert set(model.state_dict()) == set(ref.state_dict())  # plain SAM2 keys only
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("image_encoder."))
    for k in before:
        torch.testing.assert_close(after[k], before[k], atol=1e-5, rtol=1e-5)
