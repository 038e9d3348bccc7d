"""Parity of SAM2SOD (adapter_cbam at init, i.e. zero-initialised tuning) with sam2's own code.

1. `SAM2ImagePredictor.set_image` + `predict` (-> `_predict`), run unmodified: torchvision is
   replaced in sys.modules by `sam2sod.models.torchvision_standin` *only inside this test* (the
   image is given at the model size, so its Resize is the identity), and the predictor's
   hard-coded 1024 feature sizes `_bb_feat_sizes` are set from image_size.
2. `SAM2Base._track_step` on an initial conditioning frame (the path SAM2 uses for a prompted
   first frame in training and video inference): it additionally gates masks by the object
   score, so the object-score head is biased positive here and the gate is asserted open.
"""

from __future__ import annotations

import copy
import importlib
import sys

import numpy as np
import pytest
import torch

from sam2sod.models import SAM2_MEAN, SAM2_STD, SAM2SOD, build_sam2_model, feature_sizes
from sam2sod.models.peft.adapter_cbam import apply_adapter_cbam
from sam2sod.models.torchvision_standin import standin_modules

pytestmark = [
    pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),  # sam2 transforms
]
S = 64


@pytest.fixture
def predictor_module(monkeypatch):
    """sam2.sam2_image_predictor imported against a torchvision stub; cleaned up afterwards."""
    tv, tr = standin_modules()
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.transforms", tr)
    names = ("sam2.sam2_image_predictor", "sam2.utils.transforms")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    try:
        yield importlib.import_module("sam2.sam2_image_predictor")
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def pair():
    """(sam: SAM2Base, ours: SAM2SOD with adapter_cbam injected), same base weights."""
    sam = build_sam2_model("sam2.1", "tiny", S, seed=11)
    with torch.no_grad():  # an "object present" score so SAM2Base's gate stays open (test 2)
        sam.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    ours = SAM2SOD(copy.deepcopy(sam))
    apply_adapter_cbam(ours)
    return sam.eval(), ours.eval()


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(S, S, 3), dtype=np.uint8)


def _normalised(img: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
    mean, std = torch.tensor(SAM2_MEAN).view(3, 1, 1), torch.tensor(SAM2_STD).view(3, 1, 1)
    return ((x - mean) / std)[None]


class _P:
    def __init__(self, points, labels):
        self.points, self.labels, self.mask_input, self.has_mask = points, labels, None, None


@pytest.mark.parametrize("multimask", [False, True])
def test_parity_with_sam2_image_predictor(predictor_module, pair, multimask: bool) -> None:
    sam, ours = pair
    predictor = predictor_module.SAM2ImagePredictor(sam)
    predictor._bb_feat_sizes = feature_sizes(S)  # sam2 hard-codes the 1024 sizes here
    img = _image()
    predictor.set_image(img)
    box = np.array([8.0, 12.0, 40.0, 52.0])
    point = np.array([[30.0, 20.0]])
    masks, ious, low = predictor.predict(point_coords=point, point_labels=np.array([1]), box=box,
                                         multimask_output=multimask, return_logits=True)
    # predictor order: box corners (labels 2, 3) first, then the points
    p = _P(torch.tensor([[[8.0, 12.0], [40.0, 52.0], [30.0, 20.0]]]), torch.tensor([[2, 3, 1]]))
    with torch.no_grad():
        out = ours(_normalised(img), p, multimask=multimask)
    all_logits = out["all_logits"] if multimask else out["logits"]
    torch.testing.assert_close(all_logits[0], torch.from_numpy(masks), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["iou"][0], torch.from_numpy(ious), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["low_res_logits"][0].clamp(-32, 32), torch.from_numpy(low),
                               atol=1e-5, rtol=1e-5)
    # box-only, prompt-free cases too
    for kwargs, prompt in (
        ({"box": box}, _P(torch.tensor([[[8.0, 12.0], [40.0, 52.0]]]), torch.tensor([[2, 3]]))),
    ):
        m2, i2, _ = predictor.predict(multimask_output=multimask, return_logits=True, **kwargs)
        with torch.no_grad():
            o2 = ours(_normalised(img), prompt, multimask=multimask)
        torch.testing.assert_close((o2["all_logits"] if multimask else o2["logits"])[0], torch.from_numpy(m2),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(o2["iou"][0], torch.from_numpy(i2), atol=1e-5, rtol=1e-5)


def test_parity_prompt_free_with_predictor_internals(predictor_module, pair) -> None:
    """No prompt at all: the predictor's `_predict(None, None)` path (sparse (1,0,256))."""
    sam, ours = pair
    predictor = predictor_module.SAM2ImagePredictor(sam)
    predictor._bb_feat_sizes = feature_sizes(S)
    img = _image(1)
    predictor.set_image(img)
    masks, ious, _ = predictor._predict(None, None, multimask_output=False, return_logits=True)
    with torch.no_grad():
        out = ours(_normalised(img))
    torch.testing.assert_close(out["logits"], masks, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["iou"], ious, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("points", "labels"), [
    ([[8.0, 12.0], [40.0, 52.0]], [2, 3]),  # a box: 2 points -> SAM2Base picks single-mask output
    ([[30.0, 20.0]], [1]),  # one click -> SAM2Base picks multimask output on the first frame
])
def test_parity_with_sam2base_track_step(pair, points, labels) -> None:
    sam, ours = pair
    x = _normalised(_image(2))
    coords, labs = torch.tensor([points]), torch.tensor([labels], dtype=torch.int32)
    with torch.no_grad():
        backbone_out = sam.forward_image(x)
        _, feats, pos, sizes = sam._prepare_backbone_features(backbone_out)
        _, sam_out, _, _ = sam._track_step(
            frame_idx=0, is_init_cond_frame=True, current_vision_feats=feats, current_vision_pos_embeds=pos,
            feat_sizes=sizes, point_inputs={"point_coords": coords, "point_labels": labs}, mask_inputs=None,
            output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, num_frames=1,
            track_in_reverse=False, prev_sam_mask_logits=None,
        )
        multimask = sam._use_multimask(True, {"point_labels": labs})
        assert multimask == (len(labels) == 1)
        out = ours(x, _P(coords.float(), labs.long()), multimask=multimask)
    low_multi, high_multi, ious, low_best, high_best, _, obj_score = sam_out
    assert (obj_score > 0).all() and torch.equal(obj_score, out["object_score_logits"])
    torch.testing.assert_close(out["low_res_logits"], low_multi, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["iou"], ious, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["logits"], high_best, atol=1e-5, rtol=1e-5)
    if multimask:
        torch.testing.assert_close(out["all_logits"], high_multi, atol=1e-5, rtol=1e-5)
