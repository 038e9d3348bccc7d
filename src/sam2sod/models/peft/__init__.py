"""Parameter-efficient tuning modules for SAM2's image encoder."""

from sam2sod.models.peft.adapter_cbam import CBAM, Adapter, AdapterCBAMHiera, apply_adapter_cbam

__all__ = ["CBAM", "Adapter", "AdapterCBAMHiera", "apply_adapter_cbam"]
