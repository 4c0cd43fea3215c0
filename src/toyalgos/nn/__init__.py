"""Building blocks that several families share."""

from .conv import ConvBackbone, conv_bn_act
from .mlp import TimeMLP, sinusoidal_embedding

__all__ = ["ConvBackbone", "TimeMLP", "conv_bn_act", "sinusoidal_embedding"]
