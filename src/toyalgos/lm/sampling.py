"""Drawing a token from logits, shared by the autoregressive and the diffusion samplers."""

from __future__ import annotations

import torch

from toyalgos.core.checks import check_generator


def gumbel_argmax(
    logits: torch.Tensor, temperature: float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """argmax(logits + temperature * G) with G standard Gumbel noise, in float64.

    For temperature > 0 this draws from softmax(logits / temperature) (the Gumbel-max trick);
    temperature 0 is the plain argmax and draws nothing. LLaDA's ``add_gumbel_noise`` computes
    exp(logits) / (-log U)^temperature, the exponential of the same quantity, so the argmax
    is the same. The uniforms are drawn on the CPU, so a CPU generator works for any device.
    """
    check_generator(generator)
    if temperature == 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64).to(logits.device)
    return (logits.double() - temperature * torch.log(-torch.log(u))).argmax(-1)
