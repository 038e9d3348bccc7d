"""Scoring per sequence: averaging over sequences vs pooling frames, skip rules, outputs, sequence bootstrap."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.data.video_layouts import load_video_dataset
from sam2sod.errors import SodError
from sam2sod.metrics import pair_scores
from sam2sod.metrics.davis import jf_scores
from sam2sod.metrics.video import SEQUENCE_KEYS, score_video, scored_frames
from sam2sod.report.video import (
    bootstrap_sequences,
    format_video_table,
    sequence_image_scores,
    write_video_scores,
)

SIZE = 16


def truth() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[4:12, 4:12] = 255
    return m


def noisy(flipped: int) -> np.ndarray:
    """The truth with `flipped` background pixels of the first rows set to 255."""
    m = truth()
    m.ravel()[:flipped] = 255
    return m


def make_set(root: Path, seqs: dict[str, int], annotated: dict[str, list[int]] | None = None) -> Path:
    """images/ + masks/ sequences, every frame annotated unless `annotated` says which."""
    for name, n in seqs.items():
        (root / "data" / name / "images").mkdir(parents=True)
        (root / "data" / name / "masks").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(root / "data" / name / "images" / f"{i:05d}.png")
            if annotated is None or i in annotated.get(name, []):
                Image.fromarray(truth()).save(root / "data" / name / "masks" / f"{i:05d}.png")
    return root / "data"


def write_preds(root: Path, preds: dict[str, list[np.ndarray | None]]) -> Path:
    for name, maps in preds.items():
        (root / "pred" / name).mkdir(parents=True, exist_ok=True)
        for i, m in enumerate(maps):
            if m is not None:
                Image.fromarray(m).save(root / "pred" / name / f"{i:05d}.png")
    return root / "pred"


def test_sequence_mean_differs_from_pooling_frames(tmp_path):
    data = make_set(tmp_path, {"a": 1, "b": 3})
    pred = write_preds(tmp_path, {"a": [noisy(64)], "b": [noisy(8)] * 3})
    s = score_video(pred, data, skip_frames="none")
    mae_a, mae_b = 64 / 256, 8 / 256
    assert s.values["MAE"] == pytest.approx((mae_a + mae_b) / 2)  # each sequence weighs the same
    assert s.pooled["MAE"] == pytest.approx((mae_a + 3 * mae_b) / 4)  # each frame weighs the same
    sm_a, sm_b = pair_scores(noisy(64), truth()).sm, pair_scores(noisy(8), truth()).sm
    assert s.values["Smeasure"] == pytest.approx((sm_a + sm_b) / 2)
    assert s.pooled["Smeasure"] == pytest.approx((sm_a + 3 * sm_b) / 4)
    ja, fa = jf_scores(noisy(64), truth())
    jb, fb = jf_scores(noisy(8), truth())
    assert (s.values["J"], s.values["F"]) == (pytest.approx((ja + jb) / 2), pytest.approx((fa + fb) / 2))
    assert s.values["JF"] == pytest.approx((s.values["J"] + s.values["F"]) / 2)
    curve = (pair_scores(noisy(64), truth()).fm_curve + pair_scores(noisy(8), truth()).fm_curve) / 2
    assert s.values["maxFm"] == pytest.approx(curve.max())  # curve averaged over frames, then sequences
    assert list(s.values) == list(SEQUENCE_KEYS)


@pytest.mark.parametrize(("rule", "kept"), [("first-last", ["00001", "00002", "00003"]),
                                            ("first", ["00001", "00002", "00003", "00004"]),
                                            ("none", ["00000", "00001", "00002", "00003", "00004"])])
def test_skip_rules(tmp_path, rule, kept):
    data = make_set(tmp_path, {"a": 5, "short": 2})
    pred = write_preds(tmp_path, {"a": [truth()] * 5, "short": [truth()] * 2})
    s = score_video(pred, data, skip_frames=rule)
    assert s.sequences[0].frames == kept
    assert scored_frames([f"{i:05d}" for i in range(5)], rule) == kept
    counts = s.counts()
    assert counts["frames_scored"] + counts["frames_skipped"] == counts["annotated_frames"] == 7
    assert s.unscored == (["short"] if rule == "first-last" else [])


def test_skip_rule_errors(tmp_path):
    data = make_set(tmp_path, {"a": 2})
    pred = write_preds(tmp_path, {"a": [truth()] * 2})
    with pytest.raises(SodError, match="--skip-frames must be one of first-last, first, none"):
        score_video(pred, data, skip_frames="last")
    with pytest.raises(SodError, match="no frame left to score.*try --skip-frames none") as info:
        score_video(pred, data)
    assert "\n" not in str(info.value)


def test_sparse_annotations_score_annotated_frames_and_flicker_uses_all(tmp_path):
    data = make_set(tmp_path, {"a": 5}, {"a": [0, 2, 4]})
    ds = load_video_dataset(data)
    assert ds.n_frames == 5 and ds.n_annotated == 3
    flick = noisy(16)
    pred = write_preds(tmp_path, {"a": [truth(), flick, truth(), truth(), truth()]})
    s = score_video(pred, ds, skip_frames="none")
    seq = s.sequences[0]
    assert seq.frames == ["00000", "00002", "00004"] and seq.values["MAE"] == 0.0
    # flicker: anchors 0, 2, 4; the path 0 -> 1 -> 2 changes 2 x 16 pixels, the truth does not change
    assert seq.flicker == pytest.approx((2 * 16 / 256) / 4) and seq.flicker_steps == 4
    assert s.values["flicker"] == pytest.approx(seq.flicker)


def test_missing_predictions(tmp_path):
    data = make_set(tmp_path, {"a": 5, "b": 3})
    pred = write_preds(tmp_path, {"a": [truth(), truth(), None, truth(), truth()]})
    with pytest.raises(SodError, match=r"4 annotated frame\(s\) have no prediction.*a/00002, b/00000") as info:
        score_video(pred, data, skip_frames="none")
    assert "\n" not in str(info.value)
    sparse = make_set(tmp_path / "s", {"a": 5}, {"a": [0, 4]})
    pred = write_preds(tmp_path / "s", {"a": [truth(), None, truth(), None, truth()]})
    s = score_video(pred, sparse, skip_frames="none")  # in-between frames may lack a prediction
    assert s.counts()["predictions_missing_between"] == 2 and s.sequences[0].flicker == 0.0
    with pytest.raises(SodError, match="prediction folder .* does not exist"):
        score_video(tmp_path / "nope", data)


def test_outputs_state_the_rules(tmp_path):
    data = make_set(tmp_path, {"a": 4, "b": 5})
    pred = write_preds(tmp_path, {"a": [noisy(4)] * 4, "b": [noisy(20)] * 5})
    s = score_video(pred, data, workers=2)
    assert s.values == score_video(pred, data, workers=1).values
    out = tmp_path / "out"
    written = write_video_scores(s, out)
    assert sorted(p.name for p in written) == ["curves.csv", "frames.csv", "metrics.json", "sequences.csv"]
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["skip_frames"] == "first-last" and "first and the last annotated frame" in meta["skip_rule"]
    assert "mean over sequences" in meta["averaging"] and meta["jf"] == {"threshold": 0.5, "bound_th": 0.008}
    assert meta["counts"]["frames_scored"] == 5 and meta["counts"]["frames_skipped"] == 4
    assert meta["metrics"]["MAE"] == pytest.approx((4 / 256 + 20 / 256) / 2)
    rows = list(csv.DictReader((out / "sequences.csv").open()))
    assert len(rows) == 2 * len(SEQUENCE_KEYS) and {r["skip_frames"] for r in rows} == {"first-last"}
    assert {(r["sequence"], r["frames_scored"]) for r in rows if r["metric"] == "MAE"} == {("a", "2"), ("b", "3")}
    frames = list(csv.DictReader((out / "frames.csv").open()))
    assert [(f["sequence"], f["frame"]) for f in frames] == [("a", "00001"), ("a", "00002"), ("b", "00001"),
                                                             ("b", "00002"), ("b", "00003")]
    assert set(frames[0]) == {"sequence", "frame", "S", "MAE", "wF", "adpF", "E", "J", "F", "skip_frames"}
    assert len(list(csv.DictReader((out / "curves.csv").open()))) == 256
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_bootstrap_resamples_sequences(tmp_path):
    data = make_set(tmp_path, {"a": 3, "b": 3, "c": 3})
    pred = write_preds(tmp_path, {"a": [noisy(2)] * 3, "b": [noisy(10)] * 3, "c": [noisy(30)] * 3})
    s = score_video(pred, data, skip_frames="none")
    table = sequence_image_scores(s)
    assert table.names == ["a", "b", "c"]
    for metric in ("MAE", "Smeasure", "maxFm", "meanEm", "JF", "flicker"):
        assert table.point(metric) == pytest.approx(s.values[metric])
    cis = bootstrap_sequences(s, ["MAE", "maxFm"], n_resamples=200, seed=1)
    per_seq = [seq.values["MAE"] for seq in s.sequences]
    assert min(per_seq) <= cis["MAE"].low <= cis["MAE"].value <= cis["MAE"].high <= max(per_seq)
    assert cis["MAE"].low < cis["MAE"].high


@pytest.mark.slow
@pytest.mark.skipif(not Path("/work/shared/data/davis16-dev").is_dir(), reason="needs /work/shared/data/davis16-dev")
def test_davis16_dev_masks_as_predictions_score_perfectly():
    root = Path("/work/shared/data/davis16-dev")
    s = score_video(root / "Annotations/480p", root, workers=2)
    counts = s.counts()
    assert (counts["sequences"], counts["annotated_frames"], counts["frames_scored"]) == (5, 233, 223)
    assert s.values["J"] == s.values["F"] == s.values["MAE"] + 1 == 1.0
    assert s.values["flicker"] == 0.0


def test_flicker_needs_two_scored_frames(tmp_path):
    data = make_set(tmp_path, {"a": 3, "b": 1})
    pred = write_preds(tmp_path, {"a": [truth(), noisy(16), truth()], "b": [truth()]})
    s = score_video(pred, data, skip_frames="none")
    assert np.isnan(s.sequences[1].flicker)
    assert s.values["flicker"] == pytest.approx(s.sequences[0].flicker) == pytest.approx(16 / 256)
    assert "flicker" not in sequence_image_scores(s).values  # not every sequence has a value
    write_video_scores(s, tmp_path / "out")
    rows = list(csv.DictReader((tmp_path / "out" / "sequences.csv").open()))
    assert [r["value"] for r in rows if r["metric"] == "flicker"] == [f"{16 / 256:.6f}", "nan"]


def test_table_states_the_skip_rule(tmp_path):
    data = make_set(tmp_path, {"a": 4})
    pred = write_preds(tmp_path, {"a": [truth()] * 4})
    table = format_video_table({"mine": score_video(pred, data)})
    lines = table.splitlines()
    assert lines[0].split() == ["method", "S", "wF", "MAE", "adpE", "maxE", "adpF", "maxF", "J", "F", "J&F", "flicker"]
    assert lines[2].split()[0] == "mine" and lines[2].split()[3] == "0.0000"
    assert lines[3] == ("note: mine: mean over 1 sequences; --skip-frames first-last (2 of 4 annotated frames scored, "
                        "2 skipped)")
