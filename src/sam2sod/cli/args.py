"""The command registry and the flags shared by the `sam2sod` subcommands (see `sam2sod.cli`).

A flag name means one thing in every command that has it; each shared flag is declared once here. Old spellings
that meant something else in one command stay accepted there for one release, hidden from --help (`alias`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_SKIPPED = 3  # predict wrote the readable images and skipped others

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):
    """Register `add_args` + `run` pair under `name`."""

    def wrap(add_args: Callable[[argparse.ArgumentParser], None]):
        def register(run: Callable[[argparse.Namespace], int]):
            COMMANDS[name] = (help, add_args, run)
            return run

        return register

    return wrap


MODEL_HELP = ("a run folder (its best.pt, else last.pt), a run's best.pt / last.pt, a `sam2sod export` folder, or "
              "an official SAM2 name / file (zero-shot, prompt-free)")
DEVICE_HELP = "auto (default: a GPU when there is one) | cpu | cuda | cuda:N | mps"


def alias(p: argparse.ArgumentParser, old: str, dest: str, **kw: Any) -> None:
    """Accept the old spelling `old` of a renamed flag (same `dest`), hidden from --help, for one release."""
    p.add_argument(old, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kw)


def checkpoint_arg(p: argparse.ArgumentParser, help: str = MODEL_HELP) -> None:
    p.add_argument("--checkpoint", required=True, metavar="MODEL", help=help)
    base_checkpoint_arg(p)


def base_checkpoint_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-checkpoint", metavar="FILE|NAME",
                   help="official SAM2 weights of a run (a file, or a name from `sam2sod weights list`) when they "
                        "are not at the path the run recorded")


def out_arg(p: argparse.ArgumentParser, help: str | None = None, required: bool = True, **kw: Any) -> None:
    p.add_argument("--out", type=Path, required=required, help=help, **kw)


def device_arg(p: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    p.add_argument("--device", default=None, type=_device, help=help)


def _device(text: str) -> str:
    from sam2sod.runs.config_checks import DEVICE_PATTERN, DEVICES

    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use {DEVICES}")
    return text


def batch_size_arg(p: argparse.ArgumentParser, default: int | None, help: str) -> None:
    p.add_argument("--batch-size", type=int, default=default, metavar="N", help=f"images per forward ({help})")


def workers_arg(p: argparse.ArgumentParser) -> None:
    """--workers: the processes that score (decode and measure) prediction / mask pairs."""
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="scoring processes (default: all cores, fewer when memory is short)")


def decode_workers_arg(p: argparse.ArgumentParser, help: str) -> None:
    """--decode-workers: the workers that decode images ahead of the model / the checks (old name --workers)."""
    p.add_argument("--decode-workers", type=int, default=None, metavar="N", dest="decode_workers", help=help)
    alias(p, "--workers", "decode_workers", type=int)


def no_progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="allow an --out folder that holds other files (inputs are never written, even so)")


def recursive_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recursive", action="store_true",
                   help="include images in sub-folders (outputs mirror the folder tree)")


def config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file or bundled config name (see src/sam2sod/configs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value, e.g. --set optim.lr=1e-4 (repeatable)")


def datasets_file_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", type=Path, metavar="FILE",
                   help="YAML file mapping dataset names to folders, e.g. `ECSSD: /data/ECSSD` "
                        "(default: $SAM2SOD_DATASETS)")


def exclude_overlap_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exclude-overlap", action="store_true",
                   help="leave out test images that duplicate (exactly or nearly) a model's training images; "
                        "without it they are only reported")


def refine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--refine", type=int, default=0, metavar="K",
                   help="self-prompting: K extra passes with a box, points and the low-res mask taken from the "
                        "model's own previous prediction (no ground truth; default 0)")
    p.add_argument("--tta", default="none", choices=["none", "flip"],
                   help="test-time augmentation: flip = average with the mirrored image")
