"""Building SAM2 / SAM2.1 from the package configs, image sizes, official checkpoints."""

from __future__ import annotations

import hashlib
import os
import warnings

import pytest
import sam2
import torch

from sam2sod.errors import SodError
from sam2sod.models import (
    SAM2SOD,
    RandomInitWarning,
    build_sam2_model,
    create_model,
    detect_variant,
    feature_sizes,
    load_checkpoint,
    model_is_pretrained,
    normalize_size,
    state_for_checkpoint,
)
from sam2sod.models.sam2_backbone import config_name, state_dict_mismatch

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")


@pytest.mark.parametrize("version", ["sam2", "sam2.1"])
@pytest.mark.parametrize("size", [64, 96])
def test_build_and_output_shapes(version: str, size: int) -> None:
    model = create_model("decoder_only", version=version, size="t", image_size=size)
    assert model.base_info["version"] == version and model.image_size == size
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        feats = model.encode_image(x)
        out = model(x)
        multi = model.decode(feats, None, multimask=True)
    (s4, _), (s8, _), (s16, _) = feature_sizes(size)
    assert feats["image_embed"].shape == (2, 256, s16, s16)
    assert [tuple(f.shape) for f in feats["high_res_feats"]] == [(2, 32, s4, s4), (2, 64, s8, s8)]
    assert out["logits"].shape == (2, 1, size, size)
    assert out["low_res_logits"].shape == (2, 1, size // 4, size // 4)
    assert out["iou"].shape == (2, 1)
    assert multi["low_res_logits"].shape == (2, 3, size // 4, size // 4)
    assert multi["all_logits"].shape == (2, 3, size, size) and multi["iou"].shape == (2, 3)
    assert multi["logits"].shape == (2, 1, size, size)
    assert torch.isfinite(out["logits"]).all()
    # prompt-free dense PE / mask sizes follow image_size, not 1024
    assert model.sam_prompt_encoder.image_embedding_size == (s16, s16)
    assert model.sam_prompt_encoder.mask_input_size == (s4, s4)


def test_smallest_image_size_32() -> None:
    model = create_model("decoder_only", size="tiny", image_size=32)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), multimask=True)
    assert out["logits"].shape == (1, 1, 32, 32) and out["low_res_logits"].shape == (1, 3, 8, 8)


@pytest.mark.parametrize("bad", [0, -32, 33, 100, 1000, "64", 64.0, True, None])
def test_bad_image_size(bad) -> None:
    with pytest.raises(SodError, match="multiple of 32"):
        build_sam2_model("sam2.1", "tiny", bad)


def test_names_aliases_and_configs_exist() -> None:
    assert [normalize_size(s) for s in ("t", "S", "b+", "l", "base_plus")] == [
        "tiny", "small", "base_plus", "large", "base_plus"]
    assert config_name("sam2", "b+") == "configs/sam2/sam2_hiera_b+.yaml"
    assert config_name("2.1", "tiny") == "configs/sam2.1/sam2.1_hiera_t.yaml"
    root = os.path.dirname(sam2.__file__)
    for v in ("sam2", "sam2.1"):
        for s in ("t", "s", "b+", "l"):
            assert os.path.isfile(os.path.join(root, config_name(v, s)))
    with pytest.raises(SodError, match="unknown SAM2 size"):
        build_sam2_model("sam2.1", "huge", 64)
    with pytest.raises(SodError, match="unknown SAM2 version"):
        build_sam2_model("sam3", "tiny", 64)


def test_random_init_warns_is_seeded_and_keeps_global_rng() -> None:
    state = torch.random.get_rng_state()
    with pytest.warns(RandomInitWarning, match="random init: no SAM2 weights loaded"):
        a = build_sam2_model("sam2", "tiny", 64, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        b = build_sam2_model("sam2", "tiny", 64, seed=7)
        c = build_sam2_model("sam2", "tiny", 64, seed=8)
    assert not model_is_pretrained(a) and a.sam2sod_base_info["seed"] == 7
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["image_encoder.trunk.patch_embed.proj.weight"],
                           sc["image_encoder.trunk.patch_embed.proj.weight"])
    assert not a.sam_mask_decoder.dynamic_multimask_via_stability


