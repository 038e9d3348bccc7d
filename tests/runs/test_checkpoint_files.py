"""Unreadable weight files give one line with the reason; random-init runs store the seed, not the frozen base."""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.models import (
    create_model,
    load_tuned_state,
    state_for_checkpoint,
)
from sam2sod.models.baselines import VGG16, load_backbone_weights
from sam2sod.models.sam2_backbone import build_sam2_model, read_state_dict
from sam2sod.models.tuned_state import frozen_fingerprint, frozen_keys, tuned_keys
from sam2sod.runs.checkpoints import build_model_from_checkpoint, read_checkpoint, save_checkpoint
from sam2sod.runs.config import TrainConfig, to_dict
from sam2sod.safe_load import load_weights_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
S = 32
torch.set_num_threads(1)


class _Code:
    """Unpickling this runs os.getcwd: torch.load(weights_only=True) must refuse it."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (os.getcwd, ())


def _good_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    torch.save({"w": torch.arange(4096, dtype=torch.float32)}, buf)
    return buf.getvalue()


def _make(kind: str, d: Path) -> Path:
    p = d / f"{kind}.pt"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        data = _good_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        p.write_bytes(bytes(torch.randint(0, 256, (3000,), generator=torch.Generator().manual_seed(0)).tolist()))
    elif kind == "text":
        p.write_text("these are not weights\n")
    elif kind == "code":
        torch.save({"model": {"w": torch.zeros(2)}, "x": _Code()}, p)
    elif kind == "plain_pickle":
        p.write_bytes(pickle.dumps(_Code(), protocol=2))
    elif kind == "html":
        p.write_text("<!DOCTYPE html><html><body>sign in</body></html>")
    elif kind == "directory":
        p.mkdir()
    return p


REASONS = {
    "empty": "file is empty (0 bytes)",
    "truncated": "not a PyTorch checkpoint (truncated or corrupt zip)",
    "random": "not a PyTorch checkpoint",
    "text": "not a PyTorch checkpoint",
    "code": "contains Python objects that are not plain tensors",
    "plain_pickle": "contains Python objects that are not plain tensors",
    "html": "an HTML page",
    "directory": "it is a directory",
}

LOADERS: dict[str, Callable[[Path], Any]] = {
    "run checkpoint": read_checkpoint,
    "SAM2 checkpoint": read_state_dict,
    "backbone weights": lambda p: load_backbone_weights(VGG16(), p),
    "load_weights_file": lambda p: load_weights_file(p, "weights"),
}


@pytest.mark.parametrize("kind", sorted(REASONS))
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_unreadable_file_gives_one_line_reason(tmp_path: Path, loader: str, kind: str) -> None:
    p = _make(kind, tmp_path)
    with pytest.raises(SodError) as info:
        LOADERS[loader](p)
    msg = str(info.value)
    assert "\n" not in msg and "weights_only" not in msg and "will likely succeed" not in msg
    if loader == "run checkpoint" and kind == "directory":  # a run directory without best.pt / last.pt
        assert "not found" in msg
        return
    assert "cannot read" in msg and str(p) in msg and REASONS[kind] in msg, msg


def test_refused_pickle_names_the_object_and_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _make("code", tmp_path)
    calls: list[int] = []
    monkeypatch.setattr(os, "getcwd", lambda: calls.append(1) or "/")
    with pytest.raises(SodError, match=r"(posix|os)\.getcwd; refused for safety"):
        load_weights_file(p, "weights")
    assert not calls


@pytest.mark.parametrize(("loader", "needle"), [
    ("run checkpoint", "is not a sam2sod run checkpoint"),
    ("SAM2 checkpoint", "is not a SAM2 checkpoint"),
    ("backbone weights", "are not a state dict"),
])
def test_readable_file_of_the_wrong_kind(tmp_path: Path, loader: str, needle: str) -> None:
    for name, obj in (("list", [1, 2, 3]), ("fmt", {"format": 7, "w": torch.zeros(1)})):
        p = tmp_path / f"{name}.pt"
        torch.save(obj, p)
        with pytest.raises(SodError, match=needle):
            LOADERS[loader](p)


def test_missing_file(tmp_path: Path) -> None:
    for name, loader in LOADERS.items():
        with pytest.raises(SodError, match="not found"):
            loader(tmp_path / "nope.pt")
        assert name


# ---------------------------------------------------------------- random-init runs store the seed
def _model(seed: int, method: str = "adapter_cbam", **kw: Any) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_model(method, image_size=S, seed=seed, **kw)


def _perturb(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _out(model: torch.nn.Module) -> dict[str, Any]:
    x = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        return model.eval()(x)


def _equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def same(x: Any, y: Any) -> bool:
        if isinstance(x, list | tuple):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y, strict=True))
        return torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y

    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def sam21_tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An official-format ({"model": state_dict}) random SAM2.1 hiera tiny file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sam = build_sam2_model("sam2.1", "tiny", S, seed=123)
    path = tmp_path_factory.mktemp("base") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": sam.state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module")
def tuned() -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    model = _model(seed=4)
    _perturb(model)
    return model, state_for_checkpoint(model), _out(model)


def test_random_init_state_holds_seed_not_frozen_weights(tuned) -> None:
    model, state, _ = tuned
    assert not state["full_state"] and state["base"]["seed"] == 4 and not state["base"]["pretrained"]
    assert set(state["state_dict"]) == set(tuned_keys(model))
    assert not set(state["state_dict"]) & set(frozen_keys(model))
    assert "image_encoder.trunk.blocks.0.attn.qkv.weight" not in state["state_dict"]
    assert state["frozen_sha256"] == frozen_fingerprint(model) and state["versions"]["torch"]


def test_round_trip_through_files_is_exact(tuned, tmp_path: Path) -> None:
    model, state, expected = tuned
    path = tmp_path / "tuned.pt"
    torch.save(state, path)
    assert _equal(expected, _out(load_tuned_state(_model(7), torch.load(path, weights_only=True))))
    for seed in (4, 99):  # same seed, or another one: the frozen base is rebuilt from the state's seed
        restored = load_tuned_state(_model(seed), state)
        assert _equal(expected, _out(restored)) and restored.base_info["seed"] == 4
    cfg = TrainConfig()
    cfg.model.image_size, cfg.seed = S, 99
    run = tmp_path / "last.pt"
    save_checkpoint(run, {"model": state, "config": to_dict(cfg)})
    assert _equal(expected, _out(build_model_from_checkpoint(read_checkpoint(run), torch.device("cpu"))))


def test_tampered_fingerprint_or_seed_is_refused(tuned) -> None:
    _, state, _ = tuned
    bad_fp = {**state, "frozen_sha256": "0" * 64}
    with pytest.raises(SodError, match=r"random-init base rebuilt from seed 4.*expected 000000000000"):
        load_tuned_state(_model(4), bad_fp)
    bad_seed = {**state, "base": {**state["base"], "seed": 5}}
    with pytest.raises(SodError, match=r"rebuilt from seed 5, but the base rebuilt here differs") as info:
        load_tuned_state(_model(4), bad_seed)
    assert "torch" in str(info.value) and "\n" not in str(info.value)


def test_random_init_state_refuses_a_pretrained_base(tuned, sam21_tiny_ckpt) -> None:
    _, state, _ = tuned
    ckpt = sam21_tiny_ckpt
    with pytest.raises(SodError, match="trained on a random-init base"):
        load_tuned_state(create_model("adapter_cbam", image_size=S, checkpoint=ckpt), state)


def test_old_full_state_files_still_load(tuned, tmp_path: Path) -> None:
    model, state, expected = tuned
    sd = model.state_dict()
    old = {k: v for k, v in state.items() if k not in ("frozen_sha256", "versions")}
    old.update(full_state=True, state_dict={k: v.detach().clone() for k, v in sd.items()})
    path = tmp_path / "old.pt"
    torch.save(old, path)
    loaded = torch.load(path, weights_only=True)
    assert _equal(expected, _out(load_tuned_state(_model(99), loaded)))


def test_fingerprint_follows_in_place_changes() -> None:
    model = _model(seed=6, method="decoder_only")
    first = frozen_fingerprint(model)
    assert frozen_fingerprint(model) == first  # cached
    key = frozen_keys(model)[0]
    with torch.no_grad():
        model.state_dict()[key].add_(1.0)
    assert frozen_fingerprint(model) != first


def test_unseeded_random_init_keeps_the_full_state() -> None:
    model = _model(seed=None, method="decoder_only")
    state = state_for_checkpoint(model)
    assert state["full_state"] and set(state["state_dict"]) == set(model.state_dict())


def test_random_init_baseline_round_trip() -> None:
    model = _model(seed=3, method="u2netp")
    _perturb(model)
    expected = _out(model)
    state = state_for_checkpoint(model)
    assert not state["full_state"] and set(state["state_dict"]) == set(model.state_dict())  # all trainable
    assert _equal(expected, _out(load_tuned_state(_model(8, method="u2netp"), state)))
