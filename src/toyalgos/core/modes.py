"""Train and eval mode: evaluation never changes the caller's mode for good."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def evaluating(model: object) -> Iterator[None]:
    """Run the block in eval mode without gradients, then put every submodule back as it was.

    Samplers, predictors and metrics wrap their forward passes in it, so dropout and
    batch-norm behave as at test time and a model that was training keeps training
    afterwards. ``model`` may be any callable; only an ``nn.Module`` changes mode.
    """
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    was_training = [m.training for m in modules]
    for m in modules:
        m.training = False
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in zip(modules, was_training, strict=True):
            m.training = flag
