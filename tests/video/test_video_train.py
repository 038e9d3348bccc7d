"""Fine-tuning on video clips: the clip dataset, sequence splits, 30 clip steps through `train`, train_memory,
bit-exact resume, the memory state in checkpoints and the loader, one-line config errors."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sam2sod.cli import main
from sam2sod.data.transforms import AugmentConfig, build_transform
from sam2sod.data.video_clips import ClipDataset, eval_chunks
from sam2sod.data.video_layouts import load_video_dataset
from sam2sod.errors import SodError
from sam2sod.runs.config import load_config
from sam2sod.runs.splits import is_video_data, split_sequences
from sam2sod.train import video as video_mod
from sam2sod.train.trainer import train

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
S = 64


def make_videos(root: Path, n_seq: int = 3, n: int = 16, sparse: tuple[str, ...] = ()) -> Path:
    """`SEQ/images` + `SEQ/masks` sequences of a bright disc moving over noise; `sparse` ones annotate every
    other frame."""
    yy, xx = np.mgrid[:S, :S]
    for k in range(n_seq):
        rng = np.random.default_rng(k)
        seq = root / f"seq{k}"
        (seq / "images").mkdir(parents=True)
        (seq / "masks").mkdir()
        for t in range(n):
            img = rng.integers(0, 140, size=(S, S, 3))
            m = (xx - 14 - 4 * k - 1.5 * t) ** 2 + (yy - 18 - 3 * k - 0.9 * t) ** 2 <= 100
            img[m] = 220
            Image.fromarray(img.astype(np.uint8)).save(seq / "images" / f"{t:05d}.png")
            if seq.name not in sparse or t % 2 == 0:
                Image.fromarray((m * 255).astype(np.uint8)).save(seq / "masks" / f"{t:05d}.png")
    return root


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return make_videos(tmp_path_factory.mktemp("clips") / "videos", sparse=("seq1",))


def _cfg(root: Path, **extra: str):
    base = {"model.method": "decoder_only", "model.image_size": str(S), "data.root": str(root),
            "data.clip_len": "4", "data.train_count": "2", "optim.batch_size": "2", "optim.epochs": "100",
            "optim.warmup_steps": "1", "optim.lr": "1e-3", "device": "cpu", "log_every": "1", "data.workers": "0"}
    base.update(extra)
    return load_config(None, [f"{k}={v}" for k, v in base.items()])


# ---- data


def test_clip_dataset_shapes_flags_and_one_augmentation_per_clip(videos: Path, tmp_path: Path) -> None:
    seqs = list(load_video_dataset(videos).sequences)
    aug = AugmentConfig(size=S, hflip=0.5, rotate_deg=30, rotate_p=1.0, crop_prob=1.0, jitter_p=1.0)
    ds = ClipDataset(seqs, 4, build_transform(aug, train=True), seed=3)
    assert len(ds) == 12  # 16 frames / 4 per sequence
    item = ds[4]  # seq1: every other frame annotated
    assert item["frames"].shape == (4, 3, S, S) and item["masks"].shape == (4, 1, S, S)
    assert item["annotated"].tolist() == [(item["start"] + t) % 2 == 0 for t in range(4)]
    assert float(item["masks"][~item["annotated"]].abs().sum()) == 0.0
    again = ds[4]
    assert again["start"] == item["start"] and torch.equal(again["frames"], item["frames"])  # reproducible
    ds.set_epoch(1)
    assert not torch.equal(ds[4]["frames"], item["frames"])
    # a clip of one repeated frame: every frame must come out identical (same flip / rotation / zoom / jitter)
    still = tmp_path / "still" / "s0"
    (still / "images").mkdir(parents=True)
    (still / "masks").mkdir()
    src = videos / "seq0"
    for t in range(6):
        (still / "images" / f"{t:05d}.png").write_bytes((src / "images" / "00003.png").read_bytes())
        (still / "masks" / f"{t:05d}.png").write_bytes((src / "masks" / "00003.png").read_bytes())
    ds = ClipDataset(list(load_video_dataset(tmp_path / "still").sequences), 5, build_transform(aug, train=True))
    for i in range(len(ds)):
        clip = ds[i]
        for t in range(1, 5):
            assert torch.equal(clip["frames"][t], clip["frames"][0]) and torch.equal(clip["masks"][t], clip["masks"][0])
    plain = build_transform(AugmentConfig(size=S), train=False)
    assert not torch.equal(clip["frames"][0], plain({"image": clip["frames"][0]}, None)["image"])  # it did augment
    chunks = list(eval_chunks(seqs[0], 5, plain))
    assert [len(n) for n, _, _ in chunks] == [5, 5, 5, 1] and chunks[0][2] == (S, S)


def test_split_by_sequence(videos: Path) -> None:
    d = _cfg(videos).data
    assert is_video_data(d) and not is_video_data(_cfg(videos, **{"data.video": "false"}).data)
    split = split_sequences(d)
    assert [[v.name for v in split[k]] for k in ("train", "val", "test")] == [["seq0", "seq1"], ["seq2"], []]
    split = split_sequences(_cfg(videos, **{"data.train_count": "1", "data.val_count": "1"}).data)
    assert [v.name for v in split["val"]] == ["seq1"] and [v.name for v in split["test"]] == ["seq2"]
    split = split_sequences(_cfg(videos, **{"data.val_sequences": "[seq0]"}).data)
    assert [v.name for v in split["train"]] == ["seq1", "seq2"] and [v.name for v in split["val"]] == ["seq0"]
    with pytest.raises(SodError, match=r"cannot split 3 sequences into 3 train \+ 0 val.*data.train_count is 3"):
        split_sequences(_cfg(videos, **{"data.train_count": "3"}).data)
    with pytest.raises(SodError, match="data.val_sequences: no sequence nope"):
        split_sequences(_cfg(videos, **{"data.val_sequences": "[nope]"}).data)


# ---- training


def _held_out_loss(model: torch.nn.Module, memory: torch.nn.Module, root: Path) -> float:
    """BCE of the propagated logits on all 16 frames of the validation sequence seq2 (4 clips of 4)."""
    from sam2sod.models.video_clips import forward_clip

    seq = load_video_dataset(root).sequence("seq2")
    plain = build_transform(AugmentConfig(size=S), train=False)
    model.eval()
    memory.eval()
    total = []
    with torch.no_grad():
        for names, frames, _ in eval_chunks(seq, 4, plain):
            gt = torch.stack([torch.from_numpy(seq.load_mask(n)).float()[None] / 255 for n in names])
            total.append(float(F.binary_cross_entropy_with_logits(forward_clip(model, memory, frames)["logits"], gt)))
    return sum(total) / len(total)


def test_thirty_clip_steps_lower_the_held_out_loss(videos: Path, tmp_path: Path) -> None:
    from sam2sod.models.memory import build_memory, load_memory_state
    from sam2sod.runs.checkpoints import model_from_config
    from sam2sod.runs.loader import load_model

    cfg = _cfg(videos, **{"optim.max_steps": "30", "model.args.train_memory": "true"})
    start = model_from_config(cfg.model, "cpu", cfg.seed)
    before = _held_out_loss(start, build_memory(start), videos)
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["step"] == 30
    loaded = load_model(tmp_path / "run" / "last.pt", "cpu")
    assert loaded.memory_state is not None and loaded.memory_state["train_memory"] == "true"
    after = _held_out_loss(loaded.model, load_memory_state(loaded.model, loaded.memory_state), videos)
    assert after < 0.5 * before, (before, after)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert float(rows[-1].split(",")[3]) > float(rows[1].split(",")[3])  # val S rose over the run


@pytest.mark.parametrize("mode", ["false", "true", "lora"])
def test_train_memory_decides_what_trains(videos: Path, tmp_path: Path, mode: str) -> None:
    from sam2sod.models.memory import build_memory
    from sam2sod.runs.checkpoints import model_from_config

    cfg = _cfg(videos, **{"optim.max_steps": "1", "model.args.train_memory": mode, "data.train_count": "1",
                          "data.val_count": "1"})
    train(cfg, tmp_path / mode, progress=False)
    ckpt = torch.load(tmp_path / mode / "last.pt", weights_only=True)
    state = ckpt["memory"]["state_dict"]
    base = build_memory(model_from_config(cfg.model, "cpu", cfg.seed)).state_dict()
    changed = {k for k, v in state.items() if k in base and not torch.equal(v, base[k])}
    if mode == "false":
        assert state == {}
    elif mode == "true":
        assert "memory_attention.layers.0.cross_attn_image.q_proj.weight" in changed
        assert any(k.startswith("memory_encoder.") for k in changed)
        assert not any("lora_" in k for k in state)
    else:
        assert state and all("lora_" in k for k in state)
        assert any(k.endswith("lora_B") and bool(v.abs().sum() > 0) for k, v in state.items())
    decoder = [k for k in ckpt["model"]["state_dict"] if k.startswith("sam_mask_decoder.")]
    assert decoder and not any(k.startswith("image_encoder.") for k in ckpt["model"]["state_dict"])


def test_sigint_mid_epoch_resumes_bit_exact(videos: Path, tmp_path: Path, monkeypatch) -> None:
    extra = {"optim.max_steps": "6", "model.args.train_memory": "lora"}  # 4 steps per epoch
    train(_cfg(videos, **extra), tmp_path / "ref", progress=False)
    real, calls = video_mod.ClipTask.loss, []

    def interrupting(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(video_mod.ClipTask, "loss", interrupting)
    with pytest.raises(SodError, match="stopped by SIGINT at step 3"):
        train(_cfg(videos, **extra), tmp_path / "run", progress=False)
    monkeypatch.setattr(video_mod.ClipTask, "loss", real)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 3
    assert main(["train", "--resume", str(tmp_path / "run"), "--no-progress"]) == 0
    a, b = (torch.load(tmp_path / r / "last.pt", weights_only=True) for r in ("ref", "run"))
    assert a["step"] == b["step"] == 6
    for part in ("model", "memory"):
        assert set(a[part]["state_dict"]) == set(b[part]["state_dict"]) and a[part]["state_dict"]
        for k, v in a[part]["state_dict"].items():
            assert torch.equal(v, b[part]["state_dict"][k]), (part, k)
    assert a["best"] == b["best"]


# ---- errors


@pytest.mark.parametrize("sets, message", [
    (["data.video=maybe"], "config key data.video: 'maybe' is not a valid choice (choose one of: true, false, auto)"),
    (["data.clip_len=1"], "config key data.clip_len: 1 is out of range (must be an integer >= 2)"),
    (["model.args.train_memory=sometimes"], "config key model.args.train_memory: 'sometimes' is not a valid choice "
                                            "(choose one of: false, true, lora)"),
    (["data.video=true", "model.method=sam2unet"], "model.method 'sam2unet' cannot train on video clips"),
    (["data.video=true", "model.method=u2net"], "model.method 'u2net' cannot train on video clips"),
    (["data.clip_len=40"], "config key data.clip_len: 40 is longer than 2 training sequence(s)"),
    (["data.val_sequences=[]"], "config key data.val_sequences: [] must be a non-empty list"),
])
def test_config_errors_are_one_line(videos: Path, tmp_path: Path, capsys, one_error_line, sets, message) -> None:
    args = ["train", "--out", str(tmp_path / "r"), "--set", f"data.root={videos}", "--set", "model.image_size=64",
            "--set", "device=cpu", "--set", "data.train_count=2", "--no-progress"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert message in line, line
    assert not (tmp_path / "r" / "last.pt").exists()
