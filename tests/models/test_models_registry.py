"""Method registry, create_model options, tuned-state save/load."""

from __future__ import annotations

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.models import (
    METHODS,
    create_model,
    load_tuned_state,
    method_options,
    state_for_checkpoint,
)

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 64


def test_registry_contents_and_errors() -> None:
    assert {"adapter_cbam", "decoder_only", "full", "lora", "sam_adapter", "sam2unet", "tuned_sam"} <= set(METHODS)
    assert all(isinstance(spec.description, str) and spec.description for spec in METHODS.values())
    assert method_options("adapter_cbam") == {"adapter_ratio": 0.25, "cbam_reduction": 16, "cbam_kernel_size": 7,
                                              "edge": False}
    assert method_options("full") == {}
    with pytest.raises(SodError, match="unknown method 'nope': known methods are adapter_cbam, decoder_only, f3net, "
                       "full, .*u2netp"):
        create_model("nope")
    with pytest.raises(SodError, match=r"unknown option\(s\) for method 'adapter_cbam': ratio .*adapter_ratio"):
        create_model("adapter_cbam", ratio=0.5)
    with pytest.raises(SodError, match="unknown option"):
        create_model("full", adapter_ratio=0.5)


def test_method_cfg_is_applied_and_recorded() -> None:
    model = create_model("adapter_cbam", image_size=32, adapter_ratio=0.5, cbam_kernel_size=3)
    trunk = model.image_encoder.trunk
    assert trunk.adapters[0].down.out_features == 48 and trunk.cbams[0].spatial.conv.kernel_size == (3, 3)
    assert model.method == "adapter_cbam"
    assert model.method_cfg == {"adapter_ratio": 0.5, "cbam_reduction": 16, "cbam_kernel_size": 3, "edge": False}


def _perturb_trainable(model, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _outputs(model, seed: int = 0):
    x = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x, multimask=True)


def test_tuned_round_trip_pretrained_base(tmp_path, sam21_tiny_ckpt) -> None:
    ckpt, _ = sam21_tiny_ckpt
    model = create_model("adapter_cbam", image_size=S, checkpoint=ckpt)
    _perturb_trainable(model)
    expected = _outputs(model)
    state = state_for_checkpoint(model)
    assert not state["full_state"] and state["base"]["sha256"] == model.base_info["sha256"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in model.named_buffers()}
    assert set(state["state_dict"]) == trainable | buffers
    assert "image_encoder.trunk.blocks.0.attn.qkv.weight" not in state["state_dict"]
    path = tmp_path / "tuned.pt"
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    restored = load_tuned_state(create_model("adapter_cbam", image_size=S, checkpoint=ckpt), loaded)
    got = _outputs(restored)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert restored.model_is_pretrained
    # another image size: same weights, no error
    assert load_tuned_state(create_model("adapter_cbam", image_size=32, checkpoint=ckpt), loaded).image_size == 32


def test_tuned_round_trip_random_base_holds_its_seed(tmp_path) -> None:
    model = create_model("adapter_cbam", image_size=S, seed=4)
    _perturb_trainable(model)
    state = state_for_checkpoint(model)
    assert not state["full_state"] and state["base"]["seed"] == 4 and len(state["frozen_sha256"]) == 64
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(state["state_dict"]) == trainable | {n for n, _ in model.named_buffers()}
    other = create_model("adapter_cbam", image_size=S, seed=99)  # different random base: rebuilt from seed 4
    load_tuned_state(other, state)
    exp, got = _outputs(model), _outputs(other)
    assert all(torch.equal(exp[k], got[k]) for k in exp)
    assert other.base_info["seed"] == 4 and not other.model_is_pretrained
    path = tmp_path / "t.pt"
    torch.save(state, path)
    got = _outputs(load_tuned_state(create_model("adapter_cbam", image_size=S, seed=7),
                                    torch.load(path, weights_only=True)))
    assert all(torch.equal(exp[k], got[k]) for k in exp)


def test_tuned_state_mismatches(tmp_path, sam21_tiny_ckpt) -> None:
    ckpt, _ = sam21_tiny_ckpt
    model = create_model("adapter_cbam", image_size=32, checkpoint=ckpt)
    state = state_for_checkpoint(model)
    with pytest.raises(SodError, match="method='adapter_cbam'"):
        load_tuned_state(create_model("decoder_only", image_size=32, checkpoint=ckpt), state)
    with pytest.raises(SodError, match="version='sam2.1'"):
        load_tuned_state(create_model("adapter_cbam", version="sam2", image_size=32), state)
    with pytest.raises(SodError, match="random init"):
        load_tuned_state(create_model("adapter_cbam", image_size=32), state)
    bad_sha = {**state, "base": {**state["base"], "sha256": "0" * 64}}
    with pytest.raises(SodError, match="sha256 0000"):
        load_tuned_state(model, bad_sha)
    sd = dict(state["state_dict"])
    gone = next(k for k in sd if ".cbams.3." in k)
    del sd[gone]
    sd["sam_mask_decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(SodError, match=rf"1 missing key\(s\): {gone}.*1 unexpected key\(s\): sam_mask_decoder.extra"):
        load_tuned_state(model, {**state, "state_dict": sd})
    sd = dict(state["state_dict"])
    sd["sam_mask_decoder.iou_token.weight"] = torch.zeros(1, 7)
    with pytest.raises(SodError, match="shape mismatch"):
        load_tuned_state(model, {**state, "state_dict": sd})
    with pytest.raises(SodError, match="not a sam2sod tuned state"):
        load_tuned_state(model, {"model": {}})
