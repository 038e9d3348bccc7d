"""Config values are checked (range / choices named) before any run folder or model exists; paths become absolute."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sam2sod.cli import main
from sam2sod.errors import SodError
from sam2sod.runs.config import CONFIG_DIR, TrainConfig, dump_yaml, load_config, resolve_paths, validate

BAD = [  # (override(s), key the message must name)
    (["optim.lr=-1"], "optim.lr"),
    (["optim.lr=nan"], "optim.lr"),
    (["optim.lr=.inf"], "optim.lr"),
    (["optim.lr=inf"], "optim.lr"),
    (["optim.weight_decay=-0.1"], "optim.weight_decay"),
    (["optim.grad_clip=-1"], "optim.grad_clip"),
    (["optim.min_lr_ratio=1.5"], "optim.min_lr_ratio"),
    (["optim.max_bad_steps=0"], "optim.max_bad_steps"),
    (["optim.batch_size=0"], "optim.batch_size"),
    (["optim.accum_steps=0"], "optim.accum_steps"),
    (["optim.epochs=0"], "optim.epochs"),
    (["optim.time_budget_min=-1"], "optim.time_budget_min"),
    (["optim.time_budget_min=0"], "optim.time_budget_min"),
    (["optim.max_steps=0"], "optim.max_steps"),
    (["optim.warmup_steps=-1"], "optim.warmup_steps"),
    (["optim.checkpoint_every_steps=-1"], "optim.checkpoint_every_steps"),
    (["optim.amp=fp8"], "optim.amp"),
    (["model.args={adapter_ratio: -0.5}"], "model.args.adapter_ratio"),
    (["model.args={adapter_ratio: .nan}"], "model.args.adapter_ratio"),
    (["model.args={cbam_kernel_size: 4}"], "model.args.cbam_kernel_size"),
    (["model.args={edge: 1}"], "model.args.edge"),
    (["model.args={nosuch: 1}"], "model.args"),
    (["model.args={backbone_weights: x.pth}"], "model.args.backbone_weights"),
    (["model.method=lora", "model.args={rank: 0}"], "model.args.rank"),
    (["model.method=lora", "model.args={dropout: 1.0}"], "model.args.dropout"),
    (["model.method=sam_adapter", "model.args={scale_factor: 0}"], "model.args.scale_factor"),
    (["model.method=sam2unet", "model.args={rfb_dim: 0}"], "model.args.rfb_dim"),
    (["model.method=tuned_sam", "model.args={tuned_blocks: some}"], "model.args.tuned_blocks"),
    (["model.method=tuned_sam", "model.args={tb_ratio: 0}"], "model.args.tb_ratio"),
    (["model.method=poolnet", "model.args={edge: maybe}"], "model.args.edge"),
    (["model.method=nosuch"], "model.method"),
    (["model.version=sam3"], "model.version"),
    (["model.size=huge"], "model.size"),
    (["model.image_size=100"], "model.image_size"),
    (["prompts.p_prompt_free=2"], "prompts.p_prompt_free"),
    (["prompts.p_points=-0.1"], "prompts.p_points"),
    (["prompts.p_box=1.01"], "prompts.p_box"),
    (["prompts.p_mask=nan"], "prompts.p_mask"),
    (["prompts.k_fg=-1"], "prompts.k_fg"),
    (["prompts.k_bg=-2"], "prompts.k_bg"),
    (["prompts.mask_kernel=[2, 5]"], "prompts.mask_kernel"),
    (["prompts.mask_kernel=[7, 3]"], "prompts.mask_kernel"),
    (["prompts.mask_kernel=[3]"], "prompts.mask_kernel"),
    (["prompts.logit_scale=0"], "prompts.logit_scale"),
    (["prompts.box_min_shift_px=-1"], "prompts.box_min_shift_px"),
    (["prompts.box_jitter=-0.1"], "prompts.box_jitter"),
    (["loss.name=nosuch"], "loss.name"),
    (["loss.bce=-1"], "loss.bce"),
    (["loss.edge=.inf"], "loss.edge"),
    (["loss.iou_head=-1"], "loss.iou_head"),
    (["loss.bce=0", "loss.dice=0", "loss.ssim=0"], "loss.bce"),
    (["data.train_count=0"], "data.train_count"),
    (["data.val_count=0"], "data.val_count"),
    (["data.val_fraction=1"], "data.val_fraction"),
    (["data.workers=-1"], "data.workers"),
    (["data.multiscale=[224, 100]"], "data.multiscale"),
    (["data.multiscale=[0]"], "data.multiscale"),
    (["data.augment.hflip=1.5"], "data.augment.hflip"),
    (["data.augment.jitter_p=-1"], "data.augment.jitter_p"),
    (["data.augment.brightness=-0.2"], "data.augment.brightness"),
    (["data.augment.scale_min=0"], "data.augment.scale_min"),
    (["data.augment.scale_min=1.5", "data.augment.scale_max=1.2"], "data.augment.scale_max"),
    (["seed=1.5"], "seed"),
    (["seed=-1"], "seed"),
    (["device=gpu"], "device"),
    (["device=cuda:x"], "device"),
    (["val_batch_size=0"], "val_batch_size"),
    (["log_every=0"], "log_every"),
    (["stages=[1, 2]"], "stages"),
    (["stages={name: a}"], "stages"),
]


@pytest.mark.parametrize(("overrides", "key"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_value_names_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(SodError, match=r"config keys? .*" + re.escape(key)) as info:
        load_config(None, overrides)
    assert "\n" not in str(info.value)


def test_message_names_value_and_range() -> None:
    with pytest.raises(SodError) as info:
        load_config(None, ["optim.lr=-1"])
    assert str(info.value) == "config key optim.lr: -1.0 is out of range (must be a finite number > 0)"
    with pytest.raises(SodError, match=r"loss\.name: 'nosuch' is not a valid choice \(choose one of: sod, structure\)"):
        load_config(None, ["loss.name=nosuch"])


@pytest.mark.parametrize("overrides", [
    ["optim.max_steps=null", "optim.time_budget_min=null", "optim.warmup_steps=0", "optim.grad_clip=0"],
    ["device=cuda:1", "seed=7", "data.multiscale=[]", "prompts.mask_kernel=[1, 1]", "loss.iou_head=null"],
    ["model.method=tuned_sam", "model.args={tuned_blocks: all, tb_ratio: 1}"],
    ["model.method=lora", "model.args={rank: 2, alpha: 2}", "loss.bce=0", "loss.dice=0"],
    ["model.method=u2netp", "loss.name=structure", "loss.bce=0", "loss.dice=0", "loss.ssim=0"],
])
def test_good_values_pass(overrides: list[str]) -> None:
    load_config(None, overrides)


def test_method_option_types_are_normalised() -> None:
    cfg = load_config(None, ["model.method=lora", "model.args={alpha: 2, rank: 3}"])
    assert cfg.model.args == {"alpha": 2.0, "rank": 3} and isinstance(cfg.model.args["alpha"], float)


def test_validate_catches_programmatic_values() -> None:
    cfg = TrainConfig()
    cfg.optim.lr = float("nan")
    with pytest.raises(SodError, match=r"optim\.lr: nan"):
        validate(cfg)


@pytest.mark.parametrize(("text", "needle"), [
    ("- a\n- b\n", "top level must be a mapping"),
    ("just text\n", "top level must be a mapping"),
    ("optim:\n  lr: 1.0e-3\n  epochs: 2\n  lr: 2.0e-3\n", r"duplicate key 'lr' at line 4 \(first given at line 2\)"),
    ("optim: {lr: 1.0, lr: 2.0}\n", "duplicate key 'lr' at line 1"),
    ("optim:\n  lr: 1\noptim:\n  epochs: 2\n", "duplicate key 'optim' at line 3"),
    ("model: [unclosed\n", "not valid YAML"),
])
def test_bad_yaml_files(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(SodError, match=needle) as info:
        load_config(p, ["optim.epochs=3"])
    assert "\n" not in str(info.value)


def test_yaml_anchor_merge_is_not_a_duplicate(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("optim: &o {lr: 1.0e-3, epochs: 2}\nloss: {name: sod}\n", encoding="utf-8")
    assert load_config(p).optim.epochs == 2


def test_non_utf8_file_and_empty_sections(tmp_path: Path) -> None:
    p = tmp_path / "latin1.yaml"
    p.write_bytes("# caf\xe9\nseed: 1\n".encode("latin-1"))
    with pytest.raises(SodError, match="not UTF-8 text"):
        load_config(p)
    q = tmp_path / "empty_section.yaml"
    q.write_text("optim:\nseed: 3\n", encoding="utf-8")
    assert load_config(q, ["optim.lr=1e-3"]).optim.lr == 1e-3


def test_bad_set_value_yaml_is_one_line() -> None:
    with pytest.raises(SodError, match=r"--set 'optim\.lr=\['") as info:
        load_config(None, ["optim.lr=["])
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- paths
def test_resolve_paths_makes_paths_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["data.root=ds", "data.images=imgs", "data.masks=/abs/masks", "data.val_root=../v",
                             "model.checkpoint=weights/sam.pt", "model.backbone_weights=r50.pth",
                             "model.init_from=runs/a"])
    d, m = cfg.data, cfg.model
    assert d.root == str(tmp_path / "ds") and d.images == str(tmp_path / "ds" / "imgs")  # images: under root
    assert d.masks == "/abs/masks" and d.val_root == str(tmp_path.parent / "v")
    assert m.checkpoint == str(tmp_path / "weights" / "sam.pt") and m.backbone_weights == str(tmp_path / "r50.pth")
    assert m.init_from == str(tmp_path / "runs" / "a")
    assert load_config(None, ["model.checkpoint=tiny"]).model.checkpoint == "tiny"  # a name, not a path
    assert load_config(None, ["data.images=i", "data.masks=m"]).data.images == str(tmp_path / "i")
    other = resolve_paths(TrainConfig(), base=tmp_path)
    assert other == TrainConfig()  # nothing set: unchanged


def test_saved_config_works_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ds").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["data.root=ds"], check_paths=True)
    saved = tmp_path / "run" / "config.yaml"
    saved.parent.mkdir()
    saved.write_text(dump_yaml(cfg), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "run")
    again = load_config(saved, check_paths=True)
    assert again == cfg and os.path.isabs(again.data.root)


def test_missing_data_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SodError, match=r"config key data\.root: .*nowhere does not exist$"):
        load_config(None, ["data.root=nowhere"], check_paths=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SodError, match=r"data\.val_root: .*file is not a folder"):
        load_config(None, [f"data.root={tmp_path}", "data.val_root=file"], check_paths=True)
    load_config(None, ["data.root=nowhere"])  # only checked when asked (e.g. `info` needs no data)


def test_missing_data_of_bundled_config_says_how_to_point_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert (CONFIG_DIR / "quickstart.yaml").is_file()
    with pytest.raises(SodError, match=r"bundled config quickstart .*--set data\.root=/path/to/dataset") as info:
        load_config("quickstart", check_paths=True)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- through the CLI
@pytest.mark.parametrize(("overrides", "key"), [
    (["optim.lr=-1"], "optim.lr"),
    (["model.args={adapter_ratio: -1}"], "model.args.adapter_ratio"),
    (["prompts.p_prompt_free=2"], "prompts.p_prompt_free"),
    (["optim.max_steps=0"], "optim.max_steps"),
    (["loss.name=nosuch"], "loss.name"),
])
def test_cli_train_rejects_before_making_the_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         overrides: list[str], key: str) -> None:
    (tmp_path / "ds").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{root: {tmp_path / 'ds'}}}\ndevice: cpu\n", encoding="utf-8")
    out = tmp_path / "run"
    argv = ["train", "--config", str(cfg), "--out", str(out)] + sum((["--set", o] for o in overrides), [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in err
    assert not out.exists()


def test_cli_train_rejects_duplicate_keys(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "dup.yaml"
    cfg.write_text("optim:\n  lr: 1.0e-3\n  lr: 1.0e-2\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "duplicate key 'lr' at line 3" in err and "Traceback" not in err and not out.exists()
