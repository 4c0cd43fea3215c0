"""Object detection: boxes, NMS, mAP, synthetic shapes and a YOLO v1 grid detector."""

from .boxes import BOX_FORMATS, box_area, box_convert, box_iou, denormalize_boxes, nms, normalize_boxes
from .data import CLASSES, Shapes, make_shapes
from .metrics import COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS, mean_average_precision
from .yolo import YOLOv1, cell_boxes, decode, encode_targets, yolo_loss

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
    "cell_boxes",
    "decode",
    "denormalize_boxes",
    "encode_targets",
    "make_shapes",
    "mean_average_precision",
    "nms",
    "normalize_boxes",
    "yolo_loss",
]
