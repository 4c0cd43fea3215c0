"""Diffusion language models, one module per paper.

- ``masked``: masked diffusion (LLaDA): forward masking, the 1/t-weighted loss, its NLL bound and
  the sampler with remasking;
- ``graphs`` and ``score_entropy``: SEDD's forward processes (absorbing and uniform graphs, noise
  schedules), the denoising score entropy, its NLL bound and the Euler and Tweedie samplers;
- ``mdlm``: MDLM's loss with the log-linear schedule (LLaDA's at eps = 0);
- ``block``: block diffusion (BD3-LM): the x_t ⊕ x_0 masks, the NELBO by block size and the
  semi-autoregressive sampler with a KV cache.

Samplers carry a prefix (``mdm_generate``, ``sedd_sample``, ``bd3_generate``) so that the names
do not collide in ``toyalgos.lm``.
"""

from .block import BlockMasks, NELBOEstimate, bd3_generate, bd3_loss, bd3_nelbo, block_diffusion_masks
from .graphs import (
    AbsorbingGraph,
    DiscreteNoise,
    GeometricNoise,
    Graph,
    LogLinearNoise,
    UniformGraph,
    geometric_noise,
    loglinear_noise,
)
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
from .mdlm import SubsParameterization, mdlm_loss, subs_logits
from .score_entropy import (
    AbsorbingScore,
    NLLBound,
    UniformScore,
    score_entropy_loss,
    sedd_nll_bound,
    sedd_sample,
)

__all__ = [
    "AbsorbingGraph",
    "AbsorbingScore",
    "BlockMasks",
    "DiscreteNoise",
    "GeometricNoise",
    "Graph",
    "LogLinearNoise",
    "MaskedBatch",
    "NELBOEstimate",
    "NLLBound",
    "SubsParameterization",
    "UniformGraph",
    "UniformScore",
    "bd3_generate",
    "bd3_loss",
    "bd3_nelbo",
    "block_diffusion_masks",
    "forward_mask",
    "geometric_noise",
    "loglinear_noise",
    "masked_token_loss",
    "mdlm_loss",
    "mdm_generate",
    "mdm_infill",
    "mdm_loss",
    "mdm_nll_bound",
    "mdm_sft_loss",
    "num_transfer_tokens",
    "score_entropy_loss",
    "sedd_nll_bound",
    "sedd_sample",
    "subs_logits",
    "unmasking_steps",
]
