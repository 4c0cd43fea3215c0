"""Sample-quality metrics for generated point clouds: sliced Wasserstein distance, MMD, mode
coverage of a mixture, and k-NN precision and recall.

The distances compare two samples; neither is zero for two independent samples of the same
distribution. That "data-vs-data floor" is the yardstick: a generator is as good as the data
itself when its distance to held-out data is near the distance between two data samples.
Distances average over the whole cloud, so they can score a ring as close to eight clusters;
``mode_coverage`` and ``precision_recall`` see the modes. For ODE samplers, ``convergence_order``
and ``nfe_to_reach`` read an error-vs-NFE curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from toyalgos.core.checks import check_generator, check_number, check_positive_int, check_tensor


def _check_samples(x: torch.Tensor, y: torch.Tensor) -> None:
    """Two point clouds of shape (n, d) and (m, d), n, m >= 2."""
    check_tensor(x, "x", dim=2)
    check_tensor(y, "y", dim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"x and y need at least 2 points each, got {len(x)} and {len(y)}")


def _quantiles(sorted_proj: torch.Tensor, k: int) -> torch.Tensor:
    """Empirical quantile function at the ``k`` mid-points (i + 0.5)/k, linear interpolation."""
    n = sorted_proj.shape[0]
    if n == k:
        return sorted_proj
    pos = ((torch.arange(k, dtype=sorted_proj.dtype) + 0.5) / k * n - 0.5).clamp(0, n - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    frac = (pos - lo).unsqueeze(1)
    return sorted_proj[lo] * (1 - frac) + sorted_proj[hi] * frac


def sliced_wasserstein(
    x: torch.Tensor,
    y: torch.Tensor,
    n_projections: int = 512,
    p: int = 2,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sliced p-Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015).

    SW_p(x, y) = ( E_theta W_p^p(theta . x, theta . y) )^(1/p), theta uniform on the unit
    sphere, estimated with ``n_projections`` random directions. In 1-D, W_p is the L_p
    distance between quantile functions: sort both projections (interpolating quantiles when
    the sample sizes differ). Pass the same seeded ``generator`` state to compare several
    samples on the same directions.
    """
    _check_samples(x, y)
    check_positive_int(n_projections, "n_projections")
    check_generator(generator)
    x, y = x.float(), y.float()
    theta = torch.randn(x.shape[1], n_projections, generator=generator).to(x.device)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = torch.sort(x @ theta, dim=0).values
    py = torch.sort(y.to(x.device) @ theta, dim=0).values
    k = max(len(px), len(py))
    diff = _quantiles(px, k) - _quantiles(py, k)
    return diff.abs().pow(p).mean().pow(1.0 / p)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b).pow(2)


