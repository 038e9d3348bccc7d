"""The model part of a run checkpoint (`state_for_checkpoint` / `load_tuned_state`): fine-tuned SAM2SOD weights.

A tuned state holds the trainable parameters and all buffers (small) of the model, plus the
identity of the base weights: for official weights the checkpoint path + sha256; for a seeded
random init the seed that rebuilds the frozen weights (`base["seed"]`) and a sha256 fingerprint of
those frozen weights (`frozen_sha256`), checked on load: another torch or sam2 version may draw
other random numbers from the same seed, and such a base is refused rather than silently used.
Older files of random-init runs hold the FULL state dict (`full_state: True`) and still load. Run
checkpoints (`sam2sod.runs.checkpoints`) hold this state under "model"; `sam2sod.runs.loader.load_model` opens them.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import torch

from sam2sod.errors import SodError
from sam2sod.models.sam2_backbone import state_dict_mismatch
from sam2sod.models.sod_sam2 import SAM2SOD

FORMAT = "sam2sod-tuned/1"


def model_config(model: SAM2SOD) -> dict[str, Any]:
    """Arguments that `create_model` needs to rebuild this model's architecture."""
    info = model.base_info
    return {"method": model.method, "version": info["version"], "size": info["size"],
            "image_size": model.image_size, "method_cfg": dict(model.method_cfg)}


def tuned_keys(model: SAM2SOD) -> list[str]:
    """State-dict keys of the trainable parameters, of all buffers, and of frozen tensors that no longer
    equal the base (`model.extra_state_keys`, set by `model.init_from`: e.g. a retrained, now frozen decoder)."""
    keep = {n for n, p in model.named_parameters() if p.requires_grad}
    keep |= {n for n, _ in model.named_buffers()} | set(getattr(model, "extra_state_keys", ()))
    return [k for k in model.state_dict() if k in keep]


def frozen_keys(model: SAM2SOD) -> list[str]:
    """State-dict keys that a tuned state does not hold: the frozen parameters (of the base)."""
    tuned = set(tuned_keys(model))
    return [k for k in model.state_dict() if k not in tuned]


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().data if flat.numel() else memoryview(b"")


def frozen_fingerprint(model: SAM2SOD) -> str:
    """sha256 over the frozen weights in state-dict order: each key, dtype, shape and raw bytes.

    Cached on the model while no frozen tensor is replaced or modified in place (torch's version counters).
    """
    sd = model.state_dict()
    keys = frozen_keys(model)
    stamp = tuple((k, sd[k].data_ptr(), sd[k]._version) for k in keys)
    cached = getattr(model, "_sam2sod_frozen_sha256", None)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    h = hashlib.sha256()
    for k in keys:
        t = sd[k]
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(_tensor_bytes(t))
    digest = h.hexdigest()
    model._sam2sod_frozen_sha256 = (stamp, digest)
    return digest


