"""Query suggestion: prefix completion from a trie, time-sensitive counts, related queries from sessions.

- Most popular completion (MPC; Bar-Yossef & Kraus 2011, "Context-Sensitive Query
  Auto-Completion"): for a typed prefix p, suggest the past queries that start with p,
  most frequent first. A trie whose every node keeps its own top-k completions answers in
  O(|p| + k), whatever the number of queries below the node.
- Time-sensitive completion (Shokouhi & Radinsky 2012, "Time-Sensitive Query Auto-Completion"):
  rank by recent popularity instead of all-time counts; here exponentially decayed counts,
  each submission weighted 2^(-age / half_life).
- Related queries: queries that co-occur in sessions, scored by the count c(q, q'), the
  conditional probability P(q' | q) = c(q, q') / n(q) or the pointwise mutual information
  PMI = log(c(q, q') S / (n(q) n(q'))) over S sessions.
- Quality of a completion: the reciprocal rank of the query finally submitted among the
  suggestions for each typed prefix (0 when it is missing), averaged: MRR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from toyalgos.core.checks import (
    check_choice,
    check_int,
    check_nonnegative_int,
    check_number,
    check_positive_int,
)


class CompletionTrie:
    """A character trie over ``counts`` (query -> count) storing the top ``k`` completions per node.

    Completions are ordered by count, highest first, ties alphabetically, so a trie over equal
    counts completes alphabetically. Queries are inserted in that order and each node keeps the
    first ``k`` queries that pass through it: its top-k, built in one pass over the characters.
    """

    def __init__(self, counts: Mapping[str, float], k: int = 10):
        if not isinstance(counts, Mapping):
            raise TypeError(f"counts must be a mapping query -> count, got {type(counts).__name__}")
        check_positive_int(k, "k")
        for q, c in counts.items():
            if not isinstance(q, str) or not q:
                raise TypeError(f"queries must be non-empty strings, got {q!r}")
            check_number(c, f"counts[{q!r}]", 0)
            if math.isnan(c):
                raise ValueError(f"counts[{q!r}] is NaN")
        self.k = k
        self.queries = sorted(counts, key=lambda q: (-counts[q], q))  # best first
        self.counts = {q: counts[q] for q in self.queries}
        self.children: list[dict[str, int]] = [{}]  # node 0 is the root (the empty prefix)
        self.top: list[list[int]] = [[]]  # per node: ids into self.queries, best first
        for i, q in enumerate(self.queries):
            node = 0
            self._keep(node, i)
            for ch in q:
                nxt = self.children[node].get(ch)
                if nxt is None:
                    nxt = self.children[node][ch] = len(self.children)
                    self.children.append({})
                    self.top.append([])
                node = nxt
                self._keep(node, i)

    def _keep(self, node: int, i: int) -> None:
        if len(self.top[node]) < self.k:
            self.top[node].append(i)

    def __len__(self) -> int:
        return len(self.queries)

    def node(self, prefix: str) -> int | None:
        """The node reached by typing ``prefix`` (None when no query starts with it)."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {type(prefix).__name__}")
        node = 0
        for ch in prefix:
            node = self.children[node].get(ch)
            if node is None:
                return None
        return node

    def complete(self, prefix: str) -> list[str]:
        """The top-k queries that start with ``prefix``, best first; [] for a prefix no query has."""
        node = self.node(prefix)
        return [] if node is None else [self.queries[i] for i in self.top[node]]


def decayed_counts(
    log_query: np.ndarray, log_day: np.ndarray, *, now: float, half_life: float, n_queries: int
) -> np.ndarray:
    """Per query, the sum over its submissions before ``now`` of 2^(-(now - day) / half_life), (n_queries,).

    ``half_life=math.inf`` gives the all-time counts. Days are the submission times.
    """
    check_positive_int(n_queries, "n_queries")
    check_number(half_life, "half_life", 0, low_open=True)
    q, d = np.asarray(log_query), np.asarray(log_day, dtype=np.float64)
    if q.shape != d.shape or q.ndim != 1:
        raise ValueError(f"log_query and log_day must be 1-D of one length, got {q.shape} and {d.shape}")
    if len(q) and (q.min() < 0 or q.max() >= n_queries):
        raise ValueError(f"log_query must hold query ids in [0, {n_queries}), got [{q.min()}, {q.max()}]")
    past = d < now
    weight = np.exp2(-(now - d[past]) / half_life)
    return np.bincount(q[past], weights=weight, minlength=n_queries)


def completion_reciprocal_ranks(
    trie: CompletionTrie, targets: Sequence[str], prefix_length: int
) -> np.ndarray:
    """1 / rank of each submitted query among the completions of its first ``prefix_length`` characters.

    0 when it is not among the trie's top-k; shape (len(targets),).
    """
    check_nonnegative_int(prefix_length, "prefix_length")
    out = np.zeros(len(targets))
    for i, t in enumerate(targets):
        suggestions = trie.complete(t[:prefix_length])
        if t in suggestions:
            out[i] = 1.0 / (suggestions.index(t) + 1)
    return out


