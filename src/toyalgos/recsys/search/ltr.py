"""Learning to rank: features per (query, document), a small scorer, and four losses.

A first stage (BM25 over the inverted index) retrieves ``k`` candidates per query; a learned
scorer re-ranks them from features. The batch of every loss is a set of queries, each with the
same number K of candidates: ``x`` (Q, K, F) features and ``y`` (Q, K) graded relevance.

- Pointwise: regress the grade (squared error) or classify it (cross-entropy on grade / 3).
- RankNet (Burges et al. 2005; Burges, MSR-TR-2010-82, Sec. 2): for every pair with
  y_i > y_j, P_ij = sigmoid(sigma (s_i - s_j)) and the cost -log P_ij.
- LambdaRank (Burges, MSR-TR-2010-82, Sec. 4): the same pair cost weighted by |Delta NDCG_ij|,
  the change in NDCG from swapping i and j in the current ranking, so pairs near the top count.
- ListNet (Cao et al. 2007, Sec. 5, with the top-one probability of Sec. 4.2): the cross-entropy
  between the top-one probabilities softmax(y) of the labels and softmax(s) of the scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from toyalgos.core import evaluating
from toyalgos.core.checks import check_choice, check_number, check_positive_int, check_tensor

from ..ctr import mlp
from .index import InvertedIndex, Tokens, check_query, tfidf_scores

FEATURE_NAMES = ("bm25", "tfidf_cosine", "log_length", "coverage", "proximity", "distinct_ratio")


def query_document_features(index: InvertedIndex, query_tokens: Tokens, doc_ids: np.ndarray) -> np.ndarray:
    """Features (m, 6) of one query against documents ``doc_ids`` (m,), in ``FEATURE_NAMES`` order.

    BM25 (k1 = 1.5, b = 0.75); TF-IDF cosine; log(1 + length); coverage, the fraction of the
    query's distinct terms the document contains; proximity, 1 / the smallest distance between
    two different query terms in the document (0 with fewer than two); distinct_ratio, distinct
    terms / length (low for a document that repeats a few words).
    """
    query = check_query(query_tokens)
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    m = len(doc_ids)
    qids = np.array(sorted({index.vocabulary[q] for q in query if q in index.vocabulary}), dtype=np.int64)
    # The candidates' tokens from the forward index, row r = document doc_ids[r].
    start, length = index.doc_ptr[doc_ids], index.doc_length[doc_ids]
    row = np.repeat(np.arange(m), length)  # (L,)
    pos = np.arange(len(row)) - np.repeat(np.cumsum(length) - length, length)  # position in its document
    term = index.tokens[start[row] + pos]
    hit = np.isin(term, qids)
    r, p, t = row[hit], pos[hit], term[hit]
    present = np.unique(r * max(len(index.vocabulary), 1) + t) // max(len(index.vocabulary), 1)
    coverage = np.bincount(present, minlength=m) / max(len(set(query)), 1)
    # Nearest pair of different query terms: always two neighbours in the list of hits.
    pair = (r[1:] == r[:-1]) & (t[1:] != t[:-1])
    gap = np.full(m, np.inf)
    np.minimum.at(gap, r[1:][pair], (p[1:] - p[:-1])[pair])
    features = [
        index.bm25(query)[doc_ids],
        tfidf_scores(index, query)[doc_ids],
        np.log1p(length),
        coverage,
        1.0 / gap,
        index.distinct_terms[doc_ids] / np.maximum(length, 1),
    ]
    return np.stack(features, axis=1)


class RankingLists(NamedTuple):
    """K candidates per query: features (Q, K, F), relevance (Q, K) and document ids (Q, K)."""

    features: torch.Tensor
    relevance: torch.Tensor
    doc_ids: torch.Tensor


def candidate_lists(
    index: InvertedIndex, queries: Sequence[Tokens], relevance: np.ndarray, k: int = 50
) -> RankingLists:
    """Retrieve the BM25 top-``k`` of every query and compute their features and true grades.

    ``relevance`` (n_queries, n_docs) is the truth (``Corpus.relevance``). The candidates come
    best first, so column 0 of the features (BM25) ranks them as the first stage did.
    """
    check_positive_int(k, "k")
    if k > len(index):
        raise ValueError(f"k must be at most the number of documents ({len(index)}), got {k}")
    relevance = np.asarray(relevance)
    if relevance.shape != (len(queries), len(index)):
        raise ValueError(
            f"relevance must have shape (n_queries, n_docs) = {(len(queries), len(index))}, "
            f"got {relevance.shape}"
        )
    ids = np.stack([index.top_k(q, k)[0] for q in queries])  # (Q, K)
    x = np.stack([query_document_features(index, q, d) for q, d in zip(queries, ids, strict=True)])
    y = np.take_along_axis(relevance, ids, 1)
    return RankingLists(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), torch.tensor(ids)
    )


class Standardize(nn.Module):
    """(x - mean) / std with the statistics of the training features, fixed (not learned)."""

    def __init__(self, features: torch.Tensor):
        super().__init__()
        flat = check_tensor(features, "features", dtype="float").reshape(-1, features.shape[-1])
        self.register_buffer("mean", flat.mean(0))
        self.register_buffer("std", flat.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def ranking_scorer(train_features: torch.Tensor, hidden: Sequence[int] = (32,)) -> nn.Sequential:
    """The scorer every loss trains: standardise the features, then an MLP to one score.

    Maps (..., F) features to (..., 1) scores; ``hidden=()`` gives a linear scorer.
    """
    F = train_features.shape[-1]
    return nn.Sequential(Standardize(train_features), mlp([F, *hidden]))


def _scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    check_tensor(x, "x", dim=3, dtype="float")
    check_tensor(y, "y", dim=2)
    if x.shape[:2] != y.shape:
        raise ValueError(f"x (Q, K, F) and y (Q, K) disagree: {tuple(x.shape)} and {tuple(y.shape)}")
    if (y < 0).any():
        raise ValueError(f"relevance grades must be non-negative, got minimum {y.min().item()}")
    return model(x).squeeze(-1)  # (Q, K)


def pointwise_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kind: Literal["regression", "classification"] = "regression",
    max_grade: float = 3.0,
) -> torch.Tensor:
    """Pointwise: each document alone. ``'regression'``: mean (s - y)^2; ``'classification'``:
    binary cross-entropy of sigmoid(s) against y / ``max_grade``."""
    check_choice(kind, "kind", ("regression", "classification"))
    s = _scores(model, x, y)
    if kind == "regression":
        return (s - y).pow(2).mean()
    return nn.functional.binary_cross_entropy_with_logits(s, y / max_grade)


def _pairs(y: torch.Tensor) -> torch.Tensor:
    """(Q, K, K) booleans: document i is more relevant than document j."""
    return y[:, :, None] > y[:, None, :]


def ranknet_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma: float = 1.0) -> torch.Tensor:
    """RankNet (Burges, MSR-TR-2010-82, Sec. 2): mean over pairs with y_i > y_j of the cost
    -log P_ij = log(1 + exp(-sigma (s_i - s_j))), P_ij = sigmoid(sigma (s_i - s_j)); x (Q, K, F), y (Q, K)."""
    check_number(sigma, "sigma", 0, low_open=True)
    s = _scores(model, x, y)
    pairs = _pairs(y)
    cost = nn.functional.softplus(-sigma * (s[:, :, None] - s[:, None, :]))
    return cost[pairs].sum() / pairs.sum().clamp_min(1)


def _gains(y: torch.Tensor, gain: str) -> torch.Tensor:
    check_choice(gain, "gain", ("linear", "exponential"))
    return y if gain == "linear" else torch.exp2(y) - 1


def delta_ndcg(
    s: torch.Tensor,
    y: torch.Tensor,
    *,
    k: int | None = None,
    gain: Literal["linear", "exponential"] = "exponential",
) -> torch.Tensor:
    """|Delta NDCG@k_ij| (Q, K, K): the change in NDCG@k when documents i and j swap ranks.

    Ranks come from the current scores ``s`` (Q, K), best first; swapping i and j exchanges their
    discounts, so |Delta| = |g_i - g_j| |1 / log2(1 + r_i) - 1 / log2(1 + r_j)| / IDCG@k.
    """
    Q, K = s.shape
    rank = torch.argsort(torch.argsort(s.detach(), dim=1, descending=True, stable=True), dim=1)  # 0-based
    discount = 1.0 / torch.log2(rank.to(s.dtype) + 2)
    ideal_discount = 1.0 / torch.log2(torch.arange(K, dtype=s.dtype) + 2)
    if k is not None:
        check_positive_int(k, "k")
        discount = discount * (rank < k)
        ideal_discount[k:] = 0
    g = _gains(y.to(s.dtype), gain)
    idcg = (g.sort(dim=1, descending=True).values * ideal_discount).sum(1).clamp_min(1e-12)  # (Q,)
    dg = (g[:, :, None] - g[:, None, :]).abs()
    dd = (discount[:, :, None] - discount[:, None, :]).abs()
    return dg * dd / idcg[:, None, None]


def lambdarank_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    sigma: float = 1.0,
    k: int | None = None,
    gain: Literal["linear", "exponential"] = "exponential",
) -> torch.Tensor:
    """LambdaRank: sum over pairs y_i > y_j of |Delta NDCG_ij| log(1 + exp(-sigma (s_i - s_j))),
    averaged over queries.

    |Delta NDCG| is held fixed at the current ranking (no gradient flows through it), so the
    gradient in s_i is the paper's lambda_i (``lambdas``): the smoothed objective of Sec. 4.
    """
    check_number(sigma, "sigma", 0, low_open=True)
    s = _scores(model, x, y)
    weight = delta_ndcg(s, y, k=k, gain=gain) * _pairs(y)
    cost = nn.functional.softplus(-sigma * (s[:, :, None] - s[:, None, :]))
    return (weight * cost).sum() / s.shape[0]


def lambdas(
    s: torch.Tensor,
    y: torch.Tensor,
    *,
    sigma: float = 1.0,
    k: int | None = None,
    gain: Literal["linear", "exponential"] = "exponential",
) -> torch.Tensor:
    """The LambdaRank gradients lambda_i (Q, K) of Burges, MSR-TR-2010-82 (Sec. 4), in closed form.

    lambda_ij = -sigma / (1 + exp(sigma (s_i - s_j))) |Delta NDCG_ij| for y_i > y_j, and
    lambda_i = sum_{j: y_i > y_j} lambda_ij - sum_{j: y_j > y_i} lambda_ji.
    Negative lambda_i pushes document i up (gradient descent on the cost).
    """
    s = check_tensor(s, "s", dim=2, dtype="float").detach()
    lam = -sigma * torch.sigmoid(-sigma * (s[:, :, None] - s[:, None, :]))
    lam = lam * delta_ndcg(s, y, k=k, gain=gain) * _pairs(y)
    return lam.sum(2) - lam.sum(1)


def listnet_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ListNet (Cao et al. 2007, Sec. 5): cross-entropy -sum_j P_y(j) log P_s(j) between the top-one
    probabilities (Sec. 4.2) P_y = softmax(y) and P_s = softmax(s), mean over queries.

    x (Q, K, F) features, y (Q, K) grades."""
    s = _scores(model, x, y)
    target = torch.softmax(y.to(s.dtype), dim=1)
    return -(target * torch.log_softmax(s, dim=1)).sum(1).mean()


def predict_scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The scorer's scores (Q, K) of features (Q, K, F), in eval mode (the caller's mode is kept)."""
    check_tensor(x, "x", dim=3, dtype="float")
    with evaluating(model):
        return model(x).squeeze(-1)
