"""The one shape check the diffusion and flow samplers share."""

from __future__ import annotations

from collections.abc import Sequence


def check_data_shape(
    shape: Sequence[int], expected: Sequence[int] | None, what: str, owner: str = "model"
) -> None:
    """Raise if a batch shape's per-sample part is not ``expected`` (skipped when that is unknown)."""
    if expected is not None and tuple(shape[1:]) != tuple(expected):
        got = tuple(shape[1:])
        raise ValueError(f"{what} has per-sample shape {got}, the {owner} expects {tuple(expected)}")
