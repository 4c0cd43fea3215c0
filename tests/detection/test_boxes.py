import itertools

import numpy as np
import pytest
import torch

from toyalgos.detection.boxes import (
    BOX_FORMATS,
    box_area,
    box_convert,
    box_iou,
    box_iou_elementwise,
    check_xyxy,
    denormalize_boxes,
    nms,
    normalize_boxes,
)


def _random_boxes(n, seed, spread=100.0, max_size=40.0, grid=None):
    """Random valid xyxy boxes (float64); on a grid of 1/grid pixels when ``grid`` is given."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, spread, (n, 2))
    wh = rng.uniform(0, max_size, (n, 2))
    if grid is not None:
        xy, wh = np.round(xy * grid) / grid, np.round(wh * grid) / grid
    return torch.tensor(np.concatenate([xy, xy + wh], axis=1))


def _iou_reference(a, b):
    """IoU of two xyxy boxes given as lists, in plain Python floats."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# --- box_convert, normalize -------------------------------------------------------------------


def test_box_convert_formulas():
    xyxy = torch.tensor([[1.0, 2.0, 5.0, 8.0], [0.0, 0.0, 0.0, 3.0]])
    xywh = torch.tensor([[1.0, 2.0, 4.0, 6.0], [0.0, 0.0, 0.0, 3.0]])
    cxcywh = torch.tensor([[3.0, 5.0, 4.0, 6.0], [0.0, 1.5, 0.0, 3.0]])
    boxes = {"xyxy": xyxy, "xywh": xywh, "cxcywh": cxcywh}
    for in_fmt, out_fmt in itertools.product(BOX_FORMATS, repeat=2):
        torch.testing.assert_close(box_convert(boxes[in_fmt], in_fmt, out_fmt), boxes[out_fmt])


@pytest.mark.parametrize(("in_fmt", "out_fmt"), list(itertools.permutations(BOX_FORMATS, 2)))
def test_box_convert_round_trips(in_fmt, out_fmt):
    boxes = box_convert(_random_boxes(60, seed=1), "xyxy", in_fmt).reshape(3, 20, 4)  # leading dims
    there = box_convert(boxes, in_fmt, out_fmt)
    assert there.shape == boxes.shape
    assert not torch.allclose(there, boxes)
    torch.testing.assert_close(box_convert(there, out_fmt, in_fmt), boxes, rtol=0, atol=1e-12)


def test_box_convert_matches_formulas_on_random_boxes():
    x1, y1, x2, y2 = _random_boxes(50, seed=2).unbind(-1)
    expect_cxcywh = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)
    expect_xywh = torch.stack([x1, y1, x2 - x1, y2 - y1], -1)
    xyxy = torch.stack([x1, y1, x2, y2], -1)
    torch.testing.assert_close(box_convert(xyxy, "xyxy", "cxcywh"), expect_cxcywh)
    torch.testing.assert_close(box_convert(xyxy, "xyxy", "xywh"), expect_xywh)
    torch.testing.assert_close(box_convert(expect_xywh, "xywh", "cxcywh"), expect_cxcywh)


def test_box_convert_same_format_returns_a_copy():
    boxes = _random_boxes(5, seed=3)
    out = box_convert(boxes, "xywh", "xywh")
    torch.testing.assert_close(out, boxes)
    out[0, 0] = -1.0
    assert boxes[0, 0] != -1.0


def test_normalize_and_denormalize_boxes():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    torch.testing.assert_close(normalize_boxes(boxes, 100), torch.tensor([[0.1, 0.2, 0.3, 0.6]]))
    # (h, w) = (200, 50): x-like entries divide by the width 50, y-like by the height 200.
    torch.testing.assert_close(normalize_boxes(boxes, (200, 50)), torch.tensor([[0.2, 0.1, 0.6, 0.3]]))
    torch.testing.assert_close(
        normalize_boxes(torch.tensor([[10, 20, 30, 60]]), 100), normalize_boxes(boxes, 100)
    )
    random = _random_boxes(40, seed=4).reshape(2, 20, 4)
    for size in (320, (240, 320), (97.5, 13)):
        back = denormalize_boxes(normalize_boxes(random, size), size)
        torch.testing.assert_close(back, random, rtol=1e-12, atol=0)
    # Normalising commutes with format conversion.
    cxcywh = box_convert(random, "xyxy", "cxcywh")
    torch.testing.assert_close(
        normalize_boxes(cxcywh, (240, 320)),
        box_convert(normalize_boxes(random, (240, 320)), "xyxy", "cxcywh"),
    )


# --- box_area, box_iou ------------------------------------------------------------------------


