"""A one-slot second-price auction on predicted CTR x bid, with a reserve price.

Each request has ``c`` candidate ads, each with a bid (what the advertiser pays at most per
click) and a predicted CTR. The ad with the highest eCPM score pCTR x bid wins the slot if the
score reaches the reserve ``r`` (the value of the slot to the platform without an ad, per
impression); it pays per click the least bid that would still have won (Vickrey 1961; the
generalised second-price auction of Edelman, Ostrovsky & Schwarz 2007 with one slot):

    price per click = max(second-highest score, r) / pCTR_winner.

The platform's expected revenue is the winner's *true* CTR x that price, or r when no ad
reaches the reserve (the slot then shows what it is worth without an ad: an organic result, a
house ad). Scaling every pCTR by the same factor leaves the winner and, without a reserve, the
price unchanged: ranking alone needs no calibration. The reserve compares pCTR x bid with an
absolute number, and an over-predicting model loses twice: where the reserve sets the price,
the winner pays r / pCTR per click, so a pCTR 1.5 times too high charges 1.5 times too little;
and ads whose true eCPM is below r displace the slot's own value r.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from toyalgos.core.checks import check_number, check_tensor


class AuctionOutcome(NamedTuple):
    """Per request: ``winner`` (candidate index, -1 when no ad reaches the reserve), the
    platform's expected ``revenue`` (true CTR x price per click) and ``welfare`` (true CTR x bid
    of the winner, the value the slot creates), both ``reserve`` when no ad is shown."""

    winner: torch.Tensor  # (m,) int64
    revenue: torch.Tensor  # (m,) float
    welfare: torch.Tensor  # (m,) float


def second_price_auction(
    pctr: torch.Tensor, bid: torch.Tensor, true_ctr: torch.Tensor, *, reserve: float = 0.0
) -> AuctionOutcome:
    """One slot per request, second-price on pCTR x bid with a reserve score (see the module).

    ``pctr``, ``bid`` and ``true_ctr`` are (m, c): m requests of c candidates.
    """
    pctr = check_tensor(pctr, "pctr", dim=2)
    if bid.shape != pctr.shape or true_ctr.shape != pctr.shape:
        raise ValueError(
            f"pctr, bid and true_ctr must have one shape, got {tuple(pctr.shape)}, "
            f"{tuple(bid.shape)} and {tuple(true_ctr.shape)}"
        )
    check_number(reserve, "reserve", 0)
    score = pctr * bid  # (m, c) eCPM per click-probability unit
    top = score.topk(min(2, score.shape[1]), dim=1)
    winner = top.indices[:, 0]
    second = top.values[:, 1] if score.shape[1] > 1 else torch.zeros_like(top.values[:, 0])
    shown = top.values[:, 0] >= reserve
    pick = winner[:, None]
    price = torch.maximum(second, torch.full_like(second, reserve)) / pctr.gather(1, pick)[:, 0]
    p_true = true_ctr.gather(1, pick)[:, 0]
    revenue = torch.where(shown, p_true * price, reserve)
    welfare = torch.where(shown, p_true * bid.gather(1, pick)[:, 0], reserve)
    return AuctionOutcome(torch.where(shown, winner, -1), revenue, welfare)
