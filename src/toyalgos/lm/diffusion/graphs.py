"""Forward processes of discrete diffusion: the absorbing and the uniform graph, and their noise schedules.

SEDD (Lou, Meng & Ermon 2024, "Discrete Diffusion Modeling by Estimating the Ratios of the
Data Distribution", §2 and §3.3) corrupts every token independently with a continuous-time
Markov chain on the vocabulary {0..n-1}: dp_t/dt = p_t Q_t with Q_t = sigma(t) Q. Here Q is
written as rows, ``Q[i, j]`` the rate of the jump i -> j (i != j), each row summing to 0 (the
reference writes its transpose, columns). With the integrated noise
sigma_bar(t) = int_0^t sigma(s) ds the transition has a closed form,

    p_t(x_t = j | x_0 = i) = exp(sigma_bar(t) Q)[i, j]          (Eq. 2, per token)

for the two graphs of the paper (§3.3; reference ``graph_lib.py``):

- ``AbsorbingGraph``: every token jumps to MASK (the last id, n - 1) at rate 1:
  p(x_0) = e^{-sigma_bar}, p(MASK) = 1 - e^{-sigma_bar}. The limit is all MASK.
- ``UniformGraph``: every token jumps to any token at rate 1/n (Q = 11^T / n - I, the
  reference's normalisation): p(j) = (1 - e^{-sigma_bar}) / n + e^{-sigma_bar} [j = x_0]. The
  limit is uniform.

Each graph also holds the closed forms the loss and the samplers need: the denoising score
entropy of one position (Eq. 9 with the ratio p(y|x_0) / p(x|x_0) known), the reverse rate
Q[y, x] s_y (Eq. 5), and the two factors of the Tweedie step (Thm 4.2): the column
exp(dsigma Q)[:, x] and the "staggered" score s exp(-dsigma Q).

Noise schedules (reference ``noise_lib.py``), each giving sigma_bar(t) and sigma(t) on t in [0, 1]:

- ``loglinear_noise(eps)``: sigma_bar(t) = -log(1 - (1 - eps) t), so a token has moved with
  probability 1 - e^{-sigma_bar} = (1 - eps) t: MDLM's and LLaDA's linear masking rate.
- ``geometric_noise(sigma_min, sigma_max)``: sigma_bar(t) = sigma_min^{1-t} sigma_max^t.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from toyalgos.core.checks import check_generator, check_int, check_number

from ..checks import check_tokens

# --------------------------------------------------------------------------------- noise schedules


class DiscreteNoise:
    """A noise schedule on t in [0, 1]: ``total(t)`` = sigma_bar(t), ``rate(t)`` = d sigma_bar / dt.

    ``schedule(t)`` returns both, as the reference's ``noise(t)``; ``move_chance(t)`` is
    1 - e^{-sigma_bar(t)}, the probability that a token has left x_0 under the absorbing graph.
    """

    def total(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def move_chance(self, t: torch.Tensor) -> torch.Tensor:
        """1 - e^{-sigma_bar(t)}."""
        return -torch.expm1(-self.total(t))

    def __call__(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.total(t), self.rate(t)


class LogLinearNoise(DiscreteNoise):
    """sigma_bar(t) = -log(1 - (1 - eps) t), sigma(t) = (1 - eps) / (1 - (1 - eps) t)."""

    def __init__(self, eps: float = 1e-3):
        self.eps = check_number(eps, "eps", 0, 1, high_open=True)

    def __repr__(self) -> str:
        return f"LogLinearNoise(eps={self.eps:g})"

    def total(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log1p(-(1 - self.eps) * t)

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return (1 - self.eps) / (1 - (1 - self.eps) * t)

    def move_chance(self, t: torch.Tensor) -> torch.Tensor:
        """(1 - eps) t exactly (equal to 1 - e^{-sigma_bar(t)}), as LLaDA's masking probability."""
        return (1 - self.eps) * t


