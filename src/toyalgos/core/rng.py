"""Randomness: every random function takes ``generator: torch.Generator | None``.

``None`` means torch's global generator (which ``seed_everything`` seeds). Code that needs
NumPy's random numbers derives a local NumPy generator from the torch one, so one seed
still fixes everything and NumPy's global state is never touched.
"""

from __future__ import annotations

import numpy as np
import torch

from .checks import check_generator


def numpy_rng(generator: torch.Generator | None = None) -> np.random.Generator:
    """A NumPy generator seeded by one draw from ``generator`` (torch's global one if None)."""
    seed = torch.randint(2**62, (1,), generator=check_generator(generator)).item()
    return np.random.default_rng(seed)
