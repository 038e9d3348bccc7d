"""No ground truth reaches the model at evaluation time: a spy on `SAM2SOD.forward` records `(model.training,
prompts)` for every call of validation inside `train`, `validate_model`, `evaluate`, `predict` and `ablate`.
Every eval-mode call must be prompt-free (prompts None); only the labelled oracle modes of `evaluate` prompt,
and then every image whose mask has an object gets the requested prompt kind."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sam2sod.data.synthetic import make_synthetic
from sam2sod.evaluation.evaluate import evaluate
from sam2sod.infer.predict import predict
from sam2sod.models.sod_sam2 import SAM2SOD
from sam2sod.runs.config import load_config
from sam2sod.runs.splits import split_train_val
from sam2sod.train.ablate import ablate
from sam2sod.train.trainer import train, validate_model
from tiny_train import tiny_overrides as shared_tiny_overrides

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

N_PAIRS = 12


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one intra-op thread is much faster on a CPU shared with other jobs."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@contextlib.contextmanager
def forward_spy():
    """Patch `SAM2SOD.forward` (the forward of every prompted SAM2 method) to record each call."""
    calls: list[tuple[bool, Any]] = []
    real = SAM2SOD.forward

    def spy(self, images, prompts=None, multimask=False):
        calls.append((self.training, prompts))
        return real(self, images, prompts, multimask)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SAM2SOD, "forward", spy)
        yield calls


def eval_calls(calls: list[tuple[bool, Any]]) -> list[Any]:
    return [prompts for training, prompts in calls if not training]


def assert_prompt_free(calls: list[tuple[bool, Any]], where: str) -> None:
    evals = eval_calls(calls)
    assert evals, f"{where}: the spy saw no eval-mode forward (is SAM2SOD.forward still the model's forward?)"
    leaked = [i for i, p in enumerate(evals) if p is not None]
    assert not leaked, f"{where}: eval-mode calls {leaked} of {len(evals)} were given prompts"


def tiny_overrides(root: Path, **extra: str) -> list[str]:
    defaults = {"optim.epochs": "1", "optim.max_steps": "2", "optim.warmup_steps": "1", "log_every": "1"}
    return shared_tiny_overrides(root, "adapter_cbam", **{**defaults, **extra})


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("leak") / "ds"
    make_synthetic(root, n=N_PAIRS, size=64, seed=7)
    return root


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory) -> tuple[Path, list]:
    """A 2-step adapter_cbam run (it trains with simulated GT prompts) recorded by the spy."""
    run = tmp_path_factory.mktemp("leak_runs") / "run"
    with forward_spy() as calls:
        train(load_config(None, tiny_overrides(data_root)), run)
    return run, list(calls)


def test_validation_inside_train_is_prompt_free(trained):
    _, calls = trained
    assert any(training for training, _ in calls), "no training-mode forward recorded"
    assert_prompt_free(calls, "train() validation")


def test_validate_model_is_prompt_free_even_from_train_mode(data_root):
    from sam2sod.runs.checkpoints import model_from_config

    cfg = load_config(None, tiny_overrides(data_root))
    _, val_items = split_train_val(cfg.data)
    model = model_from_config(cfg.model, torch.device("cpu"), cfg.seed).train()
    with forward_spy() as calls:
        scores = validate_model(model, val_items, cfg, torch.device("cpu"), None)
    assert 0.0 <= scores["S"] <= 1.0
    assert [t for t, _ in calls] == [False] * len(calls) and model.training  # eval inside, train mode restored
    assert_prompt_free(calls, "validate_model")


def test_default_evaluate_and_predict_are_prompt_free(data_root, trained, tmp_path):
    run, _ = trained
    with forward_spy() as calls:
        evaluate(run / "best.pt", [data_root], tmp_path / "eval", device="cpu", workers=1)
    assert len(eval_calls(calls)) == len(calls)
    assert_prompt_free(calls, "evaluate(prompt='none')")
    with forward_spy() as calls:
        written = predict(run, data_root / "images", tmp_path / "pred", device="cpu")
    assert len(written) == N_PAIRS and len(eval_calls(calls)) == len(calls)
    assert_prompt_free(calls, "predict")


def _has_object(mask_path: Path) -> bool:
    with Image.open(mask_path) as m:
        return bool((np.asarray(m.convert("L")) > 127).any())


@pytest.mark.parametrize("prompt", ["oracle-box", "oracle-points", "oracle-mask"])
def test_oracle_modes_do_prompt(data_root, trained, tmp_path, prompt):
    """The oracle upper bound really prompts: the requested kind for every image whose mask holds an object."""
    run, _ = trained
    with forward_spy() as calls:
        evaluate(run / "best.pt", [data_root], tmp_path / "oracle", prompt=prompt, device="cpu", workers=1)
    evals = eval_calls(calls)
    assert evals and len(evals) == len(calls)
    assert all(p is not None for p in evals), f"{prompt}: a batch was evaluated without prompts"
    if prompt == "oracle-box":
        prompted = [((p.labels == 2).any(1) & (p.labels == 3).any(1)) for p in evals]
    elif prompt == "oracle-points":
        prompted = [(p.labels == 1).any(1) for p in evals]
    else:
        prompted = [p.has_mask & (p.mask_input.flatten(1) > 0).any(1) for p in evals]
    n_prompted = int(sum(int(t.sum()) for t in prompted))
    n_objects = sum(_has_object(m) for m in sorted((data_root / "masks").iterdir()))
    assert 0 < n_objects < N_PAIRS  # the synthetic set has an empty mask too
    assert n_prompted == n_objects, (prompt, n_prompted, n_objects)


def test_ablate_cell_is_scored_prompt_free(data_root, tmp_path):
    with forward_spy() as calls:
        rows = ablate(None, ["model.method=adapter_cbam"], tmp_path / "abl", overrides=tiny_overrides(data_root))
    assert len(rows) == 1
    assert any(training for training, _ in calls)
    assert_prompt_free(calls, "ablate")
