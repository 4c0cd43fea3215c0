"""Language models at toy scale: an autoregressive Transformer and a masked diffusion one (LLaDA).

``data`` holds corpora with a known entropy (``MarkovSource``) and the reversal-curse facts;
``TinyTransformer`` is the one network both models use (``causal=True`` or ``False``);
``autoregressive`` and ``masked_diffusion`` hold the objectives, likelihoods and samplers.
"""

from . import data
from .autoregressive import ar_generate, ar_loss, ar_nll
from .data import (
    CharTokenizer,
    MarkovOracle,
    MarkovSource,
    add_bos,
    fact_sequences,
    reversal_pairs,
)
from .masked_diffusion import (
    MaskedBatch,
    forward_mask,
    generate,
    infill,
    masked_token_loss,
    mdm_loss,
    mdm_nll_bound,
    mdm_sft_loss,
    num_transfer_tokens,
)
from .transformer import TinyTransformer

__all__ = [
    "CharTokenizer",
    "MarkovOracle",
    "MarkovSource",
    "MaskedBatch",
    "TinyTransformer",
    "add_bos",
    "ar_generate",
    "ar_loss",
    "ar_nll",
    "data",
    "fact_sequences",
    "forward_mask",
    "generate",
    "infill",
    "masked_token_loss",
    "mdm_loss",
    "mdm_nll_bound",
    "mdm_sft_loss",
    "num_transfer_tokens",
    "reversal_pairs",
]
