"""Detection metrics: COCO mAP and mAR (``COCOeval``'s bbox protocol) and PASCAL VOC AP@0.5.

Inputs are in the format of torchmetrics' ``MeanAveragePrecision``: ``preds`` is a list with one
dict per image, holding ``boxes`` (float (n, 4), xyxy pixels), ``scores`` (n,) and integer
``labels`` (n,); ``targets`` is a list of dicts with ``boxes`` and ``labels``. Detections are
matched to ground truth as ``pycocotools.cocoeval.COCOeval`` does, without crowd boxes, so
``map``, ``map_50``, ``map_75``, ``map_small``, ``map_medium``, ``map_large``, ``mar_1``, ``mar_10``,
``mar_100``, ``mar_small``, ``mar_medium`` and ``mar_large`` are COCOeval's ``stats[0]`` to
``stats[11]`` (a box's area is w h, as ``loadRes`` gives detections). Everything is computed in
float64 on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.checks import check_positive_int, check_tensor
from .boxes import box_iou_elementwise, check_xyxy

# The exact floats of COCOeval's Params.setDetParams (np.linspace), so that comparisons of IoUs and
# recalls with the thresholds agree with pycocotools to the last bit.
COCO_IOU_THRESHOLDS = torch.from_numpy(np.linspace(0.5, 0.95, 10))
COCO_RECALL_THRESHOLDS = torch.from_numpy(np.linspace(0.0, 1.0, 101))
# COCOeval's areaRng for "small", "medium" and "large" (box area in pixels^2; 1e5^2 stands for no limit).
COCO_AREA_RANGES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e5**2)}
_EPS = float(np.spacing(1))  # COCOeval's guard in precision = tp / (tp + fp + eps)
_CHUNK = 256  # images matched at once (memory: chunk x detections x ground truths)


# --- input checks --------------------------------------------------------------------------------


def _vector(x: Any, name: str, n: int, integer: bool) -> torch.Tensor:
    check_tensor(x, name)
    if x.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the {n} boxes, got {tuple(x.shape)}")
    if integer and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name} must hold integer class ids, got dtype {x.dtype}")
    if not integer and (x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.detach().cpu()
    if integer:
        return x.long()
    x = x.double()
    if torch.isnan(x).any():
        raise ValueError(f"{name} must not be NaN, got {int(torch.isnan(x).sum())} NaN values")
    return x


def _entry(entry: Any, where: str, with_scores: bool) -> tuple[torch.Tensor, ...]:
    """(boxes, labels[, scores]) of one image, as float64 / int64 CPU tensors."""
    keys = ("boxes", "scores", "labels") if with_scores else ("boxes", "labels")
    if not isinstance(entry, Mapping):
        raise TypeError(f"{where} must be a dict with keys {keys}, got {type(entry).__name__}")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f"{where} must have keys {keys}, missing {missing}")
    boxes = entry["boxes"]
    if isinstance(boxes, torch.Tensor) and boxes.dim() != 2:
        raise ValueError(
            f"{where}['boxes'] must have shape (n, 4), got {tuple(boxes.shape)} "
            "(use torch.zeros((0, 4)) for an image without boxes)"
        )
    boxes = check_xyxy(boxes, f"{where}['boxes']").detach().to("cpu", torch.float64)
    labels = _vector(entry["labels"], f"{where}['labels']", len(boxes), integer=True)
    if not with_scores:
        return boxes, labels
    return boxes, labels, _vector(entry["scores"], f"{where}['scores']", len(boxes), integer=False)


def _check_inputs(
    preds: Any, targets: Any, iou_thresholds: Iterable[float] | torch.Tensor | None
) -> tuple[list[tuple[torch.Tensor, ...]], list[tuple[torch.Tensor, ...]], torch.Tensor]:
    """Detections (boxes, labels, scores) and ground truth (boxes, labels) per image, as float64 /
    int64 CPU tensors, and the IoU thresholds, after checking every entry."""
    _check_lists(preds, targets)
    dets = [_entry(p, f"preds[{i}]", with_scores=True) for i, p in enumerate(preds)]
    gts = [_entry(t, f"targets[{i}]", with_scores=False) for i, t in enumerate(targets)]
    return dets, gts, _thresholds(iou_thresholds)


def _check_lists(preds: Any, targets: Any) -> None:
    for name, x in (("preds", preds), ("targets", targets)):
        if not isinstance(x, Sequence) or isinstance(x, str):
            raise TypeError(f"{name} must be a list with one dict per image, got {type(x).__name__}")
    if len(preds) != len(targets):
        raise ValueError(
            f"preds and targets must have one entry per image each, got {len(preds)} and {len(targets)}"
        )


def _thresholds(iou_thresholds: Iterable[float] | torch.Tensor | None) -> torch.Tensor:
    if iou_thresholds is None:
        return COCO_IOU_THRESHOLDS
    t = torch.as_tensor(
        iou_thresholds if isinstance(iou_thresholds, torch.Tensor) else list(iou_thresholds),
        dtype=torch.float64,
    )
    if t.dim() != 1 or len(t) == 0:
        raise ValueError(f"iou_thresholds must be a non-empty 1-D sequence, got shape {tuple(t.shape)}")
    if not ((t >= 0) & (t <= 1)).all():
        raise ValueError(f"iou_thresholds must be in [0, 1], got {t.tolist()}")
    return t


def _area_ranges(area_ranges: Mapping[str, tuple[float, float]] | None) -> dict[str, tuple[float, float]]:
    if area_ranges is None:
        return dict(COCO_AREA_RANGES)
    if not isinstance(area_ranges, Mapping):
        raise TypeError(f"area_ranges must be a dict name -> (low, high), got {type(area_ranges).__name__}")
    out = {}
    for name, bounds in area_ranges.items():
        low, high = (float(b) for b in bounds)
        if not 0 <= low <= high:
            raise ValueError(f"area_ranges[{name!r}] must be (low, high) with 0 <= low <= high, got {bounds}")
        out[str(name)] = (low, high)
    return out


def _class_ids(class_ids: Iterable[int]) -> torch.Tensor:
    ids = class_ids.tolist() if isinstance(class_ids, torch.Tensor) else list(class_ids)
    bad = [c for c in ids if isinstance(c, bool) or not isinstance(c, int | np.integer)]
    if bad:
        raise TypeError(f"class_ids must be integers, got {bad[:5]}")
    return torch.tensor(ids, dtype=torch.long).unique()


# --- matching --------------------------------------------------------------------------------------


def _rank_within_class(labels: torch.Tensor) -> torch.Tensor:
    """0-based position of each entry among the entries with the same label, in the given order."""
    n = len(labels)
    sorted_labels, perm = torch.sort(labels, stable=True)
    positions = torch.arange(n)
    new_class = torch.ones(n, dtype=torch.bool)
    new_class[1:] = sorted_labels[1:] != sorted_labels[:-1]
    class_start = torch.cummax(torch.where(new_class, positions, 0), dim=0).values
    rank = torch.empty_like(perm)
    rank[perm] = positions - class_start
    return rank


def _cat(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    return torch.cat([t.to(dtype) for t in tensors]) if tensors else torch.zeros(0, dtype=dtype)


def _pad(tensors: list[torch.Tensor], fill: float) -> torch.Tensor:
    """Stack tensors of shape (n_i, ...) into (len, max n_i, ...), padding with ``fill``."""
    width = max(len(t) for t in tensors)
    out = tensors[0].new_full((len(tensors), width, *tensors[0].shape[1:]), fill)
    for i, t in enumerate(tensors):
        out[i, : len(t)] = t
    return out


def _coco_matches(iou: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """COCOeval.evaluateImg's greedy matching: (I, D, G) IoUs -> (I, T, D) matched flags.

    ``iou`` holds the detections of each image in decreasing score and is -1 for pairs that may
    not match (different classes, padding). Each detection takes, among the ground-truth boxes no
    earlier detection took, the one with the highest IoU >= t (COCO compares with min(t, 1 - 1e-10)
    and lets a later box win a tie). The loop runs over detection ranks: the d-th detection of
    every image, every threshold and every ground-truth box are handled at once.
    """
    n_img, _, n_gt = iou.shape
    return _coco_matches_ignoring(iou, thresholds, torch.zeros(n_img, n_gt, dtype=torch.bool))[0]


def _coco_matches_ignoring(
    iou: torch.Tensor, thresholds: torch.Tensor, gt_ignore: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_coco_matches`` with ignored ground truth (I, G) (outside an area range): (I, T, D) matched
    flags and (I, T, D) flags "matched an ignored box".

    As COCOeval sorts ignored boxes last and stops at the first one once it holds a match, a
    detection takes an ignored box only when no box that counts is left for it.
    """
    n_img, n_det, n_gt = iou.shape
    matched = torch.zeros(n_img, len(thresholds), n_det, dtype=torch.bool)
    to_ignored = matched.clone()
    if n_gt == 0:
        return matched, to_ignored
    thr = thresholds.clamp(max=1 - 1e-10)[None, :, None]
    taken = torch.zeros(n_img, len(thresholds), n_gt, dtype=torch.bool)
    ignore = gt_ignore[:, None, :]  # (I, 1, G)
    for d in range(n_det):
        row = iou[:, None, d, :]  # (I, 1, G)
        allowed = ~taken & (row >= thr)  # (I, T, G)
        counted = (allowed & ~ignore).any(-1, keepdim=True)  # a box that counts is available
        allowed &= ~ignore | ~counted
        best = n_gt - 1 - torch.where(allowed, row, -1.0).flip(-1).argmax(-1)  # last maximum
        hit = allowed.any(-1)
        taken |= F.one_hot(best, n_gt).bool() & hit[..., None]
        matched[:, :, d] = hit
        to_ignored[:, :, d] = hit & ~counted[..., 0]
    return matched, to_ignored


