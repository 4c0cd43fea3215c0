"""Face verification: are two faces the same person? Scores, thresholds and the LFW protocol.

A pair's score is the cosine similarity of its two embeddings; "same" is predicted when the
score reaches a threshold. ``roc_curve`` sweeps every threshold (TAR, the true-accept rate on
genuine pairs, against FAR, the false-accept rate on impostor pairs), ``tar_at_far`` reads the
best TAR whose FAR stays within a budget, and ``verification_accuracy`` is LFW's pair accuracy:
in each of k folds, the threshold that maximises accuracy on the other k − 1 folds is applied
to the held-out fold (Huang et al. 2007, LFW "unrestricted" protocol; insightface's
``calculate_roc``). Angle statistics say how far apart classes are in degrees.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from toyalgos.core.checks import check_number, check_positive_int, check_same_length, check_tensor


class RocCurve(NamedTuple):
    """FAR and TAR (both (T,), FAR increasing) at thresholds (T,), "same" when score >= threshold."""

    far: torch.Tensor
    tar: torch.Tensor
    thresholds: torch.Tensor


class PairAccuracy(NamedTuple):
    """Mean and standard deviation over folds of held-out pair accuracy, and each fold's threshold."""

    mean: float
    std: float
    thresholds: torch.Tensor


class AngleStats(NamedTuple):
    """Angles in degrees: each sample's to its class centre (N,), between every two class centres
    (C(C−1)/2,), and each class centre's to its nearest other centre (C,)."""

    intra: torch.Tensor
    inter: torch.Tensor
    nearest: torch.Tensor


def check_pairs(scores: object, same: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (P,) float and same (P,) bool/0-1 with both genuine and impostor pairs."""
    scores = check_tensor(scores, "scores", dim=1, dtype="float")
    same = check_tensor(same, "same", dim=1)
    check_same_length("scores", scores, "same", same)
    if same.is_floating_point() and not bool(((same == 0) | (same == 1)).all()):
        raise ValueError("same must hold 0/1 or True/False")
    same = same.bool()
    n_same = int(same.sum())
    if n_same == 0 or n_same == same.numel():
        raise ValueError(
            f"pairs must include both genuine and impostor pairs, got {n_same} genuine of {same.numel()}"
        )
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return scores.double(), same


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of row i of ``a`` with row i of ``b``: (P, D), (P, D) -> (P,)."""
    a = check_tensor(a, "a", dim=2, dtype="float")
    b = check_tensor(b, "b", dim=2, dtype="float")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1)


def roc_curve(scores: torch.Tensor, same: torch.Tensor) -> RocCurve:
    """Every distinct threshold, highest first (the first one +inf: nothing accepted), as
    scikit-learn's ``roc_curve(same, scores, drop_intermediate=False)``."""
    scores, same = check_pairs(scores, same)
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], same[order].double()
    last = torch.ones_like(s, dtype=torch.bool)  # last position of each run of equal scores
    last[:-1] = s[1:] != s[:-1]
    tp, fp = torch.cumsum(y, 0)[last], torch.cumsum(1 - y, 0)[last]
    zero = torch.zeros(1, dtype=torch.float64)
    tar = torch.cat([zero, tp / y.sum()])
    far = torch.cat([zero, fp / (1 - y).sum()])
    thresholds = torch.cat([torch.tensor([math.inf], dtype=torch.float64), s[last]])
    return RocCurve(far, tar, thresholds)


def tar_at_far(scores: torch.Tensor, same: torch.Tensor, far: float = 1e-2) -> float:
    """The highest TAR among thresholds whose FAR is at most ``far``.

    Without ties, the threshold is the (1 − far) quantile of the impostor scores. Needs at
    least 1 / far impostor pairs, or a FAR of ``far`` cannot be measured.
    """
    far = check_number(far, "far", 0, 1, low_open=True, high_open=True)
    curve = roc_curve(scores, same)
    impostors = int((~check_pairs(scores, same)[1]).sum())
    if impostors * far < 1:
        raise ValueError(f"FAR = {far:g} needs at least {math.ceil(1 / far)} impostor pairs, got {impostors}")
    return float(curve.tar[curve.far <= far + 1e-12].max())


