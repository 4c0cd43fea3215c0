import math

import pytest
import torch

from toyalgos.lm import AbsorbingGraph, UniformGraph, geometric_noise, loglinear_noise

GRAPHS = [AbsorbingGraph(5), UniformGraph(6)]


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("graph", GRAPHS, ids=repr)
def test_rate_matrix_rows_sum_to_zero_with_nonnegative_jumps(graph):
    Q = graph.rate_matrix()
    assert torch.allclose(Q.sum(1), torch.zeros(graph.dim, dtype=Q.dtype), atol=1e-12)
    off = Q - torch.diag(Q.diagonal())
    assert (off >= 0).all()


@pytest.mark.parametrize("graph", GRAPHS, ids=repr)
@pytest.mark.parametrize("sigma", [1e-3, 0.3, 2.0, 9.0])
def test_closed_form_transition_is_the_matrix_exponential(graph, sigma):
    P = torch.linalg.matrix_exp(sigma * graph.rate_matrix())
    x0 = torch.arange(graph.dim)[None]
    closed = graph.transition(x0, torch.tensor([[sigma]]))[0]
    assert torch.allclose(closed, P, atol=1e-12)


@pytest.mark.parametrize("graph", GRAPHS, ids=repr)
def test_transp_transition_and_staggered_score_are_matrix_exponentials(graph):
    dsigma = torch.tensor([[0.7]], dtype=torch.float64)
    Q = graph.rate_matrix()
    x = torch.arange(graph.dim)[None]  # every state once
    col = graph.transp_transition(x, dsigma)[0]  # (dim, dim): row k is exp(dsigma Q)[:, k]
    assert torch.allclose(col, torch.linalg.matrix_exp(0.7 * Q).T, atol=1e-12)
    score = torch.rand(1, 3, graph.dim, generator=gen(0), dtype=torch.float64)
    staggered = graph.staggered_score(score.clone(), dsigma)
    assert torch.allclose(staggered, score @ torch.linalg.matrix_exp(-0.7 * Q), atol=1e-12)


def _brute_force_dse(graph, log_score, sigma, x, x0):
    """sum_{y != x} Q[y, x] (s_y - r_y log s_y + K(r_y)) with r from the matrix exponential."""
    P = torch.linalg.matrix_exp(sigma * graph.rate_matrix())
    Q = graph.rate_matrix()
    out = torch.zeros(x.shape, dtype=torch.float64)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            xi, x0i = x[i, j].item(), x0[i, j].item()
            for y in range(graph.dim):
                if y == xi or Q[y, xi] == 0:
                    continue
                r = P[x0i, y] / P[x0i, xi]
                k = r * (math.log(r) - 1) if r > 0 else 0.0
                ls = log_score[i, j, y].double()
                out[i, j] += Q[y, xi] * (ls.exp() - r * ls + k)
    return out


@pytest.mark.parametrize("graph", GRAPHS, ids=repr)
@pytest.mark.parametrize("sigma", [0.05, 1.5])
def test_score_entropy_matches_the_definition(graph, sigma):
    g = gen(1)
    n_real = graph.dim - 1 if isinstance(graph, AbsorbingGraph) else graph.dim
    x0 = torch.randint(n_real, (3, 8), generator=g)
    x = graph.sample_transition(x0, torch.tensor(sigma), generator=g)
    log_score = torch.randn(3, 8, graph.dim, generator=g, dtype=torch.float64)
    dse = graph.score_entropy(log_score, torch.tensor(sigma, dtype=torch.float64), x, x0)
    assert torch.allclose(dse, _brute_force_dse(graph, log_score, sigma, x, x0), atol=1e-10)


