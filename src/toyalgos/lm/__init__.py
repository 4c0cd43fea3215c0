"""Language models at toy scale, from one autoregressive Transformer to DeepSeek's parts.

- ``tokenizer``: the character tokenizer and its special tokens; ``markov``: a corpus with a known
  entropy (``MarkovSource``) and its Bayes-optimal predictor (``MarkovOracle``); ``facts``: the
  reversal-curse facts.
- ``autoregressive``: next-token loss, exact likelihood and sampler; ``checks`` the token-batch
  check and ``sampling`` the Gumbel-max draw they share.
- ``diffusion``: diffusion language models (masked diffusion / LLaDA, SEDD's score entropy,
  block diffusion).
- ``deepseek``: DeepSeek-V3's parts (mixture of experts, multi-head latent attention,
  multi-token prediction, FP8 training).
- ``scaling``: DeepSeek LLM's scaling laws (FLOPs per token, IsoFLOP curves, power-law fits) on
  the standard library's source.
- ``rl``: reinforcement learning with verifiable rewards (GRPO).
- ``claims``: the notebooks' claims, each measured against a stated bound.

The network is ``toyalgos.nn.Transformer`` (``causal=True`` or ``False`` in its config), with
new parts passed in where a topic needs them.
"""

from . import claims, deepseek, diffusion, rl, scaling
from .autoregressive import ar_generate, ar_loss, ar_nll
from .checks import check_tokens
from .deepseek import (
    MLA,
    DomainMixture,
    FP8Linear,
    MoE,
    MTPModule,
    coupled_rope_scores,
    draft_acceptance,
    fp8_matmul,
    kv_cache_elements,
    max_violation,
    mla_forward_cached,
    moe_ar_loss,
    moe_feed_forward,
    mtp_loss,
    quantize_fp8,
    speculative_generate,
)
from .diffusion import (
    AbsorbingGraph,
    AbsorbingScore,
    BlockMasks,
    DiscreteNoise,
    GeometricNoise,
    Graph,
    LogLinearNoise,
    MaskedBatch,
    NELBOEstimate,
    NLLBound,
    SubsParameterization,
    UniformGraph,
    UniformScore,
    bd3_generate,
    bd3_loss,
    bd3_nelbo,
    block_diffusion_masks,
    forward_mask,
    geometric_noise,
    loglinear_noise,
    masked_token_loss,
    mdlm_loss,
    mdm_generate,
    mdm_infill,
    mdm_loss,
    mdm_nll_bound,
    mdm_sft_loss,
    num_transfer_tokens,
    score_entropy_loss,
    sedd_nll_bound,
    sedd_sample,
    subs_logits,
    unmasking_steps,
)
from .facts import candidate_facts, fact_sequences, reversal_pairs
from .markov import MarkovOracle, MarkovSource
from .rl import (
    GRPOHistory,
    grpo_advantages,
    grpo_loss,
    grpo_train,
    kl_k3,
    rule_reward,
)
from .sampling import gumbel_argmax
from .scaling import (
    FlopsPerToken,
    IsoFlopSweep,
    PowerLaw,
    fit_power_law,
    flops_per_token,
    isoflop_sweep,
    multistep_lr,
    parabola_vertex,
    stdlib_corpus,
)
from .tokenizer import CharTokenizer, add_bos

__all__ = [
    "AbsorbingGraph",
    "AbsorbingScore",
    "BlockMasks",
    "CharTokenizer",
    "DiscreteNoise",
    "DomainMixture",
    "FP8Linear",
    "FlopsPerToken",
    "GRPOHistory",
    "GeometricNoise",
    "Graph",
    "IsoFlopSweep",
    "LogLinearNoise",
    "MLA",
    "MTPModule",
    "MarkovOracle",
    "MarkovSource",
    "MaskedBatch",
    "MoE",
    "NELBOEstimate",
    "NLLBound",
    "PowerLaw",
    "SubsParameterization",
    "UniformGraph",
    "UniformScore",
    "add_bos",
    "ar_generate",
    "ar_loss",
    "ar_nll",
    "bd3_generate",
    "bd3_loss",
    "bd3_nelbo",
    "block_diffusion_masks",
    "candidate_facts",
    "check_tokens",
    "claims",
    "coupled_rope_scores",
    "deepseek",
    "diffusion",
    "draft_acceptance",
    "fact_sequences",
    "fit_power_law",
    "flops_per_token",
    "forward_mask",
    "fp8_matmul",
    "geometric_noise",
    "grpo_advantages",
    "grpo_loss",
    "grpo_train",
    "gumbel_argmax",
    "isoflop_sweep",
    "kl_k3",
    "kv_cache_elements",
    "loglinear_noise",
    "masked_token_loss",
    "max_violation",
    "mdlm_loss",
    "mdm_generate",
    "mdm_infill",
    "mdm_loss",
    "mdm_nll_bound",
    "mdm_sft_loss",
    "mla_forward_cached",
    "moe_ar_loss",
    "moe_feed_forward",
    "mtp_loss",
    "multistep_lr",
    "num_transfer_tokens",
    "parabola_vertex",
    "quantize_fp8",
    "reversal_pairs",
    "rl",
    "rule_reward",
    "scaling",
    "score_entropy_loss",
    "sedd_nll_bound",
    "sedd_sample",
    "speculative_generate",
    "stdlib_corpus",
    "subs_logits",
    "unmasking_steps",
]
