"""Training memory: peak memory and step time with and without activation checkpointing, in one run.

For each backbone size (default hiera-tiny and hiera-base_plus) at 1024 px, batch 1, method `full` (every
image-path weight trains, so every Hiera block keeps activations for backward), each case runs in its own
fresh process (so one case's peak cannot hide another's): build the model, one warm-up step, then timed
steps. Activation memory = peak RSS during the steps - RSS after the warm-up's optimizer state exists
(CPU; on CUDA `torch.cuda.max_memory_allocated` minus the allocation before the first step). Gradients
with and without checkpointing are compared on the first step (max abs difference).

Usage:
    .venv/bin/python benchmarks/train_memory.py [--sizes tiny base_plus] [--image-size 1024] [--steps 2]
        [--device cpu|cuda]
Last lines: `ratio=X.XX target=0.60` (activation memory with / without checkpointing, per size) and
`ratio=X.XX target=1.35` (step time with / without).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(size: str, image_size: int, steps: int, checkpointing: bool, device: str) -> dict:
    """One case in this process: returns activation MB, mean step s and a gradient fingerprint."""
    import torch

    from sam2sod.models.optim_tools import enable_grad_checkpoint
    from sam2sod.models.registry import create_model

    torch.manual_seed(0)
    warnings.filterwarnings("ignore")
    model = create_model("full", size=size, image_size=image_size, seed=0, device=device).train()
    if checkpointing:
        enable_grad_checkpoint(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    x = torch.randn(1, 3, image_size, image_size, device=device)
    y = (torch.rand(1, 1, image_size, image_size, device=device) > 0.5).float()

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)["logits"], y)
        loss.backward()
        grads = torch.cat([p.grad.flatten()[:64] for p in model.parameters() if p.grad is not None])
        opt.step()
        return grads

    grads = step()  # warm-up; optimizer state now exists
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss_mb()
        _reset_peak()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    act = ((torch.cuda.max_memory_allocated() - base) / 2**20) if device == "cuda" else _peak_mb() - base
    return {"act_mb": act, "step_s": sum(times) / len(times), "grads": grads.double().cpu().tolist()}


def run_case(size: str, image_size: int, steps: int, checkpointing: bool, device: str) -> dict:
    here = str(Path(__file__).parent)
    code = (f"import json,sys; sys.path.insert(0, {here!r}); from train_memory import child; "
            f"print('RESULT', json.dumps(child({size!r}, {image_size}, {steps}, {checkpointing!r}, {device!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT"))[7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "base_plus"])
    ap.add_argument("--image-size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    print(f"full fine-tuning, {a.image_size} px, batch 1, {a.steps} timed steps, device {a.device}")
    print(f"{'size':10} {'checkpointing':>13} {'activations MB':>15} {'step s':>8}")
    lines = []
    for size in a.sizes:
        plain = run_case(size, a.image_size, a.steps, False, a.device)
        ckpt = run_case(size, a.image_size, a.steps, True, a.device)
        for name, r in (("off", plain), ("on", ckpt)):
            print(f"{size:10} {name:>13} {r['act_mb']:15.0f} {r['step_s']:8.2f}")
        diff = max(abs(p - q) for p, q in zip(plain["grads"], ckpt["grads"], strict=True))
        print(f"{size:10} first-step gradients: max abs difference {diff:.2e}")
        lines.append(f"ratio={ckpt['act_mb'] / plain['act_mb']:.2f} target=0.60  # {size} activation memory on/off")
        lines.append(f"ratio={ckpt['step_s'] / plain['step_s']:.2f} target=1.35  # {size} step time on/off")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
