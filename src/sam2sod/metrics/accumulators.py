"""PySODMetrics-style accumulators: ``step(pred, gt)`` per image, then ``get_results()``.

The single-measure classes return the same result structure as the py_sod_metrics class of the same
name and reuse the per-image functions of :mod:`sam2sod.metrics.measures`; :class:`SODMetrics`
collects :class:`PairScores` (from ``step`` or, computed elsewhere, from ``add``).
"""

from __future__ import annotations

import numpy as np

from sam2sod.errors import SodError
from sam2sod.metrics import measures
from sam2sod.metrics.pair import prepare_pair
from sam2sod.metrics.scores import PairScores, aggregate, mean_of, pair_scores


class _Accumulator:
    """Shared bookkeeping: the number of images and the empty-result error."""

    def __init__(self) -> None:
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def _check_not_empty(self) -> None:
        if self.count == 0:
            raise SodError(f"{type(self).__name__}: no image was scored, nothing to report")


class MAE(_Accumulator):
    """Mean absolute error; results ``{"mae": float}``."""

    def __init__(self) -> None:
        super().__init__()
        self.maes: list[float] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Score one pair (see :func:`~sam2sod.metrics.pair.prepare_pair` for the input conventions)."""
        self.maes.append(measures.mae(prepare_pair(pred, gt)))
        self.count += 1

    def get_results(self) -> dict:
        """``{"mae": mean over images}``."""
        self._check_not_empty()
        return {"mae": mean_of(self.maes)}


class Smeasure(_Accumulator):
    """Structure measure; results ``{"sm": float}``."""

    def __init__(self, alpha: float = measures.SM_ALPHA) -> None:
        super().__init__()
        self.alpha = alpha
        self.sms: list[float] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Score one pair."""
        self.sms.append(measures.smeasure(prepare_pair(pred, gt), self.alpha))
        self.count += 1

    def get_results(self) -> dict:
        """``{"sm": mean over images}``."""
        self._check_not_empty()
        return {"sm": mean_of(self.sms)}


class WeightedFmeasure(_Accumulator):
    """Weighted F-measure; results ``{"wfm": float}``."""

    def __init__(self, beta2: float = measures.WFM_BETA2) -> None:
        super().__init__()
        self.beta2 = beta2
        self.weighted_fms: list[float] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Score one pair."""
        self.weighted_fms.append(measures.weighted_fmeasure(prepare_pair(pred, gt), self.beta2))
        self.count += 1

    def get_results(self) -> dict:
        """``{"wfm": mean over images}``."""
        self._check_not_empty()
        return {"wfm": mean_of(self.weighted_fms)}


class Fmeasure(_Accumulator):
    """F-measure; results ``{"fm": {"adp", "curve"}, "pr": {"p", "r"}}`` (curves of 256)."""

    def __init__(self, beta2: float = measures.FM_BETA2) -> None:
        super().__init__()
        self.beta2 = beta2
        self.adaptive_fms: list[float] = []
        self.precisions: list[np.ndarray] = []
        self.recalls: list[np.ndarray] = []
        self.changeable_fms: list[np.ndarray] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Score one pair."""
        pair = prepare_pair(pred, gt)
        self.adaptive_fms.append(measures.adaptive_fmeasure(pair, self.beta2))
        precision, recall, fm = measures.fmeasure_curves(pair, self.beta2)
        self.precisions.append(precision)
        self.recalls.append(recall)
        self.changeable_fms.append(fm)
        self.count += 1

    def get_results(self) -> dict:
        """Mean adaptive F, mean F curve and mean precision / recall curves."""
        self._check_not_empty()
        return {
            "fm": {"adp": mean_of(self.adaptive_fms), "curve": mean_of(self.changeable_fms)},
            "pr": {"p": mean_of(self.precisions), "r": mean_of(self.recalls)},
        }


class Emeasure(_Accumulator):
    """Enhanced-alignment measure; results ``{"em": {"adp", "curve"}}``."""

    def __init__(self) -> None:
        super().__init__()
        self.adaptive_ems: list[float] = []
        self.changeable_ems: list[np.ndarray] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Score one pair."""
        pair = prepare_pair(pred, gt)
        self.changeable_ems.append(measures.emeasure_curve(pair))
        self.adaptive_ems.append(measures.adaptive_emeasure(pair))
        self.count += 1

    def get_results(self) -> dict:
        """Mean adaptive E and mean E curve."""
        self._check_not_empty()
        return {"em": {"adp": mean_of(self.adaptive_ems), "curve": mean_of(self.changeable_ems)}}


class SODMetrics(_Accumulator):
    """All measures at once, built on :func:`pair_scores`; ``get_results()`` is :func:`aggregate`."""

    def __init__(self) -> None:
        super().__init__()
        self.scores: list[PairScores] = []

    def step(self, pred: np.ndarray, gt: np.ndarray) -> PairScores:
        """Score one pair, keep and return its :class:`PairScores` (for per-image tables)."""
        scores = pair_scores(pred, gt)
        self.add(scores)
        return scores

    def add(self, scores: PairScores) -> None:
        """Add a pair scored elsewhere (e.g. by :func:`pair_scores` in a worker process)."""
        if not isinstance(scores, PairScores):
            raise TypeError(f"expected PairScores, got {type(scores).__name__}")
        self.scores.append(scores)
        self.count += 1

    def get_results(self) -> dict[str, float | np.ndarray]:
        """Dataset values: see :func:`aggregate`."""
        self._check_not_empty()
        return aggregate(self.scores)
