"""The diffusion notebooks' claims, each measured from samples and a stated bound.

Sample quality on 2-D toy data is judged by what a distance averaged over the whole cloud
misses: whether the samples sit on the modes, whether every mode gets its share, whether the
samples lie on the data's manifold (precision) and cover all of it (recall). A uniform ring
through eight Gaussians, one Gaussian with the data's mean and covariance, and a mixture with
one mode dropped each fail at least one of them; two samples of the data pass all four.
"""

from __future__ import annotations

import torch

from toyalgos.core.claims import Claim, at_least, at_most

from .metrics import mode_coverage, precision_recall


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
