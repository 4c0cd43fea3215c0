"""Bounding boxes: format conversion, normalisation, area, IoU and non-maximum suppression.

Boxes are tensors whose last dimension holds 4 numbers, in one of three formats (the names of
``torchvision.ops.box_convert``):

- ``"xyxy"``: corners (x1, y1, x2, y2), what ``box_area``, the IoUs and ``nms`` take;
- ``"xywh"``: top-left corner and size (x, y, w, h), COCO's ``bbox``;
- ``"cxcywh"``: centre and size (cx, cy, w, h), what YOLO and DETR predict.

A box with x2 < x1 or y2 < y1 is degenerate and raises; a zero-width or zero-height box is
allowed and has IoU 0 with every box, itself included. IoU is written once,
``box_iou_elementwise``; ``box_iou``, ``nms``, the YOLO loss and the mAP matcher all call it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.checks import check_choice, check_number, check_tensor

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_last_dim(boxes: torch.Tensor, name: str) -> None:
    check_tensor(boxes, name)
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {boxes.dtype}")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4), got {tuple(boxes.shape)}")


def check_xyxy(boxes: torch.Tensor, name: str) -> torch.Tensor:
    """``boxes`` as a floating (N, 4) xyxy tensor, after checking it is finite and not degenerate.

    The input check of every function here that takes xyxy boxes (and of ``mean_average_precision``).
    """
    _check_last_dim(boxes, name)
    if boxes.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, 4), got shape {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        boxes = boxes.float()
    bad = ~torch.isfinite(boxes).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten()[:5].tolist()
        raise ValueError(f"{name} must be finite, got NaN or inf in {int(bad.sum())} boxes (rows {rows})")
    degenerate = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if degenerate.any():
        rows = degenerate.nonzero().flatten()[:5].tolist()
        raise ValueError(
            f"{name} must be xyxy with x1 <= x2 and y1 <= y2, got {int(degenerate.sum())} degenerate "
            f"boxes (x2 < x1 or y2 < y1), rows {rows}, first {boxes[rows[0]].tolist()}"
        )
    return boxes


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert boxes of shape (..., 4) between ``"xyxy"``, ``"xywh"`` and ``"cxcywh"``.

    Same formulas as ``torchvision.ops.box_convert``: conversions between the two size formats
    go through xyxy, so x2 = x + w, w = x2 - x1, cx = (x1 + x2) / 2, x1 = cx - w / 2. Always
    returns a new tensor, even when ``in_fmt == out_fmt``.
    """
    _check_last_dim(boxes, "boxes")
    check_choice(in_fmt, "in_fmt", BOX_FORMATS)
    check_choice(out_fmt, "out_fmt", BOX_FORMATS)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    # (a, b, c, d) is now (x1, y1, x2, y2).
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def _image_scale(image_size: int | float | Sequence[int | float]) -> tuple[float, float]:
    """(width, height) from a side length or an (h, w) pair."""
    if isinstance(image_size, int | float) and not isinstance(image_size, bool):
        h = w = image_size
    elif isinstance(image_size, Sequence) and len(image_size) == 2:
        h, w = image_size
    else:
        raise TypeError(f"image_size must be a side length or an (h, w) pair, got {image_size!r}")
    if not (h > 0 and w > 0):
        raise ValueError(f"image_size must be positive, got height {h} and width {w}")
    return float(w), float(h)


def normalize_boxes(boxes: torch.Tensor, image_size: int | float | Sequence[int | float]) -> torch.Tensor:
    """Pixel boxes (..., 4) to fractions of the image: x-like entries / width, y-like / height.

    ``image_size`` is the side of a square image or its (h, w). Works for all three formats,
    whose entries all alternate x-like and y-like: (x1, y1, x2, y2), (x, y, w, h), (cx, cy, w, h).
    """
    _check_last_dim(boxes, "boxes")
    w, h = _image_scale(image_size)
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    return boxes / boxes.new_tensor([w, h, w, h])


