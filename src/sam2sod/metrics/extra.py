"""PySODMetrics' other measures, computed by the installed ``py_sod_metrics`` package itself.

The nine core measures (``DATASET_KEYS``) keep their fast histogram path; this module adds, by name, the
field library's FmeasureV2 family (Dice, IoU, BER, specificity, precision / recall / F at the adaptive
threshold, over all thresholds, or binarised at 0.5), its MSIoU, its size-invariant variants, HCE and the
context measure. Names follow PySODMetrics' own examples (``version_performance.json``): ``adpdice``,
``meandice``, ``maxdice``, ``sample_bidice`` (pred > 0.5, averaged over images), ``overall_bidice``
(pred > 0.5, confusion counts pooled over the dataset), ``si_sample_maxdice``, ``si_overall_meandice``,
``adpmsiou``, ``si_mae``, ``HCE``, ``cm``. ``adpfm`` / ``meanfm`` / ``maxfm`` are the core ``adpFm`` /
``meanFm`` / ``maxFm`` and are not offered twice.

Each image is scored by fresh py_sod_metrics objects (:func:`extra_pair`, picklable, so it can run in
worker processes); :class:`ExtraMetrics` averages the per-image results the way py_sod_metrics'
``get_results`` does, so the values equal a sequential py_sod_metrics run.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sam2sod.errors import SodError
from sam2sod.metrics.scores import DATASET_KEYS

#: FmeasureV2 handler bases: name -> (py_sod_metrics class, keyword arguments).
HANDLER_BASES: dict[str, tuple[str, dict[str, float]]] = {
    "fm": ("FmeasureHandler", {"beta": 0.3}),
    "f1": ("FmeasureHandler", {"beta": 1.0}),
    "pre": ("PrecisionHandler", {}),
    "rec": ("RecallHandler", {}),
    "fpr": ("FPRHandler", {}),
    "iou": ("IOUHandler", {}),
    "dice": ("DICEHandler", {}),
    "spec": ("SpecificityHandler", {}),
    "ber": ("BERHandler", {}),
    "oa": ("OverallAccuracyHandler", {}),
    "kappa": ("KappaHandler", {}),
}
_SINGLE = {"si_mae": "SizeInvarianceMAE", "HCE": "HumanCorrectionEffortMeasure", "cm": "ContextMeasure"}


@dataclass(frozen=True)
class ExtraSpec:
    """How one extra metric is computed: family, handler base and reduction ("adp", "mean", "max", "bi")."""

    family: str  # gray | sample | overall | si_sample | si_overall | msiou | single
    base: str
    mode: str


def _build_registry() -> dict[str, ExtraSpec]:
    reg: dict[str, ExtraSpec] = {}
    for b in HANDLER_BASES:
        if b != "fm":  # adpfm / meanfm / maxfm are the core adpFm / meanFm / maxFm
            for mode in ("adp", "mean", "max"):
                reg[f"{mode}{b}"] = ExtraSpec("gray", b, mode)
        reg[f"sample_bi{b}"] = ExtraSpec("sample", b, "bi")
        reg[f"overall_bi{b}"] = ExtraSpec("overall", b, "bi")
    for mode in ("adp", "mean", "max"):
        reg[f"{mode}msiou"] = ExtraSpec("msiou", "msiou", mode)
    reg["sample_bimsiou"] = ExtraSpec("msiou", "msiou", "bi")
    for b in HANDLER_BASES:
        for mode in ("adp", "mean", "max", "bi"):
            reg[f"si_sample_{mode}{b}"] = ExtraSpec("si_sample", b, mode)
        for mode in ("mean", "max", "bi"):
            reg[f"si_overall_{mode}{b}"] = ExtraSpec("si_overall", b, mode)
    for name in _SINGLE:
        reg[name] = ExtraSpec("single", name, "value")
    return reg


#: Every extra metric name -> how it is computed.
EXTRA_METRICS: dict[str, ExtraSpec] = _build_registry()
_LOWER_BETTER_BASES = ("ber", "fpr")


def lower_is_better(metric: str) -> bool:
    """True for error-like metrics (MAE, si_mae, HCE, every BER / FPR variant), False otherwise."""
    if metric in ("MAE", "si_mae", "HCE"):
        return True
    spec = EXTRA_METRICS.get(metric)
    return spec is not None and spec.base in _LOWER_BETTER_BASES


def _choices_line() -> str:
    bases = ",".join(HANDLER_BASES)
    gray = ",".join(b for b in HANDLER_BASES if b != "fm")
    return (f"core: {', '.join(DATASET_KEYS)}; extra: {{adp,mean,max}}{{{gray}}}, "
            f"{{sample_bi,overall_bi}}{{{bases}}}, {{adp,mean,max,sample_bi}}msiou, "
            f"si_sample_{{adp,mean,max,bi}}{{{bases}}}, si_overall_{{mean,max,bi}}{{{bases}}}, "
            f"{', '.join(_SINGLE)} (e.g. adpdice, maxiou, meanber, sample_bispec)")


def parse_metric_names(spec: str | Iterable[str]) -> tuple[list[str], list[str]]:
    """A ``--metrics`` value (``"Smeasure,MAE,adpdice"`` or a list of names) -> (core names, extra names).

    ``core`` stands for the nine core measures. Order is kept, duplicates dropped.

    Raises:
        SodError: an unknown name (the message suggests close names and lists the choices).
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    if not names:
        raise SodError(f"--metrics: no metric names given; choices: {_choices_line()}")
    core: list[str] = []
    extra: list[str] = []
    for name in names:
        if name == "core":
            core.extend(k for k in DATASET_KEYS if k not in core)
        elif name in DATASET_KEYS or name in EXTRA_METRICS:
            chosen = core if name in DATASET_KEYS else extra
            if name not in chosen:
                chosen.append(name)
        else:
            close = difflib.get_close_matches(name, [*DATASET_KEYS, *EXTRA_METRICS], n=3)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise SodError(f"--metrics: unknown metric {name!r}{hint}; choices: {_choices_line()}")
    return core, extra


