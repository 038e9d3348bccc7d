"""Differentiable forward of a video clip for fine-tuning on clips (SAM2's memory in the loop).

    memory = build_memory(model, train_memory="lora")       # false | true | lora
    out = forward_clip(model, memory, frames)                # frames (T,3,S,S) or (B,T,3,S,S)
    loss = bce(out["logits"], masks)                         # logits (T,1,S,S) / (B,T,1,S,S)

Frame 1 is detected prompt-free by the tuned model (its image `decode`, as image training runs it); frames
2..T go through SAM2's tracking step (memory attention over frame 1 as the conditioning frame and the
previous frames, then the tuned prompt encoder + mask decoder), and each frame's prediction is written to
memory by sam2's memory encoder, in float32 with the graph kept, so the loss of a late frame reaches the
tuned modules of the earlier ones and, per `train_memory`, the memory modules. The image encoder runs once on
all B*T frames. `logits` are the decoder's masks before sam2's object-score gating (the gate would set an
"absent" frame to -1024 and block its gradient; the gated mask is what memory receives, as in sam2);
`object_score_logits` (B,T,1) lets a loss train the "object present" head.
"""

from __future__ import annotations

import torch
from torch import nn

from sam2sod.errors import SodError
from sam2sod.models.memory import SAM2Memory, SamView
from sam2sod.models.video_core import MemoryBank, detect, detection_entry, encode_frames, track, write_memory


def forward_clip(model: nn.Module, memory: SAM2Memory, frames: torch.Tensor,
                 multimask: bool | None = None) -> dict[str, torch.Tensor]:
    """frames (T,3,S,S) or (B,T,3,S,S), normalised -> {"logits": (T,1,S,S) / (B,T,1,S,S),
    "object_score_logits": (T,1) / (B,T,1)}. `multimask`: tracked frames decode 3 masks and keep the one
    with the best predicted IoU (None: SAM2's config, `memory.tracking_multimask()`)."""
    s = int(model.image_size)
    batched = frames.ndim == 5
    x = frames if batched else frames[None]
    if x.ndim != 5 or tuple(x.shape[2:]) != (3, s, s) or x.shape[1] < 1:
        raise SodError(f"a clip must be (T,3,{s},{s}) or (B,T,3,{s},{s}) frames, got {tuple(frames.shape)}")
    b, t = x.shape[:2]
    view = SamView(model, memory)
    multimask = memory.tracking_multimask() if multimask is None else bool(multimask)
    feats = encode_frames(model, x.transpose(0, 1).reshape(t * b, 3, s, s)).split(t)  # frame-major rows
    bank = MemoryBank(view, max_cond=1, num_frames=t)
    out, token = detect(model, feats[0])
    bank.add(0, detection_entry(view, feats[0], out, token, store_dtype=None), cond=True)
    logits, scores = [out["logits"]], [out["object_score_logits"]]
    for i in range(1, t):
        tr = track(view, feats[i], bank.output_dict(), i, t, multimask)
        entry = write_memory(view, feats[i], tr["logits"], tr["object_score_logits"], tr["obj_ptr"],
                             from_mask=False, store_dtype=None)
        bank.add(i, entry, cond=False)
        logits.append(tr["raw_logits"])
        scores.append(tr["object_score_logits"])
    result = {"logits": torch.stack(logits, 1), "object_score_logits": torch.stack(scores, 1).float()}
    return result if batched else {k: v[0] for k, v in result.items()}
