"""User-facing errors: the CLI prints their message and exits with code 2, without a traceback."""

from __future__ import annotations


class SodError(Exception):
    """A problem with the user's input (files, config, arguments), described in one readable message."""


def format_names(names: list[str], limit: int = 5) -> str:
    """`'a, b, c (and 7 more)'` for error messages that list file names."""
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")
