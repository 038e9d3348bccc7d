"""Checks for `benchmarks/predict_speed.py`: the bare forward and its variants, the S-measure per engine, peak
RSS of `predict` on a 24 MP image, the largest PNG difference between two folders, and the fp32 ceiling."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


VARIANTS = ("no_grad", "inference_mode", "channels_last", "bf16", "compile")


def bare_forward(run: Path, paths: list[Path], size: int, batch: int, variant: str = "no_grad") -> float:
    """Our model's forward alone, on preprocessed batches already in memory (no reading, no writing), on a
    freshly built model like `predict`'s (its model build is timed apart and left out of the pipeline ratio).

    `variant`: no_grad (what predict does), inference_mode, channels_last (model and input), bf16 (CPU
    autocast) or compile (torch.compile; its compile time is printed and left out, after a warm-up batch).
    """
    from sam2sod.infer.inference import preprocess
    from sam2sod.runs.loader import load_model

    model = load_model(run, "cpu").model
    xs = [preprocess(np.array(Image.open(p).convert("RGB")), size) for p in paths]
    batches = [torch.stack(xs[i:i + batch]) for i in range(0, len(xs), batch)]
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    if variant == "compile":
        model = torch.compile(model)
    mode = torch.inference_mode() if variant == "inference_mode" else torch.no_grad()
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16")
    with mode, amp:
        if variant == "compile":  # compilation on the first batch, left out of the timing
            t0 = time.perf_counter()
            model(batches[0])
            print(f"  torch.compile: first batch {time.perf_counter() - t0:.1f} s (compilation)")
        # a freshly built model and its first batch are timed, as predict's are (no separate warm-up)
        t0 = time.perf_counter()
        for b in batches:
            model(b)
        return time.perf_counter() - t0


def s_check(run: Path, data_root: Path, engines: list[str], cache: Path) -> list[tuple[str, float, float]]:
    """S-measure of each engine on the ECSSD-700 test split -> [(engine, S, max map difference vs torch)]."""
    from sam2sod.data.discovery import find_pairs
    from sam2sod.data.io import load_mask
    from sam2sod.export.onnx_engine import onnx_engine_for
    from sam2sod.infer.inference import predict_items
    from sam2sod.metrics import Smeasure
    from sam2sod.runs.checkpoints import build_model_from_checkpoint, read_checkpoint
    from sam2sod.runs.config import load_config
    from sam2sod.runs.splits import split_pairs

    cfg = load_config(ROOT / "src/sam2sod/configs/ecssd700_cpu.yaml")
    test = split_pairs(cfg.data, find_pairs(data_root))["test"]
    items = [(p.name, p.image, None) for p in test]
    gts = {p.name: load_mask(p.mask) for p in test}
    model = build_model_from_checkpoint(read_checkpoint(run), torch.device("cpu"))
    print(f"\n== S-measure, ECSSD-700 test split ({len(items)} images from {data_root}), {model.image_size} px ==")
    rows, ref = [], None
    for engine in engines:
        net = onnx_engine_for(model, cache) if engine == "onnxruntime" else model
        amp = torch.bfloat16 if engine == "bf16" else None
        maps = dict(predict_items(net, items, int(model.image_size), torch.device("cpu"), 8, autocast_dtype=amp))
        ref = maps if ref is None else ref
        sm = Smeasure()
        for name, pred in maps.items():
            sm.step(pred, gts[name])
        diff = max(int(np.abs(maps[k].astype(np.int16) - ref[k]).max()) for k in maps)
        rows.append((engine, float(sm.get_results()["sm"]), diff))
        print(f"{engine:<12} S={rows[-1][1]:.5f} (|dS| vs torch {abs(rows[-1][1] - rows[0][1]):.5f}), "
              f"max map difference {diff}/255")
    return rows


def max_png_diff(a: Path, b: Path) -> int:
    worst = 0
    for p in sorted(a.glob("*.png")):
        x = np.asarray(Image.open(p), dtype=np.int16)
        y = np.asarray(Image.open(b / p.name), dtype=np.int16)
        worst = max(worst, int(np.abs(x - y).max()))
    return worst


# ---------------------------------------------------------------- memory on a 24 MP image
# ---------------------------------------------------------------- memory on a 24 MP image
_PEAK = """import sys
from sam2sod.cli import main
try:
    rc = main(sys.argv[2:])
finally:
    with open('/proc/self/status') as f, open(sys.argv[1], 'w') as out:
        out.write(next(line for line in f if line.startswith('VmHWM')).split()[1])
sys.exit(rc)
"""


def child_peak_rss(args: list[str], tmp: Path) -> tuple[float, int]:
    """(peak RSS in GB, exit code) of `sam2sod ARGS` in a fresh process: its own VmHWM, read at exit
    (a child's rusage can carry the parent's peak over fork + exec)."""
    report = tmp / f"peak_{time.monotonic_ns()}.txt"
    proc = subprocess.run([sys.executable, "-c", _PEAK, str(report), *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        print(proc.stderr[-2000:], file=sys.stderr)
    return (int(report.read_text()) / 2**20 if report.exists() else float("nan")), proc.returncode


def memory_check(run: Path, sample: Path, tmp: Path) -> list[tuple[str, float]]:
    big = tmp / "big" / "big.jpg"
    big.parent.mkdir()
    Image.open(sample).convert("RGB").resize((6000, 4000), Image.BILINEAR).save(big, quality=90)
    rows = []
    for label, extra in (("predict 24 MP", []), ("predict 24 MP --overlay", ["--overlay"])):
        gb, rc = child_peak_rss(["predict", "--checkpoint", str(run), "--input", str(big), "--out",
                                 str(tmp / f"big_out{len(rows)}"), *extra], tmp)
        rows.append((label if rc == 0 else f"{label} (FAILED rc={rc})", gb))
    return rows


KERNEL_OPS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::mkldnn_convolution",
              "aten::_scaled_dot_product_flash_attention_for_cpu")


def fp32_ceiling(run: Path, size: int, repeats: int = 3) -> tuple[float, float, float]:
    """(GFLOP of one batch-1 forward of `run`'s model at `size` (`FlopCounterMode`); the share of the forward's
    time spent in matrix products, convolutions and attention kernels (`torch.profiler`, `repeats` forwards);
    their rate in GFLOP/s).

    Both times come from the same profiled forwards, so the share does not drift with the machine's load:
    an fp32 engine that runs these kernels on this BLAS and spends nothing on anything else (copies, GELU,
    norms, adds) is at most 1 / share times faster than this forward."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    from sam2sod.runs.loader import load_model

    model = load_model(run, "cpu").model.eval()
    x = torch.randn(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad():
        with counter:
            model(x)
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                model(x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    kernels = sum(e.self_cpu_time_total for e in events if e.key in KERNEL_OPS)
    gflop = counter.get_total_flops() / 1e9
    return gflop, kernels / total, gflop * repeats / (kernels / 1e6)