def test_box_area():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0], [-1.0, -2.0, 1.5, 0.0]])
    torch.testing.assert_close(box_area(boxes), torch.tensor([6.0, 0.0, 5.0]))
    assert box_area(torch.tensor([[0, 0, 2, 2]])).dtype == torch.float32


def test_box_iou_hand_cases():
    unit = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    others = torch.tensor(
        [
            [0.5, 0.0, 1.5, 1.0],  # overlap by half: 0.5 / (1 + 1 - 0.5) = 1/3
            [0.0, 0.0, 1.0, 1.0],  # identical
            [0.0, 0.0, 2.0, 2.0],  # contains it: 1/4
            [1.0, 0.0, 2.0, 1.0],  # touching edges
            [3.0, 3.0, 4.0, 4.0],  # disjoint
            [0.5, 0.5, 1.5, 1.5],  # quarter overlap: 0.25 / 1.75 = 1/7
        ]
    )
    expected = torch.tensor([[1 / 3, 1.0, 0.25, 0.0, 0.0, 1 / 7]])
    torch.testing.assert_close(box_iou(unit, others), expected)
    torch.testing.assert_close(box_iou(others, unit), expected.T)


@pytest.mark.parametrize("seed", range(5))
def test_box_iou_matches_loop_reference(seed):
    a, b = _random_boxes(30, seed), _random_boxes(20, seed + 100)
    iou = box_iou(a, b)
    assert iou.shape == (30, 20) and iou.dtype == torch.float64
    ref = torch.tensor([[_iou_reference(x, y) for y in b.tolist()] for x in a.tolist()], dtype=torch.float64)
    torch.testing.assert_close(iou, ref, rtol=0, atol=1e-15)
    assert 0.05 < (iou > 0).float().mean() < 0.95  # the data mixes overlapping and disjoint pairs


@pytest.mark.parametrize("seed", range(10))
def test_box_iou_properties_on_random_boxes(seed):
    a = _random_boxes(25, seed, grid=64)  # dyadic coordinates: shifts and scales by 2 are exact
    b = _random_boxes(15, seed + 50, grid=64)
    iou = box_iou(a, b)
    assert torch.equal(box_iou(b, a), iou.T)
    assert ((iou >= 0) & (iou <= 1)).all()
    assert not torch.isnan(iou).any()
    positive = box_area(a) > 0
    torch.testing.assert_close(
        box_iou(a, a).diagonal()[positive], torch.ones(int(positive.sum()), dtype=a.dtype)
    )
    rng = np.random.default_rng(seed)
    shift = torch.tensor(np.round(rng.uniform(-50, 50, 2) * 64) / 64).repeat(2)
    torch.testing.assert_close(box_iou(a + shift, b + shift), iou, rtol=0, atol=1e-14)
    for scale in (4.0, float(rng.uniform(0.1, 10))):
        torch.testing.assert_close(box_iou(a * scale, b * scale), iou, rtol=0, atol=1e-14)
    # The IoU is not invariant to moving one box only.
    assert not torch.allclose(box_iou(a + shift, b), iou)


def test_box_iou_zero_area_and_empty():
    boxes = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 2.0, 2.0]])
    iou = box_iou(boxes, boxes)
    assert not torch.isnan(iou).any()
    torch.testing.assert_close(iou, torch.diag(torch.tensor([0.0, 0.0, 1.0])))
    assert box_iou(torch.zeros(0, 4), boxes).shape == (0, 3)
    assert box_iou(boxes, torch.zeros(0, 4)).shape == (3, 0)


def test_box_iou_of_integer_boxes_is_float():
    iou = box_iou(torch.tensor([[0, 0, 2, 2]]), torch.tensor([[1, 0, 3, 2]]))
    assert iou.dtype == torch.float32
    torch.testing.assert_close(iou, torch.tensor([[1 / 3]]))


@pytest.mark.parametrize("seed", range(3))
def test_box_iou_elementwise_is_the_diagonal_and_broadcasts_to_box_iou(seed):
    a, b = _random_boxes(30, seed), _random_boxes(30, seed + 100)
    pairs = box_iou_elementwise(a, b)
    assert pairs.shape == (30,)
    pairs_list = zip(a.tolist(), b.tolist(), strict=True)
    ref = torch.tensor([_iou_reference(x, y) for x, y in pairs_list], dtype=torch.float64)
    torch.testing.assert_close(pairs, ref, rtol=0, atol=1e-15)
    assert torch.equal(pairs, box_iou(a, b).diagonal())
    assert torch.equal(box_iou_elementwise(a[:, None], b[None]), box_iou(a, b))
    # a batch of matrices: (2, 15, 1, 4) x (2, 1, 15, 4) -> (2, 15, 15)
    a2, b2 = a.view(2, 15, 4), b.view(2, 15, 4)
    batched = box_iou_elementwise(a2[:, :, None], b2[:, None])
    assert batched.shape == (2, 15, 15)
    for i in range(2):
        assert torch.equal(batched[i], box_iou(a2[i], b2[i]))


