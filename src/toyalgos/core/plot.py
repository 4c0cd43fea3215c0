"""Plotting helpers with one consistent, small style (figures stay light in the repository)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

from .results import History

STYLE = {
    "figure.dpi": 80,
    "savefig.dpi": 80,
    "figure.figsize": (4.0, 3.0),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "scatter.edgecolors": "none",
}


def set_style() -> None:
    """Apply the project's matplotlib style (small figures, dpi 80, light grid)."""
    mpl.rcParams.update(STYLE)


def subplots(ncols: int = 1, nrows: int = 1, size: float = 2.8, **kwargs) -> tuple[plt.Figure, np.ndarray]:
    """A grid of square-ish panels, ``size`` inches each; ``axes`` is always a flat array."""
    set_style()
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows * 0.9), squeeze=False, **kwargs
    )
    fig.set_layout_engine("constrained")
    return fig, axes.ravel()


def _np(x: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def smooth(values: np.ndarray | Sequence[float], window: int) -> np.ndarray:
    """Moving average over ``window`` points (shorter at the start), for noisy loss curves."""
    v = _np(values).astype(float)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_losses(
    histories: Mapping[str, History | np.ndarray] | History | np.ndarray,
    ax: plt.Axes | None = None,
    window: int = 50,
    log: bool = True,
) -> plt.Axes:
    """Loss curves (one per entry of ``histories``), smoothed, optionally on a log scale.

    An entry is what ``train`` returns (a ``History``; its total loss is drawn) or an array.
    """
    if ax is None:
        _, (ax,) = subplots(1, size=3.6)
    if not isinstance(histories, Mapping):
        histories = {"loss": histories}
    for name, h in histories.items():
        ax.plot(smooth(h.loss if isinstance(h, History) else h, window), label=name, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if log:
        ax.set_yscale("log")
    if len(histories) > 1:
        ax.legend()
    return ax


def scatter2d(
    ax: plt.Axes,
    x: torch.Tensor | np.ndarray,
    title: str | None = None,
    lim: float | None = 3.0,
    color: str | None = None,
    s: float = 2.0,
    alpha: float = 0.5,
) -> plt.Axes:
    """A 2-D point cloud with equal axes (``lim`` sets a symmetric square window)."""
    p = _np(x)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"scatter2d needs points of shape (n, 2), got {p.shape}")
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, color=color)
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def image_grid(
    images: torch.Tensor | np.ndarray,
    ax: plt.Axes,
    ncols: int = 10,
    cmap: str = "gray_r",
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> plt.Axes:
    """Tile images of shape ``(n, h, w)`` into one panel, ``ncols`` per row."""
    imgs = _np(images)
    if imgs.ndim != 3:
        raise ValueError(f"image_grid needs images of shape (n, h, w), got {imgs.shape}")
    n, h, w = imgs.shape
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), np.nan)
    for i in range(n):  # n is small (a grid to look at), not a hot path
        r, c = divmod(i, ncols)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = imgs[i]
    ax.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax
