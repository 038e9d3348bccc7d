"""Fine-tuning on video clips: what `train` does differently when the data is a video dataset.

`clip_task(cfg)` returns None for image data, else a `ClipTask` that the trainer's loop uses instead of its
image batch: the sequence split (`runs.splits.split_sequences`), the clip dataset (`data.video_clips`),
SAM2's memory modules (`models.memory.build_memory`, `model.args.train_memory`), the clip loss and the
per-sequence validation. Per clip: frame 1 is detected prompt-free, frames 2..T are tracked through memory
(`models.video_clips.forward_clip`), and the image trainer's loss (`train.batch.compute_loss`) is taken over
every annotated frame of the batch. Simulated prompts are not used on clips.

Validation (it picks `best.pt` by S, as for images) runs each validation sequence in consecutive chunks of
`data.clip_len` frames (frame 1 of a chunk detected, the rest propagated), scores every annotated frame at its
original size, averages per sequence and then over sequences (the VSOD convention).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from sam2sod.data.video_clips import ClipDataset, eval_chunks
from sam2sod.errors import SodError
from sam2sod.runs.config import TrainConfig
from sam2sod.runs.config_checks import check_clip_method
from sam2sod.runs.splits import augment_config, decode_files, is_video_data, split_sequences
from sam2sod.train.batch import compute_loss

log = logging.getLogger("sam2sod.train")

def decode_sequences(sequences: list, show: bool = True) -> None:
    """Decode every frame and mask of `sequences` once (threads), so a broken file stops the run before step 1."""
    from sam2sod.data.io import load_image, load_mask

    jobs = [(load_image, p) for v in sequences for _, p in v.frames]
    jobs += [(load_mask, p) for v in sequences for p in v.masks.values()]
    decode_files(jobs, "checking frames", show)


class ClipTask:
    """The clip-training parts of a run (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, show: bool = True) -> None:
        from sam2sod.data.transforms import build_transform

        check_clip_method(cfg.model.method)
        self.cfg = cfg
        splits = split_sequences(cfg.data)
        self.val = splits["val"]
        decode_sequences(splits["train"] + self.val, show)
        aug = augment_config(cfg)
        self.dataset = ClipDataset(splits["train"], cfg.data.clip_len, build_transform(aug, train=True),
                                   seed=cfg.seed, resize_mask=cfg.data.resize_mask)
        self.eval_transform = build_transform(aug, train=False)
        self.train_memory = str(cfg.model.args.get("train_memory", "false"))
        self.memory: Any = None
        log.info("clip training: %d train / %d val sequences, %d clips of %d frames per epoch, train_memory %s",
                 len(splits["train"]), len(self.val), len(self.dataset), cfg.data.clip_len, self.train_memory)

    def build_memory(self, model: torch.nn.Module, ckpt: dict[str, Any] | None) -> torch.nn.Module:
        """SAM2's memory for `model` (`train_memory`), restored from a resumed checkpoint's `memory` entry."""
        from sam2sod.models.memory import build_memory, load_memory_state

        try:
            if ckpt is not None and ckpt.get("memory") is not None:
                self.memory = load_memory_state(model, ckpt["memory"])
            else:
                self.memory = build_memory(model, train_memory=self.train_memory)
        except SodError as e:
            raise SodError(f"clip training: {e}") from None
        return self.memory

    def state(self) -> dict[str, Any]:
        """The checkpoint entry: {"memory": `memory_state(memory)`}."""
        from sam2sod.models.memory import memory_state

        return {"memory": memory_state(self.memory)}

    def loss(self, model: torch.nn.Module, batch: dict[str, Any], device: torch.device,
             amp_dtype: torch.dtype | None) -> tuple[torch.Tensor, dict[str, float]]:
        """The method's loss over the annotated frames of a batch of clips (frames (B,T,3,S,S))."""
        from sam2sod.models.video_clips import forward_clip

        frames, masks = batch["frames"].to(device), batch["masks"].to(device)
        annotated = batch["annotated"].to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = forward_clip(model, self.memory, frames)
        loss, parts = compute_loss({"logits": out["logits"][annotated]}, masks[annotated], self.cfg, model)
        return loss, {**parts, "annotated_frames": float(annotated.sum())}

    @torch.no_grad()
    def validate(self, model: torch.nn.Module, device: torch.device,
                 amp_dtype: torch.dtype | None) -> dict[str, float]:
        """Mean over validation sequences of the per-sequence mean S-measure and MAE of the annotated frames."""
        from sam2sod.infer.forward import logits_to_uint8
        from sam2sod.metrics import pair_scores
        from sam2sod.models.video_clips import forward_clip

        was = model.training, self.memory.training
        model.eval()
        self.memory.eval()
        per_seq = []
        for video in self.val:
            s_sum = mae_sum = 0.0
            n = 0
            for names, frames, size in eval_chunks(video, self.cfg.data.clip_len, self.eval_transform):
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = forward_clip(model, self.memory, frames.to(device))["logits"]
                for name, lg in zip(names, logits, strict=True):
                    if name in video.masks:
                        s = pair_scores(logits_to_uint8(lg, size), video.load_mask(name))
                        s_sum, mae_sum, n = s_sum + s.sm, mae_sum + s.mae, n + 1
            if n:
                per_seq.append((s_sum / n, mae_sum / n))
        model.train(was[0])
        self.memory.train(was[1])
        k = max(1, len(per_seq))
        return {"S": sum(s for s, _ in per_seq) / k, "MAE": sum(m for _, m in per_seq) / k if per_seq else 1.0}


def clip_task(cfg: TrainConfig, show: bool = True) -> ClipTask | None:
    """A `ClipTask` when the run's data is video (`data.video`, or auto-detected from `data.root`), else None."""
    return ClipTask(cfg, show) if is_video_data(cfg.data) else None
