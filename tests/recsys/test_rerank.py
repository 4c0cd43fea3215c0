"""Re-ranking: MMR, the DPP kernel and its three MAP solvers, list metrics, and PRM."""

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

from toyalgos.core import train
from toyalgos.recsys import (
    PRM,
    check_psd,
    context_click_probability,
    coverage,
    dpp_greedy,
    dpp_greedy_naive,
    dpp_kernel,
    dpp_map_bruteforce,
    dpp_sliding_window,
    ilad,
    log_det,
    make_item_catalog,
    make_ranked_lists,
    mmr,
    ndcg,
    prm_loss,
    rerank_order,
)


def _instance(g, M=12, d=6, theta=0.5):
    f = torch.randn(M, d, generator=g, dtype=torch.float64)
    f = f / f.norm(dim=1, keepdim=True)
    r = torch.rand(M, generator=g, dtype=torch.float64)
    return dpp_kernel(r, f @ f.T, theta)


# --- MMR ----------------------------------------------------------------------------------


def test_mmr_at_lambda_one_sorts_by_relevance():
    g = torch.Generator().manual_seed(0)
    rel = torch.rand(30, generator=g)
    S = make_item_catalog(30, generator=g).similarity()
    assert mmr(rel, S, 10, 1.0) == rel.argsort(descending=True)[:10].tolist()


def test_mmr_at_lambda_zero_avoids_near_duplicates():
    rel = torch.tensor([1.0, 0.99, 0.5])
    S = torch.tensor([[1.0, 0.99, 0.0], [0.99, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert mmr(rel, S, 2, 1.0) == [0, 1]
    assert mmr(rel, S, 2, 0.3) == [0, 2]


def test_mmr_matches_the_formula_step_by_step():
    g = torch.Generator().manual_seed(1)
    rel = torch.rand(15, generator=g, dtype=torch.float64)
    S = make_item_catalog(15, generator=g).similarity()
    picks = mmr(rel, S, 6, 0.6)
    for t in range(1, 6):
        chosen = picks[:t]
        score = {i: 0.6 * rel[i] - 0.4 * S[i, chosen].max() for i in range(15) if i not in chosen}
        assert picks[t] == max(score, key=score.get)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(k=3, lam=1.5), "lam"),
        (dict(k=3, lam=-0.1), "lam"),
        (dict(k=5, lam=0.5), "k must be at most"),
        (dict(k=0, lam=0.5), "k must be a positive int"),
    ],
)
def test_mmr_bad_input(kwargs, error):
    with pytest.raises(ValueError, match=error):
        mmr(torch.rand(4), torch.eye(4), **kwargs)


def test_mmr_refuses_non_finite_relevance():
    with pytest.raises(ValueError, match="finite"):
        mmr(torch.tensor([0.1, float("nan")]), torch.eye(2), 1, 0.5)


# --- DPP ----------------------------------------------------------------------------------


def test_fast_greedy_equals_naive_greedy_on_random_instances():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        L = _instance(g)
        assert dpp_greedy(L, 4) == dpp_greedy_naive(L, 4)


def test_greedy_equals_bruteforce_when_items_are_orthogonal():
    """Orthogonal items: log det L_Y = sum of log L_ii, so the k largest diagonal entries are optimal."""
    g = torch.Generator().manual_seed(2)
    L = torch.diag(torch.rand(10, generator=g, dtype=torch.float64) + 0.1)
    best = dpp_map_bruteforce(L, 4)
    assert sorted(dpp_greedy(L, 4)) == best == sorted(dpp_greedy_naive(L, 4))
    assert best == sorted(L.diagonal().argsort(descending=True)[:4].tolist())


def test_bruteforce_is_the_best_subset():
    g = torch.Generator().manual_seed(3)
    L = _instance(g, M=8)
    best = dpp_map_bruteforce(L, 3)
    values = [log_det(L, s) for s in itertools.combinations(range(8), 3)]
    assert log_det(L, best) == pytest.approx(max(values), abs=1e-9)


