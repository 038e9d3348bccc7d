"""Inference engines and autocast dtypes: `--engine torch|onnxruntime` and `--dtype fp32|bf16|fp16`.

`check_engine` validates the options (one line, before any model is built); `use_engine` turns the model the
loader built into the engine's model: itself for torch, an `OnnxSodModel` for onnxruntime (an ONNX export
folder opens as one directly; a PyTorch model is exported once into the cache, keyed by its weights' hash).
The onnxruntime engine lives in the export layer (`sam2sod.export.onnx_engine`), which registers itself in
`ENGINE_FACTORIES` when imported; `use_engine` imports it by name from `ENGINE_MODULES` on first use.

The default dtype is fp32: bf16 autocast is 1.5-2.0x faster on a CPU with AMX / AVX512-BF16 and keeps S
within 0.001, but moves single pixels of the 8-bit maps by up to 5/255 (docs/performance.md), so it is opt-in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from sam2sod.errors import SodError

__all__ = ["ENGINES", "ENGINE_FACTORIES", "check_engine", "load_engine", "use_engine"]

ENGINES = ("torch", "onnxruntime")
#: engine name -> fn(model, multimask) -> model; filled by the modules in `ENGINE_MODULES` when imported
ENGINE_FACTORIES: dict[str, Callable[[torch.nn.Module, bool], torch.nn.Module]] = {}
ENGINE_MODULES = {"onnxruntime": "sam2sod.export.engine_plugin"}


def check_engine(engine: str, device: torch.device | None = None, dtype: str | None = "fp32", refine: int = 0) -> None:
    """One-line SodError for an unknown engine or an option onnxruntime cannot honour (CUDA, bf16/fp16, refine)."""
    if engine not in ENGINES:
        raise SodError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "torch":
        return
    if device is not None and device.type != "cpu":
        raise SodError(f"--engine onnxruntime runs on the CPU; --device {device} needs --engine torch")
    if dtype not in (None, "fp32"):
        raise SodError(f"--dtype {dtype} needs --engine torch (onnxruntime runs the fp32 graph)")
    if refine:
        raise SodError("--refine needs --engine torch")


def is_engine_model(model: torch.nn.Module) -> bool:
    """True for a model that already runs in another engine (an `OnnxSodModel`)."""
    return hasattr(model, "folder") and hasattr(model, "has_prompt_path")


def use_engine(model: torch.nn.Module, engine: str, multimask: bool = False) -> torch.nn.Module:
    """The model the loader built, run by `engine` ("torch": itself; "onnxruntime": an `OnnxSodModel`)."""
    if engine not in ENGINES:
        raise SodError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "torch":
        if is_engine_model(model):
            raise SodError(f"{model.folder} is an ONNX export: run it with --engine onnxruntime")
        return model
    if is_engine_model(model):
        return model
    load_engine(engine)
    return ENGINE_FACTORIES[engine](model, multimask)


def load_engine(engine: str) -> None:
    """Import the module of a non-torch `engine`, which registers its factory (and its export-folder opener
    in `sam2sod.runs.loader.OPENERS`): call before `ModelSource.build` of an ONNX export folder."""
    if engine != "torch" and engine not in ENGINE_FACTORIES:
        importlib.import_module(ENGINE_MODULES[engine])  # a higher layer, so by name
