"""The command registry and the argument helpers shared by the `sam2sod` subcommands (see `sam2sod.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

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