class GeometricNoise(DiscreteNoise):
    """sigma_bar(t) = sigma_min^{1-t} sigma_max^t, sigma(t) = sigma_bar(t) log(sigma_max / sigma_min)."""

    def __init__(self, sigma_min: float = 1e-3, sigma_max: float = 1.0):
        self.sigma_min = check_number(sigma_min, "sigma_min", 0, low_open=True)
        self.sigma_max = check_number(sigma_max, "sigma_max", sigma_min, low_open=True)

    def __repr__(self) -> str:
        return f"GeometricNoise(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"

    def total(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min ** (1 - t) * self.sigma_max**t

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return self.total(t) * math.log(self.sigma_max / self.sigma_min)


def loglinear_noise(eps: float = 1e-3) -> LogLinearNoise:
    """The log-linear schedule (SEDD's and MDLM's default for the absorbing graph), eps = 1e-3."""
    return LogLinearNoise(eps)


def geometric_noise(sigma_min: float = 1e-3, sigma_max: float = 1.0) -> GeometricNoise:
    """The geometric schedule (SEDD's for the uniform graph, there with sigma_max = 20)."""
    return GeometricNoise(sigma_min, sigma_max)


# ------------------------------------------------------------------------------------------ graphs


def _k(a: torch.Tensor) -> torch.Tensor:
    """K(a) = a (log a - 1), the constant that makes the score entropy 0 at s = a (K(0) = 0)."""
    return torch.where(a > 0, a * (a.clamp(min=1e-300).log() - 1), torch.zeros_like(a))


def _expm1(sigma: torch.Tensor) -> torch.Tensor:
    """e^sigma - 1, accurate for small sigma."""
    return torch.expm1(sigma)


class Graph:
    """A forward process on states 0..dim-1: what both graphs share (checks, the reverse rate from Q)."""

    dim: int

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"

    def _check_states(self, x: object, name: str = "x") -> torch.Tensor:
        x = check_tokens(x, name, min_length=1)
        if x.numel() and (x.min() < 0 or x.max() >= self.dim):
            raise ValueError(
                f"{name} must hold states in [0, {self.dim}), got {x.min().item()}..{x.max().item()}"
            )
        return x

    def rate_matrix(self) -> torch.Tensor:
        """Q ``(dim, dim)`` float64: ``Q[i, j]`` the rate of the jump i -> j, rows summing to 0."""
        raise NotImplementedError

    def reverse_rate(self, x: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """Reverse rate out of ``x`` (Eq. 5): Q[y, x] s_y, diagonal -sum; ``(N, L, dim)``.

        ``score`` is the concrete score s_y ~ p_t(y) / p_t(x) (not its log), ``(N, L, dim)``.
        """
        into_x = self.rate_matrix().to(score).T[x]  # (N, L, dim): Q[y, x]
        rate = into_x * score
        rate = rate.scatter(-1, x[..., None], 0.0)
        return rate.scatter(-1, x[..., None], -rate.sum(-1, keepdim=True))


class AbsorbingGraph(Graph):
    """Every token jumps to MASK at rate 1; MASK is the last state, ``mask_id = n_tokens``.

    Args:
        n_tokens: number of real tokens; the graph has ``dim = n_tokens + 1`` states.
    """

    def __init__(self, n_tokens: int):
        self.n_tokens = check_int(n_tokens, "n_tokens", 1)
        self.dim = n_tokens + 1
        self.mask_id = n_tokens

    def rate_matrix(self) -> torch.Tensor:
        """Q[i, MASK] = 1, Q[i, i] = -1 for every token i; the MASK row is 0."""
        Q = -torch.eye(self.dim, dtype=torch.float64)
        Q[:, self.mask_id] += 1.0
        return Q

    def transition(self, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """p(x_t = . | x_0) ``(..., dim)``: e^{-sigma} on x_0, 1 - e^{-sigma} on MASK (1 if x_0 is MASK).

        ``sigma`` broadcasts against ``x0`` (one value per sequence: shape ``(N, 1)``).
        """
        stay = torch.exp(-torch.as_tensor(sigma, dtype=torch.float64)).expand(x0.shape)
        p = F.one_hot(x0, self.dim).double() * stay[..., None]
        return p + F.one_hot(torch.full_like(x0, self.mask_id), self.dim) * (1 - p.sum(-1, keepdim=True))

    def sample_transition(
        self, x0: torch.Tensor, sigma: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """x_t ~ p_t(. | x_0): each token becomes MASK with probability 1 - e^{-sigma}."""
        return self.sample_moves(x0, -torch.expm1(-torch.as_tensor(sigma)), generator=generator)

    def sample_moves(
        self, x0: torch.Tensor, move_chance: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """x_t with each token masked with probability ``move_chance`` (broadcast, e.g. ``(N, 1)``)."""
        self._check_states(x0, "x0")
        check_generator(generator)
        move = torch.rand(x0.shape, generator=generator).to(x0.device) < move_chance
        return torch.where(move, self.mask_id, x0)

    def sample_limit(
        self, shape: tuple[int, int], *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The limit of the forward process: all MASK (nothing to draw)."""
        check_generator(generator)
        return torch.full(shape, self.mask_id, dtype=torch.long)

    def prior_kl(self, x0: torch.Tensor, sigma: float) -> torch.Tensor:
        """KL(p_1(. | x_0) || all MASK) per token: 0 when sigma = inf, else inf (x_0 kept w.p. e^{-sigma})."""
        return torch.full(x0.shape, 0.0 if math.isinf(sigma) else math.inf, dtype=torch.float64)

    def score_entropy(
        self, log_score: torch.Tensor, sigma: torch.Tensor, x: torch.Tensor, x0: torch.Tensor
    ) -> torch.Tensor:
        """Denoising score entropy of every position (Eq. 9), ``(N, L)``, before the weight sigma(t).

        Only a MASK can be reached from another state (Q[y, MASK] = 1 for y != MASK), and the
        true ratio p(y | x_0) / p(MASK | x_0) is r = 1 / (e^sigma - 1) at y = x_0, else 0:

            DSE = sum_{y != MASK} s_y - r log s_{x_0} + r (log r - 1)   at masked positions, 0 elsewhere.
        """
        masked = x == self.mask_id
        r = 1.0 / _expm1(sigma.double()).expand(x.shape)  # (N, L)
        log_s = log_score.double()
        pos = log_s.exp().sum(-1) - log_s[..., self.mask_id].exp()  # sum over y != MASK
        neg = r * log_s.gather(-1, x0[..., None])[..., 0]
        entropy = pos - neg + _k(r)
        return torch.where(masked, entropy, torch.zeros_like(entropy)).to(log_score.dtype)

    def transp_transition(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The column exp(sigma Q)[:, x] ``(N, L, dim)``: p(x_t = x | x_s = y) after a step of sigma."""
        stay = torch.exp(-sigma).expand(x.shape)[..., None]  # (N, L, 1)
        col = F.one_hot(x, self.dim).to(stay) * stay
        return col + (x == self.mask_id)[..., None].to(stay) * (1 - stay)

    def staggered_score(self, score: torch.Tensor, dsigma: torch.Tensor) -> torch.Tensor:
        """s exp(-dsigma Q) e^{dsigma} s_y (y != M), s_M + (1 - e^{dsigma}) sum_{y != M} s_y."""
        e = torch.exp(dsigma)[..., None]  # (N, 1, 1)
        out = score * e
        extra = (1 - e[..., 0]) * (score.sum(-1) - score[..., self.mask_id])
        out[..., self.mask_id] = score[..., self.mask_id] + extra
        return out


class UniformGraph(Graph):
    """Every token jumps to every token at rate 1/n: Q = 11^T / n - I (``dim = n_tokens``)."""

    def __init__(self, n_tokens: int):
        self.n_tokens = check_int(n_tokens, "n_tokens", 2)
        self.dim = n_tokens

    def rate_matrix(self) -> torch.Tensor:
        """Q[i, j] = 1/n for j != i, Q[i, i] = 1/n - 1."""
        return torch.full((self.dim, self.dim), 1.0 / self.dim, dtype=torch.float64) - torch.eye(
            self.dim, dtype=torch.float64
        )

    def transition(self, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """p(x_t = . | x_0) ``(..., dim)``: (1 - e^{-sigma}) / n everywhere, plus e^{-sigma} on x_0."""
        stay = torch.exp(-torch.as_tensor(sigma, dtype=torch.float64)).expand(x0.shape)[..., None]
        return (1 - stay) / self.dim + F.one_hot(x0, self.dim).double() * stay

    def sample_transition(
        self, x0: torch.Tensor, sigma: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """x_t ~ p_t(. | x_0): with probability 1 - e^{-sigma} a token is redrawn uniformly (maybe itself)."""
        return self.sample_moves(x0, -torch.expm1(-torch.as_tensor(sigma)), generator=generator)

    def sample_moves(
        self, x0: torch.Tensor, move_chance: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """x_t with each token redrawn uniformly with probability ``move_chance`` (broadcast)."""
        self._check_states(x0, "x0")
        check_generator(generator)
        move = torch.rand(x0.shape, generator=generator).to(x0.device) < move_chance
        new = torch.randint(self.dim, x0.shape, generator=generator).to(x0.device)
        return torch.where(move, new, x0)

    def sample_limit(
        self, shape: tuple[int, int], *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The limit of the forward process: uniform tokens."""
        check_generator(generator)
        return torch.randint(self.dim, shape, generator=generator)

    def prior_kl(self, x0: torch.Tensor, sigma: float) -> torch.Tensor:
        """KL(p_1(. | x_0) || uniform) per token, in nats (0 when sigma = inf)."""
        n = self.dim
        stay = math.exp(-sigma)
        a, b = stay + (1 - stay) / n, (1 - stay) / n
        kl = a * math.log(a * n) + ((n - 1) * b * math.log(b * n) if b > 0 else 0.0)
        return torch.full(x0.shape, kl, dtype=torch.float64)

    def score_entropy(
        self, log_score: torch.Tensor, sigma: torch.Tensor, x: torch.Tensor, x0: torch.Tensor
    ) -> torch.Tensor:
        """Denoising score entropy of every position (Eq. 9), ``(N, L)``, before the weight sigma(t).

        Every y != x reaches x at rate 1/n. With e = e^sigma - 1 the true ratios
        p(y | x_0) / p(x | x_0) are, for y != x: e / (e + n) when x = x_0; when x != x_0,
        1 + n / e at y = x_0 and 1 elsewhere. The score entropy is
        (1/n) sum_{y != x} [s_y - r_y log s_y + K(r_y)], K(a) = a (log a - 1).
        """
        n = self.dim
        e = _expm1(sigma.double()).expand(x.shape)
        log_s = log_score.double()
        log_s_x = log_s.gather(-1, x[..., None])[..., 0]
        log_s_x0 = log_s.gather(-1, x0[..., None])[..., 0]
        pos = (log_s.exp().sum(-1) - log_s_x.exp()) / n
        others = log_s.sum(-1) - log_s_x  # sum_{y != x} log s_y
        same = x == x0
        r_same = e / (e + n)
        neg = torch.where(same, r_same * others, others + (n / e) * log_s_x0) / n
        const = torch.where(same, (n - 1) * _k(r_same), _k(1 + n / e) - (n - 2)) / n
        return (pos - neg + const).to(log_score.dtype)

    def transp_transition(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The column exp(sigma Q)[:, x] ``(N, L, dim)`` (the matrix is symmetric: the row of x)."""
        stay = torch.exp(-sigma).expand(x.shape)[..., None]
        return (1 - stay) / self.dim + F.one_hot(x, self.dim).to(stay) * stay

    def staggered_score(self, score: torch.Tensor, dsigma: torch.Tensor) -> torch.Tensor:
        """s exp(-dsigma Q) ``(N, L, dim)`` = e^{dsigma} s + (1 - e^{dsigma}) / n sum_y s_y."""
        e = torch.exp(dsigma)[..., None]
        return e * score + (1 - e) / self.dim * score.sum(-1, keepdim=True)


def check_graph(graph: object) -> Graph:
    """``graph`` if it is one of the two graphs."""
    if not isinstance(graph, (AbsorbingGraph, UniformGraph)):
        raise TypeError(f"graph must be an AbsorbingGraph or a UniformGraph, got {type(graph).__name__}")
    return graph


def check_noise(noise: object) -> DiscreteNoise:
    """``noise`` if it is a ``DiscreteNoise``."""
    if not isinstance(noise, DiscreteNoise):
        raise TypeError(f"noise must be a DiscreteNoise (loglinear_noise(), ...), got {type(noise).__name__}")
    return noise
