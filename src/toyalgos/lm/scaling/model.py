"""The network of the scaling runs: the shared ``Transformer`` with a lean causal attention part.

Scaling laws need many small training runs, and at toy widths a step's time is mostly the
number of operations, not their size. ``CausalAttention`` is ``toyalgos.nn.SelfAttention``
without rotary positions (the model keeps its learned position table, as GPT-2): the same
FLOPs, counted by M's attention term 12 n_layer d_model l_seq, in fewer operations, which
makes a one-block step about 30 % faster. It is passed to the Transformer as a part.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.nn import Transformer, TransformerConfig


class CausalAttention(nn.Module):
    """Multi-head causal self-attention, fused q, k, v, no rotary positions; an attention part.

    ``forward(h, positions, attn_mask=None)`` with ``h`` of shape ``(N, L, d_model)``; the
    positions are ignored (they entered through the model's position table), and every query
    attends to the keys at or before it: a custom ``attn_mask`` is refused.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not config.causal:
            raise ValueError("CausalAttention needs a causal config (causal=True)")
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(
        self, h: torch.Tensor, positions: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if attn_mask is not None:
            raise ValueError("CausalAttention takes no attn_mask: it always applies the causal mask")
        N, L, D = h.shape
        q, k, v = self.qkv(h).view(N, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (N, H, L, D / H)
        return self.proj(y.transpose(1, 2).reshape(N, L, D))


def scaling_model(vocab_size: int, d_model: int, n_layer: int, seq_len: int, n_heads: int = 2) -> Transformer:
    """A causal ``Transformer`` of ``n_layer`` blocks of width ``d_model`` with ``CausalAttention``.

    Initialised from torch's global generator (seed it first); ``max_len = seq_len``.
    """
    config = TransformerConfig(vocab_size, d_model, n_layer, n_heads, max_len=seq_len, causal=True)
    return Transformer(config, attention=CausalAttention)
