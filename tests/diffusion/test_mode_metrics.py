"""mode_coverage and precision_recall: closed forms, a brute-force reference, and the known-bad
cases a distance averaged over the whole cloud lets through (a ring, one wide Gaussian, a
dropped mode)."""

import math

import pytest
import torch

from toyalgos.diffusion import data, gaussian_mixture, mmd_rbf, mode_coverage, precision_recall

ANGLES = torch.arange(8) * (2 * math.pi / 8)
MEANS = 2.0 * torch.stack([ANGLES.cos(), ANGLES.sin()], dim=1)  # data.eight_gaussians' modes
STD = 0.1


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _bad_cases(n=2000):
    """The data, and three ways to get it wrong, all of n points."""
    x = data.eight_gaussians(n, generator=_g(1))
    t = 2 * math.pi * torch.rand(n, generator=_g(2))
    ring = 2.0 * torch.stack([t.cos(), t.sin()], dim=1)
    chol = torch.linalg.cholesky(torch.cov(x.T))
    gaussian = torch.randn(n, 2, generator=_g(3)) @ chol.T + x.mean(0)  # same mean and covariance
    dropped = gaussian_mixture(n, MEANS[1:], STD, generator=_g(4))  # seven of the eight modes
    return {"data": x, "ring": ring, "gaussian": gaussian, "dropped": dropped}


@pytest.mark.parametrize("k", [1.0, 2.0, 3.0])
def test_within_matches_the_closed_form(k):
    """For an isotropic 2-D Gaussian, P(||x - mu|| <= k std) = 1 - exp(-k^2 / 2) (Rayleigh)."""
    x = data.eight_gaussians(40_000, generator=_g(0))
    assert mode_coverage(x, MEANS, STD, k=k).within == pytest.approx(1 - math.exp(-(k**2) / 2), abs=0.006)


def test_known_bad_cases_fail_and_the_data_passes():
    cases = {name: mode_coverage(x, MEANS, STD) for name, x in _bad_cases().items()}
    assert cases["data"].within > 0.97 and cases["data"].tv < 0.05
    assert cases["ring"].within < 0.5  # measured 0.385
    assert cases["gaussian"].within < 0.2  # measured 0.072
    assert cases["dropped"].within > 0.97  # every sample sits on a mode ...
    assert cases["dropped"].tv > 0.1  # ... but one mode of eight is missing: TV = 1/8
    assert cases["dropped"].shares[0] == 0


def test_shares_follow_given_weights():
    w = torch.tensor([0.5, 0.3, 0.2])
    means = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    x = gaussian_mixture(20_000, means, 0.2, weights=w, generator=_g(5))
    fair = mode_coverage(x, means, 0.2, weights=w)
    torch.testing.assert_close(fair.shares, w, atol=0.01, rtol=0)
    assert fair.tv < 0.01
    assert mode_coverage(x, means, 0.2).tv == pytest.approx(
        0.5 * (abs(0.5 - 1 / 3) + abs(0.3 - 1 / 3) + abs(0.2 - 1 / 3)), abs=0.01
    )


def test_precision_recall_closed_form():
    """Data on a line one apart, k = 1: every data ball has radius 1."""
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    fake = torch.tensor([[0.5, 0.0], [10.0, 0.0]])  # one inside, one far away
    precision, recall = precision_recall(fake, real, k=1)
    assert precision == 0.5
    assert recall == 1.0  # the fake balls have radius 9.5 and cover every real point


def test_precision_recall_matches_a_brute_force_loop():
    fake, real = torch.randn(40, 3, generator=_g(6)), torch.randn(50, 3, generator=_g(7)) + 0.5

    def radius(points, i, k):
        d = sorted(math.dist(points[i].tolist(), points[j].tolist()) for j in range(len(points)) if j != i)
        return d[k - 1]

    def covered(points, centres, k):
        radii = [radius(centres, i, k) for i in range(len(centres))]
        hits = [
            any(math.dist(p.tolist(), c.tolist()) <= r for c, r in zip(centres, radii, strict=True))
            for p in points
        ]
        return sum(hits) / len(points)

    p, r = precision_recall(fake, real, k=3)
    assert p == pytest.approx(covered(fake, real, 3)) and r == pytest.approx(covered(real, fake, 3))


def test_precision_recall_sees_what_a_distance_misses():
    real = data.eight_gaussians(2000, generator=_g(8))
    pr = {name: precision_recall(x, real) for name, x in _bad_cases().items()}
    assert min(pr["data"]) > 0.93  # measured 0.965 / 0.971
    assert pr["ring"].precision < 0.6  # measured 0.41
    assert pr["gaussian"].precision < 0.3  # measured 0.09
    assert pr["dropped"].precision > 0.93 and pr["dropped"].recall < 0.9  # measured 0.97 / 0.86


def test_mmd_sees_the_ring_only_at_the_modes_scale():
    """The median-heuristic bandwidth is the cloud's scale: it scores a ring like the data."""
    real = data.eight_gaussians(2000, generator=_g(8))
    cases = _bad_cases()
    assert abs(mmd_rbf(cases["ring"], real).item()) < 0.002  # blind: measured -0.00002
    assert abs(mmd_rbf(cases["data"], real, bandwidth=0.3).item()) < 0.005  # measured -0.0002
    assert mmd_rbf(cases["ring"], real, bandwidth=0.3).item() > 0.02  # measured 0.050


def test_bad_input():
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="std must lie in"):
        mode_coverage(x, MEANS, 0.0)
    with pytest.raises(ValueError, match="samples must have 2 dimensions"):
        mode_coverage(torch.zeros(5), MEANS, STD)
    with pytest.raises(ValueError, match="k must be smaller than both sample sizes"):
        precision_recall(x, torch.zeros(3, 2), k=3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        precision_recall(x, x, k=0)
