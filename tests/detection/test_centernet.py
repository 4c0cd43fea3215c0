import math
from functools import partial

import pytest
import torch

from toyalgos.core import Loss, train
from toyalgos.detection.centernet import (
    CenterNet,
    CenterNetOutput,
    centernet_loss,
    centernet_targets,
    decode_heatmap,
    fcos_centerness,
    focal_loss_centernet,
    gaussian_radius,
    heatmap_bce,
    heatmap_peaks,
    predict_heatmaps,
)
from toyalgos.detection.data import make_shapes


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _three_roots(height, width, min_overlap=0.7):
    """CornerNet's three cases written out: a r^2 + b r + c with CenterNet's (b + sqrt(b^2 - 4ac)) / 2."""
    roots = []
    for a, b, c in [
        (1, height + width, width * height * (1 - min_overlap) / (1 + min_overlap)),
        (4, 2 * (height + width), (1 - min_overlap) * width * height),
        (4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height),
    ]:
        roots.append((b + math.sqrt(b * b - 4 * a * c)) / 2)
    return min(roots)


def _perfect(targets):
    """The output of a network that reproduces its targets (heat clamped as CenterNet's sigmoid)."""
    return CenterNetOutput(targets.heatmap.clamp(1e-4, 1 - 1e-4), targets.offset, targets.size)


# --- targets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("min_overlap", [0.5, 0.7, 0.9])
def test_gaussian_radius_matches_the_three_root_construction(min_overlap):
    sizes = [(1, 1), (2, 7), (5, 3), (7, 7), (12.0, 40.0), (100, 3)]
    h = torch.tensor([s[0] for s in sizes], dtype=torch.float64)
    w = torch.tensor([s[1] for s in sizes], dtype=torch.float64)
    ours = gaussian_radius(h, w, min_overlap)
    expected = torch.tensor([_three_roots(a, b, min_overlap) for a, b in sizes], dtype=torch.float64)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)


def test_gaussian_radius_grows_with_the_box_and_shrinks_with_the_overlap():
    r = gaussian_radius(torch.tensor([2.0, 4.0, 8.0]), torch.tensor([2.0, 4.0, 8.0]))
    assert (r.diff() > 0).all()
    assert gaussian_radius(torch.tensor(8.0), torch.tensor(8.0), 0.9) < gaussian_radius(
        torch.tensor(8.0), torch.tensor(8.0), 0.5
    )


def test_heatmap_is_exactly_one_at_each_centre_and_the_gaussian_around_it():
    boxes = [torch.tensor([[4.0, 8.0, 36.0, 40.0]])]  # 32 px: 8 cells, centre (20, 24) px -> cell (5, 6)
    t = centernet_targets(boxes, [torch.tensor([2])], C=3, image_size=64)
    assert t.heatmap[0, 2, 6, 5] == 1.0 and int((t.heatmap == 1).sum()) == 1
    assert t.heatmap[0, :2].abs().sum() == 0  # other classes empty
    r = int(gaussian_radius(torch.tensor(8.0), torch.tensor(8.0)))
    sigma = (2 * r + 1) / 6
    torch.testing.assert_close(t.heatmap[0, 2, 6, 6], torch.tensor(math.exp(-1 / (2 * sigma**2))))
    torch.testing.assert_close(
        t.heatmap[0, 2, 6 + r, 5 + r], torch.tensor(math.exp(-(2 * r * r) / (2 * sigma**2)))
    )
    assert t.heatmap[0, 2, 6, 5 + r + 1] == 0  # outside the (2r + 1)^2 window
    assert t.mask.sum() == 1 and t.mask[0, 6, 5]
    torch.testing.assert_close(t.offset[0, :, 6, 5], torch.tensor([0.0, 0.0]))
    torch.testing.assert_close(t.size[0, :, 6, 5], torch.tensor([8.0, 8.0]))


def test_overlapping_gaussians_keep_the_elementwise_maximum():
    a, b = torch.tensor([[10.0, 10.0, 30.0, 30.0]]), torch.tensor([[18.0, 14.0, 40.0, 34.0]])
    lab = torch.tensor([0])
    both = centernet_targets([torch.cat([a, b])], [torch.tensor([0, 0])], C=1, image_size=64).heatmap
    ha = centernet_targets([a], [lab], C=1, image_size=64).heatmap
    hb = centernet_targets([b], [lab], C=1, image_size=64).heatmap
    torch.testing.assert_close(both, torch.maximum(ha, hb))
    assert ((ha > 0) & (hb > 0)).any()  # they do overlap


