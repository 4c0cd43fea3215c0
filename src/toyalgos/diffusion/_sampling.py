"""What the DDPM, DDIM and EDM samplers share: where they start.

Every one of them starts from Gaussian noise of the batch shape asked for, on the model's
device, or from a given start ``x_T`` (to compare samplers from the same noise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from toyalgos.core import model_device
from toyalgos.core.checks import check_generator

from ._checks import check_data_shape


def start_noise(
    model: Callable,
    shape: Sequence[int],
    x_T: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x_T ~ N(0, I) of batch shape ``shape`` (drawn on the CPU), or the given ``x_T``, on ``model``'s device.

    ``shape``'s per-sample part is checked against ``model.data_shape`` when the model has one.
    """
    check_generator(generator)
    shape = tuple(shape)
    check_data_shape(shape, getattr(model, "data_shape", None), "shape")
    if x_T is None:
        x_T = torch.randn(shape, generator=generator)
    elif tuple(x_T.shape) != shape:
        raise ValueError(f"x_T must have shape {shape}, got {tuple(x_T.shape)}")
    return x_T.to(model_device(model))
