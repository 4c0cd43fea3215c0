"""Score entropy discrete diffusion: SEDD (Lou, Meng & Ermon, ICML 2024, arXiv:2310.16834).

Instead of a denoiser, SEDD learns the concrete score s_theta(x_t, t)_y ~ p_t(y) / p_t(x_t) for
every y one token away from x_t: a ratio, so the normalising constant of p_t cancels. The
training objective is the diffusion-weighted denoising score entropy (DWDSE, Eq. 9 and Thm 3.6)

    L(x_0) = int_0^1 E_{x_t ~ p_t(.|x_0)} sum_{y != x_t} sigma(t) Q(y, x_t)
             [ s_y - (p(y|x_0) / p(x_t|x_0)) log s_y + K(p(y|x_0) / p(x_t|x_0)) ] dt,

K(a) = a (log a - 1), which is >= 0, 0 exactly at the true ratio, and with the prior term
KL(p_1(.|x_0) || p_limit) an upper bound on -log p_theta(x_0) (``sedd_nll_bound``). The graphs'
closed forms live in ``graphs``; ``score_entropy_loss`` draws t and x_t and weights by
sigma(t) as the reference's ``losses.py``.

The score networks, ``model(x_t, sigma) -> log s (N, L, dim)``:

- ``AbsorbingScore(net)``: for the absorbing graph the true score at a MASK factorises into
  a time-independent conditional times a known function of time (SEDD §3.3 "scaling";
  MDLM's SUBS), s_y = p_theta(x_0 = y | x_t) / (e^{sigma_bar} - 1), so ``net`` is an
  ordinary mask predictor ``net(x_t) -> logits`` without a time input, and the DWDSE is then
  exactly the 1/t-weighted masked cross-entropy (MDLM's loss).
- ``UniformScore(net)``: for the uniform graph the ratios depend on the noise level, so the
  Transformer is told it: an MLP of a sinusoidal embedding of 1 - e^{-sigma_bar} (the share
  of tokens resampled, in [0, 1]) is added to the token embeddings.

Samplers of the reverse chain (reference ``sampling.py``), from t = 1 to t = eps on ``steps``
equal steps, then one last denoising step to t = 0 (``noise_removal``), all tokens in parallel:

- ``'euler'`` (tau-leaping): x_{t - dt} ~ delta_{x_t} + dt sigma(t) R_theta(x_t), with
  R_theta(x_t)[y] = Q(y, x_t) s_theta(x_t)_y the reverse rate (Eq. 5).
- ``'tweedie'`` (Thm 4.2): p(x_s = y | x_t) ~ [s_theta exp(-dsigma Q)]_y exp(dsigma Q)(y, x_t),
  dsigma = sigma_bar(t) - sigma_bar(s): exact for one token with the true score.

For the absorbing graph with the log-linear schedule and a normalised score both steps unmask
a MASK with probability dt / t and draw it from p_theta, so the two samplers coincide there;
they differ for the uniform graph.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Samples, evaluating, model_device
from toyalgos.core.checks import check_choice, check_generator, check_number, check_positive_int
from toyalgos.nn import Transformer, sinusoidal_embedding

from ..sampling import gumbel_argmax
from .graphs import AbsorbingGraph, DiscreteNoise, Graph, check_graph, check_noise

SAMPLERS = ("euler", "tweedie")

# ------------------------------------------------------------------------------ score networks


class AbsorbingScore(nn.Module):
    """log s_theta(x_t, sigma) for the absorbing graph from a mask predictor ``net(x_t) -> logits``.

    At a MASK: log s_y = log_softmax over the real tokens of the logits - log(e^sigma - 1) for
    y != MASK (the MASK logit is never used), 0 at MASK itself. At a visible token x (whose
    score the loss and the samplers never use, since only a MASK can be left): 0 at x,
    log(e^sigma - 1) at MASK, -inf elsewhere (MDLM's ``get_score``).
    """

    def __init__(self, net: nn.Module, mask_id: int):
        super().__init__()
        self.net = net
        self.mask_id = mask_id

    def forward(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        logits = self.net(x_t).float()  # (N, L, dim)
        is_mask = F.one_hot(torch.tensor(self.mask_id), logits.shape[-1]).bool()
        log_p = F.log_softmax(logits.masked_fill(is_mask, -torch.inf), dim=-1)
        log_e = torch.log(torch.expm1(sigma.float())).reshape(-1, 1, 1)  # (N, 1, 1)
        masked_row = (log_p - log_e).masked_fill(is_mask, 0.0)
        visible_row = torch.full_like(log_p, -torch.inf).scatter(-1, x_t[..., None], 0.0)
        visible_row = torch.where(is_mask, log_e.expand_as(log_p), visible_row)
        return torch.where((x_t == self.mask_id)[..., None], masked_row, visible_row)


class UniformScore(nn.Module):
    """log s_theta(x_t, sigma) for the uniform graph: a bidirectional ``Transformer`` told the noise level.

    The noise enters as c = MLP(sinusoidal(1000 m)), m = 1 - e^{-sigma} in [0, 1], added to
    every position's token embedding; then the Transformer's own blocks, norm and head give
    the log scores, with log s = 0 at x_t itself (the reference's last ``scatter``).
    """

    def __init__(self, net: Transformer, n_frequencies: int = 32):
        super().__init__()
        if not isinstance(net, Transformer):
            raise TypeError(f"net must be a toyalgos.nn.Transformer, got {type(net).__name__}")
        d = net.config.d_model
        self.net = net
        self.n_frequencies = n_frequencies
        self.noise_mlp = nn.Sequential(nn.Linear(n_frequencies, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, x_t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        net = self.net
        L = x_t.shape[1]
        positions = torch.arange(L, device=x_t.device)
        moved = -torch.expm1(-sigma.float().reshape(-1))  # (N,)
        h = net.tok_emb(x_t) + self.noise_mlp(sinusoidal_embedding(1000 * moved, self.n_frequencies))[:, None]
        if net.pos_emb is not None:
            h = h + net.pos_emb(positions)
        for block in net.blocks:
            h = block(h, positions)
        log_score = net.head(net.norm(h)).float()
        return log_score.scatter(-1, x_t[..., None], 0.0)


# ------------------------------------------------------------------------------------------ loss


def _check_loss(
    x: torch.Tensor, graph: object, noise: object, sampling_eps: float, generator: object
) -> None:
    check_graph(graph)._check_states(x)
    check_noise(noise)
    check_number(sampling_eps, "sampling_eps", 0, 1, high_open=True)
    check_generator(generator)


def _dwdse(
    model: nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    graph: Graph,
    noise: DiscreteNoise,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """sigma(t) DSE summed over positions, one t per row: ``(N,)``. The integrand of the DWDSE."""
    sigma, dsigma = noise(t.double())  # (N,)
    x_t = graph.sample_moves(x, noise.move_chance(t)[:, None], generator=generator)
    log_score = model(x_t, sigma.float().to(x.device))
    entropy = graph.score_entropy(log_score, sigma[:, None].to(x.device), x_t, x)  # (N, L)
    return dsigma.to(entropy)[:, None].mul(entropy).sum(1)


def score_entropy_loss(
    model: nn.Module,
    x: torch.Tensor,
    *,
    graph: Graph,
    noise: DiscreteNoise,
    sampling_eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The DWDSE training loss (SEDD Eq. 9, ``losses.py``), per token: sum over the batch / (N L).

    ``x`` ``(N, L)`` holds states of ``graph`` (no MASK). t = (1 - sampling_eps) u + sampling_eps,
    u ~ U[0, 1) per sequence; x_t ~ p_t(. | x) (``graph.sample_moves`` with 1 - e^{-sigma_bar(t)}:
    the same draws as ``mdlm_loss``); ``model(x_t, sigma_bar(t))`` gives log scores. The
    reference sums over positions and averages over sequences; dividing by L more makes the
    value comparable with a per-token NLL.
    """
    _check_loss(x, graph, noise, sampling_eps, generator)
    t = (1 - sampling_eps) * torch.rand(x.shape[0], generator=generator) + sampling_eps
    return _dwdse(model, x, t, graph, noise, generator).sum() / x.numel()


class NLLBound(NamedTuple):
    """``sedd_nll_bound``'s result: the bound per token, its standard error, and per sequence."""

    value: float  # nats per token, mean over sequences
    se: float  # standard error of ``value`` over sequences
    per_sequence: torch.Tensor  # (N,) nats per token
    n_samples: int  # Monte Carlo draws of t per sequence


def sedd_nll_bound(
    model: nn.Module,
    x: torch.Tensor,
    *,
    graph: Graph,
    noise: DiscreteNoise,
    n_samples: int = 32,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
) -> NLLBound:
    """Monte Carlo estimate of SEDD's bound on -log p_theta(x_0) (Thm 3.6), nats per token.

    Per sequence: the DWDSE integral int_0^1 sigma(t) E[DSE] dt over ``n_samples`` stratified
    times t_j = (j + u) / S (u ~ U[0, 1) per sequence, one x_t per time), plus the prior term
    KL(p_1(. | x_0) || limit) in closed form, divided by L. The prior term is 0 when
    sigma_bar(1) = inf (``loglinear_noise(eps=0)``) and infinite for the absorbing graph with
    eps > 0 (the source then leaks through at t = 1): evaluate with eps = 0. The standard error
    is that of the mean over sequences. Rows go through the model ``batch_size`` at a time, in
    eval mode.
    """
    _check_loss(x, graph, noise, 0.0, generator)
    check_positive_int(n_samples, "n_samples")
    check_positive_int(batch_size, "batch_size")
    N, L = x.shape
    u = torch.rand(N, 1, generator=generator, dtype=torch.float64)
    t = ((torch.arange(n_samples, dtype=torch.float64) + u) / n_samples).reshape(-1).clamp(1e-9, 1 - 1e-9)
    rows = x.repeat_interleave(n_samples, dim=0)
    with evaluating(model):
        values = torch.cat(
            [
                _dwdse(model, xb, tb, graph, noise, generator).double()
                for xb, tb in zip(rows.split(batch_size), t.split(batch_size), strict=True)
            ]
        )
    sigma_1 = float(noise.total(torch.tensor(1.0, dtype=torch.float64)))
    prior = graph.prior_kl(x, sigma_1).sum(1)  # (N,)
    per_sequence = (values.view(N, n_samples).mean(1).cpu() + prior) / L
    se = per_sequence.std() / math.sqrt(N) if N > 1 else torch.tensor(math.nan)
    return NLLBound(per_sequence.mean().item(), se.item(), per_sequence, n_samples)


# -------------------------------------------------------------------------------------- sampling


def _euler_step(
    model: nn.Module,
    x: torch.Tensor,
    t: float,
    dt: float,
    graph: Graph,
    noise: DiscreteNoise,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One tau-leaping step t -> t - dt: delta_x + dt sigma(t) R_theta(x), then a categorical draw."""
    sigma, dsigma = noise(torch.tensor(t, dtype=torch.float64))
    score = model(x, sigma.float().expand(x.shape[0])).double().exp()
    probs = F.one_hot(x, graph.dim).double() + dt * dsigma * graph.reverse_rate(x, score)
    return gumbel_argmax(probs.clamp(min=0).log(), 1.0, generator=generator)


def _tweedie_step(
    model: nn.Module,
    x: torch.Tensor,
    t: float,
    s: float,
    graph: Graph,
    noise: DiscreteNoise,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One analytic step t -> s (Thm 4.2): [s_theta exp(-dsigma Q)]_y exp(dsigma Q)(y, x), s = 0 allowed."""
    sigma_t = noise.total(torch.tensor(t, dtype=torch.float64))
    sigma_s = (
        noise.total(torch.tensor(s, dtype=torch.float64)) if s > 0 else torch.zeros((), dtype=torch.float64)
    )
    dsigma = (sigma_t - sigma_s).expand(x.shape[0]).reshape(-1, 1)  # (N, 1)
    score = model(x, sigma_t.float().expand(x.shape[0])).double().exp()
    probs = graph.staggered_score(score, dsigma) * graph.transp_transition(x, dsigma)
    if isinstance(graph, AbsorbingGraph) and s == 0:
        probs[..., graph.mask_id] = 0.0  # the last step removes every MASK
    return gumbel_argmax(probs.clamp(min=0).log(), 1.0, generator=generator)


def _check_sample(
    shape: object, graph: object, noise: object, steps: int, sampler: str, eps: float, generator: object
) -> tuple[int, int]:
    check_graph(graph)
    check_noise(noise)
    check_positive_int(steps, "steps")
    check_choice(sampler, "sampler", SAMPLERS)
    check_number(eps, "eps", 0, 1, low_open=True, high_open=True)
    check_generator(generator)
    if not (isinstance(shape, tuple) and len(shape) == 2):
        raise TypeError(f"shape must be a tuple (N, L), got {shape!r}")
    return check_positive_int(shape[0], "shape[0]"), check_positive_int(shape[1], "shape[1]")


def sedd_sample(
    model: nn.Module,
    shape: tuple[int, int],
    *,
    graph: Graph,
    noise: DiscreteNoise,
    steps: int,
    sampler: str = "euler",
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> Samples:
    """Draw ``shape = (N, L)`` sequences with the reverse chain (reference ``get_pc_sampler``).

    Start from the graph's limit (all MASK, or uniform tokens); take ``steps`` steps of
    ``sampler`` (``'euler'`` or ``'tweedie'``) on the grid t_k = 1 - k (1 - eps) / steps; then
    one Tweedie step from t = eps to 0 that removes any MASK left (the reference's
    ``noise_removal``, used by both samplers).

    Returns:
        ``Samples(x, nfe=steps + 1, trajectory)``: ``x`` ``(N, L)`` states, ``trajectory``
        ``(steps + 2, N, L)`` from the start to the end, or None.
    """
    N, L = _check_sample(shape, graph, noise, steps, sampler, eps, generator)
    x = graph.sample_limit((N, L), generator=generator).to(model_device(model))
    trajectory = [x]
    grid = torch.linspace(1, eps, steps + 1, dtype=torch.float64).tolist()
    with evaluating(model):
        for t, s in zip(grid[:-1], grid[1:], strict=True):
            if sampler == "euler":
                x = _euler_step(model, x, t, t - s, graph, noise, generator)
            else:
                x = _tweedie_step(model, x, t, s, graph, noise, generator)
            trajectory.append(x)
        x = _tweedie_step(model, x, eps, 0.0, graph, noise, generator)
        trajectory.append(x)
    return Samples(x, steps + 1, torch.stack(trajectory) if return_trajectory else None)
