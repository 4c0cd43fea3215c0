"""The diffusion notebooks' claims, each measured from samples and a stated bound.

Sample quality on 2-D toy data is judged by what a distance averaged over the whole cloud
misses: whether the samples sit on the modes, whether every mode gets its share, whether the
samples lie on the data's manifold (precision) and cover all of it (recall). A uniform ring
through eight Gaussians, one Gaussian with the data's mean and covariance, and a mixture with
one mode dropped each fail at least one of them; two samples of the data pass all four.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from toyalgos.core import Samples
from toyalgos.core.claims import Claim, at_least, at_most

from ._checks import check_same_shape
from .flow import Velocity, straightness, transport_cost
from .metrics import convergence_order, mode_coverage, nfe_to_reach, precision_recall


def modes_covered(
    samples: torch.Tensor, means: torch.Tensor, std: float, *, k: float = 3.0, bound: float = 0.9
) -> Claim:
    """Share of samples within ``k`` std of a mixture component: at least ``bound``.

    Exact samples reach 1 - exp(-k^2/2) = 0.989 at k = 3; a ring through the modes 0.39.
    """
    within = mode_coverage(samples, means, std, k=k).within
    return at_least(f"share of samples within {k:g} std of a mode", within, bound)


def mode_shares_match(
    samples: torch.Tensor,
    means: torch.Tensor,
    std: float,
    *,
    weights: torch.Tensor | None = None,
    bound: float = 0.05,
) -> Claim:
    """Total-variation distance of the modes' shares from their weights: at most ``bound``.

    A model that drops one of eight equal modes scores TV = 1/8.
    """
    tv = mode_coverage(samples, means, std, weights=weights).tv
    return at_most("TV distance of the modes' shares from their weights", tv, bound)


def sample_precision(samples: torch.Tensor, data: torch.Tensor, *, k: int = 3, bound: float = 0.9) -> Claim:
    """Share of samples on the data's k-NN manifold (Kynkaanniemi et al. 2019): at least ``bound``."""
    precision = precision_recall(samples, data, k=k).precision
    return at_least(f"precision (samples on the data's {k}-NN manifold)", precision, bound)


def sample_recall(samples: torch.Tensor, data: torch.Tensor, *, k: int = 3, bound: float = 0.9) -> Claim:
    """Share of the data on the samples' k-NN manifold (Kynkaanniemi et al. 2019): at least ``bound``."""
    recall = precision_recall(samples, data, k=k).recall
    return at_least(f"recall (data on the samples' {k}-NN manifold)", recall, bound)


# --- DDPM and DDIM (10_ddpm) ---------------------------------------------------------------


def forward_moments_match(
    x0: torch.Tensor, x_t: torch.Tensor, alpha_bar: float, *, bound: float = 4.0
) -> Claim:
    """Largest |z-score| of x_t's sample mean and variance under q(x_t | x_0): at most ``bound``.

    DDPM Eq. 4: given the points x_0 (n, d), x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps has
    mean sqrt(abar) mean(x_0), standard error sqrt((1 - abar) / n), and variance
    abar var(x_0) + 1 - abar, standard error sqrt((2 (1 - abar)^2 + 4 abar (1 - abar) var(x_0)) / n).
    A chain that forgets to shrink by sqrt(1 - beta_t) lands many standard errors away.
    """
    abar, n = float(alpha_bar), x0.shape[0]
    m0, v0 = x0.double().mean(0), x0.double().var(0)
    z_mean = (x_t.double().mean(0) - abar**0.5 * m0) / ((1 - abar) / n) ** 0.5
    var_se = ((2 * (1 - abar) ** 2 + 4 * abar * (1 - abar) * v0) / n).sqrt()
    z_var = (x_t.double().var(0) - (abar * v0 + 1 - abar)) / var_se
    z = torch.cat([z_mean, z_var]).abs().max().item()
    return at_most("largest |z| of x_t's mean and variance against Eq. 4", z, bound)


