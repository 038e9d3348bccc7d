"""sam2sod: fine-tune SAM2 for salient object detection and score it with the field's metrics."""

from sam2sod.version import __version__

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    """Lazy `sam2sod.Predictor` (importing the package stays cheap and free of import cycles)."""
    if name == "Predictor":
        from sam2sod.infer.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'sam2sod' has no attribute {name!r}")
