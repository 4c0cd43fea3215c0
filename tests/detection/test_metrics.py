import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from toyalgos.detection.boxes import box_iou
from toyalgos.detection.metrics import mean_average_precision

TOL = 1e-12
COCO_KEYS = {"map": 0, "map_50": 1, "map_75": 2, "mar_1": 6, "mar_10": 7, "mar_100": 8}


# --- data sets ----------------------------------------------------------------------------------


def _grid(x, grid=64):
    """Round to multiples of 1/64 pixel: then x + w, x2 - x1 and the areas are exact in float64, so
    COCO (which works on x, y, w, h) and we (on x1, y1, x2, y2) compute bit-identical IoUs."""
    return np.round(x * grid) / grid


def _image(rng, classes, max_gt=5, n_false=1.5):
    """One image: 0..max_gt objects; detections = jittered objects (some missed, some twice, some
    with the wrong class) plus random false positives; uniform scores."""
    n = rng.integers(0, max_gt + 1)
    xy, wh = _grid(rng.uniform(0, 300, (n, 2))), _grid(rng.uniform(4, 100, (n, 2)))
    labels = rng.choice(classes, n)
    boxes, det_labels = [], []
    for j in range(n):
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            jxy = _grid(xy[j] + rng.normal(0, 0.12, 2) * wh[j])
            jwh = _grid(wh[j] * np.exp(rng.normal(0, 0.15, 2)))
            boxes.append(np.r_[jxy, jxy + jwh])
            det_labels.append(labels[j] if rng.uniform() < 0.9 else rng.choice(classes))
    for _ in range(rng.poisson(n_false)):
        jxy, jwh = _grid(rng.uniform(0, 300, 2)), _grid(rng.uniform(4, 100, 2))
        boxes.append(np.r_[jxy, jxy + jwh])
        det_labels.append(rng.choice(classes))
    boxes = np.array(boxes).reshape(-1, 4)
    pred = {
        "boxes": torch.tensor(boxes),
        "scores": torch.tensor(rng.uniform(size=len(boxes))),
        "labels": torch.tensor(np.array(det_labels, dtype=np.int64)),
    }
    target = {"boxes": torch.tensor(np.concatenate([xy, xy + wh], 1)), "labels": torch.tensor(labels)}
    return pred, target


def _crowd(pred, target, rng, label):
    """Add an object found only by a low-scored exact detection, behind 150 false positives of its
    class: with at most 100 detections per image and class, that detection is cut."""
    box = torch.tensor([[400.0, 400.0, 450.0, 460.0]])
    xy, wh = _grid(rng.uniform(0, 300, (150, 2))), _grid(rng.uniform(4, 100, (150, 2)))
    fp = torch.tensor(np.concatenate([xy, xy + wh], 1))
    pred = {
        "boxes": torch.cat([pred["boxes"], box, fp]),
        "scores": torch.cat([pred["scores"], torch.tensor([0.001]), torch.tensor(rng.uniform(0.01, 1, 150))]),
        "labels": torch.cat([pred["labels"], torch.full((151,), label)]),
    }
    target = {
        "boxes": torch.cat([target["boxes"], box]),
        "labels": torch.cat([target["labels"], torch.tensor([label])]),
    }
    return pred, target


def _random_dataset(seed, n_images=30, classes=(0, 1, 2), crowded_every=0):
    """``crowded_every``: every so many images get 151 more detections of class 0 (see ``_crowd``)."""
    rng = np.random.default_rng(seed)
    data = [_image(rng, classes) for _ in range(n_images)]
    if crowded_every:
        data = [_crowd(*d, rng, classes[0]) if i % crowded_every == 0 else d for i, d in enumerate(data)]
    return [p for p, _ in data], [t for _, t in data]


