"""Masked diffusion language model: LLaDA (Nie et al. 2025, "Large Language Diffusion Models").

Forward process (§2.1): every token of x_0 is replaced by the mask token M independently with
probability t, t ~ U[0, 1]; at t = 1 the sequence is all masks. A bidirectional mask
predictor p_theta(x_0^i | x_t) is trained on the masked positions only (Eq. 3), and the loss
bounds the model's negative log-likelihood (Eq. 4):

    L(theta) = -E_{t, x_0, x_t} [ 1/t sum_i 1[x_t^i = M] log p_theta(x_0^i | x_t) ]  >=  -E log p_theta(x_0)

As in the reference training code, the masking probability is p_mask = (1 - eps) t + eps with
eps = 1e-3 (which caps the weight at 1 / eps when t is near 0), the weight is 1 / p_mask, and the weighted
cross-entropies are summed and divided by N L, the number of tokens in the batch
(``mdm_loss``). MDLM (Sahoo et al. 2024) masks with probability (1 - eps) t and weights by 1 / t;
the two coincide at eps = 0. Conditional training (§2.3, Eq. 5, ``mdm_sft_loss``) never masks
the prompt and divides each sequence's sum by its answer length.

The likelihood bound is estimated with Eq. 6 (``mdm_nll_bound``), the lower-variance form:
l ~ U{1..L}, exactly l tokens masked, weight L / l.

Sampling (§2.4, Algorithms 4 and 5, ``mdm_generate``): start from [prompt, M x gen_length]; at
each step predict every mask at once, then keep a fixed number of the predictions (the rest stay
masked): random ones (``'random'``, the reverse process itself) or the most confident ones
(``'low_confidence'``, a MaskGIT-style heuristic). With ``block_length < gen_length`` the answer
is produced block by block, left to right (semi-autoregressive); every block gets the same
number of steps and each of its steps keeps an equal share of its tokens. ``mdm_infill`` fills
masks wherever they are.

Which remasking wins depends on the regime, and even on the chain. With the Bayes-optimal
predictor (``MarkovOracle``) and one token per step both strategies give valid samples only.
With a few tokens per step, greedily, in semi-autoregressive blocks (where LLaDA uses
low-confidence remasking; 4-token prompts, 28 tokens in blocks of 7, 16 steps), low-confidence
remasking usually wins: 95-100 % valid samples against 35-82 % with random remasking on the
chains ``MarkovSource.random(generator=torch.Generator().manual_seed(s))``, s = 1, 2, 3. On the
chain of s = 0 it loses outright (no valid sample, against 36 %): two neighbouring positions
decided in the same step each take their most likely letter, l and then b, and b never follows
l. With temperature sampling and several tokens per step it loses too
(14 steps for 28 tokens in one block: 13-38 % valid against 56-63 %): the most confident
positions are neighbours, and tokens drawn independently in one step break forbidden
transitions. Random remasking with one token per step at temperature 1 is exact: with the
oracle it samples the chain itself.

The mask predictor is any ``model(tokens) -> logits (N, L, V)`` without a time input, e.g.
``toyalgos.nn.Transformer(TransformerConfig(..., causal=False))``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Samples, evaluating
from toyalgos.core.checks import (
    check_choice,
    check_generator,
    check_nonnegative_int,
    check_number,
    check_positive_int,
)

from ..checks import check_tokens
from ..sampling import gumbel_argmax

REMASKING = ("low_confidence", "random")
ESTIMATORS = ("fixed_count", "random_t")


class MaskedBatch(NamedTuple):
    """A draw of the forward process: x_t, where it is masked, and each row's masking probability."""

    x_t: torch.Tensor  # (N, L) long, mask_id at masked positions
    masked: torch.Tensor  # (N, L) bool
    p_mask: torch.Tensor  # (N,) float, (1 - eps) t + eps


def _check_forward(x: torch.Tensor, eps: float, generator: object) -> torch.Size:
    """Validate ``forward_mask``'s arguments; return the shape ``(N, L)`` of ``x``."""
    check_tokens(x)
    check_number(eps, "eps", 0, 1, high_open=True)
    check_generator(generator)
    return x.shape


