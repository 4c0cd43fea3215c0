"""DDPM training and sampling, and DDIM: the deterministic sampler hidden in a DDPM model.

Ho, Jain, Abbeel 2020 (arXiv:2006.11239): L_simple (Eq. 14), ancestral sampling
(Algorithm 2). Song, Meng, Ermon 2021, "Denoising Diffusion Implicit Models"
(arXiv:2010.02502): the generalised update (Eq. 12) with sigma from Eq. 16.

The denoiser is any module called as ``model(x_t, t)`` with ``t`` a LongTensor of 0-based
timesteps of shape ``(n,)``, returning the predicted noise epsilon with ``x_t``'s shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ._shapes import check_data_shape
from .schedules import NoiseSchedule, q_posterior, q_sample

VARIANCES = ("beta", "beta_tilde")


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
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
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
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in [1, T={T}], got {steps!r}")
    if spacing == "leading":
        taus = [i * (T // steps) for i in range(steps)]
    elif spacing == "trailing":
        taus = [round(T - 1 - i * T / steps) for i in range(steps)][::-1]
    else:
        raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")
    return taus[::-1]


class DDPM:
    """A denoiser ``model(x_t, t) -> eps`` together with a ``NoiseSchedule``.

    Args:
        model: the noise-prediction network.
        schedule: the forward process.
        data_shape: shape of one sample (e.g. ``(2,)``); taken from ``model.data_shape`` if
            the model has one. When known, inputs of another shape raise ``ValueError``.
    """

    def __init__(self, model: nn.Module, schedule: NoiseSchedule, data_shape: Sequence[int] | None = None):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        self.model = model
        self.schedule = schedule
        shape = data_shape if data_shape is not None else getattr(model, "data_shape", None)
        self.data_shape = tuple(shape) if shape is not None else None
        self.nfe = 0  # network evaluations made by the last sampling call

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def _check_shape(self, shape: Sequence[int], what: str) -> None:
        if len(shape) < 1:
            raise ValueError(f"{what} must have a batch dimension, got shape {tuple(shape)}")
        check_data_shape(shape, self.data_shape, what)

    def eps(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """The model's noise prediction, with ``t`` broadcast to the batch."""
        t = torch.as_tensor(t, dtype=torch.long, device=x_t.device)
        if t.dim() == 0:
            t = t.expand(x_t.shape[0])
        self.nfe += 1
        return self.model(x_t, t)

    def loss(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L_simple (Eq. 14): E_{t, x0, eps} ||eps - eps_theta(x_t, t)||^2.

        x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; t is uniform over the T steps; the
        squared error is averaged over batch and features.
        """
        self._check_shape(x0.shape, "x0")
        n = x0.shape[0]
        t = torch.randint(self.schedule.T, (n,), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = q_sample(self.schedule, x0, t, noise)
        return nn.functional.mse_loss(self.model(x_t, t), noise)

    def _start(self, shape: Sequence[int], x_T: torch.Tensor | None, generator) -> torch.Tensor:
        self._check_shape(shape, "shape")
        if x_T is None:
            return torch.randn(tuple(shape), generator=generator).to(self.device)
        if tuple(x_T.shape) != tuple(shape):
            raise ValueError(f"x_T must have shape {tuple(shape)}, got {tuple(x_T.shape)}")
        return x_T.to(self.device)

    @torch.no_grad()
    def sample(
        self,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        variance: str = "beta",
        clip_x0: float | None = None,
        x_T: torch.Tensor | None = None,
        return_trajectory: bool = False,
        progress: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Ancestral sampling (Algorithm 2): x_T ~ N(0, I), then T steps of ``ddpm_step``.

        ``shape`` is the batch shape, e.g. ``(500, 2)``. With ``return_trajectory`` also
        returns every x_t, shape ``(T + 1, *shape)``, from x_T down to x_0.
        """
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
        self.model.eval()
        self.nfe = 0
        x = self._start(shape, x_T, generator)
        traj = [x.cpu()] if return_trajectory else None
        for t in tqdm(range(self.schedule.T - 1, -1, -1), disable=not progress, leave=False):
            noise = torch.randn(x.shape, generator=generator).to(x.device) if t > 0 else None
            x = ddpm_step(self.schedule, x, t, self.eps(x, t), noise, variance, clip_x0)
            if traj is not None:
                traj.append(x.cpu())
        return (x, torch.stack(traj)) if traj is not None else x

    @torch.no_grad()
    def ddim_sample(
        self,
        shape: Sequence[int],
        steps: int,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        spacing: str = "leading",
        clip_x0: float | None = None,
        x_T: torch.Tensor | None = None,
        return_trajectory: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """DDIM sampling over ``steps`` of the T training steps (``ddim_timesteps``).

        ``eta = 0`` gives a deterministic map from x_T to x_0; ``eta = 1`` a stochastic sampler
        that equals ancestral sampling with beta-tilde when ``steps == T``.
        """
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        taus = ddim_timesteps(self.schedule.T, steps, spacing)
        self.model.eval()
        self.nfe = 0
        x = self._start(shape, x_T, generator)
        traj = [x.cpu()] if return_trajectory else None
        for i, t in enumerate(taus):
            t_prev = taus[i + 1] if i + 1 < len(taus) else -1
            noise = None
            if eta > 0 and t_prev >= 0:
                noise = torch.randn(x.shape, generator=generator).to(x.device)
            x = ddim_step(self.schedule, x, t, t_prev, self.eps(x, t), eta, noise, clip_x0)
            if traj is not None:
                traj.append(x.cpu())
        return (x, torch.stack(traj)) if traj is not None else x
