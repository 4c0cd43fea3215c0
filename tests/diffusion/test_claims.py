"""The diffusion claims pass two samples of the data and fail each known-bad case: a uniform
ring through the eight modes, one Gaussian with the data's mean and covariance, and the
mixture with one mode dropped."""

import math

import pytest
import torch

from toyalgos.core import Samples
from toyalgos.diffusion import NoiseSchedule, data, ddim_sample, euler_sample, gaussian_mixture, q_sample
from toyalgos.diffusion.claims import (
    class_shares_match,
    confidence_above_noise,
    coupling_cost_reduced,
    forward_moments_match,
    mode_shares_match,
    modes_covered,
    modes_missed,
    reflow_straightens,
    sample_precision,
    sample_recall,
    samples_agree,
    speedup_at_equal_quality,
)
from toyalgos.nn import TimeMLP

MEANS, STD = data.eight_gaussian_means(), 0.1


def _g(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def cases():
    n = 2000
    x = data.eight_gaussians(n, generator=_g(1))
    t = 2 * math.pi * torch.rand(n, generator=_g(2))
    chol = torch.linalg.cholesky(torch.cov(x.T))
    return {
        "data": data.eight_gaussians(n, generator=_g(0)),
        "heldout": x,
        "ring": 2.0 * torch.stack([t.cos(), t.sin()], dim=1),
        "gaussian": torch.randn(n, 2, generator=_g(3)) @ chol.T + x.mean(0),
        "dropped": gaussian_mixture(n, MEANS[1:], STD, generator=_g(4)),
    }


def test_the_data_passes_every_claim(cases):
    x, ref = cases["heldout"], cases["data"]
    for claim in [modes_covered(x, MEANS, STD), mode_shares_match(x, MEANS, STD)]:
        assert claim.holds, claim
    for claim in [sample_precision(x, ref), sample_recall(x, ref)]:
        assert claim.holds, claim


@pytest.mark.parametrize("bad", ["ring", "gaussian"])
def test_modes_covered_fails_on_a_ring_and_a_gaussian(cases, bad):
    assert not modes_covered(cases[bad], MEANS, STD).holds


def test_mode_shares_match_fails_on_a_dropped_mode(cases):
    assert modes_covered(cases["dropped"], MEANS, STD).holds  # every sample is on a mode ...
    claim = mode_shares_match(cases["dropped"], MEANS, STD)
    assert not claim.holds and claim.value == pytest.approx(1 / 8, abs=0.02)  # ... one is empty


@pytest.mark.parametrize("bad", ["ring", "gaussian"])
def test_sample_precision_fails_on_a_ring_and_a_gaussian(cases, bad):
    assert not sample_precision(cases[bad], cases["data"]).holds


@pytest.mark.parametrize("bad", ["ring", "dropped"])
def test_sample_recall_fails_on_a_ring_and_a_dropped_mode(cases, bad):
    assert not sample_recall(cases[bad], cases["data"]).holds


def test_weights_are_respected():
    means, w = torch.tensor([[0.0, 0.0], [3.0, 0.0]]), torch.tensor([0.8, 0.2])
    x = gaussian_mixture(4000, means, 0.2, weights=w, generator=_g(5))
    assert mode_shares_match(x, means, 0.2, weights=w).holds
    assert not mode_shares_match(x, means, 0.2).holds  # against equal weights, TV = 0.3


# --- DDPM and DDIM (10_ddpm) ---------------------------------------------------------------


@pytest.mark.parametrize("t", [0, 50, 999])
def test_forward_moments_match_fails_on_a_chain_that_does_not_shrink(t):
    schedule = NoiseSchedule.linear(T=1000)
    x0 = data.two_moons(4000, generator=_g(0))
    abar = schedule.alphas_cumprod[t].item()
    noise = torch.randn(x0.shape, generator=_g(1))
    good = q_sample(schedule, x0, torch.full((len(x0),), t), noise)
    assert forward_moments_match(x0, good, abar).holds
    no_shrink = x0 + (1 - abar) ** 0.5 * noise  # Eq. 4 without sqrt(abar): the variance grows without bound
    assert not forward_moments_match(x0, no_shrink + 0.3, abar).holds  # (a shift, where abar ~ 1)
    if t > 0:
        assert not forward_moments_match(x0, no_shrink, abar).holds


def test_speedup_at_equal_quality_fails_on_equal_step_counts_and_a_bad_fast_sampler(cases):
    slow = Samples(cases["heldout"], 1000)
    assert speedup_at_equal_quality(Samples(cases["data"], 50), slow, MEANS, STD).value == 20
    assert speedup_at_equal_quality(Samples(cases["data"], 50), slow, MEANS, STD).holds
    assert not speedup_at_equal_quality(Samples(cases["data"], 1000), slow, MEANS, STD).holds  # equal steps
    for bad in ["ring", "gaussian", "dropped"]:
        claim = speedup_at_equal_quality(Samples(cases[bad], 50), slow, MEANS, STD)
        assert not claim.holds and claim.value == 0, bad


@pytest.fixture(scope="module")
def digits():
    """A linear classifier of real digits and its probabilities on held-out digits, noise, and one class."""
    from sklearn.linear_model import LogisticRegression

    x, y = data.load_digits()
    perm = torch.randperm(len(x), generator=_g(0))
    train, test = perm[:1200], perm[1200:]
    clf = LogisticRegression(max_iter=3000).fit(x[train].numpy(), y[train].numpy())
    noise = lambda seed: (2 * torch.rand(500, 64, generator=_g(seed)) - 1).numpy()  # noqa: E731
    x_test, y_test = x[test].numpy(), y[test]
    half = len(x_test) // 2
    return {
        "real": torch.as_tensor(clf.predict_proba(x_test[:half])),
        "real2": torch.as_tensor(clf.predict_proba(x_test[half:])),
        "noise": torch.as_tensor(clf.predict_proba(noise(1))),
        "noise2": torch.as_tensor(clf.predict_proba(noise(2))),
        "pred_real": torch.as_tensor(clf.predict(x_test)),
        "pred_one_class": torch.as_tensor(clf.predict(x_test[(y_test == 3).numpy()])),
    }


def test_confidence_above_noise_fails_on_uniform_noise(digits):
    assert confidence_above_noise(digits["real2"], digits["real"], digits["noise"]).value > 0.9
    claim = confidence_above_noise(digits["noise2"], digits["real"], digits["noise"])
    assert not claim.holds and abs(claim.value) < 0.2


def test_class_shares_match_fails_on_a_single_class(digits):
    assert class_shares_match(digits["pred_real"], 10).holds
    claim = class_shares_match(digits["pred_one_class"], 10)
    assert not claim.holds and claim.value > 0.8
    assert class_shares_match(torch.arange(10).repeat(5), 10).value == pytest.approx(0.0)


# --- Rectified flow (12_rectified_flow) ----------------------------------------------------


@pytest.fixture(scope="module")
def couplings():
    """Gaussian noise z0 sent to 8 Gaussians: to the mode at its own angle (cheap), the opposite one
    (dear), nowhere (a flow that moves nothing) and by an untrained network (a random flow)."""
    n = 4000
    z0 = torch.randn(n, 2, generator=_g(10))
    mode = torch.round(torch.atan2(z0[:, 1], z0[:, 0]) / (2 * math.pi / 8)).long() % 8
    torch.manual_seed(0)
    random_flow = TimeMLP(2, hidden=32)
    return {
        "z0": z0,
        "x1": data.eight_gaussians(n, generator=_g(11)),
        "nearest": MEANS[mode] + STD * torch.randn(n, 2, generator=_g(12)),
        "opposite": MEANS[(mode + 4) % 8] + STD * torch.randn(n, 2, generator=_g(13)),
        "nothing": z0.clone(),
        "random": euler_sample(random_flow, z0, steps=10).x,
    }


def test_coupling_cost_reduced_fails_for_a_do_nothing_flow_a_random_flow_and_a_dear_coupling(couplings):
    c = couplings
    good = coupling_cost_reduced(c["z0"], c["nearest"], c["x1"], MEANS, STD)
    assert good.holds and 0.1 < good.value < 0.3  # E(|z| - 2)^2 ~ 1 against E|z0 - x1|^2 ~ 6
    for bad in ["nothing", "random"]:
        claim = coupling_cost_reduced(c["z0"], c[bad], c["x1"], MEANS, STD)
        assert not claim.holds and claim.value == math.inf, bad
    assert coupling_cost_reduced(c["z0"], c["opposite"], c["x1"], MEANS, STD).value > 1


def _bent(x, t):
    """A curved flow: a rotation, whose paths are arcs."""
    return torch.stack([-x[:, 1], x[:, 0]], dim=1)


def _nearly_straight(x, t):
    """A nearly straight flow: a constant drift plus a small rotation."""
    return torch.tensor([1.0, -0.5]) + 0.05 * _bent(x, t)


def test_reflow_straightens_fails_for_a_reflow_that_trained_nothing():
    z0 = torch.randn(500, 2, generator=_g(20))
    assert reflow_straightens(_bent, _nearly_straight, z0).holds
    claim = reflow_straightens(_bent, _bent, z0)
    assert not claim.holds and claim.value == pytest.approx(1.0)


def test_modes_missed_fails_on_the_data(cases):
    assert modes_missed(torch.zeros(100, 2), MEANS, STD).holds  # every sample at E[X1] = 0
    assert not modes_missed(cases["heldout"], MEANS, STD).holds


def _ddim_as_euler_in_sigma(model, schedule, x_T, steps, rescale=True):
    """DDIM (eta = 0) written as Euler's method on dx/dsigma = eps with x = x_t / sqrt(abar_t);
    ``rescale=False`` forgets the change of variable and steps x_t itself."""
    taus = list(range(0, schedule.T, schedule.T // steps))[::-1]
    abar = schedule.alphas_cumprod.double()
    sigma = [((1 - abar[t]) / abar[t]).sqrt().item() for t in taus] + [0.0]
    scale = [abar[t].sqrt() if rescale else torch.tensor(1.0, dtype=torch.float64) for t in taus] + [1.0]
    x_bar = x_T.double() / scale[0]
    with torch.no_grad():
        for i, t in enumerate(taus):
            eps = model((x_bar * scale[i]).float(), torch.full((len(x_T),), t)).double()
            x_bar = x_bar + (sigma[i + 1] - sigma[i]) * eps
    return x_bar.float()


def test_samples_agree_fails_for_euler_without_the_change_of_variable():
    schedule = NoiseSchedule.linear(T=1000)
    abar = schedule.alphas_cumprod

    def model(x, t):  # E[eps | x_t] for data N(0, 0.5^2 I): the exact noise predictor
        a = abar[t][:, None]
        return (1 - a).sqrt() * x / (0.25 * a + 1 - a)

    x_T = torch.randn(300, 2, generator=_g(30))
    x_ddim = ddim_sample(model, (300, 2), schedule=schedule, steps=50, x_T=x_T).x
    assert samples_agree(_ddim_as_euler_in_sigma(model, schedule, x_T, 50), x_ddim).holds
    claim = samples_agree(_ddim_as_euler_in_sigma(model, schedule, x_T, 50, rescale=False), x_ddim)
    assert not claim.holds and claim.value > 0.1
    with pytest.raises(ValueError, match="same shape"):
        samples_agree(x_ddim, x_ddim[:10])