def _voc_true_positives(iou: torch.Tensor) -> torch.Tensor:
    """PASCAL VOC devkit matching (VOCevaldet.m) at IoU 0.5: (I, D, G) IoUs -> (I, D) TP flags.

    A detection is assigned to the ground-truth box of its class it overlaps most (the first on
    ties), whether or not that box is taken; it is a TP if that IoU is >= 0.5 and no
    higher-scored detection was assigned the box first, else a FP (a duplicate). Unlike COCO,
    a duplicate does not fall back to its second-best box.
    """
    n_img, n_det, n_gt = iou.shape
    if n_gt == 0:
        return torch.zeros(n_img, n_det, dtype=torch.bool)
    best = iou.argmax(-1)
    ok = iou.gather(-1, best[..., None]).squeeze(-1) >= 0.5
    claims = F.one_hot(best, n_gt).bool() & ok[..., None]  # (I, D, G)
    claim_number = claims.cumsum(1).gather(-1, best[..., None]).squeeze(-1)
    return ok & (claim_number == 1)


def _chunk_iou(dets: list[tuple[torch.Tensor, torch.Tensor]], gts: list[tuple[torch.Tensor, torch.Tensor]]):
    """(I, D, G) IoUs of a few images' detections and ground truth, -1 across classes and padding."""
    det_boxes, det_labels = _pad([b for b, _ in dets], 0.0), _pad([lab for _, lab in dets], 0)
    gt_boxes, gt_labels = _pad([b for b, _ in gts], 0.0), _pad([lab for _, lab in gts], 0)
    det_valid = _pad([torch.ones(len(b), dtype=torch.bool) for b, _ in dets], False)
    gt_valid = _pad([torch.ones(len(b), dtype=torch.bool) for b, _ in gts], False)
    comparable = det_labels[:, :, None] == gt_labels[:, None, :]
    comparable &= det_valid[:, :, None] & gt_valid[:, None, :]
    return torch.where(comparable, box_iou_elementwise(det_boxes[:, :, None], gt_boxes[:, None, :]), -1.0)


