import itertools
import math

import pytest
import torch

from toyalgos.detection.data import CLASSES, Shapes, _shape_masks, hflip, make_shapes
from toyalgos.detection.metrics import mean_average_precision

BACKGROUND = 0.4  # the image before painting, exactly, when noise=0


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _wh(boxes):
    return boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def _unclipped(boxes, image_size, tol=1e-4):
    """Boxes that touch no image border: for those, width == height == the drawn size."""
    return (boxes[:, :2] > tol).all(1) & (boxes[:, 2:] < image_size - tol).all(1)


def _reference_mask(kind, box, image_size, margin):
    """Pixels whose centre lies inside the shape of class ``kind`` drawn in the unclipped ``box``, with
    its outline moved inwards by ``margin`` pixels (margin < 0 moves it outwards): written from the
    shape definitions, independently of ``make_shapes``."""
    grid = torch.arange(image_size, dtype=torch.float64) + 0.5
    x, y = grid.view(1, -1), grid.view(-1, 1)
    x1, y1, x2, y2 = box.double().tolist()
    cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    if kind == 0:  # square of side 2r
        return ((x - cx).abs() <= r - margin) & ((y - cy).abs() <= r - margin)
    if kind == 1:  # disc of radius r
        return (x - cx) ** 2 + (y - cy) ** 2 <= (r - margin) ** 2
    # triangle, apex (cx, y1), base from (x1, y2) to (x2, y2): at depth d = y - y1 its half-width is d / 2.
    # Moving each of its three edges by `margin`: the base, and the two sides of slope 2 (normal factor
    # sqrt(1 + 1/4)).
    depth = y - y1
    return (y <= y2 - margin) & ((x - cx).abs() <= depth / 2 - margin * math.sqrt(1.25))


# --- determinism, shapes ------------------------------------------------------------------------


def test_same_seed_same_data_and_different_seeds_differ():
    a, b = make_shapes(12, generator=_g(3)), make_shapes(12, generator=_g(3))
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a.labels, b.labels, strict=True))
    c = make_shapes(12, generator=_g(4))
    assert not torch.equal(a.images, c.images)
    assert [len(x) for x in a.boxes] != [len(x) for x in c.boxes] or not all(
        torch.equal(x, y) for x, y in zip(a.boxes, c.boxes, strict=True)
    )
    # A generator does not depend on the global torch state.
    torch.manual_seed(123)
    assert torch.equal(make_shapes(12, generator=_g(3)).images, a.images)


def test_generator_is_advanced_and_none_means_the_global_generator():
    g = _g(3)
    first, second = make_shapes(4, generator=g), make_shapes(4, generator=g)
    assert not torch.equal(first.images, second.images)  # one stream, two different data sets
    torch.manual_seed(7)
    a = make_shapes(4)
    torch.manual_seed(7)
    assert torch.equal(make_shapes(4).images, a.images)
    assert not torch.equal(make_shapes(4).images, a.images)


@pytest.mark.parametrize("generator", [3, "3", torch.Generator().manual_seed(3).get_state()])
def test_generator_of_the_wrong_type_raises_type_error(generator):
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
        make_shapes(4, generator=generator)


def test_generator_is_keyword_only_and_there_is_no_seed_argument():
    with pytest.raises(TypeError):
        make_shapes(4, 64, (1, 4), (8.0, 28.0), None, 0.08, _g(0))
    with pytest.raises(TypeError, match="seed"):
        make_shapes(4, seed=0)


@pytest.mark.parametrize("image_size", [32, 48, 64])
def test_images_shape_dtype_and_range(image_size):
    s = make_shapes(10, image_size=image_size, generator=_g(1))
    assert isinstance(s, Shapes)
    assert s.images.shape == (10, 3, image_size, image_size)
    assert s.images.dtype == torch.float32
    assert (
        len(s) == 10 and s.image_size == image_size and s.classes == CLASSES == ("square", "disc", "triangle")
    )
    assert s.images.min() >= 0 and s.images.max() <= 1
    assert len(s.boxes) == len(s.labels) == 10
    for boxes, labels in zip(s.boxes, s.labels, strict=True):
        assert boxes.shape == (len(labels), 4) and boxes.dtype == torch.float32
        assert labels.dtype == torch.int64


def test_noise_level():
    """Background pixels are 0.4 + noise * N(0, 1): far from objects the std is ``noise``."""
    s = make_shapes(20, n_objects=(0, 0), noise=0.05, generator=_g(2))
    torch.testing.assert_close(s.images.mean(), torch.tensor(BACKGROUND), atol=2e-3, rtol=0)
    torch.testing.assert_close(s.images.std(), torch.tensor(0.05), atol=2e-3, rtol=0)
    clean = make_shapes(3, n_objects=(0, 0), noise=0.0, generator=_g(2))
    assert (clean.images == BACKGROUND).all()