def test_offset_is_the_centre_lost_by_the_stride():
    boxes = [torch.tensor([[5.0, 6.0, 18.0, 13.0]])]  # centre (11.5, 9.5) px = (2.875, 2.375) cells
    t = centernet_targets(boxes, [torch.tensor([0])], C=1, image_size=64, stride=4)
    torch.testing.assert_close(t.offset[0, :, 2, 2], torch.tensor([0.875, 0.375]))
    torch.testing.assert_close(t.size[0, :, 2, 2], torch.tensor([13 / 4, 7 / 4]))


def test_targets_of_a_batch_equal_those_of_each_image():
    data = make_shapes(5, generator=_g(0))
    t = centernet_targets(data.boxes, data.labels, C=3, image_size=64)
    for i in range(5):
        one = centernet_targets(data.boxes[i : i + 1], data.labels[i : i + 1], C=3, image_size=64)
        for full, single in zip(t, one, strict=True):
            assert torch.equal(full[i : i + 1], single)


@pytest.mark.parametrize(
    "box, match",
    [
        ([[-2.0, 4.0, 10.0, 10.0]], "inside"),
        ([[50.0, 4.0, 66.0, 10.0]], "inside"),
        ([[5.0, 4.0, 5.0, 10.0]], "positive width"),
        ([[5.0, 9.0, 8.0, 4.0]], "x1 <= x2"),
    ],
)
def test_targets_refuse_boxes_outside_the_image_or_without_area(box, match):
    with pytest.raises(ValueError, match=match):
        centernet_targets([torch.tensor(box)], [torch.tensor([0])], C=1, image_size=64)


def test_targets_refuse_bad_labels_strides_and_counts():
    box = [torch.tensor([[1.0, 1.0, 9.0, 9.0]])]
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        centernet_targets(box, [torch.tensor([2])], C=2, image_size=64)
    with pytest.raises(ValueError, match="multiple of stride"):
        centernet_targets(box, [torch.tensor([0])], C=2, image_size=64, stride=5)
    with pytest.raises(ValueError, match="label tensors"):
        centernet_targets(box, [], C=2, image_size=64)


def test_fcos_centerness_is_one_at_the_centre_zero_on_an_edge_and_the_formula_between():
    box = torch.tensor([[0.0, 0.0, 10.0, 20.0]]).expand(3, 4)
    points = torch.tensor([[5.0, 10.0], [0.0, 10.0], [2.0, 5.0]])
    expected = torch.tensor([1.0, 0.0, math.sqrt(2 / 8 * 5 / 15)])
    torch.testing.assert_close(fcos_centerness(points, box), expected)
    with pytest.raises(ValueError, match="one box each"):
        fcos_centerness(points[:2], box)


# --- loss ------------------------------------------------------------------------------------------


def test_focal_loss_equals_a_hand_computed_case():
    target = torch.tensor([1.0, 0.5, 0.0]).view(1, 1, 1, 3)
    pred = torch.tensor([0.8, 0.3, 0.1]).view(1, 1, 1, 3)
    pos = (1 - 0.8) ** 2 * math.log(0.8)
    neg = (1 - 0.5) ** 4 * 0.3**2 * math.log(1 - 0.3) + 1.0 * 0.1**2 * math.log(1 - 0.1)
    expected = -(pos + neg) / 1
    torch.testing.assert_close(focal_loss_centernet(pred, target), torch.tensor(expected))
    # without a centre the sum is not divided
    torch.testing.assert_close(
        focal_loss_centernet(pred[..., 1:], target[..., 1:]), torch.tensor(-neg, dtype=torch.float32)
    )


