import pytest
import torch

from toyalgos.diffusion import NoiseSchedule, q_posterior, q_sample, q_step

diffusers = pytest.importorskip("diffusers")


def test_linear_schedule_matches_diffusers():
    ours = NoiseSchedule.linear()
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02)
    assert torch.allclose(ours.betas, ref.betas, atol=1e-8)
    assert torch.allclose(ours.alphas, ref.alphas, atol=1e-7)
    assert torch.allclose(ours.alphas_cumprod, ref.alphas_cumprod, atol=1e-6)


def test_cosine_schedule_matches_diffusers():
    ours = NoiseSchedule.cosine()
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    assert torch.allclose(ours.betas, ref.betas, atol=1e-6)
    assert torch.allclose(ours.alphas_cumprod, ref.alphas_cumprod, atol=1e-6)


def test_reference_values_of_the_ddpm_paper_schedule():
    abar = NoiseSchedule.linear().alphas_cumprod
    # alpha-bar_1, _100, _500, _1000 (paper's 1-based t) from the reference implementation.
    expected = torch.tensor([0.9999, 0.897018, 0.0785872, 4.0358e-5])
    assert torch.allclose(abar[[0, 99, 499, 999]], expected, rtol=1e-4)
    assert NoiseSchedule.linear().T == 1000


def test_posterior_variance_is_beta_tilde():
    s = NoiseSchedule.linear(T=10, beta_start=0.1, beta_end=0.3)
    abar = torch.cumprod(1 - torch.linspace(0.1, 0.3, 10, dtype=torch.float64), 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    expected = (1 - prev) / (1 - abar) * torch.linspace(0.1, 0.3, 10, dtype=torch.float64)
    assert torch.allclose(s.posterior_variance, expected.float())
    assert s.posterior_variance[0] == 0


@pytest.mark.parametrize("t", [0, 9, 99, 999])
def test_closed_form_matches_iterated_chain(t):
    """q(x_t | x_0) in one jump (Eq. 4) has the moments of t+1 steps of the chain (Eq. 2)."""
    s = NoiseSchedule.linear()
    g = torch.Generator().manual_seed(t)
    n = 100_000  # std within 1 % is then a 4.5-standard-error band
    x0 = torch.tensor([1.0, -2.0]).expand(n, 2)
    x = x0.clone()
    for k in range(t + 1):
        x = q_step(s, x, torch.tensor(k), torch.randn(n, 2, generator=g))
    jump = q_sample(s, x0, torch.full((n,), t), torch.randn(n, 2, generator=g))
    abar = s.alphas_cumprod[t]
    mean, std = abar.sqrt() * x0[0], (1 - abar).sqrt()
    se = 5 * std / n**0.5  # five standard errors
    for sample in (x, jump):
        assert torch.allclose(sample.mean(0), mean, atol=se)
        assert torch.allclose(sample.std(0), std.expand(2), rtol=0.01)


def test_posterior_matches_gaussian_conditioning():
    """q(x_{t-1} | x_t, x_0) from Bayes' rule on the two Gaussians of Eqs. 2 and 4."""
    s = NoiseSchedule.linear()
    x0, xt = torch.randn(6, 2), torch.randn(6, 2)
    t = torch.tensor([1, 5, 50, 300, 700, 999])
    mean, var = q_posterior(s, x0, xt, t)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)  # float64 reference
    abar_prev = torch.cumprod(1 - betas, 0)[t - 1][:, None]
    alpha, beta = (1 - betas[t])[:, None], betas[t][:, None]
    prec = 1 / (1 - abar_prev) + alpha / beta
    ref_var = 1 / prec
    ref_mean = ref_var * (abar_prev.sqrt() * x0 / (1 - abar_prev) + alpha.sqrt() * xt / beta)
    assert torch.allclose(var.double(), ref_var.expand(6, 2), rtol=1e-5)
    assert torch.allclose(mean.double(), ref_mean, atol=1e-5)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: NoiseSchedule.linear(T=0), "T must be a positive int, got 0"),
        (lambda: NoiseSchedule.cosine(T=0), "T must be a positive int, got 0"),
        (lambda: NoiseSchedule.linear(T=10.0), "T must be a positive int, got 10.0"),
        (lambda: NoiseSchedule.linear(beta_start=0.0), r"\(0, 1\)"),
        (lambda: NoiseSchedule.linear(beta_end=1.5), r"beta_end must lie in \[0.0001, 1\), got 1.5"),
        (lambda: NoiseSchedule.linear(beta_start=0.02, beta_end=1e-4), r"beta_end must lie in \[0.02, 1\)"),
        (lambda: NoiseSchedule.cosine(max_beta=1.0), r"max_beta must lie in \(0, 1\), got 1.0"),
        (lambda: NoiseSchedule.cosine(s=-0.1), r"s must lie in \[0, inf\), got -0.1"),
        (lambda: NoiseSchedule(torch.tensor([0.1, 1.0])), r"open interval \(0, 1\), got 1.0"),
        (lambda: NoiseSchedule(torch.tensor([])), "T >= 1"),
    ],
)
def test_bad_schedules(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_timesteps_and_noise():
    s = NoiseSchedule.linear(T=100)
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        q_sample(s, x, torch.tensor([0, 1, 100]), x)
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        q_sample(s, x, torch.tensor([-1, 1, 2]), x)
    with pytest.raises(TypeError, match="integers"):
        q_sample(s, x, torch.tensor([0.5, 1.0, 2.0]), x)
    with pytest.raises(ValueError, match="noise must have"):
        q_sample(s, x, torch.tensor([1, 1, 1]), torch.zeros(3, 3))
    with pytest.raises(TypeError, match="beta_start must be a number, got str"):
        NoiseSchedule.linear(beta_start="1e-4")
