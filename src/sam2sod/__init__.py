"""sam2sod: fine-tune SAM2 for salient object detection and score it with the field's metrics."""

from sam2sod.version import __version__

__all__ = ["Predictor", "__version__", "load_model"]


def __getattr__(name: str):
    """Lazy `sam2sod.Predictor` and `sam2sod.load_model` (importing the package stays cheap)."""
    if name == "Predictor":
        from sam2sod.export import hub_open  # noqa: F401  (hf:// models)
        from sam2sod.infer.predictor import Predictor

        return Predictor
    if name == "load_model":
        from sam2sod.export import hub_open  # noqa: F401  (hf:// models)
        from sam2sod.runs.loader import load_model

        return load_model
    raise AttributeError(f"module 'sam2sod' has no attribute {name!r}")
