"""SAM2SOD forward: prompt-free vs prompted, mixed batches, embedding cache, input checks."""

from __future__ import annotations

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.models import create_model

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 64


@pytest.fixture(scope="module")
def model():
    return create_model("decoder_only", size="tiny", image_size=S, seed=3)


def _x(b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, S, S, generator=torch.Generator().manual_seed(seed))


def test_prompt_free_equivalents_and_prompted_differs(model, prompts_cls) -> None:
    x = _x()
    with torch.no_grad():
        free = model(x)
        empty = model(x, prompts_cls())
        zero_n = model(x, prompts_cls(points=torch.zeros(2, 0, 2), labels=torch.zeros(2, 0, dtype=torch.long)))
        no_mask = model(x, prompts_cls(mask_input=torch.randn(2, 1, S // 4, S // 4),
                                       has_mask=torch.tensor([False, False])))
        fg = model(x, prompts_cls(points=torch.tensor([[[20.0, 30.0]], [[40.0, 10.0]]]),
                                  labels=torch.ones(2, 1, dtype=torch.long)))
    for other in (empty, zero_n, no_mask):
        assert all(torch.equal(free[k], other[k]) for k in free)
    assert not torch.allclose(free["logits"], fg["logits"])
    sparse, dense = model.embed_prompts(None, 2)
    assert sparse.shape == (2, 0, 256) and dense.shape == (2, 256, S // 16, S // 16)
    sparse, _ = model.embed_prompts(prompts_cls(points=torch.zeros(2, 3, 2),
                                                labels=torch.ones(2, 3, dtype=torch.long)), 2)
    assert sparse.shape == (2, 4, 256)  # SAM pads one "not a point" token when there is no box input


def test_mixed_batch_equals_per_sample(model, prompts_cls) -> None:
    x = _x()
    g = torch.Generator().manual_seed(1)
    p = prompts_cls(
        points=torch.tensor([[[10.0, 12.0], [50.0, 40.0]], [[5.0, 6.0], [60.0, 58.0]]]),
        labels=torch.tensor([[1, -1], [2, 3]]),
        mask_input=torch.randn(2, 1, S // 4, S // 4, generator=g) * 5,
        has_mask=torch.tensor([True, False]),
    )
    with torch.no_grad():
        batch = model(x, p, multimask=True)
        for i in range(2):
            pi = prompts_cls(p.points[i:i + 1], p.labels[i:i + 1], p.mask_input[i:i + 1], p.has_mask[i:i + 1])
            single = model(x[i:i + 1], pi, multimask=True)
            for k in ("logits", "all_logits", "low_res_logits", "iou", "object_score_logits"):
                torch.testing.assert_close(batch[k][i:i + 1], single[k], atol=1e-5, rtol=1e-5)
        # sample 0's mask is really used, sample 1's mask is really ignored
        p_off = prompts_cls(p.points, p.labels, p.mask_input, torch.tensor([False, False]))
        off = model(x, p_off, multimask=True)
    assert not torch.allclose(off["logits"][0], batch["logits"][0])
    torch.testing.assert_close(off["logits"][1], batch["logits"][1], atol=1e-5, rtol=1e-5)


def test_cached_embedding_reprompt_equals_forward(model, prompts_cls) -> None:
    x = _x(1, seed=5)
    p1 = prompts_cls(points=torch.tensor([[[30.0, 30.0]]]), labels=torch.tensor([[1]]))
    p2 = prompts_cls(points=torch.tensor([[[8.0, 8.0], [56.0, 60.0]]]), labels=torch.tensor([[2, 3]]))
    with torch.no_grad():
        feats = model.encode_image(x)
        for p in (p1, p2, None):
            for multimask in (False, True):
                a, b = model.decode(feats, p, multimask), model(x, p, multimask)
                assert all(torch.equal(a[k], b[k]) for k in a)


def test_multimask_picks_highest_predicted_iou(model) -> None:
    with torch.no_grad():
        out = model(_x(), multimask=True)
    best = out["iou"].argmax(dim=1)
    assert torch.equal(out["best_index"], best)
    for i in range(2):
        assert torch.equal(out["logits"][i, 0], out["all_logits"][i, best[i]])
    up = torch.nn.functional.interpolate(out["low_res_logits"], size=(S, S), mode="bilinear", align_corners=False)
    assert torch.equal(up, out["all_logits"])


def test_input_checks(model, prompts_cls) -> None:
    with pytest.raises(SodError, match=r"\(B,3,64,64\)"):
        model(torch.randn(1, 3, 96, 96))
    with pytest.raises(SodError):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="mask_input"):
        model(_x(1), prompts_cls(mask_input=torch.zeros(1, 1, 32, 32), has_mask=torch.tensor([True])))
    with pytest.raises(ValueError, match="labels"):
        model(_x(1), prompts_cls(points=torch.zeros(1, 2, 2), labels=torch.zeros(1, 3, dtype=torch.long)))


def test_gradients_flow_through_logits(model) -> None:
    x = _x(1).requires_grad_(True)
    model.train()
    try:
        out = model(x)
        out["logits"].sum().backward()
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
