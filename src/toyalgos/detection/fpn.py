"""Feature Pyramid Network (Lin et al. 2017, "Feature Pyramid Networks for Object Detection",
arXiv:1612.03144) and the assignment of objects to its levels.

The backbone's stages C_k (strides 2^k) are fine but shallow or coarse but deep. FPN's top-down
pathway gives every stride deep features: P_top = lateral(C_top), then going down,
P_k = lateral(C_k) + upsample_2x(P_{k+1}), each followed by a 3x3 "smoothing" convolution (Sec. 3,
Fig. 3). One head, shared by all levels, then runs on every P_k; each object is the target of the
level that suits its size (Eq. 1 for RoIs; FCOS assigns by size ranges instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core import Loss, evaluating, model_device
from ..core.checks import check_int, check_number, check_positive_int
from ..nn import ConvBackbone
from .boxes import check_xyxy, nms
from .centernet import (
    HEAT_BIAS,
    HEAT_CLAMP,
    CenterNetOutput,
    CenterNetTargets,
    centernet_targets,
    decode_heatmap,
    focal_loss_centernet,
)


class FPN(nn.Module):
    """Top-down pathway with lateral connections over feature maps given finest first.

    ``FPN(in_channels, width)(features)`` takes maps (N, in_channels[k], H_k, W_k), each half the
    size of the one before (as ``ConvBackbone.features`` returns them), and returns as many maps
    (N, width, H_k, W_k): lateral 1x1 convolutions, nearest-neighbour 2x upsampling added from the
    top down, and a 3x3 convolution on each merged map. The paper uses width 256.
    """

    def __init__(self, in_channels: Sequence[int], width: int = 64):
        super().__init__()
        in_channels = tuple(in_channels)
        if not in_channels:
            raise ValueError("in_channels must be a non-empty sequence of positive ints, got ()")
        for k, c in enumerate(in_channels):
            check_positive_int(c, f"in_channels[{k}]")
        check_positive_int(width, "width")
        self.in_channels, self.width = in_channels, width
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.smooth = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in in_channels)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} feature maps, got {len(features)}")
        for k, (x, c) in enumerate(zip(features, self.in_channels, strict=True)):
            if x.dim() != 4 or x.shape[1] != c:
                raise ValueError(f"features[{k}] must have shape (N, {c}, H, W), got {tuple(x.shape)}")
            if k and x.shape[-2:] != tuple(s // 2 for s in features[k - 1].shape[-2:]):
                raise ValueError(
                    f"each map must be half the size of the one before: features[{k - 1}] is "
                    f"{tuple(features[k - 1].shape[-2:])}, features[{k}] is {tuple(x.shape[-2:])}"
                )
        merged = [self.lateral[-1](features[-1])]
        for k in range(len(features) - 2, -1, -1):
            merged.insert(0, self.lateral[k](features[k]) + F.interpolate(merged[0], scale_factor=2.0))
        return [smooth(p) for smooth, p in zip(self.smooth, merged, strict=True)]


def assign_levels(
    boxes: torch.Tensor,
    k_min: int,
    k_max: int,
    canonical_size: float = 224.0,
    canonical_level: int = 4,
) -> torch.Tensor:
    """FPN's level of each box (n, 4, xyxy): k = floor(k0 + log2(sqrt(w h) / 224)), clamped to
    [k_min, k_max] (Lin et al. 2017, Eq. 1; k0 = 4).

    A box twice as large goes one level up (stride x 2). ``canonical_size`` is the size that maps
    to ``canonical_level``: ImageNet's 224 in the paper; a toy rescales it to its own images. As in
    torchvision's ``LevelMapper``, 1e-6 is added inside the floor so that exact powers of two are
    not sent one level down by rounding. Returns int64 levels (n,).
    """
    boxes = check_xyxy(boxes, "boxes")
    check_int(k_min, "k_min")
    check_int(k_max, "k_max", low=k_min)
    check_number(canonical_size, "canonical_size", 0, low_open=True)
    check_int(canonical_level, "canonical_level")
    size = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
    k = torch.floor(canonical_level + torch.log2(size / canonical_size) + 1e-6)
    return k.clamp(k_min, k_max).long()


# --- a heat-map detector on every level --------------------------------------------------------------


class FPNCenterNet(nn.Module):
    """A ``ConvBackbone``, an ``FPN`` over its stages and one CenterNet head shared by the levels.

    ``forward`` returns a ``CenterNetOutput`` per level in ``levels`` (indices of the backbone's
    stages, finest first; all by default), at strides ``patch * 2**level`` (``self.strides``).
    Sizes and offsets are in each level's cells, so one head serves every level (as FCOS shares
    its head). With a single level it is the single-level baseline of the same network.
    """

    def __init__(
        self,
        C: int = 3,
        channels: Sequence[int] = (16, 32, 64),
        patch: int = 4,
        depth: int = 1,
        width: int = 32,
        levels: Sequence[int] | None = None,
    ):
        super().__init__()
        check_positive_int(C, "C")
        self.backbone = ConvBackbone(channels, patch=patch, depth=depth)
        self.fpn = FPN(channels, width)
        n = len(self.backbone.channels)
        self.levels = (
            tuple(range(n)) if levels is None else tuple(check_int(k, "level", 0, n - 1) for k in levels)
        )
        if not self.levels:
            raise ValueError("levels must name at least one of the backbone's stages, got ()")
        self.strides = tuple(patch * 2**k for k in self.levels)
        self.C = C
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, C + 4, 1)
        )
        with torch.no_grad():
            self.head[-1].bias[:C] = HEAT_BIAS
            self.head[-1].bias[C:] = 0.0

    def forward(self, images: torch.Tensor) -> list[CenterNetOutput]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
        maps = self.fpn(self.backbone.features(images))
        outputs = []
        for k in self.levels:
            out = self.head(maps[k])  # (N, C + 4, H_k, W_k)
            heat = torch.sigmoid(out[:, : self.C]).clamp(HEAT_CLAMP, 1 - HEAT_CLAMP)
            outputs.append(CenterNetOutput(heat, out[:, self.C : self.C + 2], out[:, self.C + 2 :]))
        return outputs


def fpn_targets(
    boxes: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    C: int,
    image_size: int,
    strides: Sequence[int],
    base_size: float,
) -> list[CenterNetTargets]:
    """``centernet_targets`` per level: an object of size sqrt(w h) goes to level
    ``assign_levels(..., canonical_size=base_size, canonical_level=0)``, i.e. sizes in
    [base 2^k, base 2^(k+1)) to the k-th of ``strides``, smaller ones to the first, larger to the last.
    """
    strides = [check_positive_int(s, "stride") for s in strides]
    if not strides:
        raise ValueError("strides must be a non-empty sequence of positive ints, got []")
    levels = [
        assign_levels(b.reshape(-1, 4), 0, len(strides) - 1, canonical_size=base_size, canonical_level=0)
        for b in boxes
    ]
    return [
        centernet_targets(
            [b[lv == k] for b, lv in zip(boxes, levels, strict=True)],
            [lab[lv == k] for lab, lv in zip(labels, levels, strict=True)],
            C,
            image_size,
            stride,
        )
        for k, stride in enumerate(strides)
    ]


def fpn_centernet_loss(
    model: FPNCenterNet,
    images: torch.Tensor,
    targets: Sequence[CenterNetTargets],
    *,
    size_weight: float = 0.1,
    offset_weight: float = 1.0,
) -> Loss:
    """CenterNet's loss (Eq. 4) over all levels at once: the focal loss of the heat maps of every
    level laid side by side (so that it is divided by the number of centres of all levels) and the
    masked L1 of sizes and offsets averaged over all centres. ``targets`` from ``fpn_targets``."""
    check_number(size_weight, "size_weight", 0)
    check_number(offset_weight, "offset_weight", 0)
    outputs = model(images)
    if len(outputs) != len(targets):
        raise ValueError(f"the model has {len(outputs)} levels but targets has {len(targets)}")

    def side_by_side(maps: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([m.flatten(2) for m in maps], dim=2).unsqueeze(2)  # (N, ch, 1, sum H_k W_k)

    heat = focal_loss_centernet(
        side_by_side([o.heatmap for o in outputs]), side_by_side([t.heatmap for t in targets])
    )
    mask = side_by_side([t.mask.unsqueeze(1).float() for t in targets])  # (N, 1, 1, L)
    n = 2 * mask.sum() + 1e-4

    def l1(field: str) -> torch.Tensor:
        pred = side_by_side([getattr(o, field) for o in outputs])
        target = side_by_side([getattr(t, field) for t in targets])
        return ((pred - target).abs() * mask).sum() / n

    terms = {"heatmap": heat, "size": size_weight * l1("size"), "offset": offset_weight * l1("offset")}
    return Loss(sum(terms.values()), terms)


@torch.no_grad()
def decode_levels(
    outputs: Sequence[CenterNetOutput],
    strides: Sequence[int],
    k: int = 100,
    iou_threshold: float | None = None,
) -> list[dict[str, torch.Tensor]]:
    """``decode_heatmap`` on every level at its stride, the levels' detections pooled per image and
    the top ``k`` by score kept; ``iou_threshold`` adds per-class NMS across levels."""
    if len(outputs) != len(strides):
        raise ValueError(f"got {len(outputs)} levels but {len(strides)} strides")
    per_level = [decode_heatmap(out, stride, k) for out, stride in zip(outputs, strides, strict=True)]
    merged = []
    for dets in zip(*per_level, strict=True):
        boxes = torch.cat([d["boxes"] for d in dets])
        scores = torch.cat([d["scores"] for d in dets])
        labels = torch.cat([d["labels"] for d in dets])
        if iou_threshold is not None and len(scores):
            order = nms(boxes, scores, iou_threshold, labels=labels)
        else:
            order = torch.argsort(scores, descending=True, stable=True)
        order = order[:k]
        merged.append({"boxes": boxes[order], "scores": scores[order], "labels": labels[order]})
    return merged


def conv_macs(model: nn.Module, image_shape: Sequence[int]) -> int:
    """Multiply-adds of every ``nn.Conv2d`` of ``model`` on one image of shape (3, H, W): per layer,
    output elements x (input channels / groups) x kernel area. Counted with forward hooks on a
    zero image, in eval mode without gradients; the model's mode is left as it was."""
    counts = []

    def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        counts.append(output[0].numel() * layer.in_channels // layer.groups * kernel)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with evaluating(model):
            model(torch.zeros(1, *image_shape, device=model_device(model)))
    finally:
        for h in handles:
            h.remove()
    return int(sum(counts))
