import math

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from toyalgos.recsys import auc, calibration_ratio, group_auc, log_loss, reliability_curve
from toyalgos.recsys.metrics import ReliabilityCurve, normalized_entropy


def _clicks(n, seed=0, ctr=0.3):
    """Labels correlated with a probability score, as a CTR model would produce."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    y = (rng.uniform(size=n) < ctr * 2 * p).astype(int)
    return y, p


def _auc_pairwise(y, s):
    """P(s_pos > s_neg) + 0.5 P(tie), over all pairs: the definition, O(n1 n0)."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


# --- auc ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_auc_matches_sklearn_on_random_data(seed):
    y, s = _clicks(2000, seed)
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc(y, s) == pytest.approx(_auc_pairwise(y, s), abs=1e-12)


@pytest.mark.parametrize("ties", ["round1", "integers", "two_values"])
def test_auc_matches_sklearn_with_ties(ties):
    y, p = _clicks(3000, seed=1)
    rng = np.random.default_rng(2)
    s = {
        "round1": np.round(p, 1),
        "integers": rng.integers(0, 5, len(p)) + (p > 0.7),
        "two_values": (p > 0.5).astype(float),
    }[ties]
    ref = roc_auc_score(y, s)
    assert auc(y, s) == pytest.approx(ref, abs=1e-12)
    assert auc(y, s) == pytest.approx(_auc_pairwise(y, s), abs=1e-12)
    # Ties count 1/2, not 0 or 1: breaking them changes the value.
    assert auc(y, s + 1e-9 * y) != pytest.approx(ref, abs=1e-6)


def test_auc_hand_cases():
    # Pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4.
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # A tie between a positive and a negative counts 1/2: (1 + 0.5 + 1 + 1) / 4.
    assert auc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == 0.875
    assert auc([1, 0], [0.3, 0.3]) == 0.5
    assert auc([0, 0, 1, 1, 1], [1, 2, 3, 4, 5]) == 1.0
    assert auc([0, 0, 1, 1, 1], [5, 4, 3, 2, 1]) == 0.0
    assert isinstance(auc([0, 1], [0.2, 0.1]), float)


def test_auc_accepts_tensors_lists_and_bool_labels():
    y, s = _clicks(500, seed=3)
    ref = roc_auc_score(y, s)
    assert auc(torch.tensor(y), torch.tensor(s, requires_grad=True)) == pytest.approx(ref, abs=1e-12)
    assert auc(y.tolist(), s.tolist()) == pytest.approx(ref, abs=1e-12)
    assert auc(y.astype(bool), s.astype(np.float32)) == pytest.approx(
        roc_auc_score(y, s.astype(np.float32)), abs=1e-12
    )


def test_auc_is_invariant_under_monotone_transforms():
    y, p = _clicks(1000, seed=4)
    base = auc(y, p)
    assert auc(y, np.log(p)) == base
    assert auc(y, 10 * p - 3) == base
    assert auc(y, 1 - p) == pytest.approx(1 - base, abs=1e-12)
    tied = np.round(p, 1)
    assert auc(y, np.exp(5 * tied)) == auc(y, tied)


def test_auc_on_a_million_samples_is_vectorised_and_deterministic():
    rng = np.random.default_rng(5)
    n = 1_000_000
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 1000, n) + 50 * y  # many ties, rank sums near n^2
    first = auc(y, s)
    assert first == auc(y, s)
    assert first == pytest.approx(roc_auc_score(y, s), abs=1e-12)


# --- group_auc ---------------------------------------------------------------------------------


def _gauc_reference(y, s, groups):
    num = den = 0.0
    for g in np.unique(groups):
        m = groups == g
        if len(np.unique(y[m])) < 2:
            continue
        num += m.sum() * roc_auc_score(y[m], s[m])
        den += m.sum()
    return num / den


def _grouped_clicks(seed=0, n_groups=50):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 80, n_groups)
    groups = np.repeat(np.arange(n_groups) * 7 + 3, sizes)
    ctr = np.repeat(rng.beta(1, 3, n_groups), sizes)
    s = np.round(ctr + 0.3 * rng.normal(size=len(groups)), 2)  # ties inside groups
    y = (rng.uniform(size=len(groups)) < ctr + 0.2 * (s > ctr)).astype(int)
    y[groups == 3], y[groups == 10] = 0, 1  # at least two single-class groups
    perm = rng.permutation(len(groups))  # impressions of a user are not contiguous in a log
    return y[perm], s[perm], groups[perm]


