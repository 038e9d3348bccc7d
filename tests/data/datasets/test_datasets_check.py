"""`sam2sod datasets check`: the table, its problems, the exit codes (0 well, 1 problems, 2 usage)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2sod.cli import main
from sam2sod.data import make_synthetic
from sam2sod.data.datasets.check import check_set
from sam2sod.data.datasets.overlap import CACHE_ENV
from sam2sod.data.datasets.resolve import DATASETS_ENV


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(DATASETS_ENV, raising=False)


def synth(root: Path, n: int, seed: int) -> Path:
    make_synthetic(root, n=n, size=32, seed=seed)
    return root


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check(*argv: str) -> list[str]:
    return ["datasets", "check", "--no-progress", "--workers", "2", *argv]


def test_all_well_exits_0_and_writes_nothing_into_the_data(tmp_path, capsys):
    a, b = synth(tmp_path / "a", 6, 1), synth(tmp_path / "b", 5, 2)
    before = tree(tmp_path / "a") | tree(tmp_path / "b")
    assert main(check("--data", f"one={a}", "--data", f"two={b}", "--train", f"tr={synth(tmp_path / 't', 6, 3)}")) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:5] == ["set", "task", "role", "status", "pairs"]
    assert rows[1][:5] == ["tr", "-", "train", "found", "6"]
    assert rows[2][:5] == ["one", "-", "test", "found", "6"] and rows[2][-2:] == ["0", "0"]
    assert "all well: 3 sets complete and readable, no train/test overlap" in out
    assert tree(tmp_path / "a") | tree(tmp_path / "b") == before
    assert list((tmp_path / "cache").rglob("*.json")), "hashes cached outside the data"


def test_every_problem_is_reported_and_exits_1(tmp_path, capsys):
    train = synth(tmp_path / "train", 8, 1)
    ds = synth(tmp_path / "ECSSD", 8, 2)
    images, masks = sorted((ds / "images").iterdir()), sorted((ds / "masks").iterdir())
    images[0].unlink()  # a mask without image
    masks[1].unlink()  # an image without mask
    images[2].write_bytes(images[2].read_bytes()[:150])  # truncated image
    masks[3].write_bytes(b"not a png")  # unreadable mask
    train_image = sorted((train / "images").iterdir())[4]
    copy = np.asarray(Image.open(train_image).convert("RGB"))
    Image.fromarray(copy).save(ds / "images" / "leak.png")  # an exact duplicate of a training image ...
    Image.fromarray(copy).save(ds / "masks" / "leak.png")
    near = Image.fromarray(copy).resize((48, 48))  # ... and a near one
    near.save(ds / "images" / "leak2.png")
    near.convert("L").save(ds / "masks" / "leak2.png")
    Image.new("L", (20, 20)).save(masks[5])  # size mismatch: a note, not a problem
    (tmp_path / "nolayout" / "pics").mkdir(parents=True)
    file = tmp_path / "sets.yaml"
    file.write_text(f"ECSSD: {ds}\nDUTS-TR: {train}\nHKU-IS: {tmp_path / 'missing'}\nodd: {tmp_path / 'nolayout'}\n")
    code = main(check("--datasets", str(file), "--train", "DUTS-TR"))
    out = capsys.readouterr().out
    assert code == 1, out
    table = {line.split()[0]: line.split() for line in out.split("\n\n")[0].splitlines()[1:]}
    assert table["DUTS-TR"][1:4] == ["sod", "train", "count"], "8 of 10553: a count mismatch"
    assert table["ECSSD"][3:10] == ["count", "mismatch", "8", "1000", "1", "1", "2"]
    assert table["HKU-IS"][3:5] == ["missing", "folder"] and table["odd"][3:5] == ["no", "layout"]
    assert table["ECSSD"][-2:] == ["1", "1"], "one exact, one near duplicate"
    assert "ECSSD: found 8 image/mask pairs, expected 1000 for ECSSD" in out
    assert f"ECSSD: 1 image without a mask: {images[1].stem}" in out
    assert f"ECSSD: 1 mask without an image: {masks[0].stem}" in out
    assert f"ECSSD: 2 unreadable files: images/{images[2].name}, masks/{masks[3].name}" in out
    assert f"ECSSD: 1 test image is an exact duplicate of a DUTS-TR image: leak = {train_image.stem}" in out
    assert f"ECSSD: 1 test image is a near duplicate of a DUTS-TR image (pHash within 10 bits): leak2 ~ " \
           f"{train_image.stem} (" in out
    assert f"HKU-IS: folder {tmp_path / 'missing'} does not exist" in out
    assert "odd: cannot find the image and mask folders" in out
    assert f"ECSSD: note: 1 mask of another size than the image (evaluation resizes masks; training needs " \
           f"resize_mask): {masks[5].stem}" in out
    assert "not in " + str(file) + ": DUTS-TE, HKU-IS" not in out
    assert "not in " + str(file) + ": DUTS-TE, PASCAL-S, DUT-OMRON, SOD, CAMO-test" in out
    assert "4 of 4 sets have problems" in out
    assert out.count("DUTS-TR  ") == 1, "the train set is in the file too: checked once"


def test_no_layout_shows_the_release_layouts(tmp_path):
    (tmp_path / "PASCAL-S" / "datasets" / "imgs").mkdir(parents=True)
    result = check_set("PASCAL-S", tmp_path / "PASCAL-S", progress=False)
    assert result.status == "no layout"
    assert "PASCAL-S releases use: Imgs/ + GT/" in result.error and "datasets/imgs/pascal/" in result.error


def test_names_come_from_the_env_var_file(tmp_path, monkeypatch, capsys):
    ds = synth(tmp_path / "d", 4, 1)
    file = tmp_path / "sets.yaml"
    file.write_text(f"mine: {ds}\n")
    monkeypatch.setenv(DATASETS_ENV, str(file))
    assert main(check()) == 0
    assert "mine" in capsys.readouterr().out
    assert main(check("--data", "mine", "--no-cache")) == 0


@pytest.mark.parametrize(("argv", "match"), [
    ((), "give the sets to check with --data"),
    (("--data", "NOT-A-SET"), "known names: DUTS-TR"),
    (("--data", "a=x", "--data", "a=y"), "distinct"),
    (("--data", "a=x", "--decode-workers", "0"), "--decode-workers must be >= 1"),
    (("--data", "a=x", "--near-distance", "70"), "--near-distance must be"),
])
def test_usage_errors_exit_2_with_one_line(argv, match, capsys):
    argv = ["datasets", "check", "--no-progress", *argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and match in err and "Traceback" not in err


def test_evaluate_cli_resolves_names_before_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()  # exists, so only the checks before the model is opened can answer
    argv = ["evaluate", "--checkpoint", "run", "--out", "o", "--data", "ECSSD"]
    assert main(argv) == 2
    assert "ECSSD is a known dataset but not mapped" in capsys.readouterr().err
