import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Samples, train
from toyalgos.lm import (
    AbsorbingGraph,
    AbsorbingScore,
    UniformGraph,
    UniformScore,
    loglinear_noise,
    mdlm_loss,
    score_entropy_loss,
    sedd_nll_bound,
    sedd_sample,
)
from toyalgos.nn import Transformer, TransformerConfig

K = 5  # real tokens
PI = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05], dtype=torch.float64)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny(vocab, seed=0):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab, d_model=16, n_layers=1, n_heads=2, max_len=16))


class Constant(nn.Module):
    """A mask predictor that answers log pi at every position (exact for i.i.d. tokens)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(logits.float())

    def forward(self, x):
        return self.logits.expand(*x.shape, -1)


class IIDUniformScore(nn.Module):
    """The exact concrete score of i.i.d. tokens ~ pi under the uniform graph."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, sigma):
        stay = torch.exp(-sigma.double()).reshape(-1, 1, 1)
        p_t = stay * PI + (1 - stay) / K  # (N, 1, K)
        p_t = p_t.expand(*x.shape, K)
        return (p_t / p_t.gather(-1, x[..., None])).log().float()


def exact_absorbing():
    logits = torch.cat([PI.log(), torch.tensor([0.0], dtype=torch.float64)])
    return AbsorbingScore(Constant(logits), mask_id=K)


def iid(n, L, seed):
    return torch.multinomial(PI, n * L, replacement=True, generator=gen(seed)).view(n, L)


def test_absorbing_dwdse_equals_the_weighted_cross_entropy_exactly():
    """With the normalised score s = p_theta / (e^sigma - 1) the DSE's constant is 0: DWDSE = MDLM loss."""
    net = tiny(K + 1)
    x = torch.randint(K, (8, 12), generator=gen(0))
    noise = loglinear_noise()
    sedd = score_entropy_loss(
        AbsorbingScore(net, K), x, graph=AbsorbingGraph(K), noise=noise, generator=gen(5)
    )
    mdlm = mdlm_loss(net, x, mask_id=K, noise=noise, generator=gen(5))
    assert torch.allclose(sedd, mdlm, atol=1e-6, rtol=1e-6)


def test_absorbing_dse_is_the_cross_entropy_plus_the_stated_constant_for_a_free_score():
    """DSE = r [-log softmax(l)_{x0}] + r (Z - 1 - log Z), Z = sum_y e^{l_y} / r... with s_y = e^{l_y}."""
    graph = AbsorbingGraph(K)
    g = gen(3)
    sigma = torch.tensor([[0.9]], dtype=torch.float64)
    x0 = torch.randint(K, (2, 10), generator=g)
    x = torch.full_like(x0, K)  # all masked
    log_s = torch.randn(2, 10, K + 1, generator=g, dtype=torch.float64)
    dse = graph.score_entropy(log_s, sigma, x, x0)
    r = 1 / math.expm1(0.9)
    real = log_s[..., :K]
    ce = -F.log_softmax(real, -1).gather(-1, x0[..., None])[..., 0]
    Z = real.exp().sum(-1) / r  # the score's total over its normalised value r
    assert torch.allclose(dse, r * ce + r * (Z - 1 - Z.log()), atol=1e-12)


def test_score_entropy_loss_and_bound_are_deterministic_per_generator():
    graph, noise = UniformGraph(K), loglinear_noise()
    model = UniformScore(tiny(K))
    x = torch.randint(K, (6, 8), generator=gen(0))
    a = score_entropy_loss(model, x, graph=graph, noise=noise, generator=gen(1))
    b = score_entropy_loss(model, x, graph=graph, noise=noise, generator=gen(1))
    assert torch.equal(a, b)
    c = sedd_nll_bound(model, x, graph=graph, noise=noise, n_samples=4, generator=gen(2))
    d = sedd_nll_bound(model, x, graph=graph, noise=noise, n_samples=4, generator=gen(2))
    assert c.value == d.value and torch.equal(c.per_sequence, d.per_sequence)


@pytest.mark.parametrize("kind", ["absorbing", "uniform"])
def test_bound_is_tight_for_the_exact_score(kind):
    """With the true score the DWDSE bound equals -log p(x_0) (a zero path-space KL)."""
    x = iid(400, 4, seed=0)
    if kind == "absorbing":
        graph, model = AbsorbingGraph(K), exact_absorbing()
    else:
        graph, model = UniformGraph(K), IIDUniformScore()
    bound = sedd_nll_bound(model, x, graph=graph, noise=loglinear_noise(0.0), n_samples=64, generator=gen(1))
    true = (-PI.log()[x].sum(1) / 4).mean().item()
    assert abs(bound.value - true) < 4 * bound.se + 0.01
    assert bound.n_samples == 64 and bound.per_sequence.shape == (400,)


