"""Parameter-efficient tuning modules for SAM2's image encoder (one file per method)."""

from sam2sod.models.peft.adapter_cbam import CBAM, Adapter, AdapterCBAMHiera, apply_adapter_cbam
from sam2sod.models.peft.lora import LoRALinear, apply_lora, merge_lora
from sam2sod.models.peft.sam2unet import SAM2UNetSOD, apply_sam2unet
from sam2sod.models.peft.sam_adapter import SAMAdapterHiera, apply_sam_adapter, fft_high_pass
from sam2sod.models.peft.tuned_sam import TunedSAMSOD, apply_tuned_sam

__all__ = [
    "CBAM", "Adapter", "AdapterCBAMHiera", "LoRALinear", "SAM2UNetSOD", "SAMAdapterHiera", "TunedSAMSOD",
    "apply_adapter_cbam", "apply_lora", "apply_sam2unet", "apply_sam_adapter", "apply_tuned_sam", "fft_high_pass",
    "merge_lora",
]
