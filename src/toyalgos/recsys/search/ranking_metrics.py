"""Offline ranking metrics over queries: NDCG@k, MAP, MRR, precision@k and recall@k.

Every function takes scikit-learn's argument order and shapes: ``y_true`` (n_queries, n_docs)
graded relevance (non-negative; a document is *relevant* when its grade is above 0) and
``y_score`` (n_queries, n_docs) the ranker's scores, one row per query. The ``*_per_query``
functions return one value per query (for standard errors); the others their mean.

NDCG follows ``sklearn.metrics.ndcg_score``: tied scores share the mean gain of their tie
group (the expected DCG over the orders of the tie), and a query without a relevant document
scores 0. MAP, MRR and precision/recall break ties by document position (stable sort).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from toyalgos.core.checks import check_choice, check_positive_int

ArrayLike = Any  # np.ndarray | torch.Tensor | nested lists


def _matrix(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x.astype(np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_queries, n_docs), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite")
    return a


def check_ranking(y_true: ArrayLike, y_score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Two 2-D arrays of one shape, with non-negative relevance and at least one query."""
    y, s = _matrix(y_true, "y_true"), _matrix(y_score, "y_score")
    if y.shape != s.shape:
        raise ValueError(f"y_true and y_score must have the same shape, got {y.shape} and {s.shape}")
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError(f"y_true is empty, shape {y.shape}")
    if (y < 0).any():
        raise ValueError(f"y_true must be non-negative relevance grades, got minimum {y.min()}")
    return y, s


def _discount(n: int, k: int | None) -> np.ndarray:
    """1 / log2(rank + 1) for ranks 1..n, 0 after rank k."""
    d = 1.0 / np.log2(np.arange(2, n + 2))
    if k is not None:
        d[k:] = 0.0
    return d


def _gain(y: np.ndarray, gain: str) -> np.ndarray:
    check_choice(gain, "gain", ("linear", "exponential"))
    return y if gain == "linear" else np.exp2(y) - 1.0


def _tie_averaged_dcg(g: np.ndarray, s: np.ndarray, discount: np.ndarray) -> np.ndarray:
    """DCG per row with tied scores sharing their group's mean gain (McSherry & Najork 2008)."""
    Q, n = s.shape
    order = np.argsort(-s, axis=1, kind="stable")
    ss, gs = np.take_along_axis(s, order, 1), np.take_along_axis(g, order, 1)  # (Q, n) best first
    new = np.ones((Q, n), dtype=bool)
    new[:, 1:] = ss[:, 1:] != ss[:, :-1]
    group = np.cumsum(new.ravel()) - 1  # (Q n,) tie-group id, a new group at each row start
    mean_gain = np.bincount(group, weights=gs.ravel()) / np.bincount(group)
    return (mean_gain[group].reshape(Q, n) * discount).sum(1)


def dcg_per_query(
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int | None = None,
    gain: Literal["linear", "exponential"] = "linear",
) -> np.ndarray:
    """DCG@k = sum_{i <= k} g_i / log2(i + 1) per query (Jarvelin & Kekalainen 2002), shape (Q,).

    Gain ``'linear'`` is the grade itself (scikit-learn's); ``'exponential'`` is 2^grade - 1
    (Burges et al. 2005), which weights the top grade far more.
    """
    y, s = check_ranking(y_true, y_score)
    if k is not None:
        check_positive_int(k, "k")
    return _tie_averaged_dcg(_gain(y, gain), s, _discount(y.shape[1], k))


def ndcg_per_query(
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int | None = None,
    gain: Literal["linear", "exponential"] = "linear",
) -> np.ndarray:
    """NDCG@k = DCG@k / ideal DCG@k per query, shape (Q,); 0 for a query with no relevant document.

    Like scikit-learn, refuses lists of one document (NDCG is 1 whatever the ranking).
    """
    y, s = check_ranking(y_true, y_score)
    if y.shape[1] == 1:
        raise ValueError("NDCG needs more than one document per query (with one, every ranking is ideal)")
    dcg = dcg_per_query(y, s, k, gain)
    ideal = (np.sort(_gain(y, gain), axis=1)[:, ::-1] * _discount(y.shape[1], k)).sum(1)
    out = np.zeros_like(dcg)
    np.divide(dcg, ideal, out=out, where=ideal > 0)
    return out


def ndcg_at_k(
    y_true: ArrayLike,
    y_score: ArrayLike,
    k: int | None = None,
    gain: Literal["linear", "exponential"] = "linear",
) -> float:
    """Mean NDCG@k over queries; with ``gain='linear'`` it equals ``sklearn.metrics.ndcg_score``."""
    return float(ndcg_per_query(y_true, y_score, k, gain).mean())


def _ranked_relevant(y_true: ArrayLike, y_score: ArrayLike) -> np.ndarray:
    """(Q, n) booleans: is the document at rank i (best first) relevant."""
    y, s = check_ranking(y_true, y_score)
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(y, order, 1) > 0


def reciprocal_ranks(y_true: ArrayLike, y_score: ArrayLike) -> np.ndarray:
    """1 / rank of the first relevant document per query (0 when none is relevant), shape (Q,)."""
    rel = _ranked_relevant(y_true, y_score)
    first = rel.argmax(1)
    return np.where(rel.any(1), 1.0 / (first + 1), 0.0)


def mean_reciprocal_rank(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """MRR (Voorhees 1999): the mean over queries of 1 / rank of the first relevant document."""
    return float(reciprocal_ranks(y_true, y_score).mean())


def average_precisions(y_true: ArrayLike, y_score: ArrayLike) -> np.ndarray:
    """Average precision per query: mean of precision@i over the ranks i of relevant documents, (Q,).

    0 for a query without a relevant document.
    """
    rel = _ranked_relevant(y_true, y_score)
    precision = np.cumsum(rel, 1) / np.arange(1, rel.shape[1] + 1)
    n_rel = rel.sum(1)
    return np.where(n_rel > 0, (precision * rel).sum(1) / np.maximum(n_rel, 1), 0.0)


def ranking_map(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """MAP: the mean over queries of the average precision (binary relevance: grade > 0)."""
    return float(average_precisions(y_true, y_score).mean())


def precision_at_k(y_true: ArrayLike, y_score: ArrayLike, k: int) -> float:
    """Mean over queries of the fraction of the top k documents that are relevant."""
    check_positive_int(k, "k")
    return float(_ranked_relevant(y_true, y_score)[:, :k].sum(1).mean() / k)


def recall_at_k(y_true: ArrayLike, y_score: ArrayLike, k: int) -> float:
    """Mean over queries with a relevant document of the fraction of them ranked in the top k."""
    check_positive_int(k, "k")
    rel = _ranked_relevant(y_true, y_score)
    n_rel = rel.sum(1)
    if not n_rel.any():
        raise ValueError("recall is undefined: no query has a relevant document")
    return float((rel[:, :k].sum(1)[n_rel > 0] / n_rel[n_rel > 0]).mean())
