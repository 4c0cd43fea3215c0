"""The inverted index, BM25 and TF-IDF against rank_bm25 and scikit-learn; top-k against exhaustive sort."""

import numpy as np
import pytest
import torch

from toyalgos.recsys import InvertedIndex, make_corpus, tfidf_scores

rank_bm25 = pytest.importorskip("rank_bm25")


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(400, 40, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def index(corpus):
    return InvertedIndex(corpus.docs)


def test_postings_hold_every_term_frequency(corpus, index):
    for d in (0, 7, 123):
        for term in set(corpus.docs[d]):
            docs, tf = index.postings(term)
            assert tf[np.searchsorted(docs, d)] == corpus.docs[d].count(term)
    assert index.df.sum() == len(index.postings_doc) == index.distinct_terms.sum()
    assert (index.doc_length == [len(d) for d in corpus.docs]).all()


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (1.2, 0.0), (0.5, 1.0)])
def test_bm25_equals_rank_bm25(corpus, index, k1, b):
    ref = rank_bm25.BM25Okapi(corpus.docs, k1=k1, b=b)
    for q in corpus.queries[:20] + [["bg0", "bg0", "t1w3"], ["bg0"]]:
        np.testing.assert_allclose(
            index.bm25(q, k1=k1, b=b, idf="rank_bm25"), ref.get_scores(q), rtol=0, atol=1e-12
        )


def test_rank_bm25_idf_floor_on_tiny_corpora():
    """The reference's traps: a floor of epsilon times the mean idf, negative when the mean is."""
    docs = [["a", "b"], ["a", "c"], ["a", "d", "e"]]
    idf = InvertedIndex(docs).idf("rank_bm25")
    assert idf[0] == pytest.approx(
        0.25 * np.mean(np.log(3 - np.array([3, 1, 1, 1, 1]) + 0.5) - np.log([3.5, 1.5, 1.5, 1.5, 1.5]))
    )
    assert idf[0] == pytest.approx(0.00487, abs=1e-5)
    two = InvertedIndex([["x", "y"], ["x", "z"]])
    assert two.idf("rank_bm25")[0] == pytest.approx(-0.134, abs=1e-3)
    ref = rank_bm25.BM25Okapi([["x", "y"], ["x", "z"]])
    np.testing.assert_allclose(two.bm25(["x"], idf="rank_bm25"), ref.get_scores(["x"]), atol=1e-12)
    assert (two.idf("okapi") > 0).all()


def test_okapi_idf_is_the_plus_one_form_and_differs_from_rank_bm25(corpus, index):
    n, N = index.df, len(index)
    np.testing.assert_allclose(index.idf("okapi"), np.log(1 + (N - n + 0.5) / (n + 0.5)))
    q = corpus.queries[0]
    assert np.abs(index.bm25(q) - index.bm25(q, idf="rank_bm25")).max() > 0.1


def test_bm25_saturates_in_term_frequency_and_normalises_length():
    docs = [["a"] * f + ["z"] * (10 - f) for f in range(1, 10)] + [["b"] * 10] * 30
    s = InvertedIndex(docs).bm25(["a"], k1=1.2, b=0.0)[:9]
    assert (np.diff(s) > 0).all() and (np.diff(s, 2) < 0).all()  # increasing, concave
    long_short = InvertedIndex([["a"] + ["z"] * 19, ["a", "z"]] + [["b"] * 5] * 30)
    s_b = long_short.bm25(["a"], b=0.75)
    assert s_b[1] > s_b[0]
    s_0 = long_short.bm25(["a"], b=0.0)
    assert s_0[0] == s_0[1]


def test_tfidf_equals_scikit_learn_cosine(corpus, index):
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer=lambda tokens: tokens)
    X = vec.fit_transform(corpus.docs)
    for q in corpus.queries[:20] + [["t0w0", "t0w0", "unknown"]]:
        expected = (X @ vec.transform([q]).T).toarray().ravel()
        np.testing.assert_allclose(tfidf_scores(index, q), expected, atol=1e-12)


@pytest.mark.parametrize("idf", ["okapi", "rank_bm25"])
@pytest.mark.parametrize("k", [1, 10, 399, 400, 1000])
def test_top_k_equals_the_exhaustive_sort(corpus, index, idf, k):
    for q in corpus.queries[:10] + [["unknown"], ["bg0"]]:
        ids, scores = index.top_k(q, k, idf=idf)
        full = index.bm25(q, idf=idf)
        best = np.argsort(-full, kind="stable")[:k]
        np.testing.assert_array_equal(ids, best)
        np.testing.assert_array_equal(scores, full[best])


def test_top_k_keeps_ties_in_document_order():
    index = InvertedIndex([["a", "b"], ["c", "d"], ["a", "b"], ["a", "b"], ["e"]] + [["f"]] * 5)
    ids, scores = index.top_k(["a"], 2)
    assert ids.tolist() == [0, 2] and scores[0] == scores[1]


def test_unknown_terms_score_zero_and_empty_documents_are_allowed():
    index = InvertedIndex([["a", "b"], [], ["b", "c"]])
    assert (index.bm25(["zzz"]) == 0).all() and (tfidf_scores(index, ["zzz"]) == 0).all()
    assert index.bm25(["a"])[1] == 0 and tfidf_scores(index, ["b"])[1] == 0
    ids, _ = index.top_k(["zzz"], 2)
    assert ids.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("docs", "error", "match"),
    [
        ([], ValueError, "docs is empty"),
        ([[], []], ValueError, "all 2 documents are empty"),
        ("a b c", TypeError, "list of token lists"),
        (["a b", "c"], TypeError, r"docs\[0\] must be a list of string tokens"),
        ([["a", 1]], TypeError, "string tokens"),
    ],
)
def test_bad_corpora_are_refused(docs, error, match):
    with pytest.raises(error, match=match):
        InvertedIndex(docs)


def test_bad_queries_and_options_are_refused(index):
    with pytest.raises(TypeError, match="split the string"):
        index.bm25("t0w1 t0w2")
    with pytest.raises(ValueError, match="k must be a positive int"):
        index.top_k(["t0w1"], 0)
    with pytest.raises(ValueError, match="idf must be one of"):
        index.bm25(["t0w1"], idf="lucene")
    with pytest.raises(ValueError, match="b must lie in"):
        index.bm25(["t0w1"], b=1.5)


def test_make_corpus_is_deterministic_per_seed_and_grades_follow_the_topics():
    a = make_corpus(200, 20, generator=torch.Generator().manual_seed(3))
    b = make_corpus(200, 20, generator=torch.Generator().manual_seed(3))
    c = make_corpus(200, 20, generator=torch.Generator().manual_seed(4))
    assert a.docs == b.docs and a.queries == b.queries and (a.relevance == b.relevance).all()
    assert a.docs != c.docs
    assert a.relevance.min() >= 0 and a.relevance.max() == 3
    assert (a.relevance[:, a.spam] == 0).all()
    top = a.relevance == 3
    assert (a.theta[:, a.query_topic].T[top] >= 0.7).all()
