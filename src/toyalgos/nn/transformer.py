"""A small pre-LN Transformer built from parts: attention, feed-forward, norm, positions.

One class serves the autoregressive and the masked diffusion language models: LLaDA (Nie et al.
2025, §2.2) takes a LLaMA-style decoder and removes the causal mask, so
``Transformer(TransformerConfig(..., causal=True))`` is the autoregressive model and
``causal=False`` the mask predictor; a comparison between them differs only in the attention
mask and the objective.

Architecture: pre-LN blocks (Xiong et al. 2020) of ``h <- h + Attn(LN(h))``,
``h <- h + FFN(LN(h))`` (FFN width ``mlp_ratio * d_model``, GELU), a final norm and a linear
head. Positions enter twice: a learned absolute embedding added to the tokens (GPT-2), and
rotary embeddings on queries and keys (RoPE, as in LLaMA and LLaDA). Both matter at toy scale:
a bidirectional model finds its neighbours through RoPE's relative angles several times faster
than through learned positions alone, while recalling a memorised fact from its absolute slots
is faster with the learned table. Attention is ``F.scaled_dot_product_attention``. No dropout:
the toy corpora are sampled fresh, so there is nothing to overfit.

Parts, not flags. Each part is made by a factory, a callable ``config -> nn.Module``:

- ``attention(config)``: ``forward(h, positions, attn_mask=None) -> h``, ``h`` of shape
  ``(N, L, d_model)``; default ``SelfAttention``.
- ``feed_forward(config)``: ``forward(h) -> h``; default ``FeedForward``.
- ``norm(config)``: ``forward(h) -> h``; default ``layer_norm``.
- ``position_embedding(config)`` or ``None``: ``forward(positions) -> (..., L, d_model)``, added
  to the token embeddings; default ``learned_positions``.

A mixture-of-experts feed-forward or a multi-head latent attention is a new part in a new
module, passed to ``Transformer(config, feed_forward=...)``; the existing classes stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core.checks import check_number, check_positive_int, check_tensor


@dataclass(frozen=True)
class TransformerConfig:
    """The sizes of a ``Transformer``.

    Args:
        vocab_size: number of token ids (specials included).
        d_model: width of the residual stream; a multiple of ``n_heads``.
        n_layers: number of blocks.
        n_heads: attention heads per block.
        max_len: longest sequence (size of the position table).
        causal: True for an autoregressive model (position i attends to positions <= i),
            False for a bidirectional one (a mask predictor).
        mlp_ratio: hidden width of the feed-forward part, in multiples of ``d_model``.
        rope_base: base of the rotary frequencies, ``base ** (-2k / head_dim)``.
    """

    vocab_size: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 64
    causal: bool = False
    mlp_ratio: int = 4
    rope_base: float = 10_000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_len", "mlp_ratio"):
            check_positive_int(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be a multiple of n_heads, got d_model={self.d_model}, n_heads={self.n_heads}"
            )
        if not isinstance(self.causal, bool):
            raise TypeError(f"causal must be a bool, got {type(self.causal).__name__}")
        check_number(self.rope_base, "rope_base", 0, low_open=True)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


Part = Callable[[TransformerConfig], nn.Module]


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotary position embedding (RoPE, Su et al. 2021, Eq. 34) of queries or keys ``(N, H, L, D)``.

    Channel pairs (k, k + D/2) of the vector at position m are rotated by the angle
    m * base**(-2k / D) (LLaMA's "rotate half" layout), so that the dot product of a query at
    m with a key at n depends on m - n only. ``positions`` is ``(L,)`` or ``(N, L)``.
    """
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, dtype=torch.float32, device=x.device) / half)
    angles = positions.to(x.device, torch.float32)[..., None] * freqs  # (L, D/2) or (N, L, D/2)
    if angles.dim() == 3:
        angles = angles[:, None]  # (N, 1, L, D/2): the same for every head
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with fused q, k, v projections and rotary positions.

    ``forward(h, positions, attn_mask=None)``: ``attn_mask`` is boolean, ``(L, L)`` or
    ``(N, 1, L, L)`` (True: query i may attend to key j); a causal model combines it with the
    causal mask, and uses the causal mask alone when none is given.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.causal = config.causal
        self.rope_base = config.rope_base
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(
        self, h: torch.Tensor, positions: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        N, L, D = h.shape
        q, k, v = self.qkv(h).view(N, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = rotary(q, positions, self.rope_base), rotary(k, positions, self.rope_base)
        if attn_mask is not None and self.causal:
            attn_mask = attn_mask & torch.ones(L, L, dtype=torch.bool, device=h.device).tril()
        is_causal = self.causal and attn_mask is None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        return self.proj(y.transpose(1, 2).reshape(N, L, D))


class FeedForward(nn.Module):
    """The position-wise MLP: Linear(d, r d), GELU, Linear(r d, d) with r = ``mlp_ratio``."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        hidden = config.mlp_ratio * config.d_model
        self.up = nn.Linear(config.d_model, hidden)
        self.act = nn.GELU()
        self.down = nn.Linear(hidden, config.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(h)))


def layer_norm(config: TransformerConfig) -> nn.Module:
    """The default norm part: ``nn.LayerNorm(d_model)``."""
    return nn.LayerNorm(config.d_model)


def learned_positions(config: TransformerConfig) -> nn.Module:
    """The default position part: a learned table of ``max_len`` vectors (GPT-2)."""
    return nn.Embedding(config.max_len, config.d_model)


class Block(nn.Module):
    """Pre-LN Transformer block: h + Attn(Norm(h)), then h + FFN(Norm(h)); parts from factories."""

    def __init__(
        self,
        config: TransformerConfig,
        attention: Part = SelfAttention,
        feed_forward: Part = FeedForward,
        norm: Part = layer_norm,
    ):
        super().__init__()
        self.norm1 = norm(config)
        self.attention = attention(config)
        self.norm2 = norm(config)
        self.feed_forward = feed_forward(config)

    def forward(
        self, h: torch.Tensor, positions: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = h + self.attention(self.norm1(h), positions, attn_mask)
        return h + self.feed_forward(self.norm2(h))


class Transformer(nn.Module):
    """``model(tokens) -> logits``: tokens ``(N, L)`` long, logits ``(N, L, vocab_size)``.

    Built from a ``TransformerConfig`` and one factory per part (see the module docstring);
    the defaults give a GPT-2-like pre-LN Transformer with learned and rotary positions,
    initialised as GPT-2 (N(0, 0.02) weights, zero biases).

    ``forward`` also takes an optional boolean ``attn_mask`` of shape ``(L, L)`` or
    ``(N, L, L)`` (True: query i may attend to key j), combined with the causal mask when
    ``causal``, and optional ``positions`` ``(L,)`` or ``(N, L)`` replacing 0..L-1 (a model
    reading two copies of one sequence can give both the same positions). Every query must be
    allowed at least one key.
    """

    def __init__(
        self,
        config: TransformerConfig,
        *,
        attention: Part = SelfAttention,
        feed_forward: Part = FeedForward,
        norm: Part = layer_norm,
        position_embedding: Part | None = learned_positions,
    ):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = None if position_embedding is None else position_embedding(config)
        self.blocks = nn.ModuleList(
            Block(config, attention, feed_forward, norm) for _ in range(config.n_layers)
        )
        self.norm = norm(config)
        self.head = nn.Linear(config.d_model, config.vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases."""
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_len(self) -> int:
        return self.config.max_len

    @property
    def causal(self) -> bool:
        return self.config.causal

    def extra_repr(self) -> str:
        return f"causal={self.causal}, max_len={self.max_len}"

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        positions, attn_mask = self._check_input(tokens, attn_mask, positions)
        h = self.tok_emb(tokens)
        if self.pos_emb is not None:
            h = h + self.pos_emb(positions)
        for block in self.blocks:
            h = block(h, positions, attn_mask)
        return self.head(self.norm(h))

    def _check_input(
        self, tokens: torch.Tensor, attn_mask: torch.Tensor | None, positions: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate the inputs; return the positions (default 0..L-1) and the mask shaped for heads."""
        check_tensor(tokens, "tokens", dim=2, dtype=torch.long)
        L = tokens.shape[1]
        if L > self.max_len:
            raise ValueError(f"sequence length {L} exceeds the model's max_len={self.max_len}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            lo, hi = tokens.min().item(), tokens.max().item()
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {lo}..{hi}")
        if positions is None:
            positions = torch.arange(L, device=tokens.device)
        elif positions.shape[-1] != L or positions.min() < 0 or positions.max() >= self.max_len:
            raise ValueError(f"positions must have last dimension {L} and lie in [0, {self.max_len})")
        if attn_mask is None:
            return positions, None
        if attn_mask.dtype != torch.bool or attn_mask.shape[-2:] != (L, L) or attn_mask.dim() not in (2, 3):
            raise ValueError(
                f"attn_mask must be a bool tensor of shape ({L}, {L}) or (N, {L}, {L}), "
                f"got {attn_mask.dtype} {tuple(attn_mask.shape)}"
            )
        return positions, attn_mask if attn_mask.dim() == 2 else attn_mask[:, None]
