"""Group Relative Policy Optimization (GRPO), as in DeepSeekMath and DeepSeek-R1-Zero.

Shao et al. 2024 (DeepSeekMath, arXiv 2402.03300, §4.1, Eq. 3): for each question q sample a
group of G completions o_1..o_G from the old policy, score them, and maximise

    J = E[ 1/G sum_i 1/|o_i| sum_t { min(rho A, clip(rho, 1-eps, 1+eps) A) - beta D_KL[pi_theta || pi_ref] } ]

with rho_it = pi_theta(o_it | q, o_i<t) / pi_old(o_it | q, o_i<t). There is no value network:
the advantage of every token of o_i is the group-normalised reward (§4.1.2, outcome supervision)

    A_it = (r_i - mean(r_1..r_G)) / std(r_1..r_G),

and the KL to a frozen reference policy enters the loss, not the reward, as the per-token
estimator (Eq. 4, Schulman's "k3")  pi_ref/pi_theta - log(pi_ref/pi_theta) - 1  >= 0.

Conventions follow TRL's ``GRPOTrainer``: the std has Bessel's correction, the token mask
runs up to and including the first ``<eos>``, and ``loss_type`` chooses how token losses are
averaged: ``'grpo'`` (the paper's 1/|o_i| per sequence, then the mean over sequences),
``'bnpo'`` (all tokens of the batch at once) or ``'dr_grpo'`` (the sum over the batch divided by
batch size x completion length, Liu et al. 2025). TRL's defaults differ from the paper: beta =
0 and ``loss_type='dapo'``; here beta defaults to DeepSeekMath's 0.04 and the loss to ``'grpo'``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Loss, lr_factor, make_optimizer, progress_bar
from toyalgos.core.checks import check_choice, check_generator, check_number, check_positive_int, check_tensor

from ..checks import check_tokens
from .rollout import kv_generate
from .task import RuleReward

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo")
SCALES = ("group", "batch", "none")


def _check_rewards(rewards: torch.Tensor) -> torch.Tensor:
    check_tensor(rewards, "rewards", dim=2, dtype="float")
    if rewards.shape[1] < 2:
        raise ValueError(
            f"rewards must be (n_prompts, G) with G >= 2 completions per prompt (a group of one has no "
            f"baseline), got shape {tuple(rewards.shape)}"
        )
    if torch.isnan(rewards).any():
        raise ValueError("rewards contain NaN")
    return rewards


def grpo_advantages(rewards: torch.Tensor, *, scale: str = "group") -> torch.Tensor:
    """Group-relative advantages (DeepSeekMath §4.1.2): A_i = (r_i - mean(r)) / std(r) within each group.

    ``rewards`` is ``(n_prompts, G)``; the result has the same shape, mean 0 and (Bessel) std 1
    in every group, and is 0 in a group whose rewards are all equal (no signal, no update).
    ``scale``: ``'group'`` (the paper), ``'batch'`` (one std over the whole batch) or ``'none'``
    (Dr. GRPO: centre only), TRL's ``scale_rewards``.
    """
    _check_rewards(rewards)
    check_choice(scale, "scale", SCALES)
    centred = rewards - rewards.mean(1, keepdim=True)
    if scale == "none":
        return centred
    std = rewards.std(1, keepdim=True) if scale == "group" else rewards.std().expand(len(rewards), 1)
    return torch.where(std > 0, centred / std.clamp(min=1e-12), torch.zeros_like(centred))


def reinforce_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a batch-mean baseline (Williams 1992): A_i = r_i - mean of the whole batch.

    The comparison GRPO is measured against: no group baseline, no normalisation. ``rewards``
    is ``(n_prompts, G)`` as for ``grpo_advantages``, so both see the same samples.
    """
    _check_rewards(rewards)
    return rewards - rewards.mean()


