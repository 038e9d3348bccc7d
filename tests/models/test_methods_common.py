"""Every registered method: shapes, what trains, frozen weights, tuned-state round trip, identity at init."""

from __future__ import annotations

import pytest
import torch

from sam2sod.models import (
    METHODS,
    count_params,
    create_model,
    load_tuned_state,
    state_for_checkpoint,
)
from sam2sod.models.freeze import is_norm

pytestmark = [pytest.mark.filterwarnings("ignore::sam2sod.models.sam2_backbone.RandomInitWarning"),
              pytest.mark.filterwarnings("ignore:sam2unet is prompt-free")]
S = 32
ALL = sorted(METHODS)
# Substrings of the parameter names each method trains (default options).
TRAINABLE = {
    "adapter_cbam": (".adapters.", ".cbams.", "sam_prompt_encoder.", "sam_mask_decoder."),
    "decoder_only": ("sam_prompt_encoder.", "sam_mask_decoder."),
    "full": ("",),
    "lora": (".lora_", "sam_prompt_encoder.", "sam_mask_decoder."),
    "sam_adapter": (".prompt_generator.", "sam_prompt_encoder.", "sam_mask_decoder."),
    "sam2unet": (".adapters.", "unet."),
    "tuned_sam": (".tuned_blocks.", ".refiner.", "fad."),  # FAD on -> SAM decoder frozen (report 001)
}
IDENTITY_AT_INIT = ("adapter_cbam", "lora", "sam_adapter", "tuned_sam")
PROMPT_FREE_ONLY = ("sam2unet",)


def test_expectations_cover_every_method() -> None:
    assert set(TRAINABLE) == set(ALL)


