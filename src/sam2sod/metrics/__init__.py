"""Salient object detection metrics with PySODMetrics' exact conventions, computed from histograms.

Per image: :func:`pair_scores` -> :class:`PairScores`; per dataset: :func:`aggregate`. The
accumulators (:class:`SODMetrics` and the single-measure classes) mirror PySODMetrics' ``step`` /
``get_results`` interface.

Conventions (the field's, as implemented by PySODMetrics 1.4.3+): the mask is binarised at ``> 128``;
the prediction is read as ``uint8 / 255`` and min-max normalised per image when not constant; the
adaptive threshold is ``min(2 * mean, 1)``; F/E curves use 256 thresholds (threshold 255 first);
F-measure beta^2 = 0.3, weighted F beta^2 = 1, S-measure alpha = 0.5; dataset curves are averaged
over images before taking max / mean.

Deliberate deviation: when the object centroid falls on the last row or column, one S-measure
quadrant is empty; PySODMetrics (and the MATLAB original) then return NaN, here the empty quadrant
has weight 0 and the S-measure stays finite.
"""

from sam2sod.metrics.accumulators import MAE, Emeasure, Fmeasure, Smeasure, SODMetrics, WeightedFmeasure
from sam2sod.metrics.measures import (
    adaptive_emeasure,
    adaptive_fmeasure,
    emeasure_curve,
    fmeasure_curves,
    mae,
    smeasure,
    weighted_fmeasure,
)
from sam2sod.metrics.pair import PreparedPair, prepare_pair
from sam2sod.metrics.scores import (
    CURVE_KEYS,
    DATASET_KEYS,
    PER_IMAGE_KEYS,
    PairScores,
    aggregate,
    pair_scores,
)

__all__ = [
    "CURVE_KEYS",
    "DATASET_KEYS",
    "MAE",
    "PER_IMAGE_KEYS",
    "Emeasure",
    "Fmeasure",
    "PairScores",
    "PreparedPair",
    "SODMetrics",
    "Smeasure",
    "WeightedFmeasure",
    "adaptive_emeasure",
    "adaptive_fmeasure",
    "aggregate",
    "emeasure_curve",
    "fmeasure_curves",
    "mae",
    "pair_scores",
    "prepare_pair",
    "smeasure",
    "weighted_fmeasure",
]