def zero_std_fraction(rewards: torch.Tensor) -> float:
    """Share of groups whose G rewards are all equal: their advantages are 0 and they teach nothing."""
    _check_rewards(rewards)
    return (rewards == rewards[:, :1]).all(1).float().mean().item()


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimator of DeepSeekMath Eq. 4 (Schulman's k3), elementwise.

    With x ~ pi_theta and ``logp = log pi_theta(x)``, ``ref_logp = log pi_ref(x)``:
    pi_ref/pi_theta - log(pi_ref/pi_theta) - 1, which is >= 0 for every x (e^u >= 1 + u) and
    whose expectation is exactly KL(pi_theta || pi_ref), since E[pi_ref/pi_theta] = 1.
    """
    if logp.shape != ref_logp.shape:
        raise ValueError(
            f"logp and ref_logp must have one shape, got {tuple(logp.shape)} and {tuple(ref_logp.shape)}"
        )
    log_ratio = ref_logp - logp
    return log_ratio.exp() - log_ratio - 1


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, epsilon: float) -> torch.Tensor:
    """PPO's clipped objective per token (DeepSeekMath Eq. 3): min(rho A, clip(rho, 1 - eps, 1 + eps) A).

    The ``min`` makes it a pessimistic bound: once rho has moved past 1 + eps for a positive
    advantage (or below 1 - eps for a negative one), the clipped term is the smaller and its
    gradient is 0, so one batch cannot push the policy far. In the other direction the
    unclipped term is the smaller and the gradient stays.
    """
    return torch.minimum(ratio * advantages, ratio.clamp(1 - epsilon, 1 + epsilon) * advantages)


def aggregate_tokens(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str = "grpo") -> torch.Tensor:
    """Average the token losses ``(B, T)`` over the completion tokens ``mask`` ``(B, T)``, as TRL does.

    ``'grpo'``: 1/|o_i| sum_t per sequence, then the mean over sequences (DeepSeekMath's 1/G sum_i
    1/|o_i| sum_t); ``'bnpo'``: sum over all tokens / number of tokens; ``'dr_grpo'``: sum over
    all tokens / (B x T), with T the longest completion allowed (no length bias).
    """
    check_choice(loss_type, "loss_type", LOSS_TYPES)
    mask = mask.to(per_token.dtype)
    if loss_type == "grpo":
        return ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    if loss_type == "bnpo":
        return (per_token * mask).sum() / mask.sum().clamp(min=1)
    return (per_token * mask).sum() / per_token.numel()


def completion_mask(completions: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1.0 for each token up to and including the first ``<eos>`` in each row of ``completions`` (B, T)."""
    check_tokens(completions, "completions")
    is_eos = completions == eos_id
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), completions.shape[1])
    return (torch.arange(completions.shape[1]) <= first[:, None]).float()


