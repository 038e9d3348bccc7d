"""`sam2sod.hub` against a fake Hugging Face hub on 127.0.0.1 (the few endpoints huggingface_hub calls):
upload an export folder, download it back (cache, revision, local_files_only), and one-line errors for a
missing repo, a missing file, a bad revision, an interrupted download, no network and no huggingface_hub."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
import yaml

from sam2sod.errors import SodError
from sam2sod.hub import download_export, hub_front_matter, hub_model_card, parse_hf, push_export

pytest.importorskip("huggingface_hub")  # in the dev extra


CONFIG = {"format": "sam2sod-export/1", "weights_format": "safetensors", "method": "lora", "image_size": 64,
          "method_cfg": {"rank": 4}, "version": "sam2.1", "size": "tiny", "pretrained": True,
          "base": {"version": "sam2.1", "size": "tiny"}, "files": ["model.safetensors"],
          "training": {"data": {"root": "/data/ecssd-700"}, "best": {"S": 0.81, "MAE": 0.07, "epoch": 3}},
          "metrics": {"result": {"split": "test", "n_images": 100, "S": 0.8123456, "MAE": 0.0612, "maxF": 0.85}}}


@pytest.fixture
def export(tmp_path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "model.safetensors").write_bytes(b"W" * 3000)
    (folder / "README.md").write_text("# lora (sam2sod export)\n\nbody\n")
    return folder


def test_push_then_download_round_trip(hub, export, tmp_path):
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    url = push_export(export, "me/sod", private=True, token="hf_test", endpoint=hub.url)
    assert url.startswith(f"{hub.url}/me/sod/commit/") and "private" in json.dumps(hub.repos["me/sod"]["request"])
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before  # the folder is not changed
    assert hub.validated[0]["library_name"] == "sam2sod"
    cache = tmp_path / "cache"
    folder = download_export("hf://me/sod", cache_dir=cache, endpoint=hub.url)
    assert folder.is_relative_to(cache) and folder.name == url.rsplit("/", 1)[1]
    assert (folder / "model.safetensors").read_bytes() == before["model.safetensors"]
    assert json.loads((folder / "config.json").read_text()) == CONFIG
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and card.endswith("# lora (sam2sod export)\n\nbody\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["tags"][:2] == ["salient-object-detection", "sam2"] and meta["license"] == "apache-2.0"
    assert meta["base_model"] == "facebook/sam2.1-hiera-tiny" and meta["datasets"] == ["ecssd-700"]
    metrics = meta["model-index"][0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in metrics} == {"S": 0.8123, "maxF": 0.85, "MAE": 0.0612}
    # cached: local_files_only needs no server, and a second download fetches no file again
    n = len([r for r in hub.requests if r[0] == "GET"])
    assert download_export("me/sod", cache_dir=cache, endpoint=hub.url) == folder
    assert len([r for r in hub.requests if r[0] == "GET"]) == n
    hub.repos.clear()
    assert download_export("me/sod", cache_dir=cache, local_files_only=True, endpoint=hub.url) == folder


def test_revision_selects_a_commit(hub, tmp_path):
    files = {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": b"old"}
    old = hub.commit("me/sod", files)
    hub.commit("me/sod", {"model.safetensors": b"new"})
    hub.commit("me/sod", {"model.safetensors": b"dev"}, branch="dev")
    cache = tmp_path / "c"
    assert (download_export("me/sod", cache_dir=cache, endpoint=hub.url) / "model.safetensors").read_bytes() == b"new"
    got = download_export(f"hf://me/sod@{old}", cache_dir=cache, endpoint=hub.url)
    assert got.name == old and (got / "model.safetensors").read_bytes() == b"old"
    assert (download_export("me/sod", "dev", cache_dir=cache, endpoint=hub.url) / "model.safetensors").read_bytes() \
        == b"dev"
    hub.repos.clear()  # offline: the branch name resolves from the cache's refs
    assert (download_export("me/sod@dev", cache_dir=cache, local_files_only=True) / "model.safetensors"
            ).read_bytes() == b"dev"


def test_an_interrupted_download_is_fetched_again(hub, tmp_path, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)  # huggingface_hub waits 1 s before it tries again
    body = bytes(range(256)) * 40
    hub.commit("me/sod", {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": body})
    hub.cut["model.safetensors"] = 1000  # the first GET drops the connection after 1000 bytes
    folder = download_export("me/sod", cache_dir=tmp_path, endpoint=hub.url)
    assert (folder / "model.safetensors").read_bytes() == body
    gets = [r for r in hub.requests if r[:2] == ("GET", f"/me/sod/resolve/{folder.name}/model.safetensors")]
    assert len(gets) == 2 and not list(tmp_path.rglob("*.incomplete"))


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_one_line_errors(hub, tmp_path, monkeypatch):
    kw = {"cache_dir": tmp_path, "endpoint": hub.url}
    with pytest.raises(SodError, match="Hugging Face repo me/none not found") as e:
        download_export("me/none", **kw)
    _one_line(e)
    hub.commit("me/sod", {"config.json": json.dumps(CONFIG).encode()})
    with pytest.raises(SodError, match="revision 'v9' not found in the Hugging Face repo me/sod") as e:
        download_export("me/sod@v9", **kw)
    _one_line(e)
    with pytest.raises(SodError, match="me/sod has no model.safetensors: not a sam2sod export") as e:
        download_export("me/sod", **kw)
    _one_line(e)
    hub.commit("me/other", {"config.json": b'{"format": "something"}'})
    with pytest.raises(SodError, match="not a sam2sod export config"):
        download_export("me/other", **kw)
    hub.commit("me/cut", {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": b"x" * 5000})
    hub.cut["model.safetensors"] = -1  # every attempt drops before any byte
    monkeypatch.setattr("time.sleep", lambda s: None)  # huggingface_hub waits 1 s between its retries
    with pytest.raises(SodError, match="the download of model.safetensors from me/cut was interrupted") as e:
        download_export("me/cut", **kw)
    _one_line(e)
    with pytest.raises(SodError, match="not in the Hugging Face cache") as e:
        download_export("me/never", cache_dir=tmp_path, local_files_only=True)
    _one_line(e)


def test_no_network_and_no_huggingface_hub(tmp_path, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)  # huggingface_hub backs off between connection attempts
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(SodError, match="cannot reach the Hugging Face hub for me/sod") as e:
        download_export("me/sod", cache_dir=tmp_path, endpoint=dead)
    _one_line(e)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(SodError, match=r"pip install 'sam2sod\[hub\]'"):
        download_export("me/sod", cache_dir=tmp_path)


def test_push_errors(hub, export, tmp_path):
    with pytest.raises(SodError, match="not an export folder"):
        push_export(tmp_path, "me/sod", endpoint=hub.url)
    (export / "model.safetensors").unlink()
    with pytest.raises(SodError, match="lacks model.safetensors"):
        push_export(export, "me/sod", endpoint=hub.url)
    with pytest.raises(SodError, match="not a revision"):
        push_export(export, "me/sod@dev", endpoint=hub.url)
    assert not hub.requests  # checked before anything is sent


@pytest.mark.parametrize(("text", "want"), [
    ("hf://me/sod", ("me/sod", None)), ("hf://me/sod@v1.0", ("me/sod", "v1.0")), ("me/sod", ("me/sod", None))])
def test_parse_hf(text, want):
    assert parse_hf(text) == want


@pytest.mark.parametrize("text", ["hf://sod", "hf://me/sod@", "hf://me/a/b", "hf://me/..x", "hf://me/s d"])
def test_parse_hf_refuses_malformed_refs(text):
    with pytest.raises(SodError, match="hf://user/repo") as err:
        parse_hf(text)
    assert "hf://" in str(err.value) and "\n" not in str(err.value)


def test_front_matter_for_random_init_and_baselines():
    random = {**CONFIG, "pretrained": False, "metrics": {}}
    meta = yaml.safe_load(hub_front_matter(random).strip("-\n"))
    assert "base_model" not in meta and "random-init" in meta["tags"]
    assert meta["model-index"][0]["results"][0]["dataset"]["split"] == "validation"  # the best epoch's scores
    base = {**CONFIG, "method": "u2net", "base": {"version": "baseline"}, "metrics": {}, "training": {}}
    meta = yaml.safe_load(hub_front_matter(base).strip("-\n"))
    assert "sam2" not in meta["tags"] and "classical-baseline" in meta["tags"] and "model-index" not in meta
    card = hub_model_card(CONFIG, "---\nold: 1\n---\n# body\n")
    assert "old: 1" not in card and card.endswith("# body\n") and card.count("---\n") == 2
