"""Image pyramids: a single-scale detector run on rescaled copies of the image.

A detector trained on objects of one size finds objects of other sizes by seeing the image at
several scales (the classic sliding-window pyramid; MTCNN, Zhang et al. 2016, arXiv:1604.02878).
Each scale costs in proportion to its area, so a pyramid costs sum_i scale_i^2 times one pass.
SNIP (Singh & Davis 2018, arXiv:1711.08189) keeps, at each scale, only the objects whose rescaled
size lies in the range the detector handles well, in training and at test time. In training
(Sec. 5) the others are not background either: the cells they cover are left out of the loss
(``snip_targets`` splits the objects; ``centernet_targets(..., ignored=...)`` marks their cells).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..core.checks import check_number, check_tensor
from .boxes import check_xyxy, nms

PNET_WINDOW = 12  # MTCNN's P-Net sees 12 x 12 windows

Detections = list[dict[str, torch.Tensor]]


def mtcnn_scales(height: int, width: int, min_size: float = 20, factor: float = 0.709) -> list[float]:
    """MTCNN's scale list, as facenet-pytorch's ``detect_face`` computes it.

    The first scale maps a face of ``min_size`` pixels onto the 12-pixel window, 12 / min_size;
    each next one is ``factor`` times smaller (0.709 ~ 1/sqrt 2 halves the area), while the
    shorter side of the rescaled image is still at least 12 pixels.
    """
    check_number(height, "height", 1)
    check_number(width, "width", 1)
    check_number(factor, "factor", 0, 1, low_open=True, high_open=True)
    check_number(min_size, "min_size")
    if min_size < PNET_WINDOW:
        raise ValueError(f"min_size must be at least the {PNET_WINDOW}-pixel window, got {min_size}")
    scale = PNET_WINDOW / min_size
    shorter = min(height, width) * scale
    scales = []
    while shorter >= PNET_WINDOW:
        scales.append(scale)
        scale *= factor
        shorter *= factor
    return scales


def _check_scales(scales: Sequence[float]) -> list[float]:
    scales = [float(check_number(s, "scale", 0, low_open=True)) for s in scales]
    if not scales:
        raise ValueError("scales must be a non-empty sequence of positive numbers, got []")
    return scales


def image_pyramid(images: torch.Tensor, scales: Sequence[float], multiple: int = 1) -> list[torch.Tensor]:
    """Images (N, C, H, W) resized (bilinear, antialiased when shrinking) by each scale.

    Sides are rounded to the nearest multiple of ``multiple`` (a network's stride), at least one
    multiple: the image at scale s has size about (s H, s W).
    """
    check_tensor(images, "images", dim=4, dtype="float")
    scales = _check_scales(scales)
    H, W = images.shape[-2:]
    out = []
    for s in scales:
        size = [max(multiple, multiple * round(s * side / multiple)) for side in (H, W)]
        out.append(F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=s < 1))
    return out


def pyramid_cost(scales: Sequence[float]) -> float:
    """The cost of a pyramid in single-scale passes: sum of scale^2 (a convolutional detector's
    multiply-adds grow with the image's area)."""
    return sum(s * s for s in _check_scales(scales))


def snip_valid(boxes: torch.Tensor, scale: float, valid_range: tuple[float, float]) -> torch.Tensor:
    """SNIP's filter: True for the boxes (n, 4, xyxy in the original image) whose size at ``scale``,
    sqrt(w h) * scale, lies in ``valid_range`` (pixels, inclusive)."""
    boxes = check_xyxy(boxes, "boxes")
    check_number(scale, "scale", 0, low_open=True)
    low, high = valid_range
    if not 0 <= low <= high:
        raise ValueError(f"valid_range must be (low, high) with 0 <= low <= high, got {valid_range}")
    size = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt() * scale
    return (size >= low) & (size <= high)


class SnipTargets(NamedTuple):
    """One training level of SNIP, per image: the valid objects' boxes (k, 4, xyxy in the level's
    pixels) and labels (k,), and the invalid objects' boxes (j, 4), which the loss ignores."""

    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    ignored: list[torch.Tensor]


def snip_targets(
    boxes: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    scale: float,
    valid_range: tuple[float, float],
) -> SnipTargets:
    """SNIP's training filter at one level of an image pyramid (Sec. 5): the objects (boxes in the
    original image) whose size at ``scale`` lies in ``valid_range`` are the level's targets, the
    others are ignored; every box is returned in the level's pixels (times ``scale``)."""
    if len(boxes) != len(labels):
        raise ValueError(f"got {len(boxes)} box tensors but {len(labels)} label tensors")
    valid = [snip_valid(b, scale, valid_range) for b in boxes]
    return SnipTargets(
        [b[v] * scale for b, v in zip(boxes, valid, strict=True)],
        [lab[v] for lab, v in zip(labels, valid, strict=True)],
        [b[~v] * scale for b, v in zip(boxes, valid, strict=True)],
    )


def detect_pyramid(
    detector: Callable[[torch.Tensor], Detections],
    images: torch.Tensor,
    scales: Sequence[float],
    iou_threshold: float = 0.5,
    valid_range: tuple[float, float] | None = None,
    multiple: int = 1,
    max_detections: int = 100,
) -> Detections:
    """Run ``detector`` (images -> detections per image, boxes in that image's pixels) on every level
    of the image pyramid, map the boxes back to the original image (divide by the level's scale),
    keep, with ``valid_range``, only those whose size at their level is in SNIP's valid range, and
    merge the levels by per-class NMS at ``iou_threshold``.
    """
    check_number(iou_threshold, "iou_threshold", 0, 1)
    levels = image_pyramid(images, scales, multiple)
    H, W = images.shape[-2:]
    per_level = []
    for level in levels:
        sy, sx = level.shape[-2] / H, level.shape[-1] / W  # the exact scale after rounding
        dets = detector(level)
        back = torch.tensor([sx, sy, sx, sy])
        mapped = []
        for d in dets:
            boxes = d["boxes"] / back
            keep = torch.ones(len(boxes), dtype=torch.bool)
            if valid_range is not None:
                keep = snip_valid(boxes, math.sqrt(sx * sy), valid_range)
            mapped.append({"boxes": boxes[keep], "scores": d["scores"][keep], "labels": d["labels"][keep]})
        per_level.append(mapped)
    out = []
    for i in range(len(images)):
        boxes = torch.cat([lv[i]["boxes"] for lv in per_level])
        scores = torch.cat([lv[i]["scores"] for lv in per_level])
        labels = torch.cat([lv[i]["labels"] for lv in per_level])
        keep = nms(boxes, scores, iou_threshold, labels=labels)[:max_detections]
        out.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return out
