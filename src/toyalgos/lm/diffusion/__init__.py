"""Diffusion language models: masked diffusion (LLaDA) in ``masked``, block diffusion (BD3-LM) in ``block``.

SEDD and block diffusion belong here too, each in its own module; their samplers carry a
prefix (``mdm_generate``, ...) so that the names do not collide in ``toyalgos.lm``.
"""

from .block import BlockMasks, NELBOEstimate, bd3_generate, bd3_loss, bd3_nelbo, block_diffusion_masks
from .masked import (
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

__all__ = [
    "BlockMasks",
    "MaskedBatch",
    "NELBOEstimate",
    "bd3_generate",
    "bd3_loss",
    "bd3_nelbo",
    "block_diffusion_masks",
    "forward_mask",
    "masked_token_loss",
    "mdm_generate",
    "mdm_infill",
    "mdm_loss",
    "mdm_nll_bound",
    "mdm_sft_loss",
    "num_transfer_tokens",
    "unmasking_steps",
]
