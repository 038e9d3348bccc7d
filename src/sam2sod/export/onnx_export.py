"""ONNX export (`sam2sod export --format onnx`), split as SAM's own export is.

- `model.onnx`: images (B,3,S,S) -> logits (B,1,S,S), prompt-free: plain SOD, for every method and baseline.
- `image_encoder.onnx`: images -> image_embed (B,256,S/16,S/16), high_res_feat0 (B,32,S/4,S/4),
  high_res_feat1 (B,64,S/8,S/8): run once per image.
- `decoder.onnx`: the prompt encoder + mask decoder on those features, with point_coords (B,N,2) in input
  pixels, point_labels (B,N) (1 fg, 0 bg, 2/3 box corners, -1 "not a point"), mask_input (B,1,S/4,S/4)
  logits, has_mask (B,) bool -> logits (B,1,S,S), iou (B,K). Batch and N are dynamic; N = 0 is the
  prompt-free path (no sparse tokens, exactly as in PyTorch).

Written with the TorchScript-based exporter (`dynamo=False`, opset 17): it needs only `onnx`, traces the
Hiera trunk at a fixed image size with a dynamic batch, and keeps the point count dynamic. Where that
exporter lacks an op, an equal export-friendly form is traced instead (`export_friendly`):
- SAM-Adapter's FFT high-pass (no FFT in the exporter) as x - P_h x P_w^T with fixed real matrices;
- adaptive average pooling to a size that does not divide the input (PoolNet's 3x3 / 5x5 pyramid pooling)
  as A_h x A_w^T with fixed averaging matrices, and average pooling whose kernel is computed from the
  feature map's shape (PoolNet's FAM) with that kernel as a constant;
- the data-dependent parts of the PyTorch decode path: `prompt_groups` (splits a batch by each row's real
  point count with `torch.unique`; in ONNX all rows share N) and the `if has_mask.any()` branch of
  `embed_prompts` (ONNX always computes the mask embedding and selects per row). Prompt-free rows get zero
  sparse tokens through a slice whose length is computed in the graph (N + min(N, 1): SAM pads one
  "not a point" token only when there are points).
"""

from __future__ import annotations

import contextlib
import io
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sam2sod.errors import SodError

__all__ = ["DECODER_FILE", "ENCODER_FILE", "MODEL_FILE", "OPSET", "ImageEncoderOnnx", "PromptDecoderOnnx",
           "SodOnnx", "export_onnx", "has_prompt_path", "name_dims", "onnx_session", "require_onnx"]

ENCODER_FILE, DECODER_FILE, MODEL_FILE = "image_encoder.onnx", "decoder.onnx", "model.onnx"
OPSET = 17
DECODER_INPUTS = ["image_embed", "high_res_feat0", "high_res_feat1", "point_coords", "point_labels", "mask_input",
                  "has_mask"]


def require_onnx() -> None:
    """SodError naming the extra to install unless `onnx` and `onnxruntime` import."""
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise SodError(f"--format onnx needs {' and '.join(missing)}: pip install 'sam2sod[export]' "
                       "(or pip install onnx onnxruntime)")


@dataclass
class _Prompts:
    points: torch.Tensor
    labels: torch.Tensor
    mask_input: torch.Tensor
    has_mask: torch.Tensor


def has_prompt_path(model: nn.Module) -> bool:
    """True for SAM2 methods that decode with SAM2's prompt encoder + mask decoder on high-res features."""
    from sam2sod.models.sod_sam2 import SAM2SOD

    return (isinstance(model, SAM2SOD) and hasattr(model, "sam_prompt_encoder")
            and hasattr(model, "sam_mask_decoder") and bool(model.use_high_res_features))


def _one_group(self: nn.Module, prompts: Any, batch_size: int) -> list[tuple[torch.Tensor, int]]:
    """Every row in one group that uses all N point columns (ONNX inputs share N)."""
    return [(torch.arange(batch_size), -1)]


