"""The training loop, readable top to bottom: `train(cfg, run_dir)` or `train(None, run_dir, resume=True)`.

Per epoch: shuffled (distributed) batches -> simulated prompts -> loss -> accumulate -> clip -> AdamW step
-> warmup+cosine LR; then validation (S-measure, MAE on the val split, at original resolution),
`last.pt` / `best.pt` (atomic), `metrics.csv`, TensorBoard. Resuming restores model, optimizer, scheduler,
scaler, RNG states and the position inside the epoch, so 2 steps + resume + 2 steps == 4 steps exactly.
"""

from __future__ import annotations

import csv
import io
import logging
import signal
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from sam2sod.atomic import atomic_write_text
from sam2sod.errors import SodError
from sam2sod.infer.inference import predict_items
from sam2sod.models.random_init import quiet_random_init
from sam2sod.runs.checkpoints import (
    model_from_config,
    record_config_changes,
    resume_checkpoint,
    resumed_config,
    run_complete,
    save_checkpoint,
)
from sam2sod.runs.config import TrainConfig, dump_yaml, to_dict
from sam2sod.runs.init_from import load_init_weights
from sam2sod.runs.runtime import (
    auto_workers,
    autocast_dtype,
    init_distributed,
    out_of_memory_hint,
    rng_state,
    seed_everything,
    select_device,
    set_rng_state,
    warmup_cosine,
)
from sam2sod.runs.splits import build_train_dataset, decode_check, split_train_val
from sam2sod.train.batch import (  # noqa: F401  (compute_loss and simulate_batch_prompts are re-exported)
    compute_loss,
    multiscale_sizes,
    prompts_enabled,
    rescale_batch,
    simulate_batch_prompts,
)
from sam2sod.train.recipes import apply_grad_checkpoint, ema_state, make_ema, make_optimizer, resume_weights, validating
from sam2sod.train.video import clip_task

log = logging.getLogger("sam2sod.train")


class SkipSampler(torch.utils.data.Sampler):
    """A `DistributedSampler` that can skip the first `skip` indices of the epoch (exact mid-epoch resume)."""

    def __init__(self, base: DistributedSampler):
        self.base, self.skip = base, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.base.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(list(self.base)[self.skip:])

    def __len__(self) -> int:
        return len(self.base) - self.skip


def validate_model(model: torch.nn.Module, val_items: list, cfg: TrainConfig, device: torch.device,
                   amp_dtype: torch.dtype | None) -> dict[str, float]:
    """Prompt-free S-measure and MAE on the validation pairs, at each image's original size."""
    from sam2sod.data.io import load_mask
    from sam2sod.metrics import pair_scores

    s_sum = mae_sum = 0.0
    paths = {name: mask for name, _, mask in val_items}
    items = [(n, img, None) for n, img, _ in val_items]
    for name, pred in predict_items(model, items, cfg.model.image_size, device, cfg.val_batch_size,
                                    autocast_dtype=amp_dtype, multimask=cfg.model.multimask):
        s = pair_scores(pred, load_mask(paths[name]))
        s_sum, mae_sum = s_sum + s.sm, mae_sum + s.mae
    n = max(1, len(val_items))
    return {"S": s_sum / n, "MAE": mae_sum / n}


def _csv_append(path: Path, row: dict[str, Any]) -> None:
    """Rewrite metrics.csv atomically with one more row (files stay small: one row per epoch)."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(row))
    if not old:
        w.writeheader()
    w.writerow(row)
    atomic_write_text(path, old + buf.getvalue())


def _csv_cut(path: Path, step: int) -> None:
    """Drop metrics.csv rows after `step` (a resumed run rewrites them; no duplicate epoch rows)."""
    if not path.exists():
        return
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    keep = [r for r in rows if int(r["step"]) <= step]
    if len(keep) < len(rows):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
        atomic_write_text(path, buf.getvalue())


class StopSignal:
    """SIGINT / SIGTERM set `received`; the loop finishes its step, saves last.pt and stops (main thread only)."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        log.warning("%s received: finishing this step, then saving last.pt", self.received)

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _stopped(stop: StopSignal, run_dir: Path, step: int) -> SodError:
    return SodError(f"stopped by {stop.received} at step {step}: {run_dir / 'last.pt'} saved; "
                    f"continue with: sam2sod train --resume {run_dir}")


