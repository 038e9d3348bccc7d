"""Every row's output is independent of the rest of its batch (issue 13: prompt-free means the same thing
in training and at test)."""

from __future__ import annotations

import pytest
import torch

from sam2sod.data.prompts import Prompts, collate_prompts
from sam2sod.models import create_model

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 64


@pytest.fixture(scope="module", params=["decoder_only", "adapter_cbam", "tuned_sam"])
def model(request):
    return create_model(request.param, size="tiny", image_size=S, seed=5).eval()


def _rows() -> list[Prompts]:
    g = torch.Generator().manual_seed(2)
    return [
        Prompts(),  # prompt-free
        Prompts(points=torch.tensor([[20.0, 30.0]]), labels=torch.tensor([1])),  # 1 point
        Prompts(points=torch.tensor([[5.0, 6.0], [40.0, 41.0], [60.0, 2.0]]), labels=torch.tensor([1, 0, 1])),
        Prompts(box=torch.tensor([8.0, 10.0, 50.0, 55.0])),  # box
        Prompts(mask_input=torch.randn(1, S // 4, S // 4, generator=g) * 5),  # mask only
        Prompts(),  # a second prompt-free row
    ]


@pytest.mark.parametrize("multimask", [False, True])
def test_each_row_equals_the_row_alone(model, multimask: bool) -> None:
    rows = _rows()
    x = torch.randn(len(rows), 3, S, S, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batch = model(x, collate_prompts(rows, S), multimask=multimask)
        for i, p in enumerate(rows):
            alone = model(x[i:i + 1], collate_prompts([p], S), multimask=multimask)
            for k in ("logits", "low_res_logits", "iou"):
                torch.testing.assert_close(batch[k][i:i + 1], alone[k], atol=1e-5, rtol=1e-5,
                                           msg=lambda m, i=i, k=k: f"row {i} ({rows[i].kinds}) {k}: {m}")


def test_prompt_free_row_in_a_mixed_batch_equals_evaluation(model) -> None:
    """The prompt-free row of a mixed training batch gets what `prompts=None` (evaluation) gives."""
    rows = _rows()
    x = torch.randn(len(rows), 3, S, S, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mixed = model(x, collate_prompts(rows, S))["logits"]
        free = model(x)["logits"]
    for i in (0, 5):
        torch.testing.assert_close(mixed[i], free[i], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(mixed[1], free[1], atol=1e-4)  # the 1-point row really is prompted


def test_prompt_groups_by_real_point_count(model) -> None:
    batch = collate_prompts(_rows(), S)
    groups = {n: rows.tolist() for rows, n in model.prompt_groups(batch, 6)}
    assert groups == {0: [0, 4, 5], 1: [1], 2: [3], 3: [2]}