# --- objects: counts, boxes, labels ---------------------------------------------------------------


def test_object_counts_within_n_objects_inclusive():
    s = make_shapes(300, n_objects=(2, 5), generator=_g(5))
    counts = torch.tensor([len(b) for b in s.boxes])
    assert counts.min() == 2 and counts.max() == 5  # both ends reached: the range is inclusive
    assert set(counts.tolist()) == {2, 3, 4, 5}
    assert all(len(b) == len(lab) for b, lab in zip(s.boxes, s.labels, strict=True))
    fixed = make_shapes(20, n_objects=(3, 3), generator=_g(5))
    assert [len(b) for b in fixed.boxes] == [3] * 20


@pytest.mark.parametrize(
    ("image_size", "size_range"), [(64, (8.0, 28.0)), (48, (5.0, 12.0)), (32, (10.0, 10.0))]
)
def test_boxes_inside_the_image_with_sizes_in_size_range(image_size, size_range):
    lo, hi = size_range
    s = make_shapes(300, image_size=image_size, size_range=size_range, generator=_g(6))
    boxes = torch.cat(s.boxes)
    w, h = _wh(boxes)
    assert (boxes >= 0).all() and (boxes <= image_size).all()
    assert (w > 0).all() and (h > 0).all()
    # Unclipped boxes are exactly the drawn square extent: width == height == size in size_range.
    free = _unclipped(boxes, image_size)
    assert free.float().mean() > 0.3
    torch.testing.assert_close(w[free], h[free], atol=1e-4, rtol=0)
    assert (w[free] >= lo - 1e-4).all() and (w[free] <= hi + 1e-4).all()
    if hi - lo > 2:  # sizes spread over the whole range
        assert w[free].min() < lo + 1 and w[free].max() > hi - 1
    # Clipped boxes are smaller in the clipped direction(s); the centre lies inside the image, so at
    # least half of a square or disc survives in each direction (and half a triangle's height).
    clipped = ~free
    assert clipped.any()
    assert (w <= hi + 1e-4).all() and (h <= hi + 1e-4).all()
    not_triangle = torch.cat(s.labels) != 2
    assert (w[not_triangle] >= lo / 2 - 1e-4).all() and (h >= lo / 2 - 1e-4).all()
    x_clipped = (boxes[:, 0] <= 1e-4) | (boxes[:, 2] >= image_size - 1e-4)
    y_clipped = (boxes[:, 1] <= 1e-4) | (boxes[:, 3] >= image_size - 1e-4)
    only_x = x_clipped & ~y_clipped  # then h is the true size, w is cut
    assert only_x.any()
    assert (w[only_x] <= h[only_x] + 1e-4).all() and (h[only_x] >= lo - 1e-4).all()
    only_y = y_clipped & ~x_clipped
    assert only_y.any()
    assert (h[only_y] <= w[only_y] + 1e-4).all()
    # (a triangle cut at its base is narrower than its size: see the clipped-triangle test below)
    only_y &= not_triangle
    assert only_y.any() and (w[only_y] >= lo - 1e-4).all()


def test_labels_in_range_and_balanced():
    s = make_shapes(300, generator=_g(7))
    labels = torch.cat(s.labels)
    assert labels.min() >= 0 and labels.max() < len(CLASSES)
    freq = torch.bincount(labels, minlength=3).double() / len(labels)
    # uniform class: each within 0.05 of 1/3 (about 4 standard errors for ~750 objects)
    assert ((freq - 1 / 3).abs() < 0.05).all(), freq


# --- pixels ---------------------------------------------------------------------------------------


def _single_objects(n=300, seed=8, **kwargs):
    s = make_shapes(n, n_objects=(1, 1), noise=0.0, generator=_g(seed), **kwargs)
    foreground = (s.images != BACKGROUND).any(1)  # (n, H, W)
    return s, foreground


def _tight_box(mask):
    ys, xs = mask.nonzero(as_tuple=True)
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()


def _bottom_clipped_triangle(box, label, image_size):
    """A triangle whose base is cut off by the bottom border: its visible part is narrower than the box."""
    w, h = _wh(box[None])
    return label == 2 and box[3] >= image_size - 1e-4 and (h < w - 1e-3 or box[1] > 1e-4)