def _versions() -> dict[str, str]:
    """Versions that decide which random numbers a seed gives (shown when a rebuilt base does not match)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": str(torch.__version__)}
    try:
        out["sam2"] = version("sam2")
    except PackageNotFoundError:
        pass
    return out


def state_for_checkpoint(model: SAM2SOD) -> dict[str, Any]:
    """{"format", "model_config", "base", "full_state", "state_dict"[, "frozen_sha256", "versions"]} (CPU tensors).

    Always the tuned keys only; a seeded random-init base is recorded by its seed and `frozen_sha256`
    (an unseeded one, which nothing can rebuild, falls back to the full state dict).
    """
    sd = model.state_dict()
    base = dict(model.base_info)
    full = not model.model_is_pretrained and base.get("seed") is None
    keys = list(sd) if full else tuned_keys(model)
    state = {
        "format": FORMAT,
        "model_config": model_config(model),
        "base": base,
        "full_state": full,
        "state_dict": {k: sd[k].detach().cpu().clone() for k in keys},
    }
    if getattr(model, "extra_state_keys", None) and not full:
        state["extra_keys"] = sorted(model.extra_state_keys)
    if not full and not model.model_is_pretrained:
        state["frozen_sha256"] = frozen_fingerprint(model)
        state["versions"] = _versions()
    return state


def _rebuild_frozen(model: SAM2SOD, state: dict[str, Any]) -> None:
    """Overwrite the model's frozen weights with those of a fresh random init from the state's seed."""
    from sam2sod.models.registry import create_model

    keys = frozen_keys(model)
    if not keys:
        return
    cfg, seed = state["model_config"], state["base"].get("seed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-init warning was given when `model` was built
        fresh = create_model(cfg["method"], version=cfg["version"], size=cfg["size"], image_size=model.image_size,
                             checkpoint=None, device="cpu", seed=seed, **cfg["method_cfg"])
    sd = fresh.state_dict()
    model.load_state_dict({k: sd[k] for k in keys}, strict=False)


def _check_random_base(model: SAM2SOD, state: dict[str, Any]) -> None:
    """Make the model's frozen weights the random init the state was trained on, or raise SodError."""
    base, seed = state["base"], state["base"].get("seed")
    if model.model_is_pretrained:
        raise SodError(f"tuned checkpoint was trained on a random-init base (seed {seed}), but the model was "
                       f"built from the weights {model.base_info.get('checkpoint')}; build it without them "
                       "(no model.checkpoint / --base-checkpoint)")
    if model.base_info.get("seed") != seed:
        _rebuild_frozen(model, state)
        model.base_info = {**model.base_info, "seed": seed}
    got, want = frozen_fingerprint(model), state["frozen_sha256"]
    if got != want:
        saved = ", ".join(f"{k} {v}" for k, v in (state.get("versions") or {}).items()) or "unknown versions"
        now = ", ".join(f"{k} {v}" for k, v in _versions().items())
        raise SodError(f"tuned checkpoint was trained on a random-init base rebuilt from seed {seed}, but the base "
                       f"rebuilt here differs (frozen weights sha256 {got[:12]}, expected {want[:12]}): the same "
                       f"seed gave other random numbers (saved with {saved}; here {now}) or the file was altered; "
                       f"it loads only with the versions that wrote it (base: {base.get('version')} "
                       f"{base.get('size')})")


def load_tuned_state(model: SAM2SOD, state: dict[str, Any]) -> SAM2SOD:
    """Load a `state_for_checkpoint` dict strictly (same keys and shapes); SodError on mismatch.

    A random-init state replaces the model's frozen weights by the init from its seed when the model was
    built with another seed, and checks them against the saved fingerprint.
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SodError(f"not a sam2sod tuned state (expected format {FORMAT!r})")
    cfg, mine = dict(state["model_config"]), model_config(model)
    from sam2sod.models.registry import METHODS, method_options

    if cfg.get("method") in METHODS:  # options added since the file was written take their defaults
        cfg["method_cfg"] = {**method_options(cfg["method"]), **cfg.get("method_cfg", {})}
    for key in ("method", "version", "size", "method_cfg"):
        if cfg.get(key) != mine[key]:
            raise SodError(f"tuned checkpoint was made for {key}={cfg.get(key)!r}, the model has {mine[key]!r}")
    base = state["base"]
    seeded = not state["full_state"] and state.get("frozen_sha256") is not None
    if not state["full_state"] and not seeded:
        if not model.model_is_pretrained:
            raise SodError(f"tuned checkpoint needs the base SAM2 weights it was trained on "
                           f"({base.get('checkpoint')}, sha256 {base.get('sha256')}), but the model has random init")
        if base.get("sha256") != model.base_info.get("sha256"):
            raise SodError(f"tuned checkpoint was trained on base {base.get('checkpoint')} (sha256 "
                           f"{base.get('sha256')}), the model was built from {model.base_info.get('checkpoint')} "
                           f"(sha256 {model.base_info.get('sha256')})")
    if not state["full_state"]:
        model.extra_state_keys = list(state.get("extra_keys", []))
    current = model.state_dict()
    expected = current if state["full_state"] else {k: current[k] for k in tuned_keys(model)}
    problem = state_dict_mismatch(expected, state["state_dict"])
    if problem:
        raise SodError(f"tuned checkpoint does not fit the model: {problem}")
    if seeded:
        _check_random_base(model, state)
    model.load_state_dict(state["state_dict"], strict=state["full_state"])
    if state["full_state"]:
        model.base_info = dict(base)
    return model
