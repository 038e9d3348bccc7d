"""Resumable HTTP(S) downloads with `urllib`: `NAME.part` + Range requests, a tqdm bar, one-line errors.

`download_to_part(urls, part)` fills the partial file `part` from the first URL that answers and returns
that URL; the caller verifies the finished `.part` and renames it into place (`os.replace`), so the target
never holds a half-written file. A `.part` left by an interrupted download is resumed with
`Range: bytes=N-` (a server that ignores the range answers 200 and the file starts again from zero).
Connection drops in the middle of the body are retried a few times, each retry resuming.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from sam2sod.errors import SodError

__all__ = ["DownloadError", "OfflineError", "download_to_part"]

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class DownloadError(SodError):
    """No URL gave the whole file (HTTP errors, connection drops); the message has one line per host."""


class OfflineError(DownloadError):
    """No host could be reached at all (no network, DNS failure, connection refused)."""


def _user_agent() -> str:
    from sam2sod.version import __version__

    return f"sam2sod/{__version__} (python urllib)"


def _total_from(resp: http.client.HTTPResponse, offset: int) -> tuple[int | None, bool]:
    """(total size of the file or None, resumed?) from a 200 / 206 answer to a request at `offset`."""
    if resp.status == 206:
        found = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not found or int(found.group(1)) != offset:
            return None, False
        total = found.group(3)
        return (int(total) if total != "*" else None), True
    length = resp.headers.get("Content-Length")
    return (int(length) if length and length.isdigit() else None), False


def _size_of(part: Path) -> int:
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)  # noqa: S310


def _fetch_once(url: str, part: Path, timeout: float, progress: bool, desc: str) -> None:
    """One request: append the rest of the file to `part` (or rewrite it when the server restarts it).

    Raises OSError / http.client errors on a dropped connection (the caller retries) and
    urllib.error.HTTPError for an HTTP error status.
    """
    offset = _size_of(part)
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # our .part is already as long as the file (or longer): start again
            e.close()
            part.unlink(missing_ok=True)
            resp = _open(url, 0, timeout)
            offset = 0
        else:
            raise
    with resp:
        total, resumed = _total_from(resp, offset)
        if resp.status == 206 and not resumed:  # a range we did not ask for: the next try starts from zero
            part.unlink(missing_ok=True)
            raise http.client.HTTPException("the server answered with another byte range than asked for")
        start = offset if resumed else 0
        mode = "ab" if resumed else "wb"
        bar = _bar(progress, total, start, desc)
        try:
            with open(part, mode) as f:
                while block := resp.read(CHUNK):
                    f.write(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    got = _size_of(part)
    if total is not None and got != total:
        raise http.client.IncompleteRead(b"", total - got)


def _bar(progress: bool, total: int | None, start: int, desc: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                dynamic_ncols=True, leave=True)


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        inner = err.reason
        text = inner.strerror if isinstance(inner, OSError) and inner.strerror else str(inner)
        return text or type(inner).__name__
    if isinstance(err, http.client.IncompleteRead):
        return f"connection closed with {err.expected} bytes still to come"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return "timed out"
    return str(err) or type(err).__name__


def _unreachable(err: BaseException) -> bool:
    """True when the host was never reached (no network, DNS, refused); False for HTTP errors and drops."""
    return isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError)


def download_to_part(urls: Sequence[str], part: str | os.PathLike, *, timeout: float = 30.0, retries: int = 3,
                     progress: bool = True, desc: str = "") -> str:
    """Fill `part` with the whole file from the first URL that works; returns that URL.

    Each URL gets `retries` tries; a try that breaks off mid-file keeps what it got and the next resumes it.
    Raises OfflineError when no host could be reached, DownloadError when none gave the whole file.
    """
    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    failures: list[tuple[str, str]] = []
    all_unreachable = True
    for url in urls:
        last: BaseException | None = None
        for _ in range(max(1, retries)):
            try:
                _fetch_once(url, part, timeout, progress, desc)
                return url
            except urllib.error.HTTPError as e:
                last = e
                with contextlib.suppress(Exception):
                    e.close()
                break  # 404 / 403 / 5xx: the next host
            except (OSError, http.client.HTTPException) as e:  # includes URLError, timeouts, resets
                last = e
                if _unreachable(e):
                    break
        assert last is not None
        all_unreachable = all_unreachable and _unreachable(last)
        failures.append((url, _reason(last)))
    detail = "; ".join(f"{u}: {r}" for u, r in failures)
    if all_unreachable:
        raise OfflineError(f"no connection ({detail})")
    raise DownloadError(f"download failed ({detail}); run the command again to resume")
