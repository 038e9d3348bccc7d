"""`evaluate --refine K` on a model whose first pass finds no object: said once, with the count, and recorded."""

from __future__ import annotations

import json

import pytest
import torch

from sam2sod.data.synthetic import make_synthetic
from sam2sod.evaluation.evaluate import evaluate
from sam2sod.infer.forward import run_model
from sam2sod.infer.refine import count_refine_skips
from sam2sod.models.sod_sam2 import SAM2SOD

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture()
def blank_first_pass(monkeypatch):
    """Prompt-free decodes predict a uniform map (no object); prompted ones are the model's own."""
    original = SAM2SOD.decode

    def decode(self, features, prompts=None, multimask=False):
        out = original(self, features, prompts, multimask)
        if prompts is None:
            out = {**out, "logits": torch.zeros_like(out["logits"]),
                   "low_res_logits": torch.zeros_like(out["low_res_logits"])}
        return out

    monkeypatch.setattr(SAM2SOD, "decode", decode)


def test_refine_skips_are_said_once_and_recorded(tiny_run, tmp_path, capsys, blank_first_pass):
    make_synthetic(tmp_path / "ds", n=3, size=48, seed=7)
    evaluate(tiny_run, [("blank", tmp_path / "ds")], tmp_path / "ev", refine=1, workers=1)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "skipped" in line and "--refine" in line]
    assert lines == ["note: blank: --refine 1 skipped 3 of 3 images: the first pass found no object to prompt "
                     "with, so those maps are the prompt-free ones"], err
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["refine_skipped"] == {"blank": 3}
    assert "--refine 1 skipped 3 of 3 images" in (tmp_path / "ev" / "blank" / "metrics.json").read_text()


def test_count_refine_skips_counts_rows(tiny_run, blank_first_pass):
    from sam2sod.runs.checkpoints import build_model_from_checkpoint, read_checkpoint

    model = build_model_from_checkpoint(read_checkpoint(tiny_run), torch.device("cpu")).eval()
    with count_refine_skips() as skipped, torch.no_grad():
        out = run_model(model, torch.randn(2, 3, 64, 64), refine=2, tta="flip")
    assert skipped == [2] and out["refine_skipped"].tolist() == [True, True]
    with torch.no_grad():
        run_model(model, torch.randn(1, 3, 64, 64), refine=1)  # outside the block: not counted
    assert skipped == [2]
