"""The CTR claims pass the truth and fail each known-bad case: a model 1.5 times too high, a
model that learned nothing, noisy logits, a wrong pairwise formula."""

import pytest
import torch

from toyalgos.recsys import fm_pairwise, make_click_log, second_price_auction
from toyalgos.recsys.claims import (
    auc_gap_to_bayes,
    auc_improves,
    calibration_error,
    fm_identity,
    keeps_revenue,
    log_loss_gap_to_bayes,
    loses_revenue,
)


@pytest.fixture(scope="module")
def log():
    test = make_click_log(100_000, generator=torch.Generator().manual_seed(0), splits=(0.0, 0.0, 1.0))[2]
    g = torch.Generator().manual_seed(1)
    noisy = torch.sigmoid(torch.logit(test.true_ctr) + 0.8 * torch.randn(len(test), generator=g))
    return {
        "y": test.labels,
        "true": test.true_ctr,
        "x1.5": (1.5 * test.true_ctr).clamp(max=1.0),
        "noisy": noisy,
        "constant": torch.full_like(test.true_ctr, test.labels.mean().item()),
    }


@pytest.fixture(scope="module")
def auctions():
    g = torch.Generator().manual_seed(2)
    ctr = 0.01 + 0.3 * torch.rand(5000, 8, generator=g)
    bid = torch.exp(0.5 * torch.randn(5000, 8, generator=g))
    reserve = (ctr * bid).amax(1).median().item()
    out = {}
    for r in (0.0, reserve):
        out[r] = {
            name: second_price_auction(p, bid, ctr, reserve=r)
            for name, p in [("true", ctr), ("x1.5", 1.5 * ctr), ("constant", torch.full_like(ctr, 0.1))]
        }
    return out, reserve


def test_the_truth_passes_every_claim(log):
    y, t = log["y"], log["true"]
    assert auc_improves(y, t, log["noisy"]).holds
    assert auc_gap_to_bayes(y, t, t).holds and log_loss_gap_to_bayes(y, t, t).holds
    assert calibration_error(y, t).holds


def test_auc_improves_fails_when_the_model_is_the_baseline(log):
    claim = auc_improves(log["y"], log["noisy"], log["noisy"])
    assert not claim.holds and claim.value == 0.0
    # Scaling does not change the order, so it gains no AUC either.
    assert not auc_improves(log["y"], log["x1.5"], log["true"]).holds


@pytest.mark.parametrize("bad", ["noisy", "constant"])
def test_auc_gap_to_bayes_fails_for_noisy_logits_and_a_constant(log, bad):
    assert not auc_gap_to_bayes(log["y"], log[bad], log["true"]).holds


@pytest.mark.parametrize("bad", ["noisy", "constant"])
def test_log_loss_gap_to_bayes_fails_for_noisy_logits_and_a_constant(log, bad):
    assert not log_loss_gap_to_bayes(log["y"], log[bad], log["true"]).holds


def test_calibration_error_fails_for_a_model_scaled_by_1_5(log):
    claim = calibration_error(log["y"], log["x1.5"])
    assert not claim.holds and claim.value == pytest.approx(0.5, abs=0.1)
    # It ranks as the truth does (but for ties where 1.5 p is clipped at 1): AUC cannot see it.
    assert auc_gap_to_bayes(log["y"], log["x1.5"], log["true"]).value == pytest.approx(0.0, abs=1e-4)


def test_calibration_error_fails_for_negative_down_sampling_without_correction(log):
    p, w = log["true"], 0.1
    assert not calibration_error(log["y"], p / (p + w * (1 - p))).holds


def test_keeps_revenue_fails_for_a_model_scaled_by_1_5_and_for_a_constant(auctions):
    out, reserve = auctions
    assert keeps_revenue(out[reserve]["true"], out[reserve]["true"]).value == 1.0
    assert not keeps_revenue(out[reserve]["x1.5"], out[reserve]["true"]).holds
    assert not keeps_revenue(out[0.0]["constant"], out[0.0]["true"]).holds


def test_loses_revenue_fails_for_the_calibrated_model_and_without_a_reserve(auctions):
    out, reserve = auctions
    assert loses_revenue(out[reserve]["x1.5"], out[reserve]["true"]).holds
    assert not loses_revenue(out[reserve]["true"], out[reserve]["true"]).holds
    claim = loses_revenue(out[0.0]["x1.5"], out[0.0]["true"])  # scaling alone costs nothing
    assert not claim.holds and claim.value == pytest.approx(0.0, abs=1e-6)


def test_fm_identity_fails_for_a_sum_over_ordered_pairs_with_the_diagonal():
    v = torch.randn(64, 7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert fm_identity(v).holds
    assert not fm_identity(v, pairwise=lambda u: 0.5 * u.sum(1).pow(2).sum(1)).holds
    assert not fm_identity(v, pairwise=lambda u: 2 * fm_pairwise(u)).holds
