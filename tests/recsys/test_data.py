import re

import numpy as np
import pytest
import torch

from toyalgos.recsys import DENSE_FIELDS, LR, PAIRS, SPARSE_FIELDS, ClickLog, ClickModel, make_click_log

N = 200_000


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _zipf(k, exponent):
    """p_r proportional to r^-exponent, r = 1..k: the Zipf law, written out."""
    p = torch.tensor([r**-exponent for r in range(1, k + 1)], dtype=torch.float64)
    return p / p.sum()


@pytest.fixture(scope="module")
def full():
    """One default log of N impressions, all in the train split, and its truth."""
    log, valid, test, model = make_click_log(N, generator=_gen(0), splits=(1.0, 0.0, 0.0))
    assert len(valid) == len(test) == 0
    return log, model


def _cat(*logs):
    return {
        name: torch.cat([getattr(g, name) for g in logs])
        for name in ("sparse", "dense", "bid", "labels", "true_ctr")
    }


def _assert_same_rows(a, b):
    for name in ("sparse", "dense", "bid", "labels", "true_ctr"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


# --- determinism and splits ---------------------------------------------------------------------


def test_same_seed_same_log_and_other_seed_differs():
    first, second, other = (make_click_log(3000, generator=_gen(s)) for s in (7, 7, 8))
    for a, b in zip(first[:3], second[:3], strict=True):
        _assert_same_rows(a, b)
    torch.testing.assert_close(first[3].item_category, second[3].item_category, rtol=0, atol=0)
    train, train_other = first[0], other[0]
    assert not torch.equal(train.sparse, train_other.sparse)
    assert not torch.equal(train.true_ctr, train_other.true_ctr)
    assert not torch.equal(first[3].item_category, other[3].item_category)


def test_one_generator_draws_the_truth_first_then_the_rows():
    g = _gen(5)
    train, valid, test, model = make_click_log(1000, generator=g, splits=(1.0, 0.0, 0.0))
    after = torch.rand(3, generator=g)
    h = _gen(5)
    truth = ClickModel(generator=h)
    _assert_same_rows(train, truth.sample(1000, generator=h))
    assert torch.equal(truth.item_category, model.item_category)
    assert torch.equal(after, torch.rand(3, generator=h))  # the generator advanced by exactly that
    # The truth does not depend on n: it is drawn before the rows.
    small_model = make_click_log(10, generator=_gen(5))[3]
    for f in SPARSE_FIELDS:
        assert torch.equal(small_model.w[f], model.w[f]), f


def test_no_generator_means_torchs_global_generator():
    torch.manual_seed(11)
    first = make_click_log(500)
    torch.manual_seed(11)
    second = make_click_log(500)
    for a, b in zip(first[:3], second[:3], strict=True):
        _assert_same_rows(a, b)
    torch.manual_seed(11)
    features = ClickModel().sample_features(50)
    torch.manual_seed(11)
    assert torch.equal(features[0], ClickModel().sample_features(50)[0])


@pytest.mark.parametrize("bad", [0, "g", np.random.default_rng(0)])
def test_a_generator_that_is_not_a_torch_generator_raises_type_error(bad):
    model = ClickModel(generator=_gen(0))
    for call in [
        lambda: make_click_log(100, generator=bad),
        lambda: ClickModel(generator=bad),
        lambda: model.sample(10, generator=bad),
        lambda: model.sample_features(10, generator=bad),
    ]:
        with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
            call()


def test_seed_and_positional_generators_are_refused():
    with pytest.raises(TypeError, match="seed"):
        make_click_log(100, seed=0)
    with pytest.raises(TypeError):
        ClickModel(0)
    with pytest.raises(TypeError):
        ClickModel(generator=_gen(0)).sample(10, _gen(1))


@pytest.mark.parametrize(
    ("n", "splits", "sizes"),
    [
        (1000, (0.6, 0.3, 0.1), (600, 300, 100)),
        (N, (0.8, 0.1, 0.1), (160_000, 20_000, 20_000)),
        (10, (0.5, 0.5, 0.0), (5, 5, 0)),
        (8, (0.0, 0.25, 0.75), (0, 2, 6)),
    ],
)
def test_split_sizes_follow_splits(n, splits, sizes):
    logs = make_click_log(n, generator=_gen(1), splits=splits)[:3]
    assert tuple(len(g) for g in logs) == sizes
    for g in logs:
        assert g.sparse.shape == (len(g), len(SPARSE_FIELDS))
        assert g.dense.shape == (len(g), len(DENSE_FIELDS))
        assert g.bid.shape == g.labels.shape == g.true_ctr.shape == (len(g),)


def test_split_sizes_round_and_a_zero_fraction_gives_an_empty_split():
    logs = make_click_log(100, generator=_gen(1), splits=(0.29, 0.71, 0.0))[:3]
    assert tuple(len(g) for g in logs) == (29, 71, 0)


def test_splits_are_consecutive_disjoint_slices_of_one_log():
    n = 20_000
    train, valid, test, _ = make_click_log(n, generator=_gen(0))
    whole = make_click_log(n, generator=_gen(0), splits=(1.0, 0.0, 0.0))[0]
    assert len(train) + len(valid) + len(test) == len(whole) == n
    # The same seed draws the same n rows whatever the splits: train | valid | test is that log.
    for name, value in _cat(train, valid, test).items():
        assert torch.equal(value, getattr(whole, name)), name


def test_indexing_keeps_row_fields_aligned(full):
    log, _ = full
    small = log[:500]
    assert isinstance(small, ClickLog) and len(small) == 500
    assert small.cardinalities == log.cardinalities and small.field_names == log.field_names
    mask = small.labels == 1
    idx = torch.tensor([499, 3, 3, 250, 0])
    for sub, rows in [
        (small[10:60:7], torch.arange(10, 60, 7)),
        (small[mask], mask.nonzero().squeeze(1)),
        (small[idx], idx),
    ]:
        assert len(sub) == len(rows)
        for name in ("sparse", "dense", "bid", "labels", "true_ctr"):
            assert torch.equal(getattr(sub, name), getattr(small, name)[rows]), name
    assert (small[mask].labels == 1).all() and mask.sum() > 0
    # Alignment of the truth with the features it was computed from survives indexing.
    model = full[1]
    sub = small[idx]
    torch.testing.assert_close(sub.true_ctr, torch.sigmoid(model.logit(sub.sparse, sub.dense)))
    assert sub.inputs[0] is sub.sparse and sub.inputs[1] is sub.dense


# --- labels and the true CTR ----------------------------------------------------------------------


def test_true_ctr_is_sigmoid_of_the_true_logit(full):
    log, model = full
    assert log.true_ctr.dtype == torch.float32 and log.labels.dtype == torch.float32
    assert torch.equal(log.true_ctr, torch.sigmoid(model.logit(log.sparse, log.dense)))
    assert (log.true_ctr > 0).all() and (log.true_ctr < 1).all()


def test_labels_are_binary_with_the_mean_of_the_true_ctr(full):
    log, _ = full
    assert set(log.labels.unique().tolist()) == {0.0, 1.0}
    p = log.true_ctr.double()
    se = (p * (1 - p)).sum().sqrt() / len(p)  # sd of the mean of independent Bernoulli(p_i)
    # Measured: mean label 0.0727, mean true CTR 0.0729, SE 0.0005.
    assert abs(log.labels.double().mean() - p.mean()) < 5 * se


def test_labels_are_calibrated_to_the_true_ctr_in_bins(full):
    log, _ = full
    p, y = log.true_ctr.double(), log.labels.double()
    order = p.argsort()
    rates, means = [], []
    # Measured |z| <= 2.61 over the deciles; labels drawn from 1.1 * true_ctr instead give z = 7.2
    # in the top decile, so a 10% miscalibration of the generator fails this test.
    for rows in order.chunk(10):  # deciles of the true CTR
        pb, yb = p[rows], y[rows]
        se = (pb * (1 - pb)).sum().sqrt() / len(pb)
        assert abs(yb.mean() - pb.mean()) < 5 * se, (yb.mean(), pb.mean(), se)
        rates.append(yb.mean().item())
        means.append(pb.mean().item())
    # The check has power: the deciles span a wide range of CTRs, and the rates follow them.
    assert means[-1] > 10 * means[0]
    assert rates == sorted(rates)


# --- features ----------------------------------------------------------------------------------


def test_sparse_columns_are_in_range_and_category_is_the_items(full):
    log, model = full
    assert log.sparse.dtype == torch.int64 and log.dense.dtype == torch.float32
    assert log.field_names == SPARSE_FIELDS and log.dense_names == DENSE_FIELDS
    assert log.cardinalities == tuple(model.cardinalities[f] for f in SPARSE_FIELDS)
    assert log.cardinalities == (100, 100, 20, 50, 4, 3, 24)
    for f, card in zip(SPARSE_FIELDS, log.cardinalities, strict=True):
        col = log.column(f)
        assert col.min() >= 0 and col.max() < card, f
        assert col.unique().numel() == card, f  # with N rows every value shows up
    assert torch.equal(log.column("category"), model.item_category[log.column("item")])
    # Dense features are standardised, bids are positive (log-normal).
    torch.testing.assert_close(log.dense.mean(0), torch.zeros(2), rtol=0, atol=0.02)
    torch.testing.assert_close(log.dense.std(0), torch.ones(2), rtol=0, atol=0.02)
    assert (log.bid > 0).all()


def test_column_returns_the_named_column_and_rejects_unknown_names(full):
    log, _ = full
    for i, f in enumerate(SPARSE_FIELDS):
        assert torch.equal(log.column(f), log.sparse[:, i])
    assert not torch.equal(log.column("user"), log.column("item"))
    with pytest.raises(ValueError, match=re.escape("unknown field 'price'; fields are ('user', 'item'")):
        log.column("price")


def test_categorical_frequencies_are_zipf(full):
    log, model = full
    for f in ("user", "item", "site", "position", "device", "hour"):
        probs = model.freq[f]
        counts = torch.bincount(log.column(f), minlength=len(probs)).double()
        sd = (N * probs * (1 - probs)).sqrt()
        assert ((counts - N * probs).abs() < 5 * sd).all(), f
    probs = _zipf(100, 0.8)
    for f, p in [("user", probs), ("item", probs), ("site", _zipf(50, 0.8))]:
        torch.testing.assert_close(model.freq[f], p, rtol=1e-12, atol=0)
    torch.testing.assert_close(model.freq["hour"], torch.full((24,), 1 / 24, dtype=torch.float64))
    # Most frequent user vs the median user: p_1 / p_51 = 51^0.8 = 23.2 expected; measured 23.7.
    counts = torch.bincount(log.column("user"), minlength=100).double()
    expected = (probs.max() / probs.median()).item()
    assert expected == pytest.approx(51**0.8, rel=1e-12)
    observed = (counts.max() / counts.median()).item()
    assert observed > 5
    assert observed == pytest.approx(expected, rel=0.15)


def test_zipf_exponent_zero_is_uniform():
    train, _, _, model = make_click_log(50_000, generator=_gen(2), splits=(1.0, 0.0, 0.0), zipf_exponent=0.0)
    torch.testing.assert_close(model.freq["user"], torch.full((100,), 0.01, dtype=torch.float64))
    counts = torch.bincount(train.column("user"), minlength=100).double()
    assert counts.max() / counts.median() < 1.3  # about 500 per user, sd 22


# --- the true logit ----------------------------------------------------------------------------


def test_additive_truth_is_bias_plus_first_order_weights(full):
    log, _ = full
    sparse, dense = log.sparse[:5000], log.dense[:5000]
    model = ClickModel(generator=_gen(3), interaction_scale=0.0, nonlinear_scale=0.0, bias=-2.5)
    expected = torch.full((5000,), -2.5)
    for i, f in enumerate(SPARSE_FIELDS):
        expected = expected + model.w[f][sparse[:, i]]
    torch.testing.assert_close(model.logit(sparse, dense), expected, rtol=0, atol=1e-6)
    # So a logistic regression with the true weights is the truth: an additive model can reach Bayes.
    lr = LR(log.cardinalities, field_names=SPARSE_FIELDS)
    with torch.no_grad():
        lr.weights.table.weight.copy_(torch.cat([model.w[f] for f in SPARSE_FIELDS])[:, None])
        lr.bias.fill_(-2.5)
        torch.testing.assert_close(lr(sparse), model.logit(sparse, dense), rtol=0, atol=1e-5)
    # Dense features do not enter an additive truth.
    assert torch.equal(model.logit(sparse, dense), model.logit(sparse, torch.randn_like(dense)))


def test_logit_decomposes_into_first_order_pairwise_and_nonlinear_parts(full):
    log, _ = full
    sparse, dense = log.sparse[:5000], log.dense[:5000]
    # The truth's first-order weights are drawn before the latent tables: the same seed shares them.
    default = ClickModel(generator=_gen(4))
    additive = ClickModel(generator=_gen(4), interaction_scale=0.0, nonlinear_scale=0.0)
    col = {f: sparse[:, i] for i, f in enumerate(SPARSE_FIELDS)}
    pairwise = sum((uf[col[f]] * ug[col[g]]).sum(1) for (f, g), (uf, ug) in default.latent.items())
    price, activity = dense[:, 0], dense[:, 1]
    h = -0.5 * price**2 + 0.5 - torch.tanh(2 * price) * torch.relu(activity)
    torch.testing.assert_close(
        default.logit(sparse, dense), additive.logit(sparse, dense) + pairwise + 0.5 * h, rtol=0, atol=1e-5
    )
    assert pairwise.std() > 0.3 and h.std() > 0.3
    # interaction_scale scales every pair term linearly (each factor table by its square root).
    double = ClickModel(generator=_gen(4), interaction_scale=1.2)
    for pair in PAIRS:
        (uf, ug), (df, dg) = default.latent[pair], double.latent[pair]
        torch.testing.assert_close(df @ dg.T, 2 * (uf @ ug.T), rtol=1e-5, atol=1e-6)


def test_pairwise_terms_have_the_std_interaction_scale(full):
    log, model = full
    # Per pair, over the impressions of the default log (scale 0.6): measured 0.55, 0.57, 0.51.
    col = {f: log.column(f) for f in SPARSE_FIELDS}
    for (f, g), (uf, ug) in model.latent.items():
        term = (uf[col[f]] * ug[col[g]]).sum(1)
        assert 0.3 < term.std() < 1.0, (f, g)
    # Over all value pairs, the entries of u_f u_g^T have second moment scale^2 by construction;
    # RMS over 20 truths: mean 0.608, sd 0.051 across truths (SE of the mean 0.011).
    rms = []
    for seed in range(20):
        truth = ClickModel(generator=_gen(seed), interaction_scale=0.6)
        entries = torch.cat([(uf @ ug.T).flatten() for uf, ug in truth.latent.values()])
        rms.append(entries.pow(2).mean().sqrt().item())
    assert sum(rms) / len(rms) == pytest.approx(0.6, abs=0.05)
    assert 0.4 < min(rms) and max(rms) < 0.85


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_click_log(2), "n must be an int >= 3, got 2"),
        (lambda: make_click_log(100.0), "n must be an int >= 3, got 100.0"),
        (lambda: make_click_log(-5), "n must be an int >= 3, got -5"),
        (lambda: make_click_log(100, splits=(0.5, 0.5)), "three non-negative fractions summing to 1"),
        (lambda: make_click_log(100, splits=(0.8, 0.1, 0.05)), r"summing to 1, got \(0.8, 0.1, 0.05\)"),
        (lambda: make_click_log(100, splits=(1.2, -0.1, -0.1)), "three non-negative fractions"),
        (lambda: make_click_log(100, n_users=0), "n_users must be a positive int, got 0"),
        (lambda: make_click_log(100, n_items=2.5), "n_items must be a positive int, got 2.5"),
        (lambda: ClickModel(n_categories=-1), "n_categories must be a positive int, got -1"),
        (lambda: ClickModel(n_sites=0), "n_sites must be a positive int, got 0"),
        (lambda: ClickModel(latent_dim=0), "latent_dim must be a positive int, got 0"),
        (lambda: make_click_log(100, zipf_exponent=-0.5), r"zipf_exponent must lie in \[0, inf\), got -0.5"),
        (lambda: ClickModel().sample(0), "n must be a positive int, got 0"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- what is per user, and the position bias ------------------------------------------------------


def test_user_activity_is_the_users_own(full):
    log, model = full
    assert torch.equal(log.dense[:, 1], model.user_activity[log.column("user")])
    assert model.user_activity.shape == (100,) and model.user_activity.std() > 0.5
    # Standardised over impressions: users weighted by their frequency.
    w = model.freq["user"]
    a = model.user_activity.double()
    assert (w * a).sum().item() == pytest.approx(0.0, abs=1e-6)
    assert (w * a**2).sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_observed_ctr_falls_with_the_position(seed):
    log = make_click_log(100_000, generator=_gen(seed), splits=(1.0, 0.0, 0.0))[0]
    pos = log.column("position")
    rates = [log.true_ctr[pos == p].mean().item() for p in range(4)]
    assert all(a > 1.1 * b for a, b in zip(rates, rates[1:], strict=False)), rates
