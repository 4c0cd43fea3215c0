"""The scaling-law claims hold on a clean power law and fail each known-bad case: a curve with no
minimum, the largest fitted budget's optimum reused, the smallest budget's loss reused, a = 1
or a = 0, and the same sweep at the paper's budgets."""

import numpy as np
import pytest

from toyalgos.lm.claims import (
    compute_within,
    exponent_within,
    isoflop_minima_interior,
    loss_predicted,
    optimum_predicted,
)
from toyalgos.lm.scaling import fit_power_law, parabola_vertex

BUDGETS = np.array([1e9, 3e9, 1e10, 3e10])


def curve(budget, M, a=0.52):
    """A synthetic IsoFLOP curve: a parabola in ln M around M_opt = 0.2 C^a, lower for larger C."""
    return 3.0 * budget**-0.02 + 0.3 * (np.log(M) - np.log(0.2 * budget**a)) ** 2


def vertices(widen=1.0):
    out = []
    for c in BUDGETS:
        M = 0.2 * c**0.52 * np.array([0.4, 1.0, 2.5]) * widen
        out.append(parabola_vertex(M, curve(c, M)))
    return out


def test_isoflop_minima_interior_fails_on_a_curve_without_minimum():
    assert isoflop_minima_interior(vertices()).holds
    # widths all 30 x too small for the budget: the loss only falls with M
    bad = vertices()[:3] + [vertices(widen=1 / 30)[3]]
    claim = isoflop_minima_interior(bad)
    assert not claim.holds and claim.value == 0.75


def test_optimum_predicted_fails_on_the_largest_fitted_optimum():
    v = vertices()
    fit = fit_power_law(BUDGETS[:3], [x.M for x in v[:3]])
    assert optimum_predicted(fit.predict(BUDGETS[3]), v[3].M).holds
    assert not optimum_predicted(v[2].M, v[3].M).holds  # no scaling law: 3^0.52 = 1.77 off
    with pytest.raises(ValueError, match="positive"):
        optimum_predicted(0.0, 1.0)


def test_loss_predicted_fails_on_the_smallest_budgets_loss():
    v = vertices()
    fit = fit_power_law(BUDGETS[:3], [x.loss for x in v[:3]])
    assert loss_predicted(fit.predict(BUDGETS[3]), v[3].loss).holds
    assert not loss_predicted(v[0].loss, v[3].loss, bound=0.02).holds


def test_exponent_within_fails_at_all_model_or_all_data():
    v = vertices()
    assert exponent_within(fit_power_law(BUDGETS, [x.M for x in v]).a).holds
    assert not exponent_within(1.0).holds  # every extra FLOP into the model
    assert not exponent_within(0.0).holds  # every extra FLOP into data
    assert not exponent_within(0.8).holds and not exponent_within(0.3).holds


def test_compute_within_fails_at_the_papers_budgets():
    assert compute_within([1e9, 3e9, 1e10] * 3 + [3e10] * 3).holds
    assert not compute_within([1e17, 3e17, 1e18] * 3 + [3e18] * 3).holds