def _integer_dataset(seed, n_images=30, classes=(1, 3, 7)):
    """Small integer boxes, detections = objects with corners moved by -1, 0 or 1 pixel (IoUs of
    exactly 0.5 or 0.75, IoU ties, zero-size boxes) plus random boxes; scores in {0, 1/4, 1/2, 3/4}
    (many score ties)."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(n_images):
        n = rng.integers(0, 5)
        xy = rng.integers(0, 8, (n, 2))
        gt = np.concatenate([xy, xy + rng.integers(2, 7, (n, 2))], 1)
        labels = rng.choice(classes, n)
        twins = rng.uniform(size=n) < 0.3  # a same-class object 2 pixels to the right
        gt, labels = np.concatenate([gt, gt[twins] + [2, 0, 2, 0]]), np.concatenate([labels, labels[twins]])
        copies = rng.integers(0, 3, len(gt))
        det = np.repeat(gt, copies, axis=0) + rng.choice([-1, 0, 0, 1], (copies.sum(), 4))
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2])
        det_labels = np.where(
            rng.uniform(size=len(det)) < 0.85, np.repeat(labels, copies), rng.choice(classes)
        )
        xy = rng.integers(0, 8, (rng.integers(0, 3), 2))
        det = np.concatenate([det, np.concatenate([xy, xy + rng.integers(0, 5, xy.shape)], 1)])
        det_labels = np.concatenate([det_labels, rng.choice(classes, len(xy))])
        preds.append(
            {
                "boxes": torch.tensor(det, dtype=torch.float64),
                "scores": torch.tensor(rng.integers(0, 4, len(det)) / 4),
                "labels": torch.tensor(det_labels),
            }
        )
        targets.append({"boxes": torch.tensor(gt, dtype=torch.float64), "labels": torch.tensor(labels)})
    return preds, targets


# --- pycocotools reference ----------------------------------------------------------------------


def _cocoeval(preds, targets, classes, iou_thresholds=None, max_dets=(1, 10, 100), area_ranges=None):
    """Run pycocotools' COCOeval (bbox) on in-memory data; returns the evaluated COCOeval.

    ``area_ranges``: (small, medium, large) as [low, high] pairs replacing COCO's ``areaRng``."""
    images, annotations, results = [], [], []
    for i, (p, t) in enumerate(zip(preds, targets, strict=True)):
        images.append({"id": i + 1, "width": 1000, "height": 1000})
        for (x1, y1, x2, y2), label in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,  # COCO marks unmatched detections with id 0
                    "image_id": i + 1,
                    "category_id": label,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        for (x1, y1, x2, y2), label, score in zip(
            p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist(), strict=True
        ):
            results.append(
                {"image_id": i + 1, "category_id": label, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}
            )
    assert results, "pycocotools' loadRes needs at least one detection"
    gt = COCO()
    gt.dataset = {
        "info": {},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": int(c)} for c in classes],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        if iou_thresholds is not None:
            evaluator.params.iouThrs = np.asarray(iou_thresholds, dtype=np.float64)
        evaluator.params.maxDets = list(max_dets)
        if area_ranges is not None:
            evaluator.params.areaRng = [[0, 1e5**2], *[list(r) for r in area_ranges]]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _coco_per_class_ap(evaluator):
    """AP@[thresholds] per category from COCOeval's precision array (area 'all', last maxDets)."""
    p = evaluator.eval["precision"][:, :, :, 0, -1]
    return np.array([p[:, :, k].mean() if (p[:, :, k] > -1).all() else -1.0 for k in range(p.shape[2])])


def _assert_matches_coco(result, evaluator, mar_keys=("mar_1", "mar_10", "mar_100")):
    for key in ("map_50", "map_75", *mar_keys):
        index = COCO_KEYS.get(key, 8)
        assert result[key].item() == pytest.approx(evaluator.stats[index], abs=TOL), key
    # stats[0] itself is -1 unless maxDets[-1] == 100 (a quirk of summarize): use the array.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    assert result["map"].item() == pytest.approx(precision[precision > -1].mean(), abs=TOL)
    np.testing.assert_allclose(
        result["map_per_class"].numpy(), _coco_per_class_ap(evaluator), rtol=0, atol=TOL
    )


# --- agreement with pycocotools -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_matches_pycocotools_on_random_data(seed):
    preds, targets = _random_dataset(seed)
    assert any(len(t["labels"]) == 0 for t in targets)  # images without objects
    result = mean_average_precision(preds, targets)
    evaluator = _cocoeval(preds, targets, (0, 1, 2))
    _assert_matches_coco(result, evaluator)
    assert result["map"].item() == pytest.approx(evaluator.stats[0], abs=TOL)
    assert 0.05 < result["map"] < result["map_50"] < 0.9  # a mediocre detector, not a degenerate case
    assert result["classes"].tolist() == [0, 1, 2]


@pytest.mark.parametrize(("seed", "max_dets"), [(0, (1, 10, 100)), (1, (1, 10, 100)), (2, (1, 5, 20))])
def test_extended_summary_matches_cocoeval_arrays(seed, max_dets):
    """precision, scores and recall equal COCOeval.eval's arrays at area 'all' and the last maxDets."""
    preds, targets = _random_dataset(seed, classes=(0, 1, 2, 4))
    targets = [t | {"labels": torch.where(t["labels"] == 4, 0, t["labels"])} for t in targets]
    targets.append({"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "labels": torch.tensor([5])})
    preds.append(
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    )
    result = mean_average_precision(preds, targets, max_detections=max_dets[-1], extended_summary=True)
    evaluator = _cocoeval(preds, targets, (0, 1, 2, 4, 5), max_dets=max_dets)
    assert result["classes"].tolist() == [0, 1, 2, 4, 5]
    for key in ("precision", "scores"):
        np.testing.assert_allclose(result[key].numpy(), evaluator.eval[key][:, :, :, 0, -1], rtol=0, atol=TOL)
    np.testing.assert_allclose(
        result["recall"].numpy(), evaluator.eval["recall"][:, :, 0, -1], rtol=0, atol=TOL
    )
    assert (result["precision"][..., 3] == -1).all()  # class 4: detections only
    assert (result["precision"][..., 4] == 0).all() and (
        result["scores"][..., 4] == 0
    ).all()  # class 5: missed
    # The scores fall as recall grows (a curve parametrised by the confidence threshold).
    valid = result["scores"][..., :3]
    assert (valid[:, 1:] <= valid[:, :-1]).all() and valid.max() > 0
    assert "precision" not in mean_average_precision(preds, targets)


@pytest.mark.parametrize("seed", range(3))
def test_matches_pycocotools_with_more_than_100_detections_per_image(seed):
    preds, targets = _random_dataset(seed, crowded_every=7)
    assert max(int((p["labels"] == 0).sum()) for p in preds) > 150
    result = mean_average_precision(preds, targets)
    _assert_matches_coco(result, _cocoeval(preds, targets, (0, 1, 2)))
    # The cap per image and class matters here: without it the numbers change.
    uncapped = mean_average_precision(preds, targets, max_detections=1000)
    assert uncapped["mar_1000"] > result["mar_100"] + 0.01 and uncapped["map"] != result["map"]


@pytest.mark.parametrize("seed", range(6))
def test_matches_pycocotools_with_ties_and_integer_boxes(seed):
    preds, targets = _integer_dataset(seed)
    result = mean_average_precision(preds, targets)
    _assert_matches_coco(result, _cocoeval(preds, targets, (1, 3, 7)))
    assert result["classes"].tolist() == [1, 3, 7]


def test_integer_data_has_the_hard_cases():
    """The integer data sets contain same-class IoUs exactly on thresholds, detections with two
    objects at the same IoU (COCO gives the later one), and score ties."""
    on_threshold, iou_ties, scores = {0.5: 0, 0.75: 0}, 0, []
    for seed in range(6):
        for p, t in zip(*_integer_dataset(seed), strict=True):
            same = p["labels"][:, None] == t["labels"][None, :]
            iou = torch.where(same, box_iou(p["boxes"], t["boxes"]), -1.0)
            for threshold in on_threshold:
                on_threshold[threshold] += int((iou == threshold).sum())
            for row in iou:
                matchable = row[row >= 0.5]
                iou_ties += len(matchable) != len(matchable.unique())
            scores.append(p["scores"])
    assert on_threshold[0.5] > 20 and on_threshold[0.75] > 10 and iou_ties >= 5
    assert len(torch.cat(scores).unique()) == 4


@pytest.mark.parametrize("seed", range(3))
def test_matches_pycocotools_with_custom_thresholds_and_max_detections(seed):
    preds, targets = _random_dataset(seed, crowded_every=10)
    thresholds = [0.1, 0.5, 0.6, 1.0]  # no 0.75: map_75 is -1 in both
    result = mean_average_precision(preds, targets, iou_thresholds=thresholds, max_detections=20)
    evaluator = _cocoeval(preds, targets, (0, 1, 2), thresholds, max_dets=(1, 10, 20))
    _assert_matches_coco(result, evaluator, mar_keys=("mar_1", "mar_10", "mar_20"))
    assert result["map_75"] == -1 and "mar_100" not in result


def test_matches_pycocotools_with_a_class_without_ground_truth_or_detections():
    preds, targets = _random_dataset(7, classes=(0, 1))
    # Class 5: detections only (skipped, -1). Class 9: ground truth only (AP 0, counted).
    preds[0]["boxes"] = torch.cat([preds[0]["boxes"], torch.tensor([[1.0, 1.0, 9.0, 9.0]])])
    preds[0]["scores"] = torch.cat([preds[0]["scores"], torch.tensor([0.99])])
    preds[0]["labels"] = torch.cat([preds[0]["labels"], torch.tensor([5])])
    targets[1]["boxes"] = torch.cat([targets[1]["boxes"], torch.tensor([[5.0, 5.0, 20.0, 20.0]])])
    targets[1]["labels"] = torch.cat([targets[1]["labels"], torch.tensor([9])])
    result = mean_average_precision(preds, targets)
    evaluator = _cocoeval(preds, targets, (0, 1, 5, 9))
    _assert_matches_coco(result, evaluator)
    assert result["classes"].tolist() == [0, 1, 5, 9]
    assert result["map_per_class"][2] == -1 and result["map_per_class"][3] == 0
    assert result["ap50_voc_per_class"][2] == -1 and result["ap50_voc_per_class"][3] == 0
    # Without class 9 the mean is over two classes only.
    only = mean_average_precision(preds, targets, class_ids=[0, 1])
    assert only["map"] == pytest.approx(result["map_per_class"][:2].mean().item(), abs=TOL)
    assert only["map"] > result["map"]


def _voc_ap_reference(preds, targets, cls):
    """VOC devkit (VOCevaldet.m + VOCap.m) for one class, with Python loops over detections and boxes."""
    dets = [
        (score, i, box)
        for i, p in enumerate(preds)
        for box, score, label in zip(
            p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist(), strict=True
        )
        if label == cls
    ]
    dets.sort(key=lambda d: -d[0])  # Python's sort is stable: ties stay in image order
    objects = [
        [b for b, lab in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True) if lab == cls]
        for t in targets
    ]
    n_pos = sum(len(o) for o in objects)
    taken = [[False] * len(o) for o in objects]
    tp, fp, precision, recall = 0, 0, [], []
    for _, i, box in dets:
        best, best_j = -1.0, -1
        for j, obj in enumerate(objects[i]):
            w = min(box[2], obj[2]) - max(box[0], obj[0])
            h = min(box[3], obj[3]) - max(box[1], obj[1])
            if w > 0 and h > 0:
                inter = w * h
                iou = inter / (
                    (box[2] - box[0]) * (box[3] - box[1]) + (obj[2] - obj[0]) * (obj[3] - obj[1]) - inter
                )
                if iou > best:
                    best, best_j = iou, j
        if best >= 0.5 and not taken[i][best_j]:
            taken[i][best_j] = True
            tp += 1
        else:
            fp += 1
        precision.append(tp / (tp + fp))
        recall.append(tp / n_pos)
    mrec, mpre = [0.0, *recall, 1.0], [0.0, *precision, 0.0]
    for k in range(len(mpre) - 2, -1, -1):
        mpre[k] = max(mpre[k], mpre[k + 1])
    return sum((mrec[k + 1] - mrec[k]) * mpre[k + 1] for k in range(len(mrec) - 1) if mrec[k + 1] != mrec[k])


@pytest.mark.parametrize("seed", range(4))
def test_voc_ap_matches_devkit_port(seed):
    for preds, targets in (_random_dataset(seed), _integer_dataset(seed)):
        result = mean_average_precision(preds, targets)
        expected = [_voc_ap_reference(preds, targets, c) for c in result["classes"].tolist()]
        np.testing.assert_allclose(result["ap50_voc_per_class"].numpy(), expected, rtol=0, atol=TOL)
        assert result["ap50_voc"].item() == pytest.approx(np.mean(expected), abs=TOL)
        assert abs(result["ap50_voc"] - result["map_50"]) > 1e-9  # not COCO's AP50


# --- hand-computed cases ------------------------------------------------------------------------


def _square(x, size=10.0):
    return [x, 0.0, x + size, size]


def test_hand_example_voc_all_point_and_coco_101_point():
    # 3 objects far apart; 5 detections by decreasing score: TP, FP (on nothing), TP, FP (a duplicate
    # of the first object, IoU 0.68, which is already taken), TP. The TPs are exact boxes, so the
    # pattern is the same at every IoU threshold.
    gt = torch.tensor([_square(0), _square(100), _square(200)])
    det = torch.tensor([_square(0), _square(50), _square(100), [0.0, 0.0, 10.0, 6.8], _square(200)])
    preds = [
        {"boxes": det, "scores": torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]), "labels": torch.zeros(5, dtype=int)}
    ]
    targets = [{"boxes": gt, "labels": torch.zeros(3, dtype=int)}]
    result = mean_average_precision(preds, targets)
    # Precision / recall after each detection: 1/1 @ 1/3, 1/2 @ 1/3, 2/3 @ 2/3, 2/4 @ 2/3, 3/5 @ 1.
    # VOC: area under the right-max envelope = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 34/45.
    assert result["ap50_voc"].item() == pytest.approx(34 / 45, abs=1e-15)
    # COCO: recall thresholds 0, .01, ..., 1; 34 of them <= 1/3 read precision 1, the 33 in
    # (1/3, 2/3] read 2/3, the 34 in (2/3, 1] read 3/5.
    coco = (34 * 1 + 33 * 2 / 3 + 34 * 3 / 5) / 101
    assert result["map_50"].item() == pytest.approx(coco, abs=1e-15)
    assert result["map"].item() == pytest.approx(coco, abs=1e-15)
    assert result["mar_1"].item() == pytest.approx(1 / 3, abs=1e-15)  # one detection per image
    assert result["mar_10"].item() == 1.0 and result["mar_100"].item() == 1.0
    _assert_matches_coco(result, _cocoeval(preds, targets, (0,)))