def test_official_checkpoint_round_trip(sam21_tiny_ckpt) -> None:
    path, sd = sam21_tiny_ckpt
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomInitWarning)  # a loaded checkpoint must not warn
        sam = build_sam2_model("sam2.1", "tiny", 64, checkpoint=path, seed=0)
        sam96 = build_sam2_model("sam2.1", "tiny", 96, checkpoint=path)  # weights do not depend on size
    loaded = sam.state_dict()
    assert loaded.keys() == sd.keys() and all(torch.equal(loaded[k], sd[k]) for k in sd)
    assert sam96.state_dict().keys() == sd.keys()
    info = sam.sam2sod_base_info
    assert model_is_pretrained(sam) and info["checkpoint"] == os.path.abspath(path)
    with open(path, "rb") as f:
        assert info["sha256"] == hashlib.sha256(f.read()).hexdigest()
    # outputs identical to the model the checkpoint came from
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        src = build_sam2_model("sam2.1", "tiny", 64, seed=123)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = SAM2SOD(src)(x, multimask=True), SAM2SOD(sam)(x, multimask=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bare_state_dict_checkpoint(tmp_path, sam21_tiny_ckpt) -> None:
    _, sd = sam21_tiny_ckpt
    path = tmp_path / "bare.pt"
    torch.save(sd, path)
    sam = build_sam2_model("sam2.1", "tiny", 32, checkpoint=path)
    assert torch.equal(sam.no_mem_embed, sd["no_mem_embed"]) and model_is_pretrained(sam)


def test_sam21_file_into_sam2_model_names_keys_and_variant(sam21_tiny_ckpt) -> None:
    path, _ = sam21_tiny_ckpt
    with pytest.raises(SodError) as e:
        build_sam2_model("sam2", "tiny", 64, checkpoint=path)
    msg = str(e.value)
    assert os.path.basename(path) in msg and "sam2 hiera tiny" in msg
    assert "3 unexpected key(s)" in msg and "no_obj_embed_spatial" in msg and "obj_ptr_tpos_proj.weight" in msg
    assert "looks like sam2.1 hiera tiny" in msg


def test_sam2_keys_into_sam21_model_reports_missing(tmp_path, sam21_tiny_ckpt) -> None:
    _, sd = sam21_tiny_ckpt
    sam2_like = {k: v for k, v in sd.items() if "obj_ptr_tpos_proj" not in k and k != "no_obj_embed_spatial"}
    path = tmp_path / "sam2_like.pt"
    torch.save({"model": sam2_like}, path)
    with pytest.raises(SodError, match=r"3 missing key\(s\).*looks like sam2 hiera tiny"):
        build_sam2_model("sam2.1", "tiny", 32, checkpoint=path)


def _fake_sd(width: int, blocks: int, v21: bool) -> dict[str, torch.Tensor]:
    sd = {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(width, 3, 7, 7)}
    sd.update({f"image_encoder.trunk.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(blocks)})
    if v21:
        sd["no_obj_embed_spatial"] = torch.zeros(1, 64)
    return sd


@pytest.mark.parametrize(("width", "blocks", "size"), [(96, 12, "tiny"), (96, 16, "small"),
                                                       (112, 24, "base_plus"), (144, 48, "large")])
def test_detect_variant(width: int, blocks: int, size: str) -> None:
    assert detect_variant(_fake_sd(width, blocks, True)) == ("sam2.1", size)
    assert detect_variant(_fake_sd(width, blocks, False)) == ("sam2", size)
    assert detect_variant(_fake_sd(100, 3, False)) == ("sam2", None)
    assert detect_variant({"foo": torch.zeros(1)}) == (None, None)


def test_state_dict_mismatch_reports_shapes_and_counts() -> None:
    exp = {f"k{i}": torch.zeros(2) for i in range(8)}
    got = {"k0": torch.zeros(3), **{f"x{i}": torch.zeros(1) for i in range(7)}}
    msg = state_dict_mismatch(exp, got, limit=3)
    assert "7 missing key(s): k1, k2, k3 (and 4 more)" in msg
    assert "7 unexpected key(s)" in msg and "k0 (3,) vs (2,)" in msg
    assert state_dict_mismatch(exp, dict(exp)) is None


@pytest.fixture(scope="module")
def small_sam():
    return build_sam2_model("sam2.1", "tiny", 32)


def test_missing_and_unreadable_checkpoints(tmp_path, small_sam) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(SodError, match="not found: .*nope.pt"):
        load_checkpoint(small_sam, missing)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(SodError, match="cannot read SAM2 checkpoint .*notes.txt"):
        load_checkpoint(small_sam, text)
    other = tmp_path / "other.pt"
    torch.save({"epoch": 3, "lr": 0.1}, other)
    with pytest.raises(SodError, match="other.pt is not a SAM2 checkpoint"):
        load_checkpoint(small_sam, other)
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": {"a": torch.zeros(1)}, "obj": RandomInitWarning("x")}, pickled)
    with pytest.raises(SodError, match="pickled.pt"):  # weights_only refuses arbitrary objects
        load_checkpoint(small_sam, pickled)
    assert not model_is_pretrained(small_sam)


def test_tuned_checkpoint_given_as_base_is_explained(tmp_path) -> None:
    model = create_model("decoder_only", image_size=32)
    path = tmp_path / "tuned.pt"
    torch.save(state_for_checkpoint(model), path)
    with pytest.raises(SodError, match="fine-tuned checkpoint, not a SAM2 base"):
        build_sam2_model("sam2.1", "tiny", 32, checkpoint=path)


# SAM 2 model sizes as published in the facebookresearch/sam2 README model table ("Size (M)"; also Ravi et al.,
# "SAM 2: Segment Anything in Images and Videos", 2024): hiera tiny 38.9M, small 46M, base+ 80.8M, large 224.4M,
# checked to half a unit of the printed last digit. The README prints the same figures for SAM 2.1, whose
# configs add exactly `no_obj_embed_spatial` (1 x mem_dim 64) and `obj_ptr_tpos_proj` (Linear 256 -> 64).
SAM2_PUBLISHED_M = {"tiny": (38.9, 0.05), "small": (46.0, 0.5), "base_plus": (80.8, 0.05), "large": (224.4, 0.05)}
SAM21_EXTRA = 64 + (256 * 64 + 64)


@pytest.mark.parametrize("size", [s if s == "tiny" else pytest.param(s, marks=pytest.mark.slow)
                                  for s in SAM2_PUBLISHED_M])
def test_sam2_parameter_counts_match_published_sizes(size: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        n2 = sum(p.numel() for p in build_sam2_model("sam2", size, 32, seed=0).parameters())
        n21 = sum(p.numel() for p in build_sam2_model("sam2.1", size, 32, seed=0).parameters())
    published, tol = SAM2_PUBLISHED_M[size]
    assert abs(n2 / 1e6 - published) <= tol, (size, n2, published)
    assert n21 - n2 == SAM21_EXTRA, (size, n21 - n2)
