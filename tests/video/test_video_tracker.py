"""VideoTracker: frame-wise equality with image predict, causality, bounded memory, re-detection, checks."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.infer.inference import preprocess
from sam2sod.models import create_model
from sam2sod.models import video_tracker as vt
from sam2sod.models.memory import build_memory
from sam2sod.models.video_tracker import FrameOutput, TrackerConfig, VideoTracker, mask_iou, redetect_reason

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 64


def disc_video(n: int, seed: int = 0) -> list[torch.Tensor]:
    """n preprocessed (1,3,S,S) frames: a bright disc moving over noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S]
    out = []
    for t in range(n):
        img = rng.integers(0, 120, size=(S, S, 3))
        img[(xx - 18 - (t % 20)) ** 2 + (yy - 32) ** 2 <= 121] = 230
        out.append(preprocess(img.astype(np.uint8), S)[None])
    return out


@pytest.fixture(scope="module")
def model():
    return create_model("decoder_only", image_size=S, seed=3)


@pytest.fixture(scope="module")
def memory(model):
    return build_memory(model)


def biased(model, bias: float):
    """A copy of `model` whose object-score head says `bias` (crafted tracked scores)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(bias)
    return m


@pytest.mark.parametrize("with_memory", [False, True])
def test_keyframe_every_1_equals_image_forward_bit_for_bit(model, memory, with_memory: bool) -> None:
    frames = disc_video(4)
    tracker = VideoTracker(model, memory if with_memory else None, TrackerConfig(keyframe_every=1))
    outs = list(tracker.track(frames))
    assert [o.kind for o in outs] == ["detect"] * 4
    with torch.no_grad():
        for f, o in zip(frames, outs, strict=True):
            ref = model(f)
            assert torch.equal(o.logits, ref["logits"]) and torch.equal(o.low_res_logits, ref["low_res_logits"])
    assert tracker.state_nbytes() == 0


def test_keyframes_are_the_image_detection_and_others_track(model, memory) -> None:
    frames = disc_video(7)
    outs = list(VideoTracker(model, memory, TrackerConfig(keyframe_every=3, redetect_score=None,
                                                          check_every=0)).track(frames))
    assert [o.kind for o in outs] == ["detect", "track", "track", "detect", "track", "track", "detect"]
    with torch.no_grad():
        for i in (0, 3, 6):
            assert torch.equal(outs[i].logits, model(frames[i])["logits"])
        assert not torch.equal(outs[1].logits, model(frames[1])["logits"])  # memory changed the tracked frame


def test_a_multimask_run_detects_its_keyframes_multimask(model, memory) -> None:
    """Keyframes and re-detections decode as image predict does for a run trained with multimask: the best of 3
    masks by predicted IoU, and the object pointer from that mask's token."""
    frames = disc_video(5)
    cfg = TrackerConfig(keyframe_every=2, redetect_score=None, check_every=0, detect_multimask=True)
    outs = list(VideoTracker(model, memory, cfg).track(frames))
    single = list(VideoTracker(model, memory, dataclasses.replace(cfg, detect_multimask=False)).track(frames))
    with torch.no_grad():
        for i in (0, 2, 4):
            ref = model(frames[i], None, True)
            assert torch.equal(outs[i].logits, ref["logits"])
            assert ref["all_logits"].shape[1] == 3
        assert not torch.equal(outs[0].logits, single[0].logits)  # the best of 3 is not the single mask
    assert not torch.equal(outs[1].logits, single[1].logits)  # the multimask keyframe's memory drives tracking
    framewise = VideoTracker(model, None, TrackerConfig(keyframe_every=1, detect_multimask=True))
    with torch.no_grad():
        assert torch.equal(framewise.step(frames[3]).logits, model(frames[3], None, True)["logits"])


def test_output_for_frame_t_comes_before_frame_t_plus_1_is_read(model, memory) -> None:
    frames = disc_video(6)
    pulls: list[int] = []

    def spy():
        for i, f in enumerate(frames):
            pulls.append(i)
            yield f

    seen = []
    for out in VideoTracker(model, memory, TrackerConfig(keyframe_every=4, check_every=2)).track(spy()):
        assert isinstance(out, FrameOutput)
        seen.append((out.index, list(pulls)))
    assert seen == [(t, list(range(t + 1))) for t in range(6)]


def test_memory_state_does_not_grow_with_video_length(model, memory) -> None:
    """After the first max_obj_ptrs = 16 frames the state is full: 20 and 60 frames hold the same bytes."""
    cfg = TrackerConfig(keyframe_every=5, max_cond_frames=2, redetect_score=None, check_every=0)
    tracker = VideoTracker(model, memory, cfg)
    sizes = []
    for out in tracker.track(disc_video(60)):
        sizes.append(tracker.state_nbytes())
        if out.index == 19:
            stored20 = tracker.stored_frames()
    assert sizes[19] == sizes[59] > 0 and max(sizes) == max(sizes[:20])
    assert stored20["cond"] == [10, 15] and tracker.stored_frames()["cond"] == [50, 55]
    stored = tracker.stored_frames()
    assert stored["spatial"] == [54, 56, 57, 58, 59]  # the last num_maskmem-1 = 6 frames (55 is a keyframe)
    assert stored["pointer_only"] == [45, 46, 47, 48, 49, 51, 52, 53]  # pointers reach 15 frames back


