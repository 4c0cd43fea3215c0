"""Multi-token prediction (MTP), DeepSeek-V3 §2.2 (Eqs. 21-25), and self-speculative greedy decoding.

Besides the next token, the model predicts the token after it with one extra module (depth
D = 1). At position i the module reads the main model's final representation h_i and the
embedding of the true next token t_{i+1}, both RMS-normalised, concatenated and projected back
to d_model (Eq. 21), runs one Transformer block over the sequence of these vectors (causal,
Eq. 22) and predicts t_{i+2} with the *shared* output head (Eq. 23); the embedding is shared
too. Its cross-entropy L_MTP is added to the main loss with weight lambda (Eqs. 24-25; V3 uses
lambda = 0.3, then 0.1). Unlike parallel heads, the module sees the next token, so it keeps
the causal chain.

At inference the module can draft: after the main model has picked t_{T} greedily, the module
guesses t_{T+1} from h_{T-1} and t_T; one main-model call on the sequence with both appended
verifies the guess and, when it is right, also yields t_{T+2}, so that call advances two tokens
instead of one (V3 §5.4.3 reports 85-90 % of second tokens accepted). Verification keeps exactly
the main model's greedy output.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Loss, Samples, evaluating
from toyalgos.core.checks import check_number, check_positive_int
from toyalgos.nn.transformer import Block, FeedForward, Part, SelfAttention, Transformer

from ..checks import check_tokens


class MTPOutput(NamedTuple):
    """``logits`` ``(N, L, V)``: the main model's, for t_{i+1}; ``draft_logits`` ``(N, L - 1, V)``:
    the MTP module's at positions 0..L-2, for t_{i+2}."""

    logits: torch.Tensor
    draft_logits: torch.Tensor


class MTPModule(nn.Module):
    """A main ``Transformer`` plus one V3-style MTP module that shares its embedding and head.

    ``model(tokens)`` returns ``MTPOutput``. The module's own parts: RMSNorms of h and of the
    embedding, the projection M (``2 d_model -> d_model``, Eq. 21), one Transformer block (its
    attention and feed-forward parts as given, default those of ``toyalgos.nn``) and a final
    norm, a copy of the main model's, before the shared head. The main model is a submodule
    (``model.main``), so ``model.parameters()`` lists every shared weight once.
    """

    def __init__(
        self, main: Transformer, *, attention: Part = SelfAttention, feed_forward: Part = FeedForward
    ):
        super().__init__()
        if not isinstance(main, Transformer):
            raise TypeError(f"main must be a toyalgos.nn.Transformer, got {type(main).__name__}")
        if not main.causal:
            raise ValueError("multi-token prediction needs a causal main model (causal=True)")
        D = main.config.d_model
        self.main = main
        self.h_norm = nn.RMSNorm(D)
        self.e_norm = nn.RMSNorm(D)
        self.proj = nn.Linear(2 * D, D, bias=False)  # M_k, Eq. 21
        self.block = Block(main.config, attention, feed_forward)  # TRM_k, Eq. 22
        self.norm = copy.deepcopy(main.norm)
        for m in [self.proj, *self.block.modules()]:  # GPT-2's initialisation, as the main model's
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def max_len(self) -> int:
        return self.main.max_len

    @property
    def causal(self) -> bool:
        return True

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """The main model's final representation h (after its final norm), ``(N, L, d_model)``.

        ``self.main.head(h)`` are the main model's logits, the same as ``self.main(tokens)``.
        """
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.main.tok_emb(tokens)
        if self.main.pos_emb is not None:
            h = h + self.main.pos_emb(positions)
        for block in self.main.blocks:
            h = block(h, positions)
        return self.main.norm(h)

    def draft_logits(self, h: torch.Tensor, next_tokens: torch.Tensor) -> torch.Tensor:
        """Logits for t_{i+2} from h_i and the next token t_{i+1} = ``next_tokens[:, i]`` (Eqs. 21-23).

        ``h`` ``(N, L, d_model)``, ``next_tokens`` ``(N, L)``; returns ``(N, L, V)``. The block is
        causal, so position i depends on ``h`` and ``next_tokens`` at positions <= i only.
        """
        e = self.main.tok_emb(next_tokens)  # the shared embedding
        u = self.proj(torch.cat([self.h_norm(h), self.e_norm(e)], dim=-1))  # h'_i, Eq. 21
        u = self.block(u, torch.arange(u.shape[1], device=u.device))  # Eq. 22
        return self.main.head(self.norm(u))  # the shared output head, Eq. 23

    def forward(self, tokens: torch.Tensor) -> MTPOutput:
        check_tokens(tokens, "tokens", min_length=2)
        h = self.hidden(tokens)
        return MTPOutput(self.main.head(h), self.draft_logits(h[:, :-1], tokens[:, 1:]))


