"""Zero-shot SAM2 (`sam2sod.models.zero_shot`): the three modes on a random-init tiny model in the official
format, sam2's automatic mask generator really called, the documented mask -> saliency rule, option checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.models import SAM2SOD, build_sam2_model
from sam2sod.models import zero_shot_amg as amg_mod
from sam2sod.models.zero_shot import (
    ZeroShotAMG,
    build_zero_shot,
    check_amg_options,
    check_mode,
    zero_shot_label,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]
S = 64
LOOSE = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("mode", ["prompt-free", "centre-point", "amg"])
def test_each_mode_returns_maps_of_the_input_size(sam21_tiny_ckpt, images, mode):
    path, _ = sam21_tiny_ckpt
    model = build_zero_shot(path, mode, image_size=S, amg=LOOSE if mode == "amg" else None)
    assert model.model_is_pretrained and model.base_info["checkpoint"].endswith(".pt")
    assert model.label == f"zero-shot SAM2 ({mode})"
    with torch.no_grad():
        out = model(images)
    assert out["logits"].shape == (2, 1, S, S)
    assert torch.isfinite(out["logits"]).all()
    if mode == "amg":
        sal = out["saliency"]
        assert sal.shape == (2, 1, S, S) and float(sal.min()) >= 0 and float(sal.max()) <= 1
        assert torch.allclose(torch.sigmoid(out["logits"]), sal, atol=1e-5)


def test_prompt_free_and_centre_point_equal_sam2sod_best_of_three(sam21_tiny_ckpt, images, prompts_cls):
    path, sd = sam21_tiny_ckpt
    sam = build_sam2_model("sam2.1", "tiny", S, seed=1)
    sam.load_state_dict(sd)
    ref = SAM2SOD(sam).eval()
    centre = prompts_cls(points=torch.full((2, 1, 2), S / 2), labels=torch.ones(2, 1, dtype=torch.int64))
    with torch.no_grad():
        free = build_zero_shot(path, "prompt-free", image_size=S)(images)["logits"]
        click = build_zero_shot(path, "centre-point", image_size=S)(images)["logits"]
        want_free = ref(images, None, multimask=True)["logits"]
        want_click = ref(images, centre, multimask=True)["logits"]
    assert torch.equal(free, want_free)
    assert torch.equal(click, want_click)
    assert not torch.allclose(free, click)


def test_centre_point_keeps_a_rows_own_prompt(sam21_tiny_ckpt, images, prompts_cls):
    path, _ = sam21_tiny_ckpt
    model = build_zero_shot(path, "centre-point", image_size=S)
    given = prompts_cls(points=torch.tensor([[[10.0, 12.0]], [[0.0, 0.0]]]), labels=torch.tensor([[1], [-1]]))
    p = model.centre_prompts(given, 2)
    assert p.points.tolist() == [[[10.0, 12.0]], [[S / 2, S / 2]]] and p.labels.tolist() == [[1], [1]]


def test_amg_calls_sam2s_generator_and_combines_its_masks(sam21_tiny_ckpt, images, monkeypatch):
    path, _ = sam21_tiny_ckpt
    cls = amg_mod.amg_generator_class()
    assert cls.__name__ == "SAM2AutomaticMaskGenerator" and cls.__module__ == "sam2.automatic_mask_generator"
    calls, seen = [], []
    real = cls.generate

    def spy(self, image):
        calls.append(image.shape)
        anns = real(self, image)
        seen.append(anns)
        return anns

    monkeypatch.setattr(cls, "generate", spy)
    model = build_zero_shot(path, "amg", image_size=S, amg=LOOSE)
    assert isinstance(model, ZeroShotAMG)
    out = model(images)
    assert calls == [(S, S, 3), (S, S, 3)]
    assert out["n_masks"].tolist() == [len(a) for a in seen]
    assert sum(len(a) for a in seen) > 0
    for i, anns in enumerate(seen):
        want = torch.from_numpy(amg_mod.saliency_from_masks(anns, (S, S)))
        assert torch.allclose(out["saliency"][i, 0], want)
    with pytest.raises(SodError, match="own grid of point prompts"):
        model(images, type("P", (), {"labels": torch.ones(2, 1, dtype=torch.int64)})())


def test_combination_rule_on_hand_made_masks():
    centre_block = np.zeros((4, 4), bool)
    centre_block[1:3, 1:3] = True  # centroid at the centre, area 1/4
    corner = np.zeros((4, 4), bool)
    corner[0, 0] = True  # centroid (1/8, 1/8), area 1/16
    full = np.ones((4, 4), bool)  # size prior 0
    anns = [{"segmentation": centre_block, "predicted_iou": 0.9, "stability_score": 1.0},
            {"segmentation": corner, "predicted_iou": 0.5, "stability_score": 0.8},
            {"segmentation": full, "predicted_iou": 1.0, "stability_score": 1.0}]
    w_centre = 0.9 * 1.0 * 1.0 * (4 * 0.25 * 0.75)
    w_corner = 0.5 * 0.8 * math.exp(-(2 * 0.375 ** 2) / (2 * 0.25 ** 2)) * (4 * (1 / 16) * (15 / 16))
    want = np.zeros((4, 4))
    want[1:3, 1:3] = 1.0
    want[0, 0] = w_corner / w_centre
    got = amg_mod.saliency_from_masks(anns, (4, 4))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    assert amg_mod.mask_weight(full, 1.0, 1.0) == 0.0
    assert not amg_mod.saliency_from_masks([], (3, 5)).any()
    # overlapping masks add up before the division by the maximum
    two = [{"segmentation": centre_block, "predicted_iou": 1.0, "stability_score": 1.0}] * 2 + anns[1:2]
    np.testing.assert_allclose(amg_mod.saliency_from_masks(two, (4, 4))[0, 0], w_corner / (2 * 0.75), atol=1e-7)


def test_batched_nms_standin_keeps_the_best_of_overlapping_boxes_per_category():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=torch.float32)
    scores = torch.tensor([0.5, 0.9, 0.8, 0.7])
    cats = torch.tensor([0, 0, 0, 1])
    assert amg_mod.batched_nms(boxes, scores, cats, 0.7).tolist() == [1, 2, 3]  # IoU(0,1) = .81 > .7
    assert amg_mod.batched_nms(boxes, scores, cats, 0.9).tolist() == [1, 2, 3, 0]
    assert amg_mod.box_area(boxes).tolist() == [100, 81, 100, 100]
    assert amg_mod.batched_nms(boxes[:0], scores[:0], cats[:0], 0.5).numel() == 0


@pytest.mark.parametrize(("options", "message"), [
    ({"points_per_side": 0}, r"AMG option points_per_side must be an integer in \[1, 128\], got 0"),
    ({"points_per_side": 4.5}, r"points_per_side must be an integer"),
    ({"pred_iou_thresh": 1.5}, r"AMG option pred_iou_thresh must be a number in \[0, 1\], got 1.5"),
    ({"stability_score_thresh": -0.1}, r"stability_score_thresh must be a number in \[0, 1\]"),
    ({"box_nms_thresh": "high"}, r"box_nms_thresh must be a number in \[0, 1\], got 'high'"),
    ({"min_mask_region_area": -1}, r"min_mask_region_area must be an integer in \[0, 1048576\]"),
    ({"crop_n_layers": 1}, r"unknown AMG option\(s\) crop_n_layers: accepted are points_per_side"),
])
def test_bad_amg_settings_give_one_line_errors(options, message):
    with pytest.raises(SodError, match=message) as err:
        check_amg_options(options)
    assert "\n" not in str(err.value)


def test_modes_and_option_checks_come_before_the_model_is_built(monkeypatch):
    import sam2sod.models.zero_shot as zs

    monkeypatch.setattr(zs, "_base_from_weights", lambda *a, **k: pytest.fail("model built"))
    with pytest.raises(SodError, match="--zero-shot must be one of prompt-free, centre-point, amg, got 'grid'"):
        build_zero_shot(None, "grid")
    with pytest.raises(SodError, match="apply to --zero-shot amg only"):
        build_zero_shot(None, "prompt-free", amg={"points_per_side": 8})
    with pytest.raises(SodError, match="points_per_side"):
        build_zero_shot(None, "amg", amg={"points_per_side": 1000})
    with pytest.raises(SodError, match="multiple of 32"):
        build_zero_shot(None, "amg", image_size=100)
    assert check_mode("center_point") == "centre-point" and zero_shot_label("auto") == "zero-shot SAM2 (amg)"


def test_amg_defaults_are_sam2s(sam21_tiny_ckpt):
    path, _ = sam21_tiny_ckpt
    gen = build_zero_shot(path, "amg", image_size=S).generator()
    assert (gen.pred_iou_thresh, gen.stability_score_thresh, gen.box_nms_thresh) == (0.8, 0.95, 0.7)
    assert gen.point_grids[0].shape == (32 * 32, 2)
    assert gen.predictor._bb_feat_sizes == [(16, 16), (8, 8), (4, 4)]


def test_an_official_name_loads_from_the_weights_cache(sam21_tiny_ckpt, tmp_path, monkeypatch, images):
    import shutil

    path, _ = sam21_tiny_ckpt
    shutil.copy(path, tmp_path / "sam2.1_hiera_tiny.pt")
    monkeypatch.setenv("SAM2SOD_WEIGHTS_DIR", str(tmp_path))
    from sam2sod import load_model
    from sam2sod.weights import resolve_checkpoint

    model = build_zero_shot(resolve_checkpoint("sam2.1_hiera_tiny"), "prompt-free", image_size=S)  # as load_model
    assert load_model("sam2.1_hiera_tiny", "cpu").kind == "official"
    assert model.base_info["checkpoint"] == str(tmp_path / "sam2.1_hiera_tiny.pt") and model.model_is_pretrained
    with torch.no_grad():
        assert torch.equal(model(images)["logits"], build_zero_shot(path, image_size=S)(images)["logits"])
    monkeypatch.setenv("SAM2SOD_WEIGHTS_DIR", str(tmp_path / "empty"))
    with pytest.raises(SodError, match="sam2sod weights download sam2.1_hiera_tiny"):
        load_model("sam2.1_hiera_tiny", "cpu")
    with pytest.raises(SodError, match="not found"):
        build_zero_shot(str(tmp_path / "nothing.pt"), image_size=S)