def test_redetects_when_the_tracked_score_is_negative(model, memory) -> None:
    frames = disc_video(5)
    cfg = TrackerConfig(keyframe_every=0, redetect_score=0.0, check_every=0)
    low = list(VideoTracker(biased(model, -20.0), memory, cfg).track(frames))
    assert [(o.kind, o.reason) for o in low] == [("detect", None)] + [("redetect", "score")] * 4
    high = list(VideoTracker(biased(model, 20.0), memory, cfg).track(frames))
    assert [o.kind for o in high] == ["detect"] + ["track"] * 4
    assert all(o.object_score > 0 for o in high[1:])


def test_redetects_when_tracked_and_fresh_detection_disagree(model, memory, monkeypatch) -> None:
    frames = disc_video(7)
    cfg = TrackerConfig(keyframe_every=0, redetect_score=None, check_every=2, check_iou=0.5)
    agree = list(VideoTracker(model, memory, cfg).track(frames))
    monkeypatch.setattr(vt, "mask_iou", lambda a, b: 0.2)
    disagree = list(VideoTracker(model, memory, cfg).track(frames))
    # checks at 2 frames after the last keyframe: frame 2 re-detects, so the next check is frame 4, then 6
    assert [(o.kind, o.reason) for o in disagree] == [
        ("detect", None), ("track", None), ("redetect", "iou"), ("track", None), ("redetect", "iou"),
        ("track", None), ("redetect", "iou")]
    assert disagree[2].iou == 0.2
    assert [o.iou is not None for o in agree] == [False, False, True, False, True, False, True]


def test_rule_and_iou() -> None:
    cfg = TrackerConfig(redetect_score=0.0, check_iou=0.5)
    assert redetect_reason(-0.1, None, cfg) == "score"
    assert redetect_reason(0.1, 0.49, cfg) == "iou"
    assert redetect_reason(0.1, 0.5, cfg) is None
    assert redetect_reason(-5.0, 0.0, TrackerConfig(redetect_score=None, check_iou=0.0)) is None
    a = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    b = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    assert mask_iou(-a.abs(), -b.abs()) == 1.0


def test_seed_mask_of_another_size_is_resized(model, memory) -> None:
    frames = disc_video(3)
    mask = torch.zeros(128, 128, dtype=torch.bool)
    mask[40:90, 20:70] = True
    outs = list(VideoTracker(model, memory, TrackerConfig(keyframe_every=0)).track(frames, masks={0: mask}))
    assert outs[0].kind == "seed" and outs[0].object_score == 10.0
    assert outs[0].logits.shape == (1, 1, S, S)
    assert (outs[0].logits[0, 0, 25, 20] > 0) and (outs[0].logits[0, 0, 5, 5] < 0)


@pytest.mark.parametrize("kwargs, word", [
    ({"keyframe_every": -1}, "keyframe_every"), ({"max_cond_frames": 0}, "max_cond_frames"),
    ({"check_every": 1.5}, "check_every"), ({"check_iou": 1.5}, "check_iou"),
    ({"redetect_score": "low"}, "redetect_score"), ({"num_frames": 0}, "num_frames"),
    ({"detect_multimask": 1}, "detect_multimask"),
])
def test_bad_options_are_one_line_errors(kwargs, word: str) -> None:
    with pytest.raises(SodError, match=word):
        TrackerConfig(**kwargs).check()


def test_bad_inputs(model, memory) -> None:
    with pytest.raises(SodError, match="memory"):
        VideoTracker(model, None, TrackerConfig(keyframe_every=5))
    with pytest.raises(SodError, match="seeding"):
        VideoTracker(model, None, TrackerConfig(keyframe_every=1)).step(torch.zeros(1, 3, S, S), torch.ones(S, S))
    tracker = VideoTracker(model, memory)
    with pytest.raises(SodError, match=r"\(1,3,64,64\)"):
        tracker.step(torch.zeros(1, 3, 32, 32))
    with pytest.raises(SodError, match="2-D"):
        tracker.step(torch.zeros(1, 3, S, S), mask=torch.zeros(2, 3, S, S))


def test_frame_wise_models_without_sam2_decoder(memory) -> None:
    unet = create_model("sam2unet", image_size=S, seed=3)
    with pytest.raises(SodError, match="frame-wise"):
        build_memory(unet)
    with pytest.raises(SodError, match="frame-wise"):
        VideoTracker(unet, memory, TrackerConfig(keyframe_every=5))
    outs = list(VideoTracker(unet, None, TrackerConfig(keyframe_every=1)).track(disc_video(2)))
    with torch.no_grad():
        assert torch.equal(outs[1].logits, unet(disc_video(2)[1])["logits"])


@pytest.mark.parametrize("method", ["adapter_cbam", "full", "lora", "sam_adapter", "tuned_sam"])
def test_every_sam2_decoder_method_tracks(method: str) -> None:
    """Methods with their own encode_image (Tuned SAM) or encoder wrappers: keyframes stay image predict."""
    m = create_model(method, image_size=S, seed=3)
    frames = disc_video(3)
    outs = list(VideoTracker(m, build_memory(m), TrackerConfig(keyframe_every=2, check_every=0)).track(frames))
    assert [o.kind for o in outs][0::2] == ["detect", "detect"] and outs[1].kind in ("track", "redetect")
    with torch.no_grad():
        for i in (0, 2):
            assert torch.equal(outs[i].logits, m(frames[i])["logits"])
    assert torch.isfinite(outs[1].logits).all() and outs[1].logits.shape == (1, 1, S, S)
