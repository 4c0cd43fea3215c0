"""CenterNet (Zhou, Wang & Krähenbühl 2019, "Objects as Points", arXiv:1904.07850) at toy scale.

An object is the peak of a heat map: the network predicts, at output stride R, one heat map per
class, Ŷ in [0, 1]^(C x H/R x W/R), plus a 2-channel offset (the centre's sub-cell position
lost by the stride) and a 2-channel size. Training targets splat a Gaussian on each object's
centre (Sec. 3, with CornerNet's size-adaptive radius); the heat map is trained with a
penalty-reduced focal loss (Eq. 1), offset and size with L1 at the centres only (Eqs. 2, 3).
Decoding keeps local maxima (a 3 x 3 max-pool replaces NMS) and the top K of them. FCOS (Tian
et al. 2019, arXiv:1904.01355) is the other anchor-free family; ``fcos_centerness`` is its
centre-ness target (Eq. 3 there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core import Loss, evaluating, model_device
from ..core.checks import check_number, check_positive_int, check_tensor
from ..nn import ConvBackbone, conv_bn_act
from .boxes import check_xyxy, nms

HEAT_CLAMP = 1e-4  # CenterNet's _sigmoid clamps the heat map to [1e-4, 1 - 1e-4]
HEAT_BIAS = -2.19  # initial heat-map bias: sigmoid(-2.19) ~ 0.1 (the paper's focal-loss prior)


class CenterNetTargets(NamedTuple):
    """Dense training targets at output stride R, for N images, C classes, an H x W output grid.

    ``heatmap`` (N, C, H, W) the splatted Gaussians, exactly 1 at each centre cell; ``offset``
    (N, 2, H, W) the centre's position inside its cell, p/R - floor(p/R); ``size`` (N, 2, H, W)
    the box's (w, h) in output cells; ``mask`` (N, H, W) True at the cells that hold a centre;
    ``ignore`` (N, H, W) True at the cells the heat-map loss leaves out (those inside the boxes
    passed as ``ignored``: SNIP's objects outside a level's valid range), all False by default.
    """

    heatmap: torch.Tensor
    offset: torch.Tensor
    size: torch.Tensor
    mask: torch.Tensor
    ignore: torch.Tensor


class CenterNetOutput(NamedTuple):
    """The network's three heads: ``heatmap`` (N, C, H, W) in [1e-4, 1 - 1e-4], ``offset`` and
    ``size`` (N, 2, H, W), in output cells."""

    heatmap: torch.Tensor
    offset: torch.Tensor
    size: torch.Tensor


# --- targets ---------------------------------------------------------------------------------------


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CornerNet's radius (Law & Deng 2018, Sec. 3.2), as CenterNet's ``gaussian_radius`` computes it.

    The largest corner shift r for which a box of size (height, width) still has IoU >= min_overlap
    with the ground truth, in three cases (both corners shifted outwards, inwards, one each),
    each a quadratic a r^2 - b r + c = 0; the radius is the smallest of the three roots. As in the
    released code, the roots are (b + sqrt(b^2 - 4ac)) / 2 for every case (not / 2a).
    """
    check_number(min_overlap, "min_overlap", 0, 1, low_open=True, high_open=True)
    h, w = torch.as_tensor(height, dtype=torch.float64), torch.as_tensor(width, dtype=torch.float64)
    o = min_overlap
    b1, c1 = h + w, w * h * (1 - o) / (1 + o)  # a1 = 1
    b2, c2 = 2 * (h + w), (1 - o) * w * h  # a2 = 4
    b3, c3 = -2 * o * (h + w), (o - 1) * w * h  # a3 = 4 o
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    r2 = (b2 + torch.sqrt(b2**2 - 16 * c2)) / 2
    r3 = (b3 + torch.sqrt(b3**2 - 16 * o * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def _check_boxes_in_image(boxes: torch.Tensor, image_size: int, name: str) -> torch.Tensor:
    boxes = check_xyxy(boxes, name)
    if (boxes < 0).any() or (boxes > image_size).any():
        raise ValueError(f"{name} must lie inside the {image_size}x{image_size} image, got {boxes.tolist()}")
    if ((boxes[:, 2:] - boxes[:, :2]) <= 0).any():
        raise ValueError(
            f"{name} must have positive width and height, got zero-size boxes in {boxes.tolist()}"
        )
    return boxes


def _flatten(boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], C: int, image_size: int):
    """All objects of all images: boxes (M, 4), labels (M,), image index (M,)."""
    if len(boxes) != len(labels):
        raise ValueError(f"got {len(boxes)} box tensors but {len(labels)} label tensors")
    all_boxes = [
        _check_boxes_in_image(b.reshape(-1, 4), image_size, f"boxes[{i}]") for i, b in enumerate(boxes)
    ]
    flat = torch.cat(all_boxes).float() if boxes else torch.zeros(0, 4)
    flat_labels = torch.cat([lab.reshape(-1) for lab in labels]).long() if labels else torch.zeros(0).long()
    if len(flat_labels) != len(flat):
        raise ValueError(f"got {len(flat)} boxes but {len(flat_labels)} labels")
    if ((flat_labels < 0) | (flat_labels >= C)).any():
        raise ValueError(f"labels must be in [0, {C}), got values {flat_labels.unique().tolist()}")
    image = torch.repeat_interleave(torch.arange(len(boxes)), torch.tensor([len(b) for b in all_boxes]))
    return flat, flat_labels, image


def centernet_targets(
    boxes: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    C: int,
    image_size: int,
    stride: int = 4,
    min_overlap: float = 0.7,
    ignored: Sequence[torch.Tensor] | None = None,
) -> CenterNetTargets:
    """Ground truth -> ``CenterNetTargets`` on the (image_size / stride)^2 output grid (Sec. 3).

    ``boxes[i]`` is (k_i, 4) xyxy pixels inside the image, ``labels[i]`` (k_i,) class ids. Each
    object's centre p/R falls in cell p̃ = floor(p/R); its class's heat map gets
    exp(-||x - p̃||^2 / 2 sigma^2) inside a (2r + 1)^2 window, r = int(gaussian_radius(ceil h,
    ceil w)) in output cells and sigma = (2r + 1) / 6; where Gaussians overlap the element-wise
    maximum is kept. Offset and size are written at p̃; when two centres share a cell the larger
    box's are kept (both heat peaks stay). ``ignored[i]`` (j_i, 4) are boxes whose cells the loss
    leaves out (``ignore_cells``).
    """
    check_positive_int(C, "C")
    check_positive_int(image_size, "image_size")
    check_positive_int(stride, "stride")
    if image_size % stride:
        raise ValueError(f"image_size must be a multiple of stride = {stride}, got {image_size}")
    flat, label, image = _flatten(boxes, labels, C, image_size)
    N, H = len(boxes), image_size // stride
    centre = (flat[:, :2] + flat[:, 2:]) / 2 / stride  # (M, 2) in output cells
    wh = (flat[:, 2:] - flat[:, :2]) / stride  # (M, 2)
    cell = centre.floor().clamp(0, H - 1)  # p̃ (M, 2): (col, row)
    radius = gaussian_radius(wh[:, 1].ceil(), wh[:, 0].ceil(), min_overlap).long().clamp(min=0).float()
    sigma = (2 * radius + 1) / 6

    grid = torch.arange(H, dtype=torch.float32)
    dx = grid.view(1, 1, H) - cell[:, 0].view(-1, 1, 1)  # (M, 1, W)
    dy = grid.view(1, H, 1) - cell[:, 1].view(-1, 1, 1)  # (M, H, 1)
    r = radius.view(-1, 1, 1)
    gauss = torch.exp(-(dx**2 + dy**2) / (2 * sigma.view(-1, 1, 1) ** 2))
    gauss = gauss * ((dx.abs() <= r) & (dy.abs() <= r))  # (M, H, W)
    channel = (image * C + label).view(-1, 1).expand(-1, H * H)  # the (image, class) map of each object
    heatmap = torch.zeros(N * C, H * H).scatter_reduce_(0, channel, gauss.reshape(-1, H * H), "amax")

    offset, size = torch.zeros(N, 2, H, H), torch.zeros(N, 2, H, H)
    mask = torch.zeros(N, H, H, dtype=torch.bool)
    order = torch.argsort(wh.prod(1), stable=True)  # smallest first: the largest is written last
    i, col, row = image[order], cell[order, 0].long(), cell[order, 1].long()
    offset[i, :, row, col] = centre[order] - cell[order]
    size[i, :, row, col] = wh[order]
    mask[i, row, col] = True
    ignore = ignore_cells(ignored, image_size, stride) if ignored is not None else torch.zeros_like(mask)
    if len(ignore) != N:
        raise ValueError(f"ignored must hold one box tensor per image ({N}), got {len(ignore)}")
    return CenterNetTargets(heatmap.view(N, C, H, H), offset, size, mask, ignore)


def ignore_cells(ignored: Sequence[torch.Tensor], image_size: int, stride: int) -> torch.Tensor:
    """(N, H, W) bool, H = W = image_size / stride: True at the output cells whose centre lies inside
    one of the image's ``ignored`` boxes (xyxy pixels), the cells the heat-map loss leaves out."""
    check_positive_int(image_size, "image_size")
    check_positive_int(stride, "stride")
    if image_size % stride:
        raise ValueError(f"image_size must be a multiple of stride = {stride}, got {image_size}")
    H = image_size // stride
    centres = (torch.arange(H, dtype=torch.float32) + 0.5) * stride
    flat = (
        torch.cat([check_xyxy(b.reshape(-1, 4), "ignored") for b in ignored])
        if ignored
        else torch.zeros(0, 4)
    )
    image = torch.repeat_interleave(torch.arange(len(ignored)), torch.tensor([len(b) for b in ignored]))
    x, y = centres.view(1, 1, H), centres.view(1, H, 1)
    inside = (x >= flat[:, 0, None, None]) & (x <= flat[:, 2, None, None])  # (M, 1, W)
    inside = inside & (y >= flat[:, 1, None, None]) & (y <= flat[:, 3, None, None])  # (M, H, W)
    out = torch.zeros(len(ignored), H * H)
    out.index_add_(0, image, inside.reshape(-1, H * H).float())
    return out.view(-1, H, H) > 0


def fcos_centerness(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """FCOS's centre-ness target (Tian et al. 2019, Eq. 3) of locations (P, 2) inside boxes (P, 4).

    With (l, t, r, b) the distances from the location to the box's four sides,
    centerness = sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)): 1 at the centre, 0 on an
    edge; 0 for a location outside its box. FCOS multiplies it into the class score at test time.
    """
    check_tensor(points, "points", dim=2, dtype="float")
    boxes = check_xyxy(boxes, "boxes")
    if points.shape[-1] != 2 or len(points) != len(boxes):
        raise ValueError(
            f"points must be (P, 2) with one box each, got {tuple(points.shape)} and {len(boxes)}"
        )
    l, t = points[:, 0] - boxes[:, 0], points[:, 1] - boxes[:, 1]
    r, b = boxes[:, 2] - points[:, 0], boxes[:, 3] - points[:, 1]
    lr, tb = torch.stack([l, r], 1), torch.stack([t, b], 1)
    ratio = (lr.amin(1) / lr.amax(1).clamp(min=1e-12)) * (tb.amin(1) / tb.amax(1).clamp(min=1e-12))
    return ratio.clamp(min=0).sqrt()


# --- the network -----------------------------------------------------------------------------------


class CenterNet(nn.Module):
    """A ``ConvBackbone``, one upsampling step and CenterNet's three heads, at output stride ``patch``.

    The backbone's last map (stride 2 patch) is projected to the first stage's width, upsampled 2x
    (nearest) and added to the first stage's map (stride patch), then mixed by a 3x3 convolution: a
    one-step version of the paper's up-convolutional necks (DLA, hourglass). The heads share one
    3x3 convolution (the paper gives each head its own, a cost this toy saves) and split into C
    heat-map, 2 offset and 2 size channels by a 1x1 convolution. ``forward`` returns a
    ``CenterNetOutput``; the heat-map bias starts at -2.19 (sigmoid 0.1), as in the paper.
    Being fully convolutional, it runs on any image whose sides are multiples of 2 patch (an image
    pyramid's levels); ``image_size`` is the training size.
    """

    def __init__(
        self,
        C: int = 3,
        image_size: int = 64,
        channels: Sequence[int] = (32, 64),
        patch: int = 4,
        depth: int = 2,
    ):
        super().__init__()
        check_positive_int(C, "C")
        check_positive_int(image_size, "image_size")
        channels = tuple(channels)
        if len(channels) != 2:
            raise ValueError(f"channels must have 2 stages (strides patch and 2 patch), got {channels}")
        self.backbone = ConvBackbone(channels, patch=patch, depth=depth)
        if image_size % self.backbone.stride:
            raise ValueError(f"image_size must be a multiple of {self.backbone.stride}, got {image_size}")
        self.C, self.image_size, self.stride = C, image_size, patch
        width = channels[0]
        self.top_down = nn.Conv2d(channels[1], width, 1)
        self.merge = conv_bn_act(width, width)
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, C + 4, 1)
        )
        with torch.no_grad():
            self.head[-1].bias[:C] = HEAT_BIAS
            self.head[-1].bias[C:] = 0.0

    def forward(self, images: torch.Tensor) -> CenterNetOutput:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
        fine, coarse = self.backbone.features(images)  # strides patch and 2 patch
        x = self.merge(fine + F.interpolate(self.top_down(coarse), scale_factor=2.0, mode="nearest"))
        out = self.head(x)  # (N, C + 4, H / R, W / R)
        heat = torch.sigmoid(out[:, : self.C]).clamp(HEAT_CLAMP, 1 - HEAT_CLAMP)
        return CenterNetOutput(heat, out[:, self.C : self.C + 2], out[:, self.C + 2 :])


