"""Official weights by name (issue 12): download, resume, verification, offline message, the cache by name.

A local server (conftest) stands in for Meta's host and the Hugging Face mirror; the registry entry is
injected with the test file's size, the key-set / shape check is the real one for SAM2.1 hiera tiny.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import warnings

import pytest
import torch

from sam2sod import weights
from sam2sod.cli import main
from sam2sod.errors import SodError
from sam2sod.models import RandomInitWarning
from sam2sod.models.sam2_backbone import file_sha256
from sam2sod.outputs import write_marker
from sam2sod.runs.checkpoints import model_from_config
from sam2sod.runs.config import ModelConfig

NAME = "sam2.1_hiera_tiny"
PATH = f"/segment_anything_2/092824/{NAME}.pt"


def registry(urls: list[str], nbytes: int, name: str = NAME) -> dict[str, weights.WeightsEntry]:
    return {name: weights.WeightsEntry(name, "sam2.1", "tiny", f"{name}.pt", tuple(urls), nbytes)}


def saved(obj: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_download_verifies_records_and_loads_by_name(http_server, tiny_file, tmp_path, monkeypatch) -> None:
    src, data = tiny_file
    http_server.files[PATH] = data
    reg = registry([http_server.url(PATH)], len(data))
    found = weights.download_weights(NAME, tmp_path / "cache", registry=reg, progress=False)
    dest = tmp_path / "cache" / f"{NAME}.pt"
    assert found.path == dest and dest.read_bytes() == data and not dest.with_name(dest.name + ".part").exists()
    record = json.loads((tmp_path / "cache" / f"{NAME}.pt.json").read_text())
    assert record["sha256"] == file_sha256(src) == found.sha256 and record["source"] == http_server.url(PATH)
    assert weights.verify_file(dest, reg[NAME]).recorded
    again = weights.download_weights(NAME, tmp_path / "cache", registry=reg, progress=False)
    assert again.recorded and len(http_server.requests) == 1  # already there: verified, not fetched again

    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path / "cache"))  # the real registry's name resolves
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomInitWarning)
        model = model_from_config(ModelConfig(method="decoder_only", image_size=64, checkpoint=NAME))
    assert model.model_is_pretrained and model.base_info["checkpoint"] == str(dest)
    from sam2sod.runs.config import load_config

    assert load_config(None, [f"model.checkpoint={NAME}"]).model.checkpoint == NAME  # a name, not a path


def test_missing_or_changed_cached_weights_say_what_to_do(http_server, tiny_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path / "empty"))
    with pytest.raises(SodError, match=f"`sam2sod weights download {NAME}`"):  # a run's model.checkpoint
        model_from_config(ModelConfig(method="decoder_only", image_size=64, checkpoint=NAME))
    with pytest.raises(SodError, match=f"write the name `{NAME}`"):
        weights.resolve_checkpoint(str(tmp_path / f"{NAME}.pt"))

    _, data = tiny_file
    http_server.files[PATH] = data
    reg = registry([http_server.url(PATH)], len(data))
    dest = weights.download_weights(NAME, tmp_path / "empty", registry=reg, progress=False).path
    raw = bytearray(dest.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other content (a tensor's bytes), newer mtime
    dest.write_bytes(bytes(raw))
    with pytest.raises(SodError, match="the file changed"):
        weights.resolve_checkpoint(NAME)
    with pytest.raises(SodError, match="the file changed"):
        weights.verify_file(dest, reg[NAME])


def test_interrupted_download_resumes_with_a_range_request(http_server, tiny_file, tmp_path) -> None:
    _, data = tiny_file
    http_server.files[PATH] = data
    http_server.cut[PATH] = len(data) // 3
    reg = registry([http_server.url(PATH)], len(data))
    with pytest.raises(SodError, match="run the command again to resume"):
        weights.download_weights(NAME, tmp_path, registry=reg, progress=False, retries=1)
    part = tmp_path / f"{NAME}.pt.part"
    assert part.stat().st_size == len(data) // 3 and not (tmp_path / f"{NAME}.pt").exists()
    found = weights.download_weights(NAME, tmp_path, registry=reg, progress=False)
    assert http_server.requests[-1] == (PATH, f"bytes={len(data) // 3}-")
    assert found.path.read_bytes() == data and not part.exists()

    # one call retries by itself, resuming; a server that ignores Range restarts the file from zero
    http_server.requests.clear()
    http_server.cut[PATH] = 1000
    weights.download_weights(NAME, tmp_path / "b", registry=reg, progress=False, retries=2)
    assert [r for _, r in http_server.requests] == [None, "bytes=1000-"]
    (tmp_path / "c").mkdir()
    write_marker(tmp_path / "c", "weights download")  # a folder of an earlier download, with a stale .part
    (tmp_path / "c" / f"{NAME}.pt.part").write_bytes(b"junk" * 100)
    http_server.ignore_range = True
    found = weights.download_weights(NAME, tmp_path / "c", registry=reg, progress=False)
    assert found.path.read_bytes() == data


def test_corrupt_or_wrong_files_are_refused(http_server, tiny_file, tiny_state, tmp_path) -> None:
    _, data = tiny_file
    sam2 = {k: v for k, v in tiny_state.items() if k not in ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight",
                                                             "obj_ptr_tpos_proj.bias")}
    reshaped = dict(tiny_state, **{"sam_mask_decoder.iou_token.weight": torch.zeros(2, 256)})
    cases = {
        "/short.pt": (data[: len(data) // 2], len(data), "not the official file"),
        "/noise.pt": (os.urandom(len(data)), len(data), "not a PyTorch checkpoint"),
        "/page.pt": (b"<!DOCTYPE html><html>" + b" " * (len(data) - 21), len(data), "an HTML page"),
        "/sam2.pt": (saved({"model": sam2}), None, "is sam2 hiera tiny, not sam2.1_hiera_tiny"),
        "/shape.pt": (saved({"model": reshaped}), None, "shape mismatch key.*iou_token"),
    }
    for i, (path, (body, size, message)) in enumerate(cases.items()):
        http_server.files[path] = body
        reg = registry([http_server.url(path)], size or len(body))
        with pytest.raises(SodError, match=message) as err:
            weights.download_weights(NAME, tmp_path / str(i), registry=reg, progress=False)
        assert "\n" not in str(err.value) and "(removed it)" in str(err.value)
        assert not any((tmp_path / str(i)).glob("*.pt*"))  # neither the file nor a .part to resume from


def test_server_down_gives_the_manual_route_and_the_mirror_is_tried(http_server, tiny_file, dead_url, tmp_path,
                                                                    monkeypatch, capsys, one_line) -> None:
    _, data = tiny_file
    reg = registry([dead_url, dead_url.replace(NAME, "mirror")], len(data))
    with pytest.raises(SodError) as err:
        weights.download_weights(NAME, tmp_path, registry=reg, progress=False)
    msg = str(err.value)
    mirror = dead_url.replace(NAME, "mirror")
    assert "no connection" in msg and f"Fetch {dead_url} (or {mirror}) by hand into {tmp_path / (NAME + '.pt')}" in msg
    assert f"`sam2sod weights verify {tmp_path / (NAME + '.pt')}`" in msg and "\n" not in msg

    http_server.files[PATH] = data  # the first host answers 404, the mirror has it
    reg = registry([http_server.url("/gone.pt"), http_server.url(PATH)], len(data))
    assert weights.download_weights(NAME, tmp_path / "m", registry=reg, progress=False).path.is_file()

    entry = dataclasses.replace(weights.OFFICIAL[NAME], urls=(dead_url,))  # the CLI, still offline
    monkeypatch.setitem(weights.OFFICIAL, NAME, entry)
    assert main(["weights", "download", NAME, "--dir", str(tmp_path / "cli"), "--no-progress"]) == 2
    assert "sam2sod weights verify" in one_line(capsys.readouterr().err)


def test_weights_cli_list_and_verify(tiny_file, tmp_path, capsys, one_line) -> None:
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in weights.OFFICIAL:
        assert f"\n{name} " in out
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt" in out
    assert "https://huggingface.co/facebook/sam2-hiera-base-plus/resolve/main/sam2_hiera_base_plus.pt" in out

    src, _ = tiny_file
    assert main(["weights", "verify", str(src)]) == 0  # variant from the keys, then every key and shape
    assert "sam2.1 hiera tiny (official key set and tensor shapes)" in capsys.readouterr().out
    named = tmp_path / f"{NAME}.pt"  # named like the official file: its size is checked too (ours is float16)
    os.link(src, named)
    assert main(["weights", "verify", str(named)]) == 2
    assert "but sam2.1_hiera_tiny has about 149.0 MiB" in one_line(capsys.readouterr().err)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    assert main(["weights", "verify", str(bad)]) == 2
    assert "not a PyTorch checkpoint" in one_line(capsys.readouterr().err)