@pytest.mark.parametrize("seed", range(3))
def test_group_auc_matches_loop_over_sklearn(seed):
    y, s, groups = _grouped_clicks(seed)
    single = [g for g in np.unique(groups) if len(np.unique(y[groups == g])) == 1]
    assert len(single) >= 2
    assert group_auc(y, s, groups) == pytest.approx(_gauc_reference(y, s, groups), abs=1e-12)
    as_strings = np.array([f"user{g}" for g in groups])
    assert group_auc(y, s, as_strings) == pytest.approx(_gauc_reference(y, s, groups), abs=1e-12)


def test_group_auc_with_one_group_is_auc():
    y, s = _clicks(800, seed=6)
    assert group_auc(y, s, np.zeros(800, dtype=int)) == pytest.approx(auc(y, s), abs=1e-12)
    assert group_auc(torch.tensor(y), torch.tensor(s), torch.full((800,), 4)) == pytest.approx(
        auc(y, s), abs=1e-12
    )


def test_group_auc_weights_groups_by_impressions():
    # User a: 2 impressions ranked right (AUC 1). User b: 8 impressions ranked backwards (AUC 0).
    y = [0, 1] + [0] * 4 + [1] * 4
    s = [0.1, 0.9] + [0.8] * 4 + [0.2] * 4
    groups = ["a"] * 2 + ["b"] * 8
    assert group_auc(y, s, groups) == pytest.approx((2 * 1 + 8 * 0) / 10, abs=1e-15)  # not (1 + 0) / 2
    # A group with a single class is skipped, whatever its size.
    assert group_auc(y + [1] * 50, s + [0.0] * 50, groups + ["c"] * 50) == pytest.approx(0.2, abs=1e-15)


def test_group_auc_ignores_score_offsets_between_groups():
    y, s, groups = _grouped_clicks(seed=7)
    offset = np.random.default_rng(8).normal(size=groups.max() + 1)[groups]
    assert group_auc(y, s + offset, groups) == pytest.approx(group_auc(y, s, groups), abs=1e-12)
    assert auc(y, s + offset) != pytest.approx(auc(y, s), abs=1e-3)


def test_group_auc_on_a_million_samples_runs():
    rng = np.random.default_rng(9)
    n = 1_000_000
    groups = rng.integers(0, 100_000, n)
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 10, n) + y
    assert 0.5 < group_auc(y, s, groups) < 1


# --- log loss, normalized entropy, calibration --------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_log_loss_matches_sklearn(seed):
    y, _ = _clicks(2000, seed)
    p = np.random.default_rng(seed + 10).uniform(1e-6, 1 - 1e-6, 2000)  # inside both clipping ranges
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p, labels=[0, 1]), abs=1e-12)
    assert log_loss(torch.tensor(y), torch.tensor(p)) == pytest.approx(sk_log_loss(y, p), abs=1e-12)


def test_log_loss_clips_exact_zero_and_one():
    eps = 1e-7
    # Two confident mistakes (-log eps each) and two confident hits (-log(1 - eps) each).
    expected = (2 * -math.log(eps) + 2 * -math.log1p(-eps)) / 4
    assert log_loss([1, 0, 1, 0], [0.0, 1.0, 1.0, 0.0]) == pytest.approx(expected, rel=1e-9)
    assert log_loss([1], [0.0], eps=1e-3) == pytest.approx(-math.log(1e-3), rel=1e-12)
    assert log_loss([0, 1], [0.5, 0.5]) == pytest.approx(math.log(2), abs=1e-15)


def test_normalized_entropy():
    y, p = _clicks(5000, seed=11)
    base = y.mean()
    assert normalized_entropy(y, np.full(len(y), base)) == pytest.approx(1.0, abs=1e-12)
    h = -(base * math.log(base) + (1 - base) * math.log(1 - base))
    assert normalized_entropy(y, 0.6 * p) == pytest.approx(log_loss(y, 0.6 * p) / h, abs=1e-12)
    assert normalized_entropy(y, 0.6 * p) < 1  # an informative model beats the base rate


