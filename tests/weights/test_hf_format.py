"""transformers' Sam2Model layout (`sam2sod.hf_format`): a random-init Sam2Model converted to sam2's names gives
the same outputs in sam2's model as transformers' own forward; format detection of weights files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.hf_format import detect_format, from_transformers, image_path_keys, read_base_state_dict
from sam2sod.models import SAM2SOD, build_sam2_model
from sam2sod.models.sam2_backbone import state_dict_mismatch

transformers = pytest.importorskip("transformers")  # in the dev extra; skipped only outside it
pytestmark = [pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")]
S = 256  # transformers' Sam2Config defaults are hiera tiny; image size lowered for CPU speed


@pytest.fixture(scope="module")
def hf_model():
    """A transformers Sam2Model (hiera tiny, 256 px) with every float tensor random, eval mode."""
    from transformers import Sam2Config, Sam2Model

    cfg = Sam2Config()
    cfg.vision_config.backbone_config.image_size = [S, S]
    cfg.vision_config.backbone_feature_sizes = [[S // 4, S // 4], [S // 8, S // 8], [S // 16, S // 16]]
    cfg.prompt_encoder_config.image_size = S
    cfg.mask_decoder_config.dynamic_multimask_via_stability = False  # sam2sod builds with apply_postprocessing=False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Sam2Model(cfg).eval()
        with torch.no_grad():  # transformers zero-initialises pos_embed / no_memory_embedding: randomise all
            for key, value in model.state_dict().items():
                if value.is_floating_point():
                    one = 1.0 if "norm" in key and key.endswith("weight") else 0.0
                    value.copy_(torch.randn_like(value) * 0.05 + one)
            model.prompt_encoder.shared_embedding.positional_embedding.copy_(
                model.shared_image_embedding.positional_embedding)  # one matrix on the hub (sam2 has one)
    return model


@pytest.fixture(scope="module")
def converted(hf_model, tmp_path_factory):
    """(hf file path, SAM2SOD with the converted weights)."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("hf") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in hf_model.state_dict().items()}, path)
    sd, fmt = read_base_state_dict(path)
    assert fmt == "transformers"
    sam = build_sam2_model("sam2.1", "tiny", S, seed=5)
    assert state_dict_mismatch(image_path_keys(sam.state_dict()), sd) is None  # every image-path key, right shapes
    sam.load_state_dict(sd, strict=False)
    return path, SAM2SOD(sam).eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, S, S, generator=torch.Generator().manual_seed(3))


