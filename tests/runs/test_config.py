"""Config dataclasses: YAML loading, --set overrides, validation errors that name the key."""

from __future__ import annotations

import math

import pytest

from sam2sod.errors import SodError
from sam2sod.runs.config import CONFIG_DIR, TrainConfig, dump_yaml, load_config
from sam2sod.runs.runtime import param_groups, warmup_cosine


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(None, ["optim.lr=1e-3", "model.image_size=128", "data.augment.hflip=0", "model.checkpoint=null",
                             "model.args={adapter_ratio: 0.5}"])
    assert isinstance(cfg, TrainConfig)
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.model.image_size == 128 and cfg.data.augment.hflip == 0.0
    assert cfg.model.args == {"adapter_ratio": 0.5}
    p = tmp_path / "c.yaml"
    p.write_text(dump_yaml(cfg))
    assert load_config(p) == cfg  # the resolved config saved in a run dir loads back identically


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 1e-4\n")
    assert load_config(p).optim.lr == pytest.approx(1e-4)


@pytest.mark.parametrize(("override", "needle"), [
    ("optim.lrr=1", "optim.lrr"),
    ("optim.epochs=two", "optim.epochs"),
    ("model.image_size=100", "multiple of 32"),
    ("optim.amp=fp8", "optim.amp"),
    ("nonsense", "KEY=VALUE"),
    ("optim=3", "optim"),
])
def test_bad_values_name_the_key(override, needle):
    with pytest.raises(SodError, match=needle.replace(".", r"\.")):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(SodError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(SodError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_bundled_configs_load(name):
    assert load_config(name).model.image_size % 32 == 0


def test_warmup_cosine_shape():
    lrs = [warmup_cosine(s, total=100, warmup=10, min_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert warmup_cosine(100, 100, 10, 0.1) == pytest.approx(0.1)
    mid = warmup_cosine(55, 100, 10, 0.0)
    assert mid == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_param_groups_split_decay():
    import torch

    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    m[2].weight.requires_grad_(False)
    decay, no_decay = param_groups(m, 0.01)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(SodError, match="no trainable"):
        param_groups(m, 0.01)


def test_list_values_and_budget():
    cfg = load_config(None, ["data.multiscale=[224, 256]", "optim.time_budget_min=1.5"])
    assert cfg.data.multiscale == [224, 256] and cfg.optim.time_budget_min == 1.5
    with pytest.raises(SodError, match="data.multiscale"):
        load_config(None, ["data.multiscale=224"])