def _embed_for_export(self: nn.Module, prompts: _Prompts, batch_size: int, rows: Any = None, n_points: int = -1
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """`SAM2SOD.embed_prompts` without data-dependent Python branches (same values for every input)."""
    pe = self.sam_prompt_encoder
    h, w = pe.image_embedding_size
    sparse = pe._embed_points(prompts.points.float(), prompts.labels, pad=True)  # N + 1 tokens
    n = torch._shape_as_tensor(prompts.labels)[1]
    sparse = sparse[:, : n + n.clamp(max=1)]  # N = 0: no tokens at all (SAM2SOD's prompt-free path)
    no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch_size, -1, h, w)
    mask_embed = pe.mask_downscaling(prompts.mask_input.to(no_mask.dtype))
    dense = torch.where(prompts.has_mask.view(-1, 1, 1, 1).to(torch.bool), mask_embed, no_mask)
    return sparse, dense


def _low_pass_matrix(keep: torch.Tensor) -> torch.Tensor:
    """P (n,n) real with P @ v = real(ifft(keep * fft(v))) for real v (the mask is symmetric in f -> -f)."""
    eye = torch.eye(keep.numel(), dtype=torch.float64, device=keep.device)
    return torch.fft.ifft(keep.to(torch.float64)[:, None] * torch.fft.fft(eye, dim=0), dim=0).real


def high_pass_by_matmul(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """`sam_adapter.fft_high_pass` without FFT ops (which the ONNX exporter lacks): the low-frequency mask is
    separable, so the removed part is P_h @ x @ P_w^T with two fixed real matrices (constants in the graph)."""
    from sam2sod.models.peft.sam_adapter import low_freq_mask

    h, w = x.shape[-2:]
    mask = low_freq_mask(int(h), int(w), ratio, x.device)  # = rows[:, None] & cols[None, :]
    p_h, p_w = _low_pass_matrix(mask[:, 0]), _low_pass_matrix(mask[0, :])
    xf = x.float()
    return (xf - p_h.to(xf.dtype) @ xf @ p_w.t().to(xf.dtype)).to(x.dtype)


_ADAPTIVE_AVG_POOL2D = F.adaptive_avg_pool2d


def _pool_matrix(n_in: int, n_out: int, ref: torch.Tensor) -> torch.Tensor:
    """(n_out, n_in) averaging matrix of adaptive average pooling (PyTorch's bins: floor start, ceil end)."""
    a = torch.zeros(n_out, n_in, dtype=ref.dtype, device=ref.device)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        a[i, start:end] = 1.0 / (end - start)
    return a


def adaptive_avg_pool_by_matmul(x: torch.Tensor, output_size: Any) -> torch.Tensor:
    """`F.adaptive_avg_pool2d` for any sizes: the exporter handles only output sizes that divide the input
    (PoolNet pools to 3x3 and 5x5), so other sizes become A_h @ x @ A_w^T with fixed averaging matrices."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    oh, ow = oh or h, ow or w
    if h % oh == 0 and w % ow == 0:
        return _ADAPTIVE_AVG_POOL2D(x, (oh, ow))
    return _pool_matrix(h, oh, x) @ x @ _pool_matrix(w, ow, x).t()


_AVG_POOL2D = F.avg_pool2d


def _static(value: Any) -> Any:
    """Python ints for a pooling size computed from traced shapes (the image size is fixed in the export)."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return int(value)


def avg_pool_static(x: torch.Tensor, kernel_size: Any, stride: Any = None, *args: Any, **kwargs: Any) -> torch.Tensor:
    """`F.avg_pool2d` with the kernel / stride as constants: the exporter needs them static, and PoolNet's FAM
    computes them from the feature map's shape (`min(rate, h)`)."""
    return _AVG_POOL2D(x, _static(kernel_size), _static(stride), *args, **kwargs)


@contextlib.contextmanager
def export_friendly(model: nn.Module, prompts: bool = False) -> Iterator[nn.Module]:
    """Inside, the model traces to ONNX: SAM-Adapter's FFT high-pass and adaptive average pooling to sizes
    that do not divide the input become matmuls and, with `prompts`, this instance gets the export-friendly
    `prompt_groups` / `embed_prompts`."""
    from sam2sod.models.peft import sam_adapter

    patches = [(sam_adapter, "fft_high_pass", high_pass_by_matmul),
               (F, "adaptive_avg_pool2d", adaptive_avg_pool_by_matmul), (F, "avg_pool2d", avg_pool_static)]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    for mod, name, fn in patches:
        setattr(mod, name, fn)
    if prompts:
        model.prompt_groups = types.MethodType(_one_group, model)
        model.embed_prompts = types.MethodType(_embed_for_export, model)
    try:
        yield model
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
        if prompts:
            del model.prompt_groups, model.embed_prompts


class SodOnnx(nn.Module):
    """images -> logits: the prompt-free forward of any model (SAM2 method or baseline)."""

    def __init__(self, model: nn.Module, multimask: bool = False) -> None:
        super().__init__()
        self.model, self.multimask = model, multimask

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images, None, self.multimask)["logits"]