def test_single_object_pixels_have_one_colour_inside_the_shape():
    s, foreground = _single_objects()
    checked = {0: 0, 1: 0, 2: 0}
    for i in range(len(s)):
        box, kind = s.boxes[i][0], int(s.labels[i][0])
        if not _unclipped(box[None], s.image_size)[0]:
            continue
        # 0.05 px inside / outside the outline: immune to rounding of the centre recovered from the box.
        inside = _reference_mask(kind, box, s.image_size, margin=0.05)
        outside = ~_reference_mask(kind, box, s.image_size, margin=-0.05)
        assert inside.sum() > 0
        image = s.images[i].reshape(3, -1)
        colour = image[:, inside.flatten()]
        # every pixel of the shape has the same colour, not the background
        assert (colour == colour[:, :1]).all()
        assert (colour[:, 0] != BACKGROUND).any()
        assert foreground[i][inside].all()
        assert not foreground[i][outside].any()
        checked[kind] += 1
    assert min(checked.values()) > 20, checked


def test_single_object_tight_box_matches_the_returned_box():
    """The box of the non-background pixels equals the returned box within 1 pixel (pixel centres
    are sampled, so an edge moves by at most 1/2 pixel), except at a triangle's apex: the first row
    of the triangle needs a pixel centre within its half-width depth/2, which can take up to 2 pixels.
    Clipped boxes included (a triangle whose base is clipped has its own test below)."""
    s, foreground = _single_objects()
    n_clipped = 0
    for i in range(len(s)):
        box, kind = s.boxes[i][0], int(s.labels[i][0])
        if _bottom_clipped_triangle(box, kind, s.image_size):
            continue
        err = (_tight_box(foreground[i]) - box).abs()
        tol = torch.tensor([1.0, 2.0 if kind == 2 else 1.0, 1.0, 1.0])
        assert (err <= tol).all(), (i, kind, box.tolist(), err.tolist())
        n_clipped += not _unclipped(box[None], s.image_size)[0]
    assert n_clipped > 20


