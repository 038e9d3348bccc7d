"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

Files get the usual mode of a new file (``0o666 & ~umask``). A failed write (full disk, read-only
location, permission) raises `SodError` naming the file and leaves neither a partial target nor a temp
file. A write killed outright can leave a temp file ``.NAME.XXXXXXXX.tmp``; `remove_stale_tmp` deletes those.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sam2sod.errors import SodError

# mkstemp names: ".NAME." + 8 characters from [a-z0-9_] + ".tmp"
_TMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def os_error_reason(err: OSError) -> str:
    """A short readable reason for an OS error: 'no space left on the disk', 'read-only file system', ..."""
    if err.errno in _DISK_FULL:
        return "no space left on the disk (free some space and run again)"
    if err.errno == errno.EROFS:
        return "read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    return err.strerror or str(err) or type(err).__name__


def _disk_nearly_full(folder: Path, limit: int = 1 << 20) -> bool:
    try:
        return shutil.disk_usage(folder).free < limit
    except OSError:
        return False


def _write_error(path: Path, err: OSError) -> SodError:
    return SodError(f"cannot write {path}: {os_error_reason(err)}")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temp file next to `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~current_umask())
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        with open(tmp, mode, **kwargs) as f:
            try:
                yield f
            except OSError as err:  # a write in the caller's block: only disk-full is ours to explain
                if err.errno in _DISK_FULL:
                    raise _write_error(path, err) from None
                raise
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError as err:
                raise _write_error(path, err) from None
        try:
            os.replace(tmp, path)
        except OSError as err:
            raise _write_error(path, err) from None
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:  # e.g. raised by close()
            raise _write_error(path, exc) from None
        if isinstance(exc, RuntimeError) and _disk_nearly_full(path.parent):  # torch.save wraps write errors
            raise _write_error(path, OSError(errno.ENOSPC, "no space left")) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` through a temp file, so an interrupted save never leaves a broken checkpoint."""
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def atomic_save_image(image: Any, path: str | os.PathLike, format: str | None = None) -> None:
    """Save a PIL image atomically; the format is taken from the suffix unless given."""
    path = Path(path)
    fmt = format or {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), path.suffix[1:].upper() or "PNG")
    with atomic_open(path, "wb") as f:
        image.save(f, format=fmt)


def is_stale_tmp_name(name: str) -> bool:
    """True for the temp-file names `atomic_open` uses (``.NAME.XXXXXXXX.tmp``)."""
    return bool(_TMP_RE.match(name))


def remove_stale_tmp(folder: str | os.PathLike, recursive: bool = False, min_age_s: float = 10.0) -> int:
    """Delete temp files left by killed `atomic_open` writes in `folder`; returns how many were removed.

    Only regular files named like ours and not modified for `min_age_s` seconds are removed (a younger
    one may belong to a write in progress). Symlinks and hidden folders are not followed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        for name in filenames:
            if not is_stale_tmp_name(name):
                continue
            p = Path(dirpath) / name
            try:
                st = p.lstat()
                if p.is_symlink() or not p.is_file() or now - st.st_mtime < min_age_s:
                    continue
                p.unlink()
                removed += 1
            except OSError:
                continue
    return removed
