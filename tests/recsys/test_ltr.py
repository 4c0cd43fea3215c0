"""Ranking metrics against scikit-learn and by hand; the LTR losses, LambdaRank's gradients, features."""

from functools import partial

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, ndcg_score
from torch import nn

from toyalgos.core import train
from toyalgos.recsys import (
    FEATURE_NAMES,
    InvertedIndex,
    average_precisions,
    candidate_lists,
    delta_ndcg,
    lambdarank_loss,
    lambdas,
    listnet_loss,
    make_corpus,
    mean_reciprocal_rank,
    ndcg_at_k,
    ndcg_per_query,
    pointwise_loss,
    precision_at_k,
    predict_scores,
    query_document_features,
    ranking_map,
    ranking_scorer,
    ranknet_loss,
    recall_at_k,
)


@pytest.fixture(scope="module")
def lists():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (30, 12), generator=g).numpy()
    s = torch.randint(0, 5, (30, 12), generator=g).numpy().astype(float)  # many ties
    return y, s


def test_the_fact_sheet_example():
    y = np.array([[3, 2, 3, 0, 1, 2]])
    s = np.array([[6, 5, 4, 3, 2, 1]])
    assert ndcg_at_k(y, s) == pytest.approx(0.9608, abs=1e-4)
    assert ndcg_at_k(y, s, gain="exponential") == pytest.approx(0.9488, abs=1e-4)


@pytest.mark.parametrize("k", [None, 1, 3, 5, 12])
def test_ndcg_equals_scikit_learn_ties_included(lists, k):
    y, s = lists
    assert ndcg_at_k(y, s, k=k) == pytest.approx(ndcg_score(y, s, k=k), abs=1e-12)
    assert ndcg_at_k(y, s + np.arange(12) * 1e-3, k=k) == pytest.approx(
        ndcg_score(y, s + np.arange(12) * 1e-3, k=k), abs=1e-12
    )
    per = [ndcg_score(y[i : i + 1], s[i : i + 1], k=k) for i in range(len(y))]
    np.testing.assert_allclose(ndcg_per_query(y, s, k=k), per, atol=1e-12)


def test_ndcg_of_the_ideal_ranking_is_one_and_of_no_relevant_document_zero(lists):
    y, _ = lists
    assert ndcg_at_k(y, y + 0.0, k=5) == pytest.approx(1.0)
    assert ndcg_at_k(np.zeros((2, 4)), np.ones((2, 4))) == 0.0


def test_map_mrr_precision_recall_by_hand(lists):
    y, s = lists
    s = s + np.arange(12)[::-1] * 1e-3  # no ties: scikit-learn's AP has its own tie rule
    ap = [average_precision_score(y[i] > 0, s[i]) for i in range(len(y))]
    np.testing.assert_allclose(average_precisions(y, s), ap, atol=1e-12)
    assert ranking_map(y, s) == pytest.approx(np.mean(ap))
    y1, s1 = np.array([[0, 0, 2, 1]]), np.array([[4.0, 3, 2, 1]])
    assert mean_reciprocal_rank(y1, s1) == pytest.approx(1 / 3)
    assert precision_at_k(y1, s1, 3) == pytest.approx(1 / 3)
    assert recall_at_k(y1, s1, 3) == pytest.approx(1 / 2)
    assert mean_reciprocal_rank(np.zeros((1, 3)), np.ones((1, 3))) == 0.0


@pytest.mark.parametrize(
    ("y", "s", "error", "match"),
    [
        ([[1, -1, 0]], [[1, 2, 3]], ValueError, "non-negative"),
        ([[1]], [[1.0]], ValueError, "more than one document"),
        ([1, 2, 0], [1, 2, 3], ValueError, "2-D"),
        ([[1, 2]], [[1, 2, 3]], ValueError, "same shape"),
    ],
)
def test_bad_rankings_are_refused(y, s, error, match):
    with pytest.raises(error, match=match):
        ndcg_at_k(y, s)


def test_ndcg_refuses_what_scikit_learn_refuses():
    with pytest.raises(ValueError):
        ndcg_score([[1]], [[1.0]])
    with pytest.raises(ValueError):
        ndcg_score([[1, -1, 0]], [[1, 2, 3]])


class FirstFeature(nn.Module):
    """A 'model' whose scores are the first feature, so losses can be differentiated in the scores."""

    def forward(self, x):
        return x[..., :1]


def _scores_and_labels(seed=0, Q=5, K=8):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(Q, K, 1, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (Q, K), generator=g).double()
    return s, y


def test_lambdas_are_the_gradient_of_lambdarank_loss():
    s, y = _scores_and_labels()
    s.requires_grad_(True)
    lambdarank_loss(FirstFeature(), s, y, sigma=1.5, k=5).backward()
    expected = lambdas(s[..., 0], y, sigma=1.5, k=5) / s.shape[0]
    torch.testing.assert_close(s.grad[..., 0], expected)


