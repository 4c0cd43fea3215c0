"""A toy corpus whose true entropy is known: a sparse Markov chain, and its Bayes-optimal predictor.

Why a Markov chain. A language model's test NLL can only be judged against the entropy of the
text, which real text never reveals. A stationary first-order Markov chain over a dozen symbols
gives it exactly (``MarkovSource.entropy_per_token``), scores any sample exactly
(``log_prob``), and says when a sample is impossible (``is_valid``: it uses a transition of
probability zero). ``MarkovSource.random`` makes the chain sparse: every symbol has only
``branching`` (default 3) possible successors, with Dirichlet(1) weights, so a few transitions
are strong and the rest forbidden. The chain of
``MarkovSource.random(generator=torch.Generator().manual_seed(0))`` (12 symbols) has an entropy
rate of 0.893 nats per token, 0.935 per token on 32-token sequences (the first token costs
H(pi) = 2.22): a model has something to learn and a perfect one stays far from 0. Forbidden
transitions make invalid samples easy to spot, and the conditionals a masked model needs,
p(x^i | nearest visible neighbours), are powers of the transition matrix (``MarkovOracle``,
the Bayes-optimal predictor, which lives here beside the source it is exact for). Twelve
symbols and sequences of 32 tokens are small enough for a two-layer Transformer to learn on a
CPU in a minute.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from toyalgos.core import numpy_rng
from toyalgos.core.checks import check_generator, check_int, check_number, check_positive_int

from .checks import check_tokens
from .tokenizer import CharTokenizer

NEG_INF = -1e4  # a logit that softmax turns into exactly 0 in float32, without inf arithmetic


def _stationary(P: torch.Tensor) -> torch.Tensor:
    """pi with pi P = pi, sum(pi) = 1 (unique for an irreducible chain)."""
    K = P.shape[0]
    A = torch.cat([P.T - torch.eye(K, dtype=P.dtype), torch.ones(1, K, dtype=P.dtype)])
    b = torch.cat([torch.zeros(K, dtype=P.dtype), torch.ones(1, dtype=P.dtype)])
    pi = torch.linalg.lstsq(A, b[:, None]).solution[:, 0].clamp(min=0)
    return pi / pi.sum()


def _is_irreducible(P: torch.Tensor) -> bool:
    """Every state reaches every other: the reachability closure of the support is full."""
    K = P.shape[0]
    reach = (P > 0) | torch.eye(K, dtype=torch.bool)
    for _ in range(max(1, math.ceil(math.log2(K))) + 1):
        reach = (reach.double() @ reach.double()) > 0
    return bool(reach.all())


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats along the last dimension (0 log 0 = 0)."""
    return -torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum(-1)


