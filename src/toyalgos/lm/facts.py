"""Facts "A -> B" between two sets of names: the data of the reversal-curse experiment.

``reversal_pairs`` draws a fixed random bijection between names written with two disjoint
alphabets; ``fact_sequences`` lays each fact out as ``<bos> A <sep> B <eos>`` (or B first), so
a model trained on one direction can be queried in the other (Berglund et al. 2023);
``candidate_facts`` writes every name into every fact, to answer a query by ranking.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from toyalgos.core.checks import check_generator, check_positive_int

from .checks import check_tokens
from .tokenizer import CharTokenizer


def _names(codes: torch.Tensor, alphabet: str, length: int) -> list[str]:
    """Integer codes written in base len(alphabet) with ``length`` digits, as strings."""
    base = len(alphabet)
    digits = (codes[:, None] // base ** torch.arange(length - 1, -1, -1)) % base
    return ["".join(alphabet[d] for d in row) for row in digits.tolist()]


def reversal_pairs(
    n_pairs: int,
    name_length: int = 3,
    first: str = "ABCDEFGHIJ",
    second: str = "klmnopqrst",
    *,
    generator: torch.Generator | None = None,
) -> list[tuple[str, str]]:
    """A random bijection between ``n_pairs`` names from ``first`` and as many from ``second``.

    Names are ``name_length`` characters long, drawn without replacement from all
    ``len(first) ** name_length`` (resp. ``second``) strings; pairing two random orders gives
    a uniformly random bijection. The same generator state gives the same pairs.
    """
    check_positive_int(n_pairs, "n_pairs")
    check_positive_int(name_length, "name_length")
    check_generator(generator)
    if set(first) & set(second):
        raise ValueError(f"first and second must use disjoint characters, got {first!r} and {second!r}")
    capacity = min(len(first), len(second)) ** name_length
    if n_pairs > capacity:
        raise ValueError(
            f"n_pairs must be at most {capacity} for names of length {name_length}, got {n_pairs}"
        )
    a = _names(torch.randperm(len(first) ** name_length, generator=generator)[:n_pairs], first, name_length)
    b = _names(torch.randperm(len(second) ** name_length, generator=generator)[:n_pairs], second, name_length)
    return list(zip(a, b, strict=True))


def fact_sequences(
    pairs: Sequence[tuple[str, str]], tokenizer: CharTokenizer, reverse: bool = False
) -> torch.Tensor:
    """Facts ``<bos> A <sep> B <eos>`` (``B`` first with ``reverse``), shape ``(n, |A| + |B| + 3)``.

    All first names must have one length and all second names another, so every fact has the
    same layout: position 1 starts the first name, ``1 + |A|`` is the separator.
    """
    if not pairs:
        raise ValueError("pairs is empty")
    heads, tails = zip(*((b, a) if reverse else (a, b) for a, b in pairs), strict=True)
    for side, names in (("first", heads), ("second", tails)):
        if len({len(nm) for nm in names}) != 1:
            raise ValueError(f"all {side} names must have the same length")
    n = len(pairs)
    col = torch.full((n, 1), 0, dtype=torch.long)
    return torch.cat(
        [
            col + tokenizer.bos_id,
            tokenizer.encode_batch(heads),
            col + tokenizer.sep_id,
            tokenizer.encode_batch(tails),
            col + tokenizer.eos_id,
        ],
        dim=1,
    )


def candidate_facts(facts: torch.Tensor, positions: slice) -> torch.Tensor:
    """Every fact with every fact's name at ``positions``, shape ``(n, n, L)``.

    Entry ``[i, j]`` is fact ``i`` with the tokens of fact ``j`` at ``positions`` (one name):
    the n candidate answers to query ``i``, the right one at ``j = i``. Scoring all of them
    with a model's likelihood and keeping the most likely answers a query by ranking, e.g.
    ``<bos> A_j <sep> B_i <eos>``: argmax_j p(A_j, B_i) = argmax_j p(A_j | B_i), Bayes' rule
    inverting the model's p(B | A).
    """
    facts = check_tokens(facts, "facts", min_length=1)
    n = len(facts)
    out = facts[:, None].repeat(1, n, 1)  # (n, n, L): [i, j] = fact i ...
    out[:, :, positions] = facts[None, :, positions].expand(n, -1, -1)  # ... with fact j's name
    return out
