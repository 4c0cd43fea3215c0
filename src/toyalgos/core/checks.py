"""The shared input checks: one line at the top of a public function, one clear message.

Every check raises ``TypeError`` when the kind of value is wrong and ``ValueError`` when its
value is, names the argument, says what was expected and shows what was given, and returns
the value (converted where that is the point, e.g. an int to a float) so it can be assigned.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import torch


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an int >= 1 (bools are refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_nonnegative_int(value: object, name: str) -> int:
    """``value`` as an int >= 0 (bools are refused)."""
    return check_int(value, name, 0)


def check_int(value: object, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int inside ``[low, high]`` (either end absent; bools are refused)."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        where = f"in [{low}, {high}]" if low is not None and high is not None else ""
        where = where or (f">= {low}" if low is not None else f"<= {high}" if high is not None else "")
        raise ValueError(f"{name} must be an int {where}".rstrip() + f", got {value!r}")
    return value


def check_number(
    value: object,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float inside ``[low, high]`` (either end open or absent)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {lo}, {hi}, got {value!r}")
    return float(value)


def check_choice(value: Any, name: str, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of [{', '.join(map(repr, choices))}], got {value!r}")
    return value


def check_tensor(
    x: object,
    name: str,
    *,
    dim: int | Sequence[int] | None = None,
    dtype: torch.dtype | str | None = None,
) -> torch.Tensor:
    """``x`` if it is a tensor with ``dim`` dimensions (one of them) and the right dtype.

    ``dtype`` is a ``torch.dtype``, ``'float'`` (any floating dtype) or ``'long'``-like ints.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if x.dim() not in dims:
            want = " or ".join(map(str, dims))
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    if dtype == "float" and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if isinstance(dtype, torch.dtype) and x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got dtype {x.dtype}")
    return x


def check_same_length(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise unless ``a`` and ``b`` have the same first dimension."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of rows, got {a.shape[0]} and {b.shape[0]}"
        )


def check_generator(generator: object) -> torch.Generator | None:
    """``generator`` if it is a ``torch.Generator`` or ``None`` (torch's global generator)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__} "
            "(seed one with torch.Generator().manual_seed(seed))"
        )
    return generator