def test_calibration_ratio():
    assert calibration_ratio([1, 0, 0, 1], [0.5, 0.25, 0.25, 0.5]) == 0.75
    y, p = _clicks(1000, seed=12)
    r = calibration_ratio(y, p)
    assert r == pytest.approx(p.sum() / y.sum(), abs=1e-12)
    assert calibration_ratio(y, 0.5 * p) == pytest.approx(0.5 * r, abs=1e-12)
    assert calibration_ratio(y, np.full(len(y), y.mean())) == pytest.approx(1.0, abs=1e-12)


# --- reliability curve -------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize(("n", "n_bins", "rounded"), [(1000, 10, False), (1001, 7, False), (500, 10, True)])
def test_reliability_curve_matches_sklearn(strategy, n, n_bins, rounded):
    y, p = _clicks(n, seed=n_bins)
    p = 0.4 * p**2  # crowded near 0, like CTR predictions
    if rounded:  # ties: repeated quantile edges, values exactly on edges, empty bins
        p = np.round(p, 2)
    curve = reliability_curve(y, p, n_bins=n_bins, strategy=strategy)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    np.testing.assert_allclose(curve.observed_rate, prob_true, rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.mean_predicted, prob_pred, rtol=0, atol=1e-12)
    assert curve.count.sum() == n and (curve.count > 0).all()
    np.testing.assert_allclose(curve.calibration_per_bin, curve.mean_predicted / curve.observed_rate)


def test_reliability_curve_bins_and_empty_bins():
    y = [0, 1, 0, 1, 1, 0]
    p = [0.05, 0.05, 0.2, 0.3, 0.9, 0.95]
    curve = reliability_curve(y, p, n_bins=2, strategy="uniform")
    assert isinstance(curve, ReliabilityCurve)
    np.testing.assert_allclose(curve.mean_predicted, [0.15, 0.925])
    np.testing.assert_allclose(curve.observed_rate, [0.5, 0.5])
    np.testing.assert_array_equal(curve.count, [4, 2])
    np.testing.assert_allclose(curve.calibration_per_bin, [0.3, 1.85])
    # Ten uniform bins (0, 0.1], ..., (0.9, 1], the first closed at 0: a value on an inner edge
    # (0.2, 0.9) goes to the lower bin, as in sklearn; empty bins are dropped.
    ten = reliability_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_array_equal(ten.count, [2, 1, 1, 1, 1])
    np.testing.assert_allclose(ten.mean_predicted, [0.05, 0.2, 0.3, 0.9, 0.95])
    np.testing.assert_array_equal(ten.observed_rate, [0.5, 0, 1, 1, 0])
    assert np.isinf(ten.calibration_per_bin[[1, 4]]).all()  # predictions but no clicks
    with pytest.raises(ValueError, match="read-only"):
        ten.count[0] = 5


def test_reliability_curve_is_a_named_tuple_whatever_the_strategy():
    y, p = _clicks(300, seed=5)
    for strategy in ("quantile", "uniform"):
        curve = reliability_curve(y, p, n_bins=4, strategy=strategy)
        assert type(curve) is ReliabilityCurve and isinstance(curve, tuple)
        assert curve._fields == ("mean_predicted", "observed_rate", "count", "calibration_per_bin")
        mean_predicted, observed_rate, count, ratio = curve
        assert mean_predicted is curve.mean_predicted and count.sum() == 300
        assert all(not a.flags.writeable for a in curve)


# --- bad input ---------------------------------------------------------------------------------


