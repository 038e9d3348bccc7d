"""Registers onnxruntime as an inference engine (`sam2sod.infer.engines`) and ONNX export folders as a model
kind of the loader (`sam2sod.runs.loader.OPENERS["onnx"]`). Imported by `infer.engines.load_engine`."""

from __future__ import annotations

import torch

from sam2sod.export.onnx_engine import OnnxSodModel, onnx_engine_for
from sam2sod.infer.engines import ENGINE_FACTORIES
from sam2sod.runs.loader import OPENERS, LoadedModel, ModelSource


def _onnx_factory(model: torch.nn.Module, multimask: bool) -> torch.nn.Module:
    return onnx_engine_for(model, multimask=multimask)


def _open_onnx_export(source: ModelSource, device: torch.device) -> LoadedModel:
    """An ONNX export folder (`sam2sod export --weights-format onnx`) as an `OnnxSodModel` (CPU)."""
    model = OnnxSodModel.from_export(source.path)
    return LoadedModel(model, "onnx", source.path, source.method, source.image_size, model.multimask,
                       source.pretrained, torch.device("cpu"), data=source.data, export_config=source.export_config)


ENGINE_FACTORIES.setdefault("onnxruntime", _onnx_factory)
OPENERS.setdefault("onnx", _open_onnx_export)
