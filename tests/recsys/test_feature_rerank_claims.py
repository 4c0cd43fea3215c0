"""The claims of 42_feature_engineering and 44_reranking: each holds on a good case and fails on
the failure it is meant to catch."""

import pytest
import torch

from toyalgos.recsys import (
    dpp_greedy,
    dpp_greedy_naive,
    dpp_kernel,
    dpp_map_bruteforce,
    hash_features,
    kfold,
    make_feature_table,
    make_item_catalog,
    mmr,
    target_encode,
)
from toyalgos.recsys.claims import (
    auc_near_chance,
    calibration_within,
    collisions_match_formula,
    encoding_leaks,
    gap_closed,
    gap_ratio,
    loglog_slope,
    ndcg_cost,
    ndcg_improves,
    raises_ilad,
    same_picks,
    selection_false_picks,
    selection_hits,
    speedup,
)


@pytest.fixture(scope="module")
def noise_id():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 5000, (40_000,), generator=g)
    y = torch.bernoulli(torch.full((40_000,), 0.25), generator=g)
    return {
        "y": y,
        "in_sample": target_encode(ids, y, smoothing=5.0),
        "out_of_fold": target_encode(ids, y, smoothing=5.0, folds=kfold(40_000, 5, generator=g)),
    }


def test_encoding_leaks_fails_on_an_out_of_fold_encoding(noise_id):
    assert encoding_leaks(noise_id["y"], noise_id["in_sample"]).holds
    assert not encoding_leaks(noise_id["y"], noise_id["out_of_fold"]).holds


def test_auc_near_chance_fails_on_the_leaking_in_sample_encoding(noise_id):
    assert auc_near_chance(noise_id["y"], noise_id["out_of_fold"]).holds
    assert not auc_near_chance(noise_id["y"], noise_id["in_sample"]).holds


def test_collisions_match_formula_fails_on_a_modulus_hash_of_strided_ids():
    ids = torch.arange(5000) * 8  # ids with a common stride, as auto-increment keys of one shard
    sizes = [2**12, 2**14]
    assert collisions_match_formula([hash_features(ids, m).index for m in sizes], sizes).holds
    assert not collisions_match_formula([ids % m for m in sizes], sizes).holds


def test_selection_hits_fails_on_a_random_selection():
    informative = torch.tensor([True] * 5 + [False] * 23)
    assert selection_hits([0, 1, 2, 3, 9], informative).holds
    assert not selection_hits([5, 9, 14, 20, 1], informative).holds


def test_selection_false_picks_fails_on_redundant_copies():
    informative = torch.tensor([True] * 5 + [False] * 23)
    assert selection_false_picks([0, 1, 2, 3, 9], informative).holds
    assert not selection_false_picks([0, 1, 5, 6, 7], informative).holds  # 5..7: redundant columns


@pytest.fixture(scope="module")
def table():
    t = make_feature_table(60_000, generator=torch.Generator().manual_seed(1))
    x = t.numeric[:, :5].double()
    beta = torch.linalg.lstsq(x, torch.logit(t.true_ctr.double()))[0]  # the first-order part of the truth
    return t, torch.sigmoid(x @ beta)


def test_gap_closed_fails_on_a_score_without_the_cross(table):
    t, first_order = table
    assert gap_closed(t.labels, t.true_ctr, first_order, t.true_ctr).holds  # the truth closes it all
    noisy = torch.sigmoid(torch.logit(first_order) + 0.01 * t.numeric[:, 20].double())
    assert not gap_closed(t.labels, noisy, first_order, t.true_ctr).holds


def test_gap_ratio_fails_when_the_model_is_no_better_than_the_baseline(table):
    t, first_order = table
    half_way = torch.sigmoid(0.5 * torch.logit(first_order) + 0.5 * torch.logit(t.true_ctr.double()))
    assert gap_ratio(t.labels, t.true_ctr, first_order, t.true_ctr).holds
    assert not gap_ratio(t.labels, first_order, first_order, t.true_ctr).holds
    assert gap_ratio(t.labels, half_way, first_order, t.true_ctr, bound=0.9).holds


def test_calibration_within_fails_on_a_model_scaled_by_1_5(table):
    t, _ = table
    assert calibration_within(t.labels, t.true_ctr).holds
    assert not calibration_within(t.labels, (1.5 * t.true_ctr).clamp(max=1)).holds


@pytest.fixture(scope="module")
def instances():
    g = torch.Generator().manual_seed(2)
    out = []
    for _ in range(30):
        f = torch.randn(12, 6, generator=g, dtype=torch.float64)
        f = f / f.norm(dim=1, keepdim=True)
        out.append(dpp_kernel(torch.rand(12, generator=g, dtype=torch.float64), f @ f.T, 0.5))
    return out


def test_same_picks_fails_on_mmr_against_the_dpp_greedy(instances):
    fast = [dpp_greedy(L, 4) for L in instances]
    assert same_picks(fast, [dpp_greedy_naive(L, 4) for L in instances]).holds
    by_mmr = [mmr(L.diagonal(), L, 4, 0.5) for L in instances]
    assert not same_picks(by_mmr, fast).holds
    exact = [dpp_map_bruteforce(L, 4) for L in instances]
    assert not same_picks([sorted(p) for p in fast], exact).holds  # greedy is not always optimal


def test_loglog_slope_fails_on_a_linear_cost():
    k = [50, 100, 200, 400]
    assert loglog_slope(k, [1e-6 * x**2 for x in k], expected=2).holds
    assert not loglog_slope(k, [1e-4 * x for x in k], expected=2).holds


def test_speedup_fails_on_equal_times():
    assert speedup(0.01, 0.2).holds
    assert not speedup(0.05, 0.05).holds


@pytest.fixture(scope="module")
def lists():
    g = torch.Generator().manual_seed(3)
    cat = make_item_catalog(200, generator=g)
    rel = torch.rand(50, 200, generator=g, dtype=torch.float64)
    S = cat.similarity()
    top = rel.argsort(1, descending=True)[:, :10]
    diverse = torch.tensor([mmr(r, S, 10, 0.3) for r in rel])
    rand = torch.stack([torch.randperm(200, generator=g)[:10] for _ in range(50)])
    return cat, rel, top, diverse, rand


def test_raises_ilad_fails_on_the_relevance_only_lists(lists):
    cat, _, top, diverse, _ = lists
    assert raises_ilad(cat.features[diverse], cat.features[top], bound=0.05).holds
    assert not raises_ilad(cat.features[top], cat.features[top]).holds


def test_ndcg_cost_fails_on_a_random_list(lists):
    """Gains: each item's relevance; the ideal order is the top items sorted."""
    _, rel, top, diverse, rand = lists
    top_gains, div_gains, rand_gains = (rel.gather(1, x) for x in (top, diverse, rand))
    ideal = torch.cat([top_gains, torch.zeros_like(top_gains)], 1)  # judge against the ideal list

    def pad(x):
        return torch.cat([x, torch.zeros_like(x)], 1)

    assert ndcg_cost(pad(div_gains), ideal).holds
    assert not ndcg_cost(pad(rand_gains), ideal, bound=0.05).holds


def test_ndcg_improves_fails_on_the_initial_order_itself():
    g = torch.Generator().manual_seed(4)
    gains = torch.bernoulli(torch.full((200, 10), 0.2), generator=g)
    better = gains.sort(1, descending=True).values
    assert ndcg_improves(better, gains).holds
    assert not ndcg_improves(gains, gains).holds