def test_coco_and_voc_matching_differ_on_a_duplicate():
    # Two objects; the second detection overlaps object A best (IoU 0.74) and object B less (0.6).
    # COCO gives it B (the best object still free): 2 TP. VOC gives it A, already taken: a FP.
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [4.0, 0.0, 14.0, 10.0]])
    det = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.5, 0.0, 11.5, 10.0]])
    preds = [{"boxes": det, "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 1])}]
    targets = [{"boxes": gt, "labels": torch.tensor([1, 1])}]
    result = mean_average_precision(preds, targets, iou_thresholds=[0.5])
    assert result["map_50"].item() == pytest.approx(1.0, abs=1e-15)
    assert result["ap50_voc"].item() == pytest.approx(0.5, abs=1e-15)  # precision 1 up to recall 1/2
    _assert_matches_coco(result, _cocoeval(preds, targets, (1,), [0.5]))


def test_threshold_one_matches_like_coco():
    # COCO compares IoUs with min(t, 1 - 1e-10): at t = 1 a box off by 5e-12 of its height matches.
    gt = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    det = torch.tensor([[0.0, 0.0, 1.0, 1.0 - 5e-12], [0.0, 0.0, 1.0, 1.0 - 1e-9]], dtype=torch.float64)
    targets = [{"boxes": gt, "labels": torch.tensor([0])}]
    for box, expected in ((det[:1], 1.0), (det[1:], 0.0)):
        preds = [{"boxes": box, "scores": torch.tensor([0.5]), "labels": torch.tensor([0])}]
        result = mean_average_precision(preds, targets, iou_thresholds=[1.0])
        assert result["map"].item() == pytest.approx(expected, abs=1e-12)
        _assert_matches_coco(result, _cocoeval(preds, targets, (0,), [1.0]))


def test_perfect_detector_scores_one():
    _, targets = _random_dataset(3)
    preds = [
        {
            "boxes": t["boxes"],
            "labels": t["labels"],
            "scores": torch.rand(len(t["labels"]), dtype=torch.float64),
        }
        for t in targets
    ]
    result = mean_average_precision(preds, targets)
    for key in ("map", "map_50", "map_75", "mar_100", "ap50_voc"):
        assert result[key].item() == pytest.approx(1.0, abs=1e-12), key
    assert (result["map_per_class"] == 1).all()


def test_max_detections_applies_per_image_and_class():
    # One image, two classes, one exact detection each: with max_detections=1 both count.
    boxes = torch.tensor([_square(0), _square(100)])
    preds = [{"boxes": boxes, "scores": torch.tensor([0.9, 0.1]), "labels": torch.tensor([0, 1])}]
    targets = [{"boxes": boxes, "labels": torch.tensor([0, 1])}]
    result = mean_average_precision(preds, targets, max_detections=1)
    assert result["map"].item() == pytest.approx(1.0) and set(result) >= {"mar_1"}
    # Two detections of the same class: only the higher-scored one is kept.
    preds[0]["labels"] = torch.tensor([0, 0])
    targets[0]["labels"] = torch.tensor([0, 0])
    assert mean_average_precision(preds, targets, max_detections=1)["mar_1"].item() == pytest.approx(0.5)
    assert mean_average_precision(preds, targets, max_detections=2)["mar_1"].item() == pytest.approx(0.5)
    assert mean_average_precision(preds, targets, max_detections=2)["mar_2"].item() == pytest.approx(1.0)


def test_no_ground_truth_gives_minus_one_like_coco():
    preds = [
        {"boxes": torch.tensor([_square(0)]), "scores": torch.tensor([0.5]), "labels": torch.tensor([2])}
    ]
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    result = mean_average_precision(preds, targets)
    for key in ("map", "map_50", "map_75", "mar_1", "mar_10", "mar_100", "ap50_voc"):
        assert result[key].item() == -1.0, key
    evaluator = _cocoeval(preds, targets, (2,))
    assert evaluator.stats[0] == -1 and evaluator.stats[8] == -1
    empty = mean_average_precision([], [])
    assert (
        empty["map"].item() == -1 and empty["classes"].shape == (0,) and empty["map_per_class"].shape == (0,)
    )


def test_accepts_float32_and_int_dtypes():
    preds, targets = _random_dataset(11)
    result = mean_average_precision(preds, targets)
    as32 = [{"boxes": p["boxes"], "scores": p["scores"].float(), "labels": p["labels"].int()} for p in preds]
    targets32 = [{"boxes": t["boxes"].float(), "labels": t["labels"].to(torch.int32)} for t in targets]
    # The 1/64-pixel grid boxes are exact in float32, so only the scores change (in their last bits).
    again = mean_average_precision(as32, targets32)
    assert again["map"].item() == pytest.approx(result["map"].item(), abs=1e-6)
    assert again["map"].dtype == torch.float64


# --- bad input ----------------------------------------------------------------------------------


def _one():
    pred = {"boxes": torch.tensor([_square(0)]), "scores": torch.tensor([0.5]), "labels": torch.tensor([0])}
    target = {"boxes": torch.tensor([_square(1)]), "labels": torch.tensor([0])}
    return pred, target


def _with(entry, **changes):
    return {**entry, **changes}


P, T = _one()


@pytest.mark.parametrize(
    ("preds", "targets", "kwargs", "match"),
    [
        ([P, P], [T], {}, "one entry per image each, got 2 and 1"),
        ([_with(P, scores=torch.tensor([float("nan")]))], [T], {}, r"preds\[0\]\['scores'\] must not be NaN"),
        ([P], [_with(T, boxes=torch.tensor([[0.0, float("nan"), 1.0, 1.0]]))], {}, r"targets\[0\].*finite"),
        ([_with(P, boxes=torch.zeros(4))], [T], {}, r"preds\[0\]\['boxes'\] must have shape \(n, 4\)"),
        ([P], [_with(T, boxes=torch.zeros(1, 1, 4))], {}, r"shape \(n, 4\), got \(1, 1, 4\)"),
        ([P], [_with(T, boxes=torch.zeros(1, 5))], {}, r"shape \(\.\.\., 4\), got \(1, 5\)"),
        ([_with(P, boxes=torch.tensor([[5.0, 0.0, 1.0, 1.0]]))], [T], {}, "degenerate"),
        ([_with(P, labels=torch.tensor([0, 1]))], [T], {}, r"preds\[0\]\['labels'\] must have shape \(1,\)"),
        ([_with(P, scores=torch.tensor(0.5))], [T], {}, r"scores'\] must have shape \(1,\).*got \(\)"),
        ([{"boxes": P["boxes"], "labels": P["labels"]}], [T], {}, r"missing \['scores'\]"),
        ([P], [T], {"iou_thresholds": [0.5, 1.5]}, r"iou_thresholds must be in \[0, 1\]"),
        ([P], [T], {"iou_thresholds": []}, "non-empty"),
        ([P], [T], {"max_detections": 0}, "max_detections must be a positive int, got 0"),
    ],
)
def test_bad_input_raises_value_error(preds, targets, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mean_average_precision(preds, targets, **kwargs)


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="preds must be a list with one dict per image, got dict"):
        mean_average_precision(P, [T])
    with pytest.raises(TypeError, match=r"targets\[0\] must be a dict"):
        mean_average_precision([P], [[T["boxes"]]])
    with pytest.raises(TypeError, match="integer class ids, got dtype torch.float32"):
        mean_average_precision([_with(P, labels=torch.tensor([0.0]))], [T])
    with pytest.raises(TypeError, match=r"preds\[0\]\['boxes'\] must be a torch.Tensor, got list"):
        mean_average_precision([_with(P, boxes=[_square(0)])], [T])
    with pytest.raises(TypeError, match="class_ids must be integers"):
        mean_average_precision([P], [T], class_ids=[0.5])


# --- size buckets (COCO's area ranges) ----------------------------------------------------------

AREA_KEYS = {
    "map_small": 3,
    "map_medium": 4,
    "map_large": 5,
    "mar_small": 9,
    "mar_medium": 10,
    "mar_large": 11,
}


@pytest.mark.parametrize("seed", range(4))
def test_size_buckets_match_pycocotools_with_coco_ranges(seed):
    preds, targets = _random_dataset(seed, n_images=40)
    result = mean_average_precision(preds, targets)
    evaluator = _cocoeval(preds, targets, (0, 1, 2))
    for key, index in AREA_KEYS.items():
        assert result[key].item() == pytest.approx(evaluator.stats[index], abs=TOL), key


@pytest.mark.parametrize("seed", range(4))
def test_size_buckets_match_pycocotools_with_rescaled_ranges(seed):
    ranges = {"small": (0.0, 400.0), "medium": (400.0, 2500.0), "large": (2500.0, 1e5**2)}
    preds, targets = _random_dataset(seed, n_images=40)
    result = mean_average_precision(preds, targets, area_ranges=ranges, iou_thresholds=[0.5, 0.75])
    evaluator = _cocoeval(preds, targets, (0, 1, 2), iou_thresholds=[0.5, 0.75], area_ranges=ranges.values())
    for key, index in AREA_KEYS.items():
        assert result[key].item() == pytest.approx(evaluator.stats[index], abs=TOL), key
    assert all(0 < result[key] < 1 for key in AREA_KEYS)  # every bucket holds objects and errors


@pytest.mark.parametrize("seed", range(3))
def test_size_buckets_match_pycocotools_on_integer_boxes_with_areas_on_the_boundaries(seed):
    """Integer boxes of areas 0 to 36 and ranges meeting at 9 and 16: boxes on a boundary are in
    both buckets, detections match ignored boxes only when no counted one is left."""
    ranges = {"small": (0.0, 9.0), "medium": (9.0, 16.0), "large": (16.0, 1e5**2)}
    preds, targets = _integer_dataset(seed)
    result = mean_average_precision(preds, targets, area_ranges=ranges)
    evaluator = _cocoeval(preds, targets, (1, 3, 7), area_ranges=ranges.values())
    for key, index in AREA_KEYS.items():
        assert result[key].item() == pytest.approx(evaluator.stats[index], abs=TOL), key


def test_size_buckets_are_minus_one_without_ground_truth_in_the_range_and_can_be_skipped():
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    pred = [{"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}]
    target = [{"boxes": box, "labels": torch.tensor([0])}]
    result = mean_average_precision(pred, target)
    assert result["map_small"].item() == pytest.approx(1) and result["mar_small"] == 1
    assert result["map_medium"] == -1 and result["mar_large"] == -1
    assert "map_small" not in mean_average_precision(pred, target, area_ranges={})
    custom = mean_average_precision(pred, target, area_ranges={"tiny": (0, 50), "big": (50, 1e4)})
    assert custom["map_tiny"] == -1 and custom["map_big"].item() == pytest.approx(1)


def test_size_buckets_refuse_bad_ranges():
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    pred = [{"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}]
    target = [{"boxes": box, "labels": torch.tensor([0])}]
    with pytest.raises(ValueError, match="0 <= low <= high"):
        mean_average_precision(pred, target, area_ranges={"small": (10.0, 5.0)})
    with pytest.raises(TypeError, match="dict name -> \\(low, high\\)"):
        mean_average_precision(pred, target, area_ranges=[(0.0, 5.0)])
