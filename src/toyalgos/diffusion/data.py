"""Toy data for the diffusion and flow notebooks: 2-D point clouds and 8x8 digits.

Every generator takes ``n`` and a keyword-only ``generator: torch.Generator | None`` and
returns a float32 tensor of shape ``(n, 2)``, scaled to roughly unit spread around the origin
(the scale the forward processes assume: x_T ~ N(0, I) should swamp the data, not the other
way round). ``gaussian_mixture`` lives in ``mixture.py`` beside its exact denoiser.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from toyalgos.core.checks import check_choice, check_generator, check_positive_int

from .mixture import gaussian_mixture

__all__ = [
    "DATASETS_2D",
    "eight_gaussian_means",
    "eight_gaussians",
    "gaussian_mixture",
    "load_digits",
    "sample_2d",
    "swiss_roll",
    "two_moons",
]


def eight_gaussian_means(radius: float = 2.0) -> torch.Tensor:
    """The eight modes of ``eight_gaussians``: evenly spaced on a circle, shape ``(8, 2)``."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def eight_gaussians(
    n: int, radius: float = 2.0, std: float = 0.1, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Eight equal Gaussians on a circle of ``radius``: the classic multimodal 2-D test."""
    return gaussian_mixture(n, eight_gaussian_means(radius), std, generator=generator)


def two_moons(n: int, noise: float = 0.05, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Two interleaving half circles (scikit-learn's ``make_moons`` shape), centred and scaled by 1.3."""
    check_positive_int(n, "n")
    check_generator(generator)
    upper = torch.rand(n, generator=generator) < 0.5
    theta = torch.rand(n, generator=generator) * math.pi
    x = torch.where(upper, torch.cos(theta), 1 - torch.cos(theta))
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    pts = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.3
    return pts + noise * torch.randn(n, 2, generator=generator)


def swiss_roll(n: int, noise: float = 0.05, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A 2-D Swiss roll (t cos t, t sin t), t uniform in [1.5 pi, 4.5 pi], scaled by 1/5 and centred."""
    check_positive_int(n, "n")
    check_generator(generator)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    # E[t cos t] = 6 pi / (3 pi) = 2 and E[t sin t] = 2 / (3 pi) over that range.
    mean = torch.tensor([2.0, 2.0 / (3 * math.pi)])
    pts = (torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) - mean) / 5
    return pts + noise * torch.randn(n, 2, generator=generator)


DATASETS_2D: dict[str, Callable[..., torch.Tensor]] = {
    "moons": two_moons,
    "swiss_roll": swiss_roll,
    "8gaussians": eight_gaussians,
}


def sample_2d(name: str, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points of the named 2-D data set (``'moons'``, ``'swiss_roll'``, ``'8gaussians'``)."""
    check_choice(name, "name", DATASETS_2D)
    return DATASETS_2D[name](n, generator=generator)


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits (1797 images, no download) as 64-dim vectors in [-1, 1].

    Returns ``(x, y)``: ``x`` float32 of shape ``(1797, 64)`` (pixel intensities 0..16 mapped
    linearly to [-1, 1]), ``y`` the integer labels 0..9.
    """
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 8.0 - 1.0
    return x, torch.as_tensor(bunch.target, dtype=torch.long)