def test_hflip_mirrors_pixels_and_boxes():
    """The flipped image's tight boxes are the flipped boxes (same tolerances as above); twice is identity."""
    s, foreground = _single_objects()
    images, boxes = hflip(s.images, s.boxes)
    fg_flipped, _ = hflip(foreground.unsqueeze(1).expand(-1, 3, -1, -1).float(), s.boxes)
    for i in range(len(s)):
        box, kind = boxes[i][0], int(s.labels[i][0])
        if _bottom_clipped_triangle(s.boxes[i][0], kind, s.image_size):
            continue
        err = (_tight_box(fg_flipped[i, 0] > 0) - box).abs()
        assert (err <= torch.tensor([1.0, 2.0 if kind == 2 else 1.0, 1.0, 1.0])).all(), (i, err)
    again, boxes_again = hflip(images, boxes)
    assert torch.equal(again, s.images)
    for a, b in zip(boxes_again, s.boxes, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    empty_images, empty_boxes = hflip(torch.zeros(1, 3, 8, 8), [torch.zeros(0, 4)])
    assert empty_boxes[0].shape == (0, 4)
    with pytest.raises(ValueError, match="one box tensor per image"):
        hflip(s.images, s.boxes[:-1])


def test_bottom_clipped_triangle_box_is_the_visible_extent():
    s, foreground = _single_objects()
    cases = [
        i for i in range(len(s)) if _bottom_clipped_triangle(s.boxes[i][0], int(s.labels[i][0]), s.image_size)
    ]
    assert len(cases) >= 3
    for i in cases:
        err = (_tight_box(foreground[i]) - s.boxes[i][0]).abs()
        assert (err <= torch.tensor([1.0, 2.0, 1.0, 1.0])).all(), (s.boxes[i][0].tolist(), err.tolist())


def test_fill_ratio_per_class():
    """Fraction of the box covered by the shape: square 1, disc pi/4, triangle 1/2."""
    s, foreground = _single_objects(n=400, seed=9, size_range=(20.0, 28.0))
    expected = {0: 1.0, 1: math.pi / 4, 2: 0.5}
    ratios = {0: [], 1: [], 2: []}
    for i in range(len(s)):
        box, kind = s.boxes[i][0], int(s.labels[i][0])
        if not _unclipped(box[None], s.image_size)[0]:
            continue
        w, h = _wh(box[None])
        ratios[kind].append(float(foreground[i].sum() / (w * h)))
    for kind, r in ratios.items():
        r = torch.tensor(r)
        assert len(r) > 20
        assert ((r - expected[kind]).abs() < 0.1).all(), (CLASSES[kind], r.min(), r.max())
        assert abs(r.mean() - expected[kind]) < 0.02, (CLASSES[kind], r.mean())


def test_later_shapes_are_drawn_over_earlier_ones():
    """Two concentric shapes: the second (drawn last) owns the pixels where they overlap."""
    s = make_shapes(400, n_objects=(2, 2), noise=0.0, generator=_g(10))
    n_checked = 0
    for i in range(len(s)):
        (b0, b1), (k0, k1) = s.boxes[i], s.labels[i].tolist()
        if not (_unclipped(s.boxes[i], s.image_size).all()):
            continue
        both = _reference_mask(k0, b0, s.image_size, 0.05) & _reference_mask(k1, b1, s.image_size, 0.05)
        only_first = _reference_mask(k0, b0, s.image_size, 0.05) & ~_reference_mask(
            k1, b1, s.image_size, -0.05
        )
        if both.sum() < 5 or only_first.sum() < 5:
            continue
        image = s.images[i].reshape(3, -1)
        c_both, c_first = image[:, both.flatten()], image[:, only_first.flatten()]
        assert (c_both == c_both[:, :1]).all() and (c_first == c_first[:, :1]).all()
        if not torch.equal(c_both[:, 0], c_first[:, 0]):  # two different colours
            n_checked += 1
    assert n_checked > 10


def test_visible_fraction_counts_the_pixels_no_later_shape_covers():
    """visible[j] = |mask_j minus the masks of the shapes drawn after j| / |mask_j|, recomputed shape by
    shape from the (unclipped) boxes; the last shape drawn is always fully visible."""
    s = make_shapes(200, n_objects=(3, 3), size_range=(8.0, 20.0), cluster=6.0, noise=0.0, generator=_g(10))
    n_checked, n_partly_hidden = 0, 0
    for boxes, labels, visible in zip(s.boxes, s.labels, s.visible, strict=True):
        assert visible.shape == (3,) and visible[-1] == 1.0 and ((visible >= 0) & (visible <= 1)).all()
        if not _unclipped(boxes, s.image_size).all():
            continue
        centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 3] - boxes[:, 1]
        masks = _shape_masks(labels, centre[:, 0], centre[:, 1], size, s.image_size)
        for j in range(3):
            hidden = masks[j + 1 :].any(0) if j < 2 else torch.zeros_like(masks[j])
            expected = (masks[j] & ~hidden).sum() / masks[j].sum()
            assert visible[j].item() == pytest.approx(expected.item(), abs=1e-6)
            n_partly_hidden += bool(expected < 1)
        n_checked += 1
    assert n_checked > 50 and n_partly_hidden > 50
    # Crowding hides more of each shape than spreading the same shapes out.
    crowded = make_shapes(200, n_objects=(6, 6), size_range=(6, 10), cluster=6.0, generator=_g(3))
    sparse = make_shapes(200, n_objects=(6, 6), size_range=(6, 10), generator=_g(3))
    assert torch.cat(crowded.visible).mean() < torch.cat(sparse.visible).mean() - 0.2


# --- cluster --------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [3.0, 8.0])
def test_cluster_keeps_centres_close(r):
    """With cluster=r every centre is within r of the image's anchor in x and in y, so two centres
    are at most 2 * sqrt(2) * r apart (+1 for the clamp to the image). Centres are read off the
    unclipped boxes."""
    s = make_shapes(200, n_objects=(3, 6), size_range=(4.0, 10.0), cluster=r, generator=_g(11))
    bound = 2 * math.sqrt(2) * r + 1
    worst, n_pairs = 0.0, 0
    for boxes in s.boxes:
        centres = ((boxes[:, :2] + boxes[:, 2:]) / 2)[_unclipped(boxes, s.image_size)]
        for a, b in itertools.combinations(centres, 2):
            worst = max(worst, float((a - b).norm()))
            n_pairs += 1
    assert n_pairs > 500
    assert worst <= bound
    assert worst > 0.5 * bound  # the bound is not vacuous
    # Without clustering, centres spread over the image.
    free = make_shapes(200, n_objects=(3, 6), size_range=(4.0, 10.0), generator=_g(11))
    spread = max(
        float(torch.cdist(((b[:, :2] + b[:, 2:]) / 2), ((b[:, :2] + b[:, 2:]) / 2)).max()) for b in free.boxes
    )
    assert spread > 2 * bound


# --- empty images, targets ------------------------------------------------------------------------


