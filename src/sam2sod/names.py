"""Names that become paths: the one check every user-given name passes, and the one join every writer uses.

Two kinds of name reach the file system:

* **User-given names** (model, prediction and dataset names, ``--data NAME=``, stage names, grid cell
  names): `check_name`. One path component of 1-100 characters from ``A-Z a-z 0-9 . _ + - =``, starting
  with a letter or digit (so no leading dot or dash), and never ``..`` anywhere.
* **Names found on disk** (image stems, sequence and frame names): `check_stem`. Any file name the
  operating system allows except an empty one, ``.`` / ``..``, one holding a path separator or a control
  character, or one starting with a dash.

`inside(out, *parts)` joins parts onto an output folder and refuses any result that does not resolve
inside it (through ``..`` or a symbolic link): every file a command writes under ``--out`` goes through it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sam2sod.errors import SodError

__all__ = ["NAME_CHARS", "check_name", "check_relative", "check_stem", "inside"]

NAME_CHARS = "letters, digits and . _ + - = (1-100 characters, starting with a letter or digit)"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def check_name(value: str, what: str, where: str = "") -> str:
    """`value` unchanged when it is a safe user-given name, else a one-line `SodError`.

    The message reads "invalid WHAT 'VALUE' WHERE: use ...", e.g. `what` "dataset name", `where` "in --data X=DIR".
    """
    text = str(value)
    if not _NAME_RE.match(text) or ".." in text:
        at = f" {where}" if where else ""
        raise SodError(f"invalid {what} {text!r}{at}: use {NAME_CHARS}, without '..' (it names an output folder)")
    return text


def check_stem(value: str, what: str, where: str = "") -> str:
    """`value` unchanged when a file-system name found on disk can name an output file, else `SodError`."""
    text = str(value)
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if (text in ("", ".", "..") or any(s in text for s in seps) or _CONTROL_RE.search(text)
            or text.startswith("-")):
        at = f" {where}" if where else ""
        raise SodError(f"{what} {text!r}{at} cannot name an output file (empty, '.', '..', a path separator, a "
                       "control character or a leading '-'): rename it")
    return text


def check_relative(value: str, what: str, where: str = "") -> str:
    """`check_stem` for each part of a relative name such as ``sub/a`` (images found with --recursive)."""
    for part in str(value).split("/"):
        check_stem(part, what, where)
    return str(value)


def inside(out: str | os.PathLike, *parts: str | os.PathLike) -> Path:
    """``Path(out, *parts)`` after checking it resolves inside `out` (symlinks and ``..`` followed)."""
    base = Path(os.path.abspath(out)).resolve()
    target = Path(out).joinpath(*parts)
    real = Path(os.path.abspath(target)).resolve()
    if real != base and base not in real.parents:
        raise SodError(f"refusing to write {target}: it resolves to {real}, outside the output folder {out}")
    return target
