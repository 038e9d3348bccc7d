"""One config path (`sam2sod.runs.config.config_from_data`): a new run, a resume, each stage and `--set` make
their config the same way, and every YAML or override error is one `error:` line with exit code 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sam2sod.cli import main
from sam2sod.errors import SodError
from sam2sod.runs.checkpoints import read_checkpoint, resumed_config
from sam2sod.runs.config import TrainConfig, config_from_data, load_config, to_dict
from sam2sod.train.stages import stage_configs

BAD_YAML = "optim.lr=["


def test_every_way_in_gives_the_same_one_line_errors(tmp_path: Path) -> None:
    saved = to_dict(load_config(None, ["optim.lr=0.001"]))
    for make in (lambda o: load_config(None, o), lambda o: config_from_data({}, o),
                 lambda o: resumed_config(saved, o, tmp_path, allow_change=True)[0]):
        with pytest.raises(SodError, match=r"--set 'optim.lr=\[': the value is not valid YAML") as e:
            make([BAD_YAML])
        assert "\n" not in str(e.value)
        with pytest.raises(SodError, match="config key optim.lr: .*out of range"):
            make(["optim.lr=-1"])
        with pytest.raises(SodError, match="unknown config key"):
            make(["optim.nope=1"])
        assert make(["optim.lr=0.5"]).optim.lr == 0.5
    cfg = config_from_data({"stages": [{"name": "a", "set": {"optim.lr": -1.0}}]})
    with pytest.raises(SodError, match=r"stages\[0\] \(a\): config key optim.lr"):
        stage_configs(cfg)
    assert isinstance(config_from_data({"optim": None}), TrainConfig)  # an empty section is allowed


@pytest.mark.parametrize("argv", [["info", "--set", BAD_YAML], ["train", "--set", BAD_YAML, "--out", "{out}"]])
def test_bad_set_is_one_line_for_new_runs(argv, tmp_path, capsys, one_error_line) -> None:
    out = tmp_path / "out"
    assert main([a.replace("{out}", str(out)) for a in argv]) == 2
    assert "not valid YAML" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_resume_with_a_bad_set_or_a_broken_config_is_one_line(tiny_run, tmp_path, capsys, one_error_line) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = read_checkpoint(run / "last.pt")["step"]
    assert main(["train", "--resume", str(run), "--set", BAD_YAML]) == 2
    assert "--set 'optim.lr=['" in one_error_line(capsys.readouterr().err)
    (run / "config.yaml").write_text("model: [unclosed\n")  # a resume reads it to tell staged runs apart
    assert main(["train", "--resume", str(run)]) == 2
    assert "is not valid YAML" in one_error_line(capsys.readouterr().err)
    assert read_checkpoint(run / "last.pt")["step"] == before, "nothing trained"
