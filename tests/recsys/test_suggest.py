"""Completion trie against a brute-force sort; decayed counts; related queries; the query log."""

import math

import numpy as np
import pytest
import torch

from toyalgos.recsys import (
    CompletionTrie,
    completion_mrr,
    completion_reciprocal_ranks,
    cooccurrence,
    decayed_counts,
    make_query_log,
    planted_precision_at_k,
    related_queries,
)


@pytest.fixture(scope="module")
def log():
    return make_query_log(
        600,
        generator=torch.Generator().manual_seed(0),
        n_days=10,
        per_day=500,
        shift_day=6,
        n_trending=30,
        n_sessions=4000,
        n_groups=30,
    )


def _brute_force(counts, prefix, k):
    return sorted((q for q in counts if q.startswith(prefix)), key=lambda q: (-counts[q], q))[:k]


def test_trie_top_k_equals_a_brute_force_sort(log):
    g = np.random.default_rng(0)
    counts = {q: float(c) for q, c in zip(log.queries, g.integers(0, 5, len(log.queries)), strict=True)}
    trie = CompletionTrie(counts, k=7)
    prefixes = ["", *{q[:n] for q in log.queries[:100] for n in (1, 2, 3, 5)}, "zzzz", "ka ", log.queries[0]]
    for p in prefixes:
        assert trie.complete(p) == _brute_force(counts, p, 7), p


def test_equal_counts_complete_alphabetically_and_unknown_prefixes_give_nothing():
    trie = CompletionTrie(dict.fromkeys(["banana", "band", "ban", "apple"], 1.0), k=2)
    assert trie.complete("ban") == ["ban", "banana"]
    assert trie.complete("") == ["apple", "ban"]
    assert trie.complete("bz") == [] and trie.complete("日本") == []
    assert trie.node("bz") is None


def test_reciprocal_ranks_and_mrr():
    trie = CompletionTrie({"ab": 3.0, "ac": 2.0, "ad": 1.0, "b": 5.0}, k=2)
    rr = completion_reciprocal_ranks(trie, ["ab", "ac", "ad", "b"], 1)
    assert rr.tolist() == [1.0, 0.5, 0.0, 1.0]
    assert completion_mrr(trie, ["ab", "ac", "ad", "b"], 1) == pytest.approx(0.5)  # "b" is typed out
    with pytest.raises(ValueError, match="no target is longer"):
        completion_mrr(trie, ["b"], 1)


@pytest.mark.parametrize(
    ("counts", "error", "match"),
    [
        (["a", "b"], TypeError, "mapping"),
        ({"a": -1.0}, ValueError, "counts"),
        ({"": 1.0}, TypeError, "non-empty strings"),
        ({"a": float("nan")}, ValueError, "NaN"),
    ],
)
def test_bad_counts_are_refused(counts, error, match):
    with pytest.raises(error, match=match):
        CompletionTrie(counts)


def test_prefix_must_be_a_string():
    with pytest.raises(TypeError, match="prefix must be a string"):
        CompletionTrie({"a": 1.0}).complete(1)


def test_decayed_counts():
    q, d = np.array([0, 0, 1, 1, 1, 2]), np.array([0, 9, 5, 5, 8, 10])
    np.testing.assert_allclose(decayed_counts(q, d, now=10, half_life=math.inf, n_queries=3), [2, 3, 0])
    expected = [2.0**-10 + 2.0**-1, 2 * 2.0**-5 + 2.0**-2, 0]
    np.testing.assert_allclose(decayed_counts(q, d, now=10, half_life=1.0, n_queries=3), expected)
    with pytest.raises(ValueError, match="query ids"):
        decayed_counts(q, d, now=10, half_life=1.0, n_queries=2)


def test_cooccurrence_and_related_scores():
    sessions = [[0, 1], [0, 1, 2], [0, 2], [3, 0], [1, 1, 0]]
    pairs, c, n = cooccurrence(sessions, 4)
    table = {tuple(p): int(x) for p, x in zip(pairs.tolist(), c, strict=True)}
    assert table[(0, 1)] == table[(1, 0)] == 3 and table[(0, 2)] == 2 and table[(1, 2)] == 1
    assert n.tolist() == [5, 3, 2, 1]
    by_count = related_queries(sessions, 4, k=3, score="count", min_count=1)
    assert by_count[0].tolist() == [1, 2, 3]
    pmi = related_queries(sessions, 4, k=3, score="pmi", min_count=1)
    assert pmi[2].tolist() == [0, 1, -1]  # log(2*5/(2*5)) = 0 > log(1*5/(2*3)) < 0
    cond = related_queries(sessions, 4, k=1, score="conditional", min_count=1)
    assert cond[3].tolist() == [0]


def test_related_queries_recover_the_planted_groups_and_beat_shuffled_sessions(log):
    n = len(log.queries)
    related = related_queries(log.sessions, n, k=5, score="pmi")
    assert planted_precision_at_k(related, log.groups, 5) > 0.8
    g = np.random.default_rng(0)
    flat = g.permutation(np.concatenate([np.array(s) for s in log.sessions]))
    cuts = np.cumsum([len(s) for s in log.sessions])[:-1]
    shuffled = [s.tolist() for s in np.split(flat, cuts)]
    assert planted_precision_at_k(related_queries(shuffled, n, k=5, score="pmi"), log.groups, 5) < 0.2


def test_query_log_is_deterministic_and_shifts(log):
    again = make_query_log(
        600,
        generator=torch.Generator().manual_seed(0),
        n_days=10,
        per_day=500,
        shift_day=6,
        n_trending=30,
        n_sessions=4000,
        n_groups=30,
    )
    assert again.queries == log.queries and (again.log_query == log.log_query).all()
    assert again.sessions == log.sessions
    assert len(set(log.queries)) == 600
    np.testing.assert_allclose(log.popularity.sum(1), 1.0)
    assert (log.popularity[6, log.trending] > 10 * log.popularity[0, log.trending]).all()
    assert np.isin(log.groups, np.arange(600)).all() and len(np.unique(log.groups)) == log.groups.size