def mmd_rbf(
    x: torch.Tensor, y: torch.Tensor, bandwidth: float | Sequence[float] | None = None
) -> torch.Tensor:
    """Unbiased estimate of MMD^2 with an RBF kernel (Gretton et al. 2012, Eq. 3).

    k(a, b) = exp(-||a - b||^2 / (2 h^2)), summed over the given bandwidths h. With
    ``bandwidth=None``, h is the median pairwise distance of the pooled sample (the median
    heuristic), computed on at most the first 1000 points of each sample to keep it cheap.
    The unbiased estimate can be slightly negative when x and y share a law. The median
    heuristic sets h to the scale of the whole cloud, where it cannot see modes: on eight
    Gaussians of std 0.1 on a circle of radius 2, a uniform ring scores like the data (both about
    0); at h = 0.3, the modes' scale, the ring scores 0.05 against the data's 0.0002.
    """
    _check_samples(x, y)
    x, y = x.float(), y.to(x.device).float()
    dxx, dyy, dxy = _sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y)
    if bandwidth is None:
        pooled = torch.cat([x[:1000], y[:1000]])
        d = torch.pdist(pooled)
        bandwidths = [d[d > 0].median().item()]
    else:
        bandwidths = [bandwidth] if isinstance(bandwidth, (int, float)) else list(bandwidth)
        bandwidths = [check_number(h, "bandwidth", 0, low_open=True) for h in bandwidths]
    n, m = len(x), len(y)
    total = x.new_zeros(())
    for h in bandwidths:
        kxx, kyy, kxy = (torch.exp(-d / (2 * h * h)) for d in (dxx, dyy, dxy))
        total = total + (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        total = total + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        total = total - 2 * kxy.mean()
    return total


class ModeCoverage(NamedTuple):
    """What ``mode_coverage`` returns.

    ``within``: share of samples within k std of some component's mean; ``tv``: total-variation
    distance between the components' shares of those samples and the weights; ``shares``: the
    shares, shape ``(K,)``.
    """

    within: float
    tv: float
    shares: torch.Tensor


def mode_coverage(
    samples: torch.Tensor,
    means: torch.Tensor,
    std: float,
    k: float = 3.0,
    weights: torch.Tensor | None = None,
) -> ModeCoverage:
    """How well samples cover the modes of a Gaussian mixture with known means and one ``std``.

    A sample is near a mode when its distance to the nearest mean is at most ``k * std``; it then
    counts for that mode. Exact samples of an isotropic 2-D mixture are near a mode with
    probability 1 - exp(-k^2 / 2) (0.989 for k = 3); a ring through the modes, or one wide
    Gaussian with the mixture's mean and covariance, fall far below. A model that drops a mode
    keeps ``within`` but moves the shares: TV = 0.5 sum_j |share_j - w_j| is 1/8 for one of eight
    equal modes missing.
    """
    check_tensor(samples, "samples", dim=2, dtype="float")
    check_tensor(means, "means", dim=2, dtype="float")
    check_number(std, "std", 0, low_open=True)
    check_number(k, "k", 0, low_open=True)
    w = torch.full((len(means),), 1 / len(means)) if weights is None else weights / weights.sum()
    dist, nearest = torch.cdist(samples.float(), means.to(samples).float()).min(dim=1)  # (n,)
    near = dist <= k * std
    counts = torch.bincount(nearest[near], minlength=len(means)).double()
    shares = counts / counts.sum().clamp(min=1)
    tv = 0.5 * (shares - w.double()).abs().sum().item()
    return ModeCoverage(near.double().mean().item(), tv, shares.float())


class PrecisionRecall(NamedTuple):
    """What ``precision_recall`` returns: both shares lie in [0, 1]."""

    precision: float
    recall: float


def _knn_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point of ``x`` to its k-th nearest other point of ``x``."""
    return torch.cdist(x, x).kthvalue(k + 1, dim=1).values  # the 1st nearest is the point itself


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Share of ``points`` inside at least one ball (centre, radius)."""
    return (torch.cdist(points, centres) <= radii).any(dim=1).double().mean()


def precision_recall(samples: torch.Tensor, data: torch.Tensor, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019, Eq. 1-2) with k-NN balls.

    Each set's manifold is the union of balls around its points, of radius the distance to the
    point's k-th nearest neighbour in the same set. Precision: the share of ``samples`` inside
    the data's manifold (are samples realistic?). Recall: the share of ``data`` inside the
    samples' manifold (is every part of the data produced?). A dropped mode lowers recall; a
    ring between the modes lowers precision.
    """
    _check_samples(samples, data)
    check_positive_int(k, "k")
    if k >= min(len(samples), len(data)):
        raise ValueError(f"k must be smaller than both sample sizes, got k={k}")
    x, y = samples.float(), data.to(samples.device).float()
    precision = _covered(x, y, _knn_radius(y, k)).item()
    recall = _covered(y, x, _knn_radius(x, k)).item()
    return PrecisionRecall(precision, recall)


# --- ODE solvers: error against the number of network evaluations ---------------------------


def _error_curve(nfe: Sequence[float], errors: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(nfe, errors)`` as float64 tensors sorted by NFE; both positive, same length, at least two."""
    n, e = torch.as_tensor(nfe, dtype=torch.float64), torch.as_tensor(errors, dtype=torch.float64)
    if n.dim() != 1 or n.shape != e.shape or len(n) < 2:
        shapes = f"{tuple(n.shape)} and {tuple(e.shape)}"
        raise ValueError(f"need two 1-D sequences of equal length >= 2, got {shapes}")
    if (n <= 0).any() or (e <= 0).any():
        raise ValueError("NFE and errors must be positive")
    order = n.argsort()
    return n[order], e[order]


def convergence_order(
    nfe: Sequence[float], errors: Sequence[float], *, lo: float = 0.0, hi: float = math.inf
) -> float:
    """The order p of a solver whose error falls like NFE^-p: minus the least-squares slope of
    log(error) against log(NFE), over the points with ``lo <= NFE <= hi``.

    Euler's method is first order (p = 1) and Heun's second order (p = 2) once the steps are
    small (Karras et al. 2022, Sec. 3).
    """
    n, e = _error_curve(nfe, errors)
    keep = (n >= lo) & (n <= hi)
    if keep.sum() < 2:
        raise ValueError(f"need at least two points with {lo} <= NFE <= {hi}, got {int(keep.sum())}")
    x, y = n[keep].log(), e[keep].log()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return -slope.item()


def nfe_to_reach(nfe: Sequence[float], errors: Sequence[float], target: float) -> float:
    """The NFE at which an error curve first falls to ``target``, interpolated linearly in log-log.

    ``inf`` when no measured point reaches it.
    """
    check_number(target, "target", 0, low_open=True)
    n, e = _error_curve(nfe, errors)
    if e[0] <= target:
        return n[0].item()
    for i in range(1, len(n)):
        if e[i] <= target:
            frac = (e[i - 1].log() - math.log(target)) / (e[i - 1].log() - e[i].log())
            return torch.exp(n[i - 1].log() + frac * (n[i].log() - n[i - 1].log())).item()
    return math.inf
