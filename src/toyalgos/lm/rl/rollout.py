"""Sampling many completions fast: autoregressive decoding with a key-value cache.

RL for language models spends most of its compute generating: GRPO samples G completions
for every prompt at every step. ``ar_generate`` reruns the whole prefix at every token, which
costs O(L^2) positions per sequence; caching each layer's keys and values (Pope et al. 2022,
"Efficiently Scaling Transformer Inference", §2) feeds only the newest token through the
network, O(L). The result is the same: ``kv_generate`` draws exactly the tokens
``ar_generate`` draws from the same generator. It reads a ``toyalgos.nn.Transformer`` built
with the default ``SelfAttention`` part through its public attributes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Samples, evaluating
from toyalgos.core.checks import check_generator, check_number, check_positive_int
from toyalgos.nn import SelfAttention, Transformer, rotary

from ..checks import check_tokens
from ..sampling import gumbel_argmax


def _attend(
    attn: SelfAttention, h: torch.Tensor, positions: torch.Tensor, cache: list[torch.Tensor]
) -> torch.Tensor:
    """``attn`` on the new positions ``h`` ``(N, L, D)``, appending their keys and values to ``cache``."""
    N, L, D = h.shape
    q, k, v = attn.qkv(h).view(N, L, 3, attn.n_heads, D // attn.n_heads).permute(2, 0, 3, 1, 4)
    q, k = rotary(q, positions, attn.rope_base), rotary(k, positions, attn.rope_base)
    if cache:
        k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
    cache[:] = [k, v]  # (N, H, L_seen, D / H)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=L > 1)  # L > 1 only at the prompt, with no cache
    return attn.proj(y.transpose(1, 2).reshape(N, L, D))


def _step(
    model: Transformer, tokens: torch.Tensor, start: int, caches: list[list[torch.Tensor]]
) -> torch.Tensor:
    """Logits ``(N, vocab)`` after ``tokens`` ``(N, L)`` at positions start..start+L-1, caches updated."""
    positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
    h = model.tok_emb(tokens)
    if model.pos_emb is not None:
        h = h + model.pos_emb(positions)
    for block, cache in zip(model.blocks, caches, strict=True):
        h = h + _attend(block.attention, block.norm1(h), positions, cache)
        h = h + block.feed_forward(block.norm2(h))
    return model.head(model.norm(h[:, -1])).float()


def kv_generate(
    model: nn.Module,
    prompt: torch.Tensor,
    *,
    gen_length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Samples:
    """Sample ``gen_length`` tokens after ``prompt`` ``(N, P)`` with a key-value cache.

    The same draw as ``ar_generate(model, prompt, gen_length=..., temperature=...)`` (no top-k):
    softmax(logits / temperature) by the Gumbel-max trick, temperature 0 greedy. ``model`` is a
    causal ``toyalgos.nn.Transformer`` whose attention is the default ``SelfAttention``.

    Returns:
        ``Samples(x, nfe, None)``: ``x`` the ``(N, P + gen_length)`` tokens; ``nfe = gen_length``.
    """
    if not isinstance(model, Transformer) or not all(
        isinstance(b.attention, SelfAttention) for b in model.blocks
    ):
        raise TypeError("kv_generate needs a toyalgos.nn.Transformer with the default SelfAttention part")
    if not model.causal:
        raise ValueError("kv_generate needs a causal model (causal=True)")
    check_tokens(prompt, "prompt", min_length=1)
    check_positive_int(gen_length, "gen_length")
    check_number(temperature, "temperature", 0)
    check_generator(generator)
    if prompt.shape[1] + gen_length > model.max_len:
        raise ValueError(
            f"prompt length {prompt.shape[1]} + gen_length {gen_length} exceeds max_len={model.max_len}"
        )
    caches: list[list[torch.Tensor]] = [[] for _ in model.blocks]
    x, new = prompt, prompt
    with evaluating(model):
        for _ in range(gen_length):
            logits = _step(model, new, x.shape[1] - new.shape[1], caches)
            new = gumbel_argmax(logits, temperature, generator=generator)[:, None]
            x = torch.cat([x, new], dim=1)
    return Samples(x, gen_length)
