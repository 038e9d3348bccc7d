"""`Predictor.predict_video` and `VideoRunner`: frame-wise equals image predict bit for bit, propagation uses
SAM2's memory, outputs come back at the frame's size, frames are pulled one at a time, a model memory cannot
drive runs frame-wise and says so."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.errors import SodError
from sam2sod.infer.predict import predict_report
from sam2sod.infer.predictor import Predictor
from sam2sod.infer.video import VideoRunner, check_tracker_options
from sam2sod.models.video_tracker import TrackerConfig

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def predictor(tiny_run: Path) -> Predictor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Predictor.from_pretrained(tiny_run, device="cpu")


def test_keyframe_every_1_equals_image_predict_bit_for_bit(predictor, tiny_run, frames_dir, tmp_path) -> None:
    predict_report(tiny_run, frames_dir, tmp_path / "img", device="cpu", progress=False)
    frames = list(predictor.predict_video(frames_dir, keyframe_every=1))
    assert [f.name for f in frames] == [f"{t:05d}" for t in range(5)]
    assert {f.kind for f in frames} == {"detect"}
    for f in frames:
        image_map = np.asarray(Image.open(tmp_path / "img" / f"{f.name}.png"))
        assert f.saliency.dtype == np.float32 and f.saliency.shape == (40, 56)
        np.testing.assert_array_equal(f.to_uint8(), image_map)


def test_propagation_tracks_between_keyframes_at_the_original_size(predictor, frames_dir) -> None:
    frames = list(predictor.predict_video(frames_dir, keyframe_every=3, redetect_score=None, check_every=0))
    assert [f.kind for f in frames] == ["detect", "track", "track", "detect", "track"]
    assert all(f.saliency.shape == (40, 56) and 0 <= f.saliency.min() <= f.saliency.max() <= 1 for f in frames)
    framewise = list(predictor.predict_video(frames_dir, keyframe_every=1))
    np.testing.assert_array_equal(frames[0].saliency, framewise[0].saliency)  # a keyframe is image predict
    np.testing.assert_array_equal(frames[3].saliency, framewise[3].saliency)
    assert not np.array_equal(frames[1].saliency, framewise[1].saliency)  # a tracked frame is not


def test_frames_are_pulled_one_at_a_time(predictor) -> None:
    """The output of frame t is yielded before frame t+1 is read (causal, streaming)."""
    rng = np.random.default_rng(2)
    pulled: list[int] = []

    def frames():
        for t in range(4):
            pulled.append(t)
            yield rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)

    seen = [(f.name, len(pulled)) for f in predictor.predict_video(frames(), keyframe_every=2)]
    assert seen == [("00000", 1), ("00001", 2), ("00002", 3), ("00003", 4)]


def test_array_frames_and_a_bad_option(predictor) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (30, 20, 3), dtype=np.uint8) for _ in range(3)]
    out = list(predictor.predict_video(images, keyframe_every=2))
    assert [f.name for f in out] == ["00000", "00001", "00002"] and out[2].saliency.shape == (30, 20)
    with pytest.raises(SodError, match="^--keyframe-every must be an integer >= 0"):
        check_tracker_options(TrackerConfig(keyframe_every=-1))
    with pytest.raises(SodError, match="^--check-iou must be in"):
        list(predictor.predict_video(images, check_iou=1.5))


def test_a_model_memory_cannot_drive_runs_frame_wise() -> None:
    from sam2sod.models import create_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("sam2unet", image_size=64, seed=0)
    runner = VideoRunner.build(model, 64, "cpu", config=TrackerConfig(keyframe_every=5))
    assert runner.framewise and "sam2unet" in runner.note and "frame-wise" in runner.note
    rng = np.random.default_rng(1)
    frames = list(runner.frames([rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(2)]))
    assert [f.kind for f in frames] == ["detect", "detect"] and frames[1].saliency.shape == (32, 48)


def test_a_run_trained_on_clips_brings_its_memory(predictor) -> None:
    """A checkpoint's "memory" entry (`memory_state`) is loaded; without it the base memory is rebuilt."""
    import torch

    from sam2sod.models.memory import build_memory, memory_state

    trained = build_memory(predictor.model, train_memory="true")
    with torch.no_grad():
        trained.obj_ptr_proj.layers[0].weight.add_(1.0)
    config = TrackerConfig(keyframe_every=4)
    runner = VideoRunner.build(predictor.model, 64, "cpu", config=config, checkpoint={"memory": memory_state(trained)})
    base = VideoRunner.build(predictor.model, 64, "cpu", config=config, checkpoint={})
    w = runner.memory.obj_ptr_proj.layers[0].weight
    torch.testing.assert_close(w, trained.obj_ptr_proj.layers[0].weight)
    assert not torch.equal(w, base.memory.obj_ptr_proj.layers[0].weight)
    assert runner.memory.train_memory == "true" and base.memory.train_memory == "false"


def test_a_multimask_run_propagates_from_multimask_keyframes(predictor) -> None:
    """A run trained with `model.multimask` detects its keyframes as its image predict does (best of 3)."""
    import torch

    from sam2sod.infer.inference import preprocess

    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 255, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
    config = TrackerConfig(keyframe_every=2, redetect_score=None, check_every=0)
    runner = VideoRunner.build(predictor.model, 64, "cpu", multimask=True, config=config)
    assert not runner.framewise and runner._tracker(3).config.detect_multimask
    got = [logits for _, _, logits, _ in runner.logits((f"{i}", f) for i, f in enumerate(frames))]
    with torch.no_grad():
        ref = predictor.model(preprocess(frames[2], 64)[None], None, True)["logits"][0]
    assert torch.equal(got[2], ref)
