"""Seeding and devices: the same seed must give the same numbers."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python's ``random``, NumPy and torch, and return a fresh torch generator.

    With ``deterministic=True`` torch is also asked to use deterministic kernels
    (``torch.use_deterministic_algorithms(True, warn_only=True)``), so a rerun with the
    same seed on the same machine reproduces every number. The returned generator is
    seeded with ``seed`` too: pass it to functions that take ``generator=``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds the legacy global state notebooks may use
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        # cuBLAS needs this to be deterministic on CUDA; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed)


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``'auto'`` to CUDA when available, else CPU; check anything else exists."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available")
    return resolved


def model_device(model: Callable) -> torch.device:
    """The device of ``model``'s first parameter; CPU for a parameter-free module or a plain function."""
    param = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    return param.device if param is not None else torch.device("cpu")
