"""`model.init_from`: start a new run from another run's weights (a stage of a multi-stage recipe, or
fine-tuning a finished model on new data): whatever `sam2sod.load_model` opens (a run folder, its best.pt /
last.pt, a `sam2sod export` folder, or an export on the Hugging Face hub as ``hf://user/repo[@revision]``,
downloaded into huggingface_hub's cache; LoRA in an export is already folded into the base weights, so a new
LoRA run starts from the merged ones).

Every tensor of the source model whose name and shape exist in the new model is copied; tensors only
the new model has (modules a later stage adds) keep their initialisation. Frozen tensors that the copy
changed (e.g. a mask decoder retrained by stage 1 and frozen in stage 2) are recorded in
`model.extra_state_keys`, so the new run's checkpoints store them beside the trainable ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from sam2sod.errors import SodError

log = logging.getLogger("sam2sod.train")


def load_init_weights(model: torch.nn.Module, source: str | Path) -> dict[str, Any]:
    """Copy the weights of run / checkpoint / export folder `source` into `model` by name;
    -> {"copied", "new", "skipped", "source"}."""
    src, where = _source_state(source)
    dst = model.state_dict()
    copied = [k for k, v in src.items() if k in dst and dst[k].shape == v.shape]
    skipped = sorted(k for k, v in src.items() if k in dst and dst[k].shape != v.shape)
    if not copied:
        raise SodError(f"model.init_from {source}: none of its {len(src)} tensors fits {model.method} "
                       f"(different SAM2 size or method family?)")
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    changed_frozen = [k for k in copied if k in frozen and not torch.equal(dst[k].cpu(), src[k])]
    with torch.no_grad():
        for k in copied:
            dst[k].copy_(src[k].to(dst[k].device, dst[k].dtype))
    model.extra_state_keys = sorted(set(getattr(model, "extra_state_keys", [])) | set(changed_frozen))
    new = sorted(set(dst) - set(src))
    log.info("init_from %s: %d tensors copied (%d of them frozen here), %d new, %d skipped (shape)",
             where, len(copied), len(changed_frozen), len(new), len(skipped))
    if skipped:
        log.warning("init_from: tensors with other shapes were not copied: %s", ", ".join(skipped[:8]))
    return {"copied": len(copied), "new": new, "skipped": skipped, "source": where}


def _source_state(source: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, path shown in the log) of anything `sam2sod.runs.loader.load_model` opens."""
    from sam2sod.runs.loader import load_model

    loaded = load_model(source, "cpu")
    return loaded.model.state_dict(), str(loaded.path)
