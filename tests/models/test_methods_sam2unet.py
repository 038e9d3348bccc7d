"""sam2unet: three outputs, deep-supervision loss, no SAM2 decoder path."""

from __future__ import annotations

import pytest
import torch

from sam2sod.errors import SodError
from sam2sod.losses import structure_loss
from sam2sod.models import SAM2SOD, create_model, method_options
from sam2sod.models.peft.sam2unet import SAM2UNetSOD

pytestmark = pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning")
S = 64


@pytest.fixture(scope="module")
def model() -> SAM2UNetSOD:
    return create_model("sam2unet", image_size=S, seed=0)


def test_structure(model) -> None:
    assert method_options("sam2unet") == {"adapter_dim": 32, "rfb_dim": 64}
    assert isinstance(model, SAM2UNetSOD) and isinstance(model, SAM2SOD)
    assert model.method == "sam2unet" and not model.model_is_pretrained and model.base_info["size"] == "tiny"
    keys = model.state_dict().keys()
    assert not any(k.startswith(("sam_mask_decoder.", "sam_prompt_encoder.", "image_encoder.neck.", "no_mem_embed"))
                   for k in keys)
    trunk = model.image_encoder.trunk
    assert [a.down.in_features for a in trunk.adapters] == [96, 96, 192, 192] + [384] * 7 + [768]
    assert all(a.down.out_features == 32 for a in trunk.adapters)
    assert [r.res[0].in_channels for r in model.unet.rfbs] == [96, 192, 384, 768]
    assert model.device == torch.device("cpu")
    with pytest.raises(SodError, match="no SAM2 mask decoder"):
        model.encode_image(torch.randn(1, 3, S, S))


def test_three_outputs_and_loss(model, prompts_cls) -> None:
    model.train()
    x = torch.randn(2, 3, S, S)
    target = (torch.rand(2, 1, S, S) > 0.5).float()
    out = model(x)
    assert out["logits"].shape == (2, 1, S, S) and out["low_res_logits"].shape == (2, 1, S // 4, S // 4)
    assert len(out["aux_logits"]) == 2 and all(a.shape == (2, 1, S, S) for a in out["aux_logits"])
    assert not torch.allclose(out["aux_logits"][0], out["aux_logits"][1])
    total, parts = model.compute_loss(out, target)
    assert torch.isfinite(total) and set(parts) == {"out0", "out1", "out2"}
    expected = sum(structure_loss(o, target) for o in [out["logits"], *out["aux_logits"]])
    torch.testing.assert_close(total, expected)
    total.backward()
    assert model.unet.side16.weight.grad is not None and model.unet.side8.weight.grad is not None
    assert model.image_encoder.trunk.adapters[0].down.weight.grad is not None
    model.eval()
    with torch.no_grad(), pytest.warns(UserWarning, match="prompt-free"):
        prompted = model(x, prompts_cls(points=torch.ones(2, 1, 2), labels=torch.ones(2, 1, dtype=torch.long)))
        assert torch.equal(prompted["logits"], model(x)["logits"])
