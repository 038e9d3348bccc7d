"""Activation checkpointing, EMA and layer-wise LR decay (sam2sod.models.optim_tools)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from sam2sod.models import RandomInitWarning
from sam2sod.models.optim_tools import (
    ModelEMA,
    enable_grad_checkpoint,
    hiera_blocks,
    layer_decay_groups,
    layer_id,
)
from sam2sod.models.registry import create_model


def _model(method: str) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        return create_model(method, image_size=64, seed=3).train()


def _grads(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    out = model(x)["logits"]
    (out.float() ** 2).mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("method", ["full", "lora", "adapter_cbam"])
def test_grad_checkpoint_gives_identical_gradients(method):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    plain = _model(method)
    ckpt = copy.deepcopy(plain)
    keys = list(ckpt.state_dict())
    blocks, ends = hiera_blocks(ckpt), ckpt.image_encoder.trunk.stage_ends
    assert enable_grad_checkpoint(ckpt) == ends[-2] + 1 == len(blocks) - (ends[-1] - ends[-2]) > 0
    names = [type(b).__name__.startswith("Checkpointed") for b in blocks]
    assert names == [i <= ends[-2] for i in range(len(blocks))]  # the last stage is kept as it is
    assert type(blocks[0].mlp).__name__.startswith("Checkpointed")  # first stage: attention and MLP apart too
    assert type(blocks[0].attn).__name__.startswith("Checkpointed")
    assert not type(blocks[ends[0] + 1].mlp).__name__.startswith("Checkpointed")
    assert list(ckpt.state_dict()) == keys  # names unchanged
    g0, g1 = _grads(plain, x), _grads(ckpt, x)
    assert g0.keys() == g1.keys() and len(g0) > 0
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], atol=1e-5, rtol=1e-4, msg=n)


def _saved_tensors(model: torch.nn.Module, x: torch.Tensor) -> int:
    count = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return count[0]


def test_grad_checkpoint_without_stage_ends_wraps_every_block_whole():
    model = _model("full")
    model.image_encoder.trunk.stage_ends = None  # a trunk that does not say where its stages end
    blocks = hiera_blocks(model)
    assert enable_grad_checkpoint(model) == len(blocks)
    assert all(type(b).__name__.startswith("Checkpointed") for b in blocks)
    assert not any(type(b.mlp).__name__.startswith("Checkpointed") for b in blocks)


def test_grad_checkpoint_stores_fewer_activations_and_survives_deepcopy():
    model = _model("full")
    x = torch.randn(1, 3, 64, 64)
    plain = _saved_tensors(model, x)
    enable_grad_checkpoint(model)
    enable_grad_checkpoint(model)  # idempotent
    assert _saved_tensors(model, x) < 0.6 * plain
    clone = copy.deepcopy(model)
    assert type(hiera_blocks(clone)[0]).__name__.startswith("Checkpointed")
    assert _saved_tensors(clone, x) < 0.6 * plain
    with torch.no_grad():
        out_eval = model.eval()(x)["logits"]
    torch.testing.assert_close(out_eval, _model("full").eval()(x)["logits"])  # inference unchanged


def test_ema_update_and_swap():
    model = _model("decoder_only")
    ema = ModelEMA(model, decay=0.9)
    name, p = next((n, p) for n, p in model.named_parameters() if p.requires_grad)
    start = p.detach().clone()
    with torch.no_grad():
        p.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow[name], start + 0.1)
    with ema.swapped(model):
        torch.testing.assert_close(p.detach(), start + 0.1)
    torch.testing.assert_close(p.detach(), start + 1.0)
    frozen = [n for n, q in model.named_parameters() if not q.requires_grad]
    assert frozen and not set(frozen) & set(ema.shadow)


def test_ema_state_round_trip_and_checks():
    model = _model("decoder_only")
    ema = ModelEMA(model, decay=0.99)
    ema.update(model)
    other = ModelEMA(model, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.99
    for n in ema.shadow:
        assert torch.equal(other.shadow[n], ema.shadow[n])
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        ModelEMA(model, decay=1.0)


def test_layer_decay_groups_follow_the_block_depth():
    model = _model("full")
    n = len(hiera_blocks(model))
    assert layer_id("image_encoder.trunk.patch_embed.proj.weight", n) == 0
    assert layer_id("image_encoder.trunk.blocks.0.attn.qkv.weight", n) == 1
    assert layer_id(f"image_encoder.trunk.blocks.{n - 1}.mlp.layers.0.weight", n) == n
    assert layer_id("sam_mask_decoder.iou_token.weight", n) == n + 1
    groups = layer_decay_groups(model, lr=1e-3, decay=0.5, weight_decay=0.01)
    by_param = {id(p): g for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    top = by_param[id(params[f"image_encoder.trunk.blocks.{n - 1}.attn.qkv.weight"])]
    first = by_param[id(params["image_encoder.trunk.blocks.0.attn.qkv.weight"])]
    head = by_param[id(params["sam_mask_decoder.iou_token.weight"])]
    assert head["lr"] == pytest.approx(1e-3)
    assert top["lr"] == pytest.approx(1e-3 * 0.5)
    assert first["lr"] == pytest.approx(1e-3 * 0.5 ** n)
    bias = by_param[id(params["image_encoder.trunk.blocks.0.attn.qkv.bias"])]
    assert bias["weight_decay"] == 0.0 and first["weight_decay"] == 0.01
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        layer_decay_groups(model, lr=1e-3, decay=0.0)
