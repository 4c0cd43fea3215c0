"""A toy reasoning task with verifiable answers and R1-Zero's rule-based rewards.

DeepSeek-R1-Zero (DeepSeek-AI 2025, arXiv 2501.12948, §2.2.2) trains on problems whose answers a
rule can check, with two rewards and no reward model: **accuracy** (the final answer, in a fixed
place, equals the truth) and **format** (the reasoning sits inside ``<think> </think>`` and the
answer inside ``<answer> </answer>``). Here the problems are sums of small numbers, ``a+b=``,
and each tag is one character:

    prompt      <bos> 5 7 + 8 =
    completion  ( 1 5 ) [ 6 5 ] <eos>     "(" <think>, ")" </think>, "[" <answer>, "]" </answer>

Rewards are computed on token ids, all rows at once. A completion without an answer tag earns
no accuracy reward; everything after the first ``<eos>`` is ignored.

``warmup_sequences`` writes the corpus of a "base model": worked solutions whose answers are
right but mostly written without the answer tags, so that a model pretrained on it can add yet
earns almost no accuracy reward until RL teaches it where the rule looks.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from toyalgos.core.checks import check_generator, check_number, check_positive_int, check_tensor

from ..checks import check_tokens
from ..tokenizer import CharTokenizer

THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "()[]"
REASONING_ALPHABET = "0123456789+=" + THINK_OPEN + THINK_CLOSE + ANSWER_OPEN + ANSWER_CLOSE


def reasoning_tokenizer() -> CharTokenizer:
    """The task's tokenizer: digits, ``+``, ``=`` and the four one-character tags."""
    return CharTokenizer(REASONING_ALPHABET)


class Problems(NamedTuple):
    """Prompts ``(N, P)`` (``<bos>a+b=``), the true answers ``(N,)`` and the operands ``(N, 2)``."""

    prompts: torch.Tensor
    answers: torch.Tensor
    operands: torch.Tensor


def addition_problems(tok: CharTokenizer, digits: tuple[int, int] = (2, 1)) -> Problems:
    """Every sum ``a+b=`` of an ``digits[0]``-digit and a ``digits[1]``-digit number, written with
    exactly that many digits (leading zeros kept), in increasing order of (a, b)."""
    if not (isinstance(digits, tuple) and len(digits) == 2):
        raise TypeError(f"digits must be a pair of ints, got {digits!r}")
    for d in digits:
        if check_positive_int(d, "digits") > 3:
            raise ValueError(f"operands have at most 3 digits, got digits={digits}")
    a, b = torch.cartesian_prod(torch.arange(10 ** digits[0]), torch.arange(10 ** digits[1])).T
    zero, plus, equals = (tok.encode(c)[0].item() for c in "0+=")

    def written(v: torch.Tensor, d: int) -> torch.Tensor:  # (N, d) the digits of v, most significant first
        return zero + v[:, None] // 10 ** torch.arange(d - 1, -1, -1) % 10

    column = lambda i: torch.full((len(a), 1), i)  # noqa: E731
    prompts = torch.cat(
        [column(tok.bos_id), written(a, digits[0]), column(plus), written(b, digits[1]), column(equals)],
        dim=1,
    )
    return Problems(prompts, a + b, torch.stack([a, b], 1))


def split_problems(
    problems: Problems, held_out: int, *, generator: torch.Generator | None = None
) -> tuple[Problems, Problems]:
    """A random split into (train, held-out) problems, ``held_out`` of them in the second."""
    check_generator(generator)
    n = len(problems.answers)
    if not isinstance(held_out, int) or not 0 < held_out < n:
        raise ValueError(f"held_out must be an int in (0, {n}), got {held_out!r}")
    perm = torch.randperm(n, generator=generator)
    test, train = perm[:held_out].sort().values, perm[held_out:].sort().values
    return Problems(*(t[train] for t in problems)), Problems(*(t[test] for t in problems))


class RuleReward(NamedTuple):
    """Per-completion rewards ``(N,)``: ``accuracy + format_weight * format``, and its two parts (0 or 1)."""

    reward: torch.Tensor
    accuracy: torch.Tensor
    format: torch.Tensor


def _first(hit: torch.Tensor) -> torch.Tensor:
    """Index of the first True in each row of ``hit`` ``(N, T)``, or T when there is none."""
    T = hit.shape[1]
    return torch.where(hit.any(1), hit.int().argmax(1), T)