def best_threshold(scores: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """(threshold, accuracy): the threshold that classifies the most pairs right ("same" when
    score >= threshold), halfway between that score and the next lower one."""
    curve = roc_curve(scores, same)
    _, same = check_pairs(scores, same)
    p, n = float(same.sum()), float((~same).sum())
    accuracy = (curve.tar * p + (1 - curve.far) * n) / (p + n)
    i = int(torch.argmax(accuracy))
    t = curve.thresholds
    if i == 0:
        threshold = float(t[1]) + 1.0  # accept nothing
    else:
        lower = float(t[i + 1]) if i + 1 < len(t) else float(t[i]) - 1.0
        threshold = 0.5 * (float(t[i]) + lower)
    return threshold, float(accuracy[i])


def verification_accuracy(scores: torch.Tensor, same: torch.Tensor, *, folds: int = 10) -> PairAccuracy:
    """LFW pair accuracy: split the pairs into ``folds`` contiguous folds; for each, pick the best
    threshold on the others and measure accuracy on it; mean and std over folds."""
    check_positive_int(folds, "folds")
    scores, same = check_pairs(scores, same)
    if folds < 2 or folds > len(scores):
        raise ValueError(f"folds must lie in [2, {len(scores)}] (the number of pairs), got {folds}")
    fold = torch.arange(len(scores)) * folds // len(scores)
    accs, thresholds = [], []
    for k in range(folds):
        held = fold == k
        t, _ = best_threshold(scores[~held], same[~held])
        accs.append(float(((scores[held] >= t) == same[held]).double().mean()))
        thresholds.append(t)
    acc = torch.tensor(accs, dtype=torch.float64)
    return PairAccuracy(float(acc.mean()), float(acc.std()), torch.tensor(thresholds, dtype=torch.float64))


def class_centres(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The unit mean direction of each class's unit embeddings.

    (N, D), (N,) -> (C, D), C = labels.max() + 1.
    """
    embeddings = check_tensor(embeddings, "embeddings", dim=2, dtype="float")
    labels = check_tensor(labels, "labels", dim=1)
    check_same_length("embeddings", embeddings, "labels", labels)
    if labels.is_floating_point() or labels.numel() == 0 or labels.min() < 0:
        raise ValueError("labels must be a non-empty tensor of non-negative integers")
    x = F.normalize(embeddings.double(), dim=1)
    sums = torch.zeros(int(labels.max()) + 1, x.shape[1], dtype=x.dtype).index_add_(0, labels.long(), x)
    return F.normalize(sums, dim=1)


def angle_stats(embeddings: torch.Tensor, labels: torch.Tensor) -> AngleStats:
    """Angles (degrees) of every embedding to its class centre, and between class centres.

    Classes with no sample are left out of ``inter`` and ``nearest``. ``intra`` and ``nearest``
    are ArcFace's (arXiv 1801.07698, Table 2) "Intra" (sample to centre) and "Inter" (each centre
    to its nearest other centre, whose mean is the statistic that grows with a margin; in 64
    dimensions the mean over all pairs stays near 90° whatever the loss).
    """
    centres = class_centres(embeddings, labels)
    x = F.normalize(embeddings.double(), dim=1)
    intra = torch.rad2deg(torch.acos((x * centres[labels.long()]).sum(1).clamp(-1, 1)))
    present = torch.bincount(labels.long(), minlength=len(centres)) > 0
    c = centres[present]
    angles = torch.rad2deg(torch.acos((c @ c.T).clamp(-1, 1)))  # (C, C)
    i, j = torch.triu_indices(len(c), len(c), offset=1)
    off_diagonal = angles + torch.diag(torch.full((len(c),), float("inf"), dtype=angles.dtype))
    nearest = off_diagonal.min(1).values if len(c) > 1 else angles.new_empty(0)
    return AngleStats(intra, angles[i, j], nearest)
