"""Issue 22: every user-given name that becomes a path is one safe component, checked before any work or
output folder exists; every write resolves inside --out (`sam2sod.names`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sam2sod.cli import main
from sam2sod.errors import SodError
from sam2sod.names import check_name, check_relative, check_stem, inside
from sam2sod.train.ablate import cell_name


@pytest.mark.parametrize("good", ["ECSSD", "sam2.1_hiera_t", "DUTS-TE", "lr=1e-4", "a+b", "x" * 100])
def test_check_name_accepts_plain_names(good):
    assert check_name(good, "name") == good


@pytest.mark.parametrize("bad", ["", ".", "..", ".hidden", "-x", "_x", "a/b", "../x", "a\\b", "/abs", "a..b",
                                 "a b", "ä", "x" * 101, "a\nb"])
def test_check_name_refuses_anything_else(bad):
    with pytest.raises(SodError, match="invalid name"):
        check_name(bad, "name")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "-rf", "a\x00b", "a\tb"])
def test_check_stem_refuses_what_cannot_name_a_file(bad):
    with pytest.raises(SodError, match="cannot name an output file"):
        check_stem(bad, "image name")
    assert check_stem("my photo (1).v2", "image name") == "my photo (1).v2"
    assert check_relative("sub/a b", "image name") == "sub/a b"
    with pytest.raises(SodError):
        check_relative("sub/../../x", "image name")


def test_inside_follows_dotdot_and_symlinks(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    outside.mkdir()
    assert inside(out, "pred", "a.png") == out / "pred" / "a.png"
    with pytest.raises(SodError, match="outside the output folder"):
        inside(out, "..", "victim", "a.png")
    (out / "mask").symlink_to(outside, target_is_directory=True)  # a link left inside --out
    with pytest.raises(SodError, match="outside the output folder"):
        inside(out, "mask", "a.png")
    (out / "ok").symlink_to(out / "pred", target_is_directory=True)
    assert inside(out, "ok", "a.png") == out / "ok" / "a.png", "a link that stays inside is fine"


@pytest.mark.parametrize("args", [
    ["--model", "../../escB=RUN"],
    ["--model", "/abs/victim=RUN"],
    ["--pred", "../p=PREDS"],
    ["--model", ".hidden=RUN"],
])
def test_benchmark_method_names_are_checked_first(args, ds, preds, tmp_path, capsys, one_error_line, tree_hash):
    run = tmp_path / "no-such-run"  # the name is refused before the run is even read
    argv = ["benchmark", *[a.replace("RUN", str(run)).replace("PREDS", str(preds)) for a in args],
            "--data", f"d={ds}", "--out", str(tmp_path / "trav" / "bench")]
    before = tree_hash(tmp_path)
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "invalid method name" in line, line
    assert tree_hash(tmp_path) == before and not (tmp_path / "trav").exists()


@pytest.mark.parametrize("spec", ["..=DS", "-x=DS", ".x=DS", "a b=DS", "a..b=DS"])
def test_data_names_are_checked(spec, ds, preds, tmp_path, capsys, one_error_line):
    argv = ["benchmark", "--pred", f"m={preds}", "--data=" + spec.replace("DS", str(ds)),
            "--out", str(tmp_path / "bench")]
    assert main(argv) == 2
    assert "invalid dataset name" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "bench").exists()


def test_names_from_a_datasets_file_are_checked(ds, preds, tmp_path, capsys, one_error_line):
    sets = tmp_path / "sets.yaml"
    sets.write_text(f"'../escape': {ds}\n")
    argv = ["benchmark", "--pred", f"m={preds}", "--data", str(ds), "--datasets", str(sets),
            "--out", str(tmp_path / "bench")]
    assert main(argv) == 2
    assert "invalid dataset name '../escape'" in one_error_line(capsys.readouterr().err)


def test_stage_names_are_checked():
    from sam2sod.runs.config import load_config
    from sam2sod.train.stages import stage_configs

    for bad in ("../x", ".x", "a b"):
        cfg = load_config(None, [])
        cfg.stages = [{"name": bad, "set": {}}]
        with pytest.raises(SodError, match="invalid stage name"):
            stage_configs(cfg)


def test_grid_cell_names_are_safe_and_distinct():
    assert cell_name([("model.method", "lora"), ("optim.lr", 0.001)]) == "method=lora__lr=0.001"
    names = {cell_name([("data.root", v)]) for v in ("/x/a", "/x-a", "/x a", "..", "../..")}
    assert len(names) == 5, names  # replaced characters never make two cells share a folder
    for n in names:
        assert check_name(n, "cell") == n and "/" not in n and ".." not in n
    long = cell_name([(f"k{i}", "v" * 30) for i in range(6)])
    assert len(long) <= 100


def test_predict_into_a_link_that_leads_outside_is_refused(ds, tmp_path, capsys, one_error_line):
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.png").write_bytes(b"user file")
    out.mkdir()
    (out / "mask").symlink_to(victim, target_is_directory=True)
    (tmp_path / "nope").mkdir()  # exists, so only the checks before the model is opened can answer
    assert main(["predict", "--checkpoint", str(tmp_path / "nope"), "--input", str(ds / "images"),
                 "--out", str(out), "--format", "mask", "--overwrite"]) == 2
    assert "outside it" in one_error_line(capsys.readouterr().err)
    assert sorted(os.listdir(victim)) == ["keep.png"]
    assert Path(victim / "keep.png").read_bytes() == b"user file"


@pytest.mark.parametrize("command", ["train", "score", "make-synthetic"])
def test_any_command_refuses_a_folder_link_inside_out_that_leads_outside(command, ds, preds, tmp_path, capsys,
                                                                         one_error_line, tree_hash):
    out, victim = tmp_path / "out", tmp_path / "victim"
    (victim / "deep").mkdir(parents=True)
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "tb").symlink_to(victim, target_is_directory=True)  # e.g. TensorBoard's folder of a run
    argv = {"train": ["train", "--out", str(out), "--set", f"data.root={ds}", "--set", "device=cpu"],
            "score": ["score", "--pred", str(preds), "--gt", str(ds / "masks"), "--out", str(out),
                      "--workers", "1", "--no-progress"],
            "make-synthetic": ["make-synthetic", str(out), "--n", "2", "--size", "16"]}[command]
    before = tree_hash(tmp_path)
    assert main([*argv, "--overwrite"]) == 2
    assert "a link to" in one_error_line(capsys.readouterr().err)
    assert tree_hash(tmp_path) == before