def test_greedy_is_not_always_optimal():
    """Exact MAP is NP-hard; the greedy misses the best set on some small random instances."""
    g = torch.Generator().manual_seed(0)
    misses = 0
    for _ in range(40):
        L = _instance(g)
        greedy, best = dpp_greedy(L, 4), dpp_map_bruteforce(L, 4)
        assert log_det(L, greedy) <= log_det(L, best) + 1e-9
        misses += sorted(greedy) != best
    assert 0 < misses < 40


def test_fast_greedy_picks_the_largest_log_det_increment_at_each_step():
    """Each pick j maximises log det L_{Y+j} - log det L_Y, computed here by slogdet of every subset."""
    g = torch.Generator().manual_seed(4)
    L = _instance(g, M=20, d=10)
    picks = dpp_greedy(L, 6)
    assert len(picks) == 6
    for t in range(6):
        gains = {i: log_det(L, [*picks[:t], i]) for i in range(20) if i not in picks[:t]}
        best = max(gains.values())
        assert gains[picks[t]] == pytest.approx(best, abs=1e-9)
        assert sorted(gains.values())[-2] < best - 1e-9  # a unique best: the test can tell picks apart


def test_greedy_stops_when_the_rest_lies_in_the_span():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    L = f @ f.T  # rank 2: no third item adds volume
    assert len(dpp_greedy(L, 3)) == 2 and len(dpp_greedy_naive(L, 3)) == 2


def test_sliding_window_with_a_wide_window_is_the_greedy():
    g = torch.Generator().manual_seed(5)
    L = _instance(g, M=40, d=20)
    assert dpp_sliding_window(L, 10, 10) == dpp_greedy(L, 10)


def test_sliding_window_only_looks_at_the_last_items():
    g = torch.Generator().manual_seed(6)
    L = _instance(g, M=40, d=20)
    picks = dpp_sliding_window(L, 8, 3)
    for t in range(2, 8):
        window = picks[t - 2 : t]
        gains = {i: log_det(L, [*window, i]) for i in range(40) if i not in picks[:t]}
        assert picks[t] == max(gains, key=gains.get)


def test_dpp_kernel_theta_trades_relevance_for_diversity():
    g = torch.Generator().manual_seed(7)
    cat = make_item_catalog(100, generator=g)
    rel = torch.rand(100, generator=g, dtype=torch.float64)
    S = cat.similarity()
    assert torch.allclose(dpp_kernel(rel, S, 0.0), S)
    # log det L_Y = 2 alpha sum r + log det S_Y
    L = dpp_kernel(rel, S, 0.6)
    Y = [0, 5, 9]
    alpha = 0.6 / (2 * 0.4)
    assert log_det(L, Y) == pytest.approx(2 * alpha * rel[Y].sum().item() + log_det(S, Y), abs=1e-9)
    diverse, relevant = dpp_greedy(dpp_kernel(rel, S, 0.0), 8), dpp_greedy(dpp_kernel(rel, S, 0.95), 8)
    assert ilad(cat.features[diverse]) > ilad(cat.features[relevant])
    assert rel[relevant].sum() > rel[diverse].sum()


@pytest.mark.parametrize("theta", [-0.1, 1.0, 1.5])
def test_dpp_kernel_refuses_theta_outside_0_1(theta):
    with pytest.raises(ValueError, match="theta"):
        dpp_kernel(torch.rand(3), torch.eye(3), theta)