def _validated(names: Sequence[str]) -> tuple[str, ...]:
    core, extra = parse_metric_names(list(names)) if names else ([], [])
    if core:
        raise SodError(f"{', '.join(core)} are core measures: score them with sam2sod.metrics.pair_scores, "
                       "not ExtraMetrics")
    if not extra:
        raise SodError("ExtraMetrics needs at least one extra metric name")
    return tuple(extra)


def _as_inputs(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 prediction and uint8 mask, as py_sod_metrics expects them (mask binarised at > 128)."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2 or pred.size == 0:
        raise SodError(f"extra metrics need 2-D maps of one shape, got prediction {pred.shape} and mask {gt.shape}")
    if gt.dtype == np.bool_:
        gt = gt.astype(np.uint8) * np.uint8(255)
    for label, arr in (("prediction", pred), ("mask", gt)):
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
            raise SodError(f"extra metrics need a uint8 (0..255) {label}, got {arr.dtype} "
                           f"with values {arr.min()}..{arr.max()}")
    return pred.astype(np.uint8, copy=False), gt.astype(np.uint8, copy=False)


def _handler(psm: Any, base: str, **flags: bool) -> Any:
    cls_name, kwargs = HANDLER_BASES[base]
    return getattr(psm, cls_name)(**flags, **kwargs)


@dataclass
class ExtraPair:
    """The extra measures of one image: per-image values, curves and confusion counts (picklable)."""

    values: dict[str, float] = field(default_factory=dict)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    target_curves: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def _needs(names: Sequence[str]) -> dict[str, dict[str, set[str]]]:
    """{family: {base: modes}} for the requested names."""
    need: dict[str, dict[str, set[str]]] = {}
    for n in names:
        s = EXTRA_METRICS[n]
        need.setdefault(s.family, {}).setdefault(s.base, set()).add(s.mode)
    return need


def _fmv2_pair(psm: Any, pred: np.ndarray, gt: np.ndarray, need: dict, out: ExtraPair) -> None:
    handlers: dict[str, Any] = {}
    for b, modes in need.get("gray", {}).items():
        handlers[f"gray:{b}"] = _handler(psm, b, with_dynamic=bool(modes & {"mean", "max"}),
                                         with_adaptive="adp" in modes)
    for b in need.get("sample", {}):
        handlers[f"sample:{b}"] = _handler(psm, b, with_dynamic=False, with_adaptive=False, with_binary=True)
    for b in need.get("overall", {}):
        handlers[f"overall:{b}"] = _handler(psm, b, with_dynamic=False, with_adaptive=False, with_binary=True,
                                            sample_based=False)
    if not handlers:
        return
    psm.FmeasureV2(metric_handlers=handlers).step(pred=pred, gt=gt)
    for key, h in handlers.items():
        family, b = key.split(":")
        if family == "gray":
            if h.adaptive_results is not None:
                out.values[f"adp{b}"] = float(h.adaptive_results[0])
            if h.dynamic_results is not None:
                out.curves[b] = np.asarray(h.dynamic_results[0], dtype=np.float64)
        elif family == "sample":
            out.values[f"sample_bi{b}"] = float(h.binary_results[0])
        else:
            out.counts[f"overall:{b}"] = {k: int(v) for k, v in h.binary_results.items()}


def _si_pair(psm: Any, pred: np.ndarray, gt: np.ndarray, need: dict, out: ExtraPair) -> None:
    handlers: dict[str, Any] = {}
    sample, overall = need.get("si_sample", {}), need.get("si_overall", {})
    for b in sorted(set(sample) | set(overall)):
        modes, o_modes = sample.get(b, set()), overall.get(b, set())
        dyn = bool(modes & {"mean", "max"} or o_modes & {"mean", "max"})
        if dyn or modes & {"adp", "bi"}:
            handlers[f"s:{b}"] = _handler(psm, b, with_dynamic=dyn, with_adaptive="adp" in modes,
                                          with_binary="bi" in modes)
        if "bi" in o_modes:
            handlers[f"o:{b}"] = _handler(psm, b, with_dynamic=False, with_adaptive=False, with_binary=True,
                                          sample_based=False)
    if not handlers:
        return
    psm.SizeInvarianceFmeasureV2(metric_handlers=handlers).step(pred=pred, gt=gt)
    for key, h in handlers.items():
        kind, b = key.split(":")
        if kind == "o":
            out.counts[f"si_overall:{b}"] = {k: int(v) for k, v in h.binary_results.items()}
            continue
        if h.adaptive_results is not None:
            out.values[f"si_sample_adp{b}"] = float(h.adaptive_results[0])
        if h.binary_results is not None:
            out.values[f"si_sample_bi{b}"] = float(h.binary_results[0])
        if h.dynamic_results is not None:
            per_target = np.asarray(h.dynamic_results[0], dtype=np.float64)  # (targets, 256)
            out.target_curves[b] = per_target
            out.values[f"si_sample_max{b}"] = float(per_target.max(axis=-1).mean())
            out.values[f"si_sample_mean{b}"] = float(per_target.mean(axis=-1).mean())


def _other_pair(psm: Any, pred: np.ndarray, gt: np.ndarray, need: dict, out: ExtraPair) -> None:
    modes = need.get("msiou", {}).get("msiou", set())
    if modes:
        ms = psm.MSIoU(with_dynamic=bool(modes & {"mean", "max"}), with_adaptive="adp" in modes,
                       with_binary="bi" in modes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # np.trapz inside py_sod_metrics
            ms.step(pred=pred, gt=gt)
        if ms.adaptive_results is not None:
            out.values["adpmsiou"] = float(ms.adaptive_results[0])
        if ms.binary_results is not None:
            out.values["sample_bimsiou"] = float(ms.binary_results[0])
        if ms.dynamic_results is not None:
            out.curves["msiou"] = np.asarray(ms.dynamic_results[0], dtype=np.float64)
    for name in need.get("single", {}):
        measure = getattr(psm, _SINGLE[name])()
        measure.step(pred=pred, gt=gt)
        stored = {"si_mae": "maes", "HCE": "hces", "cm": "scores"}[name]
        out.values[name] = float(getattr(measure, stored)[0])


def extra_pair(pred: np.ndarray, gt: np.ndarray, names: Sequence[str]) -> ExtraPair:
    """Score one (uint8 prediction, uint8 or bool mask) pair with py_sod_metrics for the extra `names`."""
    import py_sod_metrics as psm

    names = _validated(names)
    pred, gt = _as_inputs(pred, gt)
    need, out = _needs(names), ExtraPair()
    _fmv2_pair(psm, pred, gt, need, out)
    _si_pair(psm, pred, gt, need, out)
    _other_pair(psm, pred, gt, need, out)
    return out


def _mean(values: Sequence[Any], axis: int | None = None) -> Any:
    return np.mean(np.array(values, dtype=np.float64), axis=axis)


class ExtraMetrics:
    """Accumulator of extra measures with PySODMetrics' ``step`` / ``get_results`` interface.

    ``ExtraMetrics(["adpdice", "maxiou"])``; ``step(pred, gt)`` per image (or ``add(extra_pair(...))``
    with pairs scored elsewhere); ``get_results()`` -> {name: float}.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = _validated(names)
        self.pairs: list[ExtraPair] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Score one pair (see :func:`extra_pair`)."""
        self.pairs.append(extra_pair(pred, gt, self.names))

    def add(self, pair: ExtraPair) -> None:
        """Add a pair scored by :func:`extra_pair` (e.g. in a worker process) with the same names."""
        self.pairs.append(pair)

    def _value(self, name: str) -> float:
        import py_sod_metrics as psm

        s = EXTRA_METRICS[name]
        if s.family in ("overall", "si_overall") and s.mode == "bi":
            key = f"{s.family}:{s.base}"
            totals = {k: sum(p.counts[key][k] for p in self.pairs) for k in ("tp", "fp", "tn", "fn")}
            handler = _handler(psm, s.base, with_dynamic=False, with_adaptive=False)
            return float(np.mean(handler(**totals)))
        if s.family == "si_overall":
            curve = _mean(np.concatenate([p.target_curves[s.base] for p in self.pairs]), axis=0)
        elif s.mode in ("mean", "max") and s.family in ("gray", "msiou"):
            curve = _mean([p.curves[s.base] for p in self.pairs], axis=0)
        else:
            return float(_mean([p.values[name] for p in self.pairs]))
        return float(curve.max() if s.mode == "max" else curve.mean())

    def get_results(self) -> dict[str, float]:
        """{name: dataset value} in the order the names were given."""
        if not self.pairs:
            raise SodError("cannot aggregate extra metrics over zero images")
        return {n: self._value(n) for n in self.names}

    def image_scores(self, names: Sequence[str]) -> Any:
        """Per-image values and curves as :class:`sam2sod.metrics.image_scores.ImageScores` (for bootstrap CIs).

        `names` are the image names in step order. Metrics pooled over the dataset (``overall_bi*``,
        ``si_overall_*``) have no per-image decomposition and are left out.
        """
        from sam2sod.metrics.image_scores import ImageScores

        if len(names) != len(self.pairs):
            raise SodError(f"{len(names)} image names for {len(self.pairs)} scored images")
        values, curves, curve_metrics = {}, {}, {}
        for n in self.names:
            s = EXTRA_METRICS[n]
            if s.family in ("overall", "si_overall"):
                continue
            if s.mode in ("mean", "max") and s.family in ("gray", "msiou"):
                curves[s.base] = np.stack([p.curves[s.base] for p in self.pairs])
                curve_metrics[n] = (s.base, s.mode)
            else:
                values[n] = [p.values[n] for p in self.pairs]
        return ImageScores(list(names), values, curves, curve_metrics)