def completion_mrr(trie: CompletionTrie, targets: Sequence[str], prefix_length: int) -> float:
    """Mean reciprocal rank of the submitted queries ``targets`` after typing ``prefix_length`` characters.

    Only queries longer than the prefix count: a user who has typed the whole query needs no
    completion (and alphabetical order would rank the exact query first for free).
    """
    check_nonnegative_int(prefix_length, "prefix_length")
    typing = [t for t in targets if len(t) > prefix_length]
    if not typing:
        raise ValueError(f"no target is longer than {prefix_length} characters: MRR is undefined")
    return float(completion_reciprocal_ranks(trie, typing, prefix_length).mean())


def cooccurrence(
    sessions: Sequence[Sequence[int]], n_queries: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session co-occurrence: ordered pairs (P, 2) of distinct query ids, their counts c(q, q') (P,),
    and the number of sessions n(q) (n_queries,) containing each query.

    Each session counts once per pair and once per query, however often a query repeats in it.
    """
    check_positive_int(n_queries, "n_queries")
    lengths = np.fromiter(map(len, sessions), dtype=np.int64, count=len(sessions))
    flat = np.fromiter((q for s in sessions for q in s), dtype=np.int64, count=int(lengths.sum()))
    if len(flat) and (flat.min() < 0 or flat.max() >= n_queries):
        raise ValueError(
            f"sessions must hold query ids in [0, {n_queries}), got [{flat.min()}, {flat.max()}]"
        )
    session = np.repeat(np.arange(len(sessions)), lengths)
    key = np.unique(session * n_queries + flat)  # each (session, query) once
    session, flat = key // n_queries, key % n_queries
    n_q = np.bincount(flat, minlength=n_queries)
    # Pad sessions into rows, then all ordered pairs of distinct entries of a row.
    counts = np.bincount(session, minlength=len(sessions))
    col = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.full((len(sessions), max(int(counts.max(initial=0)), 1)), -1)
    rows[session, col] = flat
    a, b = rows[:, :, None], rows[:, None, :]
    valid = (a >= 0) & (b >= 0) & (a != b)
    pair_key = (np.broadcast_to(a, valid.shape)[valid]) * n_queries + np.broadcast_to(b, valid.shape)[valid]
    keys, c = np.unique(pair_key, return_counts=True)
    return np.stack([keys // n_queries, keys % n_queries], axis=1), c, n_q


def related_queries(
    sessions: Sequence[Sequence[int]],
    n_queries: int,
    *,
    k: int = 5,
    score: Literal["count", "conditional", "pmi"] = "pmi",
    min_count: int = 2,
) -> np.ndarray:
    """The ``k`` most related queries of every query from session co-occurrence, (n_queries, k).

    Row q lists query ids best first by ``score`` (``'count'``, ``'conditional'`` P(q'|q) or
    ``'pmi'``), ties by id, among pairs seen in at least ``min_count`` sessions; -1 pads a row
    with fewer candidates. PMI favours rare pairs, so ``min_count`` guards it against chance.
    """
    check_positive_int(k, "k")
    check_choice(score, "score", ("count", "conditional", "pmi"))
    check_int(min_count, "min_count", 1)
    pairs, c, n_q = cooccurrence(sessions, n_queries)
    keep = c >= min_count
    pairs, c = pairs[keep], c[keep].astype(np.float64)
    a, b = pairs[:, 0], pairs[:, 1]
    if score == "count":
        value = c
    elif score == "conditional":
        value = c / n_q[a]
    else:
        value = np.log(c * len(sessions) / (n_q[a] * n_q[b]))
    order = np.lexsort((b, -value, a))  # by query, then best score first
    a, b = a[order], b[order]
    start = np.searchsorted(a, a)  # first entry of each query's block
    rank = np.arange(len(a)) - start
    top = rank < k
    out = np.full((n_queries, k), -1, dtype=np.int64)
    out[a[top], rank[top]] = b[top]
    return out


def planted_precision_at_k(related: np.ndarray, groups: np.ndarray, k: int = 5) -> float:
    """Mean over the queries of planted ``groups`` of the fraction of their top ``k`` related queries
    that belong to the same group (a missing suggestion, -1, counts as wrong)."""
    check_positive_int(k, "k")
    related, groups = np.asarray(related), np.asarray(groups)
    if related.ndim != 2 or related.shape[1] < k:
        raise ValueError(f"related must be (n_queries, >= {k}), got shape {related.shape}")
    group_of = np.full(related.shape[0], -1)
    group_of[groups] = np.arange(len(groups))[:, None]
    members = groups.ravel()
    top = related[members, :k]  # (M, k)
    same = (top >= 0) & (group_of[np.where(top >= 0, top, 0)] == group_of[members][:, None])
    return float(same.mean())
