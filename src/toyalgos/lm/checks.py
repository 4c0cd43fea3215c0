"""The language-model input check, built on ``toyalgos.core.checks``: a batch of token ids."""

from __future__ import annotations

import torch

from toyalgos.core.checks import check_tensor


def check_tokens(x: object, name: str = "x", min_length: int = 1) -> torch.Tensor:
    """``x`` if it is a LongTensor of token ids of shape ``(N, L)`` with ``L >= min_length``."""
    check_tensor(x, name, dtype=torch.long)
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, L), got shape {tuple(x.shape)}")
    if x.shape[1] < min_length:
        raise ValueError(f"{name} must hold at least {min_length} token(s) per row, got {x.shape[1]}")
    return x
