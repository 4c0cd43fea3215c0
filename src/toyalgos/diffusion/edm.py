"""One frame for VP, VE, flow matching and EDM (Karras et al. 2022, arXiv:2206.00364).

Every formulation writes the noisy sample as x = s(t) (x0 + sigma(t) n), n ~ N(0, I), and has
the same probability-flow ODE (Eq. 4 of the paper, with grad log p replaced by the denoiser):

    dx/dt = [sigma'(t)/sigma(t) + s'(t)/s(t)] x - sigma'(t) s(t)/sigma(t) D(x / s(t); sigma(t)).

What differs between them (Table 1) is only: sigma(t) and s(t), the time steps a sampler
visits, the preconditioning of the network,

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))   (Eq. 7),

the distribution of sigma during training and the loss weight lambda(sigma) in

    L = E_{sigma, y, n} lambda(sigma) || D(y + sigma n; sigma) - y ||^2            (Eq. 8).

Each formulation below is one row of that table; ``EDMDenoiser``, ``edm_loss`` and
``edm_sample`` are the same code for all of them. Time steps and coefficients are computed
in float64, as in the reference sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from toyalgos.core import Samples, evaluating
from toyalgos.core.checks import check_choice, check_generator, check_number, check_positive_int

from ._checks import check_data_shape, check_sigma
from ._sampling import start_noise

SOLVERS = ("euler", "heun")


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        check_number(value, name, 0, low_open=True)


def _check_sigma_range(sigma_min: float, sigma_max: float) -> None:
    _check_positive(sigma_min=sigma_min, sigma_max=sigma_max)
    if sigma_min >= sigma_max:
        raise ValueError(f"need sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def _f64(x: float | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def edm_sigma_steps(
    steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> torch.Tensor:
    """EDM's noise levels (Eq. 5).

    sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.

    Returns N + 1 float64 values, sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min, then
    sigma_N = 0. rho = 7 spends most steps at low noise, where the ODE bends most; rho = 1
    is uniform in sigma. With N = 1 the single step goes from sigma_max to 0.
    """
    check_positive_int(steps, "steps")
    _check_sigma_range(sigma_min, sigma_max)
    _check_positive(rho=rho)
    frac = torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (hi + frac * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


class Formulation:
    """One row of Table 1: sigma(t), s(t), time steps, preconditioning, training noise, weight.

    Subclasses implement the methods; every method takes and returns float64 tensors (or
    broadcasts over them). ``formulas`` holds the row as text for the notebook's table.
    """

    name = "base"
    formulas: dict[str, str] = {}
    sigma_data = 1.0

    # --- the noise process x = s(t) (x0 + sigma(t) n) -------------------------------------
    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sigma_deriv(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sigma_inv(self, sigma: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def s(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(_f64(t))

    def s_deriv(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(_f64(t))

    def time_steps(self, steps: int) -> torch.Tensor:
        """t_0 > t_1 > ... > t_{N-1}, then t_N = 0: the N + 1 times a sampler visits."""
        raise NotImplementedError

    # --- the network's preconditioning (Eq. 7) ---------------------------------------------
    def c_skip(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(sigma)

    def c_out(self, sigma: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def c_in(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(sigma)

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # --- training (Eq. 8) ------------------------------------------------------------------
    def sample_sigma(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return 1 / sigma**2

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class VP(Formulation):
    """Variance preserving: DDPM's process in continuous time (Song et al. 2021).

    beta(t) = beta_min + beta_d t, so abar(t) = exp(-beta_min t - beta_d t^2 / 2) = s(t)^2:
    with the defaults this is the T = 1000 linear schedule 1e-4 -> 0.02 at t = k / T.
    The network sees c_noise = (M - 1) t, DDPM's integer-like step.
    """

    name = "VP"
    formulas = {
        "σ(t)": "√(exp(½β_d t² + β_min t) − 1)",
        "s(t)": "1/√(1 + σ²)",
        "time steps": "t uniform 1 → ε_s",
        "c_skip, c_out": "1, −σ",
        "c_in, c_noise": "1/√(σ² + 1), (M − 1)t",
        "train σ": "t ~ U(ε_t, 1)",
        "λ(σ)": "1/σ²",
    }

    def __init__(
        self,
        beta_d: float = 19.9,
        beta_min: float = 0.1,
        eps_s: float = 1e-3,
        eps_t: float = 1e-5,
        M: int = 1000,
    ):
        _check_positive(beta_d=beta_d, beta_min=beta_min, eps_s=eps_s, eps_t=eps_t)
        check_positive_int(M, "M")
        self.beta_d, self.beta_min, self.eps_s, self.eps_t, self.M = beta_d, beta_min, eps_s, eps_t, M

    def sigma(self, t):
        t = _f64(t)
        return torch.expm1(0.5 * self.beta_d * t**2 + self.beta_min * t).sqrt()

    def sigma_deriv(self, t):
        t, sigma = _f64(t), self.sigma(t)
        return 0.5 * (self.beta_min + self.beta_d * t) * (sigma + 1 / sigma)

    def sigma_inv(self, sigma):
        sigma = _f64(sigma)
        return (
            (self.beta_min**2 + 2 * self.beta_d * torch.log1p(sigma**2)).sqrt() - self.beta_min
        ) / self.beta_d

    def s(self, t):
        return 1 / (1 + self.sigma(t) ** 2).sqrt()

    def s_deriv(self, t):
        return -self.sigma(t) * self.sigma_deriv(t) * self.s(t) ** 3

    def time_steps(self, steps):
        check_positive_int(steps, "steps")
        frac = torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
        return torch.cat([1 + frac * (self.eps_s - 1), torch.zeros(1, dtype=torch.float64)])

    def c_out(self, sigma):
        return -sigma

    def c_in(self, sigma):
        return 1 / (sigma**2 + 1).sqrt()

    def c_noise(self, sigma):
        return (self.M - 1) * self.sigma_inv(sigma)

    def sample_sigma(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        t = torch.rand(n, generator=generator, dtype=torch.float64) * (1 - self.eps_t) + self.eps_t
        return self.sigma(t)


class VE(Formulation):
    """Variance exploding: SMLD / NCSN (Song & Ermon 2019), sigma(t) = sqrt(t), s = 1."""

    name = "VE"
    formulas = {
        "σ(t)": "√t",
        "s(t)": "1",
        "time steps": "σ² geometric σ_max² → σ_min²",
        "c_skip, c_out": "1, σ",
        "c_in, c_noise": "1, ln(½σ)",
        "train σ": "ln σ ~ U(ln σ_min, ln σ_max)",
        "λ(σ)": "1/σ²",
    }

    def __init__(self, sigma_min: float = 0.02, sigma_max: float = 100.0):
        _check_sigma_range(sigma_min, sigma_max)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def sigma(self, t):
        return _f64(t).sqrt()

    def sigma_deriv(self, t):
        return 0.5 / _f64(t).sqrt()

    def sigma_inv(self, sigma):
        return _f64(sigma) ** 2

    def time_steps(self, steps):
        check_positive_int(steps, "steps")
        frac = torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
        t = self.sigma_max**2 * (self.sigma_min**2 / self.sigma_max**2) ** frac
        return torch.cat([t, torch.zeros(1, dtype=torch.float64)])

    def c_out(self, sigma):
        return sigma

    def c_noise(self, sigma):
        return torch.log(0.5 * sigma)

    def sample_sigma(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return torch.exp(math.log(self.sigma_min) + u * (math.log(self.sigma_max) - math.log(self.sigma_min)))


class EDM(Formulation):
    """Karras et al.'s choices: sigma(t) = t, s = 1, the rho schedule, unit-variance preconditioning.

    c_in scales the network input to unit variance, c_skip / c_out make the network's target
    unit variance at every sigma, and lambda(sigma) c_out(sigma)^2 = 1 gives every sigma the
    same effective weight. ``sigma_data`` is the data's standard deviation (0.5 for images
    in [-1, 1]; set it to your data's).
    """

    name = "EDM"
    formulas = {
        "σ(t)": "t",
        "s(t)": "1",
        "time steps": "σ_i^(1/ρ) uniform, ρ = 7",
        "c_skip, c_out": "σ_d²/(σ² + σ_d²), σσ_d/√(σ² + σ_d²)",
        "c_in, c_noise": "1/√(σ² + σ_d²), ¼ ln σ",
        "train σ": "ln σ ~ N(P_mean, P_std²)",
        "λ(σ)": "(σ² + σ_d²)/(σσ_d)²",
    }

    def __init__(
        self,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        rho: float = 7.0,
        sigma_data: float = 0.5,
        P_mean: float = -1.2,
        P_std: float = 1.2,
    ):
        _check_sigma_range(sigma_min, sigma_max)
        _check_positive(rho=rho, sigma_data=sigma_data, P_std=P_std)
        self.sigma_min, self.sigma_max, self.rho = sigma_min, sigma_max, rho
        self.sigma_data, self.P_mean, self.P_std = sigma_data, P_mean, P_std

    def sigma(self, t):
        return _f64(t)

    def sigma_deriv(self, t):
        return torch.ones_like(_f64(t))

    def sigma_inv(self, sigma):
        return _f64(sigma)

    def time_steps(self, steps):
        return edm_sigma_steps(steps, self.sigma_min, self.sigma_max, self.rho)

    def c_skip(self, sigma):
        return self.sigma_data**2 / (sigma**2 + self.sigma_data**2)

    def c_out(self, sigma):
        return sigma * self.sigma_data / (sigma**2 + self.sigma_data**2).sqrt()

    def c_in(self, sigma):
        return 1 / (sigma**2 + self.sigma_data**2).sqrt()

    def c_noise(self, sigma):
        return 0.25 * torch.log(sigma)

    def sample_sigma(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, generator=generator, dtype=torch.float64)
        return torch.exp(self.P_mean + self.P_std * z)

    def loss_weight(self, sigma):
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2


class FlowMatching(Formulation):
    """Flow matching / rectified flow, x_t = (1 - t) x0 + t eps, in the EDM frame.

    s(t) = 1 - t and sigma(t) = t / (1 - t), so t = sigma / (1 + sigma). The network F predicts
    the velocity v = eps - x0, and D = x_t - t F is the implied x0: in the frame x = x_t / s,
    c_skip = c_in = 1 / (1 + sigma), c_out = -sigma / (1 + sigma). With lambda = ((1 + sigma) /
    sigma)^2 the loss is exactly ||F - v||^2, and t ~ U(0, 1) is the training distribution. The
    ODE in t reduces to dx/dt = (x - D) / t = v: Euler steps uniform in t are rectified flow's
    sampler. This is the paper-of-EDM convention (noise at t = 1); ``toyalgos.diffusion.flow``
    uses rectified flow's own (noise at t = 0).
    """

    name = "flow matching"
    formulas = {
        "σ(t)": "t/(1 − t)",
        "s(t)": "1 − t",
        "time steps": "t uniform t_max → 0",
        "c_skip, c_out": "1/(1 + σ), −σ/(1 + σ)",
        "c_in, c_noise": "1/(1 + σ), (M − 1)t",
        "train σ": "t ~ U(ε, 1 − ε)",
        "λ(σ)": "((1 + σ)/σ)²",
    }

    def __init__(self, eps: float = 1e-3, M: int = 1000):
        check_number(eps, "eps", 0, 0.5, low_open=True, high_open=True)
        self.eps, self.M = eps, check_positive_int(M, "M")

    def sigma(self, t):
        t = _f64(t)
        return t / (1 - t)

    def sigma_deriv(self, t):
        return 1 / (1 - _f64(t)) ** 2

    def sigma_inv(self, sigma):
        sigma = _f64(sigma)
        return sigma / (1 + sigma)

    def s(self, t):
        return 1 - _f64(t)

    def s_deriv(self, t):
        return -torch.ones_like(_f64(t))

    def time_steps(self, steps):
        """Uniform in t from 1 - eps to 0: N Euler steps of size (1 - eps) / N."""
        check_positive_int(steps, "steps")
        return (1 - self.eps) * (1 - torch.arange(steps + 1, dtype=torch.float64) / steps)

    def c_skip(self, sigma):
        return 1 / (1 + sigma)

    def c_out(self, sigma):
        return -sigma / (1 + sigma)

    def c_in(self, sigma):
        return 1 / (1 + sigma)

    def c_noise(self, sigma):
        return (self.M - 1) * self.sigma_inv(sigma)

    def sample_sigma(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        t = self.eps + (1 - 2 * self.eps) * torch.rand(n, generator=generator, dtype=torch.float64)
        return self.sigma(t)

    def loss_weight(self, sigma):
        return ((1 + sigma) / sigma) ** 2


FORMULATIONS: dict[str, Callable[[], Formulation]] = {
    "VP": VP,
    "VE": VE,
    "EDM": EDM,
    "flow matching": FlowMatching,
}


class EDMDenoiser(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) (Eq. 7): a network under a formulation.

    ``net`` is any module called as ``net(x, c_noise)`` with ``c_noise`` a float tensor of
    shape ``(n,)`` (e.g. ``toyalgos.nn.TimeMLP``); the formulation decides what it sees and
    what it predicts (noise for VP, the scaled clean sample for EDM, a velocity for flow
    matching). The output is always an estimate of the clean x0.
    """

    def __init__(self, net: nn.Module, formulation: Formulation):
        super().__init__()
        if not isinstance(formulation, Formulation):
            raise TypeError(
                f"formulation must be a Formulation (VP(), VE(), EDM(), ...), got {formulation!r}"
            )
        self.net = net
        self.formulation = formulation
        self.data_shape = getattr(net, "data_shape", None)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        check_data_shape(x.shape, self.data_shape, "x", owner="network")
        f = self.formulation
        sig = check_sigma(sigma, x)
        c_skip, c_out, c_in = f.c_skip(sig), f.c_out(sig), f.c_in(sig)
        c_noise = f.c_noise(sig).reshape(-1).to(x.dtype)
        F = self.net((c_in * x).to(x.dtype), c_noise)
        return (c_skip * x + c_out * F).to(x.dtype)