GOOD_Y, GOOD_P = [0, 1, 0, 1], [0.1, 0.7, 0.2, 0.4]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: auc([0, 2, 0, 2], GOOD_P), r"only 0 and 1, got other values \[2\]"),
        (lambda: log_loss([0, 1, 0, -1], GOOD_P), r"only 0 and 1, got other values \[-1\]"),
        (lambda: group_auc([0, 2, 0, 1], GOOD_P, [1, 1, 2, 2]), "only 0 and 1"),
        (lambda: auc([1, 1, 1, 1], GOOD_P), "AUC is undefined with a single class"),
        (lambda: group_auc([0, 1, 0, 1], GOOD_P, [1, 2, 3, 4]), "none of the 4 groups"),
        (
            lambda: log_loss(GOOD_Y, [0.1, 1.2, 0.2, 0.4]),
            r"probabilities in \[0, 1\], got values in \[0.1, 1.2\]",
        ),
        (lambda: log_loss(GOOD_Y, [0.1, -0.1, 0.2, 0.4]), r"probabilities in \[0, 1\]"),
        (lambda: calibration_ratio(GOOD_Y, [0.1, 1.5, 0.2, 0.4]), r"probabilities in \[0, 1\]"),
        (lambda: reliability_curve(GOOD_Y, [0.1, -0.5, 0.2, 0.4]), r"probabilities in \[0, 1\]"),
        (lambda: auc(GOOD_Y, [0.1, float("nan"), 0.2, 0.4]), "NaN"),
        (lambda: log_loss(GOOD_Y, [0.1, float("nan"), 0.2, 0.4]), "NaN"),
        (
            lambda: auc(GOOD_Y, GOOD_P[:3]),
            "y_true and y_score must have the same number of rows, got 4 and 3",
        ),
        (lambda: group_auc(GOOD_Y, GOOD_P, [1, 2]), "groups and y_true must have the same number of rows"),
        (lambda: auc([], []), "empty"),
        (lambda: log_loss([], []), "empty"),
        (lambda: auc(np.array([GOOD_Y]), np.array([GOOD_P])), r"1-D, got shape \(1, 4\)"),
        (lambda: log_loss(GOOD_Y, np.array(GOOD_P)[:, None]), r"y_score must be 1-D"),
        (lambda: calibration_ratio([0, 0], [0.1, 0.2]), "without positive labels"),
        (lambda: normalized_entropy([1, 1], [0.1, 0.2]), "undefined when all labels are 1"),
        (lambda: log_loss(GOOD_Y, GOOD_P, eps=0.0), r"eps must lie in \(0, 0.5\), got 0.0"),
        (lambda: log_loss(GOOD_Y, GOOD_P, eps=0.5), r"eps must lie in \(0, 0.5\), got 0.5"),
        (lambda: reliability_curve(GOOD_Y, GOOD_P, n_bins=0), "n_bins must be a positive int, got 0"),
        (lambda: reliability_curve(GOOD_Y, GOOD_P, n_bins=2.0), "n_bins must be a positive int, got 2.0"),
        (
            lambda: reliability_curve(GOOD_Y, GOOD_P, strategy="kmeans"),
            r"strategy must be one of \['quantile', 'uniform'\], got 'kmeans'",
        ),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_numeric_input_raises_type_error():
    with pytest.raises(TypeError, match="numeric 0/1 labels"):
        auc(["no", "yes"], [0.1, 0.2])
    with pytest.raises(TypeError, match="y_score must be numeric"):
        auc([0, 1], ["a", "b"])


# --- expected calibration error ------------------------------------------------------------------


def test_expected_calibration_error_by_hand_and_known_cases():
    from toyalgos.recsys import expected_calibration_error

    # Two uniform bins: [0, 0.5) holds predictions 0.1, 0.2 (mean 0.15, one click of two: 0.5),
    # [0.5, 1] holds 0.6, 0.9 (mean 0.75, two of two: 1.0). ECE = 0.5 * 0.35 + 0.5 * 0.25 = 0.3.
    y, p = [0, 1, 1, 1], [0.1, 0.2, 0.6, 0.9]
    assert expected_calibration_error(y, p, n_bins=2, strategy="uniform") == pytest.approx(0.3, abs=1e-12)
    # Labels drawn from p: small; p scaled by 1.5: about half the mean prediction.
    g = torch.Generator().manual_seed(0)
    q = 0.05 + 0.15 * torch.rand(200_000, generator=g, dtype=torch.float64)
    labels = torch.bernoulli(q, generator=g)
    assert expected_calibration_error(labels, q) < 0.003
    assert expected_calibration_error(labels, 1.5 * q) == pytest.approx(0.5 * q.mean().item(), rel=0.05)
    # Errors in opposite directions do not cancel, as they do in the calibration ratio.
    tilted = q.mean() + 1.5 * (q - q.mean())  # too low below the mean, too high above it
    assert abs(calibration_ratio(labels, tilted) - 1) < 0.02
    assert expected_calibration_error(labels, tilted) > 0.01
