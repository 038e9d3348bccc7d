"""All measures of one image in one pass (:func:`pair_scores`) and their dataset aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sam2sod.errors import SodError
from sam2sod.metrics import measures
from sam2sod.metrics.pair import prepare_pair

#: Scalar keys of :func:`aggregate`, named as in PySODMetrics' examples / version_performance.json.
DATASET_KEYS = ("Smeasure", "wFmeasure", "MAE", "adpEm", "meanEm", "maxEm", "adpFm", "meanFm", "maxFm")
#: Curve keys of :func:`aggregate` (arrays of 256, threshold 255 first).
CURVE_KEYS = ("precision", "recall", "fm_curve", "em_curve")
#: Keys of :meth:`PairScores.per_image_row`.
PER_IMAGE_KEYS = ("S", "MAE", "wF", "adpF", "E")


@dataclass(eq=False)
class PairScores:
    """Every measure of one (prediction, ground truth) pair; picklable, so workers can return it.

    Curves are float64 arrays of 256 values, threshold 255 first (PySODMetrics' ordering).
    """

    sm: float
    mae: float
    wfm: float
    adp_fm: float
    adp_em: float
    mean_em: float
    precision: np.ndarray
    recall: np.ndarray
    fm_curve: np.ndarray
    em_curve: np.ndarray

    def per_image_row(self) -> dict[str, float]:
        """One row of a per-image table: S-measure, MAE, weighted F, adaptive F and *adaptive* E-measure.

        ``E`` is the adaptive E-measure (binarised at ``min(2 * mean, 1)``), the single-threshold
        value that matches ``adpF``; the image's mean over the E curve is kept in ``mean_em``.
        """
        return {"S": self.sm, "MAE": self.mae, "wF": self.wfm, "adpF": self.adp_fm, "E": self.adp_em}


def pair_scores(pred: np.ndarray, gt: np.ndarray) -> PairScores:
    """Score one pair with PySODMetrics' conventions (see :func:`~sam2sod.metrics.pair.prepare_pair`).

    Raises:
        SodError: shape mismatch or unusable input.
    """
    pair = prepare_pair(pred, gt)
    precision, recall, fm_curve = measures.fmeasure_curves(pair)
    em_curve = measures.emeasure_curve(pair)
    return PairScores(
        sm=measures.smeasure(pair),
        mae=measures.mae(pair),
        wfm=measures.weighted_fmeasure(pair),
        adp_fm=measures.adaptive_fmeasure(pair),
        adp_em=measures.adaptive_emeasure(pair),
        mean_em=float(em_curve.mean()),
        precision=precision,
        recall=recall,
        fm_curve=fm_curve,
        em_curve=em_curve,
    )


def mean_of(values: Sequence[float] | Sequence[np.ndarray]) -> np.floating | np.ndarray:
    """Mean over images (axis 0) in float64, the reduction PySODMetrics' ``get_results`` uses."""
    return np.mean(np.array(values, dtype=np.float64), axis=0)


def aggregate(scores: Sequence[PairScores]) -> dict[str, float | np.ndarray]:
    """Dataset values from per-image scores, exactly as PySODMetrics reports them.

    Scalars are means over images; ``mean``/``max`` F and E are taken on the image-averaged curves.
    Returns the keys of ``DATASET_KEYS`` (python floats) and ``CURVE_KEYS`` (arrays of 256).

    Raises:
        SodError: ``scores`` is empty.
    """
    if len(scores) == 0:
        raise SodError("cannot aggregate metrics over zero images")
    fm_curve = mean_of([s.fm_curve for s in scores])
    em_curve = mean_of([s.em_curve for s in scores])
    result: dict[str, float | np.ndarray] = {
        "Smeasure": float(mean_of([s.sm for s in scores])),
        "wFmeasure": float(mean_of([s.wfm for s in scores])),
        "MAE": float(mean_of([s.mae for s in scores])),
        "adpEm": float(mean_of([s.adp_em for s in scores])),
        "meanEm": float(em_curve.mean()),
        "maxEm": float(em_curve.max()),
        "adpFm": float(mean_of([s.adp_fm for s in scores])),
        "meanFm": float(fm_curve.mean()),
        "maxFm": float(fm_curve.max()),
    }
    result.update(
        precision=mean_of([s.precision for s in scores]),
        recall=mean_of([s.recall for s in scores]),
        fm_curve=fm_curve,
        em_curve=em_curve,
    )
    return result
