"""onnxruntime as an inference engine: `OnnxSodModel` stands in for the PyTorch model in the inference path.

`OnnxSodModel.from_export(folder)` runs a `sam2sod export --format onnx` folder; `onnx_engine_for(model)`
exports a PyTorch model on the fly into a cache folder keyed by a hash of its weights, method config, image
size and the sam2sod / torch / onnx versions, and reuses it on the next call. The wrapper's
``model(images, prompts=None)`` returns the dict the PyTorch model returns for the keys the inference path
reads: prompt-free through model.onnx ({"logits"}), prompted through image_encoder.onnx + decoder.onnx
({"logits", "iou"}). Pre- and post-processing stay the caller's (`preprocess`, `logits_to_uint8`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sam2sod.errors import SodError

__all__ = ["CACHE_ENV", "OnnxSodModel", "default_cache_dir", "model_key", "onnx_engine_for", "require_onnxruntime"]

CACHE_ENV = "SAM2SOD_CACHE"
_INSTALL = "pip install 'sam2sod[export]'"
_STALE_TMP_S = 6 * 3600.0  # a temp export folder this old belongs to a process that died


def require_onnxruntime(export: bool = False) -> None:
    """SodError naming the extra unless onnxruntime (and, with `export`, onnx) import."""
    missing = []
    for name in ("onnxruntime", "onnx") if export else ("onnxruntime",):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise SodError(f"--engine onnxruntime needs {' and '.join(missing)}: {_INSTALL}")


def default_cache_dir() -> Path:
    """$SAM2SOD_CACHE/onnx when set, else ~/.cache/sam2sod/onnx."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() / "onnx" if root else Path.home() / ".cache" / "sam2sod" / "onnx"


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "none"


def model_key(model: nn.Module, multimask: bool = False) -> str:
    """sha256 (hex, 24 chars) of the state dict (names, dtypes, shapes, bytes), class, method, method_cfg,
    image size, multimask and the sam2sod / torch / onnx versions: equal keys export equal graphs."""
    h = hashlib.sha256()
    meta = {"class": type(model).__qualname__, "method": getattr(model, "method", None),
            "method_cfg": getattr(model, "method_cfg", {}), "image_size": int(model.image_size),
            "multimask": bool(multimask), "sam2sod": _version("sam2sod"), "torch": str(torch.__version__),
            "onnx": _version("onnx")}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:24]


