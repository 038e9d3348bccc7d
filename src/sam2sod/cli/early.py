"""Usage errors found before torch is imported: `os.path`-level checks of a command's model argument.

`check_model_early` answers in well under a second for a model path that does not exist or a ``.pt`` file that
neither PyTorch format starts like; anything it cannot judge this cheaply (a run folder's contents, an
official name, an ``hf://`` repository) is left to `sam2sod.runs.loader.open_source`, which gives the same
messages after the heavy imports.
"""

from __future__ import annotations

import os
from pathlib import Path

from sam2sod.errors import SodError

__all__ = ["check_counts", "check_model_early"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE_PROTO = 0x80


def check_counts(args: object) -> None:
    """SodError for a `--batch-size` or `--workers` below 1 (the flags every model command shares)."""
    for flag, name in (("--batch-size", "batch_size"), ("--workers", "workers")):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise SodError(f"{flag} must be >= 1, got {value}")


def check_model_early(text: str | None) -> None:
    """SodError (the loader's wording) for a missing model path or a `.pt` file that is no checkpoint."""
    if not text or text.startswith("hf://"):
        return
    p = Path(text)
    if not os.path.lexists(p):
        from sam2sod.weights import OFFICIAL

        if text in OFFICIAL:
            return
        raise SodError(f"model {p} not found (give a run folder, its best.pt / last.pt, or an export folder)")
    if p.suffix != ".pt" or not p.is_file():
        return
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError:
        return  # the loader names the reason
    if not head or not (head.startswith(_ZIP_MAGIC) or head[0] == _PICKLE_PROTO):
        from sam2sod.safe_load import unreadable_reason

        raise SodError(f"cannot read checkpoint {p}: {unreadable_reason(p)}")