def forward_mask(
    x: torch.Tensor,
    *,
    mask_id: int,
    t: torch.Tensor | float | None = None,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> MaskedBatch:
    """q(x_t | x_0) (§2.1): mask each token independently with p_mask = (1 - eps) t + eps.

    ``t`` is one time per sequence, ``(N,)`` or a scalar; by default t ~ U[0, 1) per sequence.
    Pass ``eps=0`` to mask with probability exactly t.
    """
    N, L = _check_forward(x, eps, generator)
    if t is None:
        t = torch.rand(N, generator=generator)
    t = torch.as_tensor(t, dtype=torch.float32).expand(N)
    if (t < 0).any() or (t > 1).any():
        raise ValueError("t must lie in [0, 1]")
    p_mask = ((1 - eps) * t + eps).to(x.device)
    masked = torch.rand(N, L, generator=generator).to(x.device) < p_mask[:, None]
    return MaskedBatch(torch.where(masked, mask_id, x), masked, p_mask)


def masked_token_loss(
    logits: torch.Tensor, x_0: torch.Tensor, masked: torch.Tensor, p_mask: torch.Tensor
) -> torch.Tensor:
    """-log p_theta(x_0^i | x_t) / p_mask at masked positions, 0 elsewhere, shape ``(N, L)``.

    The summand of Eq. 3 with the reference's 1 / p_mask weight; ``p_mask`` is ``(N,)``.
    """
    nll = -F.log_softmax(logits.float(), dim=-1).gather(-1, x_0[..., None])[..., 0]
    return torch.where(masked, nll / p_mask[:, None], torch.zeros_like(nll))


def mdm_loss(
    model: nn.Module,
    x: torch.Tensor,
    *,
    mask_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The pre-training loss (Eq. 3, Algorithm 1): sum of masked_token_loss over the batch / (N L)."""
    batch = forward_mask(x, mask_id=mask_id, eps=eps, generator=generator)
    loss = masked_token_loss(model(batch.x_t), x, batch.masked, batch.p_mask)
    return loss.sum() / x.numel()


def _prompt_lengths(prompt_length: int | torch.Tensor, N: int, L: int, device: torch.device) -> torch.Tensor:
    """Per-row prompt lengths ``(N,)``, each in [0, L - 1] so every row has an answer."""
    p = torch.as_tensor(prompt_length, device=device)
    if p.dtype not in (torch.int32, torch.int64) or p.shape not in ((), (N,)):
        raise ValueError(f"prompt_length must be an int or an integer tensor of shape ({N},), got {p.shape}")
    p = p.long().expand(N)
    if (p < 0).any() or (p >= L).any():
        raise ValueError(f"prompt_length must lie in [0, {L - 1}] (the answer needs a token)")
    return p


def mdm_sft_loss(
    model: nn.Module,
    x: torch.Tensor,
    prompt_length: int | torch.Tensor,
    *,
    mask_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Conditional training on (prompt, answer) rows (Eq. 5, Algorithm 2).

    Row i is ``x[i, :P_i]`` (prompt, never masked) then the answer of length A_i = L - P_i
    (padding included, as LLaDA treats its padding EOS tokens as answer tokens). The loss is
    sum_i sum_j masked_token_loss[i, j] / A_i, divided by N. As a batch for ``train``:
    the pair ``(x, prompt_length)``.
    """
    N, L = check_tokens(x).shape
    P = _prompt_lengths(prompt_length, N, L, x.device)
    batch = forward_mask(x, mask_id=mask_id, eps=eps, generator=generator)
    is_prompt = torch.arange(L, device=x.device) < P[:, None]
    x_t = torch.where(is_prompt, x, batch.x_t)
    masked = batch.masked & ~is_prompt
    answer_length = (L - P).float()
    loss = masked_token_loss(model(x_t), x, masked, batch.p_mask) / answer_length[:, None]
    return loss.sum() / N


def _fixed_count_masks(
    N: int, S: int, L: int, P: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6 draws: for S draws per row, l in {1..A} and exactly l random answer positions masked.

    The S levels of one row are stratified: l_j = floor((j + u) A / S) + 1 with one u ~ U[0, 1)
    per row: a stratified sample of U{1..A} (j uniform on 0..S-1 with u would give exactly
    U{1..A}), so their mean is unbiased and the levels are covered evenly (the reference
    spreads l over its batch the same way). Returns masks ``(N S, L)`` and weights
    ``(N S,)`` = 1 / l: (A / l) sum_masked CE, divided by A to be per token.
    """
    A = (L - P).double()
    u = torch.rand(N, 1, generator=generator, dtype=torch.float64)
    j = torch.arange(S, dtype=torch.float64)
    level = (((j + u) / S) * A[:, None].cpu()).floor().long() + 1  # (N, S), in 1..A
    level = torch.minimum(level, (L - P).cpu()[:, None]).reshape(-1)
    scores = torch.rand(N * S, L, generator=generator)
    is_prompt = torch.arange(L) < P.cpu().repeat_interleave(S)[:, None]
    scores = scores.masked_fill(is_prompt, 2.0)  # prompt positions rank last: never masked
    rank = scores.argsort(dim=1).argsort(dim=1)
    return rank < level[:, None], 1.0 / level.float()


def _check_nll_bound(
    x: torch.Tensor, n_samples: int, estimator: str, batch_size: int, generator: object
) -> None:
    """Validate ``mdm_nll_bound``'s arguments (the prompt lengths are checked where they are used)."""
    check_tokens(x)
    check_positive_int(n_samples, "n_samples")
    check_positive_int(batch_size, "batch_size")
    check_choice(estimator, "estimator", ESTIMATORS)
    check_generator(generator)


def mdm_nll_bound(
    model: nn.Module,
    x: torch.Tensor,
    *,
    mask_id: int,
    n_samples: int = 128,
    prompt_length: int | torch.Tensor = 0,
    estimator: str = "fixed_count",
    eps: float = 1e-3,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Monte Carlo upper bound on -log p_theta(answer | prompt) per answer token, nats, shape ``(N,)``.

    Each row is estimated from ``n_samples`` masked copies of it (LLaDA evaluates with 128).

    ``'fixed_count'`` (default): Eq. 6, the lower-variance estimator of the reference's
    ``get_log_likelihood``: l ~ U{1..A} over the A answer tokens, exactly l of them masked,
    value (A / l) sum_masked -log p(x_0^i | x_t), divided by A. Per token this is the mean
    cross-entropy over the l masked tokens. ``'random_t'``: Eq. 3 exactly as trained
    (``forward_mask`` with ``eps``, weight 1 / p_mask), which has a much larger variance.

    With the true conditionals ``'fixed_count'`` is unbiased for -log p(x) (every unmasking
    order factorises p exactly), and so is ``'random_t'`` at eps = 0; for any other predictor
    the expectation is an upper bound on the model's NLL. ``.mean()`` over held-out rows
    estimates the NLL bound per token. The prompt (``prompt_length`` tokens, an int or one per
    row) is never masked. Copies go through the model ``batch_size`` rows at a time, in eval mode.
    """
    _check_nll_bound(x, n_samples, estimator, batch_size, generator)
    N, L = x.shape
    P = _prompt_lengths(prompt_length, N, L, x.device)
    rows = x.repeat_interleave(n_samples, dim=0)
    if estimator == "fixed_count":
        masked, weight = _fixed_count_masks(N, n_samples, L, P, generator)
        masked, weight = masked.to(x.device), weight.to(x.device)
        x_t = torch.where(masked, mask_id, rows)
    else:
        batch = forward_mask(rows, mask_id=mask_id, eps=eps, generator=generator)
        is_prompt = torch.arange(L, device=x.device) < P.repeat_interleave(n_samples)[:, None]
        x_t = torch.where(is_prompt, rows, batch.x_t)
        masked = batch.masked & ~is_prompt
        weight = 1.0 / (batch.p_mask * (L - P).repeat_interleave(n_samples))
    chunks = zip(x_t.split(batch_size), rows.split(batch_size), masked.split(batch_size), strict=True)
    with evaluating(model):
        values = torch.cat(
            [
                masked_token_loss(model(xt), x0, m, torch.ones(len(xt), device=x.device)).sum(1)
                for xt, x0, m in chunks
            ]
        )
    return (values * weight).view(N, n_samples).mean(1)


# ------------------------------------------------------------------------------------- sampling


def num_transfer_tokens(n_masked: int | torch.Tensor, steps: int) -> torch.Tensor:
    """How many masks to unmask at each of ``steps`` steps, shape ``(N, steps)``.

    The reverse process runs over ``steps`` equal intervals of t; with LLaDA's linear schedule
    the expected number of tokens unmasked per interval is the same, so each step gets
    n // steps and the first n % steps steps one more (the reference's get_num_transfer_tokens).
    """
    check_positive_int(steps, "steps")
    n = torch.as_tensor(n_masked, dtype=torch.long).reshape(-1)
    base, remainder = n // steps, n % steps
    return base[:, None] + (torch.arange(steps, device=n.device) < remainder[:, None]).long()


def _unmask_step(
    model: nn.Module,
    x: torch.Tensor,
    n_keep: torch.Tensor,
    editable: torch.Tensor,
    temperature: float,
    remasking: str,
    mask_id: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One reverse step: predict every mask, keep ``n_keep[i]`` predictions of row i, remask the rest.

    Predictions are argmax(logits + temperature * Gumbel) in float64 (temperature 0: greedy).
    Which predictions are kept: the ``n_keep`` masked positions inside ``editable`` with the
    highest confidence, softmax(logits)[prediction] for ``'low_confidence'`` or U(0, 1) for
    ``'random'``. The mask token itself is never predicted.
    """
    logits = model(x).double()
    logits[..., mask_id] = float("-inf")
    x_0 = gumbel_argmax(logits, temperature, generator=generator)
    if remasking == "low_confidence":
        confidence = F.softmax(logits, dim=-1).gather(-1, x_0[..., None])[..., 0]
    else:
        confidence = torch.rand(x_0.shape, generator=generator, dtype=torch.float64).to(x.device)
    candidate = (x == mask_id) & editable
    confidence = confidence.masked_fill(~candidate, float("-inf"))
    rank = confidence.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
    keep = (rank < n_keep[:, None]) & candidate
    return torch.where(keep, x_0, x)


def _check_sampling(steps: int, temperature: float, remasking: str, mask_id: int, generator: object) -> None:
    """The checks both samplers share: the step count and the sampling options."""
    check_positive_int(steps, "steps")
    check_number(temperature, "temperature", 0)
    check_choice(remasking, "remasking", REMASKING)
    check_nonnegative_int(mask_id, "mask_id")
    check_generator(generator)


def _check_generate(
    prompt: torch.Tensor,
    steps: int,
    gen_length: int,
    block_length: int | None,
    temperature: float,
    remasking: str,
    mask_id: int,
    generator: object,
) -> int:
    """Validate ``mdm_generate``'s arguments; return the block length (``gen_length`` if None)."""
    check_tokens(prompt, "prompt", min_length=0)
    _check_sampling(steps, temperature, remasking, mask_id, generator)
    check_positive_int(gen_length, "gen_length")
    block_length = gen_length if block_length is None else check_positive_int(block_length, "block_length")
    if gen_length % block_length:
        raise ValueError(f"gen_length ({gen_length}) must be a multiple of block_length ({block_length})")
    if steps % (gen_length // block_length):
        raise ValueError(
            f"steps ({steps}) must be a multiple of the number of blocks ({gen_length // block_length})"
        )
    if steps > gen_length:
        raise ValueError(f"steps ({steps}) must be at most gen_length ({gen_length}): one token per step")
    if (prompt == mask_id).any():
        raise ValueError("prompt contains the mask token; use mdm_infill to fill masks inside a sequence")
    return block_length


def mdm_generate(
    model: nn.Module,
    prompt: torch.Tensor,
    *,
    steps: int,
    gen_length: int,
    block_length: int | None = None,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    mask_id: int,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> Samples:
    """Sample ``gen_length`` tokens after ``prompt`` with the reverse process (§2.4, Algorithms 4-5).

    Args:
        model: the mask predictor.
        prompt: ``(N, P)`` token ids without masks; ``P = 0`` (shape ``(N, 0)``) samples
            unconditionally.
        steps: total number of reverse steps (model calls), at most ``gen_length`` and a
            multiple of the number of blocks.
        gen_length: number of tokens to generate; a multiple of ``block_length``.
        block_length: length of the semi-autoregressive blocks (default ``gen_length``: one
            block). Blocks are filled left to right with ``steps // n_blocks`` steps each; the
            model always sees the whole sequence, later blocks still masked.
        temperature: 0 for greedy predictions, else Gumbel-max sampling from
            softmax(logits / temperature), as the reference's add_gumbel_noise.
        remasking: ``'low_confidence'`` keeps the most probable predictions at each step
            (confidence measured at temperature 1, as in the reference); ``'random'`` keeps
            random ones.
        mask_id: the mask token.
        generator: for the Gumbel noise and random remasking.
        return_trajectory: also return the sequence after every step.

    Returns:
        ``Samples(x, nfe, trajectory)``: ``x`` the ``(N, P + gen_length)`` tokens, the prompt
        unchanged, then the generated tokens (no masks left); ``nfe = steps``; ``trajectory``
        ``(steps + 1, N, P + gen_length)``, the all-mask start first (``unmasking_steps`` reads
        off when each token was unmasked), or None.
    """
    block_length = _check_generate(
        prompt, steps, gen_length, block_length, temperature, remasking, mask_id, generator
    )
    N, P = prompt.shape
    x = torch.cat([prompt, prompt.new_full((N, gen_length), mask_id)], dim=1)
    trajectory = [x]
    n_blocks = gen_length // block_length
    steps_per_block = steps // n_blocks
    per_step = num_transfer_tokens(block_length, steps_per_block)[0].to(x.device)
    pos = torch.arange(x.shape[1], device=x.device)
    with evaluating(model):
        for b in range(n_blocks):
            in_block = (pos >= P + b * block_length) & (pos < P + (b + 1) * block_length)
            for i in range(steps_per_block):
                n_keep = per_step[i].expand(N)
                x = _unmask_step(model, x, n_keep, in_block, temperature, remasking, mask_id, generator)
                if return_trajectory:
                    trajectory.append(x)
    return Samples(x, steps, torch.stack(trajectory) if return_trajectory else None)


def mdm_infill(
    model: nn.Module,
    x: torch.Tensor,
    *,
    steps: int,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    mask_id: int,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> Samples:
    """Fill every mask of ``x`` ``(N, L)``, wherever it is, in ``steps`` reverse steps.

    The same step as ``mdm_generate`` (one block spanning the whole sequence), but the visible
    tokens may sit on both sides of the masks: e.g. the first name of a fact given the
    second. Row i unmasks its n_i masks over the steps as ``num_transfer_tokens(n_i, steps)``.
    Returns ``Samples(x, nfe=steps, trajectory)`` as ``mdm_generate`` (``x`` itself first).
    """
    check_tokens(x)
    _check_sampling(steps, temperature, remasking, mask_id, generator)
    per_step = num_transfer_tokens((x == mask_id).sum(1), steps).to(x.device)
    everywhere = torch.ones(x.shape[1], dtype=torch.bool, device=x.device)
    trajectory = [x]
    with evaluating(model):
        for i in range(steps):
            n_keep = per_step[:, i]
            x = _unmask_step(model, x, n_keep, everywhere, temperature, remasking, mask_id, generator)
            if return_trajectory:
                trajectory.append(x)
    return Samples(x, steps, torch.stack(trajectory) if return_trajectory else None)


def unmasking_steps(trajectory: torch.Tensor, mask_id: int) -> torch.Tensor:
    """The 0-based step at which each token of a sampler's trajectory was unmasked, ``(N, L)``.

    A token masked in the first s + 1 states was unmasked by step s; -1 marks a token that
    was never masked (the prompt, or the visible tokens given to ``mdm_infill``).
    """
    return (trajectory == mask_id).sum(0) - 1