def test_focal_loss_is_smallest_at_the_target_and_spares_cells_near_a_centre():
    t = centernet_targets([torch.tensor([[10.0, 10.0, 40.0, 40.0]])], [torch.tensor([0])], C=1, image_size=64)
    perfect = _perfect(t).heatmap
    loss = focal_loss_centernet(perfect, t.heatmap)  # not 0: cells near the centre still cost a little
    assert focal_loss_centernet(torch.full_like(perfect, 0.5), t.heatmap) > 10 * loss
    # penalty reduction: a false 0.5 next to a centre (Y = 0.9) costs (1 - 0.9)^4 of one far away (Y = 0)
    y = torch.tensor([1.0, 0.9, 0.0]).view(1, 1, 1, 3)
    p_near = torch.tensor([1 - 1e-4, 0.5, 1e-4]).view(1, 1, 1, 3)
    p_far = torch.tensor([1 - 1e-4, 1e-4, 0.5]).view(1, 1, 1, 3)
    ratio = focal_loss_centernet(p_near, y) / focal_loss_centernet(p_far, y)  # the 1e-4 cells add ~1e-12
    torch.testing.assert_close(ratio, torch.tensor(0.1**4), rtol=1e-3, atol=0)


def test_heatmap_losses_refuse_wrong_shapes_and_non_probabilities():
    a = torch.full((1, 2, 4, 4), 0.5)
    with pytest.raises(ValueError, match="one shape"):
        focal_loss_centernet(a, torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match="one shape"):
        heatmap_bce(a, torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"probabilities in \(0, 1\)"):
        focal_loss_centernet(torch.ones(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))


def test_centernet_loss_terms_and_a_short_training_lowers_it():
    torch.manual_seed(0)
    data = make_shapes(64, generator=_g(1))
    targets = centernet_targets(data.boxes, data.labels, C=3, image_size=64)
    model = CenterNet()
    out = centernet_loss(
        model, data.images[:8], targets._replace(**{k: v[:8] for k, v in targets._asdict().items()})
    )
    assert isinstance(out, Loss) and set(out.terms) == {"heatmap", "size", "offset"}
    torch.testing.assert_close(out.total, sum(out.terms.values()))

    def draw():
        return data.images, targets

    history = train(model, centernet_loss, draw, steps=40, lr=3e-3, progress=False)
    assert history.loss[-5:].mean() < 0.5 * history.loss[:5].mean()
    bce = train(CenterNet(), partial(centernet_loss, heat_loss=heatmap_bce), draw, steps=2, progress=False)
    assert set(bce.terms) == {"heatmap", "size", "offset"}


def test_model_refuses_wrong_images_and_configurations():
    with pytest.raises(ValueError, match=r"shape \(N, 3, H, W\)"):
        CenterNet()(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="multiples of 8"):
        CenterNet()(torch.zeros(1, 3, 36, 36))
    assert CenterNet()(torch.zeros(1, 3, 32, 48)).heatmap.shape == (1, 3, 8, 12)  # fully convolutional
    with pytest.raises(ValueError, match="must have 2 stages"):
        CenterNet(channels=(32,))
    with pytest.raises(ValueError, match="multiple of 8"):
        CenterNet(image_size=60)


# --- decoding --------------------------------------------------------------------------------------


def test_decoding_round_trips_encoded_targets():
    data = make_shapes(40, n_objects=(1, 3), generator=_g(2))
    # keep images whose objects have distinct centre cells and no Gaussian above 1 - 1e-4 elsewhere
    t = centernet_targets(data.boxes, data.labels, C=3, image_size=64)
    dets = decode_heatmap(_perfect(t), conf_threshold=0.99)
    checked = 0
    for d, boxes, labels, mask in zip(dets, data.boxes, data.labels, t.mask, strict=True):
        if int(mask.sum()) != len(boxes):
            continue  # two centres in one cell: one box is written
        order_d = torch.argsort(d["boxes"][:, 0] * 1000 + d["boxes"][:, 1])
        order_t = torch.argsort(boxes[:, 0] * 1000 + boxes[:, 1])
        torch.testing.assert_close(d["boxes"][order_d], boxes[order_t], atol=1e-4, rtol=0)
        assert torch.equal(d["labels"][order_d], labels[order_t])
        checked += 1
    assert checked >= 30


def test_max_pool_keeps_only_local_maxima_and_nms_is_optional():
    t = centernet_targets([torch.tensor([[8.0, 8.0, 40.0, 40.0]])], [torch.tensor([1])], C=3, image_size=64)
    peaks = heatmap_peaks(t.heatmap)
    assert int((peaks > 0.01).sum()) == 1
    # every cell predicts the object's size, as a trained size head does near a centre
    out = _perfect(t)._replace(size=torch.full((1, 2, 16, 16), 8.0))
    all_cells = decode_heatmap(out, peaks=False, conf_threshold=0.01)[0]
    only_peak = decode_heatmap(out, conf_threshold=0.01)[0]
    assert len(all_cells["scores"]) > 5 and len(only_peak["scores"]) == 1
    with_nms = decode_heatmap(out, peaks=False, conf_threshold=0.01, iou_threshold=0.5)[0]
    assert len(with_nms["scores"]) < len(all_cells["scores"])
    assert (with_nms["scores"].diff() <= 0).all()
    assert with_nms["scores"][0] == only_peak["scores"][0]


