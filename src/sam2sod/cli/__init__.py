"""The `sam2sod` command line. Each subcommand is a thin layer over the Python API.

User errors (`SodError`) print one readable line and exit with code 2, without a traceback. `predict`
exits with code 3 when it skipped unreadable images. Every command that writes a folder first runs
`sam2sod.outputs.prepare_output_dir` on it (new / empty / its own folder, or `--overwrite`; never an input),
which also locks it; the locks are released when the command ends, and a folder the command created is
removed again when the command fails before writing anything into it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sam2sod.cli import data as _data_commands  # noqa: F401  (registers score, benchmark, ...)
from sam2sod.cli import training as _training_commands  # noqa: F401  (train, ablate, ...)
from sam2sod.cli import use as _use_commands  # noqa: F401  (evaluate, predict, export, ...)
from sam2sod.cli.args import COMMANDS, EXIT_SKIPPED
from sam2sod.cli.early import check_counts, check_model_early
from sam2sod.errors import SodError

__all__ = ["COMMANDS", "EXIT_SKIPPED", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from sam2sod.version import __version__

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
    import logging

    from sam2sod.outputs import output_scope

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _one_line_warnings()
    with output_scope() as scope:  # locks released at the end; a failed command's empty new folders removed
        try:
            check_counts(args)  # plain values first, then the model path, both before torch is imported
            check_model_early(getattr(args, "checkpoint", None))
            code = int(args._run(args) or 0)
        except SodError as e:
            _close_progress_bars()
            print(f"error: {e}", file=sys.stderr)
            code = 2
        except KeyboardInterrupt:
            _close_progress_bars()
            print("interrupted", file=sys.stderr)
            code = 130
        scope.failed = code != 0
    return code


def _one_line_warnings() -> None:
    """Print sam2sod's own warnings (e.g. random init) as one `warning: ...` line, without a source line."""
    import warnings

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 (warnings' signature)
        if not category.__module__.startswith("sam2sod"):
            return default(message, category, filename, lineno, file, line)
        _close_progress_bars()
        print(f"warning: {message}", file=file or sys.stderr, flush=True)
        return None

    warnings.showwarning = show


def _close_progress_bars() -> None:
    """Close open tqdm bars so a message starts on its own line, not after a half-drawn bar."""
    tqdm_mod = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm_mod, "tqdm", None), "_instances", ()) or ()):
        try:
            bar.close()
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main())