def test_empty_images():
    s = make_shapes(4, n_objects=(0, 0), noise=0.0, generator=_g(12))
    for boxes, labels in zip(s.boxes, s.labels, strict=True):
        assert boxes.shape == (0, 4) and labels.shape == (0,)
    assert (s.images == BACKGROUND).all()
    mixed = make_shapes(100, n_objects=(0, 2), generator=_g(12))
    counts = [len(b) for b in mixed.boxes]
    assert min(counts) == 0 and max(counts) == 2
    assert all(b.shape == (0, 4) for b in mixed.boxes if len(b) == 0)


def test_targets_format():
    s = make_shapes(6, n_objects=(0, 3), generator=_g(13))
    targets = s.targets()
    assert isinstance(targets, list) and len(targets) == 6
    for t, boxes, labels in zip(targets, s.boxes, s.labels, strict=True):
        assert set(t) == {"boxes", "labels"}
        assert torch.equal(t["boxes"], boxes) and torch.equal(t["labels"], labels)
    # The ground truth, given as detections, has a perfect score.
    preds = [t | {"scores": torch.ones(len(t["labels"]))} for t in targets]
    result = mean_average_precision(preds, targets)
    assert result["map"] == 1.0 and result["map_50"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be a positive int, got 0"),
        ({"n": -3}, "n must be a positive int, got -3"),
        ({"n": 2.0}, "n must be a positive int, got 2.0"),
        ({"n": 2, "n_objects": (3, 1)}, r"n_objects must be \(min, max\) with 0 <= min <= max, got \(3, 1\)"),
        ({"n": 2, "n_objects": (-1, 2)}, r"n_objects must be .*got \(-1, 2\)"),
        ({"n": 2, "size_range": (0.5, 4.0)}, r"size_range must be \(min, max\) with 1 <= min <= max"),
        ({"n": 2, "size_range": (10.0, 5.0)}, r"size_range must be .*got \(10.0, 5.0\)"),
        ({"n": 2, "image_size": 0}, "image_size must be a positive int, got 0"),
        ({"n": 2, "noise": -0.1}, r"noise must lie in \[0, inf\), got -0.1"),
        ({"n": 2, "cluster": -1.0}, r"cluster must lie in \[0, inf\), got -1.0"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shapes(**kwargs)


def test_face_scenes_are_skin_discs_with_two_eyes_inside_their_boxes():
    from toyalgos.detection.data import FACE_SKIN, make_face_scenes

    faces = make_face_scenes(
        6, image_size=96, n_faces=(1, 1), size_range=(24.0, 24.0), noise=0.0, generator=_g(0)
    )
    assert faces.classes == ("face",) and all(lab.tolist() == [0] for lab in faces.labels)
    for img, box in zip(faces.images, faces.boxes, strict=True):
        x1, y1, x2, y2 = box[0].tolist()
        skin = (img - torch.tensor(FACE_SKIN).view(3, 1, 1)).abs().amax(0) < 1e-6
        dark = (img - 0.05).abs().amax(0) < 1e-6
        ys, xs = torch.nonzero(skin | dark, as_tuple=True)
        # the disc and its eyes fill exactly the box (to a pixel's rounding)
        assert xs.min() >= math.floor(x1) and xs.max() <= math.ceil(x2)
        assert ys.min() >= math.floor(y1) and ys.max() <= math.ceil(y2)
        if (box[0, :2] > 0).all() and (box[0, 2:] < 96).all():  # unclipped: both eyes, left and right
            ey, ex = torch.nonzero(dark, as_tuple=True)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            assert (ex < cx).any() and (ex > cx).any() and (ey < cy).all()
            assert 0.8 <= len(ex) / (2 * math.pi * 2**2) <= 1.2  # two discs of radius 24 / 12 = 2
    a = make_face_scenes(3, generator=_g(1))
    b = make_face_scenes(3, generator=_g(1))
    assert torch.equal(a.images, b.images)


def test_a_later_face_hides_the_eyes_of_an_earlier_one():
    from toyalgos.detection.data import make_face_scenes

    scene = make_face_scenes(
        200, image_size=48, n_faces=(2, 2), size_range=(20.0, 30.0), noise=0.0, generator=_g(2)
    )
    hidden = [v[0] < 0.5 for v in scene.visible]  # the first face mostly covered by the second
    assert any(hidden)
    dark = ((scene.images - 0.05).abs().amax(1) < 1e-6).flatten(1).sum(1)
    # where the first face is mostly hidden, at most its visible part of the eyes is left: fewer dark pixels
    assert dark[torch.tensor(hidden)].float().mean() < dark[~torch.tensor(hidden)].float().mean()
