"""Language models at toy scale: an autoregressive Transformer and a masked diffusion one (LLaDA).

``tokenizer`` holds the character tokenizer and its special tokens; ``markov`` a corpus with a
known entropy (``MarkovSource``) and its Bayes-optimal predictor (``MarkovOracle``); ``facts``
the reversal-curse facts; ``deepseek`` DeepSeek-V3's parts (multi-head latent attention,
multi-token prediction). The network is ``toyalgos.nn.Transformer`` (``causal=True`` or
``False`` in its config). ``autoregressive`` and ``diffusion.masked`` hold the objectives,
likelihoods and samplers; ``checks`` the token-batch check and ``sampling`` the Gumbel-max
draw they share; ``claims`` the notebooks' claims, each measured against a stated bound.
"""

from . import claims, deepseek, diffusion
from .autoregressive import ar_generate, ar_loss, ar_nll
from .checks import check_tokens
from .deepseek import (
    MLA,
    MTPModule,
    coupled_rope_scores,
    draft_acceptance,
    kv_cache_elements,
    mla_forward_cached,
    mtp_loss,
    speculative_generate,
)
from .diffusion import (
    MaskedBatch,
    forward_mask,
    masked_token_loss,
    mdm_generate,
    mdm_infill,
    mdm_loss,
    mdm_nll_bound,
    mdm_sft_loss,
    num_transfer_tokens,
    unmasking_steps,
)
from .facts import candidate_facts, fact_sequences, reversal_pairs
from .markov import MarkovOracle, MarkovSource
from .sampling import gumbel_argmax
from .tokenizer import CharTokenizer, add_bos

__all__ = [
    "MLA",
    "MTPModule",
    "CharTokenizer",
    "MarkovOracle",
    "MarkovSource",
    "MaskedBatch",
    "add_bos",
    "candidate_facts",
    "ar_generate",
    "ar_loss",
    "ar_nll",
    "check_tokens",
    "claims",
    "coupled_rope_scores",
    "deepseek",
    "diffusion",
    "draft_acceptance",
    "fact_sequences",
    "forward_mask",
    "gumbel_argmax",
    "kv_cache_elements",
    "masked_token_loss",
    "mdm_generate",
    "mdm_infill",
    "mdm_loss",
    "mdm_nll_bound",
    "mdm_sft_loss",
    "mla_forward_cached",
    "mtp_loss",
    "num_transfer_tokens",
    "reversal_pairs",
    "speculative_generate",
    "unmasking_steps",
]
