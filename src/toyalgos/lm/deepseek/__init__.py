"""DeepSeek-V3's architecture at toy scale (DeepSeek-AI 2024, arXiv:2412.19437).

V3 is a Transformer whose parts each change one thing: attention caches one small latent per
token instead of keys and values (multi-head latent attention, MLA, §2.1.1); the feed-forward
layers are mixtures of fine-grained and shared experts balanced without an auxiliary loss
(DeepSeekMoE, §2.1.2); an extra module predicts the token after next (multi-token prediction,
MTP, §2.2); and training runs the linear layers' GEMMs in FP8 (§3.3). Each part is a module
here, passed into ``toyalgos.nn.Transformer`` as a part, wrapped around it or converted in it:

- ``mla``: ``MLA`` (naive and absorbed paths), its ``LatentCache`` and cached decoding
  (``mla_forward_cached``), the KV-cache sizes of MHA, GQA, MQA and MLA
  (``kv_cache_elements``), and why RoPE needs the decoupled key (``coupled_rope_scores``);
- ``moe``: the DeepSeekMoE layer (``MoE``: shared and fine-grained routed experts, top-K on
  bias-adjusted scores, gates from the unbiased ones), its balancing (the sequence-wise
  auxiliary loss, ``moe_ar_loss``; the loss-free bias, ``bias_update``) and load statistics
  (``expert_load``, ``max_violation``); ``domains`` a mixture of Markov sources, one domain per
  sequence, for expert specialisation;
- ``mtp``: the ``MTPModule`` with its shared embedding and head, ``mtp_loss``, and
  self-speculative greedy decoding (``speculative_generate``, ``draft_acceptance``);
- ``fp8``: simulated FP8 mixed-precision training: E4M3 / E5M2 casts, per-tensor, 1 x 128 tile
  and 128 x 128 block scaling (``quantize_fp8``), a GEMM whose short accumulator is promoted to
  FP32 every N_C products (``fp8_matmul``), and linear layers whose Fprop, Dgrad and Wgrad run
  on FP8 operands (``FP8Linear``, ``convert_to_fp8``).
"""

from .domains import DomainBatch, DomainMixture
from .fp8 import (
    DEEPSEEK_V3_FP8,
    FP8_BLOCK,
    FP8_COLUMN,
    FP8_FORMATS,
    FP8_TILE,
    FP8Format,
    FP8Linear,
    FP8LinearFunction,
    FP8Recipe,
    FP8Tensor,
    OutlierActivations,
    convert_to_fp8,
    dequantize_fp8,
    fake_quantize_fp8,
    fp8_cast,
    fp8_grid,
    fp8_matmul,
    fp8_operand,
    fp8_to_float,
    limited_precision_matmul,
    outlier_channels,
    quantize_fp8,
    relative_error,
    token_imbalanced,
    truncate_significand,
)
from .mla import (
    MLA,
    CachedForward,
    LatentCache,
    RopeScores,
    coupled_rope_scores,
    kv_cache_elements,
    mla_forward_cached,
)
from .moe import (
    Expert,
    MoE,
    Routing,
    RoutingLog,
    balance_term,
    bias_update,
    expert_affinity,
    expert_counts,
    expert_load,
    max_violation,
    moe_ar_loss,
    moe_feed_forward,
    moe_layers,
    route_tokens,
)
from .mtp import MTPModule, MTPOutput, draft_acceptance, mtp_loss, speculative_generate

__all__ = [
    "CachedForward",
    "DEEPSEEK_V3_FP8",
    "DomainBatch",
    "DomainMixture",
    "Expert",
    "FP8Format",
    "FP8Linear",
    "FP8LinearFunction",
    "FP8Recipe",
    "FP8Tensor",
    "FP8_BLOCK",
    "FP8_COLUMN",
    "FP8_FORMATS",
    "FP8_TILE",
    "LatentCache",
    "MLA",
    "MTPModule",
    "MTPOutput",
    "MoE",
    "OutlierActivations",
    "RopeScores",
    "Routing",
    "RoutingLog",
    "balance_term",
    "bias_update",
    "convert_to_fp8",
    "coupled_rope_scores",
    "dequantize_fp8",
    "draft_acceptance",
    "expert_affinity",
    "expert_counts",
    "expert_load",
    "fake_quantize_fp8",
    "fp8_cast",
    "fp8_grid",
    "fp8_matmul",
    "fp8_operand",
    "fp8_to_float",
    "kv_cache_elements",
    "limited_precision_matmul",
    "max_violation",
    "mla_forward_cached",
    "moe_ar_loss",
    "moe_feed_forward",
    "moe_layers",
    "mtp_loss",
    "outlier_channels",
    "quantize_fp8",
    "relative_error",
    "route_tokens",
    "speculative_generate",
    "token_imbalanced",
    "truncate_significand",
]
