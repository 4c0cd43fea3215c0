"""The language-model notebooks' claims, each measured from raw results and a stated bound.

Likelihoods are judged against the source's exact entropy (``MarkovSource``): a model's NLL,
or the diffusion model's bound on it, close to the entropy and to the autoregressive NLL, yet
not significantly below the entropy, which no true likelihood can be. Samples are judged by
the share the source could have emitted (``MarkovSource.is_valid``). Answers to queries about
facts are judged by exact match. An untrained model, a pseudo-likelihood, two equal samplers
and answers drawn at random each fail the claim they are meant to fail.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from toyalgos.core.claims import Claim, at_least, at_most

from .deepseek.fp8 import relative_error
from .deepseek.moe import max_violation
from .markov import MarkovSource


def _mean(x: torch.Tensor | float) -> float:
    return torch.as_tensor(x, dtype=torch.float64).mean().item()


def _relative_excess(loss: torch.Tensor | float, baseline_loss: torch.Tensor | float) -> float:
    """mean(loss) / mean(baseline_loss) - 1: how much worse (positive) or better (negative)."""
    return _mean(loss) / _mean(baseline_loss) - 1.0


def bound_close_to_ar_nll(
    mdm_bound: torch.Tensor | float, ar_nll: torch.Tensor | float, *, bound: float = 1.15
) -> Claim:
    """Diffusion NLL bound (LLaDA Eq. 6) over the autoregressive model's exact NLL: at most ``bound``.

    Both are per token on the same held-out sequences (per-sequence values, or their means).
    An untrained mask predictor's bound is about log V / NLL, near 3 on the Markov source.
    """
    ratio = _mean(mdm_bound) / _mean(ar_nll)
    return at_most("diffusion NLL bound / AR NLL", ratio, bound)


def nll_close_to_entropy(
    nll: torch.Tensor | float, entropy: float, *, bound: float = 1.25, model: str = "model"
) -> Claim:
    """Held-out NLL per token (or a bound on it) over the entropy per token: at most ``bound``.

    The entropy H(X_1:L) / L is the lowest NLL any model can reach; a uniform guess over K
    letters scores log K / (H / L).
    """
    return at_most(f"{model} NLL / entropy per token", _mean(nll) / entropy, bound)


def nll_not_below_entropy(
    nll: torch.Tensor, entropy: float, *, bound: float = -3.0, model: str = "model"
) -> Claim:
    """Nothing beats the source: the mean NLL is at least ``bound`` standard errors above the entropy.

    ``nll`` holds one value per held-out sequence, so the Monte Carlo and sampling noise is
    measured: z = (mean - H / L) / s.e. A true NLL, or an upper bound on it, has E[z] >= 0. A
    pseudo-likelihood (each token predicted from all the others, even by the Bayes-optimal
    predictor) undercuts the entropy by many standard errors and fails.
    """
    nll = torch.as_tensor(nll, dtype=torch.float64).reshape(-1)
    if len(nll) < 2:
        raise ValueError(
            f"nll needs one value per sequence (at least 2) for a standard error, got {len(nll)}"
        )
    se = nll.std() / len(nll) ** 0.5
    z = ((nll.mean() - entropy) / se.clamp(min=1e-12)).item()
    return at_least(f"{model} NLL above the entropy, in standard errors", z, bound)


def _valid_share(samples: torch.Tensor, source: MarkovSource) -> float:
    """The share of rows of ``samples`` ``(N, L)`` that the source can emit."""
    return source.is_valid(samples).double().mean().item()


def more_valid_samples(
    samples: torch.Tensor,
    baseline: torch.Tensor,
    source: MarkovSource,
    *,
    bound: float = 0.1,
    label: str = "sampler vs baseline",
) -> Claim:
    """Valid samples of one sampler minus those of a baseline, as shares: at least ``bound``.

    Both are token tensors ``(N, L)`` judged by the true source (no forbidden transition, no
    special token). Two equally good samplers score 0.
    """
    gain = _valid_share(samples, source) - _valid_share(baseline, source)
    return at_least(f"more valid samples, {label}", gain, bound)


def left_to_right_share(order: torch.Tensor, *, bound: float = 0.5) -> Claim:
    """Share of a sampler's steps that unmask the leftmost masked token: at least ``bound``.

    ``order`` ``(N, L)`` is the step at which each token was unmasked (``unmasking_steps``;
    -1 for the prompt), one token per step. A left-to-right decoder scores 1; random
    remasking of n masks picks the leftmost with probability 1/n, about (1/n summed over
    n = 1..L) / L in all, 0.26 for 12 tokens.
    """
    order = torch.as_tensor(order)
    gen = order[:, (order >= 0).all(0)]  # (N, G) the generated positions' steps
    if (gen.sort(dim=1).values != torch.arange(gen.shape[1])).any():
        raise ValueError("order must unmask one generated token per step (steps 0..G-1 in each row)")
    position = gen.argsort(dim=1)  # (N, G) the position unmasked at each step
    leftmost = position.flip(1).cummin(dim=1).values.flip(1)  # the leftmost mask left at each step
    return at_least(
        "share of steps that unmask the leftmost mask", (position == leftmost).double().mean().item(), bound
    )


def exact_answers(
    answers: torch.Tensor, truth: torch.Tensor, *, bound: float = 0.9, query: str = "queries"
) -> Claim:
    """Share of answers ``(N, L)`` equal to the truth at every position: at least ``bound``.

    Answers drawn at random among the names, or the partners of other facts, score about 1/N.
    """
    hit = (torch.as_tensor(answers) == torch.as_tensor(truth)).all(1).double().mean().item()
    return at_least(f"exact answers, {query}", hit, bound)


# --- 25_mla_mtp: multi-head latent attention and multi-token prediction --------------------


def _max_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        raise ValueError(f"the two outputs must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (a.double() - b.double()).abs().max().item()


def absorbed_matches_naive(naive: torch.Tensor, absorbed: torch.Tensor, *, bound: float = 1e-10) -> Claim:
    """MLA's absorbed path (W^UK in the query, W^UV after attention) vs the naive one: max |Δ| <= ``bound``.

    Both are outputs of the same weights on the same input, in float64 (rounding alone is then
    ~1e-16). Absorbing W^UK while RoPE sits on the content keys (``coupled_rope_scores``) is
    off by the size of the logits themselves.
    """
    return at_most("max |naive - absorbed| MLA output", _max_abs_difference(naive, absorbed), bound)


def cached_matches_recomputed(
    cached: torch.Tensor, recomputed: torch.Tensor, *, bound: float = 1e-10
) -> Claim:
    """Logits decoded token by token from the latent cache vs one full forward pass: max |Δ| <= ``bound``.

    In float64. A cache whose rotary keys sit at the wrong positions, or a decoder that drops
    the cache, fails by far more than rounding.
    """
    return at_most("max |cached - recomputed| logits", _max_abs_difference(cached, recomputed), bound)


def cache_ratio_matches(
    mha_elements: int, mla_elements: int, formula_ratio: float, *, bound: float = 1e-12
) -> Claim:
    """Measured MHA / MLA cache elements per token per layer against the formula's ratio: |Δ| <= ``bound``.

    ``mha_elements`` and ``mla_elements`` are counted from the tensors a decoder keeps (keys and
    values of every head; the latent and the shared rotary key); ``formula_ratio`` is
    2 n_h d_h / (d_c + d_rope). A decoder that caches the materialised keys and values of the
    naive path keeps n_h (2 d_h + d_rope) numbers instead and fails.
    """
    gap = abs(mha_elements / mla_elements - formula_ratio)
    return at_most("|measured - formula| KV-cache ratio MHA / MLA", gap, bound)


def drafts_accepted(accepted: torch.Tensor, *, bound: float = 0.7, label: str = "drafts") -> Claim:
    """Share of MTP drafts the main model accepts (``draft_acceptance``): at least ``bound``.

    An untrained MTP module guesses among the vocabulary and is accepted about as often as
    its guess happens to hit the main model's choice. On the greedy rollouts of a first-order
    chain, which fall into short cycles of the most-likely-successor map, acceptance is easy;
    teacher-forced on samples of the source every state is a context, a stricter test.
    """
    share = torch.as_tensor(accepted, dtype=torch.float64).mean().item()
    return at_least(f"share of MTP drafts accepted, {label}", share, bound)


# --- 23_scaling_laws ------------------------------------------------------------------------


def isoflop_minima_interior(vertices: Sequence[object], *, bound: float = 1.0) -> Claim:
    """Share of IsoFLOP curves with an interior minimum: at least ``bound`` (all of them, by default).

    ``vertices`` are ``parabola_vertex`` results, one per budget; a curve has an interior
    minimum when its parabola in ln M opens upward with the vertex inside the sampled M. A
    budget too large for the widths tried gives a loss that only falls with M, and fails.
    """
    if not vertices:
        raise ValueError("vertices is empty")
    share = sum(bool(v.interior) for v in vertices) / len(vertices)
    return at_least("share of IsoFLOP curves with an interior minimum", share, bound)


def optimum_predicted(predicted_m: float, measured_m: float, *, bound: float = 1.5) -> Claim:
    """The held-out budget's optimal M, predicted vs measured, off by a factor of at most ``bound``.

    The factor is max(p / m, m / p). Predicting the largest fitted budget's optimum (no
    scaling law) misses a budget 3 times larger by about 3^a, 1.8 at a = 0.55.
    """
    if predicted_m <= 0 or measured_m <= 0:
        raise ValueError(f"M must be positive, got {predicted_m}, {measured_m}")
    factor = max(predicted_m / measured_m, measured_m / predicted_m)
    return at_most("predicted / measured optimal M of the held-out budget (either way)", factor, bound)


def loss_predicted(predicted_loss: float, measured_loss: float, *, bound: float = 0.02) -> Claim:
    """The held-out budget's optimal loss, predicted vs measured: relative error at most ``bound``.

    Predicting the smallest budget's loss (no scaling) misses by the whole gain of the extra
    compute, about 15 % across 30 times the compute here.
    """
    error = abs(predicted_loss / measured_loss - 1)
    return at_most("relative error of the held-out budget's predicted loss", error, bound)


def exponent_within(a: float, *, low: float = 0.35, high: float = 0.75) -> Claim:
    """The exponent a of M_opt = k C^a lies inside (``low``, ``high``): margin min(a - low, high - a) > 0.

    a = 1 (every extra FLOP into the model, the data fixed) or a = 0 (every extra FLOP into
    data) fall outside. The paper fits 0.5243; Chinchilla 0.49, Kaplan et al. 0.73.
    """
    return at_least(f"exponent a = {a:.3f}: margin inside ({low}, {high})", min(a - low, high - a), 0.0)


def compute_within(flops: Sequence[float], *, bound: float = 1.5e12) -> Claim:
    """Total FLOPs spent by the runs (M times the tokens each trained on): at most ``bound``.

    1.5e12 FLOPs is about what a minute on two CPU cores trains when a step is mostly arithmetic
    (a few 1e10 FLOP/s); the narrowest models run far below that, so the clock binds first. The
    same sweep at the paper's budgets (1e17 and up) fails by five orders of magnitude.
    """
    return at_most("total training FLOPs spent", float(sum(flops)), bound)


# --- 27_fp8_training: simulated FP8 (DeepSeek-V3 §3.3) --------------------------------------
# Quantisation errors are relative Frobenius errors (``relative_error``) of dequantised tensors;
# accumulation errors compare a simulated GEMM with the exact product of the same FP8 operands;
# training is judged by the validation loss, one value per seed.


def fp8_tokens_kept(
    x: torch.Tensor, x_hat: torch.Tensor, *, bound: float = 0.03, scaling: str = "1 x 128 tiles"
) -> Claim:
    """Mean over tokens (rows) of the relative error of ``x_hat``, a dequantised ``x``: at most ``bound``.

    E4M3's three mantissa bits give about 2.6 % on a Gaussian row that has its own scale. On a
    token-imbalanced tensor one scale for many tokens flushes the small ones to zero (error 1
    for those tokens), and the mean exceeds 0.1.
    """
    error = relative_error(x, x_hat, dim=-1).mean().item()
    return at_most(f"mean per-token FP8 error, {scaling}", error, bound)


def fp8_tokens_lost(
    x: torch.Tensor, x_hat: torch.Tensor, *, bound: float = 0.10, scaling: str = "per-tensor"
) -> Claim:
    """Mean over tokens of the relative error of ``x_hat``: at least ``bound`` (coarse scaling loses tokens).

    The other side of ``fp8_tokens_kept``: a scaling that gives each token its own scale keeps
    the mean near 0.026 and fails.
    """
    error = relative_error(x, x_hat, dim=-1).mean().item()
    return at_least(f"mean per-token FP8 error, {scaling}", error, bound)


def fp8_outlier_error_ratio(
    x: torch.Tensor,
    x_tensor: torch.Tensor,
    x_tile: torch.Tensor,
    channels: torch.Tensor,
    *,
    bound: float = 1.3,
) -> Claim:
    """Per-tensor over tile-wise FP8 error on the ordinary channels of ``x``: at least ``bound``.

    ``channels`` are the outlier channels; the error is measured on all the others, which a
    scale set by an outlier pushes down FP8's grid. Up to about 1000x the exponent absorbs the
    outlier and the ratio stays near 1 (at 100x it fails the claim).
    """
    keep = torch.ones(x.shape[-1], dtype=torch.bool)
    keep[torch.as_tensor(channels)] = False
    ratio = relative_error(x[:, keep], x_tensor[:, keep]) / relative_error(x[:, keep], x_tile[:, keep])
    return at_least("FP8 error on ordinary channels, per-tensor / tile", ratio.item(), bound)


def promotion_cuts_error(
    exact: torch.Tensor, unpromoted: torch.Tensor, promoted: torch.Tensor, *, bound: float = 10.0
) -> Claim:
    """Relative error of a GEMM without promotion over that with it: at least ``bound``.

    ``exact`` is the exact product of the same FP8 operands, so only the accumulation differs.
    With an exact (FP32) accumulator both errors are rounding noise and the ratio is about 1 or
    below (more chunks, more FP32 additions).
    """
    ratio = relative_error(exact, unpromoted) / relative_error(exact, promoted)
    return at_least("accumulation error, no promotion / promotion", ratio.item(), bound)


def accumulation_error_grows(
    exact: torch.Tensor, results: dict[int, torch.Tensor], *, bound: float = 2.0
) -> Claim:
    """Smallest ratio of the errors at successive promotion intervals N_C (ascending): at least ``bound``.

    ``results`` maps N_C to the GEMM's output. A short accumulator that truncates loses about
    the same amount at every addition, so the error grows about in proportion to N_C (4x for a
    4x longer interval); an exact accumulator's error does not grow.
    """
    if len(results) < 2:
        raise ValueError(f"results needs at least two promotion intervals, got {sorted(results)}")
    errors = [relative_error(exact, results[n]).item() for n in sorted(results)]
    ratio = min(b / max(a, 1e-300) for a, b in zip(errors, errors[1:], strict=False))
    sizes = " < ".join(map(str, sorted(results)))
    return at_least(f"accumulation error growth between N_C = {sizes} (smallest ratio)", ratio, bound)


def _gaps(losses: torch.Tensor | list[float], reference: torch.Tensor | list[float]) -> torch.Tensor:
    losses = torch.as_tensor(losses, dtype=torch.float64).reshape(-1)
    reference = torch.as_tensor(reference, dtype=torch.float64).reshape(-1)
    if losses.shape != reference.shape or len(losses) == 0:
        raise ValueError(f"need one loss per seed for both runs, got {len(losses)} and {len(reference)}")
    return losses / reference - 1


def fp8_loss_matches(
    fp8_losses: torch.Tensor | list[float], fp32_losses: torch.Tensor | list[float], *, bound: float = 0.03
) -> Claim:
    """Largest relative gap |L_FP8 / L_FP32 - 1| over seeds (paired): at most ``bound``.

    DeepSeek-V3 App. B.1 reports below 0.25 % at scale. A model whose FP8 operands are cast
    without scaling (its gradients flush to zero) misses by far more and fails.
    """
    gap = _gaps(fp8_losses, fp32_losses).abs().max().item()
    return at_most("FP8 vs FP32 validation loss, largest relative gap over seeds", gap, bound)


def unscaled_fp8_loss_gap(
    unscaled_losses: torch.Tensor | list[float],
    fp32_losses: torch.Tensor | list[float],
    *,
    bound: float = 0.2,
) -> Claim:
    """Smallest relative excess L_cast / L_FP32 - 1 over seeds of FP8 without scaling: at least ``bound``.

    A plain cast to E4M3 rounds weights of size 0.02 to a coarse subnormal grid and flushes
    gradients below 0.001 to zero. Properly scaled FP8 lands within a fraction of a percent
    of FP32 and fails this claim.
    """
    gap = _gaps(unscaled_losses, fp32_losses).min().item()
    return at_least("FP8 cast without scaling vs FP32 validation loss, smallest relative excess", gap, bound)


# --- 24_deepseek_moe: load balancing of a DeepSeekMoE layer -------------------------------------


def _max_vio(load: torch.Tensor) -> float:
    return max_violation(torch.as_tensor(load))


def maxvio_reduced(
    load: torch.Tensor, baseline_load: torch.Tensor, *, bound: float = 0.1, label: str = "balanced vs none"
) -> Claim:
    """MaxVio of a model's expert load over a baseline's: at most ``bound``.

    Loads are per-expert counts ``(E,)`` or ``(layers, E)`` (``expert_load`` on held-out tokens
    gives MaxVio_global). A router no better balanced than the baseline scores about 1.
    """
    ratio = _max_vio(load) / max(_max_vio(baseline_load), 1e-12)
    return at_most(f"MaxVio_global ratio, {label}", ratio, bound)


def balances_worse(
    load: torch.Tensor, reference_load: torch.Tensor, *, bound: float = 1.5, label: str = "vs reference"
) -> Claim:
    """MaxVio of a model's expert load over a reference model's: at least ``bound``.

    For a setting that should balance worse (a too large bias step); two equally balanced
    routers score about 1.
    """
    ratio = _max_vio(load) / max(_max_vio(reference_load), 1e-12)
    return at_least(f"MaxVio_global ratio, {label}", ratio, bound)


def loss_close_to_baseline(
    loss: torch.Tensor | float,
    baseline_loss: torch.Tensor | float,
    *,
    bound: float = 0.015,
    label: str = "model",
) -> Claim:
    """Relative excess of a validation loss over a baseline's, mean / mean - 1: at most ``bound``.

    Lower is fine (a negative excess); an untrained or badly hurt model is far above.
    """
    excess = _relative_excess(loss, baseline_loss)
    return at_most(f"validation loss excess over the baseline, {label}", excess, bound)


def loss_cost_at_least(
    loss: torch.Tensor | float,
    baseline_loss: torch.Tensor | float,
    *,
    bound: float = 0.005,
    label: str = "model",
) -> Claim:
    """Relative excess of a validation loss over a baseline's, mean / mean - 1: at least ``bound``.

    For a setting that should cost quality (a strong balance loss); two equally good models
    score about 0.
    """
    excess = _relative_excess(loss, baseline_loss)
    return at_least(f"validation loss cost over the baseline, {label}", excess, bound)


# --- 26_grpo: pure RL with group-relative advantages ---------------------------------------


def rl_start_accuracy(accuracy: float, *, bound: float = 0.05) -> Claim:
    """Greedy accuracy on the held-out problems before RL: at most ``bound`` (the policy starts near 0).

    The accuracy is the rule's, which needs the answer inside the answer tags: a base model that
    adds well but writes its answers bare starts at 0. A policy that already solves the task
    (the same network after RL) fails.
    """
    return at_most("held-out greedy accuracy before RL", accuracy, bound)


def rl_final_accuracy(accuracy: float, *, bound: float = 0.9) -> Claim:
    """Greedy accuracy on the held-out problems after RL: at least ``bound``.

    The policy before RL, or a run whose rewards were ignored, fails.
    """
    return at_least("held-out greedy accuracy after RL", accuracy, bound)


def format_before_accuracy(
    format_rate: np.ndarray, accuracy: np.ndarray, *, bound: float = 0.95, level: float = 0.2
) -> Claim:
    """The best format compliance over the steps before accuracy first exceeds ``level``: at least ``bound``.

    ``format_rate`` and ``accuracy`` are per-step shares of the sampled completions. A run in
    which format and accuracy rise together fails; a run whose accuracy never exceeds
    ``level`` raises, since there is no order to judge.
    """
    format_rate, accuracy = np.asarray(format_rate, float), np.asarray(accuracy, float)
    if format_rate.shape != accuracy.shape or format_rate.ndim != 1:
        raise ValueError(
            f"format_rate and accuracy must be 1-D of one length, got {format_rate.shape}, {accuracy.shape}"
        )
    above = np.flatnonzero(accuracy > level)
    if not len(above):
        raise ValueError(f"accuracy never exceeds {level}: no order between format and accuracy to judge")
    best = format_rate[: above[0]].max() if above[0] > 0 else 0.0
    return at_least(f"format compliance before accuracy passes {level:.0%}", best, bound)


def fewer_samples_than(
    samples: float, baseline_samples: float, *, bound: float = 1.5, label: str = ""
) -> Claim:
    """Samples the baseline needs over those the method needs (to reach one accuracy): at least ``bound``.

    ``inf`` for a baseline that never reaches it counts as a win; equal counts score 1.
    """
    return at_least(
        f"samples to the same accuracy, baseline / method {label}".strip(), baseline_samples / samples, bound
    )


# ------------------------------------------------------------------- 22_block_diffusion


def nelbo_falls_with_block_size(
    per_sequence: list[torch.Tensor], labels: list[str], *, bound: float = 2.0
) -> Claim:
    """Each NELBO below the one before it by at least ``bound`` standard errors of the gap.

    ``per_sequence`` holds one ``(N,)`` tensor per block size, largest block first, all scored
    on the same N held-out sequences, so each gap is measured pairwise: z = mean(a - b) /
    s.e.(a - b), which removes the spread of the sequences' own NLLs. The claim is the smallest
    z. One model scored several times gives z near 0; a reversed order negative z.
    """
    values = [torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in per_sequence]
    if len(values) < 2 or len(values) != len(labels):
        raise ValueError("give at least two per-sequence NELBOs and one label each")
    if any(len(v) != len(values[0]) for v in values) or len(values[0]) < 2:
        raise ValueError("the NELBOs must be scored on the same sequences (equal lengths, at least 2)")
    z = []
    for a, b in zip(values[:-1], values[1:], strict=True):
        gap = a - b
        z.append((gap.mean() / (gap.std() / len(gap) ** 0.5).clamp(min=1e-12)).item())
    order = " > ".join(f"L'={label}" for label in labels)
    return at_least(f"NELBO {order}: smallest gap in standard errors", min(z), bound)


def nll_matches_ar(
    nll: torch.Tensor | float, ar_nll: torch.Tensor | float, *, bound: float = 0.02, model: str = "model"
) -> Claim:
    """|NLL / AR NLL - 1| at most ``bound``: the two agree, neither above nor below.

    Both per token on the same held-out sequences. An untrained network is far above (about
    log V / NLL); a model that undercuts the AR NLL by more than the bound fails too.
    """
    ratio = _mean(nll) / _mean(ar_nll)
    return at_most(f"|{model} NLL / AR NLL - 1|", abs(ratio - 1), bound)


def clipped_variance_ratio(clipped: torch.Tensor, full: torch.Tensor, *, bound: float = 0.7) -> Claim:
    """Variance of the loss under the clipped schedule over that under U[0, 1]: at most ``bound``.

    Each tensor is ``(R,)`` or ``(K, R)``: R losses of a batch, each with fresh t and masks, for K
    batches (the same batches for both schedules); the variance over the R draws is averaged
    over the K batches, so it measures the schedule's Monte Carlo noise, not the spread of the
    data. Two estimates under the same schedule give a ratio near 1.
    """
    clipped = torch.as_tensor(clipped, dtype=torch.float64)
    full = torch.as_tensor(full, dtype=torch.float64)
    if clipped.shape[-1] < 2 or full.shape[-1] < 2:
        raise ValueError("give at least two losses per batch for each schedule")
    ratio = (clipped.var(dim=-1).mean() / full.var(dim=-1).mean()).item()
    return at_most("variance of a batch's loss over draws of t and masks, clipped / U[0, 1]", ratio, bound)


def same_tokens(
    a: torch.Tensor, b: torch.Tensor, *, bound: float = 1.0, label: str = "cached vs recomputed"
) -> Claim:
    """Share of positions where two samplers' tokens agree: at least ``bound`` (1: identical).

    Two runs from different seeds agree on about the share of a random match.
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return at_least(f"share of identical tokens, {label}", (a == b).double().mean().item(), bound)


