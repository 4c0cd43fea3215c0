"""MDLM: masked diffusion as a weighted average of masked-language-model losses (Sahoo et al. 2024).

"Simple and Effective Masked Diffusion Language Models" writes the absorbing forward process as
q(z_t | x) = Cat(alpha_t x + (1 - alpha_t) m) and, with the SUBS parameterisation, the
continuous-time NELBO (Eq. 10-11) as

    L = E_{t, z_t} [ alpha'_t / (1 - alpha_t) sum_l log <x_theta^l(z_t), x^l> ],

a masked-token cross-entropy weighted by -alpha'_t / (1 - alpha_t). With the log-linear
schedule of the reference (``noise_schedule.py``: sigma_bar(t) = -log(1 - (1 - eps) t),
alpha_t = e^{-sigma_bar}) the code's weight dsigma / expm1(sigma) is exactly 1 / t
(``diffusion.py``: ``-log_p_theta * (dsigma / torch.expm1(sigma))``), and a token is masked with
probability (1 - eps) t. LLaDA (``mdm_loss``) masks with probability (1 - eps) t + eps and
weights by its inverse: at eps = 0 (and t drawn on [0, 1], MDLM's ``sampling_eps = 0``) the two
are the same function of the same draws.

SUBS (§3.2.3, ``_subs_parameterization``): the mask token is never predicted (its logit is
-inf: "zero masking probabilities") and visible tokens are copied ("carry-over unmasking").
``SubsParameterization`` wraps any mask predictor so; ``mdlm_loss`` applies it itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core.checks import check_generator, check_nonnegative_int, check_number

from ..checks import check_tokens
from .graphs import DiscreteNoise, LogLinearNoise, check_noise


def subs_logits(logits: torch.Tensor, x_t: torch.Tensor, mask_id: int) -> torch.Tensor:
    """SUBS log-probabilities ``(N, L, V)``: log-softmax without the mask; visible rows one-hot (-inf, 0)."""
    logits = logits.float().masked_fill(F.one_hot(torch.tensor(mask_id), logits.shape[-1]).bool(), -torch.inf)
    log_p = F.log_softmax(logits, dim=-1)
    copy = torch.full_like(log_p, -torch.inf).scatter(-1, x_t[..., None], 0.0)
    return torch.where((x_t == mask_id)[..., None], log_p, copy)


class SubsParameterization(nn.Module):
    """A mask predictor ``net(x_t) -> logits`` under MDLM's SUBS parameterisation (``subs_logits``)."""

    def __init__(self, net: nn.Module, mask_id: int):
        super().__init__()
        self.net = net
        self.mask_id = check_nonnegative_int(mask_id, "mask_id")

    def forward(self, x_t: torch.Tensor) -> torch.Tensor:
        return subs_logits(self.net(x_t), x_t, self.mask_id)


def mdlm_loss(
    model: nn.Module,
    x: torch.Tensor,
    *,
    mask_id: int,
    noise: DiscreteNoise | None = None,
    sampling_eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """MDLM's continuous-time NELBO (Eq. 11) with SUBS, per token: sum over the batch / (N L).

    t = (1 - sampling_eps) u + sampling_eps with u ~ U[0, 1) per sequence (then, from the same
    generator, one uniform per token for the mask, as ``mdm_loss`` draws them); each token is
    masked with probability 1 - e^{-sigma_bar(t)} and its cross-entropy weighted by
    sigma(t) / (e^{sigma_bar(t)} - 1). ``noise`` defaults to ``loglinear_noise(1e-3)``, the
    reference's. With ``noise=loglinear_noise(0)`` and ``sampling_eps=0`` it equals
    ``mdm_loss(SubsParameterization(model, mask_id), x, eps=0)`` on the same generator state.
    """
    check_tokens(x)
    check_nonnegative_int(mask_id, "mask_id")
    noise = LogLinearNoise() if noise is None else check_noise(noise)
    check_number(sampling_eps, "sampling_eps", 0, 1, high_open=True)
    check_generator(generator)
    N = x.shape[0]
    t = (1 - sampling_eps) * torch.rand(N, generator=generator) + sampling_eps  # (N,)
    move_chance = noise.move_chance(t).to(x.device)
    masked = torch.rand(x.shape, generator=generator).to(x.device) < move_chance[:, None]
    x_t = torch.where(masked, mask_id, x)
    sigma, dsigma = noise(t.double())
    weight = (dsigma / torch.expm1(sigma)).float().to(x.device)  # (N,) = 1 / t for the log-linear schedule
    log_p = subs_logits(model(x_t), x_t, mask_id).gather(-1, x[..., None])[..., 0]
    nll = torch.where(masked, -log_p * weight[:, None], torch.zeros_like(log_p))
    return nll.sum() / x.numel()
