"""Counts in messages: ``plural(1, "image")`` -> '1 image', ``plural(2, "image")`` -> '2 images'."""

from __future__ import annotations

__all__ = ["plural"]


def plural(n: int, noun: str, many: str | None = None) -> str:
    """'N noun' with the noun in the singular for exactly 1 (`many`: an irregular plural, default noun + 's').

    A multi-word noun takes the plural on its last word: ``plural(3, "image/mask pair")`` -> '3 image/mask pairs'.
    """
    return f"{n} {noun if n == 1 else (many or noun + 's')}"