def test_decode_keeps_the_top_k_sorted_by_score():
    torch.manual_seed(0)
    out = CenterNetOutput(
        torch.rand(2, 3, 8, 8) * 0.98 + 0.01, torch.rand(2, 2, 8, 8), torch.rand(2, 2, 8, 8) * 3
    )
    dets = decode_heatmap(out, k=7)
    for d in dets:
        assert len(d["scores"]) == 7 and (d["scores"].diff() <= 0).all()
        assert (d["boxes"] >= 0).all() and (d["boxes"] <= 32).all()


def test_decode_refuses_heat_maps_and_heads_of_the_wrong_shape():
    heat = torch.full((1, 3, 8, 8), 0.5)
    with pytest.raises(ValueError, match=r"offset must have shape \(N, 2, H, W\)"):
        decode_heatmap(CenterNetOutput(heat, torch.zeros(1, 2, 8, 7), torch.zeros(1, 2, 8, 8)))
    with pytest.raises(ValueError, match="heatmap must be 4-D|heatmap"):
        decode_heatmap(CenterNetOutput(heat[0], torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8)))
    with pytest.raises(ValueError, match="k must be"):
        decode_heatmap(CenterNetOutput(heat, torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8)), k=0)


def test_predict_heatmaps_batches_agree_and_the_mode_is_kept():
    torch.manual_seed(0)
    model = CenterNet()
    images = make_shapes(7, generator=_g(3)).images
    model.train()
    whole = predict_heatmaps(model, images)
    parts = predict_heatmaps(model, images, batch_size=3)
    assert model.training
    for a, b in zip(whole, parts, strict=True):
        torch.testing.assert_close(a, b)
    assert whole.heatmap.shape == (7, 3, 16, 16)


def test_ignored_cells_leave_the_heat_map_losses_as_if_they_were_not_there():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 4, 5, generator=g).clamp(0.01, 0.99)
    target = torch.rand(2, 3, 4, 5, generator=g)
    target[0, 1, 2, 3] = target[1, 0, 0, 0] = 1.0  # two centres
    ignore = torch.zeros(2, 4, 5, dtype=torch.bool)
    ignore[1, :, :2] = True  # the second image's two left columns, one centre among them
    keep = ~ignore.unsqueeze(1)
    # the same sums written out over the kept cells only
    pos = target == 1
    pos_sum = ((1 - pred) ** 2 * pred.log())[pos & keep].sum()
    neg_sum = ((1 - target) ** 4 * pred**2 * (1 - pred).log())[~pos & keep].sum()
    expected = -(pos_sum + neg_sum) / (pos & keep).sum()
    torch.testing.assert_close(focal_loss_centernet(pred, target, ignore=ignore), expected)
    bce = torch.nn.functional.binary_cross_entropy(pred, target, reduction="none")
    torch.testing.assert_close(heatmap_bce(pred, target, ignore=ignore), bce[keep.expand_as(pred)].mean())
    # nothing ignored: the plain losses
    none = torch.zeros_like(ignore)
    torch.testing.assert_close(
        focal_loss_centernet(pred, target, ignore=none), focal_loss_centernet(pred, target)
    )
    torch.testing.assert_close(
        heatmap_bce(pred, target), torch.nn.functional.binary_cross_entropy(pred, target)
    )
    # no gradient reaches an ignored cell
    p = pred.clone().requires_grad_()
    focal_loss_centernet(p, target, ignore=ignore).backward()
    assert (p.grad[1, :, :, :2] == 0).all() and (p.grad[0] != 0).any()
    with pytest.raises(ValueError, match="ignore must have shape"):
        focal_loss_centernet(pred, target, ignore=ignore[:, :3])
    with pytest.raises(TypeError, match="ignore"):
        focal_loss_centernet(pred, target, ignore=ignore.float())
