"""The output-folder guard every writing command runs first: the user's data is never written over.

Rules of `prepare_output_dir`:

* Write only into a folder that is new, empty, or was created by the same sam2sod command (it holds the
  marker file `.sam2sod-output` naming the command), unless `overwrite` is given.
* Never write into an input folder, nor into a folder inside one, nor into a folder that contains one,
  even with `overwrite`.
* Never write into a dataset root (a folder holding a known image/mask layout, see
  `sam2sod.data.discovery.KNOWN_LAYOUTS`) nor into its image/mask folders or a folder inside them, whoever
  made the dataset and whatever marker it holds, even with `overwrite`. The one exception: `make-synthetic`
  may rewrite a dataset that `make-synthetic` made (its root holds that marker).
* Lock the folder (`sam2sod.lock`): one writer at a time; a second gets a one-line `SodError`.
* Check before any work starts that the folder can be created and written and that the disk has some
  free space (`SAM2SOD_MIN_FREE_MB`, default 50; 0 turns the check off); each problem is one `SodError`
  line naming the path.

Each command runs in an `output_scope` (the CLI's `main`, and the Python entry points through
`in_output_scope`): when it ends, the locks it took are released, and when it fails, each folder that
`prepare_output_dir` created and that holds nothing but the marker and the lock is removed again.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sam2sod import lock
from sam2sod.atomic import atomic_write_text, is_stale_tmp_name, os_error_reason, remove_stale_tmp
from sam2sod.data.discovery import dataset_root_of, find_layout
from sam2sod.errors import SodError, format_names

__all__ = ["MARKER", "MIN_FREE_ENV", "OutputScope", "discard_failed_outputs", "finish_outputs", "in_output_scope",
           "is_dataset_root", "output_scope", "prepare_output_dir", "protected_folders", "read_marker",
           "write_marker"]

T = TypeVar("T")

MARKER = ".sam2sod-output"
MIN_FREE_ENV = "SAM2SOD_MIN_FREE_MB"
DEFAULT_MIN_FREE_MB = 50.0


@dataclass(frozen=True)
class Protected:
    """A folder no output may touch. `tree`: nor any folder inside it (else only the folder and its parents)."""

    path: Path
    why: str
    tree: bool = True


def read_marker(folder: str | os.PathLike) -> str | None:
    """The command named in `folder`'s marker, or None when the folder has no (readable) marker."""
    try:
        text = (Path(folder) / MARKER).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text.split("\n", 1)[0].strip() or None


def write_marker(folder: str | os.PathLike, command: str) -> None:
    """Mark `folder` as written by `sam2sod COMMAND`."""
    atomic_write_text(Path(folder) / MARKER, f"{command}\nwritten by sam2sod {command}; safe to reuse with it\n")


def _is_bookkeeping(name: str) -> bool:
    """sam2sod's own files in an output folder: the marker, the lock, and temp files of either."""
    return name in (MARKER, lock.LOCK) or (is_stale_tmp_name(name) and name.startswith((MARKER + ".", "." + MARKER)))


def is_dataset_root(folder: str | os.PathLike) -> bool:
    """True when `folder` holds an image folder and its mask folder in a known layout (e.g. Imgs/ + GT/)."""
    folder = Path(folder)
    try:
        subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return False
    return any(dataset_root_of(sub) is not None for sub in subs)


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(path)).resolve()


def _dataset_of(folder: Path) -> list[Protected]:
    """The folder's dataset: its layout folders when it is a root, its root when it is an image/mask folder."""
    found = []
    with contextlib.suppress(SodError, OSError):
        for sub in find_layout(folder):
            found.append(Protected(_real(sub), f"an image/mask folder of the dataset {folder}"))
    root = dataset_root_of(folder)
    if root is not None:
        found.append(Protected(_real(root), f"the dataset {root} (the input {folder} is one of its folders)"))
    return found


def protected_folders(inputs: Iterable[str | os.PathLike]) -> list[Protected]:
    """Folders the outputs must stay out of: each input folder (and its dataset), each input file's folder."""
    out: list[Protected] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            out.append(Protected(_real(path), f"the input folder {path}"))
            out.extend(_dataset_of(path))
        elif path.exists():
            folder = path.parent if str(path.parent) else Path(".")
            out.append(Protected(_real(folder), f"the folder of the input {path}", tree=False))
            out.extend(_dataset_of(folder))
    return out


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _check_protected(out: Path, real: Path, protected: Sequence[Protected], subdirs: Sequence[str],
                     command: str) -> None:
    for p in protected:
        if _inside(real, p.path) and (p.tree or real == p.path):
            where = "is" if real == p.path else "is inside"
            raise SodError(f"--out {out} {where} {p.why}; sam2sod never writes into its inputs: choose another --out")
        if _inside(p.path, real):
            raise SodError(f"--out {out} contains {p.why}; sam2sod never writes around its inputs: "
                           "choose another --out")
    _check_datasets(out, real, subdirs, command)


