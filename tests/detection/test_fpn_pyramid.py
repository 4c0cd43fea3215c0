import math

import pytest
import torch

from toyalgos.detection.boxes import box_iou
from toyalgos.detection.centernet import CenterNetOutput, centernet_targets, ignore_cells
from toyalgos.detection.data import make_shapes
from toyalgos.detection.fpn import (
    FPN,
    FPNCenterNet,
    assign_levels,
    conv_macs,
    decode_levels,
    fpn_centernet_loss,
    fpn_targets,
)
from toyalgos.detection.pyramid import (
    detect_pyramid,
    image_pyramid,
    mtcnn_scales,
    pyramid_cost,
    snip_targets,
    snip_valid,
)
from toyalgos.nn import ConvBackbone


def _facenet_scales(h, w, minsize=20, factor=0.709):
    """facenet-pytorch's ``detect_face`` scale loop (models/utils/detect_face.py), written out."""
    m = 12.0 / minsize
    minl = min(h, w) * m
    scale_i, scales = m, []
    while minl >= 12:
        scales.append(scale_i)
        scale_i = scale_i * factor
        minl = minl * factor
    return scales


# --- FPN -------------------------------------------------------------------------------------------


def test_fpn_keeps_every_stride_and_the_width():
    backbone = ConvBackbone((16, 32, 64), patch=2, depth=1)
    fpn = FPN((16, 32, 64), width=24)
    maps = fpn(backbone.features(torch.zeros(2, 3, 64, 64)))
    assert [tuple(p.shape) for p in maps] == [(2, 24, 32, 32), (2, 24, 16, 16), (2, 24, 8, 8)]
    assert [64 // p.shape[-1] for p in maps] == [2, 4, 8]  # output strides


def test_fpn_top_down_carries_the_coarse_map_to_every_level():
    """With identity-like weights, P_k = sum of all coarser laterals upsampled (before smoothing)."""
    fpn = FPN((1, 1, 1), width=1)
    with torch.no_grad():
        for conv in fpn.lateral:
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        for conv in fpn.smooth:
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = 1.0
            conv.bias.zero_()
    feats = [torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 2, 2)]
    maps = fpn(feats)
    for p in maps:
        torch.testing.assert_close(p, torch.ones_like(p))  # the top map's 1 reaches every level
    feats[0] = torch.full((1, 1, 8, 8), 2.0)
    torch.testing.assert_close(fpn(feats)[0], torch.full((1, 1, 8, 8), 3.0))
    torch.testing.assert_close(fpn(feats)[1], torch.ones(1, 1, 4, 4))  # no bottom-up path


def test_fpn_refuses_maps_that_do_not_halve_or_the_wrong_channels():
    fpn = FPN((4, 8), width=8)
    with pytest.raises(ValueError, match="half the size"):
        fpn([torch.zeros(1, 4, 8, 8), torch.zeros(1, 8, 3, 3)])
    with pytest.raises(ValueError, match=r"features\[1\] must have shape \(N, 8, H, W\)"):
        fpn([torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 4, 4)])
    with pytest.raises(ValueError, match="expected 2 feature maps"):
        fpn([torch.zeros(1, 4, 8, 8)])


def test_assign_levels_follows_the_paper_formula_and_torchvision_rounding():
    sizes = torch.tensor([10.0, 56.0, 111.9, 112.0, 224.0, 447.0, 448.0, 2000.0])
    boxes = torch.stack([torch.zeros(8), torch.zeros(8), sizes, sizes], 1)
    levels = assign_levels(boxes, k_min=2, k_max=5)
    expected = [max(2, min(5, math.floor(4 + math.log2(s / 224) + 1e-6))) for s in sizes.tolist()]
    assert levels.tolist() == expected == [2, 2, 2, 3, 4, 4, 5, 5]
    rescaled = assign_levels(boxes[1:4] / 14, k_min=0, k_max=3, canonical_size=16.0, canonical_level=2)
    assert rescaled.tolist() == [0, 0, 1]  # 224 px -> 16 px: the same ladder on a toy image


def test_assign_levels_refuses_bad_ranges():
    with pytest.raises(ValueError, match="k_max"):
        assign_levels(torch.tensor([[0.0, 0.0, 4.0, 4.0]]), k_min=3, k_max=2)


# --- pyramid ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("h, w, min_size", [(480, 640, 20), (160, 160, 20), (96, 128, 12), (1080, 1920, 40)])
def test_mtcnn_scales_match_facenet_pytorch(h, w, min_size):
    assert mtcnn_scales(h, w, min_size) == pytest.approx(_facenet_scales(h, w, min_size), rel=0, abs=0)
    scales = mtcnn_scales(h, w, min_size)
    assert min(h, w) * scales[-1] >= 12 > min(h, w) * scales[-1] * 0.709


