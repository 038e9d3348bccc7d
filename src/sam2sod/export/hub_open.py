"""`hf://user/repo[@revision]` as a model for `sam2sod.load_model`: the export folder is downloaded with
`sam2sod.hub.download_export` (huggingface_hub's cache) and opened as an export folder.

Importing this module registers the finder in `sam2sod.runs.loader.FINDERS` (``sam2sod.load_model``,
``sam2sod.Predictor`` and the ``sam2sod`` command import it). Settings come from the environment at each call:
``HF_HUB_OFFLINE=1`` (or `--hub-offline`) reads the cache only (`local_files_only`), ``HF_HUB_CACHE`` /
``HF_HOME`` place the cache, ``HF_ENDPOINT`` names the hub, ``HF_TOKEN`` reads a private repo.
"""

from __future__ import annotations

import os

from sam2sod.hub import download_export
from sam2sod.runs.loader import FINDERS, ModelSource, export_source

__all__ = ["OFFLINE_ENV", "find_hub", "offline", "register"]

OFFLINE_ENV = "HF_HUB_OFFLINE"


def offline() -> bool:
    """True when $HF_HUB_OFFLINE is set to 1 / true / yes / on: only the cache is read."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def find_hub(text: str, base_checkpoint: str | None = None) -> ModelSource:
    """Download (or find in the cache) the export in `text` ('hf://user/repo[@rev]') and read it; SodError (one
    line) for a missing repo, revision or file, an interrupted download, no network or a file not cached."""
    folder = download_export(text, cache_dir=os.environ.get("HF_HUB_CACHE") or None, local_files_only=offline(),
                             endpoint=os.environ.get("HF_ENDPOINT") or None, token=os.environ.get("HF_TOKEN") or None)
    source = export_source(folder)
    source.extra["name"] = text
    return source


def register() -> None:
    """Make `sam2sod.load_model` open ``hf://`` repositories (idempotent)."""
    FINDERS["hub"] = find_hub


register()
