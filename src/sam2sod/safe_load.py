"""Read a user's weights file with `torch.load(weights_only=True)` and explain a bad file in one line.

PyTorch's own messages are long, sometimes empty (a zero-byte file gives `EOFError('')`) and, for a
pickle with code in it, suggest `weights_only=False`, which would run that code. `load_weights_file`
turns every failure into a `SodError` "cannot read WHAT PATH: REASON" with a short reason instead.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sam2sod.errors import SodError

__all__ = ["load_weights_file", "unreadable_reason"]

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80  # every pickle of protocol >= 2 (torch's legacy format uses 2) starts with PROTO
_EMPTY_ZIP = b"PK\x05\x06"


#: Checks of a SAM2 weights file just before it is loaded, as fn(path, sha256) raising SodError (the loader
#: hashes the file once). `sam2sod.weights` adds the download-record check when it is imported
#: (run configs and --base-checkpoint always import it), which a lower layer cannot call directly.
WEIGHTS_CHECKS: list[Callable[[Path, str], object]] = []


def _header_reason(head: bytes, size: int) -> str | None:
    """A reason from the first bytes of a file that neither torch format starts like, else None."""
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page, not a checkpoint (a failed or redirected download?)"
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the checkpoint itself (fetch it with `git lfs pull`)"
    if head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < size:
        return "a safetensors file, not a PyTorch checkpoint (convert it with safetensors.torch.load_file + torch.save)"
    return None


def _zip_reason(path: Path) -> str:
    """Why a file starting like a zip archive cannot be read as a PyTorch checkpoint."""
    if not zipfile.is_zipfile(path):
        return "not a PyTorch checkpoint (truncated or corrupt zip)"
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "not a PyTorch checkpoint (truncated or corrupt zip)"
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "a zip archive that is not a PyTorch checkpoint (it has no data.pkl)"
    return "not a PyTorch checkpoint (truncated or corrupt zip)"


def _unpickling_reason(e: BaseException) -> str:
    """Reason for a `weights_only` unpickler error: a refused Python object, or a damaged pickle."""
    text = " ".join(str(x) for x in (e, e.__cause__, e.__context__) if x is not None)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found or "global" in text.lower():
        name = f"{found.group(1)}; " if found else ""
        return f"contains Python objects that are not plain tensors ({name}refused for safety)"
    return "not a PyTorch checkpoint (not a weights pickle, or a damaged one)"


def unreadable_reason(path: str | os.PathLike, error: BaseException | None = None) -> str:
    """A one-line reason why `path` cannot be loaded as weights (`error`: what torch.load raised, if tried)."""
    p = Path(path)
    if p.is_dir():
        return "it is a directory, not a file"
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as e:
        return f"the file cannot be read ({e.strerror or e})"
    if size == 0:
        return "file is empty (0 bytes)"
    if head.startswith((_ZIP_MAGIC, _EMPTY_ZIP)):
        if isinstance(error, pickle.UnpicklingError):
            return _unpickling_reason(error)
        return _zip_reason(p)
    if head[0] == _PICKLE_PROTO:
        if isinstance(error, EOFError):
            return "not a PyTorch checkpoint (truncated: the file ends early)"
        if isinstance(error, pickle.UnpicklingError):
            return _unpickling_reason(error)
        return "not a PyTorch checkpoint (a damaged pickle)"
    return _header_reason(head, size) or "not a PyTorch checkpoint (neither a zip archive nor a pickle)"


def load_weights_file(path: str | os.PathLike, what: str) -> Any:
    """`torch.load(path, map_location="cpu", weights_only=True)`; SodError "cannot read WHAT PATH: REASON".

    `what` names the file for the user, e.g. "SAM2 checkpoint" or "backbone weights". Never falls back to
    `weights_only=False`: a file holding Python objects other than tensors and plain values is refused.
    """
    import torch

    p = Path(path)
    if not p.exists():
        raise SodError(f"{what} not found: {p}")
    if p.is_dir() or not p.stat().st_size:
        raise SodError(f"cannot read {what} {p}: {unreadable_reason(p)}")
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4 ...": noise for a file refused anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location="cpu", weights_only=True)
    except MemoryError:
        raise SodError(f"cannot read {what} {p}: not enough memory to load it") from None
    except Exception as e:  # noqa: BLE001 - any failure to unpickle is a bad file for the user
        raise SodError(f"cannot read {what} {p}: {unreadable_reason(p, e)}") from None
