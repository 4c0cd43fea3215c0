"""The diffusion family's own checks, built on ``toyalgos.core.checks``: data shapes and noise levels.

Each raises ``ValueError`` with the argument's name, what was expected and what was given, so
that the samplers and losses validate their input in one line and show the algorithm below it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_data_shape(
    shape: Sequence[int], expected: Sequence[int] | None, what: str, owner: str = "model"
) -> None:
    """Raise if a batch shape's per-sample part is not ``expected`` (skipped when that is unknown)."""
    if len(shape) < 1:
        raise ValueError(f"{what} must have a batch dimension, got shape {tuple(shape)}")
    if expected is not None and tuple(shape[1:]) != tuple(expected):
        got = tuple(shape[1:])
        raise ValueError(f"{what} has per-sample shape {got}, the {owner} expects {tuple(expected)}")


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise unless ``a`` and ``b`` (a coupled pair, row by row) have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_sigma(sigma: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Noise level(s) as a float64 column broadcastable against ``x``: a scalar, or one per sample."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64).to(x.device)
    if sigma.dim() == 0:
        sigma = sigma.expand(x.shape[0])
    if sigma.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
    return sigma.reshape(-1, *([1] * (x.dim() - 1)))
