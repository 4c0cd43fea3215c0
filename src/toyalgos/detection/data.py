"""Synthetic detection data: coloured shapes on a noisy background, with exact boxes.

Every image is drawn with a ``torch.Generator``, so a data set is reproducible and free. Knobs set how many
objects an image holds, how big they are and how tightly they cluster: the default set is
sparse and medium-sized; ``cluster`` packs small objects close together, the case where a
grid detector that gives each cell one object runs out of cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.checks import check_generator, check_number, check_positive_int

CLASSES = ("square", "disc", "triangle")


@dataclass(frozen=True)
class Shapes:
    """Images (n, 3, H, W) in [0, 1]; per image, boxes (k, 4) xyxy in pixels, labels (k,) and the
    fraction of each shape's pixels that no later shape covers (k,), 1 for an unoccluded shape."""

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    visible: list[torch.Tensor] | None = None
    classes: tuple[str, ...] = CLASSES

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def targets(self) -> list[dict[str, torch.Tensor]]:
        """Ground truth in the torchmetrics format: one dict with ``boxes`` and ``labels`` per image."""
        return [{"boxes": b, "labels": lab} for b, lab in zip(self.boxes, self.labels, strict=True)]


def _shape_masks(kind: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, size: torch.Tensor, image_size: int):
    """Boolean masks (M, H, W) of M shapes: squares and discs of side/diameter ``size``, upward triangles."""
    grid = torch.arange(image_size, dtype=torch.float32) + 0.5
    x, y = grid.view(1, 1, -1), grid.view(1, -1, 1)
    cx, cy, half = cx.view(-1, 1, 1), cy.view(-1, 1, 1), (size / 2).view(-1, 1, 1)
    dx, dy = (x - cx).abs(), y - cy
    square = (dx <= half) & (dy.abs() <= half)
    disc = (x - cx) ** 2 + dy**2 <= half**2
    # apex at the top (cy - half), base at the bottom (cy + half): half-width grows with depth
    triangle = (dy.abs() <= half) & (dx <= (dy + half) / 2)
    k = kind.view(-1, 1, 1)
    return torch.where(k == 0, square, torch.where(k == 1, disc, triangle))


def _check_shape_options(
    n: int,
    image_size: int,
    n_objects: tuple[int, int],
    size_range: tuple[float, float],
    cluster: float | None,
    noise: float,
) -> None:
    check_positive_int(n, "n")
    check_positive_int(image_size, "image_size")
    if not 0 <= n_objects[0] <= n_objects[1]:
        raise ValueError(f"n_objects must be (min, max) with 0 <= min <= max, got {n_objects}")
    if not 1 <= size_range[0] <= size_range[1]:
        raise ValueError(f"size_range must be (min, max) with 1 <= min <= max, got {size_range}")
    if cluster is not None:
        check_number(cluster, "cluster", 0)
    check_number(noise, "noise", 0)


def make_shapes(
    n: int,
    image_size: int = 64,
    n_objects: tuple[int, int] = (1, 4),
    size_range: tuple[float, float] = (8.0, 28.0),
    cluster: float | None = None,
    noise: float = 0.08,
    *,
    generator: torch.Generator | None = None,
) -> Shapes:
    """``n`` images with between ``n_objects[0]`` and ``n_objects[1]`` shapes each.

    Shapes have a uniform class (square, disc, triangle), a size uniform in ``size_range``
    (pixels), a random saturated colour and a centre uniform over the image, or, with
    ``cluster = r``, within r pixels of one random point per image. Later shapes are drawn
    over earlier ones; a box is the drawn shape's extent, clipped to the image, whether or not
    later shapes hide part of it (``Shapes.visible`` says how much is left). Every random number
    comes from ``generator`` (torch's global generator if None).
    """
    _check_shape_options(n, image_size, n_objects, size_range, cluster, noise)
    check_generator(generator)
    scene = _layout(n, image_size, n_objects, size_range, cluster, generator=generator)
    counts, kind, size, centre, colour = scene
    background = 0.4 + noise * torch.randn(n, 3, image_size, image_size, generator=generator)
    masks = _shape_masks(kind, centre[:, 0], centre[:, 1], size, image_size)  # (m, H, W)
    images, visible, _ = _paint(background, counts, masks, colour)
    boxes = _extent(kind, size, centre, image_size)
    per_image = counts.tolist()
    return Shapes(
        images,
        list(boxes.split(per_image)),
        list(kind.split(per_image)),
        visible=list(visible.split(per_image)),
    )


def _layout(
    n: int,
    image_size: int,
    n_objects: tuple[int, int],
    size_range: tuple[float, float],
    cluster: float | None,
    *,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, ...]:
    """The random scene: objects per image (n,), and per object kind, size, centre (m, 2), colour (m, 3)."""
    counts = torch.randint(n_objects[0], n_objects[1] + 1, (n,), generator=generator)
    m = int(counts.sum())
    kind = torch.randint(len(CLASSES), (m,), generator=generator)
    size = size_range[0] + (size_range[1] - size_range[0]) * torch.rand(m, generator=generator)
    if cluster is None:
        centre = torch.rand(m, 2, generator=generator) * image_size
    else:
        image_of = torch.repeat_interleave(torch.arange(n), counts)
        anchor = size_range[1] / 2 + torch.rand(n, 2, generator=generator) * (image_size - size_range[1])
        centre = anchor[image_of] + (2 * torch.rand(m, 2, generator=generator) - 1) * cluster
        centre = centre.clamp(0, image_size - 1e-3)
    colour = torch.rand(m, 3, generator=generator) * 0.5 + 0.5 * (torch.rand(m, 3, generator=generator) > 0.5)
    return counts, kind, size, centre, colour


