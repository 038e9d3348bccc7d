"""Parity of the memory path with sam2's own `SAM2VideoPredictor` (sam2 1.1.0, run unmodified).

A random-init SAM2.1 hiera tiny (64 px) is written as an official-format checkpoint; our side builds a tuned
model from it whose tuning modules are at their identity initialisation (decoder_only: none; lora: B = 0;
adapter_cbam: zero-initialised up projections) and the memory from the same file; sam2's side loads the same
file into `SAM2VideoPredictor`. Both are seeded with the same mask on frame 0 (`add_new_mask` /
`VideoTracker.track(masks={0: m})`) and propagate without keyframes or re-detection; the logits of every
frame must agree to 1e-4. sam2's frame loader reads a folder of JPEGs (`<index>.jpg`, PIL, no torchvision);
our side reads the same JPEGs through image predict's `preprocess`. The object-score head is biased
positive so that sam2's "object absent" gate stays open and the masks carry information.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from sam2sod.infer.inference import preprocess
from sam2sod.models import RandomInitWarning, build_sam2_model, create_model
from sam2sod.models.memory import build_memory
from sam2sod.models.sam2_backbone import config_name
from sam2sod.models.video_tracker import TrackerConfig, VideoTracker

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 64


def moving_disc(n: int, size: int = S, seed: int = 0) -> list[np.ndarray]:
    """n uint8 (size,size,3) frames: a bright disc moving right over noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    frames = []
    for t in range(n):
        img = rng.integers(0, 120, size=(size, size, 3))
        cx, cy = size * 0.3 + t * size * 0.02, size * 0.5
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= (size * 0.18) ** 2] = 230
        frames.append(img.astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[str, dict[str, torch.Tensor]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        sam = build_sam2_model("sam2.1", "tiny", S, seed=7)
    with torch.no_grad():  # "object present" so sam2's gate stays open
        sam.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": sam.state_dict()}, path)
    return str(path), sam.state_dict()


def write_video(folder, n: int) -> tuple[str, list[np.ndarray], np.ndarray]:
    """(jpeg folder, decoded frames, seed mask (S,S) bool) of an n-frame moving disc."""
    decoded = []
    for t, img in enumerate(moving_disc(n)):
        Image.fromarray(img).save(folder / f"{t:05d}.jpg", quality=95)
        decoded.append(np.array(Image.open(folder / f"{t:05d}.jpg").convert("RGB")))
    yy, xx = np.mgrid[:S, :S]
    mask = (xx - S * 0.3) ** 2 + (yy - S * 0.5) ** 2 <= (S * 0.18) ** 2
    return str(folder), decoded, mask


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[str, list[np.ndarray], np.ndarray]:
    return write_video(tmp_path_factory.mktemp("frames"), 8)


def sam2_logits(path: str, folder: str, mask: np.ndarray) -> list[torch.Tensor]:
    from sam2.build_sam import build_sam2_video_predictor

    pred = build_sam2_video_predictor(config_name("sam2.1", "tiny"), path, device="cpu", mode="eval",
                                      hydra_overrides_extra=[f"++model.image_size={S}"],
                                      apply_postprocessing=False)
    state = pred.init_state(folder)
    pred.add_new_mask(state, frame_idx=0, obj_id=1, mask=mask)
    return [masks[0:1].float().clone() for _, _, masks in pred.propagate_in_video(state)]


def ours_logits(path: str, method: str, frames: list[np.ndarray], mask: np.ndarray,
                num_frames: int | None) -> list:
    model = create_model(method, version="sam2.1", size="tiny", image_size=S, checkpoint=path)
    tracker = VideoTracker(model, build_memory(model), TrackerConfig(
        keyframe_every=0, redetect_score=None, check_every=0, num_frames=num_frames))
    return list(tracker.track((preprocess(f, S)[None] for f in frames), masks={0: torch.from_numpy(mask)}))


def assert_same(ours: list, theirs: list[torch.Tensor]) -> None:
    assert [o.kind for o in ours] == ["seed"] + ["track"] * (len(theirs) - 1)
    assert len(theirs) == len(ours)
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.logits.shape == b.shape == (1, 1, S, S)
        assert (b > 0).any() and (b < 0).any(), f"frame {t}: sam2's mask is trivial"
        torch.testing.assert_close(a.logits, b, atol=1e-4, rtol=0, msg=f"frame {t}")


@pytest.mark.parametrize("method", ["decoder_only", "lora", "adapter_cbam"])
def test_propagation_equals_sam2_video_predictor(checkpoint, video, method: str) -> None:
    path, _ = checkpoint
    folder, frames, mask = video
    assert_same(ours_logits(path, method, frames, mask, len(frames)), sam2_logits(path, folder, mask))


def test_streaming_without_length_equals_sam2_beyond_the_pointer_window(checkpoint, tmp_path) -> None:
    """20 frames (> sam2's 16 object pointers): the bounded bank drops what sam2 no longer reads."""
    path, _ = checkpoint
    folder, frames, mask = write_video(tmp_path, 20)
    assert_same(ours_logits(path, "decoder_only", frames, mask, None), sam2_logits(path, folder, mask))
