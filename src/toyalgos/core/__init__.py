"""Cross-cutting helpers: seeding, devices, the training loop, plotting and ``show_source``."""

from .plot import image_grid, plot_losses, scatter2d, set_style, smooth, subplots
from .seed import get_device, seed_everything
from .source import SourceCode, show_source
from .train import lr_factor, make_optimizer, train

__all__ = [
    "SourceCode",
    "get_device",
    "image_grid",
    "lr_factor",
    "make_optimizer",
    "plot_losses",
    "scatter2d",
    "seed_everything",
    "set_style",
    "show_source",
    "smooth",
    "subplots",
    "train",
]
