"""Figures of the face notebook: target logits, decision margins in angle space, features, ROC, angles."""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from .losses import arcface_target, cosface_target, sphereface_psi
from .verification import AngleStats, RocCurve


def target_logits(theta: torch.Tensor, margins: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """Each loss's target logit before scaling at angles ``theta`` (radians): softmax's cos θ,
    SphereFace's ψ(θ), CosFace's cos θ − m, ArcFace's cos(θ + m) with its monotone fallback.

    ``margins`` holds ``'sphereface'`` (an int), ``'cosface'`` and ``'arcface'``.
    """
    cos = torch.cos(theta)
    return {
        "normalised softmax": cos,
        f"SphereFace m={margins['sphereface']}": sphereface_psi(cos, int(margins["sphereface"])),
        f"CosFace m={margins['cosface']}": cosface_target(cos, margins["cosface"]),
        f"ArcFace m={margins['arcface']}": arcface_target(cos, margins["arcface"]),
    }


def plot_target_logits(ax: plt.Axes, margins: Mapping[str, float]) -> plt.Axes:
    """The target logit against the angle θ to the class weight (ArcFace, arXiv 1801.07698, Fig. 4b)."""
    theta = torch.linspace(0, math.pi, 361, dtype=torch.float64)
    for name, logit in target_logits(theta, margins).items():
        ax.plot(torch.rad2deg(theta), logit, label=name, lw=1.2)
    ax.set(xlabel="angle θ to the target class weight (°)", ylabel="target logit / s", ylim=(-1.6, 1.1))
    ax.legend()
    return ax


def plot_decision_margins(axes: np.ndarray, margins: Mapping[str, float]) -> np.ndarray:
    """Two classes, in the plane of the angles (θ1, θ2) of a feature to their weights.

    A feature is classified as class 1 with the margin when class 1's target logit beats class
    2's plain logit, f1 = target(θ1) − cos θ2 > 0, and as class 2 when f2 = target(θ2) − cos θ1 > 0.
    Softmax has one boundary, θ1 = θ2; a margin splits it in two with a grey no-man's-land
    between (ArcFace, arXiv 1801.07698, Fig. 5). One panel per loss.
    """
    deg = np.linspace(0, 180, 361)
    t = torch.deg2rad(torch.as_tensor(deg))
    t1, t2 = torch.meshgrid(t, t, indexing="xy")  # rows: θ2, columns: θ1
    targets1 = target_logits(t1, margins)
    targets2 = target_logits(t2, margins)
    for ax, name in zip(axes, targets1, strict=True):
        f1 = (targets1[name] - torch.cos(t2)).numpy()
        f2 = (targets2[name] - torch.cos(t1)).numpy()
        ax.contourf(deg, deg, ((f1 <= 0) & (f2 <= 0)).astype(float), levels=[0.5, 1.5], colors=["0.8"])
        ax.contour(deg, deg, f1, levels=[0], colors="C0", linewidths=1.2)
        ax.contour(deg, deg, f2, levels=[0], colors="C3", linewidths=1.2)
        ax.set(xlabel="θ1 (°)", ylabel="θ2 (°)", title=name, aspect="equal")
    return axes


def plot_features_2d(
    ax: plt.Axes, embeddings: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None
) -> plt.Axes:
    """2-D features as directions: each on the unit circle (with a small radial jitter per class so
    that classes sharing a direction stay visible), coloured by class; each class weight's
    direction as a line of the same colour from 0."""
    colours = plt.get_cmap("tab10")
    x = F.normalize(embeddings.detach().double(), dim=1) * (1 + 0.03 * labels.double()[:, None])
    ax.scatter(x[:, 0], x[:, 1], c=[colours(int(c) % 10) for c in labels], s=3, alpha=0.5)
    if weight is not None:
        w = F.normalize(weight.detach().double(), dim=1) * 0.8
        for j, (a, b) in enumerate(w.tolist()):
            ax.plot([0, a], [0, b], color=colours(j % 10), lw=1.2)
    lim = (-1.35, 1.35)
    ax.set(xlabel="direction, x", ylabel="direction, y", aspect="equal", xlim=lim, ylim=lim)
    return ax


def plot_roc(ax: plt.Axes, curves: Mapping[str, RocCurve]) -> plt.Axes:
    """TAR against FAR (log scale), one line per model."""
    for name, c in curves.items():
        keep = c.far > 0
        ax.plot(c.far[keep], c.tar[keep], label=name, lw=1.2)
    ax.set(xscale="log", xlabel="FAR (impostor pairs accepted)", ylabel="TAR (genuine pairs accepted)")
    ax.legend()
    return ax


def plot_angle_histograms(axes: np.ndarray, stats: Mapping[str, AngleStats]) -> np.ndarray:
    """Two panels: each face's angle to its identity's centre, and each centre's to its nearest
    other centre, one histogram per model (degrees)."""
    bins = np.linspace(0, 90, 46)
    for name, s in stats.items():
        axes[0].hist(s.intra.numpy(), bins=bins, histtype="step", density=True, label=name)
        axes[1].hist(s.nearest.numpy(), bins=bins, histtype="step", density=True, label=name)
    axes[0].set(xlabel="angle to own centre (°)", ylabel="density", title="intra-class")
    axes[1].set(xlabel="angle to nearest other centre (°)", ylabel="density", title="inter-class (nearest)")
    axes[0].legend()
    return axes
