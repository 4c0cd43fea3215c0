"""Metrics for click-through-rate (CTR) prediction: ranking (AUC, GAUC), log loss, calibration.

Every function takes scikit-learn's argument order ``(y_true, y_score)``: binary click labels
in {0, 1} first, then the model's scores (probabilities for the calibration metrics and the
log loss). Both may be 1-D numpy arrays, torch tensors or lists, and the scalar metrics return
Python floats. Everything is vectorised: one sort per call, no Python loop over samples or
groups, so a million impressions take well under a second.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from toyalgos.core.checks import check_choice, check_number, check_positive_int, check_same_length

ArrayLike = Any  # np.ndarray | torch.Tensor | Sequence[float]


def _to_1d(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.double() if x.is_floating_point() else x).numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _labels(y_true: ArrayLike) -> np.ndarray:
    """``y_true`` as a boolean array, checking that every label is 0 or 1."""
    y = _to_1d(y_true, "y_true")
    if y.dtype.kind not in "biuf":
        raise TypeError(f"y_true must hold numeric 0/1 labels, got dtype {y.dtype}")
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise ValueError(
            f"y_true must contain only 0 and 1, got other values {np.unique(y[bad])[:5].tolist()}"
        )
    return y == 1


def _scores(y_score: ArrayLike) -> np.ndarray:
    s = _to_1d(y_score, "y_score")
    if s.dtype.kind not in "biuf":
        raise TypeError(f"y_score must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64)
    bad = ~np.isfinite(s)
    if bad.any():
        raise ValueError(f"y_score must be finite, got {int(bad.sum())} NaN or inf values")
    return s


def _pair(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y, s = _labels(y_true), _scores(y_score)
    check_same_length("y_true", y, "y_score", s)
    if len(y) == 0:
        raise ValueError("y_true and y_score are empty")
    return y, s


def _probability_pair(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y, p = _pair(y_true, y_score)
    if p.min() < 0 or p.max() > 1:
        raise ValueError(f"y_score must be probabilities in [0, 1], got values in [{p.min()}, {p.max()}]")
    return y, p


def _rank_sums(y: np.ndarray, s: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per group: impressions n, positives n1, and twice the rank sum of the positives.

    Ranks are 1-based within each group, tied scores share their average rank (so twice the
    rank is an integer and the sums are exact). ``codes`` must be dense group ids 0..G-1.
    """
    order = np.lexsort((s, codes))
    c, ss, yy = codes[order], s[order], y[order]
    n = len(c)
    new_group = np.r_[True, c[1:] != c[:-1]]
    group_start = np.flatnonzero(new_group)
    start = np.flatnonzero(new_group | np.r_[True, ss[1:] != ss[:-1]])  # tie blocks
    end = np.r_[start[1:], n]
    # Positions start..end-1 have within-group ranks start-g+1 .. end-g: average (start+end+1)/2 - g.
    twice_rank = np.repeat(start + end + 1 - 2 * group_start[c[start]], end - start)
    r2 = np.add.reduceat(np.where(yy, twice_rank, 0), group_start)
    n1 = np.add.reduceat(yy.astype(np.int64), group_start)
    return np.diff(np.r_[group_start, n]), n1, r2


