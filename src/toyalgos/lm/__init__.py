"""Language models at toy scale: an autoregressive Transformer and a masked diffusion one (LLaDA).

``tokenizer`` holds the character tokenizer and its special tokens; ``markov`` a corpus with a
known entropy (``MarkovSource``) and its Bayes-optimal predictor (``MarkovOracle``); ``facts``
the reversal-curse facts. The network is ``toyalgos.nn.Transformer`` (``causal=True`` or
``False`` in its config). ``autoregressive`` and ``diffusion.masked`` hold the objectives,
likelihoods and samplers; ``checks`` the token-batch check and ``sampling`` the Gumbel-max
draw they share; ``claims`` the notebooks' claims, each measured against a stated bound.
"""

from . import claims, diffusion
from .autoregressive import ar_generate, ar_loss, ar_nll
from .checks import check_tokens
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
    "diffusion",
    "fact_sequences",
    "forward_mask",
    "gumbel_argmax",
    "masked_token_loss",
    "mdm_generate",
    "mdm_infill",
    "mdm_loss",
    "mdm_nll_bound",
    "mdm_sft_loss",
    "num_transfer_tokens",
    "reversal_pairs",
    "unmasking_steps",
]
