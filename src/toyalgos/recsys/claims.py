"""The CTR notebook's claims, each measured from labels, predictions or auction outcomes and a bound.

Every claim is one a broken model fails: LR (no interactions) is far from the Bayes limit; a
model whose every prediction is 1.5 times too high ranks as well as the calibrated one (same
AUC) but fails the calibration error, the log-loss gap and, where a reserve price sets what a
click costs, the auction's revenue; a wrong pairwise formula fails the FM identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from toyalgos.core.claims import Claim, at_least, at_most

from .auction import AuctionOutcome
from .ctr import fm_pairwise
from .features import collision_rate, expected_collision_rate
from .metrics import ArrayLike, auc, calibration_ratio, expected_calibration_error, log_loss
from .rerank import ilad, ndcg
from .search.suggest import planted_precision_at_k


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


# --- 40_search_ranking ----------------------------------------------------------------------
# Known-bad cases: rank_bm25's idf replaced by Lucene's (+1) form, exponential gain where
# scikit-learn uses linear, a ranker compared with itself or with random scores, a top-k that
# reads only part of the postings.


def bm25_matches_reference(ours: ArrayLike, reference: ArrayLike, *, bound: float = 1e-9) -> Claim:
    """max |our BM25 - the reference library's| over every (query, document) score: at most ``bound``."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"ours and reference must be non-empty arrays of one shape, got {a.shape}, {b.shape}"
        )
    return at_most("max |BM25 (ours) - BM25 (rank_bm25)|", float(np.abs(a - b).max()), bound)


def ndcg_matches_reference(ours: ArrayLike, reference: ArrayLike, *, bound: float = 1e-12) -> Claim:
    """max |our NDCG - scikit-learn's ndcg_score| over the cases compared: at most ``bound``."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"ours and reference must be non-empty arrays of one shape, got {a.shape}, {b.shape}"
        )
    return at_most("max |NDCG (ours) - ndcg_score (scikit-learn)|", float(np.abs(a - b).max()), bound)


def beats_by_standard_errors(
    per_query: ArrayLike,
    baseline: ArrayLike,
    *,
    name: str = "the ranker",
    baseline_name: str = "the baseline",
    bound: float = 2.0,
) -> Claim:
    """Mean per-query gain over a baseline on the same queries, in standard errors: at least ``bound``.

    Paired: the gain d_q = metric_q - baseline_q of each query, and mean(d) / (std(d) / sqrt(Q)).
    Identical rankings give 0. ``name`` and ``baseline_name`` only label the statement.
    """
    a, b = np.asarray(per_query, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"per_query and baseline must be 1-D of one length >= 2, got {a.shape}, {b.shape}")
    d = a - b
    se = d.std(ddof=1) / np.sqrt(len(d))
    z = 0.0 if se == 0 else float(d.mean() / se)
    return at_least(f"{name} over {baseline_name}: mean per-query gain / its standard error", z, bound)


def top_k_matches_exhaustive(top_ids: ArrayLike, exhaustive_scores: ArrayLike, *, bound: float = 0) -> Claim:
    """Queries whose top-k over postings differs from the exhaustive top-k: at most ``bound`` (none).

    ``top_ids`` (Q, k) best first, ``exhaustive_scores`` (Q, N) every document's score. A query
    matches when its k documents are distinct, come in descending exhaustive score, and their
    scores are the k largest (so any order among tied documents is accepted).
    """
    ids, s = np.asarray(top_ids), np.asarray(exhaustive_scores, dtype=np.float64)
    if ids.ndim != 2 or s.ndim != 2 or ids.shape[0] != s.shape[0] or ids.shape[1] > s.shape[1]:
        raise ValueError(f"top_ids (Q, k) and exhaustive_scores (Q, N >= k) disagree: {ids.shape}, {s.shape}")
    k = ids.shape[1]
    got = np.take_along_axis(s, ids, 1)  # (Q, k)
    best = -np.sort(-s, axis=1)[:, :k]
    distinct = np.array([len(set(row)) == k for row in ids.tolist()])
    ok = distinct & (np.abs(got - best) <= 1e-12 * np.maximum(1, np.abs(best))).all(1)
    return at_most(
        "queries whose top-k over postings differs from the exhaustive top-k", int((~ok).sum()), bound
    )


# --- 41_query_suggestion --------------------------------------------------------------------
# Known-bad cases: alphabetical (or random) completion compared with itself, all-time counts
# in place of decayed ones, related queries from sessions whose queries were shuffled.


def mrr_beats_at_every_prefix_length(mrr: ArrayLike, baseline: ArrayLike, *, bound: float = 0.1) -> Claim:
    """min over prefix lengths of MRR - the baseline's MRR (one value per length): at least ``bound``."""
    a, b = np.asarray(mrr, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"mrr and baseline must be 1-D of one length, got {a.shape}, {b.shape}")
    return at_least("smallest MRR gain over the baseline across prefix lengths", float((a - b).min()), bound)


