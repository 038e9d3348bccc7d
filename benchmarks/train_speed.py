"""Training speed: `sam2sod train` vs a bare loop over the same batches, in one run; plus checkpoint costs.

Ours: `sam2sod.train.trainer.train` itself (adapter_cbam, hiera-tiny, 256 px, batch 4, simulated prompts,
real ECSSD images) for two epochs. The functions it calls are wrapped from outside (train() is not
changed) to split each step into data loading, prompt simulation, forward, loss, backward, gradient
clipping, optimizer and checkpoint writing; validation is timed too but left out of the step time, as the
bare loop has none. The bare loop, written here: the same model built the same way, the batches and
prompts our run used (recorded, already in memory), the same loss, AdamW, clipping and LR schedule.
It runs before and after ours and the mean is used. Then, per method: size and write time of a run
checkpoint on an official-format hiera-tiny base (only the tuned weights and the optimizer are stored).
Usage:
    .venv/bin/python benchmarks/train_speed.py [--data ../shared/data/ecssd-700] [--steps-per-epoch 16]
        [--skip 2] [--no-checkpoints]
Ratio = bare step time / our step time (our overhead <= 1.10x is target 0.91); last line `ratio=X.XX target=0.91`.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1 / 1.10
warnings.filterwarnings("ignore")
logging.getLogger("sam2sod").setLevel(logging.ERROR)


class Spy:
    """Wall time per section, and per-step end times (from a global optimizer hook)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.step_ends: list[float] = []
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.prompts: list = []
        self.first_loss: float | None = None
        self.loss_end = 0.0

    def wrap(self, fn, key: str, after=None):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            t1 = time.perf_counter()
            self.total[key] += t1 - t0
            if after is not None:
                after(out, t1)
            return out
        return timed


def run_ours(cfg, run_dir: Path, spy: Spy) -> None:
    """`train(cfg)` with its callees wrapped (restored afterwards)."""
    import sam2sod.train.trainer as tr

    saved = {k: getattr(tr, k) for k in ("simulate_batch_prompts", "compute_loss", "save_checkpoint",
                                         "validate_model", "DataLoader", "model_from_config")}
    clip = torch.nn.utils.clip_grad_norm_

    def record_prompts(out, _t):
        spy.prompts.append(out)

    def loss_done(out, t1):
        spy.loss_end = t1
        if spy.first_loss is None:
            spy.first_loss = float(out[0].detach())

    def clip_timed(*args, **kwargs):
        t0 = time.perf_counter()
        spy.total["backward"] += t0 - spy.loss_end
        out = clip(*args, **kwargs)
        spy.total["clip"] += time.perf_counter() - t0
        return out

    class TimedLoader(saved["DataLoader"]):
        def __iter__(self):
            t0 = time.perf_counter()
            it = super().__iter__()  # starts the worker processes
            spy.total["data loading"] += time.perf_counter() - t0
            while True:
                t0 = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    return
                spy.total["data loading"] += time.perf_counter() - t0
                spy.batches.append((batch["image"].clone(), batch["mask"].clone()))
                yield batch

    def model_timed(*args, **kwargs):
        model = saved["model_from_config"](*args, **kwargs)
        starts = []
        model.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
        model.register_forward_hook(lambda *_: spy.total.__setitem__(
            "forward", spy.total["forward"] + time.perf_counter() - starts.pop()))
        return model

    pre = register_optimizer_step_pre_hook(
        lambda *_: spy.total.__setitem__("optimizer", spy.total["optimizer"] - time.perf_counter()))
    post = register_optimizer_step_post_hook(
        lambda *_: (spy.total.__setitem__("optimizer", spy.total["optimizer"] + time.perf_counter()),
                    spy.step_ends.append(time.perf_counter())))
    tr.simulate_batch_prompts = spy.wrap(saved["simulate_batch_prompts"], "prompt simulation", record_prompts)
    tr.compute_loss = spy.wrap(saved["compute_loss"], "loss", loss_done)
    tr.save_checkpoint = spy.wrap(saved["save_checkpoint"], "checkpoint writing")
    tr.validate_model = spy.wrap(saved["validate_model"], "validation")
    tr.DataLoader = TimedLoader
    tr.model_from_config = model_timed
    torch.nn.utils.clip_grad_norm_ = clip_timed
    try:
        tr.train(cfg, run_dir)
    finally:
        pre.remove()
        post.remove()
        torch.nn.utils.clip_grad_norm_ = clip
        for k, v in saved.items():
            setattr(tr, k, v)


def run_bare(cfg, batches: list, prompts: list, skip: int) -> tuple[float, float]:
    """(mean seconds per step after `skip` warm-up steps, first loss) of a plain loop over in-memory batches."""
    from sam2sod.models.random_init import quiet_random_init
    from sam2sod.runs.checkpoints import model_from_config
    from sam2sod.runs.runtime import param_groups, seed_everything, warmup_cosine
    from sam2sod.train.batch import compute_loss

    o, m = cfg.optim, cfg.model
    seed_everything(cfg.seed)
    with quiet_random_init():
        model = model_from_config(m, "cpu", cfg.seed)
    model.train()
    optimizer = torch.optim.AdamW(param_groups(model, o.weight_decay), lr=o.lr)
    total = len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, o.warmup_steps,
                                                                                     o.min_lr_ratio))
    trainable = [p for p in model.parameters() if p.requires_grad]
    ends, first = [], None
    for (images, masks), p in zip(batches, prompts, strict=True):
        out = model(images, p, multimask=m.multimask)
        loss, _ = compute_loss(out, masks, cfg, model)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, o.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        first = float(loss.detach()) if first is None else first
        ends.append(time.perf_counter())
    return (ends[-1] - ends[skip - 1]) / (len(ends) - skip), first


