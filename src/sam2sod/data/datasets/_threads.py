"""Run a function over many files in threads (Pillow decodes without the GIL), with a progress bar."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

from tqdm import tqdm

__all__ = ["default_workers", "run_threads"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Threads used when none are given: the core count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def run_threads(fn: Callable[[T], R], items: Mapping[str, T], *, workers: int | None = None,
                progress: bool = True, desc: str = "") -> Iterator[tuple[str, R | None, str | None]]:
    """Yield (key, fn(item), None) or (key, None, error message) for every item, in completion order.

    Any exception of `fn` becomes its message (the file is reported, the run goes on); Ctrl-C cancels
    the pending work.
    """
    if not items:
        return
    workers = workers or default_workers()
    with tqdm(total=len(items), desc=desc, unit="file", file=sys.stderr, disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fn, item): key for key, item in items.items()}
        try:
            for future in as_completed(futures):
                key = futures[future]
                bar.update()
                try:
                    yield key, future.result(), None
                except Exception as err:  # noqa: BLE001 - every failure is reported per file
                    yield key, None, str(err) or type(err).__name__
        finally:
            for future in futures:
                future.cancel()
