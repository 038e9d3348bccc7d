"""sam2sod export folders on the Hugging Face hub: download (cached) and upload, with one-line errors.

`download_export("user/repo")` (or "hf://user/repo@revision") fetches an export folder (config.json, the
weights it lists, README.md) into huggingface_hub's cache and returns the snapshot folder, which
`sam2sod.export.load_exported` loads. `push_export(folder, "user/repo")` uploads one, its model card headed
by hub metadata (`hub_front_matter`). Needs the optional extra: ``pip install 'sam2sod[hub]'``. The hub
address is huggingface_hub's (``HF_ENDPOINT``) unless `endpoint` is given.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from sam2sod.errors import SodError

__all__ = ["HF_PREFIX", "download_export", "hub_front_matter", "hub_model_card", "is_hf_ref", "parse_hf",
           "push_export", "require_hub"]

HF_PREFIX = "hf://"
CONFIG_FILE, CARD_FILE = "config.json", "README.md"
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9_.-]{1,96}$")
_HF_SIZE = {"tiny": "tiny", "small": "small", "base_plus": "base-plus", "large": "large"}
_METRICS = (("S", "S-measure"), ("maxF", "max F-measure"), ("maxE", "max E-measure"), ("wF", "weighted F-measure"),
            ("MAE", "MAE"))


def require_hub() -> Any:
    """The `huggingface_hub` module; SodError saying how to install it when missing."""
    try:
        import huggingface_hub
    except ImportError:
        raise SodError("the Hugging Face hub needs huggingface_hub: pip install 'sam2sod[hub]'") from None
    return huggingface_hub


def is_hf_ref(text: str | os.PathLike) -> bool:
    """True for 'hf://user/repo[@revision]'."""
    return isinstance(text, str) and text.startswith(HF_PREFIX)


def parse_hf(text: str) -> tuple[str, str | None]:
    """'hf://user/repo@rev' (or 'user/repo', 'user/repo@rev') -> ('user/repo', 'rev' | None); SodError if malformed."""
    ref = text[len(HF_PREFIX):] if is_hf_ref(text) else str(text)
    repo, sep, rev = ref.partition("@")
    repo = repo.strip("/")
    if sep and not rev:
        raise SodError(f"{text!r}: empty revision after '@' (write hf://user/repo@REVISION or leave out '@')")
    if not _REPO_ID.match(repo) or ".." in repo or "--" in repo or repo.endswith((".", "-")):
        raise SodError(f"{text!r} is not a Hugging Face model repo: write hf://user/repo or hf://user/repo@revision "
                       "(letters, digits, '-', '_', '.')")
    return repo, (rev or None)


def _where(repo: str, revision: str | None) -> str:  # revision "" or None: the default branch
    return f"{repo}@{revision}" if revision else repo


def _hub_error(e: Exception, repo: str, revision: str | None, filename: str, offline: bool) -> SodError:
    """One line for a huggingface_hub / network failure while fetching `filename`."""
    from huggingface_hub import errors

    where = _where(repo, revision)
    if isinstance(e, errors.RevisionNotFoundError):
        return SodError(f"revision {revision!r} not found in the Hugging Face repo {repo} (a branch, tag or commit)")
    if isinstance(e, errors.RepositoryNotFoundError):
        return SodError(f"Hugging Face repo {repo} not found (a private repo needs a token: `hf auth login` or "
                        "HF_TOKEN)")
    if isinstance(e, errors.RemoteEntryNotFoundError):
        return SodError(f"{where} has no {filename}: not a sam2sod export (`sam2sod export` writes {CONFIG_FILE}, "
                        "model.safetensors and README.md)")
    if isinstance(e, errors.LocalEntryNotFoundError):
        if offline:
            return SodError(f"{filename} of {where} is not in the Hugging Face cache (local_files_only): download it "
                            "once while online")
        return SodError(f"cannot reach the Hugging Face hub for {where} ({filename}) and it is not cached: no network?")
    if isinstance(e, errors.HfHubHTTPError):
        status = getattr(getattr(e, "response", None), "status_code", "?")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return SodError(f"the Hugging Face hub refused {filename} of {where} (HTTP {status}): {first[:160]}")
    reason = " ".join(str(e).split())[:160] or type(e).__name__
    return SodError(f"the download of {filename} from {where} was interrupted ({reason}); run again to resume")


def _fetch(hub: Any, repo: str, filename: str, revision: str | None, shown: str | None = None, **kw: Any) -> Path:
    """hf_hub_download of one file; errors name `shown` (the user's revision) instead of a resolved commit."""
    try:
        return Path(hub.hf_hub_download(repo, filename, revision=revision, repo_type="model", **kw))
    except SodError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure becomes one line naming the repo and file
        from huggingface_hub import errors

        if isinstance(e, errors.HFValidationError):
            raise SodError(f"{repo!r} / revision {revision!r}: {' '.join(str(e).split())[:160]}") from None
        named = revision if shown is None else shown or None
        raise _hub_error(e, repo, named, filename, bool(kw.get("local_files_only"))) from None


def download_export(repo: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                    local_files_only: bool = False, *, token: str | None = None,
                    endpoint: str | None = None) -> Path:
    """Download the export folder in `repo` ('user/repo' or 'hf://user/repo@rev') -> its local snapshot folder.

    config.json first (checked to be a sam2sod export), then every file it lists and README.md (optional),
    all at the commit the first file resolved to. Files already cached are not fetched again; with
    `local_files_only` nothing is fetched.
    """
    hub = require_hub()
    repo_id, rev_in_ref = parse_hf(repo)
    if revision is not None and rev_in_ref is not None and revision != rev_in_ref:
        raise SodError(f"two revisions for {repo_id}: {rev_in_ref!r} in {repo!r} and revision={revision!r}")
    revision = revision or rev_in_ref
    kw: dict[str, Any] = {"cache_dir": os.fspath(cache_dir) if cache_dir is not None else None,
                          "local_files_only": local_files_only, "token": token}
    if endpoint is not None:
        kw["endpoint"] = endpoint.rstrip("/")
    config_path = _fetch(hub, repo_id, CONFIG_FILE, revision, **kw)
    folder = config_path.parent
    commit = folder.name  # the snapshot folder is named by the commit hash
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict) or not str(config.get("format", "")).startswith("sam2sod-export/"):
        raise SodError(f"{_where(repo_id, revision)} holds a {CONFIG_FILE} that is not a sam2sod export config")
    files = [f for f in config.get("files", []) if isinstance(f, str)] or ["model.safetensors"]
    for name in files:
        if Path(name).name != name:
            raise SodError(f"{_where(repo_id, revision)}: {CONFIG_FILE} lists {name!r}, not a file name")
        _fetch(hub, repo_id, name, commit, revision or "", **kw)
    try:
        _fetch(hub, repo_id, CARD_FILE, commit, revision or "", **kw)
    except SodError as e:
        if f"has no {CARD_FILE}" not in str(e) and "not in the Hugging Face cache" not in str(e):
            raise
    return folder