def all_prompts(prompts_cls, s: int = S, b: int = 2):
    """Every prompt kind (fg, bg, box corners, padding, mask) and one sample without a mask."""
    f = s / 64
    return prompts_cls(
        points=torch.tensor([[[5.0, 6.0], [40.0, 50.0], [10.0, 10.0], [30.0, 30.0]]] * b) * f,
        labels=torch.tensor([[1, 0, 2, 3], [2, 3, 1, -1]][:b]),
        mask_input=torch.randn(b, 1, s // 4, s // 4, generator=torch.Generator().manual_seed(0)),
        has_mask=torch.tensor([True, False][:b]),
    )


def perturb_trainable(model, seed: int = 0, scale: float = 0.05, skip: tuple[str, ...] = ()) -> None:
    """Add noise to every trainable parameter (except names starting with `skip`)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad and not n.startswith(skip):
                p.add_(torch.randn(p.shape, generator=g) * scale)


def scalar_loss(out: dict) -> torch.Tensor:
    loss = out["logits"].mean()
    for key in ("iou", "object_score_logits"):
        if key in out:
            loss = loss + out[key].sum()
    return loss + sum(a.mean() for a in out.get("aux_logits", []))


@pytest.mark.parametrize("method", ALL)
def test_output_shapes_two_sizes(method: str) -> None:
    for s in (32, 64):
        model = create_model(method, image_size=s, seed=1)
        with torch.no_grad():
            out = model(torch.randn(1, 3, s, s))
        assert out["logits"].shape == (1, 1, s, s) and out["low_res_logits"].shape == (1, 1, s // 4, s // 4)
        assert torch.isfinite(out["logits"]).all()
        if method in PROMPT_FREE_ONLY:
            assert [tuple(a.shape) for a in out["aux_logits"]] == [(1, 1, s, s)] * 2
        else:
            assert out["iou"].shape == (1, 1) and out["object_score_logits"].shape == (1, 1)


@pytest.mark.parametrize("method", ALL)
def test_exactly_intended_params_train(method: str, prompts_cls) -> None:
    model = create_model(method, image_size=S, seed=2).train()
    names = dict(model.named_parameters())
    for n, p in names.items():
        assert p.requires_grad == any(t in n for t in TRAINABLE[method]), n
    for n, m in model.named_modules():  # frozen norms stay in eval mode under .train()
        if is_norm(m) and list(m.parameters(recurse=False)):
            assert m.training == any(p.requires_grad for p in m.parameters(recurse=False)), n
    counts = count_params(model)
    assert "decoder" not in counts
    assert counts["total"][1] == sum(p.numel() for p in names.values() if p.requires_grad) > 0

    prompts = None if method in PROMPT_FREE_ONLY else all_prompts(prompts_cls)
    scalar_loss(model(torch.randn(2, 3, S, S), prompts)).backward()
    for n, p in names.items():
        assert (p.grad is not None) == p.requires_grad, n
    before = {n: p.detach().clone() for n, p in names.items()}
    grads = {n: p.grad.clone() for n, p in names.items() if p.grad is not None}
    opt = torch.optim.AdamW([p for p in names.values() if p.requires_grad], lr=1e-3, weight_decay=1e-2)
    opt.step()
    for n, p in names.items():
        if not p.requires_grad:
            assert torch.equal(p, before[n]), n
        elif not torch.equal(p, before[n]):
            continue
        else:  # AdamW cannot move a parameter that is exactly 0 and has a zero gradient
            assert not before[n].any() and not grads[n].any(), n


def _same_outputs(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(all(torch.equal(x, y) for x, y in zip(a[k], b[k], strict=True)) if k == "aux_logits"
               else torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ALL)
def test_tuned_state_round_trip(method: str, sam21_tiny_ckpt) -> None:
    """Trainable params + buffers, with the base file's identity or the random base's seed (rebuilt on load)."""
    ckpt, _ = sam21_tiny_ckpt
    x = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(3))
    for base, fresh in (({"checkpoint": ckpt}, {"checkpoint": ckpt}), ({"seed": 4}, {"seed": 99})):
        model = create_model(method, image_size=S, **base)
        perturb_trainable(model)
        with torch.no_grad():
            model.train()(x)  # moves BatchNorm running statistics (buffers are part of the tuned state)
            model.eval()
            expected = model(x)
        state = state_for_checkpoint(model)
        assert not state["full_state"] and ("frozen_sha256" in state) == ("seed" in base)
        restored = load_tuned_state(create_model(method, image_size=S, **fresh), state)
        assert type(restored) is type(model) and restored.method_cfg == model.method_cfg
        with torch.no_grad():
            assert _same_outputs(expected, restored(x))


@pytest.mark.parametrize("method", IDENTITY_AT_INIT)
def test_identity_at_init(method: str, prompts_cls) -> None:
    frozen = create_model("decoder_only", image_size=S, seed=5)
    tuned = create_model(method, image_size=S, seed=5)
    x = torch.randn(2, 3, S, S)
    with torch.no_grad():
        for prompts in (None, all_prompts(prompts_cls)):
            for multimask in (False, True):
                a, b = frozen(x, prompts, multimask), tuned(x, prompts, multimask)
                assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the tuning modules are wired in: moving their weights (not the SAM decoder's) changes the output
    perturb_trainable(tuned, scale=0.2, skip=("sam_mask_decoder.", "sam_prompt_encoder."))
    with torch.no_grad():
        assert not torch.allclose(frozen(x)["logits"], tuned(x)["logits"])


@pytest.mark.slow
@pytest.mark.parametrize("version", ["sam2", "sam2.1"])
@pytest.mark.parametrize("size", ["tiny", "small", "base_plus", "large"])
def test_every_size_builds_and_runs(version: str, size: str) -> None:
    """Every method on every SAM2 / SAM2.1 size (slow: builds hiera large; run with -m slow)."""
    x = torch.randn(1, 3, S, S)
    frozen = create_model("decoder_only", version=version, size=size, image_size=S, seed=0)
    with torch.no_grad():
        ref = frozen(x)["logits"]
    for method in ALL:
        model = create_model(method, version=version, size=size, image_size=S, seed=0)
        with torch.no_grad():
            out = model(x)
        assert out["logits"].shape == (1, 1, S, S) and torch.isfinite(out["logits"]).all(), method
        if method in IDENTITY_AT_INIT:
            assert torch.equal(out["logits"], ref), method