def mrr_gain_after_shift(mrr: float, baseline: float, *, bound: float = 0.05) -> Claim:
    """MRR after the popularity shift minus the baseline's MRR on the same submissions: at least ``bound``."""
    return at_least("MRR gain over all-time counts after the shift", float(mrr) - float(baseline), bound)


def planted_pairs_recovered(
    related: ArrayLike, groups: ArrayLike, *, k: int = 5, bound: float = 0.8
) -> Claim:
    """Precision@k of the related queries of every planted query (same-group share): at least ``bound``."""
    value = planted_precision_at_k(np.asarray(related), np.asarray(groups), k)
    return at_least(f"precision@{k} of related queries against the planted groups", value, bound)


# --- 42_feature_engineering ---------------------------------------------------------------


def encoding_leaks(y_true: ArrayLike, encoding: ArrayLike, *, bound: float = 0.6) -> Claim:
    """AUC of a feature's encoding used as the score on the rows it was fitted on: at least ``bound``.

    For a pure-noise id, any AUC well above 0.5 on the training rows is the rows' own labels
    leaking into their encoding; an out-of-fold encoding fails this claim.
    """
    return at_least("train AUC of the in-sample encoding of a pure-noise id", auc(y_true, encoding), bound)


def auc_near_chance(y_true: ArrayLike, y_score: ArrayLike, *, bound: float = 0.02) -> Claim:
    """|AUC - 0.5|: at most ``bound`` (the score carries no information about the label)."""
    return at_most("|AUC - 0.5| of a noise feature's encoding", abs(auc(y_true, y_score) - 0.5), bound)


def collisions_match_formula(
    indices: Sequence[torch.Tensor], n_buckets: Sequence[int], *, bound: float = 0.1
) -> Claim:
    """Largest relative gap between a hash's measured collision rate and 1 - (1 - 1/m)^(n - 1).

    ``indices[i]``: the buckets of n distinct values hashed into ``n_buckets[i]`` buckets. A
    hash that uses only part of its buckets (``id mod m`` on ids with a common stride)
    collides far more often than the formula says.
    """
    gaps = [
        abs(collision_rate(idx) / expected_collision_rate(len(idx), m) - 1)
        for idx, m in zip(indices, n_buckets, strict=True)
    ]
    return at_most("max relative gap of the collision rate to the formula", max(gaps), bound)


def selection_hits(selected: Sequence[int], informative: torch.Tensor, *, bound: int = 4) -> Claim:
    """How many of the ``selected`` columns are informative: at least ``bound``."""
    hits = int(informative[torch.as_tensor(list(selected), dtype=torch.long)].sum())
    return at_least("informative features among those selected", hits, bound)


def selection_false_picks(selected: Sequence[int], informative: torch.Tensor, *, bound: int = 1) -> Claim:
    """How many of the ``selected`` columns are not informative (redundant or noise): at most ``bound``."""
    false = int((~informative[torch.as_tensor(list(selected), dtype=torch.long)]).sum())
    return at_most("selected features that are not informative", false, bound)


