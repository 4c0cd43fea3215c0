"""YOLO v1 (Redmon et al. 2016, "You Only Look Once", arXiv:1506.02640) at toy scale.

The image is divided into an S x S grid. The cell that holds an object's centre is
responsible for it. Each cell predicts B boxes (x, y, sqrt w, sqrt h, confidence) and one
set of C class probabilities: an output tensor S x S x (5B + C). Here x, y are the centre's
offset inside the cell and w, h are relative to the image, all in [0, 1]; the network's
outputs pass through a sigmoid (x, y, sqrt w, sqrt h, confidence) and a softmax (classes),
where the paper's last layer is linear, so that a short CPU training stays well-behaved.
The loss is the paper's sum-squared error (Eq. 3): ``yolo_loss_terms`` writes it on the
network's output, ``yolo_loss(model, images, targets)`` is what ``core.train`` minimises.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..core import Loss, evaluating, model_device
from ..core.checks import check_number, check_positive_int, check_tensor
from ..nn import ConvBackbone
from .boxes import box_iou_elementwise, nms


def _check_grid(S: int, B: int, C: int) -> None:
    for name, value in [("S", S), ("B", B), ("C", C)]:
        check_positive_int(value, name)


class YOLOv1(nn.Module):
    """A tiny convolutional backbone (``toyalgos.nn.ConvBackbone``) and the YOLO v1 head.

    The backbone maps the image to one feature vector per grid cell, so its stride
    ``patch * 2**(len(channels) - 1)`` must equal ``image_size / S``; a 1x1 convolution maps
    each vector to the cell's 5B + C outputs. ``forward`` returns (N, S, S, 5B + C) with the
    activations applied (``predict`` runs it for evaluation). The default is an 8x8 grid of
    8-pixel cells on 64x64 images.
    """

    def __init__(
        self,
        S: int = 8,
        B: int = 2,
        C: int = 3,
        image_size: int = 64,
        channels: Sequence[int] = (32, 64),
        patch: int = 4,
        depth: int = 2,
    ):
        super().__init__()
        _check_grid(S, B, C)
        self.backbone = ConvBackbone(channels, patch=patch, depth=depth)
        if image_size != S * self.backbone.stride:
            raise ValueError(
                f"image_size must be S * patch * 2**(len(channels) - 1) = {S * self.backbone.stride}, "
                f"got {image_size}"
            )
        self.S, self.B, self.C, self.image_size = S, B, C, image_size
        self.head = nn.Conv2d(self.backbone.channels[-1], 5 * B + C, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(
                f"images must have shape (N, 3, {self.image_size}, {self.image_size}), "
                f"got {tuple(images.shape)}"
            )
        out = self.head(self.backbone(images)).permute(0, 2, 3, 1)  # (N, S, S, 5B + C)
        boxes = torch.sigmoid(out[..., : 5 * self.B])
        classes = torch.softmax(out[..., 5 * self.B :], dim=-1)
        return torch.cat([boxes, classes], dim=-1)


def _assign_cells(
    boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], S: int, C: int, image_size: int
) -> dict[str, torch.Tensor]:
    """YOLO's target assignment for all objects of all images at once (see ``encode_targets``).

    Returns, per object (concatenated over images): ``image``, ``cell`` (col, row), ``offset``
    (the centre inside the cell), ``wh`` (relative), ``label`` and ``kept`` (True for the one
    object its cell is responsible for).
    """
    _check_grid(S, 1, C)
    if len(boxes) != len(labels):
        raise ValueError(f"got {len(boxes)} box tensors but {len(labels)} label tensors")
    counts = [len(b) for b in boxes]
    all_boxes = torch.cat([b.reshape(-1, 4) for b in boxes]).float() if boxes else torch.zeros(0, 4)
    all_labels = torch.cat([lab.reshape(-1) for lab in labels]).long() if labels else torch.zeros(0).long()
    if (all_boxes[:, 2:] < all_boxes[:, :2]).any():
        raise ValueError("boxes must be xyxy with x2 >= x1 and y2 >= y1")
    if ((all_labels < 0) | (all_labels >= C)).any():
        raise ValueError(f"labels must be in [0, {C}), got values {all_labels.unique().tolist()}")
    image = torch.repeat_interleave(torch.arange(len(boxes)), torch.tensor(counts, dtype=torch.long))
    xy = (all_boxes[:, :2] + all_boxes[:, 2:]) / 2 / image_size  # centre, relative
    wh = (all_boxes[:, 2:] - all_boxes[:, :2]) / image_size
    cell = (xy * S).floor().clamp(0, S - 1).long()  # (col, row)
    # One object per cell: sort by (cell key, area) and keep the last (largest) of each key.
    key = (image * S + cell[:, 1]) * S + cell[:, 0]
    order = torch.argsort(wh.prod(1), stable=True)
    order = order[torch.argsort(key[order], stable=True)]
    _, per_key = torch.unique_consecutive(key[order], return_counts=True)
    kept = torch.zeros(len(key), dtype=torch.bool)
    kept[order[torch.cumsum(per_key, 0) - 1]] = True
    return {
        "image": image,
        "cell": cell,
        "offset": xy * S - cell,
        "wh": wh,
        "label": all_labels,
        "kept": kept,
    }


def encode_targets(
    boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], S: int, C: int, image_size: int
) -> torch.Tensor:
    """Ground truth -> (N, S, S, 5 + C): [x_off, y_off, w, h, has_object, one-hot class] per cell.

    ``boxes[i]`` is (k_i, 4) xyxy in pixels. The cell containing a box's centre is
    responsible for it; when several centres fall in one cell, the cell keeps the largest
    box (YOLO v1 can hold one object per cell: the others are lost. Which one is kept is this
    library's choice; darknet shuffles the boxes and keeps the first). ``kept_objects`` says
    which objects made it.
    """
    a = _assign_cells(boxes, labels, S, C, image_size)
    target = torch.zeros(len(boxes), S, S, 5 + C)
    k = a["kept"]
    i, r, c = a["image"][k], a["cell"][k, 1], a["cell"][k, 0]
    target[i, r, c, 0:2] = a["offset"][k]
    target[i, r, c, 2:4] = a["wh"][k]
    target[i, r, c, 4] = 1.0
    target[i, r, c, 5 + a["label"][k]] = 1.0
    return target


def kept_objects(
    boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], S: int, C: int, image_size: int
) -> list[torch.Tensor]:
    """Per image, a bool (k_i,): is the object a training target, i.e. the one its cell keeps?

    The objects marked False share their cell with a larger one and are invisible to the loss.
    """
    a = _assign_cells(boxes, labels, S, C, image_size)
    return list(a["kept"].split([len(b) for b in boxes]))


def cell_boxes(xywh: torch.Tensor, S: int) -> torch.Tensor:
    """(..., S, S, [x_off, y_off, w, h]) -> relative xyxy boxes, using each cell's position."""
    rows = torch.arange(S, dtype=xywh.dtype, device=xywh.device).view(S, 1)
    cols = torch.arange(S, dtype=xywh.dtype, device=xywh.device).view(1, S)
    cx = (cols + xywh[..., 0]) / S
    cy = (rows + xywh[..., 1]) / S
    w, h = xywh[..., 2], xywh[..., 3]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def _check_output(pred: torch.Tensor, B: int) -> int:
    """C, after checking that ``pred`` is a YOLO output (N, S, S, 5B + C) with C >= 1."""
    check_positive_int(B, "B")
    check_tensor(pred, "pred", dtype="float")
    if pred.dim() != 4 or pred.shape[-1] <= 5 * B:
        raise ValueError(f"pred must have shape (N, S, S, 5B + C) with 5B = {5 * B}, got {tuple(pred.shape)}")
    return pred.shape[-1] - 5 * B


def _check_loss_inputs(
    pred: torch.Tensor, target: torch.Tensor, B: int, lambda_coord: float, lambda_noobj: float
) -> None:
    """Raise unless ``pred`` (N, S, S, 5B + C), without NaN, and ``target`` (N, S, S, 5 + C) agree."""
    check_positive_int(B, "B")
    check_tensor(pred, "pred", dtype="float")
    check_tensor(target, "target", dtype="float")
    check_number(lambda_coord, "lambda_coord", 0)
    check_number(lambda_noobj, "lambda_noobj", 0)
    if pred.dim() != 4 or target.shape[:3] != pred.shape[:3]:
        raise ValueError(
            f"pred (N, S, S, 5B + C) and target (N, S, S, 5 + C) disagree: "
            f"{tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    C = target.shape[-1] - 5
    if pred.shape[-1] != 5 * B + C:
        raise ValueError(f"pred has {pred.shape[-1]} channels, expected 5B + C = {5 * B + C}")
    if torch.isnan(pred).any():
        raise ValueError("pred contains NaN")


def yolo_loss_terms(
    pred: torch.Tensor,
    target: torch.Tensor,
    B: int,
    *,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
) -> dict[str, torch.Tensor]:
    """The five terms of YOLO v1's loss (Eq. 3) on the network's output, summed over cells and
    averaged over images.

    ``pred`` is (N, S, S, 5B + C), ``target`` (N, S, S, 5 + C) from ``encode_targets``. In a
    cell with an object, the responsible predictor is the one of the B boxes with the highest
    current IoU with the ground truth; it gets the coordinate terms (x, y and sqrt w, sqrt h,
    weighted by lambda_coord) and a confidence target equal to that IoU. Every other predictor
    gets confidence target 0, weighted by lambda_noobj. Class probabilities are regressed to the
    one-hot class in object cells only.
    """
    _check_loss_inputs(pred, target, B, lambda_coord, lambda_noobj)
    N, S = pred.shape[0], pred.shape[1]
    p_boxes = pred[..., : 5 * B].reshape(N, S, S, B, 5)
    p_xy, p_sqrt_wh, p_conf = p_boxes[..., :2], p_boxes[..., 2:4], p_boxes[..., 4]
    p_cls = pred[..., 5 * B :]
    obj = target[..., 4]  # (N, S, S)
    t_xywh = target[..., :4]

    t_boxes = cell_boxes(t_xywh, S).unsqueeze(-2)  # (N, S, S, 1, 4) against (N, S, S, B, 4)
    iou = box_iou_elementwise(_pred_boxes(p_xy, p_sqrt_wh, S), t_boxes).detach()
    best = iou.argmax(-1, keepdim=True)  # (N, S, S, 1)
    resp = torch.zeros_like(iou).scatter_(-1, best, 1.0) * obj.unsqueeze(-1)  # 1_ij^obj

    t_xy, t_sqrt_wh = t_xywh[..., :2].unsqueeze(-2), t_xywh[..., 2:4].sqrt().unsqueeze(-2)
    terms = {
        "xy": lambda_coord * (resp.unsqueeze(-1) * (p_xy - t_xy) ** 2).sum(),
        "wh": lambda_coord * (resp.unsqueeze(-1) * (p_sqrt_wh - t_sqrt_wh) ** 2).sum(),
        "conf_obj": (resp * (p_conf - iou) ** 2).sum(),
        "conf_noobj": lambda_noobj * ((1 - resp) * p_conf**2).sum(),
        "class": (obj.unsqueeze(-1) * (p_cls - target[..., 5:]) ** 2).sum(),
    }
    return {k: v / N for k, v in terms.items()}


def yolo_loss(
    model: YOLOv1,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
) -> Loss:
    """YOLO v1's loss (Eq. 3) of ``model`` on a batch: images (N, 3, H, W) and their
    ``encode_targets`` (N, S, S, 5 + C). ``total`` is the sum of the five ``yolo_loss_terms``.

    Train with ``train(model, partial(yolo_loss, lambda_noobj=...), data)``; ``B`` is the model's.
    """
    pred = model(images)  # (N, S, S, 5B + C)
    terms = yolo_loss_terms(pred, targets, model.B, lambda_coord=lambda_coord, lambda_noobj=lambda_noobj)
    return Loss(sum(terms.values()), terms)


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 250) -> torch.Tensor:
    """The model's output for images (N, 3, H, W), ``batch_size`` images at a time, in eval mode
    and without gradients (``core.evaluating``): the model's train/eval mode is left as it was.

    For ``YOLOv1`` the output is (N, S, S, 5B + C), ready for ``decode``. Images move to the
    model's device; the output comes back on the images' device.
    """
    check_tensor(images, "images", dim=4, dtype="float")
    check_positive_int(batch_size, "batch_size")
    device = model_device(model)
    with evaluating(model):
        return torch.cat([model(x.to(device)).to(images.device) for x in images.split(batch_size)])


def _pred_boxes(p_xy: torch.Tensor, p_sqrt_wh: torch.Tensor, S: int) -> torch.Tensor:
    """Predicted boxes (N, S, S, B, 4) as relative xyxy: ``cell_boxes`` with the B axis moved aside."""
    xywh = torch.cat([p_xy, p_sqrt_wh**2], dim=-1).movedim(-2, 1)  # (N, B, S, S, 4)
    return cell_boxes(xywh, S).movedim(1, -2)


@torch.no_grad()
def decode(
    pred: torch.Tensor,
    B: int,
    image_size: int,
    conf_threshold: float = 0.2,
    iou_threshold: float | None = 0.5,
    max_detections: int = 100,
) -> list[dict[str, torch.Tensor]]:
    """Network output -> detections per image: ``boxes`` (xyxy pixels), ``scores``, ``labels``.

    Class-specific confidence = Pr(class | object) x box confidence, for each of the B boxes
    and C classes of every cell; pairs below ``conf_threshold`` are dropped, then NMS per
    class at ``iou_threshold`` (``iou_threshold=None`` skips NMS).
    """
    C = _check_output(pred, B)
    N, S = pred.shape[0], pred.shape[1]
    p_boxes = pred[..., : 5 * B].reshape(N, S, S, B, 5)
    xyxy = (_pred_boxes(p_boxes[..., :2], p_boxes[..., 2:4], S) * image_size).clamp(0, image_size)
    scores = p_boxes[..., 4:5] * pred[..., 5 * B :].unsqueeze(-2)  # (N, S, S, B, C)
    out = []
    for i in range(N):
        s = scores[i].reshape(-1, C)
        box_idx, label = (s > conf_threshold).nonzero(as_tuple=True)
        boxes, sc = xyxy[i].reshape(-1, 4)[box_idx], s[box_idx, label]
        if iou_threshold is not None and len(sc):
            keep = nms(boxes, sc, iou_threshold, labels=label)
        else:
            keep = torch.argsort(sc, descending=True, stable=True)
        keep = keep[:max_detections]
        out.append({"boxes": boxes[keep], "scores": sc[keep], "labels": label[keep]})
    return out