@pytest.mark.parametrize("graph", GRAPHS, ids=repr)
def test_score_entropy_is_nonnegative_and_zero_at_the_true_ratio(graph):
    g = gen(2)
    sigma = 0.8
    n_real = graph.dim - 1 if isinstance(graph, AbsorbingGraph) else graph.dim
    x0 = torch.randint(n_real, (4, 16), generator=g)
    x = graph.sample_transition(x0, torch.tensor(sigma), generator=g)
    P = graph.transition(x0, torch.tensor(sigma, dtype=torch.float64))  # (N, L, dim) p(. | x0)
    true_ratio = P / P.gather(-1, x[..., None])
    sig = torch.tensor(sigma, dtype=torch.float64)
    at_truth = graph.score_entropy(true_ratio.clamp(min=1e-300).log(), sig, x, x0)
    assert at_truth.abs().max() < 1e-12
    for scale in [0.5, 2.0]:
        off = graph.score_entropy((true_ratio * scale).clamp(min=1e-300).log(), sig, x, x0)
        assert (off >= -1e-12).all()
        assert off.sum() > 0
    random = graph.score_entropy(torch.randn(4, 16, graph.dim, generator=g, dtype=torch.float64), sig, x, x0)
    assert (random >= -1e-12).all()


@pytest.mark.parametrize("graph", GRAPHS, ids=repr)
def test_sample_transition_matches_the_closed_form(graph):
    sigma = torch.tensor(0.6)
    x0 = torch.full((20_000, 1), 2)
    x = graph.sample_transition(x0, sigma, generator=gen(3))
    freq = torch.bincount(x[:, 0], minlength=graph.dim).double() / len(x)
    expected = graph.transition(x0[:1], sigma)[0, 0]
    assert torch.allclose(freq, expected, atol=0.015)


def test_sampling_is_deterministic_per_generator():
    for graph in GRAPHS:
        x0 = torch.randint(graph.dim - 1, (4, 9), generator=gen(0))
        a = graph.sample_transition(x0, torch.tensor(0.5), generator=gen(7))
        b = graph.sample_transition(x0, torch.tensor(0.5), generator=gen(7))
        assert torch.equal(a, b)
    assert torch.equal(
        UniformGraph(6).sample_limit((3, 4), generator=gen(1)),
        UniformGraph(6).sample_limit((3, 4), generator=gen(1)),
    )
    assert (AbsorbingGraph(5).sample_limit((2, 3)) == 5).all()


def test_prior_kl():
    x0 = torch.zeros(1, 4, dtype=torch.long)
    assert AbsorbingGraph(5).prior_kl(x0, math.inf).sum() == 0
    assert math.isinf(AbsorbingGraph(5).prior_kl(x0, 5.0).sum())
    assert UniformGraph(6).prior_kl(x0, math.inf).sum() == 0
    p = UniformGraph(6).transition(x0[:, :1], torch.tensor(3.0))[0, 0]
    kl = (p * (p * 6).log()).sum()
    assert torch.isclose(UniformGraph(6).prior_kl(x0, 3.0)[0, 0], kl)


@pytest.mark.parametrize(
    "noise", [loglinear_noise(), loglinear_noise(0.0), geometric_noise(1e-3, 20.0)], ids=repr
)
def test_noise_rate_is_the_derivative_of_the_total(noise):
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    numeric = (noise.total(t + h) - noise.total(t - h)) / (2 * h)
    assert torch.allclose(noise.rate(t), numeric, rtol=1e-6)
    assert torch.allclose(noise.move_chance(t), -torch.expm1(-noise.total(t)), atol=1e-12)


def test_loglinear_moves_tokens_with_probability_t():
    t = torch.linspace(0, 0.99, 11, dtype=torch.float64)
    assert torch.allclose(-torch.expm1(-loglinear_noise(0.0).total(t)), t, atol=1e-12)
    assert loglinear_noise(0.0).total(torch.tensor(0.0)) == 0


def test_bad_input():
    with pytest.raises(ValueError):
        AbsorbingGraph(0)
    with pytest.raises(ValueError):
        UniformGraph(1)
    with pytest.raises(ValueError):
        loglinear_noise(1.0)
    with pytest.raises(ValueError):
        geometric_noise(1.0, 0.5)
    with pytest.raises(ValueError, match="states"):
        AbsorbingGraph(5).sample_transition(torch.tensor([[0, 6]]), torch.tensor(0.5))
    with pytest.raises(ValueError, match="states"):
        UniformGraph(5).sample_transition(torch.tensor([[-1, 2]]), torch.tensor(0.5))
    with pytest.raises(TypeError):
        UniformGraph(5).sample_transition(torch.tensor([[1, 2]]), torch.tensor(0.5), generator=3)