# ------------------------------------------------------------------ 21_score_entropy


def losses_agree(
    loss_a: torch.Tensor | float,
    loss_b: torch.Tensor | float,
    *,
    bound: float = 1e-6,
    label: str = "two losses",
) -> Claim:
    """|loss_a - loss_b| on the same draws (masks and t): at most ``bound``.

    MDLM's log-linear loss and LLaDA's at eps = 0 are the same function of the same draws; a
    predictor without MDLM's SUBS (the mask keeps some probability) or other masks differ.
    """
    gap = abs(_mean(loss_a) - _mean(loss_b))
    return at_most(f"|difference| of {label} on identical masks and t", gap, bound)


def bound_below(
    better: torch.Tensor, worse: torch.Tensor, *, bound: float = 3.0, label: str = "A below B"
) -> Claim:
    """Paired gap worse - better, per sequence, in standard errors of its mean: at least ``bound``.

    ``better`` and ``worse`` hold one value per held-out sequence (the same sequences, e.g. two
    NLL bounds), so the sequences' own spread cancels. Two equal models score 0.
    """
    better = torch.as_tensor(better, dtype=torch.float64).reshape(-1)
    worse = torch.as_tensor(worse, dtype=torch.float64).reshape(-1)
    if better.shape != worse.shape or len(better) < 2:
        raise ValueError(
            f"better and worse need one value per sequence each, got {better.shape}, {worse.shape}"
        )
    gap = worse - better
    z = (gap.mean() / (gap.std() / len(gap) ** 0.5).clamp(min=1e-12)).item()
    return at_least(f"{label}, paired gap in standard errors", z, bound)


def _allowed_share(samples: torch.Tensor, source: MarkovSource) -> float:
    """The share of adjacent pairs of ``samples`` ``(N, L)`` (token ids) that the source can emit."""
    s = samples.cpu() - source.tokenizer.offset
    symbol = (s >= 0) & (s < source.n_states)
    s = s.clamp(0, source.n_states - 1)
    ok = (source.transition[s[:, :-1], s[:, 1:]] > 0) & symbol[:, :-1] & symbol[:, 1:]
    return ok.double().mean().item()


def more_allowed_transitions(
    samples: torch.Tensor,
    baseline: torch.Tensor,
    source: MarkovSource,
    *,
    bound: float = 0.08,
    label: str = "sampler vs baseline",
) -> Claim:
    """Share of allowed adjacent pairs of one sampler minus a baseline's: at least ``bound``.

    A smoother measure than whole valid sequences when few are valid: each of the L - 1 pairs
    of every sample counts, allowed when the source has that transition. Two equally good
    samplers score 0.
    """
    gain = _allowed_share(samples, source) - _allowed_share(baseline, source)
    return at_least(f"more allowed transitions, {label}", gain, bound)