class MarkovSource:
    """A stationary first-order Markov chain over the characters of ``alphabet``.

    x^1 ~ pi, the stationary distribution, and x^{i+1} | x^i ~ P[x^i], so every position has
    the same marginal pi and the per-token entropy of a length-L sequence has a closed form:

        H(x^1..x^L) = H(pi) + (L - 1) h,    h = sum_k pi_k H(P[k])  (the entropy rate).

    Sequences are returned as token ids of ``self.tokenizer`` (a ``CharTokenizer`` over the
    alphabet), so they can go straight into a model. All quantities are in nats.

    Args:
        transition: the K x K row-stochastic matrix P; the chain must be irreducible.
        alphabet: K characters naming the states (default the first K lower-case letters).
    """

    def __init__(self, transition: torch.Tensor | Sequence[Sequence[float]], alphabet: str | None = None):
        P = torch.as_tensor(transition, dtype=torch.float64)
        if P.dim() != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 1:
            raise ValueError(f"transition must be a square K x K matrix, got shape {tuple(P.shape)}")
        K = P.shape[0]
        if (P < 0).any() or not torch.allclose(P.sum(1), torch.ones(K, dtype=P.dtype), atol=1e-9):
            raise ValueError("transition must be row-stochastic: non-negative rows that sum to 1")
        if not _is_irreducible(P):
            raise ValueError("transition must be irreducible (every state reachable from every other)")
        if alphabet is None:
            if K > 26:
                raise ValueError(f"give an alphabet for more than 26 states, got K = {K}")
            alphabet = string.ascii_lowercase[:K]
        if len(alphabet) != K:
            raise ValueError(f"alphabet must have {K} characters, got {alphabet!r}")
        self.transition = P / P.sum(1, keepdim=True)
        self.stationary = _stationary(self.transition)
        self.tokenizer = CharTokenizer(alphabet)

    @classmethod
    def random(
        cls,
        n_states: int = 12,
        branching: int = 3,
        concentration: float = 1.0,
        *,
        generator: torch.Generator | None = None,
    ) -> MarkovSource:
        """A sparse random chain: each state has ``branching`` successors with Dirichlet weights.

        One successor of every state follows a random cycle through all states, which makes the
        chain irreducible; the other ``branching - 1`` are drawn uniformly among the rest.
        Weights are Dirichlet(``concentration``): 1 gives a mix of strong and weak transitions.
        The same generator state gives the same chain (drawn by ``numpy_rng(generator)``).
        """
        check_positive_int(n_states, "n_states")
        check_int(branching, "branching", 1, n_states)
        check_number(concentration, "concentration", 0, low_open=True)
        rng = numpy_rng(generator)
        cycle = rng.permutation(n_states)
        successor = np.empty(n_states, dtype=np.int64)
        successor[cycle] = np.roll(cycle, -1)
        scores = rng.random((n_states, n_states))
        scores[np.arange(n_states), successor] = 2.0  # the cycle edge always makes the cut
        support = np.argsort(-scores, axis=1)[:, :branching]
        weights = rng.dirichlet(np.full(branching, concentration), size=n_states)
        P = np.zeros((n_states, n_states))
        P[np.arange(n_states)[:, None], support] = weights
        return cls(torch.from_numpy(P))

    @property
    def n_states(self) -> int:
        return self.transition.shape[0]

    def __repr__(self) -> str:
        return (
            f"MarkovSource(n_states={self.n_states}, entropy_rate={self.entropy_rate():.4f} nats, "
            f"alphabet={self.tokenizer.alphabet!r})"
        )

    def _states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids -> state indices 0..K-1 (0 where not a symbol) and which rows are all symbols."""
        check_tokens(x)
        s = x.cpu() - self.tokenizer.offset
        symbol = (s >= 0) & (s < self.n_states)
        return s.clamp(0, self.n_states - 1), symbol.all(1)

    # ----------------------------------------------------------------------- sampling, scoring

    def sample(self, n: int, length: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` sequences of ``length`` symbols as token ids, shape ``(n, length)``."""
        check_positive_int(n, "n")
        check_positive_int(length, "length")
        check_generator(generator)
        s = torch.empty(n, length, dtype=torch.long)
        s[:, 0] = torch.multinomial(self.stationary, n, replacement=True, generator=generator)
        for i in range(1, length):  # a loop over positions; every draw is vectorised over n
            s[:, i] = torch.multinomial(self.transition[s[:, i - 1]], 1, generator=generator)[:, 0]
        return s + self.tokenizer.offset

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log pi(x^1) + sum_i log P[x^i, x^{i+1}] per sequence, float64 ``(N,)``.

        ``-inf`` for a sequence the source cannot emit: a forbidden transition, or any
        non-symbol token (a special token or a mask, e.g. in a model's sample).
        """
        s, symbols = self._states(x)
        log_p = self.stationary[s[:, 0]].log() + self.transition[s[:, :-1], s[:, 1:]].log().sum(1)
        return torch.where(symbols, log_p, -math.inf)

    def is_valid(self, x: torch.Tensor) -> torch.Tensor:
        """True for the sequences the source can emit (``log_prob > -inf``), bool ``(N,)``."""
        return self.log_prob(x) > -math.inf

    # ----------------------------------------------------------------------------- entropies

    def entropy_rate(self) -> float:
        """h = sum_k pi_k H(P[k]): the entropy of x^{i+1} given x^i, nats per token."""
        return float((self.stationary * _entropy(self.transition)).sum())

    def entropy(self, length: int) -> float:
        """Exact H(x^1..x^L) = H(pi) + (L - 1) h of a whole sequence, in nats."""
        check_positive_int(length, "length")
        return float(_entropy(self.stationary)) + (length - 1) * self.entropy_rate()

    def entropy_per_token(self, length: int) -> float:
        """H(x^1..x^L) / L: the best NLL per token any model can reach on length-L sequences."""
        return self.entropy(length) / length

    def matrix_powers(self, n: int) -> torch.Tensor:
        """P^0, P^1, ..., P^n stacked, shape ``(n + 1, K, K)``: P^d[j, k] = p(x^{i+d} = k | x^i = j)."""
        powers = [torch.eye(self.n_states, dtype=torch.float64)]
        for _ in range(n):
            powers.append(powers[-1] @ self.transition)
        return torch.stack(powers)


class MarkovOracle(nn.Module):
    """The Bayes-optimal predictor for a ``MarkovSource``: ``model(tokens) -> logits (N, L, V)``.

    It needs no training and stands in for a perfect network in tests and figures.

    ``causal=True``: the autoregressive optimum p(x^{i+1} | x^{<=i}) = P[x^i] (pi after a
    non-symbol such as ``<bos>``); its exact NLL on ``add_bos(x)`` is -log p(x).

    ``causal=False``: the mask predictor's optimum p(x_0^i | x_t) at every masked position.
    By the Markov property only the nearest visible symbols matter, at a < i on the left and
    b > i on the right:

        p(x^i = k | x_t) ∝ [P^(i-a)]_{x^a, k} [P^(b-i)]_{k, x^b},

    with pi for the left factor when nothing on the left is visible and 1 for the right one
    when nothing on the right is. Visible positions get a one-hot prediction. Special tokens
    other than the mask count as visible but carry no information, so a leading ``<bos>`` is
    fine. With these conditionals the masked diffusion bound (LLaDA Eq. 3/6) is tight: every
    unmasking order factorises p(x) exactly, so its expectation is -log p(x).

    When the visible symbols are impossible together (a sample gone wrong) the conditional is
    uniform over symbols. Log-probabilities of 0 are written as -1e4.
    """

    def __init__(self, source: MarkovSource, causal: bool = False):
        super().__init__()
        if not isinstance(source, MarkovSource):
            raise TypeError(f"source must be a MarkovSource, got {type(source).__name__}")
        self.source = source
        self.causal = causal
        self.max_len = None
        self.vocab_size = source.tokenizer.vocab_size
        self.register_buffer("transition", source.transition.clone())
        self.register_buffer("stationary", source.stationary.clone())

    def _symbol_logits_to_vocab(self, log_p: torch.Tensor) -> torch.Tensor:
        tok = self.source.tokenizer
        out = torch.full(
            (*log_p.shape[:-1], tok.vocab_size), NEG_INF, dtype=torch.float32, device=log_p.device
        )
        out[..., tok.offset :] = log_p.clamp(min=NEG_INF).float()
        return out

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        check_tokens(tokens, "tokens")
        tok, K = self.source.tokenizer, self.source.n_states
        s = tokens - tok.offset
        is_symbol = (s >= 0) & (s < K)
        s = s.clamp(0, K - 1)
        if self.causal:
            rows = torch.where(is_symbol[..., None], self.transition[s], self.stationary)
            return self._symbol_logits_to_vocab(rows.log())
        logits = self._symbol_logits_to_vocab(self._masked_conditionals(s, is_symbol).log())
        one_hot = torch.full_like(logits, NEG_INF).scatter_(-1, tokens[..., None], 0.0)
        return torch.where((tokens == tok.mask_id)[..., None], logits, one_hot)

    def _masked_conditionals(self, s: torch.Tensor, is_symbol: torch.Tensor) -> torch.Tensor:
        """p(x^i = k | nearest visible symbols on each side), float64 ``(N, L, K)``."""
        N, L = s.shape
        K = self.transition.shape[0]
        pos = torch.arange(L, device=s.device).expand(N, L)
        left = torch.where(is_symbol, pos, -1).cummax(dim=1).values
        right = torch.where(is_symbol, pos, L).flip(1).cummin(dim=1).values.flip(1)
        powers = self.source.matrix_powers(L).to(s.device)  # (L + 1, K, K)
        x_left = s.gather(1, left.clamp(min=0))
        x_right = s.gather(1, right.clamp(max=L - 1))
        from_left = powers[(pos - left).clamp(max=L), x_left]  # rows P^(i-a)[x^a, :]
        to_right = powers.transpose(1, 2)[(right - pos).clamp(max=L), x_right]  # columns P^(b-i)[:, x^b]
        from_left = torch.where((left >= 0)[..., None], from_left, self.stationary)
        to_right = torch.where((right < L)[..., None], to_right, torch.ones_like(to_right))
        p = from_left * to_right
        z = p.sum(-1, keepdim=True)
        return torch.where(z > 0, p / z.clamp(min=1e-300), torch.full_like(p, 1.0 / K))
