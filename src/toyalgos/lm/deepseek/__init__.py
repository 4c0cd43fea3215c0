"""DeepSeek-V3's architecture at toy scale (arXiv 2412.19437).

V3 is a Transformer whose attention is multi-head latent attention (MLA, §2.1.1: keys and
values compressed into one small latent per token, the only thing cached at inference), whose
feed-forward layers are mixtures of experts balanced without an auxiliary loss (DeepSeekMoE,
§2.1.2), trained with a multi-token prediction objective (MTP, §2.2) in FP8 mixed precision
(§3.3). Each part is a module here, passed into ``toyalgos.nn.Transformer`` as a part or wrapped
around it:

- ``mla``: ``MLA`` (naive and absorbed paths), its ``LatentCache`` and cached decoding
  (``mla_forward_cached``), the KV-cache sizes of MHA, GQA, MQA and MLA
  (``kv_cache_elements``), and why RoPE needs the decoupled key (``coupled_rope_scores``);
- ``mtp``: the ``MTPModule`` with its shared embedding and head, ``mtp_loss``, and
  self-speculative greedy decoding (``speculative_generate``, ``draft_acceptance``).
"""

from .mla import (
    MLA,
    CachedForward,
    LatentCache,
    RopeScores,
    coupled_rope_scores,
    kv_cache_elements,
    mla_forward_cached,
)
from .mtp import MTPModule, MTPOutput, draft_acceptance, mtp_loss, speculative_generate

__all__ = [
    "MLA",
    "CachedForward",
    "LatentCache",
    "MTPModule",
    "MTPOutput",
    "RopeScores",
    "coupled_rope_scores",
    "draft_acceptance",
    "kv_cache_elements",
    "mla_forward_cached",
    "mtp_loss",
    "speculative_generate",
]
