"""DDPM training and sampling, and DDIM: the deterministic sampler hidden in a DDPM model.

Ho, Jain, Abbeel 2020 (arXiv:2006.11239): L_simple (Eq. 14), ancestral sampling
(Algorithm 2). Song, Meng, Ermon 2021, "Denoising Diffusion Implicit Models"
(arXiv:2010.02502): the generalised update (Eq. 12) with sigma from Eq. 16.

The denoiser is any module called as ``model(x_t, t)`` with ``t`` a LongTensor of 0-based
timesteps of shape ``(n,)``, returning the predicted noise epsilon with ``x_t``'s shape. The
loss and the samplers take it first and the ``NoiseSchedule`` as ``schedule=``:

    history = train(model, partial(ddpm_loss, schedule=schedule, generator=g), x0, steps=1500)
    out = ddim_sample(model, (1000, 2), schedule=schedule, steps=50, generator=g)
    out.x, out.nfe
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from toyalgos.core import Samples, evaluating, progress_bar
from toyalgos.core.checks import check_choice, check_generator, check_number, check_positive_int

from ._checks import check_data_shape
from ._sampling import start_noise
from .schedules import NoiseSchedule, check_schedule, q_posterior, q_sample

VARIANCES = ("beta", "beta_tilde")
SPACINGS = ("leading", "trailing")


def predict_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: int, eps: torch.Tensor) -> torch.Tensor:
    """x0-hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t): Eq. 4 solved for x_0."""
    c_xt = schedule.sqrt_recip_alphas_cumprod[t].to(x_t.device)
    c_eps = schedule.sqrt_recipm1_alphas_cumprod[t].to(x_t.device)
    return c_xt * x_t - c_eps * eps


def ddpm_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: int,
    eps: torch.Tensor,
    noise: torch.Tensor | None,
    variance: str = "beta",
    clip_x0: float | None = None,
) -> torch.Tensor:
    """One ancestral step x_t -> x_{t-1} (Algorithm 2, line 4), ``t`` 0-based.

    The mean is the posterior mean of q(x_{t-1} | x_t, x0-hat) with x0-hat from ``eps``,
    algebraically equal to (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t); written
    this way so x0-hat can be clipped (the reference code clips to [-1, 1] for images).
    The variance is sigma_t^2 = beta_t (``'beta'``, "fixedlarge") or beta-tilde_t
    (``'beta_tilde'``, "fixedsmall"). No noise is added at the last step (t = 0).
    """
    check_choice(variance, "variance", VARIANCES)
    x0 = predict_x0(schedule, x_t, t, eps)
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
    tt = torch.full((x_t.shape[0],), t, dtype=torch.long)
    mean, _ = q_posterior(schedule, x0, x_t, tt)
    if t == 0:
        return mean
    if noise is None:
        raise ValueError(f"ddpm_step needs a noise tensor for t = {t} > 0")
    var = schedule.betas[t] if variance == "beta" else schedule.posterior_variance[t]
    return mean + var.to(x_t.device).sqrt() * noise


def ddim_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: int,
    t_prev: int,
    eps: torch.Tensor,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_x0: float | None = None,
) -> torch.Tensor:
    """DDIM update x_t -> x_{t_prev} (Song et al. Eq. 12), 0-based steps, ``t_prev = -1`` means x_0.

    x_{t'} = sqrt(abar_{t'}) x0-hat + sqrt(1 - abar_{t'} - sigma^2) eps + sigma z with
    sigma = eta sqrt((1 - abar_{t'}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t'})  (Eq. 16).
    eta = 0 is deterministic; eta = 1 with t' = t - 1 is DDPM's ancestral step with beta-tilde.
    """
    device = x_t.device
    abar = schedule.alphas_cumprod[t].to(device)
    abar_prev = schedule.alphas_cumprod[t_prev].to(device) if t_prev >= 0 else torch.tensor(1.0)
    x0 = predict_x0(schedule, x_t, t, eps)
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
        eps = (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()  # keep eps consistent with clipped x0
    sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
    x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0 and t_prev >= 0:
        if noise is None:
            raise ValueError("ddim_step needs a noise tensor when eta > 0")
        x_prev = x_prev + sigma * noise
    return x_prev


def ddim_timesteps(T: int, steps: int, spacing: str = "leading") -> list[int]:
    """The sub-sequence tau of 0-based steps DDIM visits, largest first.

    ``'leading'``: 0, T//steps, 2T//steps, ... (DDIM's uniform skip; diffusers' default);
    ``'trailing'``: evenly spaced down from T - 1, so the first step always starts from pure noise.
    """
    check_choice(spacing, "spacing", SPACINGS)
    if check_positive_int(steps, "steps") > T:
        raise ValueError(f"steps must be an int in [1, T={T}], got {steps!r}")
    if spacing == "leading":
        taus = [i * (T // steps) for i in range(steps)]
    else:
        taus = [round(T - 1 - i * T / steps) for i in range(steps)][::-1]
    return taus[::-1]


def _timesteps(t: int, x: torch.Tensor) -> torch.Tensor:
    """The 0-based step ``t`` as the LongTensor of shape ``(n,)`` the network takes."""
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


def ddpm_loss(
    model: nn.Module,
    x0: torch.Tensor,
    *,
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_simple (Eq. 14): E_{t, x0, eps} ||eps - eps_theta(x_t, t)||^2.

    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (Eq. 4); t is uniform over the T steps; the
    squared error is averaged over batch and features. Bind the options for ``train`` with
    ``functools.partial(ddpm_loss, schedule=schedule, generator=g)``.
    """
    check_schedule(schedule)
    check_generator(generator)
    check_data_shape(x0.shape, getattr(model, "data_shape", None), "x0")
    t = torch.randint(schedule.T, (x0.shape[0],), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    x_t = q_sample(schedule, x0, t, noise)
    return nn.functional.mse_loss(model(x_t, t), noise)


def ddpm_sample(
    model: nn.Module,
    shape: Sequence[int],
    *,
    schedule: NoiseSchedule,
    variance: str = "beta",
    clip_x0: float | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
    generator: torch.Generator | None = None,
) -> Samples:
    """Ancestral sampling (Algorithm 2): x_T ~ N(0, I), then T steps of ``ddpm_step``: T network calls.

    ``shape`` is the batch shape, e.g. ``(500, 2)``. The trajectory, when asked for, holds
    every x_t from x_T down to x_0, shape ``(T + 1, *shape)``.
    """
    check_schedule(schedule)
    check_choice(variance, "variance", VARIANCES)
    x = start_noise(model, shape, x_T, generator=generator)
    states = [x.cpu()]
    with evaluating(model):
        for t in progress_bar(range(schedule.T - 1, -1, -1), desc="sampling", enabled=progress):
            noise = torch.randn(x.shape, generator=generator).to(x.device) if t > 0 else None
            x = ddpm_step(schedule, x, t, model(x, _timesteps(t, x)), noise, variance, clip_x0)
            if return_trajectory:
                states.append(x.cpu())
    return Samples(x, schedule.T, torch.stack(states) if return_trajectory else None)


def ddim_sample(
    model: nn.Module,
    shape: Sequence[int],
    *,
    schedule: NoiseSchedule,
    steps: int,
    eta: float = 0.0,
    spacing: str = "leading",
    clip_x0: float | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    generator: torch.Generator | None = None,
) -> Samples:
    """DDIM sampling over ``steps`` of the T training steps (``ddim_timesteps``): ``steps`` network calls.

    ``eta = 0`` gives a deterministic map from x_T to x_0; ``eta = 1`` a stochastic sampler
    that equals ancestral sampling with beta-tilde when ``steps == T``. The trajectory, when
    asked for, has shape ``(steps + 1, *shape)``.
    """
    taus = ddim_timesteps(check_schedule(schedule).T, steps, spacing)
    check_number(eta, "eta", 0)
    x = start_noise(model, shape, x_T, generator=generator)
    states = [x.cpu()]
    with evaluating(model):
        for t, t_prev in zip(taus, taus[1:] + [-1], strict=True):
            noisy = eta > 0 and t_prev >= 0
            noise = torch.randn(x.shape, generator=generator).to(x.device) if noisy else None
            x = ddim_step(schedule, x, t, t_prev, model(x, _timesteps(t, x)), eta, noise, clip_x0)
            if return_trajectory:
                states.append(x.cpu())
    return Samples(x, len(taus), torch.stack(states) if return_trajectory else None)
