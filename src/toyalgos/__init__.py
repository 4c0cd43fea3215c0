"""toyalgos: the small library behind the tutorial notebooks.

One subpackage per family of algorithms (``diffusion``, ...), plus ``core`` (seeding,
devices, the training loop, plotting, ``show_source``) and ``nn`` (building blocks that
several families share).
"""

__version__ = "0.1.0"