# ---- model card metadata

def _dataset_name(config: dict[str, Any]) -> str | None:
    data = (config.get("training") or {}).get("data") or {}
    source = data.get("root") or data.get("images")
    return Path(str(source)).name or None if source else None


def _metric_entries(config: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """(split, [{type, name, value}]) from result.json of the run, else the best validation epoch."""
    metrics = config.get("metrics") or {}
    result = metrics.get("result") if isinstance(metrics.get("result"), dict) else {}
    if result:
        out = [{"type": key, "name": name, "value": round(float(result[key]), 4)}
               for key, name in _METRICS if isinstance(result.get(key), (int, float))]
        return str(result.get("split", "test")), out
    best = (config.get("training") or {}).get("best") or {}
    out = [{"type": key, "name": f"{name} (validation, best epoch)", "value": round(float(best[key]), 4)}
           for key, name in _METRICS if isinstance(best.get(key), (int, float))]
    return "validation", out


def hub_front_matter(config: dict[str, Any], license: str = "apache-2.0") -> str:
    """The YAML metadata header ('---' ... '---') of an export's hub model card, from its config.json.

    license, library_name, tags (salient-object-detection, sam2, the method; random-init for random base
    weights), pipeline_tag, base_model (the official facebook/sam2*-hiera-* repo when the base was
    pretrained SAM2), datasets (the training data folder's name) and model-index metrics from the run.
    """
    import yaml

    method = str(config.get("method", "model"))
    base = config.get("base") or {}
    tags = ["salient-object-detection", "sam2", "sam2sod", method]
    meta: dict[str, Any] = {"license": license, "library_name": "sam2sod", "pipeline_tag": "image-segmentation"}
    if base.get("version") == "baseline":
        tags.remove("sam2")
        tags.insert(1, "classical-baseline")
    elif config.get("pretrained") and config.get("size") in _HF_SIZE:
        meta["base_model"] = f"facebook/{config.get('version', 'sam2.1')}-hiera-{_HF_SIZE[config['size']]}"
    if not config.get("pretrained"):
        tags.append("random-init")
    meta["tags"] = tags
    dataset = _dataset_name(config)
    if dataset:
        meta["datasets"] = [dataset]
    split, entries = _metric_entries(config)
    if entries:
        meta["model-index"] = [{"name": method, "results": [{
            "task": {"type": "image-segmentation", "name": "Salient object detection"},
            "dataset": {"name": dataset or "unknown", "type": dataset or "unknown", "split": split},
            "metrics": entries}]}]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def hub_model_card(config: dict[str, Any], card: str) -> str:
    """`card` (the export's README.md) with `hub_front_matter(config)` in place of any front matter it has."""
    body = card
    if card.startswith("---\n"):
        end = card.find("\n---\n", 4)
        body = card[end + 5:] if end >= 0 else card
    return hub_front_matter(config) + "\n" + body.lstrip("\n")


# ---- upload

def push_export(folder: str | os.PathLike, repo: str, private: bool = False, token: str | None = None, *,
                endpoint: str | None = None, commit_message: str | None = None) -> str:
    """Upload the export `folder` to the model repo `repo` (created if missing); returns the commit URL.

    Uploads config.json, the files it lists and README.md with the hub metadata header; the folder itself
    is not changed.
    """
    from sam2sod.export.card import model_card
    from sam2sod.runs.exported import read_export_config

    hub = require_hub()
    repo_id, revision = parse_hf(repo)
    if revision:
        raise SodError(f"--push-to-hub takes a repo (user/repo), not a revision: {repo!r}")
    root = Path(folder)
    config = read_export_config(root)
    files = [f for f in config.get("files", []) if isinstance(f, str)]
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise SodError(f"{root} lacks {', '.join(missing)} that its {CONFIG_FILE} lists; export the run again")
    card_path = root / CARD_FILE
    card = card_path.read_text(encoding="utf-8") if card_path.is_file() else model_card(config)
    ops = [hub.CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(root / f)) for f in [CONFIG_FILE, *files]]
    ops.append(hub.CommitOperationAdd(path_in_repo=CARD_FILE,
                                      path_or_fileobj=hub_model_card(config, card).encode("utf-8")))
    api = hub.HfApi(endpoint=endpoint.rstrip("/") if endpoint else None, token=token)
    message = commit_message or f"sam2sod export of {config.get('method')}"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.create_commit(repo_id, ops, commit_message=message, repo_type="model")
    except Exception as e:  # noqa: BLE001 - one line naming the repo
        raise _push_error(e, repo_id) from None
    return str(getattr(info, "commit_url", info))


def _push_error(e: Exception, repo: str) -> SodError:
    from huggingface_hub import errors

    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403) or isinstance(e, errors.LocalTokenNotFoundError):
        return SodError(f"not allowed to write to the Hugging Face repo {repo}: log in with `hf auth login` or pass "
                        "a token with write access (HF_TOKEN)")
    if isinstance(e, errors.HfHubHTTPError):
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return SodError(f"the Hugging Face hub refused the upload to {repo} (HTTP {status}): {first[:160]}")
    reason = " ".join(str(e).split())[:160] or type(e).__name__
    return SodError(f"cannot upload to the Hugging Face repo {repo}: {reason} (no network?)")