def _check_datasets(out: Path, real: Path, subdirs: Sequence[str], command: str) -> None:
    """No dataset root and no image/mask folder (or a folder inside one) is an output, even with --overwrite."""
    own = command == "make-synthetic" and read_marker(real) == "make-synthetic"  # it rewrites its own dataset
    if is_dataset_root(real) and not own:
        raise SodError(f"--out {out} is a dataset (it holds image and mask folders); sam2sod never writes into a "
                       "dataset, even with --overwrite: choose another --out")
    for target in [real, *(real / s for s in subdirs)]:
        for folder in [target, *target.parents]:
            root = dataset_root_of(folder)
            if root is not None and not (own and root == real):
                raise SodError(f"--out {out} would write into {folder}, the image/mask folder of the dataset "
                               f"{root}; sam2sod never writes into a dataset, even with --overwrite: choose "
                               "another --out")


def _check_reuse(out: Path, command: str, overwrite: bool, legacy_files: Sequence[str]) -> None:
    try:
        entries = sorted(e.name for e in out.iterdir() if not _is_bookkeeping(e.name))
    except OSError as err:
        raise SodError(f"cannot use output folder {out}: {os_error_reason(err)}") from None
    if not entries or overwrite:
        return
    owner = read_marker(out)
    if owner == command or (owner is None and legacy_files and all((out / f).is_file() for f in legacy_files)):
        return
    if owner is not None:
        raise SodError(f"output folder {out} was written by `sam2sod {owner}`, not `sam2sod {command}`; "
                       "choose a new or empty folder, or pass --overwrite to write into it anyway")
    raise SodError(f"output folder {out} is not empty and was not created by sam2sod (it holds "
                   f"{format_names(entries, 3)}); choose a new or empty folder, or pass --overwrite to write "
                   "into it anyway")


def _check_links(out: Path, real: Path) -> None:
    """Refuse a symbolic link to a folder outside `out` anywhere inside it: writes could follow it out."""
    for dirpath, dirnames, _files in os.walk(real):
        for name in dirnames:
            link = Path(dirpath) / name
            if link.is_symlink() and not _inside(_real(link), real):
                raise SodError(f"--out {out} holds {link}, a link to {_real(link)} outside it; sam2sod writes "
                               "only inside --out: remove the link or choose another --out")


def _min_free_bytes(min_free_mb: float | None) -> float:
    if min_free_mb is not None:
        return min_free_mb * 2**20
    raw = os.environ.get(MIN_FREE_ENV, "").strip()
    try:
        return (float(raw) if raw else DEFAULT_MIN_FREE_MB) * 2**20
    except ValueError:
        raise SodError(f"{MIN_FREE_ENV} must be a number of megabytes, got {raw!r}") from None


def _check_creatable(out: Path, real: Path, min_free: float) -> Path:
    """The nearest existing folder at or above `real`, after checking `out` can be made there."""
    existing = real
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if existing.is_symlink() and not existing.exists():
        raise SodError(f"cannot create output folder {out}: {existing} is a broken link")
    if not existing.is_dir():
        if existing == real:
            raise SodError(f"--out {out} is a file, not a folder")
        raise SodError(f"cannot create output folder {out}: {existing} is a file, not a folder")
    if min_free > 0:
        try:
            free = shutil.disk_usage(existing).free
        except OSError as err:
            raise SodError(f"cannot use output folder {out}: {os_error_reason(err)}") from None
        if free < min_free:
            raise SodError(f"not enough free disk space for output folder {out}: {free / 2**20:.1f} MB free, "
                           f"need at least {min_free / 2**20:.0f} MB (set {MIN_FREE_ENV} to change the limit)")
    return existing


def _remove_dirs(created: list[Path]) -> None:
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


# folders made by prepare_output_dir in this process (deepest first per call), for discard_failed_outputs
_CREATED: list[list[Path]] = []


def _checked(out: Path, overwrite: bool, inputs: Iterable[str | os.PathLike], command: str,
             subdirs: Sequence[str], min_free_mb: float | None, legacy_files: Sequence[str]) -> tuple[Path, Path]:
    """The --out rules (protected folders, creatable, reuse, links); returns (resolved out, nearest existing)."""
    real = _real(out)
    _check_protected(out, real, protected_folders(inputs), subdirs, command)
    existing = _check_creatable(out, real, _min_free_bytes(min_free_mb))
    if existing == real:
        _check_reuse(out, command, overwrite, legacy_files)
        _check_links(out, real)
    return real, existing


