"""Block diffusion: BD3-LM (Arriola et al., ICLR 2025, "Block Diffusion: Interpolating Between
Autoregressive and Diffusion Language Models").

A sequence of L tokens is cut into B = L / L' blocks of L' tokens. The blocks are generated left
to right, autoregressively, and each block by masked diffusion given the clean blocks before it
(§3.1, the block factorisation and its NELBO):

    log p(x) = sum_b log p(x^b | x^{<b}),
    -log p(x^b | x^{<b}) <= E_t E_q [ 1/t sum_{i in b} 1[x_t^i = M] (-log p_theta(x^i | x_t^b, x^{<b})) ]

with the MDLM weight 1/t of the linear schedule (alpha_t = 1 - t) and one t per block. The sum
over blocks is the NELBO (``bd3_loss``, ``bd3_nelbo``). L' = L is MDLM (one block, the LLaDA loss
at eps = 0); L' = 1 with t = 1 masks every token and is exactly the autoregressive
next-token NLL.

Vectorised training (§3.2): one forward pass over the 2L tokens x_t ⊕ x_0, both halves at
positions 0..L-1, with the block attention mask of the reference's ``block_diff_mask``
(``block_diffusion_masks``):

    M_full = [[M_BD,  M_OBC],
              [0,     M_BC ]]

M_BD (block-diagonal): a noisy token sees its own noisy block; M_OBC (offset block-causal): it
sees the clean blocks strictly before its own; M_BC (block-causal): a clean token sees its own
and earlier clean blocks, never a noisy one. The logits of the x_t half are scored.

Clipped schedule (§5): the loss is trained with t ~ U[beta, omega]. Its expectation over
[beta, omega] is no longer the NELBO, but avoiding t near 0 (one masked token weighted by a
huge 1/t) and t near 1 (nothing left to condition on) lowers the variance of the training
loss. The reference searches the window of lowest variance; the NELBO is reported with
U[1e-3, 1].

Sampling (§3.2; the reference's ``_semi_ar_sampler`` and ``_ddpm_caching_update``): block by
block, each from all masks in ``steps`` reverse steps of the MDLM posterior (from t to
s = t - 1/steps every mask is unmasked with probability (t - s) / t, its token drawn from
p_theta(x^i | x_t^b, x^{<b}), the mask excluded). Once a block is finished its keys and values
in every layer are computed once and kept (a KV cache); later blocks attend to them and to
themselves only, so each step costs L' tokens whatever the length. The blocks need not stop at
the training length: with rotary positions alone (``position_embedding=None``) nothing in the
network is tied to an absolute position below ``max_len``, and a ``context`` window of the
training length keeps every block's view as long as in training (the reference slides a
window too). The window is exact for both paths: old blocks leave the cache, and the
recomputation masks them out.

The training pass reads 2L tokens, so the model's ``max_len`` must be at least 2L (positions
stay below L); with rotary positions alone that is no cost.

The denoiser is ``toyalgos.nn.Transformer`` with ``causal=False`` (no time input, as the
reference's ``time_conditioning: False``); the SUBS parameterisation sets the mask token's
logit to -inf.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Samples, evaluating
from toyalgos.core.checks import check_generator, check_nonnegative_int, check_number, check_positive_int
from toyalgos.nn import SelfAttention, Transformer, rotary

from ..checks import check_tokens
from ..sampling import gumbel_argmax

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (N, H, P, head_dim)


class BlockMasks(NamedTuple):
    """The three masks of the x_t ⊕ x_0 pass, each ``(L, L)`` bool (True: query may attend to key)."""

    block_diagonal: torch.Tensor  # M_BD: x_t -> x_t, same block
    offset_block_causal: torch.Tensor  # M_OBC: x_t -> x_0, earlier blocks
    block_causal: torch.Tensor  # M_BC: x_0 -> x_0, same or earlier blocks

    @property
    def full(self) -> torch.Tensor:
        """The ``(2L, 2L)`` mask [[M_BD, M_OBC], [0, M_BC]] over x_t ⊕ x_0."""
        top = torch.cat([self.block_diagonal, self.offset_block_causal], dim=1)
        bottom = torch.cat([torch.zeros_like(self.block_causal), self.block_causal], dim=1)
        return torch.cat([top, bottom], dim=0)


class NELBOEstimate(NamedTuple):
    """A Monte Carlo NELBO in nats per token: the mean, its standard error, one value per sequence."""

    nelbo: float
    se: float
    per_sequence: torch.Tensor  # (N,)


def _check_block_size(length: int, block_size: int) -> None:
    check_positive_int(block_size, "block_size")
    if length % block_size:
        raise ValueError(f"block_size ({block_size}) must divide the sequence length ({length})")


def block_diffusion_masks(length: int, block_size: int, *, device: torch.device | None = None) -> BlockMasks:
    """M_BD, M_OBC and M_BC for sequences of ``length`` tokens in blocks of ``block_size`` (§3.2)."""
    check_positive_int(length, "length")
    _check_block_size(length, block_size)
    block = torch.arange(length, device=device) // block_size  # (L,) block index of each position
    q, k = block[:, None], block[None, :]
    return BlockMasks(q == k, q > k, q >= k)


def _check_model(model: nn.Module) -> Transformer:
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a toyalgos.nn.Transformer, got {type(model).__name__}")
    if model.causal:
        raise ValueError("block diffusion needs a bidirectional model (causal=False): the masks do the rest")
    return model


def _check_data(model: Transformer, x: torch.Tensor, block_size: int, mask_id: int) -> None:
    """Token ids inside the vocabulary, no mask in the data, blocks that tile the sequence."""
    check_tokens(x)
    check_nonnegative_int(mask_id, "mask_id")
    if mask_id >= model.vocab_size:
        raise ValueError(f"mask_id must lie in [0, {model.vocab_size}), got {mask_id}")
    if x.min() < 0 or x.max() >= model.vocab_size:
        raise ValueError(
            f"token ids must lie in [0, {model.vocab_size}), got {x.min().item()}..{x.max().item()}"
        )
    if (x == mask_id).any():
        raise ValueError("x contains the mask token: clean sequences only")
    _check_block_size(x.shape[1], block_size)
    if 2 * x.shape[1] > model.max_len:
        raise ValueError(
            f"the x_t ⊕ x_0 pass reads 2 L = {2 * x.shape[1]} tokens: the model's max_len ({model.max_len}) "
            "must be at least that"
        )


def _check_schedule(beta: float, omega: float, t: float | None) -> None:
    check_number(beta, "beta", 0, 1)
    check_number(omega, "omega", 0, 1)
    if beta >= omega:
        raise ValueError(
            f"the clipped schedule U[beta, omega] needs beta < omega, got beta={beta}, omega={omega}"
        )
    if t is not None:
        check_number(t, "t", 0, 1, low_open=True)


def _block_times(
    N: int, n_blocks: int, block_size: int, beta: float, omega: float, t: float | None, generator
) -> torch.Tensor:
    """One t per block, t ~ U[beta, omega] (or the fixed ``t``), repeated over its tokens: ``(N, L)``."""
    u = torch.rand(N, n_blocks, generator=generator)
    times = beta + (omega - beta) * u if t is None else torch.full_like(u, t)
    return times.repeat_interleave(block_size, dim=1)


def _stratified_times(
    N: int, S: int, n_blocks: int, block_size: int, beta: float, omega: float, t: float | None, generator
) -> torch.Tensor:
    """The S draws of t for each block of each sequence, stratified: ``(N S, L)``.

    Draw j of a block takes u = (j + U[0, 1)) / S, so every draw is U[0, 1) and the S draws
    cover [0, 1) evenly (the reference's antithetic sampling spreads t the same way); then
    t = beta + (omega - beta) u, or the fixed ``t``.
    """
    u = (torch.arange(S).repeat(N)[:, None] + torch.rand(N * S, n_blocks, generator=generator)) / S
    times = beta + (omega - beta) * u if t is None else torch.full_like(u, t)
    return times.repeat_interleave(block_size, dim=1)


def _masked_nll(
    model: Transformer, x: torch.Tensor, block_size: int, mask_id: int, times: torch.Tensor, generator
) -> torch.Tensor:
    """1/t (-log p_theta(x^i | x_t^b, x^{<b})) at the masked positions, 0 elsewhere: ``(N, L)``.

    Each token is masked with probability t of its block; one pass over x_t ⊕ x_0 with the
    block diffusion mask, both halves at positions 0..L-1; the x_t half is scored.
    """
    N, L = x.shape
    masked = torch.rand(N, L, generator=generator).to(x.device) < times.to(x.device)
    x_t = torch.where(masked, mask_id, x)
    mask = block_diffusion_masks(L, block_size, device=x.device).full  # (2L, 2L)
    positions = torch.arange(L, device=x.device).repeat(2)  # x_t and x_0 share positions
    logits = model(torch.cat([x_t, x], dim=1), attn_mask=mask, positions=positions)[:, :L].float()
    is_mask = torch.arange(logits.shape[-1], device=x.device) == mask_id
    logits = logits.masked_fill(is_mask, float("-inf"))  # SUBS: the mask is never predicted
    nll = -F.log_softmax(logits, dim=-1).gather(-1, x[..., None])[..., 0]
    weight = torch.where(masked, 1.0 / times.to(x.device), torch.zeros_like(times, device=x.device))
    return nll * weight


def bd3_loss(
    model: nn.Module,
    x: torch.Tensor,
    *,
    block_size: int,
    mask_id: int,
    beta: float = 1e-3,
    omega: float = 1.0,
    t: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The block diffusion NELBO of a batch ``x`` ``(N, L)`` per token (the NELBO of §3.1), one t per block.

    t ~ U[``beta``, ``omega``] per block of ``block_size`` tokens (the clipped schedule; the
    default U[1e-3, 1] is the reference's unclipped one), or the fixed time ``t`` for every
    block (``t=1`` masks everything: at ``block_size=1`` the next-token NLL). Each masked token's
    cross-entropy is weighted by 1/t; the sum over the batch is divided by N L.
    """
    _check_model(model)
    _check_data(model, x, block_size, mask_id)
    _check_schedule(beta, omega, t)
    check_generator(generator)
    N, L = x.shape
    times = _block_times(N, L // block_size, block_size, beta, omega, t, generator)
    return _masked_nll(model, x, block_size, mask_id, times, generator).sum() / x.numel()


def bd3_nelbo(
    model: nn.Module,
    x: torch.Tensor,
    *,
    block_size: int,
    mask_id: int,
    n_samples: int = 16,
    beta: float = 1e-3,
    omega: float = 1.0,
    t: float | None = None,
    batch_size: int = 512,
    generator: torch.Generator | None = None,
) -> NELBOEstimate:
    """Monte Carlo NELBO of held-out sequences ``x`` ``(N, L)``, nats per token, in eval mode.

    Each sequence is scored ``n_samples`` times, each time with one t per block (the draws of
    a block stratified over [beta, omega], see ``_stratified_times``) and fresh masks;
    ``per_sequence`` is the mean over the draws divided by L, ``nelbo`` its mean over the
    sequences and ``se`` the standard error of that mean (sequence spread and Monte Carlo noise
    together). With ``block_size=1, t=1`` it is the exact NLL, with no Monte Carlo noise.
    """
    _check_model(model)
    _check_data(model, x, block_size, mask_id)
    _check_schedule(beta, omega, t)
    check_positive_int(n_samples, "n_samples")
    check_positive_int(batch_size, "batch_size")
    check_generator(generator)
    N, L = x.shape
    rows = x.repeat_interleave(n_samples, dim=0)  # (N S, L)
    times = _stratified_times(N, n_samples, L // block_size, block_size, beta, omega, t, generator)
    values = []
    with evaluating(model):
        for chunk, tc in zip(rows.split(batch_size), times.split(batch_size), strict=True):
            values.append(_masked_nll(model, chunk, block_size, mask_id, tc, generator).sum(1))
    per_sequence = torch.cat(values).view(N, n_samples).mean(1).double().cpu() / L
    se = per_sequence.std().item() / N**0.5 if N > 1 else float("nan")
    return NELBOEstimate(per_sequence.mean().item(), se, per_sequence)


# ------------------------------------------------------------------------------------- sampling


def _attention_parts(model: Transformer) -> list[SelfAttention]:
    parts = [block.attention for block in model.blocks]
    if not all(type(a) is SelfAttention for a in parts):
        raise TypeError(
            "the key-value cache reads SelfAttention's projections: use the default attention part"
        )
    return parts


def _cached_forward(
    model: Transformer, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache | None
) -> tuple[torch.Tensor, KVCache]:
    """Logits of ``tokens`` ``(N, l)`` that attend to themselves and to the cached earlier blocks.

    The model's own layers, read from its public parts: the same computation as
    ``model(prefix ⊕ tokens, attn_mask=M_BC)`` restricted to the last ``l`` positions, without
    recomputing the prefix. Returns the logits ``(N, l, V)`` and this block's keys and values per
    layer (rotated, ready to be appended to the cache).
    """
    h = model.tok_emb(tokens)
    if model.pos_emb is not None:
        h = h + model.pos_emb(positions)
    new: KVCache = []
    for i, (block, attn) in enumerate(zip(model.blocks, _attention_parts(model), strict=True)):
        N, l, D = h.shape
        a = block.norm1(h)
        q, k, v = attn.qkv(a).view(N, l, 3, attn.n_heads, D // attn.n_heads).permute(2, 0, 3, 1, 4)
        q, k = rotary(q, positions, attn.rope_base), rotary(k, positions, attn.rope_base)
        new.append((k, v))
        if cache is not None:
            k, v = torch.cat([cache[i][0], k], dim=2), torch.cat([cache[i][1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v)  # every query sees every key: no mask
        h = h + attn.proj(y.transpose(1, 2).reshape(N, l, D))
        h = h + block.feed_forward(block.norm2(h))
    return model.head(model.norm(h)), new


def _extend(cache: KVCache | None, new: KVCache, keep: int | None) -> KVCache:
    """The cache with a finished block's keys and values appended, cut to its last ``keep`` tokens."""
    if cache is not None:
        new = [
            (torch.cat([k, k2], 2), torch.cat([v, v2], 2))
            for (k, v), (k2, v2) in zip(cache, new, strict=True)
        ]
    if keep is None:
        return new
    return [(k[:, :, max(0, k.shape[2] - keep) :], v[:, :, max(0, v.shape[2] - keep) :]) for k, v in new]


def _window_mask(length: int, block_size: int, context: int | None, device: torch.device) -> torch.Tensor:
    """M_BC over ``length`` tokens, each block seeing at most ``context`` tokens (its own included)."""
    mask = block_diffusion_masks(length, block_size, device=device).block_causal
    if context is None:
        return mask
    block = torch.arange(length, device=device) // block_size
    return mask & (block[:, None] - block[None, :] < context // block_size)


def _check_generate(
    model: nn.Module,
    prompt: torch.Tensor,
    gen_length: int,
    block_size: int,
    steps: int,
    temperature: float,
    mask_id: int,
    context: int | None,
    generator: object,
) -> None:
    _check_model(model)
    check_tokens(prompt, "prompt", min_length=0)
    if context is not None and (check_positive_int(context, "context") % block_size or context < block_size):
        raise ValueError(f"context ({context}) must be a multiple of block_size ({block_size})")
    check_positive_int(gen_length, "gen_length")
    check_positive_int(block_size, "block_size")
    check_positive_int(steps, "steps")
    check_number(temperature, "temperature", 0)
    check_nonnegative_int(mask_id, "mask_id")
    check_generator(generator)
    if mask_id >= model.vocab_size:
        raise ValueError(f"mask_id must lie in [0, {model.vocab_size}), got {mask_id}")
    if gen_length % block_size:
        raise ValueError(f"gen_length ({gen_length}) must be a multiple of block_size ({block_size})")
    if prompt.shape[1] % block_size:
        raise ValueError(
            f"the prompt's length ({prompt.shape[1]}) must be a multiple of block_size ({block_size})"
        )
    if prompt.numel() and (prompt.min() < 0 or prompt.max() >= model.vocab_size):
        raise ValueError(f"prompt token ids must lie in [0, {model.vocab_size})")
    if (prompt == mask_id).any():
        raise ValueError("prompt contains the mask token: the prompt is clean context")
    if prompt.shape[1] + gen_length > model.max_len:
        raise ValueError(
            f"prompt + gen_length = {prompt.shape[1] + gen_length} exceeds max_len ({model.max_len})"
        )


def _denoise_step(
    logits: torch.Tensor,
    x_block: torch.Tensor,
    i: int,
    steps: int,
    temperature: float,
    mask_id: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Step i of ``steps`` from t = 1 - i/steps to s = t - 1/steps (MDLM's posterior, SUBS).

    Each mask is unmasked with probability (t - s)/t = 1/(steps - i), its token drawn from the
    logits at ``temperature`` (the mask excluded); unmasked tokens stay.
    """
    logits = logits.double()
    logits[..., mask_id] = float("-inf")
    x_0 = gumbel_argmax(logits, temperature, generator=generator)
    unmask = torch.rand(x_block.shape, generator=generator).to(x_block.device) < 1.0 / (steps - i)
    return torch.where((x_block == mask_id) & unmask, x_0, x_block)


def bd3_generate(
    model: nn.Module,
    prompt: torch.Tensor,
    *,
    gen_length: int,
    block_size: int,
    steps: int,
    mask_id: int,
    temperature: float = 1.0,
    kv_cache: bool = True,
    context: int | None = None,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> Samples:
    """Semi-autoregressive sampling: ``gen_length / block_size`` blocks, left to right (§3.2).

    Args:
        model: the block diffusion denoiser (a bidirectional ``Transformer``).
        prompt: ``(N, P)`` clean tokens, P a multiple of ``block_size``; ``(N, 0)`` samples
            unconditionally.
        gen_length: tokens to generate, a multiple of ``block_size``; prompt and answer together
            at most the model's ``max_len`` (the training length need not limit it).
        block_size: L', the block length the model was trained with.
        steps: reverse steps per block (model calls per block).
        mask_id: the mask token.
        temperature: 1 samples the model's reverse process; 0 takes each token's argmax.
        kv_cache: reuse the finished blocks' keys and values (True), or rerun the whole prefix
            with the block-causal mask M_BC at every step (False). Both give the same tokens
            for the same generator, up to floating-point ties.
        context: the most tokens a block attends to, its own included, a multiple of
            ``block_size``; ``None`` for the whole prefix. The training length keeps every
            block inside the relative distances seen in training (the reference slides a
            window of ``context_size`` tokens the same way); older blocks leave the cache.
        generator: for the Gumbel noise and the unmasking draws.
        return_trajectory: also return the sequence after every step (masks where a block has
            not started), the start first.

    Returns:
        ``Samples(x, nfe, trajectory)``: ``x`` ``(N, P + gen_length)``, the prompt unchanged;
        ``nfe = steps * gen_length / block_size`` denoiser calls (the cache's one extra pass over
        each finished block is not counted).
    """
    _check_generate(model, prompt, gen_length, block_size, steps, temperature, mask_id, context, generator)
    N, P = prompt.shape
    device = prompt.device
    x = torch.cat([prompt, prompt.new_full((N, gen_length), mask_id)], dim=1)
    trajectory = [x.clone()] if return_trajectory else None
    cache: KVCache | None = None
    keep = None if context is None else context - block_size  # cached tokens a block may see
    with evaluating(model):
        if kv_cache and P:
            cache = _prompt_cache(model, prompt, block_size, keep)
        for start in range(P, P + gen_length, block_size):
            end = start + block_size
            positions = torch.arange(start, end, device=device)
            for i in range(steps):
                if kv_cache:
                    logits = _cached_forward(model, x[:, start:end], positions, cache)[0]
                else:
                    mask = _window_mask(end, block_size, context, device)
                    logits = model(x[:, :end], attn_mask=mask)[:, start:]
                x[:, start:end] = _denoise_step(
                    logits, x[:, start:end], i, steps, temperature, mask_id, generator
                )
                if return_trajectory:
                    trajectory.append(x.clone())
            if kv_cache:
                cache = _extend(cache, _cached_forward(model, x[:, start:end], positions, cache)[1], keep)
    n_blocks = gen_length // block_size
    return Samples(x, steps * n_blocks, torch.stack(trajectory) if return_trajectory else None)


def _prompt_cache(model: Transformer, prompt: torch.Tensor, block_size: int, keep: int | None) -> KVCache:
    """The prompt's keys and values, block by block, each block attending to the cache before it."""
    cache: KVCache | None = None
    for start in range(0, prompt.shape[1], block_size):
        positions = torch.arange(start, start + block_size, device=prompt.device)
        cache = _extend(
            cache, _cached_forward(model, prompt[:, start : start + block_size], positions, cache)[1], keep
        )
    return cache
