"""The detection claims pass what they should and fail each known-bad case: random boxes, a
detector without duplicates, a detector that finds every object, a grid fine enough to keep
every object."""

import pytest
import torch

from toyalgos.detection import CLASSES, kept_objects, make_shapes, recall_at_iou
from toyalgos.detection.claims import (
    ap50_at_least,
    coco_ap_at_least,
    crowding_costs_recall,
    grid_drops_crowded_objects,
    lost_objects_found_less,
    nms_raises_ap,
)

S, C, SIZE = 8, len(CLASSES), 64


def _g(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def sets():
    sparse = make_shapes(120, n_objects=(5, 5), size_range=(12.0, 16.0), generator=_g(0))
    crowded = make_shapes(120, n_objects=(5, 5), size_range=(12.0, 16.0), cluster=12.0, generator=_g(0))
    return {"default": make_shapes(100, generator=_g(1)), "sparse": sparse, "crowded": crowded}


def _perfect(data, keep=None):
    """The ground truth as detections (score 0.9), optionally only the objects where ``keep``."""
    keep = keep or [torch.ones(len(b), dtype=torch.bool) for b in data.boxes]
    return [
        {"boxes": b[k], "labels": lab[k], "scores": torch.full((int(k.sum()),), 0.9)}
        for b, lab, k in zip(data.boxes, data.labels, keep, strict=True)
    ]


def _random(data, seed=2, per_image=5):
    g = _g(seed)
    dets = []
    for _ in data.boxes:
        xy = torch.rand(per_image, 2, generator=g) * 48
        wh = 8 + torch.rand(per_image, 2, generator=g) * 20
        dets.append(
            {
                "boxes": torch.cat([xy, (xy + wh).clamp(max=SIZE)], 1),
                "labels": torch.randint(C, (per_image,), generator=g),
                "scores": torch.rand(per_image, generator=g),
            }
        )
    return dets


def _with_duplicates(data, seed=3):
    """Every true box found twice: exactly, with a random score, and shifted by 2 px, scored just
    below it (so duplicates rank among other objects' hits, as a detector's do)."""
    g, dets = _g(seed), []
    for d in _perfect(data):
        score = 0.5 + 0.5 * torch.rand(len(d["scores"]), generator=g)
        dets.append(
            {
                "boxes": torch.cat([d["boxes"], d["boxes"] + 2.0]),
                "labels": torch.cat([d["labels"], d["labels"]]),
                "scores": torch.cat([score, score - 0.01]),
            }
        )
    return dets


def test_ap_claims_pass_the_ground_truth_and_fail_random_boxes(sets):
    data = sets["default"]
    assert ap50_at_least(_perfect(data), data.targets()).value == pytest.approx(1.0)
    assert coco_ap_at_least(_perfect(data), data.targets()).holds


def test_ap50_at_least_fails_for_random_boxes(sets):
    data = sets["default"]
    claim = ap50_at_least(_random(data), data.targets())
    assert not claim.holds and claim.value < 0.1


def test_coco_ap_at_least_fails_for_random_and_for_loose_boxes(sets):
    data = sets["default"]
    assert not coco_ap_at_least(_random(data), data.targets()).holds
    # Boxes 3 px too large on every side still pass at IoU 0.5 on many objects, but not COCO's range.
    loose = [{**d, "boxes": d["boxes"] + torch.tensor([-3.0, -3.0, 3.0, 3.0])} for d in _perfect(data)]
    assert not coco_ap_at_least(loose, data.targets()).holds


def test_nms_raises_ap_holds_when_nms_removes_duplicates(sets):
    from toyalgos.detection import nms

    data = sets["default"]
    raw = _with_duplicates(data)
    kept = []
    for d in raw:
        keep = nms(d["boxes"], d["scores"], 0.5, labels=d["labels"])
        kept.append({k: v[keep] for k, v in d.items()})
    assert nms_raises_ap(kept, raw, data.targets()).holds


def test_nms_raises_ap_fails_for_a_detector_without_duplicates(sets):
    data = sets["default"]
    claim = nms_raises_ap(_perfect(data), _perfect(data), data.targets())
    assert not claim.holds and claim.value == 0.0


def test_crowding_costs_recall_fails_for_a_detector_that_finds_every_object(sets):
    sparse, crowded = sets["sparse"], sets["crowded"]
    args = (_perfect(crowded), crowded.targets(), _perfect(sparse), sparse.targets())
    claim = crowding_costs_recall(*args)
    assert not claim.holds and claim.value == pytest.approx(1.0)
    # A detector that finds every crowded object in only half of the images passes.
    half = [d if i % 2 else {k: v[:0] for k, v in d.items()} for i, d in enumerate(_perfect(crowded))]
    assert crowding_costs_recall(half, crowded.targets(), _perfect(sparse), sparse.targets()).holds


def test_recall_at_iou_counts_one_to_one_matches(sets):
    data = sets["default"]
    assert recall_at_iou(_perfect(data), data.targets()) == pytest.approx(1.0)
    # A box found twice is still one object; a box elsewhere finds nothing.
    assert recall_at_iou(_with_duplicates(data), data.targets()) == pytest.approx(1.0)
    wrong = [{**d, "labels": (d["labels"] + 1) % C, "boxes": d["boxes"] + 100.0} for d in _perfect(data)]
    assert recall_at_iou(wrong, data.targets()) == 0.0  # elsewhere and of another class


def test_grid_drops_crowded_objects_holds_for_the_8x8_grid(sets):
    crowded = (sets["crowded"].boxes, sets["crowded"].labels)
    sparse = (sets["sparse"].boxes, sets["sparse"].labels)
    assert grid_drops_crowded_objects(crowded, sparse, S, C, SIZE).holds


def test_grid_drops_crowded_objects_fails_for_a_grid_of_one_pixel_cells(sets):
    crowded = (sets["crowded"].boxes, sets["crowded"].labels)
    sparse = (sets["sparse"].boxes, sets["sparse"].labels)
    claim = grid_drops_crowded_objects(crowded, sparse, 64, C, SIZE)
    assert not claim.holds and abs(claim.value) < 0.02


def test_lost_objects_found_less_fails_when_every_object_is_found(sets):
    data = sets["crowded"]
    owns = torch.cat(kept_objects(data.boxes, data.labels, S, C, SIZE))
    assert not owns.all() and owns.any()
    claim = lost_objects_found_less(torch.ones_like(owns), owns)
    assert not claim.holds and claim.value == pytest.approx(1.0)
    # Finding only the objects that own their cell: ratio 0.
    assert lost_objects_found_less(owns, owns).holds