def _options(threads: int, optimize: bool = True, save_to: Path | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    if not optimize:  # an already optimized graph (see `_session`)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if save_to is not None:
        opts.optimized_model_filepath = str(save_to)
    return opts


def _machine_tag() -> str:
    """onnxruntime version + a hash of the CPU's architecture and feature flags: an optimized graph may hold
    kernels chosen for this CPU, so it is reused only on the same kind of machine with the same onnxruntime."""
    import platform

    import onnxruntime as ort

    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"ort{ort.__version__}-{hashlib.sha256((platform.machine() + flags).encode()).hexdigest()[:8]}"


def _session(path: Path, threads: int, opt_dir: Path | None = None) -> Any:
    """A CPU session for `path`; SodError when onnxruntime cannot load the file.

    With `opt_dir` (a cache entry), the graph onnxruntime optimizes is kept there (`<stem>.<machine>.opt.onnx`,
    renamed into place whole) and later sessions load it without optimizing again (start-up 2-4x faster).
    """
    import onnxruntime as ort

    def make(file: Path, **kw: Any) -> Any:
        return ort.InferenceSession(str(file), sess_options=_options(threads, **kw), providers=["CPUExecutionProvider"])

    try:
        if opt_dir is None:
            return make(path)
        opt = opt_dir / f"{path.stem}.{_machine_tag()}.opt.onnx"
        if opt.is_file():
            try:
                return make(opt, optimize=False)
            except Exception:  # noqa: BLE001 - a damaged optimized copy: optimize the original again
                pass
        tmp = opt_dir / f".{opt.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
        try:
            session = make(path, save_to=tmp)
            os.replace(tmp, opt)
            return session
        except OSError:
            return make(path)
        finally:
            tmp.unlink(missing_ok=True)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise SodError(f"cannot load {path} with onnxruntime: {' '.join(str(e).split())[:200]}") from None


def _numpy(x: torch.Tensor, dtype: Any = np.float32) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu").numpy(), dtype=dtype)


def prompt_groups(labels: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
    """labels (B,N) -> [(rows (G,), real point count n)] as `SAM2SOD.prompt_groups`: a row's trailing -1
    labels are padding, so every row is decoded with exactly its own points (ONNX inputs share one N)."""
    if labels.shape[1] == 0:
        return [(torch.arange(labels.shape[0]), 0)]
    pos = torch.arange(1, labels.shape[1] + 1)
    counts = ((labels.cpu() >= 0) * pos).amax(1)
    return [((counts == n).nonzero().squeeze(1), int(n)) for n in torch.unique(counts).tolist()]


class OnnxSodModel(nn.Module):
    """onnxruntime sessions behind the PyTorch model's inference interface (CPU only).

    ``model(images (B,3,S,S) float32, prompts=None, multimask=False)`` -> {"logits": (B,1,S,S)} prompt-free
    (model.onnx), or {"logits": (B,1,S,S), "iou": (B,K)} with prompts (a `PromptBatch`: image_encoder.onnx +
    decoder.onnx; SodError when the export has no prompt path). Outputs are float32 on the images' device.
    Attributes as the PyTorch model's: image_size, method, method_cfg, base_info, model_is_pretrained,
    multimask (fixed at export), export_config (config.json), folder, threads.
    """

    def __init__(self, folder: str | os.PathLike, config: dict[str, Any], threads: int | None = None,
                 keep_optimized: bool = False) -> None:
        super().__init__()
        from sam2sod.export.onnx_export import DECODER_FILE, ENCODER_FILE, MODEL_FILE

        self.folder = Path(folder)
        self.export_config = config
        self.image_size = int(config["image_size"])
        self.method: str | None = config.get("method")
        self.method_cfg: dict[str, Any] = dict(config.get("method_cfg") or {})
        self.base_info: dict[str, Any] = dict(config.get("base") or {})
        self.model_is_pretrained = bool(config.get("pretrained", False))
        self.multimask = bool(config.get("multimask", False))
        self.threads = int(threads or torch.get_num_threads())
        self.has_prompt_path = (self.folder / ENCODER_FILE).is_file() and (self.folder / DECODER_FILE).is_file()
        self._files = (MODEL_FILE, ENCODER_FILE, DECODER_FILE)
        self._opt_dir = self.folder if keep_optimized else None
        self._sessions: dict[str, Any] = {MODEL_FILE: _session(self.folder / MODEL_FILE, self.threads, self._opt_dir)}
        self.eval()

    @classmethod
    def from_export(cls, folder: str | os.PathLike, threads: int | None = None, keep_optimized: bool = False
                    ) -> OnnxSodModel:
        """The ONNX export folder `folder` (`sam2sod export --format onnx`) as an engine; SodError (one line)
        for a missing folder, a folder that is not an export, or an export without model.onnx.

        `keep_optimized`: keep onnxruntime's optimized graphs in `folder` for a faster next start (only for
        folders sam2sod owns, such as cache entries; never a user's export folder)."""
        from sam2sod.export.onnx_export import MODEL_FILE
        from sam2sod.export.package import read_export_config

        require_onnxruntime()
        config = read_export_config(folder)
        folder = Path(folder)
        folder = folder.parent if folder.is_file() else folder
        if not (folder / MODEL_FILE).is_file():
            raise SodError(f"{folder} has no {MODEL_FILE} (a {config.get('weights_format', 'safetensors')} export): "
                           "export the run with `sam2sod export --format onnx` for --engine onnxruntime")
        return cls(folder, config, threads, keep_optimized)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def promptable(self) -> bool:
        """True when the export holds SAM2's prompt path (image_encoder.onnx + decoder.onnx)."""
        return self.has_prompt_path

    def _get(self, name: str) -> Any:
        if name not in self._sessions:
            self._sessions[name] = _session(self.folder / name, self.threads, self._opt_dir)
        return self._sessions[name]

    def _check(self, images: torch.Tensor, multimask: bool) -> None:
        s = self.image_size
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (s, s):
            raise SodError(f"the ONNX model expects images of shape (B,3,{s},{s}), got {tuple(images.shape)}")
        if bool(multimask) != self.multimask:
            raise SodError(f"the ONNX export of {self.method} was written with multimask={self.multimask}; "
                           f"it cannot run with multimask={bool(multimask)} (export again)")

    def forward(self, images: torch.Tensor, prompts: Any = None, multimask: bool | None = None
                ) -> dict[str, torch.Tensor]:
        """images (B,3,S,S) normalised with SAM2 mean/std -> {"logits": (B,1,S,S)} (+ "iou" with prompts)."""
        multimask = self.multimask if multimask is None else multimask
        self._check(images, multimask)
        if prompts is None:
            (logits,) = self._get(self._files[0]).run(None, {"images": _numpy(images)})
            return {"logits": torch.from_numpy(logits).to(images.device)}
        return self.decode(self.encode_image(images), prompts, multimask)

    def encode_image(self, images: torch.Tensor) -> dict[str, Any]:
        """images (B,3,S,S) -> {"image_embed": (B,256,S/16,S/16), "high_res_feats": [(B,32,S/4,S/4),
        (B,64,S/8,S/8)]}, as `SAM2SOD.encode_image` (cacheable for re-prompting)."""
        self._need_prompt_path()
        self._check(images, self.multimask)
        embed, hr0, hr1 = (torch.from_numpy(a) for a in self._get(self._files[1]).run(None, {"images": _numpy(images)}))
        return {"image_embed": embed, "high_res_feats": [hr0, hr1]}

    def decode(self, features: dict[str, Any], prompts: Any = None, multimask: bool | None = None
               ) -> dict[str, torch.Tensor]:
        """`SAM2SOD.decode` through decoder.onnx: rows grouped by their real point count, as in PyTorch.

        prompts: points (B,N,2) xy in input pixels, labels (B,N), mask_input (B,1,S/4,S/4), has_mask (B,);
        any may be None. Returns logits (B,1,S,S), iou (B,K).
        """
        self._need_prompt_path()
        multimask = self.multimask if multimask is None else multimask
        if bool(multimask) != self.multimask:
            self._check(torch.empty(0, 3, self.image_size, self.image_size), multimask)
        embed = features["image_embed"]
        b, q = int(embed.shape[0]), self.image_size // 4
        feed = self._prompt_feed(prompts, b, q)
        out_logits: list[torch.Tensor] = []
        out_iou: list[torch.Tensor] = []
        rows_all: list[torch.Tensor] = []
        for rows, n in prompt_groups(feed["point_labels"]):
            part = {"image_embed": embed[rows], "high_res_feat0": features["high_res_feats"][0][rows],
                    "high_res_feat1": features["high_res_feats"][1][rows],
                    "point_coords": feed["point_coords"][rows, :n], "point_labels": feed["point_labels"][rows, :n],
                    "mask_input": feed["mask_input"][rows], "has_mask": feed["has_mask"][rows]}
            logits, iou = self._get(self._files[2]).run(None, {k: _numpy(v, _DTYPES[k]) for k, v in part.items()})
            out_logits.append(torch.from_numpy(logits))
            out_iou.append(torch.from_numpy(iou))
            rows_all.append(rows)
        order = torch.argsort(torch.cat(rows_all))
        dev = embed.device
        return {"logits": torch.cat(out_logits)[order].to(dev), "iou": torch.cat(out_iou)[order].to(dev)}

    def _prompt_feed(self, prompts: Any, b: int, q: int) -> dict[str, torch.Tensor]:
        """The decoder's inputs from a PromptBatch-like object (missing fields: no points, no mask)."""
        get = (lambda k: getattr(prompts, k, None)) if prompts is not None else (lambda k: None)
        points, labels, mask, has = get("points"), get("labels"), get("mask_input"), get("has_mask")
        if points is None or labels is None:
            points, labels = torch.zeros(b, 0, 2), torch.zeros(b, 0, dtype=torch.int64)
        if tuple(points.shape[:2]) != tuple(labels.shape) or points.shape[0] != b:
            raise SodError(f"prompt points {tuple(points.shape)} / labels {tuple(labels.shape)} do not fit batch {b}")
        if mask is None:
            mask, has = torch.zeros(b, 1, q, q), torch.zeros(b, dtype=torch.bool)
        elif has is None:
            has = torch.ones(b, dtype=torch.bool)
        if tuple(mask.shape) != (b, 1, q, q):
            raise SodError(f"mask_input must be (B,1,{q},{q}) logits, got {tuple(mask.shape)}")
        return {"point_coords": points.cpu(), "point_labels": labels.cpu(), "mask_input": mask.cpu(),
                "has_mask": has.cpu()}

    def _need_prompt_path(self) -> None:
        if not self.has_prompt_path:
            raise SodError(f"the ONNX export of {self.method} has no prompt path (image_encoder.onnx + decoder.onnx):"
                           " it predicts prompt-free only")

    def extra_repr(self) -> str:
        return (f"folder={str(self.folder)!r}, method={self.method!r}, image_size={self.image_size}, "
                f"threads={self.threads}")


_DTYPES = {"image_embed": np.float32, "high_res_feat0": np.float32, "high_res_feat1": np.float32,
           "point_coords": np.float32, "point_labels": np.int64, "mask_input": np.float32, "has_mask": np.bool_}


# ---------------------------------------------------------------- on-the-fly export into the cache
def _engine_config(model: nn.Module, multimask: bool, key: str, files: dict[str, Any]) -> dict[str, Any]:
    """config.json of a cache entry, readable by `read_export_config` like an export folder's."""
    from sam2sod.export.package import EXPORT_FORMAT, _plain, _versions

    return _plain({"format": EXPORT_FORMAT, "weights_format": "onnx", "method": getattr(model, "method", None),
                   "image_size": int(model.image_size), "method_cfg": dict(getattr(model, "method_cfg", {}) or {}),
                   "multimask": bool(multimask), "base": dict(getattr(model, "base_info", {}) or {}),
                   "pretrained": bool(getattr(model, "model_is_pretrained", False)), "cache_key": key,
                   "onnx": files, "files": list(files), "versions": _versions() | {"onnx": _version("onnx")}})


def _export_copy(model: nn.Module) -> nn.Module:
    """The model to trace: itself, or an eval CPU copy with LoRA folded in (never changes `model`)."""
    from sam2sod.models.peft.lora import lora_modules, merge_lora

    on_cpu = all(t.device.type == "cpu" for t in model.state_dict().values())
    if on_cpu and not lora_modules(model):
        return model
    twin = copy.deepcopy(model).cpu()
    if lora_modules(twin):
        merge_lora(twin)
    return twin.eval()


def _write_entry(model: nn.Module, cache: Path, key: str, multimask: bool) -> None:
    """Export into a temp folder inside `cache`, then rename it to `cache/key` (another process sees the
    whole entry or none; when two export at once, the first rename wins and the other's copy is removed)."""
    from sam2sod.atomic import atomic_write_text
    from sam2sod.export.onnx_export import export_onnx

    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=cache))
    was_training = model.training
    try:
        try:
            files = export_onnx(_export_copy(model), tmp, multimask=multimask)
        except SodError:
            raise
        except Exception as e:  # noqa: BLE001 - the exporter's own errors name no option
            reason = " ".join(str(e).split())[:160] or type(e).__name__
            raise SodError(f"{getattr(model, 'method', type(model).__name__)} cannot be exported to ONNX for "
                           f"--engine onnxruntime ({type(e).__name__}: {reason}); use --engine torch") from None
        atomic_write_text(tmp / "config.json", json.dumps(_engine_config(model, multimask, key, files), indent=2))
        try:
            os.rename(tmp, cache / key)
        except OSError:
            if not _entry_ok(cache / key):
                raise
    finally:
        model.train(was_training)
        shutil.rmtree(tmp, ignore_errors=True)


