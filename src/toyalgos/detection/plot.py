"""Drawing images, boxes and the YOLO grid (matplotlib), shared by the detection notebooks."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from .data import CLASSES

CLASS_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown")


def show_image(ax: plt.Axes, image: torch.Tensor, title: str | None = None) -> None:
    """An image (3, H, W) in [0, 1], without ticks."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must have shape (3, H, W), got {tuple(image.shape)}")
    pixels = image.permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    ax.imshow(pixels, extent=(0, image.shape[2], image.shape[1], 0), interpolation="nearest")
    ax.set(xticks=[], yticks=[])
    ax.grid(False)
    if title:
        ax.set_title(title)


def draw_boxes(
    ax: plt.Axes,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor | None = None,
    classes: Sequence[str] = CLASSES,
    linestyle: str = "-",
    linewidth: float = 1.2,
) -> None:
    """Boxes (k, 4) xyxy in pixels, coloured by class; with ``scores``, each labelled with its score."""
    for i, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist(), strict=True)):
        colour = CLASS_COLOURS[label % len(CLASS_COLOURS)]
        x1, y1, x2, y2 = box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=linewidth, ls=linestyle))
        if scores is not None:
            ax.text(x1, y1 - 1, f"{scores[i]:.2f}", color=colour, fontsize=6, va="bottom")


def class_legend(ax: plt.Axes, classes: Sequence[str] = CLASSES) -> None:
    """A legend of the class colours below ``ax``."""
    handles = [Rectangle((0, 0), 1, 1, fill=False, ec=CLASS_COLOURS[k]) for k in range(len(classes))]
    ax.legend(handles, classes, loc="upper left", bbox_to_anchor=(0, -0.02), ncol=len(classes), fontsize=7)


def draw_grid(ax: plt.Axes, S: int, image_size: int, colour: str = "white") -> None:
    """The S x S grid of cells over an image of ``image_size`` pixels."""
    for k in range(1, S):
        ax.axhline(k * image_size / S, color=colour, lw=0.5, alpha=0.7)
        ax.axvline(k * image_size / S, color=colour, lw=0.5, alpha=0.7)
