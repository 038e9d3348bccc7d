"""Hiera's position embedding is computed once at inference and recomputed whenever it could differ."""

from __future__ import annotations

import copy

import pytest
import torch
from sam2.modeling.backbones.hieradet import Hiera

from sam2sod.models import create_model
from sam2sod.models.pos_cache import cached_pos_embed

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")


@pytest.fixture
def calls(monkeypatch) -> list:
    """Counts sam2's own `Hiera._get_pos_embed` computations."""
    seen: list = []
    original = Hiera._get_pos_embed

    def counted(self, hw):
        seen.append(tuple(hw))
        return original(self, hw)

    monkeypatch.setattr(Hiera, "_get_pos_embed", counted)
    return seen


@pytest.mark.parametrize("method", ["decoder_only", "adapter_cbam", "sam_adapter"])
def test_inference_reuses_the_embedding_and_matches(method: str, calls: list) -> None:
    model = create_model(method, image_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        first = model(x)["logits"]
        second = model(x[:1])["logits"]
    assert len(calls) == 1, "one computation for two eval forwards on the same grid"
    torch.testing.assert_close(second, first[:1], atol=1e-5, rtol=1e-5)
    trunk = model.image_encoder.trunk
    with torch.no_grad():
        assert cached_pos_embed(trunk, (24, 24)).shape[1:3] == (24, 24)
    assert calls[-1] == (24, 24) and len(calls) == 2, "another grid is computed anew"


def test_training_and_autograd_never_use_the_cache(calls: list) -> None:
    model = create_model("full", image_size=64)
    x = torch.randn(1, 3, 64, 64)
    model.train()
    model(x)["logits"].sum().backward()
    model(x)
    assert len(calls) == 2
    assert model.image_encoder.trunk.pos_embed.grad.abs().sum() > 0
    model.eval()
    model(x)  # eval but autograd on (e.g. a gradient-based attribution): computed every time
    assert len(calls) == 3


def test_an_optimizer_step_invalidates_it(calls: list) -> None:
    model = create_model("full", image_size=64)
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        before = model(x)["logits"]
    opt = torch.optim.SGD([model.image_encoder.trunk.pos_embed], lr=10.0)
    model.image_encoder.trunk.pos_embed.grad = torch.ones_like(model.image_encoder.trunk.pos_embed)
    opt.step()
    with torch.no_grad():
        after = model(x)["logits"]
    assert len(calls) == 2 and not torch.allclose(before, after)


def test_a_deep_copy_caches_for_itself(calls: list) -> None:
    model = create_model("decoder_only", image_size=64)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.image_encoder.trunk.pos_embed.add_(1.0)  # only the copy changes
        a, b = model(torch.zeros(1, 3, 64, 64)), twin(torch.zeros(1, 3, 64, 64))
    assert twin.image_encoder.trunk._get_pos_embed.__self__ is twin.image_encoder.trunk
    assert not torch.allclose(a["logits"], b["logits"])
    assert not any("cache" in k for k in model.state_dict())
