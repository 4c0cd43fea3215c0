"""Building blocks that several families share."""

from .mlp import TimeMLP, sinusoidal_embedding

__all__ = ["TimeMLP", "sinusoidal_embedding"]
