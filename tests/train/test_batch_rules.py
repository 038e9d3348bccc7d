"""Issue 13 training rules: prompt policy per method, every simulation setting passed through, SAM's
multimask rule (min loss + IoU head on every mask), the edge branch's loss."""

from __future__ import annotations

import pytest
import torch

from sam2sod.losses import edge_loss, edge_target, sod_objective
from sam2sod.models import METHODS, create_model, trains_with_prompts
from sam2sod.models.baselines import BASELINES
from sam2sod.models.random_init import quiet_random_init
from sam2sod.runs.config import load_config
from sam2sod.train.batch import compute_loss, iou_head_weight, prompt_config, prompts_enabled, simulate_batch_prompts

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
S = 32


def _masks(b: int = 3) -> torch.Tensor:
    m = torch.zeros(b, 1, S, S)
    m[:, :, 8:24, 6:20] = 1.0
    return m


def test_policy_only_report_000_trains_with_prompts() -> None:
    assert [m for m in METHODS if trains_with_prompts(m)] == ["adapter_cbam"]
    assert not any(trains_with_prompts(b) for b in BASELINES)


@pytest.mark.parametrize("method", [*METHODS, "u2netp"])
def test_trainer_follows_the_policy_and_simulates_nothing_it_will_not_use(method, monkeypatch) -> None:
    calls = []
    import sam2sod.data.prompts as prompts_mod

    real = prompts_mod.simulate_prompts
    monkeypatch.setattr(prompts_mod, "simulate_prompts", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = load_config(None, [f"model.image_size={S}", f"model.method={method}", "prompts.p_prompt_free=0",
                             "prompts.p_points=1"])
    out = simulate_batch_prompts(_masks(), cfg, 0, torch.device("cpu"))
    assert prompts_enabled(cfg) is (method == "adapter_cbam")
    assert (out is not None) is (method == "adapter_cbam") and bool(calls) is (method == "adapter_cbam")


def test_config_overrides_the_policy() -> None:
    on = load_config(None, [f"model.image_size={S}", "model.method=tuned_sam", "prompts.enabled=true",
                            "prompts.p_prompt_free=0", "prompts.p_box=1"])
    off = load_config(None, ["model.method=adapter_cbam", "prompts.enabled=false"])
    assert simulate_batch_prompts(_masks(), on, 0, torch.device("cpu")) is not None
    assert simulate_batch_prompts(_masks(), off, 0, torch.device("cpu")) is None


def test_every_prompt_setting_reaches_the_simulation() -> None:
    cfg = load_config(None, ["prompts.mask_kernel=[5, 9]", "prompts.logit_scale=4.5", "prompts.box_min_shift_px=3",
                             "prompts.box_jitter=0.2", "prompts.k_fg=2", "prompts.k_bg=1"])
    p = prompt_config(cfg)
    assert (p.mask_kernel, p.logit_scale, p.box_min_shift_px, p.box_jitter, p.k_fg, p.k_bg) == \
        ((5, 9), 4.5, 3.0, 0.2, 2, 1)
    cfg = load_config(None, [f"model.image_size={S}", "prompts.p_prompt_free=0", "prompts.p_mask=1",
                             "prompts.p_points=0", "prompts.p_box=0", "prompts.logit_scale=4.5"])
    batch = simulate_batch_prompts(_masks(), cfg, 0, torch.device("cpu"))
    assert batch.has_mask.all() and set(batch.mask_input.unique().tolist()) == {-4.5, 4.5}


def test_multimask_loss_is_the_best_mask_and_iou_head_learns_every_mask() -> None:
    cfg = load_config(None, ["model.multimask=true"])
    assert iou_head_weight(cfg) == 1.0 and iou_head_weight(load_config(None, [])) == 0.0
    masks = _masks(2)
    good = (masks * 2 - 1) * 8.0  # matches the GT
    bad = -good
    # sample 0: mask 1 is right; sample 1: mask 2 is right
    all_logits = torch.stack([torch.cat([bad[0], good[0], bad[0]]), torch.cat([bad[1], bad[1], good[1]])])
    all_logits.requires_grad_(True)
    low = torch.nn.functional.interpolate(all_logits.detach(), size=(S // 4, S // 4), mode="bilinear")
    true_iou = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    out = {"all_logits": all_logits, "logits": all_logits[:, :1], "low_res_logits": low, "iou": true_iou.clone()}
    loss, parts = compute_loss(out, masks, cfg)
    per_best = torch.stack([sod_objective(good[i:i + 1], masks[i:i + 1])[0] for i in range(2)]).mean()
    torch.testing.assert_close(loss, per_best, atol=1e-6, rtol=1e-6)  # IoU head exact -> no extra loss
    assert parts["best_mask_index"] == 1.5
    loss.backward()
    g = all_logits.grad.abs().flatten(2).sum(-1)
    assert g[0, 1] > 0 and g[1, 2] > 0 and g[0, 0] == g[0, 2] == g[1, 0] == g[1, 1] == 0  # only the best learns
    wrong = {**out, "iou": torch.full((2, 3), 0.5)}
    loss_wrong, _ = compute_loss(wrong, masks, cfg)
    expected = ((torch.full((2, 3), 0.5) - true_iou) ** 2).mean()
    torch.testing.assert_close(loss_wrong.detach() - per_best, expected, atol=1e-5, rtol=1e-5)


def test_multimask_inference_picks_the_highest_predicted_iou() -> None:
    model = create_model("decoder_only", image_size=64, seed=1)
    with torch.no_grad():
        out = model(torch.randn(3, 3, 64, 64), multimask=True)
    best = out["iou"].argmax(1)
    assert torch.equal(out["best_index"], best)
    for i in range(3):
        assert torch.equal(out["logits"][i, 0], out["all_logits"][i, best[i]])


def test_edge_target_and_loss() -> None:
    m = _masks(1)
    e = edge_target(m, kernel=3)
    assert e[0, 0, 16, 13] == 0 and e[0, 0, 0, 0] == 0  # inside, far outside
    assert e[0, 0, 8, 10] == 1 and e[0, 0, 7, 10] == 1 and e[0, 0, 9, 10] == 0  # a 2-px band on the border
    assert edge_target(torch.zeros(1, 1, 8, 8)).sum() == 0 and edge_target(torch.ones(1, 1, 8, 8)).sum() == 0
    perfect = (e * 2 - 1) * 20
    assert edge_loss(perfect, m, kernel=3) < 0.01 < edge_loss(-perfect, m, kernel=3)


def test_adapter_cbam_edge_branch_is_trained_by_the_edge_loss() -> None:
    model = create_model("adapter_cbam", image_size=64, seed=0, edge=True).train()
    cfg = load_config(None, ["model.method=adapter_cbam", "model.args.edge=true", "loss.edge=1"])
    masks = torch.zeros(2, 1, 64, 64)
    masks[:, :, 16:48, 20:44] = 1
    out = model(torch.randn(2, 3, 64, 64))
    assert out["edge_logits"].shape == (2, 1, 64, 64)
    loss, parts = compute_loss(out, masks, cfg, model)
    assert "edge" in parts and parts["edge"] > 0
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.edge_head.parameters())
    no_edge, _ = compute_loss(out, masks, load_config(None, ["loss.edge=0"]), model)
    torch.testing.assert_close(loss.detach() - no_edge.detach(), torch.tensor(parts["edge"]), atol=1e-5, rtol=1e-5)
    plain = create_model("adapter_cbam", image_size=64, seed=0)
    assert "edge_logits" not in plain(torch.randn(1, 3, 64, 64))


def test_quiet_random_init_silences_builders(recwarn, caplog) -> None:
    with quiet_random_init():
        create_model("decoder_only", image_size=32, seed=0)
    assert not [w for w in recwarn if "random" in str(w.message).lower()]
    assert not [r for r in caplog.records if "random init" in r.getMessage().lower()]
