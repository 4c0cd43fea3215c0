"""Multi-head latent attention (MLA): DeepSeek-V2 §2.1 (Eqs. 9-19), DeepSeek-V3 §2.1.1 (Eqs. 1-11).

Keys and values are not cached per head. Each token's hidden state h_t is compressed into one
latent vector c^KV_t = W^DKV h_t of size d_c (Eq. 1), from which every head's key and value are
up-projected, k^C = W^UK c^KV and v^C = W^UV c^KV (Eqs. 2, 5). Rotary positions cannot go on
k^C (see ``coupled_rope_scores``), so each token also has a small decoupled key
k^R_t = RoPE(W^KR h_t) of size d_rope that all heads share (Eq. 3); head i's key is
[k^C_i; k^R] (Eq. 4). Queries are compressed too: c^Q = W^DQ h (d_q), q^C = W^UQ c^Q,
q^R = RoPE(W^QR c^Q) per head (Eqs. 6-9), and the logits are scaled by 1/sqrt(d_head + d_rope).
As in ``inference/model.py`` of DeepSeek-V3, both latents are RMS-normalised and no projection has
a bias.

Two ways to compute the same attention (``impl``):

- ``'naive'``: materialise k^C and v^C for every head and attend as in ordinary multi-head
  attention (what training does);
- ``'absorb'``: never form k^C or v^C. q^C_i^T k^C_{i,s} = (W^UK_i^T q^C_i)^T c^KV_s, so W^UK is
  folded into the query, which then attends to the latents directly; the attention-weighted
  latents go through W^UV after attention. Only c^KV and k^R are needed per token: the cache
  (``LatentCache``) holds d_c + d_rope numbers per token per layer instead of MHA's
  2 n_heads d_head (``kv_cache_elements``).

``MLA`` is an attention part for ``toyalgos.nn.Transformer``:
``Transformer(config, attention=partial(MLA, d_c=32, d_rope=8))``. ``mla_forward_cached`` runs
such a model incrementally on the latent cache (one new token at a time, or a prompt at once).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from toyalgos.core.checks import (
    check_choice,
    check_int,
    check_nonnegative_int,
    check_positive_int,
    check_tensor,
)
from toyalgos.nn.transformer import TransformerConfig, rotary

from ..checks import check_tokens

IMPLS = ("naive", "absorb")
KINDS = ("mha", "gqa", "mqa", "mla")


def kv_cache_elements(
    kind: str,
    n_heads: int,
    d_head: int,
    *,
    n_groups: int | None = None,
    d_c: int | None = None,
    d_rope: int | None = None,
) -> int:
    """Numbers cached per token per layer (DeepSeek-V2 Table 1), ``kind`` in mha, gqa, mqa, mla.

    MHA caches a key and a value per head, 2 n_h d_h; GQA one pair per group of heads,
    2 n_g d_h; MQA one pair, 2 d_h; MLA the latent and the shared rotary key, d_c + d_rope.
    ``n_groups`` is for 'gqa' only (a divisor of ``n_heads``); ``d_c`` and ``d_rope`` for 'mla'
    only (both required there; ``d_rope`` may be 0).
    """
    check_choice(kind, "kind", KINDS)
    check_positive_int(n_heads, "n_heads")
    check_positive_int(d_head, "d_head")
    given = {"n_groups": n_groups, "d_c": d_c, "d_rope": d_rope}
    wanted = {"gqa": {"n_groups"}, "mla": {"d_c", "d_rope"}}.get(kind, set())
    wrong = sorted(name for name, v in given.items() if (v is not None) != (name in wanted))
    if wrong:
        raise ValueError(f"kind={kind!r} needs exactly {sorted(wanted) or 'no extra sizes'}, got {given}")
    if kind == "mha":
        return 2 * n_heads * d_head
    if kind == "gqa":
        check_positive_int(n_groups, "n_groups")
        if n_heads % n_groups:
            raise ValueError(f"n_groups must divide n_heads, got n_heads={n_heads}, n_groups={n_groups}")
        return 2 * n_groups * d_head
    if kind == "mqa":
        return 2 * d_head
    return check_positive_int(d_c, "d_c") + check_nonnegative_int(d_rope, "d_rope")


class LatentCache(NamedTuple):
    """What MLA keeps per layer for the tokens seen so far: nothing per head.

    ``c_kv``: the normalised latents c^KV, ``(N, T, d_c)``; ``k_rope``: the shared rotary keys
    k^R, already rotated to their positions, ``(N, T, d_rope)``.
    """

    c_kv: torch.Tensor
    k_rope: torch.Tensor

    @property
    def length(self) -> int:
        return self.c_kv.shape[1]

    @property
    def elements_per_token(self) -> int:
        """Numbers cached per token: d_c + d_rope."""
        return self.c_kv.shape[-1] + self.k_rope.shape[-1]


class MLA(nn.Module):
    """Multi-head latent attention, an attention part: ``forward(h, positions, attn_mask=None)``.

    Args:
        config: the Transformer's sizes; ``n_heads`` heads of ``head_dim`` for k^C, v^C, q^C.
        d_c: size of the key-value latent c^KV (default ``d_model // 2``).
        d_q: size of the query latent c^Q (default ``d_model // 2``).
        d_rope: size of the decoupled rotary query and key per head (default ``head_dim // 2``;
            even, since RoPE rotates pairs).
        impl: ``'naive'`` (materialised keys and values) or ``'absorb'`` (W^UK in the query,
            W^UV after attention); both compute the same function of the same weights, and
            ``impl`` may be changed on a built model.
    """

    def __init__(
        self,
        config: TransformerConfig,
        *,
        d_c: int | None = None,
        d_q: int | None = None,
        d_rope: int | None = None,
        impl: str = "naive",
    ):
        super().__init__()
        D, H = config.d_model, config.n_heads
        self.n_heads, self.d_head = H, config.head_dim
        self.d_c = check_positive_int(D // 2 if d_c is None else d_c, "d_c")
        self.d_q = check_positive_int(D // 2 if d_q is None else d_q, "d_q")
        self.d_rope = check_int(self.d_head // 2 if d_rope is None else d_rope, "d_rope", 2)
        if self.d_rope % 2:
            raise ValueError(f"d_rope must be even (RoPE rotates pairs), got {self.d_rope}")
        self.impl = check_choice(impl, "impl", IMPLS)
        self.causal, self.rope_base = config.causal, config.rope_base
        self.scale = 1.0 / math.sqrt(self.d_head + self.d_rope)
        self.w_dq = nn.Linear(D, self.d_q, bias=False)  # W^DQ, Eq. 6
        self.q_norm = nn.RMSNorm(self.d_q)
        self.w_uq = nn.Linear(self.d_q, H * self.d_head, bias=False)  # W^UQ, Eq. 7
        self.w_qr = nn.Linear(self.d_q, H * self.d_rope, bias=False)  # W^QR, Eq. 8
        self.w_dkv = nn.Linear(D, self.d_c, bias=False)  # W^DKV, Eq. 1
        self.kv_norm = nn.RMSNorm(self.d_c)
        self.w_kr = nn.Linear(D, self.d_rope, bias=False)  # W^KR, Eq. 3
        self.w_uk = nn.Linear(self.d_c, H * self.d_head, bias=False)  # W^UK, Eq. 2
        self.w_uv = nn.Linear(self.d_c, H * self.d_head, bias=False)  # W^UV, Eq. 5
        self.w_o = nn.Linear(H * self.d_head, D, bias=False)  # W^O, Eq. 11

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}, d_head={self.d_head}, d_c={self.d_c}, d_q={self.d_q}, " + (
            f"d_rope={self.d_rope}, impl={self.impl!r}"
        )

    # ------------------------------------------------------------------ the projections

    def latent(self, h: torch.Tensor, positions: torch.Tensor) -> LatentCache:
        """What a token contributes to the cache: c^KV = Norm(W^DKV h) and k^R = RoPE(W^KR h)."""
        c_kv = self.kv_norm(self.w_dkv(h))  # (N, L, d_c)
        k_rope = rotary(self.w_kr(h)[:, None], positions, self.rope_base)[:, 0]  # (N, L, d_rope)
        return LatentCache(c_kv, k_rope)

    def queries(self, h: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q^C ``(N, H, L, d_head)`` and the rotated q^R ``(N, H, L, d_rope)`` from c^Q = Norm(W^DQ h)."""
        N, L, _ = h.shape
        c_q = self.q_norm(self.w_dq(h))  # (N, L, d_q)
        q_c = self.w_uq(c_q).view(N, L, self.n_heads, self.d_head).transpose(1, 2)
        q_r = self.w_qr(c_q).view(N, L, self.n_heads, self.d_rope).transpose(1, 2)
        return q_c, rotary(q_r, positions, self.rope_base)

    def up_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W^UK and W^UV per head, each ``(H, d_head, d_c)``."""
        shape = (self.n_heads, self.d_head, self.d_c)
        return self.w_uk.weight.view(shape), self.w_uv.weight.view(shape)

    # ------------------------------------------------------------------ attention, two ways

    def attend(
        self, q_c: torch.Tensor, q_r: torch.Tensor, cache: LatentCache, mask: torch.Tensor
    ) -> torch.Tensor:
        """Attention of queries ``(N, H, S, .)`` over the T cached tokens; ``mask`` ``(.., S, T)``.

        Returns the heads' outputs concatenated, ``(N, S, H d_head)``, before W^O.
        """
        w_uk, w_uv = self.up_weights()
        c_kv, k_r = cache
        rope_part = torch.einsum("nhsr,ntr->nhst", q_r, k_r)  # q^R . k^R, the shared key
        if self.impl == "naive":  # Eqs. 2, 4, 5, 10: materialise every head's key and value
            k_c = torch.einsum("hdc,ntc->nhtd", w_uk, c_kv)
            v_c = torch.einsum("hdc,ntc->nhtd", w_uv, c_kv)
            scores = torch.einsum("nhsd,nhtd->nhst", q_c, k_c) + rope_part
            out = torch.einsum("nhst,nhtd->nhsd", self._softmax(scores, mask), v_c)
        else:  # absorbed: W^UK folded into the query, W^UV applied after attention
            q_latent = torch.einsum("nhsd,hdc->nhsc", q_c, w_uk)
            scores = torch.einsum("nhsc,ntc->nhst", q_latent, c_kv) + rope_part
            out_latent = torch.einsum("nhst,ntc->nhsc", self._softmax(scores, mask), c_kv)
            out = torch.einsum("nhsc,hdc->nhsd", out_latent, w_uv)
        N, H, S, d = out.shape
        return out.transpose(1, 2).reshape(N, S, H * d)

    def _softmax(self, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (scores * self.scale).masked_fill(~mask, float("-inf")).softmax(dim=-1)

    def forward(
        self, h: torch.Tensor, positions: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Self-attention over the whole sequence ``h`` ``(N, L, d_model)``, as ``SelfAttention``.

        ``attn_mask`` is boolean, ``(L, L)`` or ``(N, 1, L, L)`` (True: query i may attend to
        key j), combined with the causal mask when the config is causal.
        """
        L = h.shape[1]
        mask = torch.ones(L, L, dtype=torch.bool, device=h.device)
        if self.causal:
            mask = mask.tril()
        if attn_mask is not None:
            mask = mask & attn_mask
        q_c, q_r = self.queries(h, positions)
        return self.w_o(self.attend(q_c, q_r, self.latent(h, positions), mask))

    def extend(
        self, h: torch.Tensor, positions: torch.Tensor, cache: LatentCache | None = None
    ) -> tuple[torch.Tensor, LatentCache]:
        """Incremental decoding: the outputs for S new tokens ``h`` ``(N, S, d_model)``, and the cache.

        The new tokens' latents are appended to ``cache`` (the T tokens before them, or None),
        and new token j attends to the T cached tokens and to new tokens 0..j (causal).
        ``positions`` ``(S,)`` are the new tokens' positions, normally T..T+S-1. Returns the
        output ``(N, S, d_model)`` and the cache of all T + S tokens. Attention runs on the
        latents alone, whatever ``impl``: the cache has no per-head keys or values.
        """
        new = self.latent(h, positions)
        if cache is not None:
            new = LatentCache(*(torch.cat([old, x], dim=1) for old, x in zip(cache, new, strict=True)))
        S, T = h.shape[1], new.length
        mask = torch.ones(S, T, dtype=torch.bool, device=h.device).tril(diagonal=T - S)
        q_c, q_r = self.queries(h, positions)
        return self.w_o(self.attend(q_c, q_r, new, mask)), new


class RopeScores(NamedTuple):
    """Content logits ``(N, H, L, L)`` computed two ways (``coupled_rope_scores``)."""

    naive: torch.Tensor
    absorbed: torch.Tensor


def coupled_rope_scores(mla: MLA, h: torch.Tensor, positions: torch.Tensor) -> RopeScores:
    """Why MLA needs the decoupled key: attention logits if RoPE were put on q^C and k^C instead.

    With RoPE on the content key, the logit of query t and key s is
    (R_t q^C)^T R_s W^UK c^KV_s: the rotation R_s of the key position sits between the query and
    W^UK, so no single matrix can be folded into the query. Returns the content logits
    ``(N, H, L, L)`` two ways: ``naive`` rotates the materialised keys R_s W^UK c^KV_s, as it
    should; ``absorbed`` folds W^UK into the rotated query and dots it with the cached latents,
    the only thing the cache holds. They agree only where R_s is the identity (key position 0).
    """
    check_tensor(h, "h", dim=3)
    w_uk, _ = mla.up_weights()
    q_c, _ = mla.queries(h, positions)
    q_rot = rotary(q_c, positions, mla.rope_base)  # R_t q^C
    c_kv = mla.latent(h, positions).c_kv
    k_c = torch.einsum("hdc,ntc->nhtd", w_uk, c_kv)
    naive = torch.einsum("nhsd,nhtd->nhst", q_rot, rotary(k_c, positions, mla.rope_base))
    absorbed = torch.einsum("nhsc,ntc->nhst", torch.einsum("nhsd,hdc->nhsc", q_rot, w_uk), c_kv)
    return RopeScores(naive, absorbed)


class CachedForward(NamedTuple):
    """``mla_forward_cached``'s result: ``logits`` ``(N, S, V)`` of the new tokens and every layer's cache."""

    logits: torch.Tensor
    caches: tuple[LatentCache, ...]


def mla_forward_cached(
    model: nn.Module, tokens: torch.Tensor, caches: tuple[LatentCache, ...] | None = None
) -> CachedForward:
    """Run a Transformer whose attention parts are ``MLA`` on new ``tokens`` ``(N, S)``, with caches.

    ``caches`` (one ``LatentCache`` per block, or None at the start) hold the T tokens before;
    the new tokens get positions T..T+S-1. The model is walked through its public parts
    (``tok_emb``, ``pos_emb``, ``blocks``, ``norm``, ``head``), each block as pre-LN
    h + Attn(Norm(h)), h + FFN(Norm(h)). Feeding a sequence in pieces gives the logits of one
    full forward pass (up to rounding); each step costs O(T) instead of recomputing the prefix.
    """
    check_tokens(tokens, "tokens")
    blocks = list(model.blocks)
    if not all(isinstance(b.attention, MLA) for b in blocks):
        raise TypeError("mla_forward_cached needs a Transformer whose attention parts are all MLA")
    if caches is not None and len(caches) != len(blocks):
        raise ValueError(f"caches must hold one LatentCache per block ({len(blocks)}), got {len(caches)}")
    T = 0 if caches is None else caches[0].length
    positions = torch.arange(T, T + tokens.shape[1], device=tokens.device)
    if T + tokens.shape[1] > model.max_len:
        raise ValueError(
            f"{T} cached + {tokens.shape[1]} new tokens exceed the model's max_len={model.max_len}"
        )
    h = model.tok_emb(tokens)
    if model.pos_emb is not None:
        h = h + model.pos_emb(positions)
    new_caches = []
    for i, block in enumerate(blocks):
        out, cache = block.attention.extend(block.norm1(h), positions, None if caches is None else caches[i])
        h = h + out
        h = h + block.feed_forward(block.norm2(h))
        new_caches.append(cache)
    return CachedForward(model.head(model.norm(h)), tuple(new_caches))
