"""`score`'s worker count follows the memory the largest image needs; image sizes come from headers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.evaluation import score as score_mod
from sam2sod.metrics import memory

MIB = 2**20


@pytest.fixture()
def folders(tmp_path) -> tuple[Path, Path]:
    """(prediction dir, mask dir): 9 pairs of 40x30, one prediction of 400x300 (the largest image)."""
    rng = np.random.default_rng(0)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    for i in range(9):
        m = np.zeros((30, 40), np.uint8)
        m[5:20, 8:30] = 255
        Image.fromarray(m).save(gt / f"{i}.png")
        p = rng.integers(0, 256, (300, 400) if i == 4 else (30, 40), dtype=np.uint8)
        Image.fromarray(p).save(pred / f"{i}.png")
    return pred, gt


def items_of(pred: Path, gt: Path) -> list[tuple[str, Path, Path]]:
    return score_mod.match_predictions(pred, gt)[0]


def test_cap_lowers_workers_with_one_line(folders, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 1200 * MIB)  # 600 MiB planned, 258 per worker
    assert memory.memory_capped_workers(items_of(*folders), 8, "m") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: m: 2 worker processes instead of 8")
    assert "0.1 MP" in err[0] and "1.2 GiB of memory is available" in err[0]


def test_no_cap_and_no_warning_with_room(folders, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 64 * 2**30)
    assert memory.memory_capped_workers(items_of(*folders), 8, "m") == 8
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: None)
    assert memory.memory_capped_workers(items_of(*folders), 8, "m") == 8
    assert capsys.readouterr().err == ""


def test_estimate_uses_the_largest_image(folders, monkeypatch):
    seen = []
    monkeypatch.setattr(memory, "cap_workers", lambda px, avail, req: seen.append(px) or req)
    memory.memory_capped_workers(items_of(*folders), 4, "m")
    assert seen == [400 * 300]


def test_score_method_runs_the_capped_count(folders, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 100 * MIB)
    counts = []
    real = score_mod._run_pairs
    monkeypatch.setattr(score_mod, "_run_pairs", lambda items, w, *a: counts.append(w) or real(items, w, *a))
    capped = score_mod.score_method("m", *folders, workers=2, progress=False)
    assert counts == [1] and "1 worker process instead of 2" in capsys.readouterr().err
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: None)
    assert score_mod.score_method("m", *folders, workers=2, progress=False).metrics == capped.metrics
    assert counts == [1, 2]


def test_image_pixels_reads_headers_once_and_sees_changes(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((30, 50), np.uint8)).save(path)
    import sam2sod.data.io as io

    calls = []
    real = io.image_size
    monkeypatch.setattr(io, "image_size", lambda p, what: calls.append(p) or real(p, what))
    assert memory.image_pixels(path, "mask") == 1500
    assert memory.image_pixels(path, "mask") == 1500
    assert len(calls) == 1
    Image.fromarray(np.zeros((31, 50), np.uint8)).save(path)
    os.utime(path, ns=(10**18, 10**18))  # a new mtime even on coarse-clock file systems
    assert memory.image_pixels(path, "mask") == 1550
    assert len(calls) == 2
