"""Plots for the diffusion and flow notebooks (no algorithm here)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def plot_trajectories(
    ax: plt.Axes,
    trajectory: torch.Tensor,
    n_paths: int = 60,
    title: str | None = None,
    lim: float | None = None,
) -> plt.Axes:
    """Draw 2-D paths (``trajectory`` of shape (steps + 1, n, 2), e.g. ``Samples.trajectory``):
    start blue, end red, path grey."""
    if trajectory.dim() != 3 or trajectory.shape[-1] != 2:
        raise ValueError(f"trajectory must have shape (steps + 1, n, 2), got {tuple(trajectory.shape)}")
    tr = trajectory[:, :n_paths].detach().cpu().numpy()
    ax.plot(tr[:, :, 0], tr[:, :, 1], color="0.5", lw=0.6, alpha=0.7)
    ax.scatter(tr[0, :, 0], tr[0, :, 1], s=4, color="C0", zorder=3)
    ax.scatter(tr[-1, :, 0], tr[-1, :, 1], s=4, color="C3", zorder=3)
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax
