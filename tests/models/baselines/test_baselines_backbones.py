"""Backbones: torchvision key sets, strict loading of torchvision-format files, errors, random-init warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.models.baselines import BackboneRandomInitWarning, build_baseline
from sam2sod.models.baselines.backbones import VGG16, ResNet50, load_backbone_weights


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def resnet50_spec() -> dict[str, tuple[int, ...]]:
    """torchvision resnet50 state_dict keys -> shapes, written from the architecture (He et al. 2016)."""
    spec = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for li, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"layer{li}.{b}"
            spec[f"{p}.conv1.weight"] = (width, inplanes, 1, 1)
            spec.update(_bn(f"{p}.bn1", width))
            spec[f"{p}.conv2.weight"] = (width, width, 3, 3)
            spec.update(_bn(f"{p}.bn2", width))
            spec[f"{p}.conv3.weight"] = (4 * width, width, 1, 1)
            spec.update(_bn(f"{p}.bn3", 4 * width))
            if b == 0:
                spec[f"{p}.downsample.0.weight"] = (4 * width, inplanes, 1, 1)
                spec.update(_bn(f"{p}.downsample.1", 4 * width))
            inplanes = 4 * width
    spec["fc.weight"], spec["fc.bias"] = (1000, 2048), (1000,)
    return spec


def vgg16_spec(bn: bool) -> dict[str, tuple[int, ...]]:
    """torchvision vgg16 / vgg16_bn keys -> shapes: features.N follow the layer list (conv[, bn], relu; pool)."""
    spec: dict[str, tuple[int, ...]] = {}
    idx, cin = 0, 3
    for block in [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]:
        for c in block:
            spec[f"features.{idx}.weight"], spec[f"features.{idx}.bias"] = (c, cin, 3, 3), (c,)
            if bn:
                spec.update(_bn(f"features.{idx + 1}", c))
            idx += 3 if bn else 2
            cin = c
        idx += 1  # max pool
    for i, (o, n) in zip((0, 3, 6), [(4096, 25088), (4096, 4096), (1000, 4096)], strict=True):
        spec[f"classifier.{i}.weight"], spec[f"classifier.{i}.bias"] = (o, n), (o,)
    return spec


def test_spec_sizes_are_torchvision_parameter_counts():
    """The independent specs reproduce torchvision's published parameter counts."""
    def n_params(spec):
        return sum(torch.Size(s).numel() for k, s in spec.items() if "running" not in k and "num_batches" not in k)
    # torchvision's published weight metadata ("num_params" in the model docs, torchvision.models):
    # ResNet50_Weights.IMAGENET1K_V1 25,557,032; VGG16_Weights.IMAGENET1K_V1 138,357,544;
    # VGG16_BN_Weights.IMAGENET1K_V1 138,365,992
    assert n_params(resnet50_spec()) == 25_557_032
    assert n_params(vgg16_spec(False)) == 138_357_544
    assert n_params(vgg16_spec(True)) == 138_365_992
    assert vgg16_spec(True)["features.41.weight"] == (512,)  # last BN of vgg16_bn


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_resnet50_state_dict_is_torchvision():
    with torch.device("meta"):
        full, body = ResNet50(head=True), ResNet50()
    spec = resnet50_spec()
    assert _shapes(full) == spec
    assert _shapes(body) == {k: v for k, v in spec.items() if not k.startswith("fc.")}


@pytest.mark.parametrize("bn", [False, True])
def test_vgg16_state_dict_is_torchvision(bn: bool):
    with torch.device("meta"):
        full, body = VGG16(batch_norm=bn, head=True), VGG16(batch_norm=bn)
    spec = vgg16_spec(bn)
    assert _shapes(full) == spec
    assert _shapes(body) == {k: v for k, v in spec.items() if not k.startswith("classifier.")}


def test_feature_shapes():
    x = torch.randn(1, 3, 64, 64)
    r = ResNet50().eval()
    with torch.no_grad():
        assert [tuple(f.shape[1:]) for f in r(x)] == [(64, 32, 32), (256, 16, 16), (512, 8, 8), (1024, 4, 4),
                                                      (2048, 2, 2)]
        assert tuple(ResNet50(dilate_last=True).eval()(x)[-1].shape[1:]) == (2048, 4, 4)
        for bn in (False, True):
            feats = VGG16(batch_norm=bn).eval()(x)
            assert [tuple(f.shape[1:]) for f in feats] == [(64, 64, 64), (128, 32, 32), (256, 16, 16),
                                                           (512, 8, 8), (512, 4, 4)]


def fake_checkpoint(spec: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-format state dict, each entry one random value broadcast to its shape (tiny file)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in spec.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        else:
            out[k] = torch.rand(1, generator=g).expand(s) if s else torch.rand((), generator=g)
    return out


def _save(obj, path: Path) -> str:
    torch.save(obj, path)
    return str(path)


@pytest.mark.parametrize("arch", ["resnet50", "vgg16", "vgg16_bn"])
def test_load_torchvision_file_strictly(arch: str, tmp_path: Path):
    spec = resnet50_spec() if arch == "resnet50" else vgg16_spec(arch == "vgg16_bn")
    ckpt = fake_checkpoint(spec)
    path = _save(ckpt, tmp_path / f"{arch}.pth")
    bb = ResNet50() if arch == "resnet50" else VGG16(batch_norm=arch == "vgg16_bn")
    load_backbone_weights(bb, path)
    sd = bb.state_dict()
    assert set(sd) == {k for k in spec if not k.startswith(("fc.", "classifier."))}
    for k, v in sd.items():
        assert torch.equal(v, ckpt[k].expand_as(v)), k


def test_load_with_head_and_old_file_without_counters(tmp_path: Path):
    spec = resnet50_spec()
    ckpt = fake_checkpoint(spec, seed=3)
    full = ResNet50(head=True)
    load_backbone_weights(full, _save(ckpt, tmp_path / "full.pth"))
    assert torch.equal(full.fc.bias, ckpt["fc.bias"].expand(1000))
    old = {k: v for k, v in ckpt.items() if not k.endswith("num_batches_tracked")}  # pre-0.4.1 torchvision files
    bb = ResNet50()
    load_backbone_weights(bb, _save(old, tmp_path / "old.pth"))
    assert torch.equal(bb.layer4[2].bn3.running_var, ckpt["layer4.2.bn3.running_var"].expand(2048))
    assert int(bb.bn1.num_batches_tracked) == 0


def test_bad_weight_files(tmp_path: Path):
    bb = ResNet50()
    with pytest.raises(SodError, match="not found"):
        load_backbone_weights(bb, tmp_path / "nope.pth")
    ckpt = fake_checkpoint(resnet50_spec())
    missing = {k: v for k, v in ckpt.items() if k != "layer3.1.conv2.weight"}
    with pytest.raises(SodError, match=r"missing keys: layer3\.1\.conv2\.weight"):
        load_backbone_weights(bb, _save(missing, tmp_path / "missing.pth"))
    extra = {**ckpt, "module.extra.weight": torch.zeros(1)}
    with pytest.raises(SodError, match=r"unexpected keys: module\.extra\.weight"):
        load_backbone_weights(bb, _save(extra, tmp_path / "extra.pth"))
    wrong = {**ckpt, "fc.weight": torch.zeros(10, 2048)}
    with pytest.raises(SodError, match=r"shape mismatches: fc\.weight"):
        load_backbone_weights(bb, _save(wrong, tmp_path / "wrong.pth"))
    vgg = fake_checkpoint(vgg16_spec(False))
    with pytest.raises(SodError, match="resnet50.*missing keys"):
        load_backbone_weights(bb, _save(vgg, tmp_path / "vgg.pth"))
    with pytest.raises(SodError, match="not a state dict"):
        load_backbone_weights(bb, _save([1, 2], tmp_path / "list.pth"))
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(SodError, match="cannot read"):
        load_backbone_weights(bb, tmp_path / "junk.pth")


def test_random_init_warns_and_weights_load(tmp_path: Path):
    with pytest.warns(BackboneRandomInitWarning, match="ImageNet weights were NOT loaded"):
        m = build_baseline("pfan", image_size=64)
    assert m.pretrained_backbone is False
    ckpt = fake_checkpoint(vgg16_spec(False), seed=5)
    path = _save(ckpt, tmp_path / "vgg16.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackboneRandomInitWarning)
        m = build_baseline("pfan", image_size=64, backbone_weights=path)
    assert m.pretrained_backbone is True
    assert torch.equal(m.backbone.features[28].bias, ckpt["features.28.bias"].expand(512))
    with pytest.raises(SodError, match="missing keys"):  # a VGG model given ResNet weights
        build_baseline("poolnet_vgg", image_size=64,
                       backbone_weights=_save(fake_checkpoint(resnet50_spec()), tmp_path / "r.pth"))
    with pytest.raises(SodError, match="no ImageNet backbone"):
        build_baseline("u2net", image_size=64, backbone_weights=path)