def edm_loss(
    denoiser: EDMDenoiser, y: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Eq. 8: lambda(sigma) ||D(y + sigma n; sigma) - y||^2, sigma from the formulation's training law.

    Averaged over the batch and the features (the reference code sums features; a constant
    factor). Feed ``train`` with ``functools.partial(edm_loss, generator=g)``.
    """
    check_generator(generator)
    f = denoiser.formulation
    sigma = f.sample_sigma(y.shape[0], generator=generator).to(y.device)
    noise = torch.randn(y.shape, generator=generator).to(y.device)
    sig = check_sigma(sigma, y)
    D = denoiser(y + (sig * noise).to(y.dtype), sigma)
    weight = f.loss_weight(sig).to(y.dtype)
    return (weight * (D - y) ** 2).mean()


def _ode_direction(denoiser: Callable, f: Formulation, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx/dt of Eq. 4 at time t, with the denoiser standing in for the score."""
    sigma, s = f.sigma(t), f.s(t)
    a = f.sigma_deriv(t) / sigma + f.s_deriv(t) / s
    b = f.sigma_deriv(t) * s / sigma
    D = denoiser((x / s).to(x.dtype), sigma)
    return (a * x - b * D).to(x.dtype)


def _formulation_of(denoiser: Callable, formulation: Formulation | None) -> Formulation:
    """``formulation``, or the one an ``EDMDenoiser`` carries; an error when there is neither."""
    f = formulation if formulation is not None else getattr(denoiser, "formulation", None)
    if not isinstance(f, Formulation):
        raise ValueError(
            "pass an EDMDenoiser, or a denoiser callable together with formulation= (VP(), EDM(), ...), "
            f"got formulation={f!r}"
        )
    return f


def edm_sample(
    denoiser: Callable,
    shape: tuple[int, ...],
    *,
    steps: int = 18,
    solver: str = "heun",
    formulation: Formulation | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    generator: torch.Generator | None = None,
) -> Samples:
    """Solve Eq. 4 from t_0 down to t_N = 0 over the formulation's N = ``steps`` time steps (Algorithm 1).

    ``solver='euler'`` takes N first-order steps (N network calls); ``'heun'`` corrects each
    step with the slope at its end (Heun's 2nd-order method), except the last, which lands on
    sigma = 0: 2N - 1 calls. This is the reference ``ablation_sampler`` without stochastic
    churn. ``denoiser`` is an ``EDMDenoiser`` (whose formulation is used) or any callable
    ``D(x, sigma)`` together with ``formulation``. The start is x = s(t_0) sigma(t_0) n, or
    ``x_T`` (the unscaled n) when given.
    """
    f = _formulation_of(denoiser, formulation)
    check_choice(solver, "solver", SOLVERS)
    t_steps = f.time_steps(steps)
    n = start_noise(denoiser, shape, x_T, generator=generator)
    x = (n * float(f.s(t_steps[0]) * f.sigma(t_steps[0]))).float()
    states, nfe = [x.cpu()], 0
    with evaluating(denoiser):
        for i in range(steps):
            t, t_next = t_steps[i], t_steps[i + 1]
            d = _ode_direction(denoiser, f, x, t)
            nfe += 1
            x_next = x + float(t_next - t) * d
            if solver == "heun" and i < steps - 1:
                d_next = _ode_direction(denoiser, f, x_next, t_next)
                nfe += 1
                x_next = x + float(t_next - t) * (0.5 * d + 0.5 * d_next)
            x = x_next
            if return_trajectory:
                states.append(x.cpu())
    return Samples(x, nfe, torch.stack(states) if return_trajectory else None)
