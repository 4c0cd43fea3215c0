"""Cross-cutting helpers: seeding, randomness, result types, checks, claims, modes, the training loop,
plotting and ``show_source``."""

from . import checks
from .claims import Claim, at_least, at_most, claims_hold
from .modes import evaluating
from .plot import image_grid, plot_losses, scatter2d, set_style, smooth, subplots
from .results import History, Loss, Samples
from .rng import numpy_rng
from .seed import get_device, model_device, seed_everything
from .source import SourceCode, show_source
from .train import lr_factor, make_optimizer, multistep_lr, progress_bar, train

__all__ = [
    "Claim",
    "History",
    "Loss",
    "Samples",
    "SourceCode",
    "at_least",
    "at_most",
    "checks",
    "claims_hold",
    "evaluating",
    "get_device",
    "image_grid",
    "lr_factor",
    "make_optimizer",
    "model_device",
    "multistep_lr",
    "numpy_rng",
    "plot_losses",
    "progress_bar",
    "scatter2d",
    "seed_everything",
    "set_style",
    "show_source",
    "smooth",
    "subplots",
    "train",
]