class ImageEncoderOnnx(nn.Module):
    """images -> (image_embed, high_res_feat0, high_res_feat1), as `SAM2SOD.encode_image`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.model.encode_image(images)
        return f["image_embed"], f["high_res_feats"][0], f["high_res_feats"][1]


class PromptDecoderOnnx(nn.Module):
    """(features, points, labels, mask_input, has_mask) -> (logits, iou), as `SAM2SOD.decode` on one group.

    Use it inside `export_friendly(model)` (tracing) or as a reference; outside it, rows are grouped by
    their real point count as in PyTorch.
    """

    def __init__(self, model: nn.Module, multimask: bool = False) -> None:
        super().__init__()
        self.model, self.multimask = model, multimask

    def forward(self, image_embed: torch.Tensor, high_res_feat0: torch.Tensor, high_res_feat1: torch.Tensor,
                point_coords: torch.Tensor, point_labels: torch.Tensor, mask_input: torch.Tensor,
                has_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = {"image_embed": image_embed, "high_res_feats": [high_res_feat0, high_res_feat1]}
        out = self.model.decode(features, _Prompts(point_coords, point_labels, mask_input, has_mask), self.multimask)
        return out["logits"], out["iou"]


def name_dims(data: bytes, shapes: dict[str, tuple[int, ...]], dynamic: dict[str, dict[int, str]]) -> bytes:
    """Set every graph input / output dimension: its name from `dynamic` ('batch', 'points'), else the
    fixed size from `shapes` (the traced example), so no exporter-made name (``Resizelogits_dim_1``) is left."""
    import onnx

    proto = onnx.load_from_string(data)
    for value in [*proto.graph.input, *proto.graph.output]:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        for j, size in enumerate(shapes[value.name]):
            if j >= len(dims):
                break
            named = dynamic.get(value.name, {}).get(j)
            dims[j].Clear()
            if named:
                dims[j].dim_param = named
            else:
                dims[j].dim_value = int(size)
    return proto.SerializeToString()


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]]) -> None:
    """Trace `module` to ONNX in memory, name its dimensions (`name_dims`), then write `path` atomically."""
    from sam2sod.atomic import atomic_write_bytes

    with torch.no_grad():
        result = module(*args)
    result = result if isinstance(result, tuple) else (result,)
    shapes = {k: tuple(v.shape) for k, v in zip([*inputs, *outputs], [*args, *result], strict=True)}

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        kw = {"input_names": inputs, "output_names": outputs, "dynamic_axes": dynamic, "opset_version": OPSET,
              "do_constant_folding": True}
        try:
            torch.onnx.export(module, args, buf, dynamo=False, **kw)
        except TypeError as e:  # torch < 2.5 has no `dynamo` switch (and only the TorchScript exporter)
            if "dynamo" not in str(e):
                raise
            torch.onnx.export(module, args, buf, **kw)
    atomic_write_bytes(path, name_dims(buf.getvalue(), shapes, dynamic))


def example_inputs(model: nn.Module, batch: int = 2, points: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random images and prompts shaped for the model (the decoder's features come from the encoder)."""
    s = int(model.image_size)
    g = torch.Generator().manual_seed(seed)
    out = {"images": torch.randn(batch, 3, s, s, generator=g)}
    if has_prompt_path(model):
        with torch.no_grad():
            f = model.encode_image(out["images"])
        out.update(image_embed=f["image_embed"], high_res_feat0=f["high_res_feats"][0],
                   high_res_feat1=f["high_res_feats"][1],
                   point_coords=torch.rand(batch, points, 2, generator=g) * s,
                   point_labels=torch.randint(0, 2, (batch, points), generator=g),
                   mask_input=torch.randn(batch, 1, s // 4, s // 4, generator=g) * 4,
                   has_mask=torch.arange(batch) % 2 == 0)
    return out


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session for `path` (`threads`: intra-op threads, None = onnxruntime's default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _max_diff(session: Any, feed: dict[str, torch.Tensor], reference: tuple[torch.Tensor, ...]) -> float:
    got = session.run(None, {k: v.numpy() for k, v in feed.items()})
    return max(float((torch.from_numpy(a) - r).abs().max()) for a, r in zip(got, reference, strict=True))


def export_onnx(model: nn.Module, out: Path, multimask: bool = False) -> dict[str, dict[str, Any]]:
    """Write model.onnx (+ image_encoder.onnx, decoder.onnx for SAM2's prompt path) into `out`.

    Each file is checked with onnxruntime at another batch size (and point count) than it was traced with;
    returns {file: {"inputs", "outputs", "max_abs_diff"}} for config.json. SodError if a check fails.
    """
    require_onnx()
    model = model.eval()
    ex = example_inputs(model)
    b, n = "batch", "points"
    files: dict[str, dict[str, Any]] = {}
    plan = [(MODEL_FILE, SodOnnx(model, multimask), ["images"], ["logits"], {"images": {0: b}, "logits": {0: b}})]
    if has_prompt_path(model):
        dyn = {k: {0: b} for k in DECODER_INPUTS} | {"point_coords": {0: b, 1: n}, "point_labels": {0: b, 1: n}}
        plan += [(ENCODER_FILE, ImageEncoderOnnx(model), ["images"], DECODER_INPUTS[:3],
                  {k: {0: b} for k in ["images", *DECODER_INPUTS[:3]]}),
                 (DECODER_FILE, PromptDecoderOnnx(model, multimask), DECODER_INPUTS, ["logits", "iou"],
                  dyn | {"logits": {0: b}, "iou": {0: b}})]
    from sam2sod.names import inside

    check = example_inputs(model, batch=1, points=3, seed=1)
    for name, module, inputs, outputs, dynamic in plan:
        module.eval()  # the exporter restores the wrapper's mode recursively: a training wrapper would leave
        # the model in training mode (BatchNorm on batch statistics) after the export
        with export_friendly(model, prompts=name == DECODER_FILE):
            _export(module, tuple(ex[k] for k in inputs), inside(out, name), inputs, outputs, dynamic)
        feed = {k: check[k] for k in inputs}
        with torch.no_grad():
            ref = module(*feed.values())
        ref = ref if isinstance(ref, tuple) else (ref,)
        diff = _max_diff(onnx_session(out / name), feed, ref)
        scale = max(1.0, max(float(r.abs().max()) for r in ref))
        if not diff <= 1e-3 * scale:
            raise SodError(f"the exported {name} does not reproduce the PyTorch model (max abs difference {diff:.3g}"
                           f" on a check input); please report this with the run's config")
        files[name] = {"inputs": inputs, "outputs": outputs, "max_abs_diff": diff}
    model.eval()
    return files