def _auc_from_rank_sums(n: np.ndarray, n1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Mann-Whitney: AUC = (R1 - n1 (n1 + 1) / 2) / (n1 n0), R1 the rank sum of the positives."""
    n0 = n - n1
    return (r2 - n1 * (n1 + 1)) / (2 * n1 * n0)


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (Hanley & McNeil 1982).

    AUC = P(score of a random click > score of a random non-click) + 0.5 P(tie), computed from
    the rank sum of the positives with average ranks for tied scores; this equals
    ``sklearn.metrics.roc_auc_score`` (trapezoidal ROC area) ties included. One O(n log n) sort.
    """
    y, s = _pair(y_true, y_score)
    n1 = int(y.sum())
    if n1 == 0 or n1 == len(y):
        raise ValueError(f"AUC is undefined with a single class (all {len(y)} labels are {int(y[0])})")
    n, n1, r2 = _rank_sums(y, s, np.zeros(len(y), dtype=np.intp))
    return float(_auc_from_rank_sums(n, n1, r2)[0])


def group_auc(y_true: ArrayLike, y_score: ArrayLike, groups: ArrayLike) -> float:
    """Group AUC (GAUC) of Zhou et al. 2018, "Deep Interest Network", Eq. 1.

    GAUC = sum_u w_u AUC_u / sum_u w_u, AUC_u the AUC of the impressions of group (user) u and
    w_u their number. It averages per-user rankings, so it ignores how scores compare across
    users. Groups whose impressions are all clicks or all non-clicks have no AUC and are
    skipped (left out of both sums). ``groups`` holds any sortable ids (ints, strings).
    """
    y, s = _pair(y_true, y_score)
    g = _to_1d(groups, "groups")
    check_same_length("groups", g, "y_true", y)
    if g.dtype.kind == "f" and np.isnan(g).any():
        raise ValueError("groups contains NaN")
    codes = np.unique(g, return_inverse=True)[1].reshape(-1)
    n, n1, r2 = _rank_sums(y, s, codes)
    both = (n1 > 0) & (n1 < n)
    if not both.any():
        raise ValueError(f"GAUC is undefined: none of the {len(n)} groups has both clicks and non-clicks")
    w = n[both]
    return float(np.sum(w * _auc_from_rank_sums(w, n1[both], r2[both])) / np.sum(w))


def log_loss(y_true: ArrayLike, y_score: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy -mean(y log p + (1 - y) log(1 - p)), natural log.

    ``y_score`` must be probabilities in [0, 1] (values outside raise). They are clipped to
    [eps, 1 - eps] so that a confident 0 or 1 costs at most -log(eps) (about 16.1 for the
    default 1e-7) instead of infinity. scikit-learn clips at the dtype's machine epsilon
    instead, so the two agree exactly only on predictions inside [eps, 1 - eps].
    """
    check_number(eps, "eps", 0, 0.5, low_open=True, high_open=True)
    y, p = _probability_pair(y_true, y_score)
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def normalized_entropy(y_true: ArrayLike, y_score: ArrayLike, eps: float = 1e-7) -> float:
    """Normalized entropy of He et al. 2014, "Practical Lessons from Predicting Clicks on Ads at Facebook".

    NE = log_loss / H(p), H(p) = -(p log p + (1 - p) log(1 - p)) the entropy of the background
    CTR p = mean(y_true): the log loss relative to always predicting the base rate, so 1 means
    no better than the base rate and lower is better. Undefined when all labels are equal.
    """
    y, _ = _probability_pair(y_true, y_score)
    p = float(y.mean())
    if p in (0.0, 1.0):
        raise ValueError(
            f"normalized entropy is undefined when all labels are {int(p)} (background entropy 0)"
        )
    background = -(p * np.log(p) + (1 - p) * np.log1p(-p))
    return log_loss(y_true, y_score, eps) / float(background)


def calibration_ratio(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Expected over observed clicks: sum(y_score) / sum(y_true) (He et al. 2014, Sec. 2 "calibration").

    1 is perfectly calibrated on average, > 1 over-predicts, < 1 under-predicts. ``y_score``
    must be probabilities in [0, 1]. Undefined (ValueError) without a single positive label.
    """
    y, p = _probability_pair(y_true, y_score)
    clicks = int(y.sum())
    if clicks == 0:
        raise ValueError(f"calibration ratio is undefined without positive labels (0 clicks in {len(y)})")
    return float(p.sum() / clicks)


class ReliabilityCurve(NamedTuple):
    """Per non-empty bin: mean prediction, click rate, size, and mean prediction / click rate.

    ``calibration_per_bin`` is the calibration ratio of the bin's impressions: inf for a bin
    with predictions above 0 and no clicks (nan when its predictions are all 0 too).
    The arrays are read-only.
    """

    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    count: np.ndarray
    calibration_per_bin: np.ndarray


def reliability_curve(
    y_true: ArrayLike,
    y_score: ArrayLike,
    n_bins: int = 10,
    strategy: Literal["quantile", "uniform"] = "quantile",
) -> ReliabilityCurve:
    """Reliability diagram (Niculescu-Mizil & Caruana 2005, Sec. 4): click rate vs mean prediction per bin.

    Binning follows ``sklearn.calibration.calibration_curve`` exactly: ``"uniform"`` cuts [0, 1]
    into ``n_bins`` equal widths, ``"quantile"`` cuts at the percentiles of ``y_score``
    (``np.percentile``, linear interpolation), so bins hold about equally many impressions;
    a value equal to an inner edge goes to the lower bin (``np.searchsorted`` on the inner
    edges). Empty bins, e.g. from repeated quantile edges when scores tie, are dropped.
    Quantile is the default because CTR predictions crowd near 0, leaving most uniform bins
    nearly empty.
    """
    check_positive_int(n_bins, "n_bins")
    check_choice(strategy, "strategy", ("quantile", "uniform"))
    y, p = _probability_pair(y_true, y_score)
    if strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 1, n_bins + 1) * 100)
    else:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], p)
    count = np.bincount(bins, minlength=n_bins)
    pred_sum = np.bincount(bins, weights=p, minlength=n_bins)
    clicks = np.bincount(bins, weights=y, minlength=n_bins)
    keep = count > 0
    count, pred_sum, clicks = count[keep], pred_sum[keep], clicks[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = pred_sum / clicks
    curve = ReliabilityCurve(pred_sum / count, clicks / count, count, ratio)
    for a in curve:
        a.flags.writeable = False
    return curve


def expected_calibration_error(
    y_true: ArrayLike,
    y_score: ArrayLike,
    n_bins: int = 15,
    strategy: Literal["quantile", "uniform"] = "quantile",
) -> float:
    """Expected calibration error: sum_b (n_b / n) |mean prediction_b - click rate_b|.

    The reliability diagram (``reliability_curve``, same bins) read as one number: the mean
    distance of its points from the diagonal, weighted by their impressions (Naeini et al. 2015;
    Guo et al. 2017, Eq. 3). Unlike ``calibration_ratio`` it does not let over-prediction in some
    bins cancel under-prediction in others. Even the true CTR scores above 0: each bin's click
    rate is a sample mean, with standard error sqrt(r (1 - r) / n_b).
    """
    curve = reliability_curve(y_true, y_score, n_bins=n_bins, strategy=strategy)
    w = curve.count / curve.count.sum()
    return float(np.sum(w * np.abs(curve.mean_predicted - curve.observed_rate)))
