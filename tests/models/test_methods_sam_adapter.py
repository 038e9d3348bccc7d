"""sam_adapter: FFT high-pass, prompt geometry per Hiera block, wiring."""

from __future__ import annotations

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.models import create_model, method_options
from sam2sod.models.peft.sam_adapter import fft_high_pass, low_freq_mask

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 32


@pytest.mark.parametrize(("h", "w", "ratio"), [(32, 32, 0.25), (64, 32, 0.1), (33, 20, 0.5)])
def test_high_pass_keeps_no_energy_below_the_cut(h: int, w: int, ratio: float) -> None:
    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 3.0
    y = fft_high_pass(x, ratio)
    assert y.shape == x.shape and y.dtype == x.dtype
    low = low_freq_mask(h, w, ratio)
    spec_x, spec_y = torch.fft.fft2(x), torch.fft.fft2(y)
    assert spec_y[..., low].abs().max() < 1e-9 * spec_x.abs().max()  # nothing left below the cut
    torch.testing.assert_close(spec_y[..., ~low], spec_x[..., ~low])  # everything above it kept
    assert abs(low.float().mean().item() - ratio) < 0.1  # about `ratio` of the spectrum removed
    assert bool(low[0, 0])  # the mean (DC) is always removed when ratio > 0
    torch.testing.assert_close(fft_high_pass(x, 0.0), x)


def test_prompts_match_block_geometry_and_wiring() -> None:
    assert method_options("sam_adapter") == {"scale_factor": 32, "freq_ratio": 0.25}
    model = create_model("sam_adapter", image_size=S, seed=0)
    trunk = model.image_encoder.trunk
    gen = trunk.prompt_generator
    assert gen.embedding.out_features == 768 // 32 and len(gen.tune) == 12
    assert [u.out_features for u in gen.up] == [96, 192, 384, 768]
    seen = []
    hooks = [blk.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape))) for blk in trunk.blocks]
    x = torch.randn(1, 3, S, S)
    with torch.no_grad():
        pyr = gen.pyramid(gen.features(x, trunk.patch_embed(x)))
        prompts = [tuple(gen.prompt(i, pyr).shape) for i in range(len(trunk.blocks))]
        before = model(x)["logits"]
    for h in hooks:
        h.remove()
    assert prompts == seen  # P_i has block i's input geometry, q-pool blocks included
    assert seen[1] == (1, 8, 8, 96) and seen[2] == (1, 4, 4, 192) and seen[11] == (1, 1, 1, 768)
    with torch.no_grad():
        torch.nn.init.normal_(gen.up[2].weight, std=0.5)
        assert not torch.allclose(model(x)["logits"], before)
    with pytest.raises(SodError, match="freq_ratio"):
        create_model("sam_adapter", image_size=S, freq_ratio=1.0)
