"""The layer order of the sam2sod package, lowest first: a module may import its own layer and the layers
below it, never one above (checked by tests/test_layers.py, counting imports inside functions too).

Each entry names top-level parts of the package (a sub-package or a module); ``""`` is the package itself
(``sam2sod/__init__.py``, the public API).
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "wording", "_layers"),  # SodError; __version__; plural(); this order
    ("atomic", "safe_load", "names", "lock", "resources"),  # atomic writes, safe torch.load, names, locks, memory
    ("data",),  # image/mask I/O, transforms, pairing, prompts, synthetic data, data.datasets (registry, checks)
    ("outputs",),  # the --out folder guard (knows dataset layouts)
    ("metrics",),  # PySODMetrics-exact measures
    ("losses",),
    # architectures: create_model(method, checkpoint=FILE), no weight names, no run files; zero-shot SAM2;
    # hf_format: SAM2 weights in the transformers layout
    ("models", "hf_format"),
    ("weights",),  # official SAM2 weights by name: registry, download, verify; names -> files
    ("runs",),  # run config, checkpoints, splits, init_from, runtime, THE loader `load_model`
    ("report",),  # tables, statistics, curves, qualitative grids, HTML: no model code
    ("infer",),  # one forward (`infer.forward`), Predictor, batched inference, output formats, predict
    ("train",),  # trainer, stages, losses per batch, ablation grids
    ("evaluation",),  # score, evaluate, benchmark
    ("export", "hub"),  # export folders (safetensors / ONNX), model cards; the hub up/download of exports
    ("apps",),  # quickstart, the browser demo
    ("cli",),  # the `sam2sod` command line: argument parsing only
    ("", "__main__"),  # `sam2sod` itself (lazy `sam2sod.Predictor`, `sam2sod.load_model`), `python -m sam2sod`
)


def layer_of(module: str) -> int | None:
    """Index in `LAYERS` of a dotted sam2sod module name ("sam2sod.infer.predictor" -> 10); None if unlisted."""
    parts = module.split(".")
    if parts[0] != "sam2sod":
        return None
    top = parts[1] if len(parts) > 1 else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return None