def denormalize_boxes(boxes: torch.Tensor, image_size: int | float | Sequence[int | float]) -> torch.Tensor:
    """Inverse of ``normalize_boxes``: fractions of the image (..., 4) back to pixels."""
    _check_last_dim(boxes, "boxes")
    w, h = _image_scale(image_size)
    boxes = boxes if boxes.is_floating_point() else boxes.float()
    return boxes * boxes.new_tensor([w, h, w, h])


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2:] - boxes[..., :2]).prod(-1)  # (x2 - x1)(y2 - y1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas (x2 - x1)(y2 - y1) of (N, 4) xyxy boxes, shape (N,)."""
    return _area(check_xyxy(boxes, "boxes"))


def box_iou_elementwise(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union |A n B| / |A u B| of matching xyxy boxes: (..., 4) x (..., 4) -> (...).

    The two shapes broadcast, so ``box_iou_elementwise(a[:, None], b[None])`` is the (N, M) matrix
    of ``box_iou``, and a batch of such matrices comes the same way. Same arithmetic as
    torchvision's ``box_iou`` and COCO's ``bbIou``: inter / (area1 + area2 - inter), 0 where the
    union is 0 (two zero-area boxes). The boxes are not checked: they must be xyxy with
    x1 <= x2 and y1 <= y2 (``check_xyxy``).
    """
    _check_last_dim(boxes1, "boxes1")
    _check_last_dim(boxes2, "boxes2")
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = _area(boxes1) + _area(boxes2) - inter
    # A zero union means two zero-area boxes, so inter is 0 too: divide by 1 instead of 0.
    return inter / torch.where(union > 0, union, torch.ones_like(union))


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection over union (the Jaccard index) of xyxy boxes: every box with every box.

    (N, 4) x (M, 4) -> (N, M), vectorised. Disjoint or merely touching boxes have IoU 0, and so
    does any pair involving a zero-area box (no NaN).
    """
    boxes1, boxes2 = check_xyxy(boxes1, "boxes1"), check_xyxy(boxes2, "boxes2")
    return box_iou_elementwise(boxes1[:, None, :], boxes2[None, :, :])


def _check_vector(x: torch.Tensor, name: str, n: int) -> None:
    check_tensor(x, name)
    if x.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match boxes, got {tuple(x.shape)}")


def _check_nms_inputs(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, labels: torch.Tensor | None
) -> torch.Tensor:
    """``boxes`` as floating (N, 4) xyxy, after checking scores (N,), real, not NaN, labels (N,)."""
    boxes = check_xyxy(boxes, "boxes")
    _check_vector(scores, "scores", len(boxes))
    if scores.dtype == torch.bool or scores.is_complex():
        raise TypeError(f"scores must hold real numbers, got dtype {scores.dtype}")
    if torch.isnan(scores).any():
        raise ValueError(f"scores must not be NaN, got {int(torch.isnan(scores).sum())} NaN values")
    check_number(iou_threshold, "iou_threshold", 0, 1)
    if labels is not None:
        _check_vector(labels, "labels", len(boxes))
    return boxes


def nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy non-maximum suppression (as in Girshick et al. 2014, R-CNN; Felzenszwalb et al. 2010).

    Visit the boxes by decreasing score (ties by index, a stable sort); keep a box unless a kept
    box overlaps it with IoU > ``iou_threshold``. Returns the kept indices (int64) sorted by
    decreasing score, the result of ``torchvision.ops.nms``. With ``labels``, boxes of different
    classes never suppress each other, as ``torchvision.ops.batched_nms`` (done with an exact
    same-class mask rather than its coordinate offsets).

    The IoU matrix is computed once; the greedy pass loops over the kept boxes only, each step
    dropping everything the new box suppresses. Memory is O(N^2).
    """
    boxes = _check_nms_inputs(boxes, scores, iou_threshold, labels)
    n = len(boxes)
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]
    suppresses = box_iou_elementwise(ranked[:, None, :], ranked[None, :, :]) > iou_threshold
    if labels is not None:
        sorted_labels = labels[order]
        suppresses &= sorted_labels[:, None] == sorted_labels[None, :]
    kept = []
    remaining = torch.arange(n, device=boxes.device)  # positions in score order, not yet suppressed
    while len(remaining) > 0:
        best, rest = remaining[0], remaining[1:]
        kept.append(best)
        remaining = rest[~suppresses[best, rest]]
    return order[torch.stack(kept)]