def speedup_at_equal_quality(
    fast: Samples,
    slow: Samples,
    means: torch.Tensor,
    std: float,
    *,
    tolerance: float = 0.03,
    bound: float = 10.0,
) -> Claim:
    """Network calls saved, ``slow.nfe / fast.nfe``, counted only at equal sample quality: at least ``bound``.

    Quality is read on the modes of a mixture: the fast sampler's share within 3 std of a mode
    may fall at most ``tolerance`` below the slow one's, and its TV distance of the modes' shares
    rise at most ``tolerance`` above. Otherwise the speed-up buys nothing and counts as 0; equal
    step counts score 1.
    """
    q_fast, q_slow = mode_coverage(fast.x, means, std), mode_coverage(slow.x, means, std)
    as_good = q_fast.within >= q_slow.within - tolerance and q_fast.tv <= q_slow.tv + tolerance
    speedup = slow.nfe / fast.nfe if as_good else 0.0
    statement = (
        f"NFE speed-up at equal quality ({fast.nfe} vs {slow.nfe} calls; within 3 std "
        f"{q_fast.within:.3f} vs {q_slow.within:.3f}, TV {q_fast.tv:.3f} vs {q_slow.tv:.3f})"
    )
    return at_least(statement, speedup, bound)


def confidence_above_noise(
    proba_samples: torch.Tensor,
    proba_real: torch.Tensor,
    proba_noise: torch.Tensor,
    *,
    bound: float = 0.5,
) -> Claim:
    """Mean top-class probability of samples on the scale noise = 0, real data = 1: at least ``bound``.

    Each argument holds a classifier's class probabilities, one row per image. A classifier
    trained on real data is confident even on noise (a linear one, far from the data), so its
    raw confidence proves little; placed between its value on uniform noise and on held-out
    real images, it says how data-like the samples are. Noise itself scores 0.
    """
    top = [
        torch.as_tensor(p).double().max(dim=1).values.mean().item()
        for p in (proba_samples, proba_real, proba_noise)
    ]
    scaled = (top[0] - top[2]) / (top[1] - top[2])
    return at_least("classifier confidence on samples, from noise (0) to real data (1)", scaled, bound)


def class_shares_match(predicted: torch.Tensor, n_classes: int, *, bound: float = 0.15) -> Claim:
    """TV distance of the predicted classes' shares from uniform: at most ``bound``.

    ``predicted`` holds one class label per sample. A model collapsed onto one class scores
    1 - 1 / n_classes (0.9 for ten digits).
    """
    counts = torch.bincount(torch.as_tensor(predicted).long().flatten(), minlength=n_classes).double()
    tv = 0.5 * (counts / counts.sum() - 1 / n_classes).abs().sum().item()
    return at_most("TV distance of the predicted classes' shares from uniform", tv, bound)


# --- Rectified flow (12_rectified_flow) ----------------------------------------------------


def coupling_cost_reduced(
    z0: torch.Tensor,
    z1: torch.Tensor,
    x1: torch.Tensor,
    means: torch.Tensor,
    std: float,
    *,
    coverage: float = 0.9,
    tv: float = 0.05,
    bound: float = 0.5,
) -> Claim:
    """Transport cost of a flow's coupling (Z_0, Z_1) over independent pairs (Z_0, X_1): at most ``bound``.

    Liu et al., Theorem 3.5: rectifying never raises E c(Z_1 - Z_0), so the ratio is <= 1. It
    compares couplings of the same two laws only if Z_1 ~ pi_1: a flow that moves nothing
    (Z_1 = Z_0) costs 0 and couples nothing. So Z_1 must land on the target mixture's modes
    (``means``, ``std``: share within 3 std >= ``coverage``, TV of the shares <= ``tv``); if not,
    the value is inf. ``x1`` is an independent sample of pi_1 the size of ``z0``.
    """
    modes = mode_coverage(z1, means, std)
    on_target = modes.within >= coverage and modes.tv <= tv
    ratio = transport_cost(z0, z1) / transport_cost(z0, x1) if on_target else math.inf
    statement = (
        f"transport cost of the flow's coupling / independent pairs (Z1 on pi1's modes: "
        f"within 3 std {modes.within:.3f}, TV {modes.tv:.3f})"
    )
    return at_most(statement, ratio, bound)


