"""Shared fixtures for the model tests: an official-format SAM2.1 tiny checkpoint and prompts."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pytest
import torch

from sam2sod.models import RandomInitWarning, build_sam2_model

# The models here are tiny (32-64 px): one intra-op thread is faster, and multi-threaded kernels
# slow down by 10-30x when the CPU is shared with another job (spinning worker threads).
torch.set_num_threads(1)


@dataclass
class Prompts:
    """Local stand-in for sam2sod.data.prompts.PromptBatch (same field contract)."""

    points: torch.Tensor | None = None  # (B,N,2) float32 xy in input pixels
    labels: torch.Tensor | None = None  # (B,N) int64: 1 fg, 0 bg, 2/3 box corners, -1 padding
    mask_input: torch.Tensor | None = None  # (B,1,S/4,S/4) logits
    has_mask: torch.Tensor | None = None  # (B,) bool


@pytest.fixture(scope="session")
def prompts_cls() -> type[Prompts]:
    return Prompts


@pytest.fixture(scope="session")
def sam21_tiny_ckpt(tmp_path_factory) -> tuple[str, dict[str, torch.Tensor]]:
    """(path, state_dict): a random SAM2.1 hiera tiny saved as {"model": state_dict}, seed 123."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        sam = build_sam2_model("sam2.1", "tiny", 64, seed=123)
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny_random.pt"
    sd = sam.state_dict()
    torch.save({"model": sd}, path)
    return str(path), sd