def _area(boxes: torch.Tensor) -> torch.Tensor:
    """w h of xyxy boxes (n, 4): the area COCOeval compares with an area range."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _outside(boxes: torch.Tensor, area_range: tuple[float, float]) -> torch.Tensor:
    """COCOeval's test: box area < range[0] or > range[1]."""
    area = _area(boxes)
    return (area < area_range[0]) | (area > area_range[1])


def _match_areas(
    kept: list[tuple[torch.Tensor, torch.Tensor]],
    gts: list[tuple[torch.Tensor, torch.Tensor]],
    thresholds: torch.Tensor,
    area_ranges: list[tuple[float, float]],
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """COCOeval.evaluateImg for each area range: ground truth outside it is ignored, and so is a
    detection that matched an ignored box or, unmatched, lies outside the range itself.

    Returns per range (T, n) TP flags and (T, n) ignore flags over the detections, in ``_match``'s
    order. The ranges are matched in one pass, stacked along the image axis.
    """
    n_ranges = len(area_ranges)
    low = torch.tensor([r[0] for r in area_ranges], dtype=torch.float64).view(-1, 1, 1)
    high = torch.tensor([r[1] for r in area_ranges], dtype=torch.float64).view(-1, 1, 1)
    tps: list[list[torch.Tensor]] = [[] for _ in area_ranges]
    ignores: list[list[torch.Tensor]] = [[] for _ in area_ranges]
    for start in range(0, len(gts), _CHUNK):
        dets_c, gts_c = kept[start : start + _CHUNK], gts[start : start + _CHUNK]
        det_area, gt_area = _pad([_area(b) for b, _ in dets_c], 0.0), _pad([_area(b) for b, _ in gts_c], 0.0)
        det_outside = ((det_area < low) | (det_area > high)).flatten(0, 1)  # (R I, D)
        gt_ignore = ((gt_area < low) | (gt_area > high)).flatten(0, 1)  # (R I, G)
        iou = _chunk_iou(dets_c, gts_c).repeat(n_ranges, 1, 1)  # (R I, D, G)
        matched, to_ignored = _coco_matches_ignoring(iou, thresholds, gt_ignore)
        ignore = to_ignored | (~matched & det_outside[:, None, :])
        valid = _pad([torch.ones(len(b), dtype=torch.bool) for b, _ in dets_c], False)  # (I, D)
        tp = matched & ~ignore
        for r, (tp_r, ig_r) in enumerate(zip(tp.chunk(n_ranges), ignore.chunk(n_ranges), strict=True)):
            # (I, T, D) -> (T, I, D) -> the valid detections, image by image: (T, n_chunk)
            tps[r].append(tp_r.transpose(0, 1)[:, valid])
            ignores[r].append(ig_r.transpose(0, 1)[:, valid])
    empty = torch.zeros(len(thresholds), 0, dtype=torch.bool)
    return [
        (torch.cat(tp, 1) if tp else empty, torch.cat(ig, 1) if ig else empty)
        for tp, ig in zip(tps, ignores, strict=True)
    ]


def _match_chunk(
    dets: list[tuple[torch.Tensor, torch.Tensor]],
    gts: list[tuple[torch.Tensor, torch.Tensor]],
    thresholds: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """COCO (T, D_i) and VOC (D_i,) flags for a few images; dets (boxes, labels) in score order."""
    iou = _chunk_iou(dets, gts)
    coco, voc = _coco_matches(iou, thresholds), _voc_true_positives(iou)
    n = [len(b) for b, _ in dets]
    return [coco[i, :, : n[i]] for i in range(len(n))], [voc[i, : n[i]] for i in range(len(n))]


def _match(
    dets: list[tuple[torch.Tensor, ...]],
    gts: list[tuple[torch.Tensor, ...]],
    classes: torch.Tensor,
    thresholds: torch.Tensor,
    max_detections: int,
) -> tuple[torch.Tensor, ...]:
    """Per image, the detections of the evaluated classes by decreasing score (stable), at most
    ``max_detections`` per class, matched to the ground truth.

    Returns, concatenated over images in image order: scores (n,), labels (n,), rank within the
    image and class (n,), COCO matches (T, n) and VOC true positives (n,); then, per image, the
    kept detections (boxes, labels) and the ground truth of the evaluated classes.
    """
    kept, scores, labels, ranks = [], [], [], []
    for boxes, lab, score in dets:
        order = torch.sort(score, descending=True, stable=True).indices
        order = order[torch.isin(lab[order], classes)]
        rank = _rank_within_class(lab[order])
        order, rank = order[rank < max_detections], rank[rank < max_detections]
        kept.append((boxes[order], lab[order]))
        scores.append(score[order])
        labels.append(lab[order])
        ranks.append(rank)
    gts = [(boxes[torch.isin(lab, classes)], lab[torch.isin(lab, classes)]) for boxes, lab in gts]
    coco, voc = [], []
    for start in range(0, len(gts), _CHUNK):
        chunk_coco, chunk_voc = _match_chunk(
            kept[start : start + _CHUNK], gts[start : start + _CHUNK], thresholds
        )
        coco += chunk_coco
        voc += chunk_voc
    coco_tp = torch.cat(coco, dim=1) if coco else torch.zeros(len(thresholds), 0, dtype=torch.bool)
    return (
        _cat(scores, torch.float64),
        _cat(labels, torch.long),
        _cat(ranks, torch.long),
        coco_tp,
        _cat(voc, torch.bool),
        kept,
        gts,
    )


# --- precision / recall ----------------------------------------------------------------------------


def _coco_precision_recall(
    tp: torch.Tensor, scores: torch.Tensor, n_gt: int, ignore: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """COCOeval.accumulate for one class: TP flags (T, n) and scores (n,), in decreasing score ->
    precision (T, R), the score at each recall threshold (T, R) and the final recall (T,).

    Precision at the 101 recall thresholds: the right-max envelope of the precision, read at the
    first detection whose recall reaches the threshold (``searchsorted``, side left), 0 past the
    final recall; the score is that detection's (0 past the final recall, as COCOeval). Detections
    flagged in ``ignore`` (T, n) count neither as true nor as false positives.
    """
    n_thr, n_det = tp.shape
    if n_det == 0:
        zeros = torch.zeros(n_thr, len(COCO_RECALL_THRESHOLDS), dtype=torch.float64)
        return zeros, zeros.clone(), torch.zeros(n_thr, dtype=torch.float64)
    tp_sum = tp.cumsum(1, dtype=torch.float64)
    fp_sum = (~tp if ignore is None else ~tp & ~ignore).cumsum(1, dtype=torch.float64)
    recall = tp_sum / n_gt
    precision = tp_sum / (tp_sum + fp_sum + _EPS)
    envelope = precision.flip(1).cummax(1).values.flip(1)
    # One 1-D searchsorted per threshold: the batched (T, n) call is much slower on small inputs.
    idx = torch.stack([torch.searchsorted(r, COCO_RECALL_THRESHOLDS, side="left") for r in recall])
    reached = idx < n_det
    at_threshold = envelope.gather(1, idx.clamp(max=n_det - 1))
    score = scores.double()[idx.clamp(max=n_det - 1)]
    return torch.where(reached, at_threshold, 0.0), torch.where(reached, score, 0.0), recall[:, -1]


def _voc_ap(tp: torch.Tensor, n_gt: int) -> torch.Tensor:
    """All-point interpolated AP of PASCAL VOC 2010+ (VOCdevkit VOCap.m) from TP flags in score order.

    AP = sum_k (r_k - r_{k-1}) max_{j >= k} p_j: the exact area under the precision envelope.
    """
    tp_sum = tp.cumsum(0, dtype=torch.float64)
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    recall = torch.cat((zero, tp_sum / n_gt, one))
    precision = torch.cat((zero, tp_sum / torch.arange(1, len(tp) + 1), zero))
    envelope = precision.flip(0).cummax(0).values.flip(0)
    return ((recall[1:] - recall[:-1]) * envelope[1:]).sum()


def _mean_valid(x: torch.Tensor) -> torch.Tensor:
    """COCOeval.summarize: the mean of the entries > -1 (classes with ground truth), -1 if none."""
    valid = x > -1
    n = int(valid.sum())
    return torch.where(valid, x, 0.0).sum() / n if n else torch.tensor(-1.0, dtype=torch.float64)


def _accumulate(
    scores: torch.Tensor,
    labels: torch.Tensor,
    ranks: torch.Tensor,
    coco_tp: torch.Tensor,
    voc_tp: torch.Tensor,
    gt_labels: torch.Tensor,
    classes: torch.Tensor,
    max_dets: list[int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """COCO precision and scores (T, R, K) with the most detections, recall (T, K, M) and VOC AP
    (K,); -1 for classes without ground truth (COCOeval.accumulate's layout without the area axis)."""
    n_thr, n_cls = len(coco_tp), len(classes)
    precision = torch.full((n_thr, len(COCO_RECALL_THRESHOLDS), n_cls), -1.0, dtype=torch.float64)
    score_at = precision.clone()
    recall = torch.full((n_thr, n_cls, len(max_dets)), -1.0, dtype=torch.float64)
    voc_ap = torch.full((n_cls,), -1.0, dtype=torch.float64)
    for k, c in enumerate(classes):
        n_gt = int((gt_labels == c).sum())
        if n_gt == 0:
            continue
        # All images' detections of class c in image order, then a stable sort by score (as COCOeval).
        for m, max_det in enumerate(max_dets):
            top = (labels == c) & (ranks < max_det)
            order = torch.sort(scores[top], descending=True, stable=True).indices
            prec, sc, recall[:, k, m] = _coco_precision_recall(
                coco_tp[:, top][:, order], scores[top][order], n_gt
            )
        # The last max_det is max_detections: top holds every kept detection of class c.
        precision[:, :, k], score_at[:, :, k] = prec, sc
        voc_ap[k] = _voc_ap(voc_tp[top][order], n_gt)
    return precision, score_at, recall, voc_ap


def _accumulate_area(
    scores: torch.Tensor,
    labels: torch.Tensor,
    tp: torch.Tensor,
    ignore: torch.Tensor,
    gt_labels: torch.Tensor,
    classes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """COCO precision (T, R, K) and recall (T, K) of one area range with every kept detection;
    ``gt_labels`` are the labels of the ground truth inside the range; -1 for classes without any."""
    n_thr, n_cls = len(tp), len(classes)
    precision = torch.full((n_thr, len(COCO_RECALL_THRESHOLDS), n_cls), -1.0, dtype=torch.float64)
    recall = torch.full((n_thr, n_cls), -1.0, dtype=torch.float64)
    for k, c in enumerate(classes):
        n_gt = int((gt_labels == c).sum())
        if n_gt == 0:
            continue
        mine = labels == c
        order = torch.sort(scores[mine], descending=True, stable=True).indices
        precision[:, :, k], _, recall[:, k] = _coco_precision_recall(
            tp[:, mine][:, order], scores[mine][order], n_gt, ignore[:, mine][:, order]
        )
    return precision, recall


def _summarize(
    precision: torch.Tensor,
    recall: torch.Tensor,
    voc_ap: torch.Tensor,
    thresholds: torch.Tensor,
    max_dets: list[int],
) -> dict[str, torch.Tensor]:
    """COCOeval.summarize's averages (over thresholds, recall points and classes with ground truth)."""
    result = {"map": _mean_valid(precision)}
    for key, t in (("map_50", 0.5), ("map_75", 0.75)):
        at = (thresholds == t).nonzero().flatten()  # exact float equality, as COCOeval
        result[key] = _mean_valid(precision[at]) if len(at) else torch.tensor(-1.0, dtype=torch.float64)
    result["map_per_class"] = torch.where(precision[0, 0] > -1, precision.mean((0, 1)), -1.0)
    for m, max_det in enumerate(max_dets):
        result[f"mar_{max_det}"] = _mean_valid(recall[:, :, m])
    result["ap50_voc"] = _mean_valid(voc_ap)
    result["ap50_voc_per_class"] = voc_ap
    return result


# --- the metric ------------------------------------------------------------------------------------


def mean_average_precision(
    preds: Sequence[Mapping[str, torch.Tensor]],
    targets: Sequence[Mapping[str, torch.Tensor]],
    iou_thresholds: Iterable[float] | torch.Tensor | None = None,
    max_detections: int = 100,
    class_ids: Iterable[int] | None = None,
    extended_summary: bool = False,
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, torch.Tensor]:
    """COCO mean average precision and recall (Lin et al. 2014; pycocotools' COCOeval, iouType "bbox").

    Per image and class, detections are sorted by score (stable), cut to the top
    ``max_detections`` and greedily matched to ground truth at each IoU threshold (default COCO's
    0.5:0.05:0.95). Per class, detections of all images are sorted by score; AP is the mean
    precision at recalls 0:0.01:1 read off the right-max precision envelope (COCO's 101-point
    interpolation), averaged over thresholds. Average recall ``mar_k`` is the final recall with the
    top k detections per image and class, averaged over thresholds. Everything is averaged over the
    classes with ground truth: a class with ground truth but no detections counts 0, a class without
    ground truth is skipped (its per-class entries are -1), and with no ground truth at all the
    averages are -1, as in COCOeval.

    ``ap50_voc`` is PASCAL VOC's all-point AP at IoU 0.5 (Everingham et al. 2010 / VOC2010+ devkit,
    with its own matching, see ``_voc_true_positives``; no "difficult" flags, no +1 pixel), on the
    same top-``max_detections`` detections, averaged over classes with ground truth.

    Returns float64 tensors: ``map``, ``map_50``, ``map_75`` (-1 if 0.5 / 0.75 is not among the
    thresholds), ``map_per_class``, ``mar_1``, ``mar_10``, ``mar_{max_detections}`` (keys for k in
    1, 10, max_detections with k <= max_detections), ``ap50_voc``, ``ap50_voc_per_class``, and
    ``classes`` (int64): the sorted ``class_ids``, or else every label in preds and targets, in the
    order of the per-class tensors. Boxes and labels of other classes are ignored.

    Size buckets: for each ``name: (low, high)`` of ``area_ranges`` (box areas in pixels^2,
    default ``COCO_AREA_RANGES``: small up to 32^2, medium 32^2 to 96^2, large above), ``map_name``
    and ``mar_name`` (at ``max_detections``) are COCOeval's AP and AR for that range: ground truth
    whose area (w h) lies outside [low, high] is ignored, and so is a detection matched to it or,
    unmatched, outside the range itself (``stats[3:6]`` and ``stats[9:12]``); -1 when no class has
    ground truth in the range. Toy images are small: pass ranges rescaled to them, or ``{}`` to skip.

    With ``extended_summary=True`` (torchmetrics' name) it also returns COCOeval's arrays for
    area "all" and ``max_detections``: ``precision`` (T, R, K), the interpolated precision at
    each IoU threshold, recall threshold (``COCO_RECALL_THRESHOLDS``) and class; ``scores``
    (T, R, K), the detection score at which each recall is reached (0 where it never is); and
    ``recall`` (T, K); -1 for classes without ground truth. ``precision`` against the recall
    thresholds is the precision-recall curve; ``scores`` maps a confidence threshold onto it.
    """
    check_positive_int(max_detections, "max_detections")
    dets, gts, thresholds = _check_inputs(preds, targets, iou_thresholds)
    if class_ids is None:
        classes = _cat([lab for _, lab, *_ in dets + gts], torch.long).unique()
    else:
        classes = _class_ids(class_ids)

    ranges = _area_ranges(area_ranges)
    scores, labels, ranks, coco_tp, voc_tp, kept, kept_gts = _match(
        dets, gts, classes, thresholds, max_detections
    )
    gt_labels = _cat([lab[torch.isin(lab, classes)] for _, lab in gts], torch.long)
    max_dets = sorted({min(1, max_detections), min(10, max_detections), max_detections})
    precision, score_at, recall, voc_ap = _accumulate(
        scores, labels, ranks, coco_tp, voc_tp, gt_labels, classes, max_dets
    )
    result = _summarize(precision, recall, voc_ap, thresholds, max_dets) | {"classes": classes}
    matches = _match_areas(kept, kept_gts, thresholds, list(ranges.values())) if ranges else []
    for (name, area_range), (tp, ignore) in zip(ranges.items(), matches, strict=True):
        inside = _cat([lab[~_outside(b, area_range)] for b, lab in kept_gts], torch.long)
        area_precision, area_recall = _accumulate_area(scores, labels, tp, ignore, inside, classes)
        result[f"map_{name}"] = _mean_valid(area_precision)
        result[f"mar_{name}"] = _mean_valid(area_recall)
    if extended_summary:
        result |= {"precision": precision, "scores": score_at, "recall": recall[:, :, -1]}
    return result


def recall_at_iou(
    preds: Sequence[Mapping[str, torch.Tensor]],
    targets: Sequence[Mapping[str, torch.Tensor]],
    iou_threshold: float = 0.5,
) -> float:
    """Share of all ground-truth objects matched one-to-one (as in COCO) by a detection of their
    class with IoU >= ``iou_threshold``, pooled over classes."""
    r = mean_average_precision(
        preds, targets, iou_thresholds=[iou_threshold], extended_summary=True, area_ranges={}
    )
    labels = torch.cat([t["labels"] for t in targets])
    n = torch.stack([(labels == c).sum() for c in r["classes"]]).double()
    return float((r["recall"][0].clamp(min=0) * n).sum() / n.sum())
