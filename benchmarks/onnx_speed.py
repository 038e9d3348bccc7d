"""CPU time of the exported `model.onnx` (onnxruntime) vs the same model in PyTorch, prompt-free SOD.

Exports a run (`--checkpoint RUN`) or a freshly built random-init model (`--method`) to ONNX in a temp folder,
checks the outputs agree, then times both on the same random images with the same number of threads.
The last line is `ratio=X.XX target=1.00` with ratio = onnxruntime time / PyTorch time (at most 1: the
export is at least as fast as PyTorch). Usage (needs `pip install 'sam2sod[export]'`):
    .venv/bin/python benchmarks/onnx_speed.py [--method adapter_cbam] [--image-size 352] [--batch 1]
        [--repeats 10] [--threads N] [--checkpoint RUN]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch


def build(args: argparse.Namespace) -> torch.nn.Module:
    from sam2sod.models.random_init import quiet_random_init

    with quiet_random_init(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.checkpoint:
            from sam2sod.runs.loader import load_model

            return load_model(args.checkpoint, "cpu").model
        from sam2sod.models import create_model

        return create_model(args.method, image_size=args.image_size, seed=0).eval()


def timed(fn, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` calls after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", default="adapter_cbam")
    p.add_argument("--checkpoint", help="a run to export instead of a random-init model")
    p.add_argument("--image-size", type=int, default=352)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)

    from sam2sod.export.onnx_export import MODEL_FILE, export_onnx, onnx_session, require_onnx

    require_onnx()
    torch.set_num_threads(args.threads)
    model = build(args)
    size = int(model.image_size)
    images = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export_onnx(model, Path(tmp))
        export_s = time.perf_counter() - t0
        session = onnx_session(Path(tmp) / MODEL_FILE, threads=args.threads)
        feed = {"images": images.numpy()}
        with torch.no_grad():
            ref = model(images)["logits"]
        got = torch.from_numpy(session.run(None, feed)[0])
        diff = float((got - ref).abs().max())
        with torch.inference_mode():
            torch_s = timed(lambda: model(images), args.repeats)
        ort_s = timed(lambda: session.run(None, feed), args.repeats)
    what = args.checkpoint or f"{args.method} (random init)"
    print(f"{what}: {size} px, batch {args.batch}, {args.threads} thread(s), median of {args.repeats}")
    print(f"export {export_s:.1f} s; max |onnxruntime - PyTorch| = {diff:.2e}")
    print(f"PyTorch      {1000 * torch_s:9.1f} ms / batch")
    print(f"onnxruntime  {1000 * ort_s:9.1f} ms / batch")
    print("ratio = onnxruntime time / PyTorch time (below 1: onnxruntime is faster)")
    print(f"ratio={ort_s / torch_s:.2f} target=1.00")
    return 0


if __name__ == "__main__":
    sys.exit(main())