def test_lambdas_match_a_finite_difference_of_the_smoothed_objective():
    """C(s) = sum_{y_i > y_j} |Delta NDCG_ij| log(1 + exp(-sigma (s_i - s_j))), |Delta NDCG| frozen."""
    s, y = _scores_and_labels(1, Q=3, K=6)
    s = s[..., 0]
    sigma, w = 2.0, delta_ndcg(s, y) * (y[:, :, None] > y[:, None, :])

    def C(scores):
        return (w * torch.nn.functional.softplus(-sigma * (scores[:, :, None] - scores[:, None, :]))).sum()

    lam, h = lambdas(s, y, sigma=sigma), 1e-6
    for q, i in [(0, 0), (1, 3), (2, 5)]:
        e = torch.zeros_like(s)
        e[q, i] = h
        fd = (C(s + e) - C(s - e)) / (2 * h)
        assert lam[q, i].item() == pytest.approx(fd.item(), rel=1e-6, abs=1e-9)
    assert lam.sum().item() == pytest.approx(0.0, abs=1e-12)  # every pair pushes one up, one down


def test_delta_ndcg_equals_the_ndcg_change_of_a_swap():
    s, y = _scores_and_labels(2, Q=1, K=7)
    s = s[..., 0]
    d = delta_ndcg(s, y, gain="linear", k=4)
    base = ndcg_at_k(y.numpy(), s.numpy(), k=4)
    for i, j in [(0, 1), (2, 6), (3, 5)]:
        t = s.clone()
        t[0, [i, j]] = t[0, [j, i]]
        assert d[0, i, j].item() == pytest.approx(abs(ndcg_at_k(y.numpy(), t.numpy(), k=4) - base), abs=1e-12)


def test_ranknet_and_listnet_are_their_formulas():
    s, y = _scores_and_labels(3, Q=2, K=4)
    m = FirstFeature()
    si = s[..., 0]
    costs = [
        np.log1p(np.exp(-(si[q, i] - si[q, j]).item()))
        for q in range(2)
        for i in range(4)
        for j in range(4)
        if y[q, i] > y[q, j]
    ]
    assert ranknet_loss(m, s, y).item() == pytest.approx(np.mean(costs))
    p, logq = torch.softmax(y, 1), torch.log_softmax(si, 1)
    assert listnet_loss(m, s, y).item() == pytest.approx(-(p * logq).sum(1).mean().item())
    assert pointwise_loss(m, s, y).item() == pytest.approx(((si - y) ** 2).mean().item())


def test_losses_refuse_negative_grades_and_bad_shapes():
    s, y = _scores_and_labels()
    with pytest.raises(ValueError, match="non-negative"):
        ranknet_loss(FirstFeature(), s, -y)
    with pytest.raises(ValueError, match="disagree"):
        listnet_loss(FirstFeature(), s, y[:, :3])
    with pytest.raises(ValueError, match="kind must be one of"):
        pointwise_loss(FirstFeature(), s, y, kind="ordinal")


@pytest.fixture(scope="module")
def ranking():
    corpus = make_corpus(600, 120, generator=torch.Generator().manual_seed(1))
    index = InvertedIndex(corpus.docs)
    return corpus, index, candidate_lists(index, corpus.queries, corpus.relevance, k=20)


def test_features_and_candidates(ranking):
    corpus, index, lists = ranking
    assert lists.features.shape == (120, 20, len(FEATURE_NAMES))
    q, ids = corpus.queries[0], lists.doc_ids[0].numpy()
    x = query_document_features(index, q, ids)
    np.testing.assert_allclose(x[:, 0], index.top_k(q, 20)[1])
    for r, d in enumerate(ids[:8]):
        doc = corpus.docs[d]
        assert x[r, 3] == pytest.approx(len(set(q) & set(doc)) / len(set(q)))
        assert x[r, 5] == pytest.approx(len(set(doc)) / len(doc))
        pos = [(p, t) for p, t in enumerate(doc) if t in q]
        gaps = [b[0] - a[0] for a in pos for b in pos if b[0] > a[0] and b[1] != a[1]]
        assert x[r, 4] == pytest.approx(1 / min(gaps) if gaps else 0.0)
    np.testing.assert_array_equal(
        lists.relevance.numpy(), np.take_along_axis(corpus.relevance, lists.doc_ids.numpy(), 1)
    )


@pytest.mark.parametrize(
    "loss",
    [
        pointwise_loss,
        partial(pointwise_loss, kind="classification"),
        ranknet_loss,
        lambdarank_loss,
        listnet_loss,
    ],
)
def test_every_loss_learns_to_rank_better_than_bm25(ranking, loss):
    _, _, lists = ranking
    x, y = lists.features, lists.relevance
    torch.manual_seed(0)
    model = ranking_scorer(x[:80], hidden=(16,))
    train(
        model,
        loss,
        (x[:80], y[:80]),
        steps=100,
        batch_size=16,
        lr=1e-2,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    learned = ndcg_at_k(y[80:], predict_scores(model, x[80:]), k=10)
    assert learned > ndcg_at_k(y[80:], x[80:, :, 0], k=10) + 0.05
    assert not model.training