def rule_reward(
    completions: torch.Tensor, answers: torch.Tensor, tok: CharTokenizer, *, format_weight: float = 0.1
) -> RuleReward:
    """R1-Zero's rule rewards of ``completions`` ``(N, T)`` (the tokens after the prompts) for ``answers``.

    - accuracy 1: the text between the first ``[`` and the next ``]`` is the answer, written in
      digits without a leading zero; 0 when either tag is missing or anything else is there;
    - format 1: the whole completion is ``( think ) [ digits ] <eos>``, the think part made of
      digits, ``+`` and ``=`` only (it may be empty).
    """
    check_tokens(completions, "completions")
    check_tensor(answers, "answers", dim=1, dtype=torch.long)
    if len(answers) != len(completions):
        raise ValueError(
            f"answers must have one entry per completion, got {len(answers)} and {len(completions)}"
        )
    check_number(format_weight, "format_weight", 0)
    c = completions
    T = c.shape[1]
    pos = torch.arange(T)
    is_ = lambda ch: c == tok.encode(ch)[0]  # noqa: E731
    digit0 = tok.encode("0")[0]
    is_digit = (c >= digit0) & (c < digit0 + 10)
    end = _first(c == tok.eos_id)[:, None]  # (N, 1) the first <eos>, or T: tokens at or after it are ignored
    live = pos < end
    o = _first(is_(ANSWER_OPEN) & live)[:, None]  # (N, 1) the answer tag ...
    k = _first(is_(ANSWER_CLOSE) & live & (pos > o))[:, None]  # ... and its closing tag
    inside = (pos > o) & (pos < k)  # (N, T) the answer's tokens
    n_digits = inside.sum(1)
    first_digit = c.gather(1, (o + 1).clamp(max=T - 1))[:, 0]
    has_answer = (
        (k[:, 0] < T)
        & (n_digits > 0)
        & (is_digit | ~inside).all(1)
        & ((first_digit != digit0) | (n_digits == 1))
    )
    place = (10 ** (k - 1 - pos).clamp(min=0)) * inside  # (N, T) 10^(place value) of each answer digit
    value = ((c - digit0) * place).sum(1)
    accuracy = has_answer & (value == answers)
    j = _first(is_(THINK_CLOSE) & live)[:, None]  # (N, 1) the closing think tag
    think_ok = (is_digit | is_("+") | is_("=") | ~((pos > 0) & (pos < j))).all(1)
    format_ = is_(THINK_OPEN)[:, 0] & think_ok & (o == j + 1)[:, 0] & has_answer & (end == k + 1)[:, 0]
    reward = accuracy.float() + format_weight * format_.float()
    return RuleReward(reward, accuracy.float(), format_.float())


def warmup_sequences(
    tok: CharTokenizer,
    problems: Problems,
    n: int,
    *,
    tagged: float = 0.3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A base model's corpus: ``n`` prompts drawn from ``problems``, each followed by a worked solution.

    The think part holds the sum of the two last digits (``57+8=`` thinks ``15``), then comes
    the right answer; only a share ``tagged`` of the completions put it inside the answer tags
    (``(15)[65]<eos>``), the others write it bare (``(15)65<eos>``), which the rule scores 0.
    Returns ``(n, P + 9)`` token ids, right-padded with ``<pad>``.
    """
    check_positive_int(n, "n")
    check_number(tagged, "tagged", 0, 1)
    check_generator(generator)
    idx = torch.randint(len(problems.answers), (n,), generator=generator)
    prompts, value = problems.prompts[idx], problems.answers[idx]
    digit0 = tok.encode("0")[0]
    units = (problems.operands[idx] % 10).sum(1)  # (n,) what the think part works out: the last digits' sum
    think = units[:, None] // torch.tensor([10, 1]) % 10 + digit0  # (n, 2)
    digits = value[:, None] // torch.tensor([100, 10, 1]) % 10 + digit0  # (n, 3)
    tag = lambda ch: torch.full((n, 1), tok.encode(ch)[0].item())  # noqa: E731
    eos = torch.full((n, 1), tok.eos_id)
    slots = torch.cat(
        [tag(THINK_OPEN), think, tag(THINK_CLOSE), tag(ANSWER_OPEN), digits, tag(ANSWER_CLOSE), eos], dim=1
    )  # (n, 10): ( t t ) [ d d d ] <eos>
    keep = torch.ones_like(slots, dtype=torch.bool)
    keep[:, 1] = units >= 10  # leading zeros dropped
    keep[:, 5] = value >= 100
    keep[:, 6] = value >= 10
    bare = torch.rand(n, generator=generator) >= tagged
    keep[:, 4] &= ~bare
    keep[:, 8] &= ~bare
    order = (~keep).int().argsort(dim=1, stable=True)  # kept slots first, in their order
    completions = torch.where(keep.gather(1, order), slots.gather(1, order), tok.pad_id)
    return torch.cat([prompts, completions], dim=1)
