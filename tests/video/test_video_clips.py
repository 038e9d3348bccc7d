"""forward_clip: shapes, agreement with the tracker, gradients per train_memory, learning on a moving disc."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2sod.errors import SodError
from sam2sod.infer.inference import preprocess
from sam2sod.models import create_model
from sam2sod.models.memory import build_memory, load_memory_state, memory_state, normalize_train_memory
from sam2sod.models.video_clips import forward_clip
from sam2sod.models.video_tracker import TrackerConfig, VideoTracker

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 64


def disc_clip(n: int, seed: int = 0, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames (n,3,S,S), masks (n,1,S,S)): a bright disc moving right and down over noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S]
    frames, masks = [], []
    for t in range(start, start + n):
        img = rng.integers(0, 140, size=(S, S, 3))
        m = (xx - 14 - 1.5 * t) ** 2 + (yy - 20 - 0.8 * t) ** 2 <= 100
        img[m] = 220
        frames.append(preprocess(img.astype(np.uint8), S))
        masks.append(torch.from_numpy(m).float()[None])
    return torch.stack(frames), torch.stack(masks)


@pytest.fixture(scope="module")
def model():
    m = create_model("decoder_only", image_size=S, seed=5)
    with torch.no_grad():  # "object present": sam2's gate open, so gated and raw logits agree
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return m


def test_shapes_and_batch_of_clips_equals_single_clips(model) -> None:
    memory = build_memory(model)
    a, _ = disc_clip(3, seed=1)
    b, _ = disc_clip(3, seed=2)
    with torch.no_grad():
        one = forward_clip(model, memory, a)
        both = forward_clip(model, memory, torch.stack([a, b]))
        other = forward_clip(model, memory, b)
    assert one["logits"].shape == (3, 1, S, S) and one["object_score_logits"].shape == (3, 1)
    assert both["logits"].shape == (2, 3, 1, S, S)
    torch.testing.assert_close(both["logits"][0], one["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(both["logits"][1], other["logits"], atol=1e-4, rtol=0)
    with pytest.raises(SodError, match="clip"):
        forward_clip(model, memory, torch.zeros(3, 3, 32, 32))


def test_clip_forward_is_the_tracker_in_float32(model) -> None:
    """Frame 1 is image predict; later frames equal the tracker's (no keyframes, no re-detection)."""
    memory = build_memory(model)
    frames, _ = disc_clip(5)
    with torch.no_grad():
        clip = forward_clip(model, memory, frames)["logits"]
        first = model(frames[:1])["logits"]
    cfg = TrackerConfig(keyframe_every=0, max_cond_frames=1, redetect_score=None, check_every=0,
                        num_frames=5, store_dtype=None)
    outs = list(VideoTracker(model, memory, cfg).track(f[None] for f in frames))
    torch.testing.assert_close(clip[0:1], first, atol=1e-5, rtol=0)  # (the encoder ran on a batch of 5)
    for t in range(1, 5):
        torch.testing.assert_close(clip[t:t + 1], outs[t].logits, atol=1e-5, rtol=0)


def _grads(model, memory) -> dict[str, bool]:
    frames, masks = disc_clip(3)
    model.train()
    memory.train()
    F.binary_cross_entropy_with_logits(forward_clip(model, memory, frames)["logits"], masks).backward()

    def has(params) -> bool:
        return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)

    att = memory.memory_attention
    return {"decoder": has(model.sam_mask_decoder.parameters()),
            "encoder": has(model.image_encoder.parameters()),
            "attention": has(p for n, p in att.named_parameters() if "lora_" not in n),
            "mem_encoder": has(memory.memory_encoder.parameters()),
            "lora": has(p for n, p in att.named_parameters() if "lora_B" in n),
            "ptr_proj": has(memory.obj_ptr_proj.parameters()),
            "memory_train_mode": memory.training}


@pytest.mark.parametrize("mode, expect", [
    ("false", {"attention": False, "mem_encoder": False, "lora": False, "ptr_proj": False,
               "memory_train_mode": False}),
    ("true", {"attention": True, "mem_encoder": True, "lora": False, "ptr_proj": True, "memory_train_mode": True}),
    ("lora", {"attention": False, "mem_encoder": False, "lora": True, "ptr_proj": False, "memory_train_mode": True}),
])
def test_gradients_follow_train_memory(model, mode: str, expect: dict[str, bool]) -> None:
    m = copy.deepcopy(model)
    got = _grads(m, build_memory(m, train_memory=mode))
    assert got == {"decoder": True, "encoder": False, **expect}


def test_train_memory_values_and_state_round_trip(model) -> None:
    assert normalize_train_memory(True) == "true" and normalize_train_memory("LoRA") == "lora"
    with pytest.raises(SodError, match="train_memory"):
        normalize_train_memory("maybe")
    memory = build_memory(model, train_memory="lora", lora_rank=2)
    with torch.no_grad():
        for n, p in memory.named_parameters():
            if "lora_B" in n:
                p.fill_(0.01)
    state = memory_state(memory)
    assert state["state_dict"] and all("lora_" in k for k in state["state_dict"])
    again = load_memory_state(model, state)
    for k, v in state["state_dict"].items():
        assert torch.equal(again.state_dict()[k], v)
    assert memory_state(build_memory(model))["state_dict"] == {}


def test_thirty_clip_steps_lower_the_held_out_loss() -> None:
    torch.manual_seed(0)
    model = create_model("decoder_only", image_size=S, seed=5)
    memory = build_memory(model, train_memory="true")
    video, gt = disc_clip(24, seed=3)
    held_x, held_y = video[16:].reshape(2, 4, 3, S, S), gt[16:].reshape(2, 4, 1, S, S)

    def held_out_loss() -> float:
        model.eval()
        memory.eval()
        with torch.no_grad():
            return float(F.binary_cross_entropy_with_logits(forward_clip(model, memory, held_x)["logits"], held_y))

    params = [p for p in [*model.parameters(), *memory.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-4)
    before = held_out_loss()
    rng = np.random.default_rng(0)
    for _ in range(30):
        model.train()
        memory.train()
        starts = rng.integers(0, 13, size=2)
        x = torch.stack([video[s:s + 4] for s in starts])
        y = torch.stack([gt[s:s + 4] for s in starts])
        loss = F.binary_cross_entropy_with_logits(forward_clip(model, memory, x)["logits"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = held_out_loss()
    assert after < 0.6 * before, (before, after)