def _entry_ok(entry: Path) -> bool:
    from sam2sod.export.onnx_export import MODEL_FILE

    return (entry / "config.json").is_file() and (entry / MODEL_FILE).is_file()


def _remove_stale(cache: Path) -> None:
    """Temp folders of exports that died (older than 6 hours)."""
    now = time.time()
    for p in cache.glob(".*.tmp-*"):
        try:
            if now - p.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def onnx_engine_for(model: nn.Module, cache_dir: str | os.PathLike | None = None, *, multimask: bool = False,
                    threads: int | None = None) -> OnnxSodModel:
    """`model` (a PyTorch sam2sod model) as an `OnnxSodModel`, exported once into `cache_dir/<model_key>`
    (default `default_cache_dir()`) and reused by every later call with equal weights and config.

    `multimask`: the run's model.multimask (fixed in the graph). `threads`: onnxruntime intra-op threads
    (default: torch's). SodError (one line) when onnx / onnxruntime are missing, the cache folder cannot be
    written, or the method does not export.
    """
    require_onnxruntime(export=True)
    if not hasattr(model, "image_size"):
        raise SodError(f"{type(model).__name__} is not a sam2sod model (no image_size): cannot run it in onnxruntime")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SodError(f"cannot create the ONNX cache folder {cache}: {e.strerror or e} (set ${CACHE_ENV})") from None
    key = model_key(model, multimask)
    entry = cache / key
    if not _entry_ok(entry):
        if entry.exists():  # a damaged entry (files removed by hand): replaced
            shutil.rmtree(entry, ignore_errors=True)
        _remove_stale(cache)
        _write_entry(model, cache, key, multimask)
    return OnnxSodModel.from_export(entry, threads=threads, keep_optimized=True)
