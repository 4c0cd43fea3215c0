from functools import partial

import pytest
import torch
from torch import nn

from toyalgos.core import Samples, seed_everything, train
from toyalgos.diffusion import (
    NoiseSchedule,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_loss,
    ddpm_sample,
    ddpm_step,
)
from toyalgos.nn import TimeMLP

diffusers = pytest.importorskip("diffusers")


class GaussianOracle(nn.Module):
    """The exact noise predictor E[eps | x_t] when the data are N(mu, s^2 I)."""

    def __init__(self, schedule, mu, s):
        super().__init__()
        self.schedule, self.mu, self.s = schedule, torch.as_tensor(mu), s
        self.data_shape = (len(self.mu),)

    def forward(self, x, t):
        abar = self.schedule.alphas_cumprod[t][:, None]
        return (1 - abar).sqrt() * (x - abar.sqrt() * self.mu) / (abar * self.s**2 + 1 - abar)


MU, S = torch.tensor([1.0, -0.5]), 0.5


@pytest.mark.parametrize("variance, ref_type", [("beta", "fixed_large"), ("beta_tilde", "fixed_small")])
@pytest.mark.parametrize("t", [999, 500, 1])
def test_ddpm_step_matches_diffusers(variance, ref_type, t):
    s = NoiseSchedule.linear()
    ref = diffusers.DDPMScheduler(variance_type=ref_type, clip_sample=False)
    ref.set_timesteps(1000)
    x, eps = torch.randn(8, 2), torch.randn(8, 2)
    expected = ref.step(eps, t, x, generator=torch.Generator().manual_seed(3)).prev_sample
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(3))
    ours = ddpm_step(s, x, t, eps, noise, variance=variance)
    # diffusers works in float32 throughout; near t = 1 that costs ~1e-4 relative precision.
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-5 if t > 1 else 1e-3)


def test_ddpm_step_clipping_matches_diffusers():
    s = NoiseSchedule.linear()
    ref = diffusers.DDPMScheduler(clip_sample=True)
    ref.set_timesteps(1000)
    x, eps = 3 * torch.randn(8, 2), torch.randn(8, 2)
    expected = ref.step(eps, 10, x, generator=torch.Generator().manual_seed(0)).prev_sample
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    ours = ddpm_step(s, x, 10, eps, noise, variance="beta_tilde", clip_x0=1.0)
    assert torch.allclose(ours, expected, atol=1e-4)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_steps_match_diffusers(eta, spacing):
    s = NoiseSchedule.linear()
    ref = diffusers.DDIMScheduler(clip_sample=False, timestep_spacing=spacing)
    ref.set_timesteps(50)
    taus = ddim_timesteps(1000, 50, spacing)
    assert taus == ref.timesteps.tolist()
    x = torch.randn(8, 2)
    for i, t in enumerate(taus[:3] + taus[-2:]):
        eps, noise = torch.randn(8, 2), torch.randn(8, 2)
        expected = ref.step(eps, t, x, eta=eta, variance_noise=noise).prev_sample
        t_prev = t - 1000 // 50
        ours = ddim_step(s, x, t, t_prev, eps, eta=eta, noise=noise)
        assert torch.allclose(ours, expected, atol=1e-5), (i, t)


def test_ddim_eta0_is_deterministic_given_start_noise():
    s = NoiseSchedule.linear(T=100)
    model = GaussianOracle(s, MU, S)
    x_T = torch.randn(16, 2)
    a = ddim_sample(model, (16, 2), schedule=s, steps=10, x_T=x_T, generator=torch.Generator().manual_seed(1))
    b = ddim_sample(model, (16, 2), schedule=s, steps=10, x_T=x_T, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.x, b.x)
    assert a.nfe == 10