def checkpoint_costs(tmp: Path) -> list[tuple[str, int, float, float, float]]:
    """(method, tuned params, checkpoint MB, write s, full-state MB) per method, on an official-format base."""
    from sam2sod.models import build_sam2_model, create_model, state_for_checkpoint
    from sam2sod.models.baselines import BASELINES
    from sam2sod.models.registry import all_methods
    from sam2sod.runs.checkpoints import save_checkpoint
    from sam2sod.runs.runtime import param_groups

    base = tmp / "base_tiny.pt"
    torch.save({"model": build_sam2_model("sam2.1", "tiny", 256, seed=0).state_dict()}, base)
    rows = []
    for method in sorted(all_methods()):
        if method in BASELINES:  # random-init backbone: every weight is trained and stored
            model = create_model(method, image_size=256)
        else:
            model = create_model(method, version="sam2.1", size="tiny", image_size=256, checkpoint=str(base))
        opt = torch.optim.AdamW(param_groups(model, 1e-4), lr=1e-4)
        for p in model.parameters():
            if p.requires_grad:
                p.grad = torch.zeros_like(p)
        opt.step()
        state = {"model": state_for_checkpoint(model), "optimizer": opt.state_dict()}
        path = tmp / f"ckpt_{method}.pt"
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            save_checkpoint(path, state)
            times.append(time.perf_counter() - t0)
        full = tmp / "full.pt"
        torch.save(model.state_dict(), full)
        tuned = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows.append((method, tuned, path.stat().st_size / 1e6, min(times), full.stat().st_size / 1e6))
        path.unlink()
        full.unlink()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ecssd-700")
    ap.add_argument("--steps-per-epoch", type=int, default=16)
    ap.add_argument("--skip", type=int, default=2, help="warm-up steps left out of both timings")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--no-checkpoints", action="store_true", help="skip the per-method checkpoint table")
    ap.add_argument("--data-workers", default="null", help="data.workers for our run (default null: automatic)")
    args = ap.parse_args()
    if not (args.data / "images").is_dir():
        print(f"error: {args.data}/images not found (pass --data)", file=sys.stderr)
        return 2
    from sam2sod.runs.config import load_config

    batch = 4
    cfg = load_config(None, overrides=[
        "model.method=adapter_cbam", "model.size=tiny", f"model.image_size={args.image_size}",
        f"data.root={args.data}", f"data.train_count={args.steps_per_epoch * batch}", "data.val_count=8",
        f"optim.batch_size={batch}", "optim.epochs=2", "optim.lr=1e-4", "optim.warmup_steps=4", "device=cpu",
        "data.multiscale=[]", f"data.workers={args.data_workers}"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"adapter_cbam hiera-tiny {args.image_size} px, batch {batch}, prompts on "
          f"(p_prompt_free {cfg.prompts.p_prompt_free}), {2 * args.steps_per_epoch} steps, data.workers "
          f"{cfg.data.workers} (null: automatic), data {args.data}")
    spy = Spy()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        t0 = time.perf_counter()
        run_ours(cfg, tmp / "run", spy)
        wall = time.perf_counter() - t0
        steps, skip = len(spy.step_ends), args.skip
        window = spy.step_ends[-1] - spy.step_ends[skip - 1]
        # validation (and the checkpoints after it) happen between two steps: take validation out
        t_ours = (window - spy.total["validation"]) / (steps - skip)
        bare = [run_bare(cfg, spy.batches, spy.prompts, skip) for _ in range(2)]
        t_bare = statistics.mean(b[0] for b in bare)
        print(f"\nsam2sod train: {steps} steps in {wall:.1f} s wall (set-up, validation included); "
              f"{t_ours:.3f} s/step over steps {skip + 1}..{steps} without validation")
        print(f"bare loop:     {t_bare:.3f} s/step (runs: {', '.join(f'{b[0]:.3f}' for b in bare)})")
        print(f"first-step loss: ours {spy.first_loss:.6f}, bare {bare[0][1]:.6f} (same model, batch, prompts)")
        print("\nshare of our training time (all steps, validation listed apart):")
        busy = sum(v for k, v in spy.total.items() if k != "validation")
        loop = spy.step_ends[-1] - (spy.step_ends[0] - (spy.step_ends[1] - spy.step_ends[0]))
        for k in ("data loading", "prompt simulation", "forward", "loss", "backward", "clip", "optimizer",
                  "checkpoint writing"):
            print(f"  {k:<20} {spy.total[k]:8.2f} s  {100 * spy.total[k] / busy:5.1f} %")
        print(f"  {'validation':<20} {spy.total['validation']:8.2f} s  (not in the step time)")
        print(f"  (sections sum {busy:.1f} s; loop about {loop:.1f} s)")
        if not args.no_checkpoints:
            print("\ncheckpoint per method (hiera-tiny on an official-format base, after one AdamW step):")
            print(f"  {'method':<14} {'tuned params':>13} {'run ckpt MB':>12} {'write s':>8} {'full state MB':>14}")
            for method, tuned, mb, sec, full in checkpoint_costs(tmp):
                print(f"  {method:<14} {tuned:>13,} {mb:>12.1f} {sec:>8.3f} {full:>14.1f}")
    ratio = t_bare / t_ours
    print(f"\noverhead of sam2sod train over the bare loop: {t_ours / t_bare:.3f}x (target <= 1.10x)")
    print(f"ratio={ratio:.2f} target={TARGET:.2f}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
