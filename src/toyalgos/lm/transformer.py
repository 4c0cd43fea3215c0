"""A tiny pre-LN Transformer: one class for the autoregressive and the masked diffusion models.

LLaDA (Nie et al. 2025, §2.2) takes a LLaMA-style decoder and removes the causal mask; the
parameters are the same. ``TinyTransformer(causal=True)`` is the autoregressive model,
``causal=False`` the mask predictor, so a comparison between them differs only in the
attention mask and the objective.

Architecture: pre-LN blocks (Xiong et al. 2020) of ``h <- h + Attn(LN(h))``,
``h <- h + MLP(LN(h))`` (MLP width 4 d_model, GELU), a final LayerNorm and a linear head.
Positions enter twice: a learned absolute embedding added to the tokens (GPT-2), and rotary
embeddings on queries and keys (RoPE, as in LLaMA and LLaDA). Both matter at toy scale: a
bidirectional model finds its neighbours through RoPE's relative angles several times
faster than through learned positions alone, while recalling a memorised fact from its
absolute slots is faster with the learned table. Nothing in the masked diffusion model needs
a time input (LLaDA, like MDLM, is time-free: the number of masks tells the model the noise
level). Attention is ``F.scaled_dot_product_attention``.
No dropout: the toy corpora are sampled fresh, so there is nothing to overfit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_positive_int, check_tokens


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
    """Multi-head self-attention with fused q, k, v projections and rotary positions."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(
        self, h: torch.Tensor, positions: torch.Tensor, causal: bool, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        N, L, D = h.shape
        q, k, v = self.qkv(h).view(N, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = rotary(q, positions), rotary(k, positions)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal)
        return self.proj(y.transpose(1, 2).reshape(N, L, D))


class Block(nn.Module):
    """Pre-LN Transformer block: h + Attn(LN(h)), then h + MLP(LN(h))."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(), nn.Linear(mlp_ratio * d_model, d_model)
        )

    def forward(
        self, h: torch.Tensor, positions: torch.Tensor, causal: bool, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = h + self.attn(self.ln1(h), positions, causal, attn_mask)
        return h + self.mlp(self.ln2(h))


class TinyTransformer(nn.Module):
    """``model(tokens) -> logits``: tokens ``(N, L)`` long, logits ``(N, L, vocab_size)``.

    Args:
        vocab_size: number of token ids (specials included).
        d_model: width of the residual stream; a multiple of ``n_heads``.
        n_layers: number of blocks.
        n_heads: attention heads per block.
        max_len: longest sequence (size of the position table).
        causal: True for an autoregressive model (position i attends to positions <= i),
            False for a bidirectional mask predictor.

    ``forward`` also takes an optional boolean ``attn_mask`` of shape ``(L, L)`` or
    ``(N, L, L)`` (True: query i may attend to key j), combined with the causal mask when
    ``causal``, and optional ``positions`` ``(L,)`` or ``(N, L)`` replacing 0..L-1 (a model
    reading two copies of one sequence can give both the same positions). Every query must be
    allowed at least one key.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        max_len: int = 64,
        causal: bool = False,
    ):
        super().__init__()
        for name, value in [
            ("vocab_size", vocab_size),
            ("d_model", d_model),
            ("n_layers", n_layers),
            ("n_heads", n_heads),
            ("max_len", max_len),
        ]:
            check_positive_int(value, name)
        if d_model % n_heads:
            raise ValueError(
                f"d_model must be a multiple of n_heads, got d_model={d_model}, n_heads={n_heads}"
            )
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.causal = bool(causal)
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases."""
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def extra_repr(self) -> str:
        return f"causal={self.causal}, max_len={self.max_len}"

    def _check_input(self, tokens: torch.Tensor) -> None:
        check_tokens(tokens, "tokens")
        L = tokens.shape[1]
        if L > self.max_len:
            raise ValueError(f"sequence length {L} exceeds the model's max_len={self.max_len}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            lo, hi = tokens.min().item(), tokens.max().item()
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {lo}..{hi}")

    def _attention_mask(self, attn_mask: torch.Tensor | None, L: int) -> torch.Tensor | None:
        """The user's boolean mask, AND the causal one when causal, shaped for (N, heads, L, L)."""
        if attn_mask is None:
            return None
        if attn_mask.dtype != torch.bool or attn_mask.shape[-2:] != (L, L) or attn_mask.dim() not in (2, 3):
            raise ValueError(
                f"attn_mask must be a bool tensor of shape ({L}, {L}) or (N, {L}, {L}), "
                f"got {attn_mask.dtype} {tuple(attn_mask.shape)}"
            )
        if self.causal:
            attn_mask = attn_mask & torch.ones(L, L, dtype=torch.bool, device=attn_mask.device).tril()
        return attn_mask if attn_mask.dim() == 2 else attn_mask[:, None]

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        attn_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self._check_input(tokens)
        L = tokens.shape[1]
        if positions is None:
            positions = torch.arange(L, device=tokens.device)
        elif positions.shape[-1] != L or positions.min() < 0 or positions.max() >= self.max_len:
            raise ValueError(f"positions must have last dimension {L} and lie in [0, {self.max_len})")
        mask = self._attention_mask(attn_mask, L)
        causal = self.causal and mask is None
        h = self.tok_emb(tokens) + self.pos_emb(positions)
        for block in self.blocks:
            h = block(h, positions, causal, mask)
        return self.head(self.ln_f(h))
