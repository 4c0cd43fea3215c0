"""The EDM notebook's claims: a formulation that recovers the modes beats one that forms a ring,
Heun's method is second order and reaches an error with fewer network calls; each claim fails
on a known-bad case (equal samples, a first-order error curve, equal curves)."""

import math

import numpy as np
import pytest
import torch

from toyalgos.diffusion import GaussianMixtureDenoiser, convergence_order, data, edm_sample, nfe_to_reach
from toyalgos.diffusion.claims import coverage_advantage, fewer_nfe_to_reach, order_gain, solver_order
from toyalgos.diffusion.edm import EDM

MEANS, STD = data.eight_gaussian_means(), 0.1
NFE = [5, 10, 20, 40, 80]
FIRST = [0.5 / n for n in NFE]  # error ~ NFE^-1 (Euler)
SECOND = [20.0 / n**2 for n in NFE]  # error ~ NFE^-2 (Heun)


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _ring(n, seed):
    t = 2 * math.pi * torch.rand(n, generator=_g(seed))
    return 2.0 * torch.stack([t.cos(), t.sin()], dim=1)


# --- the measurements -------------------------------------------------------------------------


def test_convergence_order_recovers_power_laws():
    assert convergence_order(NFE, FIRST) == pytest.approx(1.0)
    assert convergence_order(NFE, SECOND) == pytest.approx(2.0)
    # the window selects points: a curve that flattens at large NFE keeps order 2 below it
    bent = SECOND[:3] + [SECOND[2]] * 2
    assert convergence_order(NFE, bent, hi=20) == pytest.approx(2.0)
    assert convergence_order(NFE[::-1], SECOND[::-1]) == pytest.approx(2.0)  # order of points is irrelevant


def test_convergence_order_checks_its_input():
    with pytest.raises(ValueError, match="at least two points"):
        convergence_order(NFE, SECOND, lo=70)
    with pytest.raises(ValueError, match="positive"):
        convergence_order(NFE, [0.1, 0.0, 0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="equal length"):
        convergence_order(NFE, SECOND[:3])


def test_nfe_to_reach_interpolates_in_log_log():
    # error = 0.5 / NFE reaches 0.01 at NFE = 50 exactly, between the grid points 40 and 80
    assert nfe_to_reach(NFE, FIRST, 0.01) == pytest.approx(50.0)
    assert nfe_to_reach(NFE, FIRST, 1.0) == 5  # already at the first point
    assert math.isinf(nfe_to_reach(NFE, FIRST, 1e-6))


def test_the_exact_denoiser_gives_euler_order_one_and_heun_order_two():
    """The notebook's measurement on the exact ODE of the eight Gaussians."""
    exact, edm = GaussianMixtureDenoiser(MEANS, STD), EDM(sigma_max=10.0, sigma_min=0.01, sigma_data=1.4)
    x_T = torch.randn(300, 2, generator=_g(0))
    ref = edm_sample(exact, (300, 2), steps=200, solver="heun", formulation=edm, x_T=x_T).x
    curves = {}
    for solver, steps in [("euler", [10, 20, 40, 80]), ("heun", [10, 20, 40])]:
        pts = []
        for n in steps:
            out = edm_sample(exact, (300, 2), steps=n, solver=solver, formulation=edm, x_T=x_T)
            pts.append((out.nfe, (out.x - ref).norm(dim=1).mean().item()))
        curves[solver] = list(zip(*pts, strict=True))
    assert 0.8 <= convergence_order(*curves["euler"], lo=18) <= 1.3
    assert solver_order(*curves["heun"], lo=18).holds
    assert not solver_order(*curves["euler"], lo=18).holds


# --- the claims -------------------------------------------------------------------------------


def test_coverage_advantage_holds_for_clusters_over_a_ring():
    clusters = data.eight_gaussians(2000, generator=_g(0))
    claim = coverage_advantage(clusters, _ring(2000, 1), MEANS, STD)
    assert claim.holds and claim.value > 0.5


def test_coverage_advantage_fails_when_both_models_are_equally_good():
    a, b = data.eight_gaussians(2000, generator=_g(0)), data.eight_gaussians(2000, generator=_g(1))
    claim = coverage_advantage(a, b, MEANS, STD)
    assert not claim.holds and abs(claim.value) < 0.02


def test_coverage_advantage_fails_when_the_better_model_forms_the_ring():
    clusters = data.eight_gaussians(2000, generator=_g(0))
    assert not coverage_advantage(_ring(2000, 1), clusters, MEANS, STD).holds


def test_solver_order_holds_for_a_second_order_curve():
    assert solver_order(NFE, SECOND).holds


def test_solver_order_fails_on_a_first_order_curve():
    claim = solver_order(NFE, FIRST)
    assert not claim.holds and claim.value == pytest.approx(1.0)


def test_order_gain_holds_for_heun_over_euler():
    claim = order_gain(NFE, SECOND, NFE, FIRST)
    assert claim.holds and claim.value == pytest.approx(1.0)


def test_order_gain_fails_on_equal_curves():
    claim = order_gain(NFE, FIRST, NFE, FIRST)
    assert not claim.holds and claim.value == pytest.approx(0.0, abs=1e-12)


def test_fewer_nfe_to_reach_holds_when_the_curve_is_steeper():
    # second order reaches 0.01 at NFE sqrt(2000) = 44.7, first order at 50: ratio 0.89
    assert fewer_nfe_to_reach(NFE, SECOND, NFE, FIRST, bound=0.9).holds
    assert fewer_nfe_to_reach(NFE, [e / 4 for e in SECOND], NFE, FIRST, bound=0.5).holds


def test_fewer_nfe_to_reach_fails_on_equal_curves():
    claim = fewer_nfe_to_reach(NFE, FIRST, NFE, FIRST)
    assert not claim.holds and claim.value == pytest.approx(1.0)


def test_fewer_nfe_to_reach_fails_when_the_solver_never_reaches_the_target():
    never = [0.5] * len(NFE)
    assert not fewer_nfe_to_reach(NFE, never, NFE, FIRST).holds
    # a baseline that never reaches it counts at its largest NFE, so the ratio stays finite
    assert fewer_nfe_to_reach(NFE, FIRST, NFE, never, bound=0.7).value == pytest.approx(50 / 80)


def test_claims_report_numbers_not_arrays():
    claim = fewer_nfe_to_reach(np.array(NFE), np.array(SECOND), NFE, FIRST)
    assert isinstance(claim.value, float)
