"""The baseline registry: seeded builds, option checking, helpers (edge maps, losses, F3Net sizes)."""

from __future__ import annotations

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.models.baselines import BASELINES, F3Net, baseline_options, build_baseline
from sam2sod.models.baselines.common import laplacian_edges, mask_edges
from sam2sod.models.baselines.pfan import pfan_loss
from sam2sod.models.baselines.poolnet import balanced_bce


def test_registry_entries():
    assert set(BASELINES) == {"f3net", "pfan", "poolnet", "poolnet_vgg", "u2net", "u2netp"}
    for name, (builder, desc) in BASELINES.items():
        assert callable(builder) and isinstance(desc, str) and desc, name
        assert baseline_options(name)["backbone_weights"] is None
    assert baseline_options("poolnet") == {"backbone_weights": None, "edge": False}


def test_seeded_build_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_baseline("u2netp", image_size=64, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = build_baseline("u2netp", image_size=64, seed=7)
    c = build_baseline("u2netp", image_size=64, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training and a.baseline == "u2netp" and a.image_size == 64
    assert a.baseline_cfg == {"backbone_weights": None}


def test_bad_names_and_options():
    with pytest.raises(SodError, match="unknown baseline 'u3net'.*f3net, pfan, poolnet"):
        build_baseline("u3net", image_size=64)
    with pytest.raises(SodError, match=r"unknown option\(s\) for baseline 'poolnet': edges \(accepted: "
                                       r"backbone_weights, edge\)"):
        build_baseline("poolnet", image_size=64, edges=True)
    for size in (0, 48, 100, 64.0):
        with pytest.raises(SodError, match="multiple of 32"):
            build_baseline("u2netp", image_size=size)


def test_f3net_train_sizes():
    assert F3Net.TRAIN_SIZES == (224, 256, 288, 320, 352)
    assert all(s % 32 == 0 for s in F3Net.TRAIN_SIZES)


def test_edge_maps():
    m = torch.zeros(1, 1, 16, 16)
    m[..., 4:12, 4:12] = 1.0
    e = mask_edges(m)
    assert set(e.unique().tolist()) == {0.0, 1.0}
    assert e[0, 0, 8, 8] == 0 and e[0, 0, 0, 0] == 0 and e[0, 0, 4, 8] == 1 and e[0, 0, 3, 8] == 1
    lap = laplacian_edges(m)
    assert lap[0, 0, 8, 8] == 0 and lap[0, 0, 0, 0] == 0 and lap[0, 0, 4, 4] > 0.99
    assert laplacian_edges(torch.full((1, 1, 8, 8), 0.7)).max() < 1e-6  # flat: no boundary


def test_paper_losses_prefer_the_truth():
    m = torch.zeros(2, 1, 32, 32)
    m[..., 8:24, 8:24] = 1.0
    good, bad = (m * 2 - 1) * 8, torch.zeros_like(m)
    assert pfan_loss(good, m)[0] < pfan_loss(bad, m)[0]
    e = mask_edges(m)
    assert balanced_bce((e * 2 - 1) * 8, e) < balanced_bce(torch.zeros_like(e), e)
