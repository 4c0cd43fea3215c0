"""The detection notebook's claims, each measured from detections and ground truth and a stated bound.

A detector's claim is judged by what a broken detector would fail: random boxes score AP
near 0; a detector without duplicate boxes gains nothing from NMS; a detector that finds every
object loses no recall to crowding, and a grid fine enough to give every object its own cell
loses no object in its targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from toyalgos.core.claims import Claim, at_least, at_most

from .metrics import mean_average_precision, recall_at_iou
from .yolo import kept_objects

Detections = Sequence[Mapping[str, torch.Tensor]]


def _ap(dets: Detections, targets: Detections, iou_thresholds: Sequence[float] | None) -> float:
    key = "map" if iou_thresholds is None else "map_50"
    return float(mean_average_precision(dets, targets, iou_thresholds=iou_thresholds)[key])


def ap50_at_least(dets: Detections, targets: Detections, *, bound: float = 0.83) -> Claim:
    """AP at IoU 0.5 (PASCAL VOC's criterion, COCO's 101-point AP): at least ``bound``."""
    return at_least("AP@0.5", _ap(dets, targets, [0.5]), bound)


def coco_ap_at_least(dets: Detections, targets: Detections, *, bound: float = 0.5) -> Claim:
    """COCO AP averaged over IoU 0.50:0.05:0.95, which rewards tight boxes: at least ``bound``."""
    return at_least("COCO AP@[.5:.95]", _ap(dets, targets, None), bound)


def nms_raises_ap(
    dets_nms: Detections, dets_raw: Detections, targets: Detections, *, bound: float = 0.05
) -> Claim:
    """AP@0.5 with NMS minus AP@0.5 of the same detections without it: at least ``bound``.

    Duplicates of a found object count as false positives; a detector without duplicates gains 0.
    """
    gain = _ap(dets_nms, targets, [0.5]) - _ap(dets_raw, targets, [0.5])
    return at_least("AP@0.5 gained by NMS", gain, bound)


def crowding_costs_recall(
    dets_crowded: Detections,
    targets_crowded: Detections,
    dets_sparse: Detections,
    targets_sparse: Detections,
    *,
    bound: float = 0.6,
) -> Claim:
    """Recall at IoU 0.5 on crowded objects / recall on the same objects spread out: at most ``bound``."""
    ratio = recall_at_iou(dets_crowded, targets_crowded) / recall_at_iou(dets_sparse, targets_sparse)
    return at_most("recall crowded / recall sparse", ratio, bound)


def _kept_share(boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], S: int, C: int, size: int):
    return float(torch.cat(kept_objects(boxes, labels, S, C, size)).float().mean())


def grid_drops_crowded_objects(
    crowded: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]],
    sparse: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]],
    S: int,
    C: int,
    image_size: int,
    *,
    bound: float = 0.12,
) -> Claim:
    """Share of objects the S x S grid keeps as targets, sparse minus crowded: at least ``bound``.

    ``crowded`` and ``sparse`` are (boxes, labels) per image. A property of the data and the grid,
    before any training: an object whose cell holds a larger one is never a target.
    """
    drop = _kept_share(*sparse, S, C, image_size) - _kept_share(*crowded, S, C, image_size)
    return at_least(
        f"objects kept as targets by the {S}x{S} grid (data and grid, no model), sparse minus crowded",
        drop,
        bound,
    )


def lost_objects_found_less(found: torch.Tensor, owns_cell: torch.Tensor, *, bound: float = 0.8) -> Claim:
    """Found rate of objects that lost their cell / that of objects owning one: at most ``bound``.

    ``found`` and ``owns_cell`` are per-object booleans (a detection of the class with IoU >= 0.5;
    the object is its cell's target).
    """
    found, owns_cell = found.bool(), owns_cell.bool()
    ratio = found[~owns_cell].float().mean() / found[owns_cell].float().mean()
    return at_most("found rate, objects without a cell / objects owning one", float(ratio), bound)
