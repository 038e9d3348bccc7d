"""Standalone exports of a finished run: safetensors (PyTorch, no base file needed) and ONNX.

`export_model(run, out_dir, format)` writes the folder; `load_exported(folder)` loads a safetensors
export as a PyTorch module. See `sam2sod.export.package` and `sam2sod.export.onnx_export`.
"""

from sam2sod.export.package import (
    CONFIG_FILE,
    EXPORT_FORMAT,
    FORMATS,
    WEIGHTS_FILE,
    export_model,
    is_export,
    load_exported,
    read_export_config,
)

__all__ = ["CONFIG_FILE", "EXPORT_FORMAT", "FORMATS", "WEIGHTS_FILE", "export_model", "is_export", "load_exported",
           "read_export_config"]