def test_mtcnn_scales_refuse_factors_outside_0_1_and_min_sizes_below_the_window():
    for factor in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="factor"):
            mtcnn_scales(100, 100, factor=factor)
    with pytest.raises(ValueError, match="12-pixel window"):
        mtcnn_scales(100, 100, min_size=8)


def test_image_pyramid_sizes_cost_and_bad_scales():
    images = torch.rand(2, 3, 64, 64)
    levels = image_pyramid(images, [1.0, 0.5, 0.709], multiple=4)
    assert [tuple(x.shape[-2:]) for x in levels] == [(64, 64), (32, 32), (44, 44)]
    torch.testing.assert_close(levels[0], images)
    assert pyramid_cost([1.0, 0.5, 0.25]) == pytest.approx(1 + 0.25 + 0.0625)
    with pytest.raises(ValueError, match="scale"):
        image_pyramid(images, [1.0, 0.0])
    with pytest.raises(ValueError, match="non-empty"):
        image_pyramid(images, [])


def test_snip_valid_keeps_sizes_in_range_at_the_scale():
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 40.0, 40.0]])
    assert snip_valid(boxes, 1.0, (10.0, 32.0)).tolist() == [False, True, False]
    assert snip_valid(boxes, 2.0, (10.0, 32.0)).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="valid_range"):
        snip_valid(boxes, 1.0, (5.0, 1.0))


def test_snip_targets_split_the_objects_by_their_size_at_the_level():
    boxes = [
        torch.tensor([[0.0, 0.0, 8.0, 8.0], [10.0, 10.0, 26.0, 26.0], [0.0, 0.0, 40.0, 40.0]]),
        torch.zeros(0, 4),
    ]
    labels = [torch.tensor([0, 1, 2]), torch.zeros(0, dtype=torch.long)]
    t = snip_targets(boxes, labels, 2.0, (10.0, 40.0))  # sizes at scale 2: 16, 32, 80
    torch.testing.assert_close(t.boxes[0], boxes[0][:2] * 2)
    assert t.labels[0].tolist() == [0, 1]
    torch.testing.assert_close(t.ignored[0], boxes[0][2:] * 2)
    assert t.boxes[1].shape == t.ignored[1].shape == (0, 4) and t.labels[1].shape == (0,)
    # every object is a target or ignored, never both
    t = snip_targets(boxes, labels, 0.5, (10.0, 40.0))  # sizes 4, 8, 20
    assert len(t.boxes[0]) + len(t.ignored[0]) == 3 and t.labels[0].tolist() == [2]
    with pytest.raises(ValueError, match="label tensors"):
        snip_targets(boxes, labels[:1], 1.0, (1.0, 2.0))


def test_ignore_cells_mark_the_cells_whose_centre_lies_in_an_ignored_box():
    ignored = [
        torch.tensor([[0.0, 0.0, 9.0, 5.0]]),
        torch.zeros(0, 4),
        torch.tensor([[12.0, 12.0, 16.0, 16.0]]),
    ]
    cells = ignore_cells(ignored, 16, 4)  # cell centres at 2, 6, 10, 14
    # brute force: every cell of every image against every box
    expected = torch.zeros(3, 4, 4, dtype=torch.bool)
    for i, bs in enumerate(ignored):
        for x1, y1, x2, y2 in bs.tolist():
            for r in range(4):
                for c in range(4):
                    cx, cy = 4 * c + 2, 4 * r + 2
                    expected[i, r, c] |= x1 <= cx <= x2 and y1 <= cy <= y2
    assert torch.equal(cells, expected)
    assert cells[0].sum() == 2 and cells[1].sum() == 0 and cells[2].sum() == 1  # columns 2, 6 of row 2
    with pytest.raises(ValueError, match="multiple of stride"):
        ignore_cells(ignored, 15, 4)
    # centernet_targets carries them: by default nothing is ignored
    boxes = [torch.tensor([[2.0, 2.0, 8.0, 8.0]])] * 3
    labels = [torch.tensor([0])] * 3
    assert torch.equal(centernet_targets(boxes, labels, 1, 16, ignored=ignored).ignore, cells)
    assert not centernet_targets(boxes, labels, 1, 16).ignore.any()
    with pytest.raises(ValueError, match="one box tensor per image"):
        centernet_targets(boxes, labels, 1, 16, ignored=ignored[:2])


