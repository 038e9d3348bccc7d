"""sam2sod: fine-tune SAM2 for salient object detection and score it with the field's metrics."""

__version__ = "0.1.0"