def gap_closed(
    y_true: ArrayLike, y_with: ArrayLike, y_without: ArrayLike, true_ctr: ArrayLike, *, bound: float = 0.5
) -> Claim:
    """Share of the baseline's AUC gap to the Bayes limit that a feature closes: at least ``bound``.

    (AUC_with - AUC_without) / (AUC_Bayes - AUC_without), on the same labels.
    """
    bayes, without = auc(y_true, true_ctr), auc(y_true, y_without)
    closed = (auc(y_true, y_with) - without) / (bayes - without)
    return at_least("share of LR's AUC gap to Bayes closed by the cross", closed, bound)


def gap_ratio(
    y_true: ArrayLike, y_score: ArrayLike, y_baseline: ArrayLike, true_ctr: ArrayLike, *, bound: float = 0.5
) -> Claim:
    """The model's AUC gap to the Bayes limit over the baseline's: at most ``bound``."""
    bayes = auc(y_true, true_ctr)
    ratio = (bayes - auc(y_true, y_score)) / (bayes - auc(y_true, y_baseline))
    return at_most("AUC gap to Bayes / the unregularised model's gap", ratio, bound)


def calibration_within(y_true: ArrayLike, y_score: ArrayLike, *, bound: float = 0.05) -> Claim:
    """|predicted clicks / observed clicks - 1|: at most ``bound``."""
    return at_most("|calibration ratio - 1|", abs(calibration_ratio(y_true, y_score) - 1), bound)


# --- 44_reranking -------------------------------------------------------------------------


def same_picks(
    picks: Sequence[Sequence[int]], reference: Sequence[Sequence[int]], *, bound: float = 1.0
) -> Claim:
    """Share of instances where ``picks`` equals ``reference`` exactly: at least ``bound``.

    Compare ordered lists (fast vs naive greedy) or sorted sets (greedy vs brute force).
    """
    same = [list(a) == list(b) for a, b in zip(picks, reference, strict=True)]
    return at_least("share of instances with identical picks", sum(same) / len(same), bound)


def loglog_slope(
    sizes: Sequence[float], times: Sequence[float], *, expected: float, bound: float = 0.3
) -> Claim:
    """|fitted slope of log(time) against log(size) - expected|: at most ``bound``."""
    slope = float(np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(times, float)), 1)[0])
    return at_most(f"|log-log slope - {expected:g}| (slope {slope:.2f})", abs(slope - expected), bound)


def speedup(fast_seconds: float, slow_seconds: float, *, bound: float = 10.0) -> Claim:
    """slow / fast run time on the same problem: at least ``bound``."""
    return at_least("speed-up (slow time / fast time)", slow_seconds / fast_seconds, bound)


def raises_ilad(features: torch.Tensor, baseline_features: torch.Tensor, *, bound: float = 0.1) -> Claim:
    """Mean ILAD of the re-ranked lists minus the baseline lists (N, k, d each): at least ``bound``."""
    gain = (ilad(features) - ilad(baseline_features)).mean().item()
    return at_least("ILAD gain over the relevance-only lists", gain, bound)


def ndcg_cost(
    gains: torch.Tensor, baseline_gains: torch.Tensor, *, k: int | None = None, bound: float = 0.08
) -> Claim:
    """Mean NDCG@k of the baseline lists minus that of the re-ranked ones: at most ``bound``.

    Gains are in display order, (N, L) each, with the same items' gains in both (the items not
    shown after the list), so that both are judged against the same ideal list.
    """
    cost = (ndcg(baseline_gains, k) - ndcg(gains, k)).mean().item()
    return at_most("NDCG lost against the relevance-only lists", cost, bound)


def ndcg_improves(
    gains: torch.Tensor, baseline_gains: torch.Tensor, *, k: int | None = None, bound: float = 0.03
) -> Claim:
    """Mean paired NDCG@k gain of the re-ranked lists over the baseline order: at least ``bound``."""
    gain = (ndcg(gains, k) - ndcg(baseline_gains, k)).mean().item()
    return at_least("NDCG gain over the initial ranking", gain, bound)