def _paint(
    background: torch.Tensor, counts: torch.Tensor, masks: torch.Tensor, colour: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paint the shapes' masks (m, H, W) in order, ``counts`` per image, on ``background`` (n, 3, H, W).

    Returns the images in [0, 1], each shape's visible fraction (m,) and, per shape, where it is
    the top one (m, H, W) bool."""
    n, _, image_size, _ = background.shape
    m = len(masks)
    image_of = torch.repeat_interleave(torch.arange(n), counts)
    # A pixel takes the colour of the last shape of its image that covers it.
    first = torch.cumsum(counts, 0) - counts  # index of each image's first shape
    rank = torch.arange(m) - first[image_of]  # each shape's index in its image
    ranked = torch.where(masks, rank.view(-1, 1, 1), -1)
    top = torch.full((n, image_size, image_size), -1).scatter_reduce_(
        0, image_of.view(-1, 1, 1).expand_as(ranked), ranked, "amax"
    )
    images = background
    if m:
        shape_at = (first.view(-1, 1, 1) + top).clamp(0, m - 1)  # unpainted pixels: any index, unused
        images = torch.where((top >= 0).unsqueeze(1), colour[shape_at].permute(0, 3, 1, 2), images)
    # The fraction of each shape's pixels left visible by the shapes drawn over it.
    on_top = masks & (top[image_of] == rank.view(-1, 1, 1))
    visible = on_top.sum((1, 2)) / masks.sum((1, 2)).clamp(min=1)
    return images.clamp(0, 1), visible, on_top


def _extent(kind: torch.Tensor, size: torch.Tensor, centre: torch.Tensor, image_size: int) -> torch.Tensor:
    """Each shape's box (m, 4), xyxy pixels, clipped to the image."""
    half = size / 2
    y1, y2 = centre[:, 1] - half, centre[:, 1] + half
    # A triangle is widest at its base: if the base is cut off below the image, so is its width.
    half_w = torch.where(kind == 2, ((y2.clamp(max=image_size) - y1) / 2).clamp(max=half), half)
    x1, x2 = centre[:, 0] - half_w, centre[:, 0] + half_w
    return torch.stack([x1, y1, x2, y2], 1).clamp(0, image_size)


def hflip(images: torch.Tensor, boxes: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Mirror images (n, 3, H, W) left to right, and their xyxy pixel boxes with them (x -> W - x).

    The one augmentation that keeps every class of ``make_shapes`` what it is (a vertical flip
    would turn the upward triangles upside down).
    """
    if images.dim() != 4 or len(boxes) != images.shape[0]:
        raise ValueError(
            f"images must have shape (n, 3, H, W) with one box tensor per image, "
            f"got {tuple(images.shape)} and {len(boxes)} box tensors"
        )
    width = images.shape[-1]
    flat = torch.cat([box.reshape(-1, 4) for box in boxes]) if boxes else torch.zeros(0, 4)
    flipped = torch.stack([width - flat[:, 2], flat[:, 1], width - flat[:, 0], flat[:, 3]], 1)
    return images.flip(-1), list(flipped.split([len(box) for box in boxes]))


FACE_SKIN = (0.95, 0.8, 0.6)


def make_face_scenes(
    n: int,
    image_size: int = 128,
    n_faces: tuple[int, int] = (1, 3),
    size_range: tuple[float, float] = (12.0, 48.0),
    noise: float = 0.08,
    *,
    generator: torch.Generator | None = None,
) -> Shapes:
    """Toy "faces" for MTCNN's pyramid: skin-coloured discs with two dark eyes, one class ("face").

    A face of diameter d has two eyes of diameter d/6, d/5 left and right of its centre and d/8
    above it (a 12-pixel face still has 2-pixel eyes). Positions and sizes are drawn
    as in ``make_shapes`` (uniform centre, size uniform in ``size_range``); later faces hide
    earlier ones, eyes included; boxes are the discs' extents, clipped to the image.
    """
    _check_shape_options(n, image_size, n_faces, size_range, None, noise)
    check_generator(generator)
    counts, _, size, centre, _ = _layout(n, image_size, n_faces, size_range, None, generator=generator)
    kind = torch.ones_like(size, dtype=torch.long)  # discs
    background = 0.4 + noise * torch.randn(n, 3, image_size, image_size, generator=generator)
    cx, cy = centre[:, 0], centre[:, 1]
    discs = _shape_masks(kind, cx, cy, size, image_size)  # (m, H, W)
    skin = torch.tensor(FACE_SKIN).expand(len(size), 3)
    images, visible, on_top = _paint(background, counts, discs, skin)
    eye = size / 6
    eyes = _shape_masks(kind, cx - size / 5, cy - size / 8, eye, image_size) | _shape_masks(
        kind, cx + size / 5, cy - size / 8, eye, image_size
    )
    image_of = torch.repeat_interleave(torch.arange(n), counts)
    dark = torch.zeros(n, image_size * image_size)  # eyes not hidden by a later face
    dark.index_add_(0, image_of, (eyes & on_top).flatten(1).float())
    images = torch.where(dark.view(n, 1, image_size, image_size) > 0, 0.05, images)
    boxes = _extent(kind, size, centre, image_size)
    per_image = counts.tolist()
    return Shapes(
        images,
        list(boxes.split(per_image)),
        list(torch.zeros_like(kind).split(per_image)),
        visible=list(visible.split(per_image)),
        classes=("face",),
    )