def test_box_iou_elementwise_zero_area_is_zero_and_shape_is_checked():
    point = torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert box_iou_elementwise(point, point) == 0
    with pytest.raises(ValueError, match=r"boxes2 must have shape \(\.\.\., 4\), got \(3,\)"):
        box_iou_elementwise(point, torch.zeros(3))
    with pytest.raises(TypeError, match="boxes1 must be a torch.Tensor, got list"):
        box_iou_elementwise([0.0, 0.0, 1.0, 1.0], point)


def test_check_xyxy_returns_float_boxes():
    out = check_xyxy(torch.tensor([[0, 0, 2, 3]]), "boxes")
    assert out.dtype == torch.float32 and out.tolist() == [[0.0, 0.0, 2.0, 3.0]]
    with pytest.raises(ValueError, match="gt must be xyxy"):
        check_xyxy(torch.tensor([[2.0, 0.0, 1.0, 1.0]]), "gt")


# --- nms ----------------------------------------------------------------------------------------


def _nms_reference(boxes, scores, threshold, labels=None):
    """Greedy NMS with Python loops over pairs: visit by decreasing score (stable), suppress IoU > t."""
    n = len(boxes)
    labels = [0] * n if labels is None else labels
    order = sorted(range(n), key=lambda i: -scores[i])
    suppressed, keep = set(), []
    for i in order:
        if i in suppressed:
            continue
        keep.append(i)
        for j in order:
            if j not in suppressed and j not in keep and labels[j] == labels[i]:
                if _iou_reference(boxes[i], boxes[j]) > threshold:
                    suppressed.add(j)
    return keep