# --- the loss --------------------------------------------------------------------------------------


def _check_heatmaps(pred: torch.Tensor, target: torch.Tensor) -> None:
    check_tensor(pred, "pred", dim=4, dtype="float")
    check_tensor(target, "target", dim=4, dtype="float")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target heat maps must have one shape, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if (pred <= 0).any() or (pred >= 1).any():
        raise ValueError("pred must be probabilities in (0, 1) (clamp the sigmoid, as CenterNetOutput does)")


def _kept_cells(pred: torch.Tensor, ignore: torch.Tensor | None) -> torch.Tensor:
    """(N, 1, H, W) float, 0 at the ignored cells and 1 elsewhere."""
    if ignore is None:
        return torch.ones_like(pred[:, :1])
    check_tensor(ignore, "ignore", dtype=torch.bool)
    expected = (pred.shape[0], *pred.shape[2:])
    if ignore.shape != expected:
        raise ValueError(f"ignore must have shape (N, H, W) = {expected}, got {tuple(ignore.shape)}")
    return (~ignore).unsqueeze(1).float()


def focal_loss_centernet(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 2.0,
    beta: float = 4.0,
    ignore: torch.Tensor | None = None,
) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss (Eq. 1), heat maps (N, C, H, W).

    L = -1/N_pos sum_xyc { (1 - Ŷ)^alpha log Ŷ                     if Y = 1
                         { (1 - Y)^beta Ŷ^alpha log(1 - Ŷ)         otherwise,
    N_pos the number of centres (Y = 1). (1 - Y)^beta spares the cells near a centre, whose
    Gaussian target says "almost an object"; Ŷ^alpha spares the easy background. With no
    centre in the batch the sum is not divided, as in the released code. Cells where ``ignore``
    (N, H, W) is True are left out of the sum, as SNIP leaves out its invalid objects.
    """
    _check_heatmaps(pred, target)
    check_number(alpha, "alpha", 0)
    check_number(beta, "beta", 0)
    kept = _kept_cells(pred, ignore)
    pos = target == 1
    pos_term = (1 - pred) ** alpha * torch.log(pred) * pos * kept
    neg_term = (1 - target) ** beta * pred**alpha * torch.log(1 - pred) * ~pos * kept
    n_pos = (pos * kept).sum()
    total = pos_term.sum() + neg_term.sum()
    return -total / n_pos if n_pos > 0 else -total


def heatmap_bce(
    pred: torch.Tensor, target: torch.Tensor, *, ignore: torch.Tensor | None = None
) -> torch.Tensor:
    """Plain binary cross-entropy against the Gaussian heat map, averaged over every cell (but the
    ``ignore``d ones): the baseline the focal loss improves on (no down-weighting of easy
    background, no penalty reduction)."""
    _check_heatmaps(pred, target)
    kept = _kept_cells(pred, ignore).expand_as(pred)
    bce = F.binary_cross_entropy(pred, target, reduction="none")
    return (bce * kept).sum() / kept.sum().clamp(min=1)


def _masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over the centre cells (Eqs. 2, 3): pred, target (N, 2, H, W), mask (N, H, W)."""
    m = mask.unsqueeze(1).float()
    return ((pred - target).abs() * m).sum() / (2 * m.sum() + 1e-4)


def centernet_loss(
    model: CenterNet,
    images: torch.Tensor,
    targets: CenterNetTargets,
    *,
    heat_loss: Callable[..., torch.Tensor] = focal_loss_centernet,
    size_weight: float = 0.1,
    offset_weight: float = 1.0,
) -> Loss:
    """L = L_k + lambda_size L_size + lambda_off L_off (Eq. 4; the paper's 0.1 and 1) on a batch.

    ``targets`` from ``centernet_targets``; ``heat_loss(pred, target, ignore=...)`` is the heat-map
    term, the focal loss by default (pass ``heatmap_bce`` for the plain baseline).
    """
    check_number(size_weight, "size_weight", 0)
    check_number(offset_weight, "offset_weight", 0)
    out = model(images)
    terms = {
        "heatmap": heat_loss(out.heatmap, targets.heatmap, ignore=targets.ignore),
        "size": size_weight * _masked_l1(out.size, targets.size, targets.mask),
        "offset": offset_weight * _masked_l1(out.offset, targets.offset, targets.mask),
    }
    return Loss(sum(terms.values()), terms)


def predict_heatmaps(model: CenterNet, images: torch.Tensor, *, batch_size: int = 250) -> CenterNetOutput:
    """The model's ``CenterNetOutput`` for images (N, 3, H, W), ``batch_size`` images at a time, in
    eval mode and without gradients (``core.evaluating``); the model's mode is left as it was."""
    check_tensor(images, "images", dim=4, dtype="float")
    check_positive_int(batch_size, "batch_size")
    device = model_device(model)
    with evaluating(model):
        parts = [model(x.to(device)) for x in images.split(batch_size)]
    return CenterNetOutput(*(torch.cat([p[j] for p in parts]).to(images.device) for j in range(3)))


# --- decoding --------------------------------------------------------------------------------------


def heatmap_peaks(heatmap: torch.Tensor) -> torch.Tensor:
    """The heat map with every cell that is not the maximum of its 3x3 neighbourhood set to 0.

    CenterNet's replacement for NMS (Sec. 4): a peak is a cell >= its 8 neighbours.
    """
    check_tensor(heatmap, "heatmap", dim=4, dtype="float")
    pooled = F.max_pool2d(heatmap, 3, stride=1, padding=1)
    return heatmap * (pooled == heatmap)


@torch.no_grad()
def decode_heatmap(
    output: CenterNetOutput,
    stride: int = 4,
    k: int = 100,
    peaks: bool = True,
    iou_threshold: float | None = None,
    conf_threshold: float = 0.0,
) -> list[dict[str, torch.Tensor]]:
    """Network output -> detections per image: ``boxes`` (xyxy pixels), ``scores``, ``labels``.

    Keep the heat map's 3x3 peaks (``peaks=False`` keeps every cell, to see what the max-pool
    does), take the top ``k`` over classes and cells, and read each box off the offset and size
    heads: centre (x + dx, y + dy), box centre ± size / 2, times the stride. ``iou_threshold``
    adds per-class NMS (CenterNet needs none); scores <= ``conf_threshold`` are dropped.
    """
    heat, offset, size = output
    check_tensor(heat, "heatmap", dim=4, dtype="float")
    N, C, H, W = heat.shape
    for name, t in (("offset", offset), ("size", size)):
        check_tensor(t, name, dim=4, dtype="float")
        if t.shape != (N, 2, H, W):
            raise ValueError(f"{name} must have shape (N, 2, H, W) = {(N, 2, H, W)}, got {tuple(t.shape)}")
    check_positive_int(stride, "stride")
    check_positive_int(k, "k")
    if iou_threshold is not None:
        check_number(iou_threshold, "iou_threshold", 0, 1)
    if peaks:
        heat = heatmap_peaks(heat)
    scores, index = heat.reshape(N, -1).topk(min(k, C * H * W), dim=1)  # (N, K) over (c, y, x)
    label, cell = index // (H * W), index % (H * W)
    ys, xs = (cell // W).float(), (cell % W).float()
    gather = cell.unsqueeze(1).expand(N, 2, -1)
    dxy = offset.reshape(N, 2, -1).gather(2, gather)  # (N, 2, K)
    wh = size.reshape(N, 2, -1).gather(2, gather)
    cx, cy = xs + dxy[:, 0], ys + dxy[:, 1]
    w, h = wh[:, 0].clamp(min=0), wh[:, 1].clamp(min=0)
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * stride  # (N, K, 4)
    limit = torch.tensor([W, H, W, H], dtype=boxes.dtype) * stride
    boxes = torch.minimum(boxes.clamp(min=0), limit)
    out = []
    for i in range(N):
        keep = (scores[i] > conf_threshold).nonzero().flatten()
        b, s, lab = boxes[i, keep], scores[i, keep], label[i, keep]
        if iou_threshold is not None and len(s):
            order = nms(b, s, iou_threshold, labels=lab)
            b, s, lab = b[order], s[order], lab[order]
        out.append({"boxes": b, "scores": s, "labels": lab})
    return out
