"""`quiet_random_init`: build models without their random-init notices (the caller prints one instead)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

__all__ = ["quiet_random_init"]


@contextlib.contextmanager
def quiet_random_init() -> Iterator[None]:
    """Silence the model builders' own random-init warnings (the caller prints one notice instead)."""
    loggers = [logging.getLogger(n) for n in ("sam2sod.models", "sam2sod.models.sam2_backbone",
                                              "sam2sod.models.baselines")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(random init|RANDOM INIT|randomly initiali).*")
        from sam2sod.models import RandomInitWarning
        from sam2sod.models.baselines import BackboneRandomInitWarning

        warnings.simplefilter("ignore", RandomInitWarning)
        warnings.simplefilter("ignore", BackboneRandomInitWarning)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(loggers, levels, strict=True):
                lg.setLevel(lv)