def test_uniform_bound_with_a_finite_sigma_adds_the_prior_term():
    x = iid(50, 4, seed=1)
    with_eps = sedd_nll_bound(
        IIDUniformScore(),
        x,
        graph=UniformGraph(K),
        noise=loglinear_noise(1e-3),
        n_samples=8,
        generator=gen(0),
    )
    assert math.isfinite(with_eps.value)
    absorbing = sedd_nll_bound(
        exact_absorbing(),
        x,
        graph=AbsorbingGraph(K),
        noise=loglinear_noise(1e-3),
        n_samples=8,
        generator=gen(0),
    )
    assert math.isinf(absorbing.value)


@pytest.mark.parametrize("sampler", ["euler", "tweedie"])
@pytest.mark.parametrize("kind", ["absorbing", "uniform"])
def test_samplers_draw_the_data_with_the_exact_score(kind, sampler):
    graph, model = (
        (AbsorbingGraph(K), exact_absorbing())
        if kind == "absorbing"
        else (UniformGraph(K), IIDUniformScore())
    )
    out = sedd_sample(
        model, (4000, 3), graph=graph, noise=loglinear_noise(), steps=64, sampler=sampler, generator=gen(2)
    )
    assert isinstance(out, Samples) and out.nfe == 65 and out.trajectory is None
    assert out.x.max() < K  # no MASK left
    freq = torch.bincount(out.x.flatten(), minlength=K).double() / out.x.numel()
    assert torch.allclose(freq, PI, atol=0.02)


def test_euler_and_tweedie_coincide_for_the_absorbing_graph_with_a_normalised_score():
    net = tiny(K + 1)
    common = dict(graph=AbsorbingGraph(K), noise=loglinear_noise(), steps=5, return_trajectory=True)
    a = sedd_sample(AbsorbingScore(net, K), (64, 8), sampler="euler", generator=gen(4), **common)
    b = sedd_sample(AbsorbingScore(net, K), (64, 8), sampler="tweedie", generator=gen(4), **common)
    assert torch.equal(a.x, b.x)
    assert a.trajectory.shape == (7, 64, 8) and (a.trajectory[0] == K).all()


def test_sampler_is_deterministic_and_keeps_the_mode():
    model = UniformScore(tiny(K))
    model.train()
    common = dict(graph=UniformGraph(K), noise=loglinear_noise(), steps=3, sampler="tweedie")
    a = sedd_sample(model, (5, 6), generator=gen(9), **common)
    b = sedd_sample(model, (5, 6), generator=gen(9), **common)
    assert torch.equal(a.x, b.x)
    assert model.training


def test_training_lowers_the_uniform_loss():
    torch.manual_seed(0)
    model = UniformScore(tiny(K))
    graph, noise = UniformGraph(K), loglinear_noise()
    x = iid(2000, 6, seed=3)
    loss = partial(score_entropy_loss, graph=graph, noise=noise, generator=gen(1))
    before = sedd_nll_bound(
        model, x[:200], graph=graph, noise=loglinear_noise(0.0), n_samples=8, generator=gen(2)
    )
    train(model, loss, x, steps=150, batch_size=64, lr=3e-3, generator=gen(3), progress=False)
    after = sedd_nll_bound(
        model, x[:200], graph=graph, noise=loglinear_noise(0.0), n_samples=8, generator=gen(2)
    )
    entropy = -(PI * PI.log()).sum().item()
    assert after.value < before.value
    assert after.value < 1.15 * entropy


def test_bad_input():
    graph, noise = AbsorbingGraph(K), loglinear_noise()
    model = AbsorbingScore(tiny(K + 1), K)
    with pytest.raises(ValueError, match="steps"):
        sedd_sample(model, (2, 4), graph=graph, noise=noise, steps=0)
    with pytest.raises(ValueError, match="sampler"):
        sedd_sample(model, (2, 4), graph=graph, noise=noise, steps=2, sampler="heun")
    with pytest.raises(TypeError):
        sedd_sample(model, 8, graph=graph, noise=noise, steps=2)
    with pytest.raises(ValueError, match="states"):
        score_entropy_loss(model, torch.tensor([[0, 7]]), graph=graph, noise=noise)
    with pytest.raises(TypeError, match="graph"):
        score_entropy_loss(model, torch.tensor([[0, 1]]), graph="absorb", noise=noise)
    with pytest.raises(TypeError, match="noise"):
        score_entropy_loss(model, torch.tensor([[0, 1]]), graph=graph, noise=0.1)
    with pytest.raises(ValueError, match="n_samples"):
        sedd_nll_bound(model, torch.tensor([[0, 1]]), graph=graph, noise=noise, n_samples=0)
    with pytest.raises(TypeError):
        UniformScore(nn.Linear(2, 2))
