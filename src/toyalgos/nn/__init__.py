"""Building blocks that several families share."""

from .conv import ConvBackbone, conv_bn_act
from .mlp import TimeMLP, sinusoidal_embedding
from .transformer import (
    Block,
    FeedForward,
    SelfAttention,
    Transformer,
    TransformerConfig,
    layer_norm,
    learned_positions,
    rotary,
)

__all__ = [
    "Block",
    "ConvBackbone",
    "FeedForward",
    "SelfAttention",
    "TimeMLP",
    "Transformer",
    "TransformerConfig",
    "conv_bn_act",
    "layer_norm",
    "learned_positions",
    "rotary",
    "sinusoidal_embedding",
]
