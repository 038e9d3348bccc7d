"""Self-prompting (`--refine K`) uses only the model's own output; flip TTA is mirror-consistent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2sod.cli import main
from sam2sod.data.prompts import PromptBatch, Prompts, collate_prompts
from sam2sod.infer.forward import run_model
from sam2sod.infer.inference import preprocess
from sam2sod.infer.refine import flip_prompts, self_prompts

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_self_prompts_come_from_the_prediction():
    logits = torch.full((1, 64, 64), -5.0)
    logits[0, 10:30, 20:50] = 5.0  # the object
    logits[0, 60, 2] = 5.0  # a one-pixel speckle: ignored
    low = torch.randn(1, 16, 16)
    p = self_prompts(logits, low)
    assert p.box.tolist() == [20, 10, 49, 29]
    (fx, fy), (bx, by) = p.points.tolist()
    assert p.labels.tolist() == [1, 0]
    assert 20 <= fx <= 49 and 10 <= fy <= 29 and abs(fx - 34.5) <= 1 and abs(fy - 19.5) <= 1
    assert not (20 <= bx <= 49 and 10 <= by <= 29)
    assert torch.equal(p.mask_input, low)
    assert self_prompts(torch.full((1, 64, 64), -5.0), low).is_empty


def test_flip_prompts_mirror_points_and_keep_boxes_ordered():
    batch = collate_prompts([Prompts(points=torch.tensor([[3.0, 7.0]]), labels=torch.tensor([0]),
                                     box=torch.tensor([10.0, 5.0, 20.0, 30.0]), mask_input=torch.randn(1, 16, 16)),
                             Prompts()], 64)
    flipped = flip_prompts(batch, 64)
    assert flipped.points[0].tolist() == [[43.0, 5.0], [53.0, 30.0], [60.0, 7.0]]
    assert torch.equal(flipped.labels, batch.labels) and torch.equal(flipped.points[1], batch.points[1])
    assert torch.equal(flipped.mask_input, batch.mask_input.flip(-1))
    again = flip_prompts(flipped, 64)
    assert torch.equal(again.points, batch.points) and torch.equal(again.mask_input, batch.mask_input)
    assert flip_prompts(None, 64) is None


def _images(two_squares, n: int = 3, seed: int = 5) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.stack([preprocess(two_squares(rng)[0], 64) for _ in range(n)])


def test_tta_flip_is_mirror_consistent(point_model, two_squares):
    x = _images(two_squares)
    prompts = collate_prompts([Prompts(points=torch.tensor([[12.0, 30.0]]), labels=torch.tensor([1])),
                               Prompts(), Prompts(box=torch.tensor([5.0, 6.0, 40.0, 50.0]))], 64)
    with torch.no_grad():
        for p in (None, prompts):
            a = run_model(point_model, x, p, tta="flip")["logits"]
            b = run_model(point_model, x.flip(-1), flip_prompts(p, 64), tta="flip")["logits"].flip(-1)
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
            plain = run_model(point_model, x, p)["logits"]
            assert (torch.sigmoid(a) - torch.sigmoid(plain)).abs().max() > 1e-4


def test_refine_feeds_back_only_the_models_own_output(point_model, two_squares, monkeypatch):
    calls: list[tuple[PromptBatch | None, dict]] = []
    original = point_model.decode

    def spy(features, prompts=None, multimask=False):
        out = original(features, prompts, multimask)
        calls.append((prompts, out))
        return out

    monkeypatch.setattr(point_model, "decode", spy)
    x = _images(two_squares)
    with torch.no_grad():
        plain = run_model(point_model, x)["logits"]
        calls.clear()
        refined = run_model(point_model, x, refine=2)["logits"]
    assert len(calls) == 3 and calls[0][0] is None
    for (prompts, _), (_, previous) in zip(calls[1:], calls[:-1], strict=True):
        rows = prompts.has_mask
        assert rows.any()
        assert torch.equal(prompts.mask_input[rows], previous["low_res_logits"][rows])
        assert prompts.labels[rows][:, :2].tolist() == [[2, 3]] * int(rows.sum())  # a derived box first
    assert torch.equal(calls[-1][1]["logits"], refined)
    assert (refined - plain).abs().max() > 0.1


def test_evaluate_refine_reads_no_ground_truth(point_run, squares_ds, tmp_path, monkeypatch, point_model):
    """The predictions of `evaluate --refine 2` do not change when the masks are inverted, no mask is read
    by the prediction path, and every mask prompt the model gets is its own previous low-res output."""
    import sam2sod.data.prompts as prompts_mod
    import sam2sod.infer.inference as inference_mod
    from sam2sod.models.peft.adapter_cbam import AdapterCBAMSOD

    def forbidden(*_a, **_k):
        raise AssertionError("the prediction path read a ground-truth mask")

    monkeypatch.setattr(inference_mod, "load_mask", forbidden)
    monkeypatch.setattr(prompts_mod, "oracle_prompts", forbidden)
    seen: list[tuple[object, dict]] = []
    original = AdapterCBAMSOD.decode

    def spy(self, features, prompts=None, multimask=False):
        out = original(self, features, prompts, multimask)
        seen.append((prompts, out))
        return out

    monkeypatch.setattr(AdapterCBAMSOD, "decode", spy)
    inverted = tmp_path / "inverted" / squares_ds.name
    shutil.copytree(squares_ds, inverted)
    for m in (inverted / "masks").iterdir():
        Image.fromarray(255 - np.asarray(Image.open(m))).save(m)
    preds = []
    for i, root in enumerate((squares_ds, inverted)):
        out = tmp_path / f"eval{i}"
        assert main(["evaluate", "--checkpoint", str(point_run), "--data", str(root), "--out", str(out),
                     "--device", "cpu", "--workers", "1", "--refine", "2"]) == 0
        preds.append({p.name: np.asarray(Image.open(p)) for p in sorted((out / root.name / "pred").iterdir())})
        summary = json.loads((out / "summary.json").read_text())
        assert summary["refine"] == 2 and summary["tta"] == "none" and summary["prompt"] == "none"
    assert preds[0].keys() == preds[1].keys() and len(preds[0]) == 4
    assert all(np.array_equal(preds[0][k], preds[1][k]) for k in preds[0])
    prompted = [(p, prev) for (p, _), (_, prev) in zip(seen[1:], seen[:-1], strict=True) if p is not None]
    assert prompted, "refinement derived prompts at least once"
    for p, prev in prompted:
        assert torch.equal(p.mask_input[p.has_mask], prev["low_res_logits"][p.has_mask])


def test_evaluate_options_and_errors(tiny_run, squares_ds, tmp_path, capsys):
    out = tmp_path / "flip"
    assert main(["evaluate", "--checkpoint", str(tiny_run), "--data", str(squares_ds), "--out", str(out),
                 "--device", "cpu", "--workers", "1", "--tta", "flip", "--refine", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tta"] == "flip" and summary["refine"] == 1
    metrics = json.loads((out / squares_ds.name / "metrics.json").read_text())
    assert "[self-refine 1] [tta flip]" in json.dumps(metrics)
    capsys.readouterr()
    for extra, fragment in ((["--refine", "-1"], "--refine must be an integer >= 0"),
                            (["--refine", "1", "--prompt", "oracle-box"], "cannot be combined")):
        bad = tmp_path / "bad"
        assert main(["evaluate", "--checkpoint", str(tiny_run), "--data", str(squares_ds), "--out", str(bad),
                     "--device", "cpu", *extra]) == 2
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err
        assert not Path(bad).exists()
