"""Object detection: boxes, NMS, mAP, synthetic shapes and a YOLO v1 grid detector."""

from . import claims
from .boxes import (
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
from .data import CLASSES, Shapes, hflip, make_shapes
from .metrics import COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS, mean_average_precision, recall_at_iou
from .plot import class_legend, draw_boxes, draw_grid, show_image
from .yolo import (
    YOLOv1,
    cell_boxes,
    decode,
    encode_targets,
    kept_objects,
    predict,
    yolo_loss,
    yolo_loss_terms,
)

__all__ = [
    "BOX_FORMATS",
    "CLASSES",
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_THRESHOLDS",
    "Shapes",
    "YOLOv1",
    "box_area",
    "box_convert",
    "box_iou",
    "box_iou_elementwise",
    "cell_boxes",
    "check_xyxy",
    "claims",
    "class_legend",
    "decode",
    "denormalize_boxes",
    "draw_boxes",
    "draw_grid",
    "encode_targets",
    "hflip",
    "kept_objects",
    "make_shapes",
    "mean_average_precision",
    "nms",
    "normalize_boxes",
    "predict",
    "recall_at_iou",
    "show_image",
    "yolo_loss",
    "yolo_loss_terms",
]
