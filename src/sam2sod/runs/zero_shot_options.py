"""How to open an untrained SAM2 as a saliency model: `--zero-shot MODE`, `--image-size PX`, `--amg NAME=VALUE`.

`zero_shot_options(mode, image_size, amg)` checks all three (before any output folder exists or any model is
built) and returns a `ZeroShotOptions` for `sam2sod.runs.loader.open_source`; None when none was given (an
official name then opens prompt-free at 1024 px). The modes and AMG settings are those of
`sam2sod.models.zero_shot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sam2sod.errors import SodError

__all__ = ["DEFAULT_SIZE", "ZeroShotOptions", "as_zero_shot", "parse_amg", "zero_shot_options"]

DEFAULT_SIZE = 1024  # SAM2's own input size


@dataclass(frozen=True)
class ZeroShotOptions:
    """mode: prompt-free | centre-point | amg; image_size: the model's input side (px); amg: every AMG setting
    (filled with sam2's defaults) for mode amg, else {}."""

    mode: str = "prompt-free"
    image_size: int = DEFAULT_SIZE
    amg: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """'zero-shot SAM2 (<mode>)', the model's name in every output."""
        from sam2sod.models.zero_shot import zero_shot_label

        return zero_shot_label(self.mode)


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_amg(values: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """`--amg NAME=VALUE` texts (or a mapping) -> {name: number}; SodError for a text without '='."""
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return dict(values)
    out: dict[str, Any] = {}
    for text in values:
        name, sep, value = str(text).partition("=")
        if not sep or not name.strip() or not value.strip():
            raise SodError(f"--amg takes NAME=VALUE (e.g. --amg points_per_side=16), got {text!r}")
        out[name.strip()] = _number(value.strip())
    return out


def zero_shot_options(mode: str | None = None, image_size: int | None = None,
                      amg: Iterable[str] | Mapping[str, Any] | None = None) -> ZeroShotOptions | None:
    """Checked options (None when all three are unset). AMG settings need mode amg; `image_size` a positive
    multiple of 32; `amg` names and ranges as in `sam2sod.models.zero_shot.AMG_OPTIONS`."""
    from sam2sod.models.sam2_backbone import check_image_size
    from sam2sod.models.zero_shot import check_amg_options, check_mode

    given = parse_amg(amg)
    if mode is None and image_size is None and not given:
        return None
    mode = check_mode(mode if mode is not None else ("amg" if given else "prompt-free"))
    if given and mode != "amg":
        raise SodError(f"--amg ({', '.join(sorted(given))}) applies to --zero-shot amg only, not {mode}")
    size = DEFAULT_SIZE if image_size is None else image_size
    try:
        check_image_size(size)
    except SodError:
        raise SodError(f"--image-size must be a positive multiple of 32 (SAM2's Hiera downsamples by 32), "
                       f"got {image_size!r}") from None
    return ZeroShotOptions(mode, size, check_amg_options(given) if mode == "amg" else {})


def as_zero_shot(value: ZeroShotOptions | str | None) -> ZeroShotOptions | None:
    """A `ZeroShotOptions` from itself, a mode name (1024 px, default AMG settings) or None."""
    if value is None or isinstance(value, ZeroShotOptions):
        return value
    if isinstance(value, str):
        return zero_shot_options(value)
    raise SodError(f"zero_shot must be a mode ({', '.join(('prompt-free', 'centre-point', 'amg'))}) or "
                   f"ZeroShotOptions, got {type(value).__name__}")
