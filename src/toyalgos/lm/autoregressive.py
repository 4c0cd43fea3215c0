"""Autoregressive language modelling: next-token cross-entropy, exact NLL, sampling.

The baseline of LLaDA (Nie et al. 2025, Eq. 2): p(x) = prod_i p(x^i | x^{<i}), learned by
maximum likelihood, so the training loss *is* the NLL and the held-out NLL is exact, not a
bound. Sequences start with ``<bos>`` (``add_bos``), which gives the first real token
something to be predicted from; the NLL is then per real token.

The model is any causal ``model(tokens) -> logits (N, L, V)``, e.g.
``toyalgos.nn.Transformer(TransformerConfig(..., causal=True))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Samples, evaluating
from toyalgos.core.checks import check_generator, check_number, check_positive_int

from .checks import check_tokens
from .sampling import gumbel_argmax


def _check_causal(model: nn.Module) -> None:
    if getattr(model, "causal", True) is False:
        raise ValueError("this needs a causal model (causal=True): a bidirectional one sees the next token")


def _token_nll(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """-log p(x^{i+1} | x^{<=i}) at every position, shape ``(N, L - 1)``."""
    log_p = F.log_softmax(model(x[:, :-1]).float(), dim=-1)
    return -log_p.gather(-1, x[:, 1:, None])[..., 0]


def ar_loss(model: nn.Module, x: torch.Tensor, *, pad_id: int | None = None) -> torch.Tensor:
    """Next-token cross-entropy (Eq. 2), averaged over the targets that are not ``pad_id``.

    ``x`` is ``(N, L)`` token ids, usually ``<bos>`` then the sequence; the model reads
    ``x[:, :-1]`` and is scored on ``x[:, 1:]``.
    """
    _check_causal(model)
    check_tokens(x, min_length=2)
    nll = _token_nll(model, x)
    if pad_id is None:
        return nll.mean()
    keep = x[:, 1:] != pad_id
    if not keep.any():
        raise ValueError("every target token is padding")
    return nll[keep].mean()


def ar_nll(
    model: nn.Module, x: torch.Tensor, *, pad_id: int | None = None, batch_size: int = 1024
) -> torch.Tensor:
    """Exact NLL per predicted token of every sequence, nats, shape ``(N,)``.

    -1/n_i sum_j log p(x_i^{j+1} | x_i^{<=j}) over the n_i targets of row i that are not
    ``pad_id``. With ``x = add_bos(seqs)`` this is -log p(seqs) / L; ``.mean()`` is the
    held-out NLL per token when rows have equal length. Rows go through the model
    ``batch_size`` at a time, in eval mode.
    """
    _check_causal(model)
    check_tokens(x, min_length=2)
    check_positive_int(batch_size, "batch_size")
    with evaluating(model):
        nll = torch.cat([_token_nll(model, chunk) for chunk in x.split(batch_size)])
    keep = torch.ones_like(nll, dtype=torch.bool) if pad_id is None else x[:, 1:] != pad_id
    return (nll * keep).sum(1) / keep.sum(1).clamp(min=1)


def _check_ar_generate(
    model: nn.Module,
    prompt: torch.Tensor,
    gen_length: int,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
) -> None:
    """Validate ``ar_generate``'s arguments, with the model's ``max_len`` when it has one."""
    _check_causal(model)
    check_tokens(prompt, "prompt", min_length=1)
    check_positive_int(gen_length, "gen_length")
    check_number(temperature, "temperature", 0)
    if top_k is not None:
        check_positive_int(top_k, "top_k")
    check_generator(generator)
    max_len = getattr(model, "max_len", None)
    if max_len is not None and prompt.shape[1] + gen_length > max_len:
        raise ValueError(
            f"prompt length {prompt.shape[1]} + gen_length {gen_length} exceeds max_len={max_len}"
        )


def ar_generate(
    model: nn.Module,
    prompt: torch.Tensor,
    *,
    gen_length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Samples:
    """Sample ``gen_length`` tokens after ``prompt`` (N, P), one at a time.

    Each step samples from softmax(logits / temperature) restricted to the ``top_k`` most
    likely tokens (all when None); temperature 0 is greedy decoding. ``prompt`` needs at
    least one token (``<bos>`` for unconditional samples). No key-value cache: each step
    reruns the whole prefix, which is cheap at toy lengths.

    Returns:
        ``Samples(x, nfe, None)``: ``x`` the ``(N, P + gen_length)`` tokens, the prompt
        unchanged; ``nfe = gen_length`` model calls.
    """
    _check_ar_generate(model, prompt, gen_length, temperature, top_k, generator)
    x = prompt
    with evaluating(model):
        for _ in range(gen_length):
            logits = model(x)[:, -1].float()
            if top_k is not None and top_k < logits.shape[-1]:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            x = torch.cat([x, gumbel_argmax(logits, temperature, generator=generator)[:, None]], dim=1)
    return Samples(x, gen_length)