def test_box_prompted_outputs_equal_transformers_forward(hf_model, converted, image):
    _, ours = converted
    box = torch.tensor([[[40.0, 50.0, 200.0, 180.0]]])  # xyxy in input pixels
    prompts = SimpleNamespace(points=box.view(1, 2, 2), labels=torch.tensor([[2, 3]]), mask_input=None, has_mask=None)
    with torch.no_grad():
        want = hf_model(pixel_values=image, input_boxes=box, multimask_output=True)
        got = ours(image, prompts, multimask=True)
    torch.testing.assert_close(got["low_res_logits"], want.pred_masks[:, 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(got["iou"], want.iou_scores[:, 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(got["object_score_logits"], want.object_score_logits[:, 0], atol=1e-4, rtol=0)


def test_prompt_free_outputs_equal_transformers_decoder(hf_model, converted, image):
    """Prompt-free = zero sparse tokens (sam2's predictor). transformers' forward without prompts instead pads one
    "not a point" point (2 tokens after its padding); both conventions are checked against the converted model."""
    _, ours = converted
    with torch.no_grad():
        feats = ours.encode_image(image)
        hf_feats = hf_model(pixel_values=image, multimask_output=True)  # no prompt: transformers' own convention
        emb = hf_feats.image_embeddings
        torch.testing.assert_close(feats["image_embed"], emb[-1], atol=1e-4, rtol=0)
        for a, b in zip(feats["high_res_feats"], emb[:2], strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
        pe = hf_model.prompt_encoder
        dense = pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, S // 16, S // 16)
        want_lr, want_iou, _, _ = hf_model.mask_decoder(
            image_embeddings=emb[-1], image_positional_embeddings=hf_model.get_image_wide_positional_embeddings(),
            sparse_prompt_embeddings=torch.zeros(1, 1, 0, 256), dense_prompt_embeddings=dense,
            multimask_output=True, high_resolution_features=emb[:-1])
        got = ours(image, None, multimask=True)
        torch.testing.assert_close(got["low_res_logits"], want_lr[:, 0], atol=1e-4, rtol=0)
        torch.testing.assert_close(got["iou"], want_iou[:, 0], atol=1e-4, rtol=0)
        # transformers' no-prompt forward == sam2's decoder fed its (0,0) label -1 point
        sam_pe = ours.sam_prompt_encoder
        sparse, dense2 = sam_pe(points=(torch.zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int64)), boxes=None,
                                masks=None)
        lr, iou, _, _ = ours.sam_mask_decoder(
            image_embeddings=feats["image_embed"], image_pe=sam_pe.get_dense_pe(), sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense2, multimask_output=True, repeat_image=False,
            high_res_features=feats["high_res_feats"])
    torch.testing.assert_close(lr, hf_feats.pred_masks[:, 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(iou, hf_feats.iou_scores[:, 0], atol=1e-4, rtol=0)
    assert (got["low_res_logits"] - lr).abs().max() > 1e-3  # the two conventions really differ


def test_detect_format_names_each_kind(converted, tiny_file, tmp_path):
    from safetensors.torch import save_file

    hf_path, _ = converted
    assert detect_format(hf_path) == "transformers"
    assert detect_format(tiny_file[0]) == "sam2"
    export = tmp_path / "export"
    export.mkdir()
    save_file({"image_encoder.trunk.pos_embed": torch.zeros(1)}, export / "model.safetensors",
              metadata={"format": "pt", "sam2sod": "sam2sod-export/1"})
    assert detect_format(export / "model.safetensors") == "sam2sod-export"
    with pytest.raises(SodError, match="sam2sod export folder.*load_exported"):
        read_base_state_dict(export / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"format": "sam2sod-export/1"}))
    save_file({"image_encoder.trunk.pos_embed": torch.zeros(1)}, tmp_path / "model.safetensors")
    assert detect_format(tmp_path / "model.safetensors") == "sam2sod-export"  # known by its config.json
    save_file({"backbone.conv.weight": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(SodError, match="holds no SAM2 image encoder weights"):
        detect_format(tmp_path / "other.safetensors")
    with pytest.raises(SodError, match="not found"):
        detect_format(tmp_path / "missing.pt")


def test_differing_positional_encodings_are_refused(hf_model):
    sd = dict(hf_model.state_dict())
    sd["prompt_encoder.shared_embedding.positional_embedding"] = sd["shared_image_embedding.positional_embedding"] + 1
    with pytest.raises(SodError, match="sam2 has one positional encoding"):
        from_transformers(sd, "x.safetensors")


def test_heads_are_renumbered():
    sd = {f"mask_decoder.iou_prediction_head.{p}.weight": torch.full((1,), float(i))
          for i, p in enumerate(["proj_in", "layers.0", "proj_out"])}
    out = from_transformers(sd)
    assert {k: float(v) for k, v in out.items()} == {
        "sam_mask_decoder.iou_prediction_head.layers.0.weight": 0.0,
        "sam_mask_decoder.iou_prediction_head.layers.1.weight": 1.0,
        "sam_mask_decoder.iou_prediction_head.layers.2.weight": 2.0}


def test_weights_verify_names_the_format(converted, tiny_file, tmp_path):
    from safetensors.torch import save_file

    from sam2sod.weights import verified_line, verify_file

    hf_path, _ = converted
    found = verify_file(hf_path, check_record=False)
    assert (found.format, found.variant) == ("transformers", "sam2.1 hiera tiny")
    assert "transformers' Sam2Model layout" in verified_line(found)
    assert verify_file(tiny_file[0], check_record=False).format == "sam2"
    export = tmp_path / "exp"
    export.mkdir()
    save_file({"image_encoder.trunk.pos_embed": torch.zeros(1)}, export / "model.safetensors",
              metadata={"sam2sod": "sam2sod-export/1"})
    with pytest.raises(SodError, match=r"is the model.safetensors of a sam2sod export folder .*not an official"):
        verify_file(export / "model.safetensors", check_record=False)


def test_zero_shot_model_from_transformers_weights(hf_model, converted, image):
    from sam2sod.models.zero_shot import build_zero_shot

    hf_path, ours = converted
    model = build_zero_shot(hf_path, "prompt-free", image_size=S)
    assert model.model_is_pretrained and model.base_info["format"] == "transformers"
    with torch.no_grad():
        torch.testing.assert_close(model(image)["logits"], ours(image, None, multimask=True)["logits"])