def mtp_loss(model: MTPModule, x: torch.Tensor, *, lam: float = 0.3) -> Loss:
    """L_main + lambda L_MTP (V3 Eqs. 24-25, depth D = 1), terms ``main`` and ``mtp``.

    ``x`` ``(N, L)``, usually ``<bos>`` then the sequence, L >= 3. The model reads
    ``x[:, :-1]``; L_main is the cross-entropy of its next-token logits on ``x[:, 1:]`` and
    L_MTP that of the MTP module, which at position i sees h_i and x_{i+1}, on ``x[:, 2:]``,
    each averaged over its targets. ``lam = 0`` trains the main model alone.
    """
    check_tokens(x, min_length=3)
    check_number(lam, "lam", 0)
    out = model(x[:, :-1])
    dtype = torch.promote_types(out.logits.dtype, torch.float32)  # at least float32 for the softmax
    main = F.cross_entropy(out.logits.flatten(0, 1).to(dtype), x[:, 1:].flatten())
    mtp = F.cross_entropy(out.draft_logits.flatten(0, 1).to(dtype), x[:, 2:].flatten())
    return Loss(main + lam * mtp, {"main": main, "mtp": mtp})


def draft_acceptance(model: MTPModule, x: torch.Tensor, *, prompt_length: int = 1) -> torch.Tensor:
    """Whether each draft would be accepted, teacher-forced on sequences ``x`` ``(N, L)``, bool.

    The draft for t_{i+2}, made from h_i and t_{i+1} = ``x[:, i + 1]``, is accepted when it
    equals the main model's argmax at position i + 1. On the main model's own greedy rollouts
    (``x`` = prompt of ``prompt_length`` tokens + greedy continuation) these are exactly the
    checks speculative decoding makes: one per generated token after the first, so the result
    is ``(N, L - prompt_length - 1)``.
    """
    check_tokens(x, min_length=2)
    check_positive_int(prompt_length, "prompt_length")
    if prompt_length > x.shape[1] - 2:
        raise ValueError(
            f"prompt_length must leave at least 2 generated tokens, got {prompt_length} of {x.shape[1]}"
        )
    with evaluating(model):
        out = model(x)
    main_choice = out.logits.argmax(-1)[:, 1:]  # (N, L - 1): argmax at i + 1, for t_{i+2}
    draft = out.draft_logits.argmax(-1)  # (N, L - 1): the drafts made at i
    return (draft == main_choice)[:, prompt_length - 1 : -1]


def speculative_generate(model: MTPModule, prompt: torch.Tensor, *, gen_length: int) -> Samples:
    """Greedy decoding of ``gen_length`` tokens after ``prompt`` (N, P), drafting with the MTP module.

    Each row keeps its committed tokens, the main model's next greedy token c (certain) and a
    draft d of the token after c. One main-model call on committed + [c, d] checks d against
    the main model's argmax after c: accepted, the row gains d and the argmax after d (two tokens
    for one call); rejected, it gains that argmax instead of d (one token). The MTP module then
    drafts again from the last certain position. Rows advance at their own pace in one batch:
    the model is causal, so what lies right of a row's tokens changes nothing. The output equals
    plain greedy decoding (``ar_generate(model.main, prompt, gen_length=..., temperature=0)``),
    up to floating-point near-ties.

    Returns:
        ``Samples(x, nfe)``: ``x`` ``(N, P + gen_length)``; ``nfe`` the main-model calls, the
        first on the prompt included (plain greedy decoding makes ``gen_length``); a batch makes
        as many as its slowest row.
    """
    check_tokens(prompt, "prompt", min_length=1)
    check_positive_int(gen_length, "gen_length")
    N, P = prompt.shape
    total = P + gen_length
    if total > model.max_len:
        raise ValueError(f"prompt length {P} + gen_length {gen_length} exceeds max_len={model.max_len}")
    rows = torch.arange(N, device=prompt.device)
    buf = torch.zeros(N, total + 2, dtype=torch.long, device=prompt.device)  # committed tokens, then c, d
    buf[:, :P] = prompt
    T = torch.full((N,), P, device=prompt.device)  # committed tokens per row; c sits at T
    with evaluating(model):
        h = model.hidden(prompt)
        c = model.main.head(h[:, -1]).argmax(-1)
        buf[:, P] = c
        d = model.draft_logits(h, torch.cat([prompt[:, 1:], c[:, None]], dim=1))[:, -1].argmax(-1)
        nfe = 1
        while (active := T + 1 < total).any():
            buf[rows, T + 1] = torch.where(active, d, buf[rows, T + 1])
            y = buf[:, : int(T[active].max()) + 2]
            h = model.hidden(y)
            nfe += 1
            choice = model.main.head(h).argmax(-1)  # (N, L): the main model's greedy next tokens
            last = y.shape[1] - 1
            m = choice[rows, T.clamp(max=last)]  # the main model's token after c
            accept = active & (m == d)
            c = torch.where(accept, choice[rows, (T + 1).clamp(max=last)], m)
            at = torch.where(accept, T + 1, T).clamp(max=last)  # the draft's position: c comes after it
            T = torch.where(active, T + 1 + accept.long(), T)
            buf[rows[active], T[active]] = c[active]
            next_tokens = torch.cat([y[:, 1:], y[:, -1:]], dim=1).scatter(1, at[:, None], c[:, None])
            d = torch.where(active, model.draft_logits(h, next_tokens)[rows, at].argmax(-1), d)
    return Samples(buf[:, :total], nfe)
