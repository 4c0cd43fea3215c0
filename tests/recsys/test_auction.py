"""The second-price auction: a worked example by hand, the reserve, and the invariances that
make calibration matter only through the reserve."""

import pytest
import torch

from toyalgos.recsys import second_price_auction


def _requests(m=4000, c=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    ctr = 0.01 + 0.3 * torch.rand(m, c, generator=g)  # below 2/3, so 1.5 x ctr is a probability
    bid = torch.exp(0.5 * torch.randn(m, c, generator=g))
    return ctr, bid


def test_a_worked_example():
    pctr = torch.tensor([[0.1, 0.2, 0.05]])
    bid = torch.tensor([[2.0, 1.5, 10.0]])  # scores 0.2, 0.3, 0.5: the third ad wins
    true = torch.tensor([[0.1, 0.2, 0.04]])
    out = second_price_auction(pctr, bid, true)
    assert out.winner.tolist() == [2]
    # Pays the second score over its own pCTR per click: 0.3 / 0.05 = 6 <= its bid 10.
    torch.testing.assert_close(out.revenue, torch.tensor([0.04 * 6.0]))
    torch.testing.assert_close(out.welfare, torch.tensor([0.04 * 10.0]))
    # A reserve above the second score sets the price: 0.4 / 0.05 = 8.
    torch.testing.assert_close(
        second_price_auction(pctr, bid, true, reserve=0.4).revenue, torch.tensor([0.32])
    )
    # A reserve above every score: no ad, the slot is worth the reserve.
    out = second_price_auction(pctr, bid, true, reserve=0.6)
    assert out.winner.tolist() == [-1]
    torch.testing.assert_close(out.revenue, torch.tensor([0.6]))
    torch.testing.assert_close(out.welfare, torch.tensor([0.6]))


def test_one_candidate_pays_the_reserve():
    out = second_price_auction(
        torch.tensor([[0.1]]), torch.tensor([[3.0]]), torch.tensor([[0.1]]), reserve=0.2
    )
    torch.testing.assert_close(out.revenue, torch.tensor([0.1 * 0.2 / 0.1]))


def test_a_winner_never_pays_more_than_its_bid_per_click():
    ctr, bid = _requests()
    out = second_price_auction(ctr, bid, ctr, reserve=0.2)
    shown = out.winner >= 0
    assert shown.any() and not shown.all()
    pick = out.winner[shown][:, None]
    price = out.revenue[shown] / ctr[shown].gather(1, pick)[:, 0]
    assert (price <= bid[shown].gather(1, pick)[:, 0] + 1e-6).all()


def test_scaling_every_prediction_changes_nothing_without_a_reserve():
    ctr, bid = _requests()
    calibrated, inflated = (second_price_auction(s * ctr, bid, ctr) for s in (1.0, 1.5))
    assert torch.equal(calibrated.winner, inflated.winner)
    torch.testing.assert_close(calibrated.revenue, inflated.revenue)


def test_with_a_reserve_an_inflated_model_loses_revenue_and_welfare():
    ctr, bid = _requests()
    reserve = (ctr * bid).amax(1).median().item()
    calibrated, inflated = (second_price_auction(s * ctr, bid, ctr, reserve=reserve) for s in (1.0, 1.5))
    assert inflated.revenue.sum() < 0.97 * calibrated.revenue.sum()
    assert inflated.welfare.sum() < calibrated.welfare.sum()
    assert (inflated.revenue <= calibrated.revenue + 1e-6).all()  # never gains, request by request


def test_the_true_ctr_maximises_welfare():
    ctr, bid = _requests()
    g = torch.Generator().manual_seed(1)
    best = second_price_auction(ctr, bid, ctr, reserve=0.1).welfare
    for noisy in [
        ctr * torch.exp(0.3 * torch.randn(ctr.shape, generator=g)),
        torch.rand(ctr.shape, generator=g),
    ]:
        other = second_price_auction(noisy, bid, ctr, reserve=0.1).welfare
        assert (other <= best + 1e-6).all() and other.sum() < best.sum()


def test_bad_input_raises():
    ctr, bid = _requests(m=3)
    with pytest.raises(ValueError, match="one shape"):
        second_price_auction(ctr, bid[:, :2], ctr)
    with pytest.raises(ValueError, match="pctr must have 2 dimensions"):
        second_price_auction(ctr[0], bid[0], ctr[0])
    with pytest.raises(ValueError, match="reserve"):
        second_price_auction(ctr, bid, ctr, reserve=-1.0)
