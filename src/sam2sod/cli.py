"""The `sam2sod` command line. Each subcommand is a thin layer over the Python API.

User errors (`SodError`) print one readable line and exit with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sam2sod.errors import SodError

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):
    """Register `add_args` + `run` pair under `name`."""

    def wrap(add_args: Callable[[argparse.ArgumentParser], None]):
        def register(run: Callable[[argparse.Namespace], int]):
            COMMANDS[name] = (help, add_args, run)
            return run

        return register

    return wrap


def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", action="append", required=True, metavar="[NAME=]DIR",
                   help="folder of saliency maps; repeat as NAME=DIR to compare several methods")
    p.add_argument("--gt", required=True, type=Path, help="folder of ground-truth masks")
    p.add_argument("--out", type=Path, help="write metrics.json, per_image.csv, curves.csv and plots here")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


@command("score", "score saliency maps against ground-truth masks (PySODMetrics-exact)")(_score_args)
def _score(args: argparse.Namespace) -> int:
    from sam2sod.engine.score import format_table, parse_pred_args, score

    if args.workers is not None and args.workers < 1:
        raise SodError(f"--workers must be >= 1, got {args.workers}")
    results = score(parse_pred_args(args.pred), args.gt, args.out, args.workers, not args.no_progress)
    print(format_table(results))
    if args.out:
        print(f"\nwrote metrics.json, per_image.csv, curves.csv, pr_curve.png, f_curve.png to {args.out}")
    return 0


def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output folder (gets images/ and masks/)")
    p.add_argument("--n", type=int, default=60, help="number of image/mask pairs")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)


@command("make-synthetic", "write a deterministic synthetic SOD dataset")(_synth_args)
def _make_synthetic(args: argparse.Namespace) -> int:
    from sam2sod.data.synthetic import make_synthetic

    if args.n < 1 or args.size < 16:
        raise SodError(f"need --n >= 1 and --size >= 16, got --n {args.n} --size {args.size}")
    names = make_synthetic(args.out, n=args.n, size=args.size, seed=args.seed)
    print(f"wrote {len(names)} image/mask pairs to {args.out}/images and {args.out}/masks")
    return 0


def _quickstart_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("quickstart_out"))
    p.add_argument("--workers", type=int, default=None)


@command("quickstart", "synthetic data -> predictions -> scores, no downloads")(_quickstart_args)
def _quickstart(args: argparse.Namespace) -> int:
    from sam2sod.engine.quickstart import run_quickstart

    return run_quickstart(args.out, workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    from sam2sod import __version__

    parser = argparse.ArgumentParser(prog="sam2sod", description="SAM2 for salient object detection")
    parser.add_argument("--version", action="version", version=f"sam2sod {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SodError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
