"""The `sam2sod` command line. Each subcommand is a thin layer over the Python API.

User errors (`SodError`) print one readable line and exit with code 2, without a traceback. `predict`
exits with code 3 when it skipped unreadable images. Every command that writes a folder first runs
`sam2sod.outputs.prepare_output_dir` on it (new / empty / its own folder, or `--overwrite`; never an input).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sam2sod.errors import SodError

if TYPE_CHECKING:
    from sam2sod.engine.config import TrainConfig

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


def _overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="allow an --out folder that holds other files (inputs are never written, even so)")


def _recursive_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recursive", action="store_true",
                   help="include images in sub-folders (outputs mirror the folder tree)")


def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", action="append", required=True, metavar="[NAME=]DIR",
                   help="folder of saliency maps; repeat as NAME=DIR to compare several methods")
    p.add_argument("--gt", required=True, type=Path, help="folder of ground-truth masks")
    p.add_argument("--out", type=Path, help="write metrics.json, per_image.csv, curves.csv and plots here")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _overwrite_arg(p)
    _recursive_arg(p)


@command("score", "score saliency maps against ground-truth masks (PySODMetrics-exact)")(_score_args)
def _score(args: argparse.Namespace) -> int:
    from sam2sod.engine.score import check_score_inputs, format_table, parse_pred_args, score
    from sam2sod.outputs import prepare_output_dir

    if args.workers is not None and args.workers < 1:
        raise SodError(f"--workers must be >= 1, got {args.workers}")
    preds = parse_pred_args(args.pred)
    check_score_inputs(preds, args.gt, args.recursive)
    if args.out:
        prepare_output_dir(args.out, overwrite=args.overwrite, inputs=[*preds.values(), args.gt], command="score")
    results = score(preds, args.gt, args.out, args.workers, not args.no_progress, recursive=args.recursive,
                    atomic=True)
    print(format_table(results))
    if args.out:
        print(f"\nwrote metrics.json, per_image.csv, curves.csv, pr_curve.png, f_curve.png to {args.out}")
    return 0


def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output folder (gets images/ and masks/)")
    p.add_argument("--n", type=int, default=60, help="number of image/mask pairs")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    _overwrite_arg(p)


@command("make-synthetic", "write a deterministic synthetic SOD dataset")(_synth_args)
def _make_synthetic(args: argparse.Namespace) -> int:
    from sam2sod.data.synthetic import make_synthetic, remove_stale_pairs
    from sam2sod.outputs import prepare_output_dir

    if args.n < 1 or args.size < 16 or args.seed < 0:
        raise SodError(f"need --n >= 1, --size >= 16 and --seed >= 0, got --n {args.n} --size {args.size} "
                       f"--seed {args.seed}")
    prepare_output_dir(args.out, overwrite=args.overwrite, inputs=[], command="make-synthetic",
                       subdirs=("images", "masks"))
    names = make_synthetic(args.out, n=args.n, size=args.size, seed=args.seed)
    stale = remove_stale_pairs(args.out, names)
    print(f"wrote {len(names)} image/mask pairs to {args.out}/images and {args.out}/masks"
          + (f" (removed {stale} stale files of an earlier, larger run)" if stale else ""))
    return 0


def _quickstart_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("quickstart_out"))
    p.add_argument("--workers", type=int, default=None, help="scoring processes")
    p.add_argument("--n", type=int, default=120, help="synthetic pairs")
    p.add_argument("--size", type=int, default=96, help="synthetic image side")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override the bundled quickstart config")
    _overwrite_arg(p)


@command("quickstart", "synthetic data -> train adapter+CBAM on CPU -> evaluate; no downloads")(_quickstart_args)
def _quickstart(args: argparse.Namespace) -> int:
    from sam2sod.engine.quickstart import run_quickstart

    return run_quickstart(args.out, workers=args.workers, n=args.n, size=args.size, overrides=args.overrides,
                          overwrite=args.overwrite)


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file or bundled config name (see src/sam2sod/configs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config value, e.g. --set optim.lr=1e-4 (repeatable)")


def _train_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--out", type=Path, help="run directory (checkpoints, metrics.csv, tb/, config.yaml)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    p.add_argument("--device", help="cuda | cuda:N | mps | cpu (default: config, auto)")
    _overwrite_arg(p)


def _config_inputs(cfg: TrainConfig) -> list[Path]:
    """The data folders a config reads (protected from being written)."""
    data = cfg.data
    root = Path(data.root) if getattr(data, "root", None) else None
    found = [root] if root else []
    for key in ("images", "masks", "val_root", "test_root"):
        value = getattr(data, key, None)
        if value:
            p = Path(value)
            found.append(p if p.is_absolute() or root is None or key.endswith("root") else root / p)
    return found


def _check_new_run_dir(out: Path) -> None:
    """A new run never starts in a folder holding a run (resume it) or an old metrics.csv (no mixed history)."""
    from sam2sod.engine.stages import has_run

    if (out / "last.pt").exists() or has_run(out):
        what = "last.pt" if (out / "last.pt").exists() else "a multi-stage run"
        raise SodError(f"{out} already holds a run ({what}); use --resume {out} or another --out")
    if (out / "metrics.csv").exists():
        raise SodError(f"{out} holds metrics.csv of an earlier run but no last.pt to resume; a new run would "
                       f"append to that history: delete {out / 'metrics.csv'} or choose another --out")


@command("train", "fine-tune a model (config + overrides) into a run directory")(_train_args)
def _train(args: argparse.Namespace) -> int:
    from sam2sod.engine.config import load_config
    from sam2sod.engine.stages import run_training

    overrides = list(args.overrides) + ([f"device={args.device}"] if args.device else [])
    if args.resume:
        if args.config:
            raise SodError("--resume takes its config from the run directory; use --set to change values")
        summary = run_training(None, args.resume, resume=True, overrides=overrides)
    else:
        from sam2sod.outputs import prepare_output_dir

        if args.out is None:
            raise SodError("train needs --out RUN_DIR (or --resume RUN_DIR)")
        _check_new_run_dir(args.out)
        cfg = load_config(args.config, overrides, check_paths=True)
        prepare_output_dir(args.out, overwrite=args.overwrite, inputs=_config_inputs(cfg), command="train")
        summary = run_training(cfg, args.out)
    best = summary["best"]
    print(f"done: {summary['step']} steps, best val S {best['S']:.4f} MAE {best['MAE']:.4f} "
          f"(epoch {best['epoch']}); run: {summary['run_dir']}")
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="best.pt / last.pt, or a run directory")
    p.add_argument("--data", action="append", required=True, help="dataset root (repeatable)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prompt", default="none", choices=["none", "oracle-box", "oracle-points", "oracle-mask"],
                   help="prompt-free by default; oracle-* use the ground truth (labelled upper bound)")
    p.add_argument("--base-checkpoint", help="official SAM2 weights, if not at the path stored in the run")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=None, help="scoring processes (default: all cores)")
    p.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                   help="score only this part of each root, split by name as the run's config splits its data "
                        "(e.g. test: the held-out names after train_count + val_count)")
    _overwrite_arg(p)
    _recursive_arg(p)


@command("evaluate", "predict datasets with a checkpoint and score them")(_eval_args)
def _evaluate(args: argparse.Namespace) -> int:
    from sam2sod.engine.evaluate import evaluate

    evaluate(args.checkpoint, args.data, args.out, args.prompt, args.device, args.batch_size, args.workers,
             args.base_checkpoint, recursive=args.recursive, overwrite=args.overwrite, split=args.split)
    print(f"\nresults: {args.out}")
    return 0


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="best.pt / last.pt, or a run directory")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overlay", action="store_true", help="also write OUT/overlay/NAME.jpg")
    p.add_argument("--base-checkpoint", help="official SAM2 weights, if not at the path stored in the run")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image (default: skip it)")
    _overwrite_arg(p)
    _recursive_arg(p)


@command("predict", "write saliency maps (8-bit PNG, original size) for images")(_predict_args)
def _predict(args: argparse.Namespace) -> int:
    from sam2sod.engine.evaluate import predict_report

    report = predict_report(args.checkpoint, args.input, args.out, args.overlay, args.device, args.batch_size,
                            args.base_checkpoint, strict=args.strict, recursive=args.recursive,
                            overwrite=args.overwrite)
    print(f"wrote {len(report.written)} saliency maps to {args.out}")
    if report.skipped:
        print(f"error: skipped {len(report.skipped)} of {report.total} images that could not be read (listed "
              "above); the others were written. Use --strict to stop at the first one.", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


@command("info", "total and trainable parameters per module group for a config")(_config_args)
def _info(args: argparse.Namespace) -> int:
    import warnings

    from sam2sod.engine.checkpoint import model_from_config
    from sam2sod.engine.config import load_config
    from sam2sod.models import count_params

    cfg = load_config(args.config, args.overrides)
    m = cfg.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = model_from_config(m, "cpu", cfg.seed)
    groups = count_params(model)
    total, trainable = groups.pop("total")
    print(f"{m.method} on {m.version} hiera-{m.size} at {m.image_size}px")
    print(f"{'group':<28}{'total':>14}{'trainable':>14}")
    for name, (g_total, g_trainable) in groups.items():
        print(f"{name:<28}{g_total:>14,}{g_trainable:>14,}")
    print(f"{'all':<28}{total:>14,}{trainable:>14,}  ({100 * trainable / max(1, total):.2f}% trainable)")
    return 0


def _ablate_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a grid axis, e.g. model.method=adapter_cbam,lora (repeatable: cartesian product)")
    p.add_argument("--out", type=Path, required=True, help="one run dir per cell + ablation.md / ablation.csv")
    _overwrite_arg(p)


@command("ablate", "train + score every cell of a config grid (resumable), write a table")(_ablate_args)
def _ablate(args: argparse.Namespace) -> int:
    from sam2sod.engine.ablate import ablate
    from sam2sod.engine.config import load_config
    from sam2sod.outputs import prepare_output_dir

    try:
        inputs = _config_inputs(load_config(args.config, args.overrides))
    except SodError:  # the grid may fill in what the base config lacks; ablate reports real problems
        inputs = []
    prepare_output_dir(args.out, overwrite=args.overwrite, inputs=inputs, command="ablate",
                       legacy_files=("ablation.csv",))  # a grid started before markers existed resumes
    ablate(args.config, args.grid, args.out, args.overrides)
    print(f"tables: {args.out / 'ablation.md'}, {args.out / 'ablation.csv'}")
    return 0


def _methods_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="tiny", help="SAM2 backbone size for the counts (tiny, small, base_plus, large)")
    p.add_argument("--version", default="sam2.1")
    p.add_argument("--image-size", type=int, default=352)
    p.add_argument("--no-counts", action="store_true", help="list names and descriptions only (fast)")


@command("methods", "list every method and baseline with its parameter counts")(_methods_args)
def _methods(args: argparse.Namespace) -> int:
    import logging
    import warnings

    logging.getLogger("sam2sod.models").setLevel(logging.ERROR)  # random-init notices: expected here

    from sam2sod.models import count_params, create_model
    from sam2sod.models.registry import METHODS, all_methods, trains_with_prompts

    print(f"{'method':<14}{'total':>10}{'trainable':>11}  {'training prompts':<17} description   (SAM2 "
          f"{args.version} hiera-{args.size}, {args.image_size}px; prompts: the paper's policy, "
          f"override with prompts.enabled)")
    for name, description in all_methods().items():
        counts = "" if args.no_counts else None
        if counts is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kw = {"version": args.version, "size": args.size} if name in METHODS else {}
                total, trainable = count_params(create_model(name, image_size=args.image_size, **kw))["total"]
            counts = f"{total / 1e6:>9.2f}M{trainable / 1e6:>10.2f}M"
        policy = "simulated" if trains_with_prompts(name) else "none"
        print(f"{name:<14}{counts:>21}  {policy:<17} {description}")
    return 0


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
    import logging

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except SodError as e:
        _close_progress_bars()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print("interrupted", file=sys.stderr)
        return 130


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
