"""A corpus of several "domains": one Markov chain per domain, each sequence from one of them.

Experts of a mixture-of-experts layer can only specialise when the data has kinds to
specialise on. ``DomainMixture`` draws a domain d with probability w_d for every sequence and
then the whole sequence from that domain's ``MarkovSource``. All domains share one alphabet
(one tokenizer), so a token alone does not tell the domain: the context does, after a few
transitions that only some domains make. The Bayes-optimal NLL is exact, as for one chain:

    -log p(x) = -log sum_d w_d p_d(x),

which ``log_prob`` computes per sequence (the model must infer the domain as it reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from toyalgos.core.checks import check_generator, check_positive_int

from ..markov import MarkovSource


class DomainBatch(NamedTuple):
    """Sequences ``x`` ``(n, length)`` (token ids) and the domain of each, ``domain`` ``(n,)``."""

    x: torch.Tensor
    domain: torch.Tensor


class DomainMixture:
    """Sequences from a mixture of ``MarkovSource`` domains over one alphabet.

    Args:
        sources: one ``MarkovSource`` per domain, all with the same alphabet.
        weights: the domain probabilities w_d (default uniform); normalised to sum to 1.
    """

    def __init__(
        self, sources: Sequence[MarkovSource], weights: Sequence[float] | torch.Tensor | None = None
    ):
        sources = list(sources)
        if not sources or not all(isinstance(s, MarkovSource) for s in sources):
            raise TypeError("sources must be a non-empty sequence of MarkovSource")
        alphabet = sources[0].tokenizer.alphabet
        if any(s.tokenizer.alphabet != alphabet for s in sources):
            raise ValueError("every domain must have the same alphabet")
        w = torch.ones(len(sources), dtype=torch.float64) if weights is None else torch.as_tensor(weights)
        w = w.to(torch.float64)
        if w.shape != (len(sources),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(sources)} non-negative numbers with a positive sum")
        self.sources = sources
        self.weights = w / w.sum()
        self.tokenizer = sources[0].tokenizer

    @classmethod
    def random(
        cls,
        n_domains: int = 4,
        n_states: int = 12,
        branching: int = 3,
        *,
        generator: torch.Generator | None = None,
    ) -> DomainMixture:
        """``n_domains`` independent sparse random chains (``MarkovSource.random``), equally likely."""
        check_positive_int(n_domains, "n_domains")
        check_generator(generator)
        return cls([MarkovSource.random(n_states, branching, generator=generator) for _ in range(n_domains)])

    @property
    def n_domains(self) -> int:
        return len(self.sources)

    def __repr__(self) -> str:
        return (
            f"DomainMixture(n_domains={self.n_domains}, n_states={self.sources[0].n_states}, "
            f"entropy_rates={[round(s.entropy_rate(), 3) for s in self.sources]})"
        )

    def sample(self, n: int, length: int, *, generator: torch.Generator | None = None) -> DomainBatch:
        """``n`` sequences of ``length`` symbols, each from one domain drawn with the weights."""
        check_positive_int(n, "n")
        check_positive_int(length, "length")
        check_generator(generator)
        domain = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        x = torch.empty(n, length, dtype=torch.long)
        for d, source in enumerate(self.sources):  # a loop over the few domains; sequences batched
            rows = (domain == d).nonzero().flatten()
            if len(rows):
                x[rows] = source.sample(len(rows), length, generator=generator)
        return DomainBatch(x, domain)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log sum_d w_d p_d(x) per sequence, float64 ``(N,)`` (-inf if no domain emits it)."""
        per_domain = torch.stack([s.log_prob(x) for s in self.sources], dim=1)  # (N, D)
        return torch.logsumexp(per_domain + self.weights.log(), dim=1)

    def nll_per_token(self, x: torch.Tensor) -> torch.Tensor:
        """The Bayes-optimal NLL per token, -log p(x) / L, of every sequence ``(N,)``."""
        return -self.log_prob(x) / x.shape[1]
