"""One writer per output folder: an exclusive lock file ``.sam2sod-lock`` holding the writer's PID and host.

`acquire(folder, command)` takes the lock (an ``flock`` on the file, so the operating system drops it when
the process dies, however it dies); a second process gets a one-line `SodError` naming the holder's PID,
host and command. A lock file left by a dead process (its PID is gone, or no process holds the ``flock``)
is stale and taken over. Locks are re-entrant within a process, are released by `release_all` (the CLI
calls it when a command ends) and at the latest when the process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from sam2sod.errors import SodError

__all__ = ["LOCK", "acquire", "held", "holder", "release", "release_all"]

LOCK = ".sam2sod-lock"


@dataclass
class _Held:
    path: Path
    fd: int


_HELD: dict[Path, _Held] = {}


def _key(folder: str | os.PathLike) -> Path:
    return Path(os.path.abspath(folder)).resolve()


def holder(folder: str | os.PathLike) -> dict[str, str] | None:
    """{"pid", "host", "command", "since"} written in `folder`'s lock file, or None when it has none."""
    try:
        text = (Path(folder) / LOCK).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    info = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return info if info.get("pid") else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _busy(folder: str | os.PathLike, info: dict[str, str] | None) -> SodError:
    if info is None:
        who = "another sam2sod process"
    else:
        who = f"`sam2sod {info.get('command', '?')}` (pid {info['pid']} on {info.get('host', '?')}"
        who += f", since {info['since']})" if info.get("since") else ")"
    return SodError(f"output folder {folder} is in use by {who}; wait for it to finish or stop it, or choose "
                    "another --out")


def _flock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: the file system has no flock (use the PID)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        return None
    return True


def _open(path: Path, shown: str | os.PathLike) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o644)
    except OSError as err:
        from sam2sod.atomic import os_error_reason

        if err.errno == errno.ELOOP:
            raise SodError(f"cannot lock output folder {shown}: {path.name} is a symbolic link") from None
        raise SodError(f"cannot lock output folder {shown}: {os_error_reason(err)}") from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _write(fd: int, command: str) -> None:
    text = (f"pid={os.getpid()}\nhost={socket.gethostname()}\ncommand={command}\n"
            f"since={time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)


def acquire(folder: str | os.PathLike, command: str, *, shown: str | os.PathLike | None = None) -> Path:
    """Lock the existing `folder` for `command`; `SodError` (naming `shown`, default `folder`) when another live
    process holds it."""
    key = _key(folder)
    shown = folder if shown is None else shown
    if key in _HELD:
        return _HELD[key].path
    path = key / LOCK
    for _ in range(5):  # retried when the file is removed or replaced between open and flock
        info = holder(key)
        fd = _open(path, shown)
        got = _flock(fd)
        if got is None:  # no flock here: a live PID on this host holds it
            mine = info is None or info.get("host") != socket.gethostname() or not info["pid"].isdigit()
            got = mine or int(info["pid"]) == os.getpid() or not _pid_alive(int(info["pid"]))
        if not got:
            os.close(fd)
            raise _busy(shown, holder(key) or info)
        if not _same_file(fd, path):
            os.close(fd)
            continue
        _write(fd, command)
        _HELD[key] = _Held(path, fd)
        return path
    raise _busy(shown, holder(key))


def held() -> list[Path]:
    """The folders this process holds locks on."""
    return list(_HELD)


def release(folder: str | os.PathLike) -> None:
    """Drop this process's lock on `folder` and remove the lock file (nothing when it holds none)."""
    h = _HELD.pop(_key(folder), None)
    if h is None:
        return
    with contextlib.suppress(OSError):
        if _same_file(h.fd, h.path):
            h.path.unlink()
    with contextlib.suppress(OSError):
        os.close(h.fd)


def release_all() -> None:
    """Release every lock this process holds."""
    for folder in list(_HELD):
        release(folder)


atexit.register(release_all)
