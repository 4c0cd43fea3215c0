"""Model scale as compute per token: the non-embedding FLOPs/token M of DeepSeek LLM.

DeepSeek LLM (DeepSeek-AI 2024, arXiv:2401.02954, §3.2) measures a model's scale not by its
parameter count N but by M, the FLOPs one training token costs (forward and backward) outside
the vocabulary, attention included:

    6 N1 = 72 n_layer d_model^2                                  (non-embedding parameters)
    6 N2 = 72 n_layer d_model^2 + 6 n_vocab d_model              (the output layer too)
    M    = 72 n_layer d_model^2 + 12 n_layer d_model l_seq       (attention, no vocabulary)

so that the compute of a run is C = M D for D training tokens, where Chinchilla writes
C = 6 N D. A block's weights are 12 d^2 (q, k, v, output 4 d^2; a 4x MLP 8 d^2) and each
weight costs 2 FLOPs forward and 4 backward; attention's two products QK^T and AV cost
2 d l each per token forward, 12 d l with the backward. Table 3 of the paper shows 6N1 and 6N2
off by up to 57 % on small models, where attention is a large share of the work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from toyalgos.core.checks import check_positive_int, check_tensor


class FlopsPerToken(NamedTuple):
    """Training FLOPs per token of one shape, three ways (DeepSeek LLM §3.2).

    ``M``: non-embedding FLOPs/token with attention (the paper's model scale); ``six_n1``: 6 times
    the non-embedding parameters; ``six_n2``: 6 times the parameters with the output layer.
    """

    M: float
    six_n1: float
    six_n2: float


def flops_per_token(n_layer: int, d_model: int, seq_len: int, vocab_size: int) -> FlopsPerToken:
    """M, 6 N1 and 6 N2 of a decoder with ``n_layer`` blocks of width ``d_model`` (§3.2).

    ``seq_len`` is the training sequence length l_seq (attention's cost grows with it);
    ``vocab_size`` enters 6 N2 only. Blocks are the standard ones: attention with ``d_model``
    in all, a feed-forward of width 4 ``d_model``.
    """
    for value, name in [(n_layer, "n_layer"), (d_model, "d_model"), (seq_len, "seq_len")]:
        check_positive_int(value, name)
    check_positive_int(vocab_size, "vocab_size")
    six_n1 = 72 * n_layer * d_model**2
    attention = 12 * n_layer * d_model * seq_len
    return FlopsPerToken(
        M=float(six_n1 + attention), six_n1=float(six_n1), six_n2=float(six_n1 + 6 * vocab_size * d_model)
    )


def width_for_flops(m: float, n_layer: int, seq_len: int) -> float:
    """The width d_model whose M equals ``m`` at ``n_layer`` and ``seq_len``: M's inverse in d.

    Solves 72 n d^2 + 12 n l d = m for d > 0; a fractional width, to round as needed.
    """
    check_positive_int(n_layer, "n_layer")
    check_positive_int(seq_len, "seq_len")
    if not isinstance(m, (int, float)) or m <= 0:
        raise ValueError(f"m must be a positive number of FLOPs per token, got {m!r}")
    a, b = 72 * n_layer, 12 * n_layer * seq_len
    return (-b + math.sqrt(b * b + 4 * a * m)) / (2 * a)


def counted_flops(model: nn.Module, loss_fn: Callable[..., torch.Tensor], x: torch.Tensor) -> int:
    """FLOPs of one training step (forward and backward of ``loss_fn(model, x)``), counted by torch.

    ``torch.utils.flop_counter.FlopCounterMode`` adds up the matrix products torch actually
    runs (linear layers, attention's two products), not a formula: for a
    ``toyalgos.nn.Transformer`` it equals (M + 6 V d) per target token, M from
    ``flops_per_token`` and 6 V d the output layer's, which M leaves out. Gradients are zeroed
    afterwards; the parameters do not change. Attention runs as plain matrix products here (the
    math backend), which the counter sees; fused kernels hide their products from it.
    """
    check_tensor(x, "x", dim=2, dtype=torch.long)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss_fn(model, x).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()
