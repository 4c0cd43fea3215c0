"""The search and suggestion claims hold for the real thing and fail each known-bad case: Lucene's
idf where rank_bm25's is claimed, exponential gain where scikit-learn's is linear, a ranker
compared with itself or with noise, a top-k that reads half the postings, alphabetical
completion, all-time counts after a shift, sessions whose queries were shuffled."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

from toyalgos.recsys import (
    CompletionTrie,
    InvertedIndex,
    completion_mrr,
    decayed_counts,
    make_corpus,
    make_query_log,
    ndcg_at_k,
    ndcg_per_query,
    related_queries,
)
from toyalgos.recsys.claims import (
    beats_by_standard_errors,
    bm25_matches_reference,
    mrr_beats_at_every_prefix_length,
    mrr_gain_after_shift,
    ndcg_matches_reference,
    planted_pairs_recovered,
    top_k_matches_exhaustive,
)

rank_bm25 = pytest.importorskip("rank_bm25")


@pytest.fixture(scope="module")
def search():
    corpus = make_corpus(500, 60, generator=torch.Generator().manual_seed(0))
    return corpus, InvertedIndex(corpus.docs)


def test_bm25_matches_reference_fails_with_the_okapi_plus_one_idf(search):
    corpus, index = search
    ref = rank_bm25.BM25Okapi(corpus.docs)
    theirs = np.stack([ref.get_scores(q) for q in corpus.queries[:10]])
    assert bm25_matches_reference(
        np.stack([index.bm25(q, idf="rank_bm25") for q in corpus.queries[:10]]), theirs
    ).holds
    claim = bm25_matches_reference(
        np.stack([index.bm25(q, idf="okapi") for q in corpus.queries[:10]]), theirs
    )
    assert not claim.holds and claim.value > 0.1


def test_ndcg_matches_reference_fails_with_exponential_gain_or_ignored_ties():
    g = np.random.default_rng(0)
    y, s = g.integers(0, 4, (50, 10)), g.integers(0, 3, (50, 10)).astype(float)
    ref = [ndcg_score(y, s, k=k) for k in (3, 10)]
    assert ndcg_matches_reference([ndcg_at_k(y, s, k=k) for k in (3, 10)], ref).holds
    assert not ndcg_matches_reference([ndcg_at_k(y, s, k=k, gain="exponential") for k in (3, 10)], ref).holds
    no_ties = [ndcg_score(y, s, k=k, ignore_ties=True) for k in (3, 10)]
    assert not ndcg_matches_reference(no_ties, ref).holds


def test_beats_by_standard_errors_fails_for_the_same_ranker_and_for_noise(search):
    corpus, index = search
    y = corpus.relevance
    bm25 = np.stack([index.bm25(q) for q in corpus.queries])
    truth = ndcg_per_query(y, y + 0.0, k=10)
    base = ndcg_per_query(y, bm25, k=10)
    assert beats_by_standard_errors(truth, base).holds
    same = beats_by_standard_errors(base, base)
    assert not same.holds and same.value == 0.0
    noise = ndcg_per_query(y, np.random.default_rng(0).random(y.shape), k=10)
    assert not beats_by_standard_errors(noise, base).holds
    # A tiny gain on a few queries: real, but not 2 standard errors.
    assert not beats_by_standard_errors(base + np.r_[0.01, np.zeros(len(base) - 1)], base).holds


def test_top_k_matches_exhaustive_fails_when_half_the_postings_are_read(search):
    corpus, index = search
    queries = corpus.queries[:30]
    full = np.stack([index.bm25(q) for q in queries])
    ids = np.stack([index.top_k(q, 10)[0] for q in queries])
    assert top_k_matches_exhaustive(ids, full).holds

    def half_postings(q):  # a shortcut: only the first half of every postings list
        s = np.zeros(len(index))
        for t in q:
            docs, _ = index.postings(t)
            keep = docs[: max(1, len(docs) // 2)]
            s[keep] += index.bm25([t])[keep]
        return np.argsort(-s, kind="stable")[:10]

    bad = top_k_matches_exhaustive(np.stack([half_postings(q) for q in queries]), full)
    assert not bad.holds and bad.value > 10
    assert not top_k_matches_exhaustive(np.repeat(ids[:, :1], 10, axis=1), full).holds  # duplicates


@pytest.fixture(scope="module")
def qlog():
    return make_query_log(
        1000,
        generator=torch.Generator().manual_seed(0),
        n_days=30,
        per_day=1000,
        shift_day=20,
        n_trending=60,
        n_sessions=8000,
        n_groups=50,
    )


def test_mrr_beats_at_every_prefix_length_fails_for_alphabetical_against_itself(qlog):
    n = len(qlog.queries)
    before = qlog.log_day < qlog.shift_day - 3
    test = (qlog.log_day >= qlog.shift_day - 3) & (qlog.log_day < qlog.shift_day)
    counts = np.bincount(qlog.log_query[before], minlength=n)
    mpc = CompletionTrie(dict(zip(qlog.queries, counts.astype(float), strict=True)))
    alpha = CompletionTrie(dict.fromkeys(qlog.queries, 1.0))
    targets = [qlog.queries[i] for i in qlog.log_query[test]]
    lengths = range(1, 6)
    m = [completion_mrr(mpc, targets, n_) for n_ in lengths]
    a = [completion_mrr(alpha, targets, n_) for n_ in lengths]
    assert mrr_beats_at_every_prefix_length(m, a).holds
    assert not mrr_beats_at_every_prefix_length(a, a).holds
    assert not mrr_beats_at_every_prefix_length(a, m).holds


def test_mrr_gain_after_shift_fails_for_all_time_counts(qlog):
    n, now = len(qlog.queries), qlog.shift_day + 5
    targets = [qlog.queries[i] for i in qlog.log_query[qlog.log_day == now]]

    def mrr(half_life):
        c = decayed_counts(qlog.log_query, qlog.log_day, now=now, half_life=half_life, n_queries=n)
        trie = CompletionTrie(dict(zip(qlog.queries, c, strict=True)))
        return np.mean([completion_mrr(trie, targets, L) for L in (1, 2, 3)])

    all_time = mrr(math.inf)
    assert mrr_gain_after_shift(mrr(3.0), all_time).holds
    assert not mrr_gain_after_shift(all_time, all_time).holds
    assert not mrr_gain_after_shift(mrr(1000.0), all_time).holds  # a half-life longer than the log


def test_planted_pairs_recovered_fails_for_shuffled_sessions(qlog):
    n = len(qlog.queries)
    assert planted_pairs_recovered(related_queries(qlog.sessions, n, k=5), qlog.groups).holds
    flat = np.random.default_rng(1).permutation(np.concatenate([np.array(s) for s in qlog.sessions]))
    shuffled = [s.tolist() for s in np.split(flat, np.cumsum([len(s) for s in qlog.sessions])[:-1])]
    claim = planted_pairs_recovered(related_queries(shuffled, n, k=5), qlog.groups)
    assert not claim.holds and claim.value < 0.2
