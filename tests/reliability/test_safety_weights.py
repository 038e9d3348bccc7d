"""Issue 22: a cached official weights file is hashed (SHA-256) on every load and compared with its download
record, so a file changed in place with its size and modification time kept is refused in one line."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.weights import OFFICIAL, _write_record, checked_sha256, read_record


@pytest.fixture(scope="module")
def tiny_sam2():
    from sam2sod.models.sam2_backbone import build_sam2_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_sam2_model("sam2.1", "tiny", image_size=64, seed=0)


def recorded_file(tmp_path: Path, model) -> Path:
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    _write_record(path, OFFICIAL["sam2.1_hiera_tiny"], checked_sha256(path), "test")
    return path


def change_in_place(path: Path) -> None:
    """Flip one byte near the end, keeping the size and the modification time (ns) of the file."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(st.st_size - 100)
        byte = f.read(1)
        f.seek(st.st_size - 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_changed_in_place_is_refused_on_load(tmp_path, tiny_sam2):
    from sam2sod.models.sam2_backbone import load_checkpoint

    path = recorded_file(tmp_path, tiny_sam2)
    load_checkpoint(tiny_sam2, path)  # as downloaded: loads
    assert tiny_sam2.sam2sod_base_info["sha256"] == read_record(path)["sha256"]
    change_in_place(path)
    with pytest.raises(SodError, match=r"sha256 .*recorded.*the file changed.*sam2sod weights verify") as err:
        load_checkpoint(tiny_sam2, path)
    assert "\n" not in str(err.value)


def test_changed_in_place_is_refused_by_name_from_the_cache(tmp_path, tiny_sam2, monkeypatch):
    from sam2sod.runs.checkpoints import model_from_config
    from sam2sod.runs.config import ModelConfig

    monkeypatch.setenv("SAM2SOD_WEIGHTS_DIR", str(tmp_path))
    path = recorded_file(tmp_path, tiny_sam2)
    change_in_place(path)
    with pytest.raises(SodError, match="the file changed"):  # a run's model.checkpoint names the cached file
        model_from_config(ModelConfig(method="decoder_only", image_size=64, checkpoint="sam2.1_hiera_tiny"))


def test_a_file_without_record_loads(tmp_path, tiny_sam2):
    from sam2sod.models.sam2_backbone import file_sha256, load_checkpoint

    path = tmp_path / "my_sam2.pt"
    torch.save({"model": tiny_sam2.state_dict()}, path)
    load_checkpoint(tiny_sam2, path)
    assert tiny_sam2.sam2sod_base_info["sha256"] == file_sha256(path)