def test_ddim_eta1_with_all_steps_is_ancestral_beta_tilde():
    s = NoiseSchedule.linear(T=50, beta_start=1e-3, beta_end=0.2)
    torch.manual_seed(0)
    model = TimeMLP(2, hidden=16)
    a = ddpm_sample(
        model, (32, 2), schedule=s, variance="beta_tilde", generator=torch.Generator().manual_seed(5)
    )
    b = ddim_sample(model, (32, 2), schedule=s, steps=50, eta=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(a.x, b.x, atol=1e-5)
    assert a.nfe == b.nfe == 50


def _ddim_gaussian_std(schedule, taus, s, eta):
    """Exact std of DDIM's output for N(mu, s^2) data and the exact denoiser.

    With d = x_t - sqrt(abar) mu and v = abar s^2 + 1 - abar, the update (Eq. 12) is linear:
    d' = (sqrt(abar' abar) s^2 + sqrt((1 - abar' - sigma^2)(1 - abar))) / v * d + sigma z.
    """
    var = 1.0
    abars = schedule.alphas_cumprod.double()
    for i, t in enumerate(taus):
        a = abars[t]
        a_prev = abars[taus[i + 1]] if i + 1 < len(taus) else torch.tensor(1.0, dtype=torch.float64)
        sig2 = eta**2 * (1 - a_prev) / (1 - a) * (1 - a / a_prev)
        v = a * s**2 + 1 - a
        c = ((a_prev * a).sqrt() * s**2 + ((1 - a_prev - sig2) * (1 - a)).sqrt()) / v
        var = c**2 * var + sig2
    return var.sqrt().item()


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ancestral_sampling_recovers_gaussian_data_with_the_exact_denoiser(variance):
    s = NoiseSchedule.linear()
    out = ddpm_sample(
        GaussianOracle(s, MU, S),
        (20_000, 2),
        schedule=s,
        variance=variance,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.nfe == 1000
    assert torch.allclose(out.x.mean(0), MU, atol=0.02)
    assert torch.allclose(out.x.std(0), torch.full((2,), S), rtol=0.03)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_on_gaussian_data_matches_its_closed_form(eta, steps):
    s = NoiseSchedule.linear()
    model = GaussianOracle(s, MU, S)
    x = ddim_sample(
        model, (20_000, 2), schedule=s, steps=steps, eta=eta, generator=torch.Generator().manual_seed(0)
    ).x
    expected = _ddim_gaussian_std(s, ddim_timesteps(1000, steps), S, eta)
    assert torch.allclose(x.mean(0), MU, atol=0.02)
    assert torch.allclose(x.std(0), torch.full((2,), expected), rtol=0.02)
    # Few steps shrink the spread (each Euler step of the ODE under-shoots), many steps approach s.
    assert expected < S


def test_samplers_return_samples_whatever_return_trajectory():
    s = NoiseSchedule.linear(T=20)
    model = GaussianOracle(s, MU, S)
    for sample, steps in [
        (partial(ddpm_sample, schedule=s), 20),
        (partial(ddim_sample, schedule=s, steps=4), 4),
    ]:
        plain = sample(model, (5, 2), generator=torch.Generator().manual_seed(0))
        full = sample(model, (5, 2), generator=torch.Generator().manual_seed(0), return_trajectory=True)
        assert type(plain) is type(full) is Samples
        assert plain.trajectory is None and plain.nfe == full.nfe == steps
        assert full.trajectory.shape == (steps + 1, 5, 2)
        assert torch.equal(full.trajectory[-1], full.x) and torch.equal(plain.x, full.x)


def test_samplers_restore_the_callers_mode_and_use_no_grad():
    s = NoiseSchedule.linear(T=10)
    net = TimeMLP(2, hidden=8)
    net.train()
    out = ddpm_sample(net, (3, 2), schedule=s)
    assert net.training and all(m.training for m in net.modules())
    assert not out.x.requires_grad
    net.eval()
    ddim_sample(net, (3, 2), schedule=s, steps=5)
    assert not any(m.training for m in net.modules())


def test_loss_is_zero_for_the_exact_denoiser_of_a_point_mass():
    s = NoiseSchedule.linear()
    # Data = 0 exactly, so x_t = sqrt(1 - abar) eps and eps = x_t / sqrt(1 - abar).
    assert ddpm_loss(GaussianOracle(s, torch.zeros(2), 0.0), torch.zeros(64, 2), schedule=s).item() < 1e-10


def test_loss_matches_its_definition():
    s = NoiseSchedule.linear()
    torch.manual_seed(0)
    model = TimeMLP(2, hidden=8)
    x0 = torch.randn(10, 2)
    loss = ddpm_loss(model, x0, schedule=s, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    t = torch.randint(1000, (10,), generator=g)
    eps = torch.randn(10, 2, generator=g)
    abar = s.alphas_cumprod[t][:, None]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    assert torch.allclose(loss, ((model(x_t, t) - eps) ** 2).mean())


def test_training_is_deterministic_for_a_seed():
    results = []
    for _ in range(2):
        g = seed_everything(11)
        model = TimeMLP(2, hidden=16)
        s = NoiseSchedule.linear(T=100)
        data = torch.randn(256, 2, generator=g)
        history = train(
            model, partial(ddpm_loss, schedule=s, generator=g), data, steps=30, generator=g, progress=False
        )
        results.append((history.loss, ddpm_sample(model, (8, 2), schedule=s, generator=g).x))
    assert (results[0][0] == results[1][0]).all()
    assert torch.equal(results[0][1], results[1][1])


def test_bad_inputs():
    s = NoiseSchedule.linear(T=100)
    model = TimeMLP(2, hidden=8)
    with pytest.raises(ValueError, match=r"per-sample shape \(3,\).*expects \(2,\)"):
        ddpm_loss(model, torch.zeros(4, 3), schedule=s)
    with pytest.raises(ValueError, match=r"expects \(2,\)"):
        ddpm_sample(model, (4, 5), schedule=s)
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, T=100\], got 101"):
        ddim_sample(model, (4, 2), schedule=s, steps=101)
    with pytest.raises(ValueError, match="steps"):
        ddim_sample(model, (4, 2), schedule=s, steps=0)
    with pytest.raises(ValueError, match="eta"):
        ddim_sample(model, (4, 2), schedule=s, steps=10, eta=-1)
    with pytest.raises(ValueError, match="variance"):
        ddpm_sample(model, (4, 2), schedule=s, variance="large")
    with pytest.raises(ValueError, match="x_T must have shape"):
        ddpm_sample(model, (4, 2), schedule=s, x_T=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="spacing"):
        ddim_timesteps(100, 10, "middle")
    with pytest.raises(TypeError, match="NoiseSchedule"):
        ddpm_loss(model, torch.zeros(4, 2), schedule="linear")
    with pytest.raises(TypeError, match="NoiseSchedule"):
        ddpm_sample(model, (4, 2), schedule="linear")
    with pytest.raises(TypeError, match="NoiseSchedule"):
        ddim_sample(model, (4, 2), schedule="linear", steps=10)


@pytest.mark.parametrize("bad", [0, 1.5, "seed", torch.zeros(1)])
def test_bad_generator_types_raise_type_error(bad):
    s = NoiseSchedule.linear(T=10)
    model = TimeMLP(2, hidden=8)
    for call in [
        lambda: ddpm_loss(model, torch.zeros(4, 2), schedule=s, generator=bad),
        lambda: ddpm_sample(model, (4, 2), schedule=s, generator=bad),
        lambda: ddim_sample(model, (4, 2), schedule=s, steps=2, generator=bad),
        lambda: ddim_sample(model, (4, 2), schedule=s, steps=2, x_T=torch.zeros(4, 2), generator=bad),
    ]:
        with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
            call()