def _complete(ckpt: dict[str, Any], run_dir: Path, reason: str) -> dict[str, Any]:
    """The summary of a resumed run that has nothing left to train."""
    return {"step": ckpt["step"], "best": ckpt["best"], "skipped_steps": ckpt["skipped_steps"],
            "pretrained": ckpt.get("pretrained", True), "run_dir": str(run_dir),
            "train_time_s": ckpt.get("train_time_s", 0.0), "complete": reason}


def train(cfg: TrainConfig | None, run_dir: str | Path, resume: bool = False,
          overrides: list[str] | None = None, allow_config_change: bool = False,
          progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a run in `run_dir`; returns a summary dict (best S, final step, ...).

    Resuming: `overrides` may change `checkpoint.RESUME_KEYS` (others need `allow_config_change`; every change
    is recorded in `run_dir/config_changes.txt`); a run with nothing left to train returns at once with
    `summary["complete"]` saying why.
    """
    from sam2sod.models import load_tuned_state

    run_dir = Path(run_dir)
    ckpt, changes = None, []
    if resume:
        ckpt = resume_checkpoint(run_dir)
        cfg, changes = resumed_config(ckpt["config"], overrides, run_dir, allow_config_change)
        reason = run_complete(ckpt, cfg)
        if reason is not None:
            return _complete(ckpt, run_dir, reason)
    assert cfg is not None
    distinfo = init_distributed(cfg.device)
    device = select_device(cfg.device)
    amp_dtype = autocast_dtype(device, cfg.optim.amp)
    seed_everything(cfg.seed + distinfo.rank)

    # ---- data (every train and val image decoded once up front: a broken file stops us before step 1)
    clips = clip_task(cfg, show=distinfo.is_main and progress)  # video data: clips (sam2sod.train.video)
    if clips is not None:
        if distinfo.enabled:
            raise SodError("clip training (video data) runs in one process; start it without torchrun")
        train_ds, val_pairs = clips.dataset, clips.val
    else:
        train_pairs, val_pairs = split_train_val(cfg.data)
        decode_check(train_pairs, val_pairs, show=distinfo.is_main and progress)
        train_ds = build_train_dataset(train_pairs, cfg)
    o = cfg.optim
    sampler = SkipSampler(DistributedSampler(train_ds, num_replicas=distinfo.world, rank=distinfo.rank,
                                             shuffle=True, seed=cfg.seed, drop_last=True))
    workers = auto_workers(device) if cfg.data.workers is None else cfg.data.workers
    loader = DataLoader(train_ds, batch_size=o.batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed))
    micro_per_epoch = len(sampler.base) // o.batch_size
    steps_per_epoch = micro_per_epoch // o.accum_steps
    if steps_per_epoch < 1:
        raise SodError(f"{len(train_ds)} training images are too few for batch_size {o.batch_size} x accum_steps "
                       f"{o.accum_steps} x {distinfo.world} processes")
    total_steps = min(steps_per_epoch * o.epochs, o.max_steps or steps_per_epoch * o.epochs)  # LR schedule length

    # ---- model (optionally started from another run's weights), optimizer, schedule
    m = cfg.model
    with quiet_random_init():
        model = model_from_config(m, device, cfg.seed)
        if m.init_from and ckpt is None:
            load_init_weights(model, m.init_from)
    pretrained = bool(model.model_is_pretrained)
    apply_grad_checkpoint(model, o)
    trained = model if clips is None else torch.nn.ModuleList([model, clips.build_memory(model, ckpt)])
    optimizer = make_optimizer(model, trained, o)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, total_steps, o.warmup_steps, o.min_lr_ratio))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    step, best, bad_in_row, skipped, time0 = 0, {"S": -1.0, "MAE": 1.0, "epoch": -1}, 0, 0, 0.0
    resumed_loss = (0.0, 0)  # (sum, count) of the train losses of the resumed epoch's steps before the resume
    if ckpt is not None:
        load_tuned_state(model, resume_weights(ckpt))
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        step, best, skipped, time0 = ckpt["step"], ckpt["best"], ckpt["skipped_steps"], ckpt["train_time_s"]
        resumed_loss = (ckpt.get("loss_sum", 0.0), ckpt.get("loss_n", 0))
        set_rng_state(ckpt["rng"])
    ema = make_ema(model, o, ckpt)
    ddp_model = model
    if distinfo.enabled:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)

    writer = None
    if distinfo.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        from sam2sod.atomic import remove_stale_tmp

        remove_stale_tmp(run_dir)
        _csv_cut(run_dir / "metrics.csv", step)  # rows a resumed run will write again
        atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
        record_config_changes(run_dir, step, changes)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"), purge_step=step + 1 if ckpt is not None else None)
        if not pretrained:
            log.warning("RANDOM INIT: no pretrained weights loaded (model.checkpoint for SAM2 methods, "
                        "model.backbone_weights for baselines); results are not those of a pretrained model")
        log.info("%s: %s", m.method, "trains with simulated prompts" if prompts_enabled(cfg) else "trains prompt-free")

    def state(epoch: int, step_in_epoch: int) -> dict[str, Any]:
        return {**ema_state(model, ema), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "config": to_dict(cfg),
                "step": step, "epoch": epoch, "step_in_epoch": step_in_epoch, "best": best,
                "skipped_steps": skipped, "rng": rng_state(), "pretrained": pretrained, "train_time_s": elapsed(),
                "loss_sum": loss_sum if step_in_epoch else 0.0, "loss_n": loss_n if step_in_epoch else 0,
                **(clips.state() if clips is not None else {})}

    # ---- loop
    start_epoch, skip_steps = divmod(step, steps_per_epoch)
    stop_at = total_steps
    t_start = time.time()

    def elapsed() -> float:
        return time0 + time.time() - t_start

    def out_of_time() -> bool:
        return o.time_budget_min is not None and elapsed() >= 60 * o.time_budget_min

    sizes = multiscale_sizes(model, cfg)
    loss_sum, loss_n = 0.0, 0
    oom = out_of_memory_hint(lambda: f"training step {step + 1} at model.image_size {m.image_size}, "
                                     f"optim.batch_size {o.batch_size} on {device}")
    with StopSignal() as stop, oom:
        for epoch in range(start_epoch, o.epochs):
            if step >= stop_at or out_of_time():
                break
            sampler.set_epoch(epoch, skip=skip_steps * o.accum_steps * o.batch_size if epoch == start_epoch else 0)
            train_ds.set_epoch(epoch)
            trained.train()
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{o.epochs}", disable=not (distinfo.is_main and progress),
                       dynamic_ncols=True)
            loss_sum, loss_n = resumed_loss if epoch == start_epoch and skip_steps else (0.0, 0)
            window_bad = False
            for micro, batch in enumerate(bar):
                if clips is not None:
                    loss, parts = clips.loss(model, batch, device, amp_dtype)
                else:
                    images, masks = batch["image"].to(device), batch["mask"].to(device)
                    if sizes:
                        images, masks = rescale_batch(images, masks, sizes, cfg.seed * 7919 + step)
                    prompts = simulate_batch_prompts(masks, cfg, (cfg.seed * 1_000_003 + step) * 97
                                                     + micro % o.accum_steps + distinfo.rank * 7919, device)
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        out = ddp_model(images, prompts, multimask=m.multimask)
                    loss, parts = compute_loss(out, masks, cfg, model)
                if not torch.isfinite(loss):
                    window_bad = True
                else:
                    scaler.scale(loss / o.accum_steps).backward()
                    loss_sum, loss_n = loss_sum + float(loss.detach()), loss_n + 1
                if (micro + 1) % o.accum_steps:
                    continue
                # ---- optimizer step (or skip it when the window had a non-finite loss)
                if window_bad:
                    optimizer.zero_grad(set_to_none=True)
                    skipped, bad_in_row = skipped + 1, bad_in_row + 1
                    log.warning("non-finite loss at step %d: step skipped (%d in a row)", step, bad_in_row)
                    if bad_in_row >= o.max_bad_steps:
                        raise SodError(f"training stopped at step {step}: {bad_in_row} non-finite losses in a row "
                                       f"(try a lower optim.lr or optim.amp=off); the last good checkpoint "
                                       f"{run_dir / 'last.pt'} is intact")
                else:
                    bad_in_row = 0
                    scaler.unscale_(optimizer)
                    if o.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_([p for p in trained.parameters() if p.requires_grad],
                                                       o.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    if ema is not None:
                        ema.update(model)
                scheduler.step()
                if o.time_budget_min is not None:  # the schedule follows the fraction of the time budget used
                    frac = warmup_cosine(int(1000 * elapsed() / (60 * o.time_budget_min)), 1000,
                                         min(1000, 1000 * o.warmup_steps // max(1, total_steps)), o.min_lr_ratio)
                    for g in optimizer.param_groups:
                        g["lr"] = g["initial_lr"] * frac
                step, window_bad = step + 1, False
                lr = optimizer.param_groups[0]["lr"]
                if distinfo.is_main:
                    bar.set_postfix(loss=f"{loss_sum / max(1, loss_n):.4f}", lr=f"{lr:.2e}")
                    if step % cfg.log_every == 0:
                        writer.add_scalar("train/loss", loss_sum / max(1, loss_n), step)
                        writer.add_scalar("train/lr", lr, step)
                        for k, v in parts.items():
                            writer.add_scalar(f"train/{k}", v, step)
                # ---- mid-epoch checkpoint: every N steps, and on SIGINT / SIGTERM before stopping
                periodic = o.checkpoint_every_steps and step % o.checkpoint_every_steps == 0 and step < stop_at
                if distinfo.is_main and (stop.received or periodic) and step % steps_per_epoch:
                    save_checkpoint(run_dir / "last.pt", state(epoch, step % steps_per_epoch))
                if stop.received and step % steps_per_epoch:
                    raise _stopped(stop, run_dir, step)
                if step >= stop_at or out_of_time() or stop.received:  # at an epoch end: validate + save first
                    break
            bar.close()
            epoch_done = step % steps_per_epoch == 0
            # ---- validation + checkpoints (rank 0), then everyone waits
            if distinfo.is_main:
                with validating(model, ema):
                    val = ({"S": 0.0, "MAE": 1.0} if not val_pairs else clips.validate(model, device, amp_dtype)
                           if clips is not None else validate_model(model, val_pairs, cfg, device, amp_dtype))
                row = {"epoch": epoch + 1, "step": step, "train_loss": round(loss_sum / max(1, loss_n), 6),
                       "val_S": round(val["S"], 6), "val_MAE": round(val["MAE"], 6),
                       "lr": optimizer.param_groups[0]["lr"], "skipped_steps": skipped,
                       "time_s": round(elapsed(), 1)}
                _csv_append(run_dir / "metrics.csv", row)
                writer.add_scalar("val/S", val["S"], step)
                writer.add_scalar("val/MAE", val["MAE"], step)
                if val["S"] > best["S"]:
                    best = {"S": val["S"], "MAE": val["MAE"], "epoch": epoch + 1, "step": step}
                    save_checkpoint(run_dir / "best.pt", state(epoch + int(epoch_done), 0))
                save_checkpoint(run_dir / "last.pt", state(epoch + int(epoch_done), 0))
                log.info("epoch %d step %d: loss %.4f val S %.4f MAE %.4f", epoch + 1, step, row["train_loss"],
                         val["S"], val["MAE"])
            if distinfo.enabled:
                dist.barrier()
            if stop.received:
                raise _stopped(stop, run_dir, step)
    if writer is not None:
        writer.close()
    return {"step": step, "best": best, "skipped_steps": skipped, "pretrained": pretrained,
            "run_dir": str(run_dir), "train_time_s": elapsed()}
