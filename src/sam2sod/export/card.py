"""The model card (`README.md`) of an export folder, and the run metrics it quotes."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

MAX_ROWS = 20  # metrics.csv rows kept in config.json (the last ones)


def _number(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, anything else unchanged."""
    for cast in (int, float):
        try:
            return cast(text)
        except (TypeError, ValueError):
            pass
    return text


def run_metrics(run_dir: Path) -> dict[str, Any]:
    """What the run folder says about quality: metrics.csv (last rows) and result.json (ablate), if present."""
    out: dict[str, Any] = {}
    csv_path = run_dir / "metrics.csv"
    try:
        with open(csv_path, encoding="utf-8", newline="") as f:
            rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, csv.Error, UnicodeDecodeError):
        rows = []
    if rows:
        out["metrics_csv"] = rows[-MAX_ROWS:]
    try:
        result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = None
    if isinstance(result, dict):
        out["result"] = result
    return out


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _base_line(config: dict[str, Any]) -> str:
    base = config.get("base") or {}
    if config.get("base", {}).get("version") == "baseline":
        what = f"classical baseline {config['method']}"
        weights = base.get("checkpoint") or "no ImageNet backbone weights (random init)"
        return f"{what}; backbone weights: {weights}"
    variant = f"{config.get('version')} hiera {config.get('size')}"
    if config.get("pretrained"):
        return f"{variant}; weights {base.get('checkpoint')} (sha256 {str(base.get('sha256'))[:16]}...)"
    return f"{variant}; RANDOM INIT (seed {base.get('seed')}), no pretrained SAM2 weights"


def _metrics_section(config: dict[str, Any]) -> list[str]:
    metrics = config.get("metrics") or {}
    best = (config.get("training") or {}).get("best") or {}
    lines = ["## Metrics (from the run)", ""]
    if best and best.get("epoch", -1) != -1:
        lines.append(f"Validation of the exported checkpoint's best epoch: S {_fmt(best.get('S'))}, "
                     f"MAE {_fmt(best.get('MAE'))} (epoch {best.get('epoch')}, step {best.get('step')}).")
        lines.append("")
    result = metrics.get("result")
    if result:
        keys = [k for k in ("S", "maxE", "wF", "MAE", "maxF") if k in result]
        lines += [f"Held-out scores (`result.json`, split {result.get('split', '?')}, "
                  f"{result.get('n_images', '?')} images, prompt-free):", "",
                  "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
                  "| " + " | ".join(_fmt(result[k]) for k in keys) + " |", ""]
    rows = metrics.get("metrics_csv") or []
    if rows:
        cols = [c for c in ("epoch", "step", "train_loss", "val_S", "val_MAE") if c in rows[-1]]
        lines += ["`metrics.csv` (last rows):", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows[-10:]]
        lines.append("")
    if len(lines) == 2:
        lines += ["The run folder had no metrics.csv or result.json.", ""]
    return lines


def _usage(config: dict[str, Any]) -> list[str]:
    if config.get("weights_format") == "onnx":
        files = config.get("onnx") or {}
        lines = ["## Use (onnxruntime)", "", "Run in this folder (`pip install onnxruntime pillow numpy`); "
                 "`image.jpg` is your image:", "", *_onnx_snippet(config), ""]
        if "decoder.onnx" in files:
            lines += ["Prompted use: `image_encoder.onnx` (images -> image_embed, high_res_feat0, high_res_feat1) "
                      "once per image, then `decoder.onnx` (+ point_coords float32 (B,N,2) in input pixels, "
                      "point_labels int64 (B,N) 1 fg / 0 bg / 2,3 box corners / -1 not a point, mask_input float32 "
                      "(B,1,S/4,S/4) logits, has_mask bool (B,) -> logits, iou) per prompt; N = 0 is "
                      "prompt-free.", ""]
        return lines
    return ["## Use", "", "```python", "from sam2sod.export import load_exported",
            'model = load_exported("path/to/this/folder")  # no base checkpoint needed',
            'logits = model(images)["logits"]  # images: (B,3,S,S), RGB / 255, normalised with mean/std above',
            "```", "", "Fine-tune it on new data: `model.init_from: path/to/this/folder` in a training config.", ""]


def _onnx_snippet(config: dict[str, Any]) -> list[str]:
    """A runnable onnxruntime example, preprocessing included: image.jpg -> saliency.png (image size)."""
    pre = config.get("preprocess") or {}
    mean = ", ".join(f"{float(v):.4g}" for v in pre.get("mean", (0.485, 0.456, 0.406)))
    std = ", ".join(f"{float(v):.4g}" for v in pre.get("std", (0.229, 0.224, 0.225)))
    return ["```python", "import numpy as np", "import onnxruntime as ort", "from PIL import Image", "",
            f"S = {int(config['image_size'])}  # the model's input size",
            f"MEAN, STD = np.array([{mean}], np.float32), np.array([{std}], np.float32)",
            'image = Image.open("image.jpg").convert("RGB")',
            "x = np.asarray(image.resize((S, S), Image.BILINEAR), np.float32) / 255  # (S,S,3) RGB in 0..1",
            "x = ((x - MEAN) / STD).transpose(2, 0, 1)[None]  # (1,3,S,S), normalised",
            'sess = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])',
            'logits = sess.run(None, {"images": x})[0]  # (1,1,S,S)',
            "saliency = 1 / (1 + np.exp(-logits[0, 0]))  # 0..1",
            "out = Image.fromarray((saliency * 255).round().astype(np.uint8)).resize(image.size, Image.BILINEAR)",
            'out.save("saliency.png")  # the map at the image\'s own size', "```"]


def model_card(config: dict[str, Any]) -> str:
    """Markdown model card: method, base, training data and steps, metrics, a RANDOM INIT warning."""
    from sam2sod.models.registry import all_methods

    method = config["method"]
    training = config.get("training") or {}
    data = training.get("data") or {}
    source = data.get("root") or data.get("images") or "?"
    split = ", ".join(f"{k} {data[k]}" for k in ("train_count", "val_count") if data.get(k) is not None)
    lines = [f"# {method} (sam2sod export)", ""]
    if not config.get("pretrained"):
        lines += ["> **RANDOM INIT**: this model was trained from randomly initialised base weights, not from a "
                  "pretrained SAM2 (or ImageNet backbone). Its results are those of a smoke test, not of the method.",
                  ""]
    merged = "; LoRA folded into the linear layers (no LoRA modules remain)" if config.get("lora_merged") else ""
    lines += [
        "| | |", "|---|---|",
        f"| method | `{method}`: {all_methods().get(method, '')}{merged} |",
        f"| base | {_base_line(config)} |",
        f"| input | {config['image_size']} x {config['image_size']}, {config['preprocess']['scale']}, mean "
        f"{config['preprocess']['mean']}, std {config['preprocess']['std']} |",
        f"| output | {config['output']} |",
        f"| training data | {source}{f' ({split})' if split else ''} |",
        f"| training | {training.get('steps')} steps, {training.get('epochs')} epochs, seed {training.get('seed')}"
        f"{', started from ' + str(training['init_from']) if training.get('init_from') else ''} |",
        f"| exported from | {training.get('checkpoint')} |",
        f"| files | {', '.join(config.get('files', []))}, config.json |",
        "",
    ]
    lines += _metrics_section(config)
    lines += _usage(config)
    versions = ", ".join(f"{k} {v}" for k, v in (config.get("versions") or {}).items())
    lines += [f"Written by sam2sod ({versions}).", ""]
    return "\n".join(lines)
