"""Run-time plumbing for training: devices, mixed precision, distributed setup, RNG state, scheduler."""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from sam2sod.errors import SodError


def select_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is not available is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise SodError(f"unknown device {name!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SodError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__})")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SodError(f"device {name!r} requested but MPS is not available")
    return dev


def autocast_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """Mixed-precision dtype: bf16 on CUDA devices that support it, else fp16 on CUDA; none on CPU/MPS."""
    if amp == "off" or device.type != "cuda":
        if amp in ("bf16", "fp16") and device.type != "cuda":
            raise SodError(f"optim.amp={amp} needs a CUDA device, the run uses {device}")
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


INFERENCE_DTYPES = ("fp32", "bf16", "fp16")


def auto_workers(device: torch.device | None = None) -> int:
    """Default DataLoader worker processes. On CUDA (or unknown device): one per core beyond the first, at
    most 4. On CPU: only the cores torch's own threads leave free, usually none. A worker competing with
    the model's threads cost more than the loading it took over: `benchmarks/train_speed.py` measured
    1.05-1.09x over a bare loop with 1 worker and 1.02x with none on 2 cores; `predict` lost 3-7%."""
    cores = os.cpu_count() or 1
    if device is not None and device.type == "cpu":
        return max(0, min(4, cores - torch.get_num_threads()))
    return max(0, min(4, cores - 1))


def inference_dtype(device: torch.device, name: str) -> torch.dtype | None:
    """Autocast dtype for inference (`--dtype`): fp32 -> None; bf16 on CPU or CUDA; fp16 on CUDA only."""
    if name not in INFERENCE_DTYPES:
        raise SodError(f"--dtype must be one of {', '.join(INFERENCE_DTYPES)}, got {name!r}")
    if name == "fp32":
        return None
    if device.type not in ("cpu", "cuda"):
        raise SodError(f"--dtype {name} needs a CPU or CUDA device, got {device}")
    if name == "fp16" and device.type != "cuda":
        raise SodError("--dtype fp16 needs a CUDA device (on CPU use bf16, fast only with AMX / AVX512-BF16)")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SodError("--dtype bf16: this GPU has no bf16 support; use --dtype fp16")
    return torch.bfloat16 if name == "bf16" else torch.float16


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> DistInfo:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): nccl on CUDA, gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """All global RNG states, as tensors and plain Python values (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup from 1/warmup to 1, then cosine down to `min_ratio` at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups over trainable parameters: no weight decay for biases, norms and 1-d gates."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    if not decay and not no_decay:
        raise SodError("the model has no trainable parameters")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


_OOM_TEXT = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch's / Python's out-of-memory errors (CUDA OOM, the CPU allocator's, MemoryError)."""
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(err, RuntimeError) and any(t in str(err) for t in _OOM_TEXT)


@contextlib.contextmanager
def out_of_memory_hint(what: Callable[[], str]) -> Iterator[None]:
    """Turn an out-of-memory error inside the block into one SodError line: `what()` (the sizes tried, e.g.
    "training step 3 at model.image_size 1024, optim.batch_size 8 on cpu") and what to lower."""
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        tried = re.search(r"allocate ([0-9.]+ ?[KMGT]?i?B|\d+ bytes)", str(err))
        size = f" (it tried to allocate {tried.group(1)})" if tried else ""
        raise SodError(f"out of memory in {what()}{size}: lower model.image_size (a multiple of 32) or "
                       f"optim.batch_size (optim.accum_steps keeps the effective batch), or use a smaller "
                       f"model.size") from None
