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


# --- 31_anchor_free_detection ---------------------------------------------------------------------


def recall_ratio_at_least(
    dets: Detections, dets_baseline: Detections, targets: Detections, *, bound: float = 1.3
) -> Claim:
    """Recall at IoU 0.5 of ``dets`` / that of ``dets_baseline`` on the same objects: at least ``bound``.

    A detector no better than the baseline has ratio 1.
    """
    ratio = recall_at_iou(dets, targets) / max(recall_at_iou(dets_baseline, targets), 1e-12)
    return at_least("recall@0.5 / baseline's recall@0.5", ratio, bound)


def peaks_match_nms(
    dets_peaks: Detections, dets_peaks_nms: Detections, targets: Detections, *, bound: float = 0.02
) -> Claim:
    """|AP@0.5 of max-pool peaks - AP@0.5 of the same peaks followed by NMS|: at most ``bound``.

    The 3x3 max-pool already leaves one box per object; decoding without it leaves the cells around
    each peak as duplicates, which NMS then removes and the gap is large.
    """
    gap = abs(_ap(dets_peaks, targets, [0.5]) - _ap(dets_peaks_nms, targets, [0.5]))
    return at_most("|AP@0.5 peaks only - AP@0.5 peaks + NMS|", gap, bound)


def ap50_gain_at_least(
    dets: Detections, dets_baseline: Detections, targets: Detections, *, bound: float = 0.02
) -> Claim:
    """AP@0.5 of ``dets`` minus AP@0.5 of ``dets_baseline`` on the same images: at least ``bound``."""
    gain = _ap(dets, targets, [0.5]) - _ap(dets_baseline, targets, [0.5])
    return at_least("AP@0.5 gain over the baseline", gain, bound)


# --- 32_multiscale_detection ----------------------------------------------------------------------


def _bucket(dets: Detections, targets: Detections, area_range: tuple[float, float], key: str) -> float:
    result = mean_average_precision(dets, targets, iou_thresholds=[0.5], area_ranges={"bucket": area_range})
    return float(result[f"{key}_bucket"])


def _bucket_ratio(
    dets: Detections, reference: Detections, targets: Detections, area_range: tuple[float, float], key: str
) -> float:
    """``key`` ('map' or 'mar') at IoU 0.5 in ``area_range`` of ``dets`` over that of ``reference``."""
    return _bucket(dets, targets, area_range, key) / max(_bucket(reference, targets, area_range, key), 1e-12)


def ap_small_ratio_at_least(
    dets: Detections,
    dets_baseline: Detections,
    targets: Detections,
    small: tuple[float, float],
    *,
    bound: float = 1.5,
) -> Claim:
    """AP@0.5 on small objects (box area in ``small``, pixels^2) of ``dets`` / that of
    ``dets_baseline``: at least ``bound``. A detector no better on small objects has ratio 1."""
    ratio = _bucket_ratio(dets, dets_baseline, targets, small, "map")
    return at_least("AP_small@0.5 / baseline's AP_small@0.5", ratio, bound)


def recall_share_at_least(
    dets: Detections,
    dets_reference: Detections,
    targets: Detections,
    area_range: tuple[float, float],
    *,
    bound: float = 0.75,
) -> Claim:
    """Recall at IoU 0.5 on objects whose box area lies in ``area_range``, ``dets`` / ``dets_reference``:
    at least ``bound`` (the share of the reference's recall kept). A detector that misses those
    objects keeps 0."""
    share = _bucket_ratio(dets, dets_reference, targets, area_range, "mar")
    return at_least("recall@0.5 in the size range / reference's", share, bound)


def far_size_recall_at_most(
    dets_single: Detections,
    dets_pyramid: Detections,
    targets: Detections,
    far: tuple[float, float],
    *,
    bound: float = 0.5,
) -> Claim:
    """Recall at IoU 0.5 on objects whose box area lies in ``far`` (sizes far from the training size),
    single scale / image pyramid: at most ``bound``. A single-scale detector that already finds
    every size has ratio about 1."""
    ratio = _bucket_ratio(dets_single, dets_pyramid, targets, far, "mar")
    return at_most("recall@0.5 at far sizes, single scale / pyramid", ratio, bound)