def completion_logp(model: nn.Module, x: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """log pi(x_t | x_<t) of every completion token of ``x`` ``(B, P + T)``, shape ``(B, T)``."""
    logits = model(x[:, :-1])[:, prompt_length - 1 :].float()  # (B, T, V): the logits predicting x[:, P:]
    return F.log_softmax(logits, -1).gather(-1, x[:, prompt_length:, None])[..., 0]


def grpo_loss(
    model: nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    *,
    prompt_length: int,
    epsilon: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
) -> Loss:
    """-J of DeepSeekMath Eq. 3 on one batch of sampled completions.

    Args:
        x: ``(B, P + T)`` prompts followed by their sampled completions.
        mask: ``(B, T)`` 1 on completion tokens (``completion_mask``), 0 on those after ``<eos>``.
        advantages: ``(B,)`` one advantage per completion, shared by all its tokens.
        old_logp: ``(B, T)`` log-probabilities of the completion tokens under the policy that
            sampled them.
        ref_logp: ``(B, T)`` the same under the frozen reference policy.

    Returns:
        ``Loss(total, terms)`` with terms ``kl`` (the mean k3 over completion tokens) and
        ``clip_frac`` (the share of tokens whose clipped term is active).
    """
    check_tokens(x, min_length=prompt_length + 1)
    check_number(epsilon, "epsilon", 0, low_open=True)
    check_number(beta, "beta", 0)
    logp = completion_logp(model, x, prompt_length)  # (B, T)
    ratio = (logp - old_logp).exp()
    A = advantages[:, None]
    per_token = -clipped_surrogate(ratio, A, epsilon) + beta * kl_k3(logp, ref_logp)
    total = aggregate_tokens(per_token, mask, loss_type)
    with torch.no_grad():
        tokens = mask.sum().clamp(min=1)
        kl = (kl_k3(logp, ref_logp) * mask).sum() / tokens
        clipped = ((ratio > 1 + epsilon) & (A > 0)) | ((ratio < 1 - epsilon) & (A < 0))
        clip_frac = (clipped * mask).sum() / tokens
    return Loss(total, {"kl": kl, "clip_frac": clip_frac})


class GRPOHistory(NamedTuple):
    """What ``grpo_train`` records at every step (arrays of length ``steps``) and every evaluation.

    ``reward``, ``accuracy``, ``format``: means over the step's sampled completions;
    ``length``: mean completion length in tokens (``<eos>`` included); ``kl``: mean k3 to the
    reference; ``zero_std``: share of groups with equal rewards; ``clip_frac``: share of clipped
    tokens in the last inner step; ``samples``: completions sampled so far, after each step;
    ``eval_step``, ``eval_accuracy``: greedy accuracy on the evaluation problems (before step 0
    and after every ``eval_every`` steps).
    """

    reward: np.ndarray
    accuracy: np.ndarray
    format: np.ndarray
    length: np.ndarray
    kl: np.ndarray
    zero_std: np.ndarray
    clip_frac: np.ndarray
    samples: np.ndarray
    eval_step: np.ndarray
    eval_accuracy: np.ndarray


def greedy_accuracy(
    model: nn.Module,
    prompts: torch.Tensor,
    answers: torch.Tensor,
    reward_fn: Callable[[torch.Tensor, torch.Tensor], RuleReward],
    *,
    gen_length: int,
) -> float:
    """Share of ``prompts`` whose greedy (temperature 0) completion ``reward_fn`` scores as accurate."""
    x = kv_generate(model, prompts, gen_length=gen_length, temperature=0.0).x
    return reward_fn(x[:, prompts.shape[1] :], answers).accuracy.mean().item()


def grpo_train(
    model: nn.Module,
    prompts: torch.Tensor,
    answers: torch.Tensor,
    reward_fn: Callable[[torch.Tensor, torch.Tensor], RuleReward],
    *,
    eos_id: int,
    steps: int,
    group_size: int = 8,
    prompts_per_step: int = 16,
    inner_steps: int = 2,
    gen_length: int = 10,
    epsilon: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    lr: float = 5e-4,
    lr_schedule: str = "cosine",
    grad_clip: float | None = 1.0,
    advantages: Callable[[torch.Tensor], torch.Tensor] = grpo_advantages,
    eval_prompts: torch.Tensor | None = None,
    eval_answers: torch.Tensor | None = None,
    eval_every: int = 25,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "GRPO",
) -> GRPOHistory:
    """Pure RL with GRPO (DeepSeekMath Algorithm 1, one reference model for the whole run).

    Each step draws ``prompts_per_step`` problems, samples ``group_size`` completions of each
    at temperature 1 (all in one batch), scores them with ``reward_fn(completions, answers) ->
    RuleReward``, turns the rewards ``(n, G)`` into ``advantages(rewards)`` (group-normalised by
    default; ``reinforce_advantages`` for the REINFORCE baseline), and takes ``inner_steps``
    Adam steps on ``grpo_loss`` against the log-probabilities of the policy that sampled (TRL's
    ``num_iterations``), at a learning rate that is constant or decays on a cosine to 0
    (``lr_schedule``). The reference policy is a frozen copy of ``model`` at the start.
    """
    check_tokens(prompts, "prompts")
    for name, value in [
        ("steps", steps),
        ("group_size", group_size),
        ("prompts_per_step", prompts_per_step),
        ("inner_steps", inner_steps),
        ("gen_length", gen_length),
        ("eval_every", eval_every),
    ]:
        check_positive_int(value, name)
    check_generator(generator)
    check_choice(lr_schedule, "lr_schedule", ("constant", "cosine"))
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (advantages are relative to the group), got {group_size}")
    ref = copy.deepcopy(model).requires_grad_(False)
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], "adam", lr)
    P, G, n = prompts.shape[1], group_size, prompts_per_step
    rec = {
        k: np.empty(steps) for k in ("reward", "accuracy", "format", "length", "kl", "zero_std", "clip_frac")
    }
    evals: list[tuple[int, float]] = []

    def evaluate(step: int) -> None:
        if eval_prompts is not None:
            acc = greedy_accuracy(model, eval_prompts, eval_answers, reward_fn, gen_length=gen_length)
            evals.append((step, acc))

    evaluate(0)
    for step in progress_bar(range(steps), desc=desc, enabled=progress):
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(step, steps, lr_schedule)
        idx = torch.randint(len(prompts), (n,), generator=generator).repeat_interleave(G)  # (n G,) grouped
        x = kv_generate(model, prompts[idx], gen_length=gen_length, generator=generator).x  # (n G, P + T)
        mask = completion_mask(x[:, P:], eos_id)
        scored = reward_fn(x[:, P:], answers[idx])
        rewards = scored.reward.view(n, G)
        adv = advantages(rewards).reshape(-1)
        with torch.no_grad():
            old_logp = completion_logp(model, x, P)
            ref_logp = completion_logp(ref, x, P)  # also when beta = 0: the KL is still measured
        for _ in range(inner_steps):
            out = grpo_loss(
                model,
                x,
                mask,
                adv,
                old_logp,
                ref_logp,
                prompt_length=P,
                epsilon=epsilon,
                beta=beta,
                loss_type=loss_type,
            )
            opt.zero_grad(set_to_none=True)
            out.total.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
        rec["reward"][step] = scored.reward.mean().item()
        rec["accuracy"][step] = scored.accuracy.mean().item()
        rec["format"][step] = scored.format.mean().item()
        rec["length"][step] = mask.sum(1).mean().item()
        rec["kl"][step] = out.terms["kl"].item()
        rec["zero_std"][step] = zero_std_fraction(rewards)
        rec["clip_frac"][step] = out.terms["clip_frac"].item()
        if (step + 1) % eval_every == 0 or step == steps - 1:
            evaluate(step + 1)
    samples = np.arange(1, steps + 1) * n * G
    eval_step, eval_acc = (
        (np.array(v) for v in zip(*evals, strict=True)) if evals else (np.empty(0), np.empty(0))
    )
    return GRPOHistory(**rec, samples=samples, eval_step=eval_step, eval_accuracy=eval_acc)


def samples_to_accuracy(history: GRPOHistory, level: float, *, window: int = 10) -> float:
    """Completions sampled until the accuracy, averaged over ``window`` steps, first reaches ``level``.

    ``inf`` when it never does within the run.
    """
    check_number(level, "level", 0, 1)
    check_positive_int(window, "window")
    acc = np.convolve(history.accuracy, np.ones(window) / window, mode="valid")  # mean of steps i..i+window-1
    hit = np.flatnonzero(acc >= level)
    return float(history.samples[hit[0] + window - 1]) if len(hit) else float("inf")