def test_dpp_refuses_a_non_psd_similarity_and_too_large_k():
    S = torch.tensor([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="positive semi-definite"):
        check_psd(S)
    for solve in (dpp_greedy, dpp_greedy_naive, dpp_map_bruteforce):  # found on the way, or at once
        with pytest.raises(ValueError, match="positive semi-definite"):
            solve(dpp_kernel(torch.ones(2), S, 0.5), 2)
    with pytest.raises(ValueError, match="k must be at most"):
        dpp_greedy(torch.eye(3), 4)
    with pytest.raises(ValueError, match="symmetric"):
        dpp_greedy_naive(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="too many"):
        dpp_map_bruteforce(torch.eye(60), 10)


# --- List metrics -------------------------------------------------------------------------


def test_ndcg_matches_sklearn():
    g = torch.Generator().manual_seed(8)
    gains = torch.randint(0, 4, (20, 10), generator=g).double()
    gains[:, 0] += 1  # every list has a positive gain
    order_scores = -torch.arange(10.0).expand(20, 10)  # displayed order = given order
    for k in (None, 3, 5):
        ours = ndcg(gains, k).mean().item()
        ref = ndcg_score(gains.numpy(), order_scores.numpy(), k=k)
        assert ours == pytest.approx(ref, abs=1e-12)
    assert ndcg(torch.tensor([3.0, 2, 3, 0, 1, 2])).item() == pytest.approx(0.9608, abs=1e-4)


def test_ndcg_of_a_list_without_gains_is_zero_and_negative_gains_are_refused():
    assert ndcg(torch.zeros(5)).item() == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        ndcg(torch.tensor([1.0, -1.0]))


def test_ilad_and_coverage():
    same = torch.ones(4, 3)
    assert ilad(same).item() == pytest.approx(0.0, abs=1e-12)
    assert ilad(torch.eye(4)).item() == pytest.approx(1.0)
    f = torch.randn(6, 5, dtype=torch.float64)
    u = f / f.norm(dim=1, keepdim=True)
    pairs = [1 - (u[i] @ u[j]).item() for i in range(6) for j in range(6) if i != j]
    assert ilad(f).item() == pytest.approx(np.mean(pairs))
    assert coverage(torch.tensor([[0, 0, 1], [2, 3, 4]]), 5).tolist() == [0.4, 0.6]
    with pytest.raises(ValueError, match="lie in"):
        coverage(torch.tensor([0, 5]), 5)
    with pytest.raises(ValueError, match="L >= 2"):
        ilad(torch.ones(1, 3))


# --- PRM ----------------------------------------------------------------------------------


def test_context_click_probability_discounts_repeated_categories():
    a = torch.zeros(1, 3)
    p_same = context_click_probability(a, torch.tensor([[0, 0, 0]]), fatigue=0.5, position_bias=1.0)
    p_diff = context_click_probability(a, torch.tensor([[0, 1, 2]]), fatigue=0.5, position_bias=1.0)
    position = 1 / torch.log2(torch.arange(3.0) + 2)
    assert torch.allclose(p_diff, 0.5 * position.double())
    assert torch.allclose(p_same, p_diff * torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))


def test_prm_without_positions_is_permutation_equivariant():
    torch.manual_seed(0)
    model = PRM(9, position_embedding=None)
    x = torch.randn(4, 12, 9)
    perm = torch.randperm(12)
    with torch.no_grad():
        assert torch.allclose(model(x)[:, perm], model(x[:, perm]), atol=1e-5)
    torch.manual_seed(0)
    with_pos = PRM(9)
    with torch.no_grad():
        assert not torch.allclose(with_pos(x)[:, perm], with_pos(x[:, perm]), atol=1e-5)


def test_prm_learns_the_context_and_is_deterministic_per_seed():
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        cat = make_item_catalog(60, generator=g)
        lists = make_ranked_lists(cat, 1500, 10, generator=g)
        torch.manual_seed(seed)
        model = PRM(lists.features.shape[-1], d_model=16, n_layers=1, max_len=10)
        h = train(
            model,
            prm_loss,
            (lists.features, lists.clicks),
            steps=150,
            batch_size=128,
            lr=3e-3,
            generator=g,
            progress=False,
        )
        return model, lists, h

    model, lists, h = run(0)
    assert h.loss[-20:].mean() < h.loss[:20].mean()
    order = rerank_order(model, lists.features)
    assert sorted(order[0].tolist()) == list(range(10))
    assert np.array_equal(run(0)[2].loss, h.loss)


def test_prm_checks_its_input():
    model = PRM(5, max_len=8)
    with pytest.raises(ValueError, match="x must be"):
        model(torch.randn(2, 9, 5))
    with pytest.raises(TypeError):
        model(torch.ones(2, 3, 5, dtype=torch.long))
    assert math.isfinite(prm_loss(model, torch.randn(2, 3, 5), torch.zeros(2, 3)).item())
