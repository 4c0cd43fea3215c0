"""Scaling laws the DeepSeek LLM way (arXiv:2401.02954, §3): compute per token, IsoFLOP curves, power laws.

``flops`` holds the model scale M (non-embedding FLOPs/token, attention included) beside 6 N1
and 6 N2, and torch's count of a real training step; ``model`` the runs' network (the shared
Transformer with a lean attention part); ``corpus`` the standard library's source as byte
tokens with a fixed validation split, scored in bits per byte; ``isoflop`` Eq. 1's
hyper-parameters, the IsoFLOP runner with its compute count, the parabola vertex of each curve
and the power-law fits through them. The multi-step learning-rate schedule (§2.3) is an option
of the training loop, ``toyalgos.core.train(..., lr_schedule='multistep')``; ``multistep_lr`` is
its multiplier.
"""

from toyalgos.core import multistep_lr

from .corpus import (
    VOCAB_SIZE,
    TextCorpus,
    bits_per_byte,
    evenly_spaced_windows,
    random_windows,
    stdlib_corpus,
)
from .flops import FlopsPerToken, counted_flops, flops_per_token, width_for_flops
from .isoflop import (
    Hyperparameters,
    IsoFlopRun,
    IsoFlopSweep,
    PowerLaw,
    Vertex,
    fit_power_law,
    isoflop_sweep,
    optimal_hyperparameters,
    parabola_vertex,
    train_at_budget,
)
from .model import CausalAttention, scaling_model

__all__ = [
    "VOCAB_SIZE",
    "CausalAttention",
    "FlopsPerToken",
    "Hyperparameters",
    "IsoFlopRun",
    "IsoFlopSweep",
    "PowerLaw",
    "TextCorpus",
    "Vertex",
    "bits_per_byte",
    "counted_flops",
    "evenly_spaced_windows",
    "fit_power_law",
    "flops_per_token",
    "isoflop_sweep",
    "multistep_lr",
    "optimal_hyperparameters",
    "parabola_vertex",
    "random_windows",
    "scaling_model",
    "stdlib_corpus",
    "train_at_budget",
    "width_for_flops",
]
