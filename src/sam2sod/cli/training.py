"""Subcommands that train or describe models: quickstart, train, info, ablate, methods."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from sam2sod.cli.args import (
    alias,
    command,
    config_args,
    device_arg,
    no_progress_arg,
    out_arg,
    overwrite_arg,
    workers_arg,
)
from sam2sod.errors import SodError

if TYPE_CHECKING:
    pass


def _quickstart_args(p: argparse.ArgumentParser) -> None:
    out_arg(p, "folder for the data, the run and the scores (default quickstart_out)", required=False,
            default=Path("quickstart_out"))
    workers_arg(p)
    p.add_argument("--n", type=int, default=120, help="synthetic pairs (default 120)")
    p.add_argument("--image-size", type=int, default=96, metavar="PX",
                   help="synthetic image side in pixels (default 96)")
    alias(p, "--size", "image_size", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override the bundled quickstart config")
    overwrite_arg(p)


@command("quickstart", "synthetic data -> train adapter+CBAM on CPU -> evaluate; no downloads")(_quickstart_args)
def _quickstart(args: argparse.Namespace) -> int:
    from sam2sod.apps.quickstart import run_quickstart

    return run_quickstart(args.out, workers=args.workers, n=args.n, size=args.image_size, overrides=args.overrides,
                          overwrite=args.overwrite)


def _train_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    out_arg(p, "run directory (checkpoints, metrics.csv, tb/, config.yaml)", required=False)
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR exactly, in RUN_DIR (no --out). --set may change only how "
                        "long and how it trains and logs: optim.epochs, optim.max_steps, optim.time_budget_min, "
                        "optim.checkpoint_every_steps, optim.max_bad_steps, device, val_batch_size, log_every, "
                        "data.workers; any other key needs --allow-config-change. Every change is recorded in "
                        "RUN_DIR/config_changes.txt")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: allow --set to change what is trained (data, model, loss, ...)")
    device_arg(p, "auto | cpu | cuda | cuda:N | mps (default: the config's `device`, auto unless set)")
    no_progress_arg(p)
    overwrite_arg(p)


def _worker_rank() -> bool:
    """A torchrun process other than rank 0 (it never writes the run folder)."""
    import os

    return int(os.environ.get("RANK", "0") or 0) > 0


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


@command("train", "fine-tune a model (config + overrides) into a run directory")(_train_args)
def _train(args: argparse.Namespace) -> int:
    from sam2sod.cli.args import hub_models
    from sam2sod.runs.config import config_inputs, load_config

    hub_models(args)  # model.init_from may be hf://user/repo[@revision]
    from sam2sod.train.stages import check_new_run_dir, run_training

    overrides = list(args.overrides) + ([f"device={args.device}"] if args.device else [])
    if args.allow_config_change and not args.resume:
        raise SodError("--allow-config-change only applies to --resume RUN_DIR")
    if args.resume:
        if args.config:
            raise SodError("--resume takes its config from the run directory; use --set to change values")
        if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
            raise SodError(f"--resume continues the run in {args.resume}, not in --out {args.out}: drop --out, or "
                           f"start a new run with --config {Path(args.resume) / 'config.yaml'} --out {args.out}")
        if Path(args.resume).is_dir() and not _worker_rank():  # one writer per run folder (sam2sod.lock)
            from sam2sod import lock

            lock.acquire(args.resume, "train", shown=args.resume)
        summary = run_training(None, args.resume, resume=True, overrides=overrides,
                               allow_config_change=args.allow_config_change, progress=not args.no_progress)
        if summary.get("complete"):
            print(f"{args.resume} is already complete: {summary['complete']} ({_steps(summary['step'])}, best val "
                  f"S {summary['best']['S']:.4f})")
            return 0
    else:
        from sam2sod.outputs import prepare_output_dir

        if args.out is None:
            raise SodError("train needs --out RUN_DIR (or --resume RUN_DIR)")
        check_new_run_dir(args.out)
        cfg = load_config(args.config, overrides, check_paths=True)
        if not _worker_rank():  # under torchrun rank 0 alone owns (and locks) the run folder
            prepare_output_dir(args.out, overwrite=args.overwrite, inputs=config_inputs(cfg), command="train")
        summary = run_training(cfg, args.out, progress=not args.no_progress)
    best = summary["best"]
    print(f"done: {_steps(summary['step'])}, best val S {best['S']:.4f} MAE {best['MAE']:.4f} "
          f"(epoch {best['epoch']}); run: {summary['run_dir']}")
    return 0


@command("info", "total and trainable parameters per module group for a config")(config_args)
def _info(args: argparse.Namespace) -> int:
    import warnings

    from sam2sod.models import RandomInitWarning, count_params
    from sam2sod.runs.checkpoints import model_from_config
    from sam2sod.runs.config import load_config

    cfg = load_config(args.config, args.overrides)
    m = cfg.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("default", RandomInitWarning)  # the one random-init line, as every command says it
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
    config_args(p)
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a grid axis, e.g. model.method=adapter_cbam,lora (repeatable with different keys: cartesian "
                        "product; every cell is checked before the first one trains)")
    out_arg(p, "one run dir per cell + ablation.md / ablation.csv")
    overwrite_arg(p)


@command("ablate", "train + score every cell of a config grid (resumable), write a table")(_ablate_args)
def _ablate(args: argparse.Namespace) -> int:
    from sam2sod.outputs import prepare_output_dir
    from sam2sod.runs.config import config_inputs
    from sam2sod.train.ablate import ablate, plan_cells

    cells = plan_cells(args.config, args.grid, args.overrides)  # every cell checked before anything is written
    inputs = list(dict.fromkeys(p for _, cfg in cells for p in config_inputs(cfg)))
    prepare_output_dir(args.out, overwrite=args.overwrite, inputs=inputs, command="ablate",
                       legacy_files=("ablation.csv",))  # a grid started before markers existed resumes
    ablate(args.config, args.grid, args.out, args.overrides)
    print(f"tables: {args.out / 'ablation.md'}, {args.out / 'ablation.csv'}")
    return 0


def _methods_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone-size", default="tiny", choices=["tiny", "small", "base_plus", "large"],
                   help="SAM2 backbone (hiera) size for the counts (default tiny)")
    alias(p, "--size", "backbone_size")
    p.add_argument("--version", default="sam2.1")
    p.add_argument("--image-size", type=int, default=352)
    p.add_argument("--no-counts", action="store_true", help="list names and descriptions only (fast)")


@command("methods", "list every method and baseline with its parameter counts")(_methods_args)
def _methods(args: argparse.Namespace) -> int:
    import logging
    import warnings

    logging.getLogger("sam2sod.models").setLevel(logging.ERROR)  # random-init notices: expected here

    print(f"{'method':<14}{'total':>10}{'trainable':>11}  {'training prompts':<17} description   (SAM2 "
          f"{args.version} hiera-{args.backbone_size}, {args.image_size}px; prompts: the paper's policy, "
          f"override with prompts.enabled)", flush=True)  # before torch is imported: the first output at once
    from sam2sod.models import count_params, create_model
    from sam2sod.models.registry import METHODS, all_methods, trains_with_prompts
    for name, description in all_methods().items():
        counts = "" if args.no_counts else None
        if counts is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kw = {"version": args.version, "size": args.backbone_size} if name in METHODS else {}
                total, trainable = count_params(create_model(name, image_size=args.image_size, **kw))["total"]
            counts = f"{total / 1e6:>9.2f}M{trainable / 1e6:>10.2f}M"
        policy = "simulated" if trains_with_prompts(name) else "none"
        print(f"{name:<14}{counts:>21}  {policy:<17} {description}")
    return 0
