"""The DDPM forward process: noise schedules and q(x_t | x_0) in closed form.

Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models", arXiv:2006.11239, §2;
cosine schedule from Nichol & Dhariwal 2021, arXiv:2102.09672, Eq. 17.

Indexing: the paper counts steps t = 1..T; tensors here are 0-based, so ``betas[k]`` is
beta_{k+1} and a timestep tensor holds k = t - 1 in ``[0, T)`` (the convention of diffusers
and of most code). ``alphas_cumprod[k]`` is alpha-bar_{k+1} = prod_{s <= k+1} (1 - beta_s).
"""

from __future__ import annotations

import math

import torch

from toyalgos.core.checks import check_number, check_positive_int


class NoiseSchedule:
    """A variance schedule beta_1..beta_T and the quantities the DDPM equations use.

    Attributes (float32 tensors of shape ``(T,)``, computed in float64 first):
        betas: beta_t.
        alphas: alpha_t = 1 - beta_t.
        alphas_cumprod: alpha-bar_t = prod_{s<=t} alpha_s (Eq. 4's signal level).
        alphas_cumprod_prev: alpha-bar_{t-1}, with alpha-bar_0 = 1.
        posterior_variance: beta-tilde_t = (1 - alpha-bar_{t-1}) / (1 - alpha-bar_t) beta_t (Eq. 7).
        posterior_mean_coef_x0, posterior_mean_coef_xt: the two weights of Eq. 7's mean.

    Everything is derived in float64 and then stored as float32: near t = 1, 1 - alpha-bar_t is
    about 1e-4 and float32 arithmetic on it would lose three digits.
    """

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or betas.numel() < 1:
            raise ValueError(
                f"betas must be a 1-D tensor with T >= 1 entries, got shape {tuple(betas.shape)}"
            )
        if not bool(((betas > 0) & (betas < 1)).all()):
            bad = betas[(betas <= 0) | (betas >= 1)][0].item()
            raise ValueError(f"every beta must lie in the open interval (0, 1), got {bad}")
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        self.betas = betas.float()
        self.alphas = alphas.float()
        self.alphas_cumprod = alphas_cumprod.float()
        self.alphas_cumprod_prev = prev.float()
        self.posterior_variance = ((1.0 - prev) / (1.0 - alphas_cumprod) * betas).float()
        self.posterior_mean_coef_x0 = (prev.sqrt() * betas / (1.0 - alphas_cumprod)).float()
        self.posterior_mean_coef_xt = (alphas.sqrt() * (1.0 - prev) / (1.0 - alphas_cumprod)).float()
        # x0 = x_t / sqrt(abar) - sqrt(1/abar - 1) eps, the form the reference code uses.
        self.sqrt_recip_alphas_cumprod = alphas_cumprod.rsqrt().float()
        self.sqrt_recipm1_alphas_cumprod = (1.0 / alphas_cumprod - 1.0).sqrt().float()

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.betas.numel()

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """DDPM's schedule: beta_t rising linearly from ``beta_start`` to ``beta_end`` (§4)."""
        check_positive_int(T, "T")
        check_number(beta_start, "beta_start", 0, 1, low_open=True, high_open=True)
        check_number(beta_end, "beta_end", beta_start, 1, high_open=True)  # a non-decreasing range
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """Nichol & Dhariwal's schedule: alpha-bar(t) = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2).

        beta_t = min(1 - alpha-bar_t / alpha-bar_{t-1}, ``max_beta``) (their Eq. 17 and the clip
        that keeps the last step from being singular).
        """
        check_positive_int(T, "T")
        check_number(max_beta, "max_beta", 0, 1, low_open=True, high_open=True)
        check_number(s, "s", 0)
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = torch.clamp(1 - f[1:] / f[:-1], max=max_beta)
        return cls(betas)

    def __repr__(self) -> str:
        b = self.betas
        return f"NoiseSchedule(T={self.T}, beta_1={b[0].item():.3g}, beta_T={b[-1].item():.3g})"


def check_schedule(schedule: object) -> NoiseSchedule:
    """``schedule`` if it is a ``NoiseSchedule`` (the DDPM losses and samplers take one)."""
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(
            f"schedule must be a NoiseSchedule (e.g. NoiseSchedule.linear()), got {type(schedule).__name__}"
        )
    return schedule


def check_timesteps(schedule: NoiseSchedule, t: torch.Tensor) -> torch.Tensor:
    """Return ``t`` as a LongTensor after checking every entry lies in ``[0, T)``."""
    t = torch.as_tensor(t)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"timesteps must be integers (0-based), got dtype {t.dtype}")
    if t.numel() and (t.min() < 0 or t.max() >= schedule.T):
        raise ValueError(
            f"timesteps must lie in [0, {schedule.T}), got values in [{t.min().item()}, {t.max().item()}]"
        )
    return t.long()


def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped to broadcast against a batch ``like`` of shape ``(n, ...)``."""
    out = values.to(like.device)[t.to(like.device)]
    return out.reshape(out.shape + (1,) * (like.dim() - out.dim()))


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x_0) = N(sqrt(alpha-bar_t) x_0, (1 - alpha-bar_t) I)  (Eq. 4).

    ``t`` holds 0-based timesteps, one per row of ``x0`` (or a scalar for all rows);
    ``noise`` is the standard normal epsilon, same shape as ``x0``.
    """
    t = check_timesteps(schedule, t)
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
    abar = _gather(schedule.alphas_cumprod, t, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def q_step(
    schedule: NoiseSchedule, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """One step of the forward chain (Eq. 2): x_t ~ N(sqrt(1 - beta_t) x_{t-1}, beta_t I)."""
    t = check_timesteps(schedule, t)
    beta = _gather(schedule.betas, t, x_prev)
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * noise


def q_posterior(
    schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x_0)  (Eqs. 6-7).

    mean = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
    variance = beta-tilde_t.
    """
    t = check_timesteps(schedule, t)
    c_x0 = _gather(schedule.posterior_mean_coef_x0, t, x_t)
    c_xt = _gather(schedule.posterior_mean_coef_xt, t, x_t)
    return c_x0 * x0 + c_xt * x_t, _gather(schedule.posterior_variance, t, x_t).expand_as(x_t)
