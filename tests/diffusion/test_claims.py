"""The diffusion claims pass two samples of the data and fail each known-bad case: a uniform
ring through the eight modes, one Gaussian with the data's mean and covariance, and the
mixture with one mode dropped."""

import math

import pytest
import torch

from toyalgos.diffusion import data, gaussian_mixture
from toyalgos.diffusion.claims import mode_shares_match, modes_covered, sample_precision, sample_recall

MEANS, STD = data.eight_gaussian_means(), 0.1


def _g(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def cases():
    n = 2000
    x = data.eight_gaussians(n, generator=_g(1))
    t = 2 * math.pi * torch.rand(n, generator=_g(2))
    chol = torch.linalg.cholesky(torch.cov(x.T))
    return {
        "data": data.eight_gaussians(n, generator=_g(0)),
        "heldout": x,
        "ring": 2.0 * torch.stack([t.cos(), t.sin()], dim=1),
        "gaussian": torch.randn(n, 2, generator=_g(3)) @ chol.T + x.mean(0),
        "dropped": gaussian_mixture(n, MEANS[1:], STD, generator=_g(4)),
    }


def test_the_data_passes_every_claim(cases):
    x, ref = cases["heldout"], cases["data"]
    for claim in [modes_covered(x, MEANS, STD), mode_shares_match(x, MEANS, STD)]:
        assert claim.holds, claim
    for claim in [sample_precision(x, ref), sample_recall(x, ref)]:
        assert claim.holds, claim


@pytest.mark.parametrize("bad", ["ring", "gaussian"])
def test_modes_covered_fails_on_a_ring_and_a_gaussian(cases, bad):
    assert not modes_covered(cases[bad], MEANS, STD).holds


def test_mode_shares_match_fails_on_a_dropped_mode(cases):
    assert modes_covered(cases["dropped"], MEANS, STD).holds  # every sample is on a mode ...
    claim = mode_shares_match(cases["dropped"], MEANS, STD)
    assert not claim.holds and claim.value == pytest.approx(1 / 8, abs=0.02)  # ... one is empty


@pytest.mark.parametrize("bad", ["ring", "gaussian"])
def test_sample_precision_fails_on_a_ring_and_a_gaussian(cases, bad):
    assert not sample_precision(cases[bad], cases["data"]).holds


@pytest.mark.parametrize("bad", ["ring", "dropped"])
def test_sample_recall_fails_on_a_ring_and_a_dropped_mode(cases, bad):
    assert not sample_recall(cases[bad], cases["data"]).holds


def test_weights_are_respected():
    means, w = torch.tensor([[0.0, 0.0], [3.0, 0.0]]), torch.tensor([0.8, 0.2])
    x = gaussian_mixture(4000, means, 0.2, weights=w, generator=_g(5))
    assert mode_shares_match(x, means, 0.2, weights=w).holds
    assert not mode_shares_match(x, means, 0.2).holds  # against equal weights, TV = 0.3
