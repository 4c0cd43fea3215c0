"""The result types every family shares: what a sampler returns and what a loss returns.

A function's return type never depends on a flag: a sampler always returns ``Samples``,
whose ``trajectory`` is ``None`` unless it was asked for; a loss always returns a scalar
tensor, or always a ``Loss`` when it has named terms worth watching.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Samples(NamedTuple):
    """What every sampler returns.

    ``x``: the samples (continuous values or token ids); ``nfe``: the number of network
    evaluations used; ``trajectory``: the states along the way, stacked on a first axis of
    ``steps + 1`` (start first), or ``None`` when the sampler was not asked to keep it.
    """

    x: torch.Tensor
    nfe: int
    trajectory: torch.Tensor | None = None


class Loss(NamedTuple):
    """A loss with named terms: ``total`` is what is minimised; ``terms`` are its parts."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class History(NamedTuple):
    """What ``train`` returns: the loss at every step and, for a ``Loss``, every term's."""

    loss: np.ndarray
    terms: dict[str, np.ndarray]
