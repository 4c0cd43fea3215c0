"""The CTR notebook's claims, each measured from labels, predictions or auction outcomes and a bound.

Every claim is one a broken model fails: LR (no interactions) is far from the Bayes limit; a
model whose every prediction is 1.5 times too high ranks as well as the calibrated one (same
AUC) but fails the calibration error, the log-loss gap and, where a reserve price sets what a
click costs, the auction's revenue; a wrong pairwise formula fails the FM identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from toyalgos.core.claims import Claim, at_least, at_most

from .auction import AuctionOutcome
from .ctr import fm_pairwise
from .metrics import ArrayLike, auc, expected_calibration_error, log_loss


def fm_identity(
    v: torch.Tensor,
    *,
    pairwise: Callable[[torch.Tensor], torch.Tensor] = fm_pairwise,
    bound: float = 1e-10,
) -> Claim:
    """max |pairwise(v) - sum_{i<j} <v_i, v_j>| over a batch v (B, F, k): at most ``bound``.

    The explicit double sum is written out pair by pair (O(F^2 k)); FM's O(F k) form must match it.
    """
    F = v.shape[1]
    explicit = sum((v[:, i] * v[:, j]).sum(1) for i in range(F) for j in range(i + 1, F))
    gap = (pairwise(v) - explicit).abs().max().item()
    return at_most("max |FM's O(kn) pairwise sum - explicit double sum|", gap, bound)


def auc_improves(
    y_true: ArrayLike, y_score: ArrayLike, y_baseline: ArrayLike, *, bound: float = 0.03
) -> Claim:
    """AUC of ``y_score`` minus AUC of ``y_baseline`` on the same labels: at least ``bound``."""
    gain = auc(y_true, y_score) - auc(y_true, y_baseline)
    return at_least("AUC gain over the baseline", gain, bound)


def auc_gap_to_bayes(
    y_true: ArrayLike, y_score: ArrayLike, true_ctr: ArrayLike, *, bound: float = 0.02
) -> Claim:
    """Bayes AUC (the true CTR's) minus the model's AUC: at most ``bound``."""
    gap = auc(y_true, true_ctr) - auc(y_true, y_score)
    return at_most("AUC gap to the Bayes limit", gap, bound)


def log_loss_gap_to_bayes(
    y_true: ArrayLike, y_score: ArrayLike, true_ctr: ArrayLike, *, bound: float = 0.03
) -> Claim:
    """The model's log loss over the true CTR's, minus 1: at most ``bound``.

    Log loss punishes wrong probabilities as well as wrong orders: a model scaled by 1.5 keeps
    its AUC but not its log loss.
    """
    gap = log_loss(y_true, y_score) / log_loss(y_true, true_ctr) - 1
    return at_most("relative log-loss gap to the Bayes limit", gap, bound)


def calibration_error(
    y_true: ArrayLike, y_score: ArrayLike, *, n_bins: int = 15, bound: float = 0.07
) -> Claim:
    """Expected calibration error (quantile bins) over the observed CTR: at most ``bound``.

    Read as: on average, a prediction is off by that fraction of the CTR. A model 1.5 times too
    high scores about 0.5; the true CTR about 0.02-0.04 (the bins' sampling noise).
    """
    y = torch.as_tensor(y_true, dtype=torch.float64)
    ece = expected_calibration_error(y_true, y_score, n_bins=n_bins) / float(y.mean())
    return at_most("expected calibration error / observed CTR", ece, bound)


def keeps_revenue(outcome: AuctionOutcome, reference: AuctionOutcome, *, bound: float = 0.97) -> Claim:
    """Expected revenue of an auction over that of a reference on the same requests: at least ``bound``."""
    ratio = outcome.revenue.sum().item() / reference.revenue.sum().item()
    return at_least("revenue / revenue of the true-CTR auction", ratio, bound)


def loses_revenue(outcome: AuctionOutcome, reference: AuctionOutcome, *, bound: float = 0.04) -> Claim:
    """1 - revenue / reference revenue on the same requests: at least ``bound`` (a measurable loss)."""
    loss = 1 - outcome.revenue.sum().item() / reference.revenue.sum().item()
    return at_least("revenue lost against the calibrated model", loss, bound)