def _fixed_size_detector(size, tolerance=0.25):
    """Finds a white square on black only when its side is within ``tolerance`` of ``size`` px."""

    def detect(images):
        out = []
        for img in images:
            mask = img[0] > 0.5
            ys, xs = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
            side = len(xs)
            if side and abs(side - size) <= tolerance * size:
                box = torch.tensor([[xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]], dtype=torch.float32)
                out.append({"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])})
            else:
                out.append(
                    {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0).long()}
                )
        return out

    return detect


def test_detect_pyramid_finds_sizes_the_single_scale_misses_and_maps_boxes_back():
    images = torch.zeros(3, 3, 64, 64)
    for i, side in enumerate([8, 16, 32]):
        images[i, :, 4 : 4 + side, 4 : 4 + side] = 1.0
    detector = _fixed_size_detector(16)
    single = detector(images)
    assert [len(d["scores"]) for d in single] == [0, 1, 0]
    dets = detect_pyramid(detector, images, [2.0, 1.0, 0.5], multiple=1)
    assert [len(d["scores"]) for d in dets] == [1, 1, 1]
    for d, side in zip(dets, [8, 16, 32], strict=True):
        torch.testing.assert_close(
            d["boxes"][0], torch.tensor([4.0, 4.0, 4.0 + side, 4.0 + side]), atol=1.0, rtol=0
        )
    # SNIP at test time: a level keeps only boxes of 12 to 20 px at that level
    snip = detect_pyramid(detector, images, [2.0, 1.0, 0.5], valid_range=(12.0, 20.0))
    assert [len(d["scores"]) for d in snip] == [1, 1, 1]
    narrow = detect_pyramid(detector, images, [2.0, 1.0, 0.5], valid_range=(15.0, 17.0))
    assert [len(d["scores"]) for d in narrow] == [1, 1, 1]
    none = detect_pyramid(detector, images, [2.0, 1.0, 0.5], valid_range=(30.0, 40.0))
    assert [len(d["scores"]) for d in none] == [0, 0, 0]


# --- the multi-level heat-map detector --------------------------------------------------------------


def test_conv_macs_counts_a_convolution_and_matches_the_backbone_docstring():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert conv_macs(conv, (3, 16, 16)) == 8 * 16 * 16 * 3 * 9
    assert conv_macs(torch.nn.Conv2d(4, 8, 3, stride=2, groups=2), (4, 9, 9)) == 8 * 4 * 4 * 2 * 9
    assert round(conv_macs(ConvBackbone((32, 64), patch=4, depth=2), (3, 64, 64)) / 1e5) == 63  # "6.3 M"
    model = FPNCenterNet()
    model.train()
    conv_macs(model, (3, 64, 64))
    assert model.training


def test_fpn_targets_put_each_object_on_the_level_of_its_size():
    sizes = [5.0, 11.9, 12.0, 23.0, 24.0, 40.0]
    boxes = [torch.tensor([[2.0, 2.0, 2.0 + s, 2.0 + s] for s in sizes])]
    labels = [torch.zeros(len(sizes), dtype=torch.long)]
    targets = fpn_targets(boxes, labels, C=1, image_size=64, strides=(4, 8, 16), base_size=6.0)
    assert assign_levels(boxes[0], 0, 2, 6.0, 0).tolist() == [0, 0, 1, 1, 2, 2]  # < 12, 12-24, >= 24 px
    # centres (4.5, 7.95), (8, 13.5), (14, 22) px: the two small ones share a 4-px cell, as do the
    # two medium ones an 8-px cell; the large ones fall in 16-px cells 0 and 1
    assert [int(t.mask.sum()) for t in targets] == [1, 1, 2]
    torch.testing.assert_close(targets[2].size[0, :, 1, 1], torch.tensor([40.0, 40.0]) / 16)
    torch.testing.assert_close(targets[1].size[0, :, 1, 1], torch.tensor([23.0, 23.0]) / 8)  # the larger kept


def test_fpn_centernet_levels_strides_loss_and_decoding():
    torch.manual_seed(0)
    model = FPNCenterNet(C=3)
    assert model.strides == (4, 8, 16)
    data = make_shapes(8, image_size=64, size_range=(4.0, 40.0), generator=torch.Generator().manual_seed(0))
    outs = model(data.images)
    assert [tuple(o.heatmap.shape) for o in outs] == [(8, 3, 16, 16), (8, 3, 8, 8), (8, 3, 4, 4)]
    targets = fpn_targets(data.boxes, data.labels, 3, 64, model.strides, base_size=6.0)
    loss = fpn_centernet_loss(model, data.images, targets)
    assert set(loss.terms) == {"heatmap", "size", "offset"} and torch.isfinite(loss.total)
    # perfect outputs decode to the ground truth, whichever level holds each object
    perfect = [CenterNetOutput(t.heatmap.clamp(1e-4, 1 - 1e-4), t.offset, t.size) for t in targets]
    dets = decode_levels(perfect, model.strides, k=20)
    for d, b in zip(dets, data.boxes, strict=True):
        top = d["boxes"][d["scores"] > 0.99]
        assert len(top) <= len(b)
        assert (box_iou(top, b).amax(1) > 0.99).all()
    single = FPNCenterNet(C=3, levels=(1,))
    assert single.strides == (8,) and len(single(data.images)) == 1
    with pytest.raises(ValueError, match="levels"):
        fpn_centernet_loss(single, data.images, targets)
