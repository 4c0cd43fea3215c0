"""Input checks and the small helpers the language-model modules share."""

from __future__ import annotations

import torch


def check_tokens(x: object, name: str = "x", min_length: int = 1) -> None:
    """Raise unless ``x`` is a LongTensor of token ids of shape ``(N, L)`` with ``L >= min_length``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(x).__name__}")
    if x.dtype != torch.long:
        raise TypeError(f"{name} must hold token ids as torch.long, got dtype {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, L), got shape {tuple(x.shape)}")
    if x.shape[1] < min_length:
        raise ValueError(f"{name} must hold at least {min_length} token(s) per row, got {x.shape[1]}")


def check_positive_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_temperature(temperature: float) -> float:
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 means greedy), got {temperature!r}")
    return float(temperature)


def as_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    """A ``torch.Generator`` as given, or a fresh one seeded with an int, or ``None`` (global RNG)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    raise TypeError(
        f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}"
    )


def gumbel_argmax(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """argmax(logits + temperature * G) with G standard Gumbel noise, in float64.

    For temperature > 0 this draws from softmax(logits / temperature) (the Gumbel-max trick);
    temperature 0 is the plain argmax and draws nothing. LLaDA's ``add_gumbel_noise`` computes
    exp(logits) / (-log U)^temperature, the exponential of the same quantity, so the argmax
    is the same. The uniforms are drawn on the CPU, so a CPU generator works for any device.
    """
    if temperature == 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64).to(logits.device)
    return (logits.double() - temperature * torch.log(-torch.log(u))).argmax(-1)
