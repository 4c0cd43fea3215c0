"""Reinforcement learning of a language model with verifiable rewards: GRPO (DeepSeekMath, R1-Zero).

``task`` holds the toy reasoning task (sums with one-character ``<think>``/``<answer>`` tags),
R1-Zero's rule rewards and a base model's corpus; ``grpo`` the group-relative advantages, the
k3 KL estimator, the clipped objective, its token aggregations and the training loop;
``rollout`` the key-value-cached sampler that generates the groups.
"""

from .grpo import (
    GRPOHistory,
    aggregate_tokens,
    clipped_surrogate,
    completion_logp,
    completion_mask,
    greedy_accuracy,
    grpo_advantages,
    grpo_loss,
    grpo_train,
    kl_k3,
    reinforce_advantages,
    samples_to_accuracy,
    zero_std_fraction,
)
from .rollout import kv_generate
from .task import (
    Problems,
    RuleReward,
    addition_problems,
    reasoning_tokenizer,
    rule_reward,
    split_problems,
    warmup_sequences,
)

__all__ = [
    "GRPOHistory",
    "Problems",
    "RuleReward",
    "addition_problems",
    "aggregate_tokens",
    "clipped_surrogate",
    "completion_logp",
    "completion_mask",
    "greedy_accuracy",
    "grpo_advantages",
    "grpo_loss",
    "grpo_train",
    "kl_k3",
    "kv_generate",
    "reasoning_tokenizer",
    "reinforce_advantages",
    "rule_reward",
    "samples_to_accuracy",
    "split_problems",
    "warmup_sequences",
    "zero_std_fraction",
]
