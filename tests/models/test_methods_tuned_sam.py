"""tuned_sam: tuned block placement, stage changes, identity of the encoder stream, ablation switches."""

from __future__ import annotations

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.models import count_params, create_model, method_options
from sam2sod.models.peft.hiera_wrap import spread
from sam2sod.models.peft.tuned_sam import TunedSAMSOD, refiner_taps

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 32


def test_options() -> None:
    assert method_options("tuned_sam") == {
        "tuned_blocks": 12, "tb_ratio": 0.5, "use_msr": True, "msr_taps": 4, "msr_dim": 64, "use_fad": True,
        "fad_dim": 32, "tune_mask_decoder": None}


@pytest.mark.parametrize(("size", "n", "positions"), [
    ("tiny", 6, [0, 2, 4, 6, 8, 10]),
    ("tiny", 9, [0, 1, 2, 4, 5, 6, 8, 9, 10]),
    ("tiny", 12, list(range(12))),
    ("tiny", "all", list(range(12))),
    ("small", 6, [0, 2, 5, 8, 10, 13]),
    ("small", 9, [0, 1, 3, 5, 7, 8, 10, 12, 14]),
    ("small", 12, [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14]),
    ("small", "all", list(range(16))),
])
def test_block_placement(size: str, n: int | str, positions: list[int]) -> None:
    model = create_model("tuned_sam", size=size, image_size=S, tuned_blocks=n, use_fad=False)
    trunk = model.image_encoder.trunk
    side = trunk.tuned_blocks
    assert side.positions == positions == spread(len(positions), len(trunk.blocks))
    # expand maps the incoming F_tb width to the block's input width; compress halves that width
    cin = side.stem[0].out_channels
    for k, j in enumerate(positions):
        tb = side.blocks[k]
        assert tb.expand[0].in_channels == cin and tb.expand[0].out_channels == trunk.blocks[j].dim
        assert (tb.compress is None) == (k == len(positions) - 1)
        if tb.compress is not None:
            cin = tb.compress[0].out_channels
            assert cin == trunk.blocks[j].dim // 2
    x = torch.randn(1, 3, S, S)
    frozen = create_model("decoder_only", size=size, image_size=S)
    with torch.no_grad():  # resampling across q-pool stage changes runs; the stream starts unchanged
        assert all(torch.equal(a, b) for a, b in zip(trunk(x), frozen.image_encoder.trunk(x), strict=True))
        torch.nn.init.normal_(side.blocks[-1].expand[1].weight)
        assert not torch.equal(trunk(x)[-1], frozen.image_encoder.trunk(x)[-1])


def test_refiner_taps_and_features() -> None:
    assert refiner_taps(list(range(3, 10)), 4) == [3, 5, 7, 9]  # tiny's stride-16 stage: blocks 3..9
    assert refiner_taps(list(range(3, 10)), 1) == [9]
    with pytest.raises(SodError, match="msr_taps"):
        refiner_taps(list(range(3, 10)), 8)
    model = create_model("tuned_sam", image_size=S)
    trunk = model.image_encoder.trunk
    assert trunk.refiner.taps == [3, 5, 7, 9]
    with torch.no_grad():
        feats, msr = trunk.forward_with_refiner(torch.randn(2, 3, S, S))
    assert [tuple(f.shape) for f in msr] == [(2, 32, S // 4, S // 4), (2, 64, S // 8, S // 8)]
    assert all(not f.any() for f in msr)  # the gates start closed: the MSR adds exactly 0


@pytest.mark.parametrize(("cfg", "groups"), [
    ({"tuned_blocks": 0, "use_msr": False, "use_fad": False}, {"prompt_encoder", "mask_decoder"}),
    ({"tuned_blocks": 12, "use_msr": False, "use_fad": False}, {"tuned_blocks", "prompt_encoder", "mask_decoder"}),
    ({"tuned_blocks": 0, "use_msr": True, "use_fad": True}, {"refiner", "fad"}),
    ({"tuned_blocks": 12, "use_msr": True, "use_fad": True}, {"tuned_blocks", "refiner", "fad"}),
    ({"tuned_blocks": 6, "use_msr": True, "use_fad": False}, {"tuned_blocks", "refiner", "prompt_encoder",
                                                              "mask_decoder"}),
    ({"tuned_blocks": 9, "use_fad": True, "tune_mask_decoder": True}, {"tuned_blocks", "refiner", "fad",
                                                                       "prompt_encoder", "mask_decoder"}),
])
def test_ablation_switches(cfg: dict, groups: set[str], prompts_cls) -> None:
    model = create_model("tuned_sam", image_size=S, seed=3, **cfg)
    assert isinstance(model, TunedSAMSOD)
    counts = count_params(model)
    assert {g for g, (_, tr) in counts.items() if tr and g != "total"} == groups
    assert (model.fad is None) != cfg["use_fad"]
    frozen = create_model("decoder_only", image_size=S, seed=3)
    x = torch.randn(2, 3, S, S)
    prompts = prompts_cls(points=torch.tensor([[[4.0, 5.0]], [[20.0, 25.0]]]),
                          labels=torch.ones(2, 1, dtype=torch.long))
    with torch.no_grad():  # every configuration starts equal to the frozen SAM2
        for p in (None, prompts):
            a, b = frozen(x, p, multimask=True), model(x, p, multimask=True)
            assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_options() -> None:
    with pytest.raises(SodError, match="tuned_blocks"):
        create_model("tuned_sam", image_size=S, tuned_blocks=13)
    with pytest.raises(SodError, match="tuned_blocks"):
        create_model("tuned_sam", image_size=S, tuned_blocks="some")
    with pytest.raises(SodError, match="nothing to train"):
        create_model("tuned_sam", image_size=S, tuned_blocks=0, use_msr=False, use_fad=False, tune_mask_decoder=False)