def reflow_straightens(
    flow: Velocity, reflowed: Velocity, z0: torch.Tensor, *, steps: int = 100, bound: float = 0.05
) -> Claim:
    """Straightness S(reflowed) / S(flow) (Liu et al., Def. 3.6, Euler paths from ``z0``): at most ``bound``.

    A reflow that trained nothing (a copy of ``flow``) scores 1.
    """
    ratio = straightness(reflowed, z0, steps=steps) / straightness(flow, z0, steps=steps)
    return at_most("straightness S after reflow / before", ratio, bound)


def modes_missed(
    samples: torch.Tensor, means: torch.Tensor, std: float, *, k: float = 3.0, bound: float = 0.1
) -> Claim:
    """Share of samples within ``k`` std of a mixture component: at most ``bound`` (a sampler that fails).

    The measured lesson of one Euler step of a curved flow: its samples land between the modes.
    """
    within = mode_coverage(samples, means, std, k=k).within
    return at_most(f"share of samples within {k:g} std of a mode", within, bound)


def samples_agree(x: torch.Tensor, y: torch.Tensor, *, bound: float = 1e-4) -> Claim:
    """Largest coordinate difference between two samplers' outputs from the same start: at most ``bound``."""
    check_same_shape("x", x, "y", y)
    gap = (x.double() - y.double()).abs().max().item()
    return at_most("largest |difference| between the two samplers' outputs", gap, bound)


# --- The EDM frame: formulations and solvers (11_edm_unified) ------------------------------


def coverage_advantage(
    samples: torch.Tensor,
    baseline: torch.Tensor,
    means: torch.Tensor,
    std: float,
    *,
    k: float = 3.0,
    bound: float = 0.2,
) -> Claim:
    """Share of ``samples`` within ``k`` std of a mode minus ``baseline``'s share: at least ``bound``.

    "Model A recovers the modes, model B (same network, same budget) does not." Two equally
    good models score about 0.
    """
    gain = mode_coverage(samples, means, std, k=k).within - mode_coverage(baseline, means, std, k=k).within
    return at_least(f"share within {k:g} std of a mode, minus the baseline's", gain, bound)


def solver_order(
    nfe: Sequence[float],
    errors: Sequence[float],
    *,
    lo: float = 0.0,
    hi: float = math.inf,
    bound: float = 1.6,
) -> Claim:
    """Observed order of convergence p (error ~ NFE^-p, fitted for ``lo <= NFE <= hi``): at least ``bound``.

    Heun's method is second order; a first-order curve (Euler's) scores about 1.
    """
    p = convergence_order(nfe, errors, lo=lo, hi=hi)
    return at_least("order of convergence p, error ~ NFE^-p", p, bound)


def order_gain(
    nfe: Sequence[float],
    errors: Sequence[float],
    baseline_nfe: Sequence[float],
    baseline_errors: Sequence[float],
    *,
    lo: float = 0.0,
    hi: float = math.inf,
    bound: float = 0.7,
) -> Claim:
    """How much higher a solver's order of convergence is than the baseline's: at least ``bound``.

    Two solvers of the same order (the same curve) score 0.
    """
    gain = convergence_order(nfe, errors, lo=lo, hi=hi) - convergence_order(
        baseline_nfe, baseline_errors, lo=lo, hi=hi
    )
    return at_least("order of convergence minus the baseline's", gain, bound)


def fewer_nfe_to_reach(
    nfe: Sequence[float],
    errors: Sequence[float],
    baseline_nfe: Sequence[float],
    baseline_errors: Sequence[float],
    *,
    target: float = 0.01,
    bound: float = 0.7,
) -> Claim:
    """NFE a solver needs to bring its error to ``target``, over the baseline's NFE: at most ``bound``.

    Each NFE is read off its error curve (log-log interpolation). A solver that never reaches
    the target scores inf; a baseline that never does counts at its largest measured NFE (so
    the ratio can only be overstated). Equal curves score 1.
    """
    n = nfe_to_reach(nfe, errors, target)
    n_base = nfe_to_reach(baseline_nfe, baseline_errors, target)
    if math.isinf(n_base):
        n_base = float(max(baseline_nfe))
    statement = f"NFE to reach error {target:g}, over the baseline's ({n:.0f} vs {n_base:.0f})"
    return at_most(statement, n / n_base, bound)