def check_output_dir(path: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike],
                     command: str, subdirs: Sequence[str] = (), min_free_mb: float | None = None,
                     legacy_files: Sequence[str] = ()) -> None:
    """The checks of `prepare_output_dir`, creating and locking nothing: for a check that must come after the
    --out ones but before the folder exists (e.g. the model path)."""
    out = Path(path)
    real, existing = _checked(out, overwrite, inputs, command, subdirs, min_free_mb, legacy_files)
    if existing == real:
        return
    probe = existing / f"{MARKER}.probe-{os.getpid()}"  # can a folder be made there (read-only file system)?
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        raise SodError(f"cannot create output folder {out} in {existing}: {os_error_reason(err)}") from None


def prepare_output_dir(path: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike],
                       command: str, subdirs: Sequence[str] = (), min_free_mb: float | None = None,
                       legacy_files: Sequence[str] = ()) -> Path:
    """Check `path` against the rules in the module docstring, create it, lock it and write the marker.

    `subdirs`: sub-folders the command writes into (checked against datasets too). `legacy_files`: files
    that together show the folder was written by this command before markers existed (it is reusable).
    Also removes temp files of killed writes from an existing folder. Returns `path` (as given).
    """
    out = Path(path)
    real, existing = _checked(out, overwrite, inputs, command, subdirs, min_free_mb, legacy_files)
    if existing == real:
        lock.acquire(real, command, shown=out)
    created: list[Path] = []
    try:
        for folder in reversed([real, *real.parents]):
            if not folder.exists():
                folder.mkdir()
                created.append(folder)
        if created:
            lock.acquire(real, command, shown=out)
    except OSError as err:
        _remove_dirs(created)
        raise SodError(f"cannot create output folder {out} in {existing}: {os_error_reason(err)}") from None
    except SodError:
        _remove_dirs(created)
        raise
    try:
        write_marker(real, command)
    except SodError as err:
        lock.release(real)
        _remove_dirs(created)
        raise SodError(f"cannot write to output folder {out}: {str(err).rsplit(': ', 1)[-1]}") from None
    if created:
        _CREATED.append(created)
    if existing == real:
        remove_stale_tmp(real, recursive=True)
    return out


def _only_bookkeeping(folder: Path) -> bool:
    try:
        return all(_is_bookkeeping(e.name) and not e.is_dir() for e in folder.iterdir())
    except OSError:
        return False


def discard_failed_outputs(since: int = 0, keep_locks: Iterable[Path] = ()) -> list[Path]:
    """After a failed command: remove each folder `prepare_output_dir` created (from call number `since` on)
    that holds only the marker and the lock, with the parents it created when empty; release the locks
    (all but `keep_locks`). Returns the removed folders."""
    removed = []
    for created in reversed(_CREATED[since:]):
        top = created[-1]
        lock.release(top)
        if top.is_dir() and not top.is_symlink() and _only_bookkeeping(top):
            for e in top.iterdir():
                with contextlib.suppress(OSError):
                    e.unlink()
            _remove_dirs(created)
            removed += [f for f in created if not f.exists()]
    finish_outputs(since, keep_locks)
    return removed


def finish_outputs(since: int = 0, keep_locks: Iterable[Path] = ()) -> None:
    """After a command: forget the folders it created and release its locks (all but `keep_locks`)."""
    del _CREATED[since:]
    keep = set(keep_locks)
    for folder in lock.held():
        if folder not in keep:
            lock.release(folder)


@dataclass
class OutputScope:
    """What `output_scope` yields: set `failed` for a command that failed without raising (an exit code)."""

    failed: bool = False


_DEPTH = [0]


@contextlib.contextmanager
def output_scope() -> Iterator[OutputScope]:
    """The lifetime of one command's output folders: on leaving, the locks taken inside are released, and
    on failure (an exception, or `scope.failed`) the folders it created and left empty are removed.

    Nested scopes (`quickstart` calling `evaluate`) belong to the outermost one.
    """
    scope = OutputScope()
    if _DEPTH[0]:
        yield scope
        return
    since, before = len(_CREATED), lock.held()
    _DEPTH[0] += 1
    try:
        yield scope
    except BaseException:
        scope.failed = True
        raise
    finally:
        _DEPTH[0] -= 1
        (discard_failed_outputs if scope.failed else finish_outputs)(since, before)


def in_output_scope(fn: Callable[..., T]) -> Callable[..., T]:
    """Run `fn` (a command's Python entry point, e.g. `evaluate`) in an `output_scope`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with output_scope():
            return fn(*args, **kwargs)

    return wrapper