def _clustered(seed, n, n_classes=3, grid=None, tied_scores=False):
    """Boxes jittered around a few centres (so that many overlap), scores and labels."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 100, (max(1, n // 6), 2))
    c = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 3, (n, 2))
    wh = rng.uniform(15, 40, (n, 2))
    xyxy = np.concatenate([c - wh / 2, c + wh / 2], axis=1)
    if grid is not None:
        xyxy = np.round(xyxy * grid) / grid
    scores = rng.integers(0, 5, n) / 4 if tied_scores else rng.uniform(size=n)
    return torch.tensor(xyxy), torch.tensor(scores), torch.tensor(rng.integers(0, n_classes, n))


@pytest.mark.parametrize("seed", range(40))
def test_nms_matches_reference(seed):
    n = [0, 1, 2, 5, 30, 80][seed % 6]
    threshold = [0.0, 0.3, 0.5, 0.7, 1.0][seed % 5]
    boxes, scores, labels = _clustered(seed, n, grid=1 if seed % 4 == 0 else None, tied_scores=seed % 3 == 0)
    b, s, lab = boxes.tolist(), scores.tolist(), labels.tolist()
    keep = nms(boxes, scores, threshold)
    assert keep.dtype == torch.long
    assert keep.tolist() == _nms_reference(b, s, threshold)
    assert nms(boxes, scores, threshold, labels).tolist() == _nms_reference(b, s, threshold, lab)


@pytest.mark.parametrize("seed", range(10))
def test_nms_properties(seed):
    boxes, scores, labels = _clustered(seed, 60)
    threshold = 0.5
    for lab in (None, labels):
        keep = nms(boxes, scores, threshold, lab)
        classes = torch.zeros(60, dtype=torch.long) if lab is None else lab
        assert keep[0] == scores.argmax()  # the top-scoring box is always kept
        assert (scores[keep].diff() <= 0).all()  # sorted by decreasing score
        iou = box_iou(boxes, boxes)
        same = classes[:, None] == classes[None, :]
        kept_pairs = (iou[keep][:, keep] > threshold) & same[keep][:, keep]
        assert not kept_pairs.fill_diagonal_(False).any()
        # Every dropped box is suppressed by a kept box of its class with a higher score.
        dropped = torch.tensor(sorted(set(range(60)) - set(keep.tolist())), dtype=torch.long)
        by = (iou[dropped][:, keep] > threshold) & same[dropped][:, keep]
        by &= scores[keep][None, :] >= scores[dropped][:, None]
        assert by.any(dim=1).all()
        assert 5 < len(keep) < 55


def test_nms_hand_case_and_ties():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 0.0, 11.0, 10.0],  # IoU 9/11 with box 0
            [0.0, 0.0, 10.0, 5.0],  # IoU exactly 0.5 with box 0: kept at threshold 0.5 (suppress if > t)
            [20.0, 20.0, 30.0, 30.0],
        ]
    )
    scores = torch.tensor([0.95, 0.9, 0.5, 0.1])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.49).tolist() == [0, 3]
    assert nms(boxes, scores, 0.9).tolist() == [0, 1, 2, 3]
    # Equal scores: the lower index is visited first and wins.
    tied = torch.tensor([0.7, 0.7, 0.7, 0.7])
    assert nms(boxes, tied, 0.5).tolist() == [0, 2, 3]
    assert nms(boxes[[1, 0, 3, 2]], tied, 0.5).tolist() == [0, 2, 3]  # box 1 now wins, box 2 IoU 45/105
    # Identical boxes of different classes do not suppress each other.
    same_box = boxes[[0, 0, 0]]
    assert nms(same_box, torch.tensor([0.3, 0.9, 0.5]), 0.5).tolist() == [1]
    assert nms(same_box, torch.tensor([0.3, 0.9, 0.5]), 0.5, torch.tensor([0, 1, 0])).tolist() == [1, 2]


def test_nms_empty_input():
    keep = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.dtype == torch.long and keep.shape == (0,)
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5, torch.zeros(0, dtype=torch.long)).shape == (0,)


# --- bad input ----------------------------------------------------------------------------------

GOOD = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 2.0, 2.0]])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: box_iou(torch.tensor([[0.0, 0.0, -1.0, 1.0]]), GOOD), r"boxes1 .*degenerate.*rows \[0\]"),
        (lambda: box_iou(GOOD, torch.tensor([[0.0, 2.0, 1.0, 1.0]])), r"boxes2 .*x2 < x1 or y2 < y1"),
        (lambda: box_iou(GOOD, torch.tensor([[0.0, float("nan"), 1.0, 1.0]])), "boxes2 must be finite.*NaN"),
        (lambda: box_iou(torch.tensor([[0.0, 0.0, float("inf"), 1.0]]), GOOD), "boxes1 must be finite"),
        (lambda: box_iou(GOOD[None], GOOD), r"2-D \(N, 4\), got shape \(1, 2, 4\)"),
        (lambda: box_iou(GOOD, GOOD[0]), r"2-D \(N, 4\), got shape \(4,\)"),
        (lambda: box_iou(GOOD[:, :3], GOOD), r"shape \(\.\.\., 4\), got \(2, 3\)"),
        (lambda: box_area(torch.tensor([[2.0, 0.0, 1.0, 1.0]])), "degenerate"),
        (lambda: box_convert(GOOD, "xyxy", "yolo"), r"out_fmt must be one of .*got 'yolo'"),
        (lambda: box_convert(GOOD, "ccwh", "xyxy"), "in_fmt must be one of"),
        (lambda: box_convert(torch.zeros(3), "xyxy", "xywh"), r"shape \(\.\.\., 4\)"),
        (lambda: normalize_boxes(GOOD, 0), "image_size must be positive"),
        (lambda: denormalize_boxes(GOOD, (10, -1)), "positive, got height 10 and width -1"),
        (lambda: nms(GOOD, torch.tensor([0.5]), 0.5), r"scores must have shape \(2,\).*got \(1,\)"),
        (lambda: nms(GOOD, torch.tensor([0.5, float("nan")]), 0.5), "NaN"),
        (lambda: nms(GOOD, torch.tensor([0.5, 0.4]), 1.5), r"iou_threshold must lie in \[0, 1\], got 1.5"),
        (lambda: nms(GOOD, torch.tensor([0.5, 0.4]), 0.5, torch.tensor([0])), r"labels must have shape"),
        (lambda: nms(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), torch.tensor([0.5]), 0.5), "degenerate"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="boxes1 must be a torch.Tensor, got list"):
        box_iou([[0, 0, 1, 1]], GOOD)
    with pytest.raises(TypeError, match="real numbers, got dtype torch.bool"):
        box_area(torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="image_size must be a side length or an"):
        normalize_boxes(GOOD, (1, 2, 3))
    with pytest.raises(TypeError, match="scores must be a torch.Tensor"):
        nms(GOOD, [0.5, 0.4], 0.5)
    with pytest.raises(TypeError, match="iou_threshold must be a number, got str"):
        nms(GOOD, torch.tensor([0.5, 0.4]), "0.5")
