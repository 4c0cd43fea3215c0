"""Recommendation and ads ranking: synthetic click logs, CTR models and their metrics."""

from .ctr import (
    FFM,
    FM,
    LR,
    CrossNetV2,
    DCNv2,
    DeepFM,
    FieldEmbedding,
    WideAndDeep,
    bce_loss,
    fm_pairwise,
    predict_ctr,
)
from .data import DENSE_FIELDS, PAIRS, SPARSE_FIELDS, ClickLog, ClickModel, make_click_log
from .metrics import (
    ReliabilityCurve,
    auc,
    calibration_ratio,
    group_auc,
    log_loss,
    normalized_entropy,
    reliability_curve,
)

__all__ = [
    "DENSE_FIELDS",
    "FFM",
    "FM",
    "LR",
    "PAIRS",
    "SPARSE_FIELDS",
    "ClickLog",
    "ClickModel",
    "CrossNetV2",
    "DCNv2",
    "DeepFM",
    "FieldEmbedding",
    "ReliabilityCurve",
    "WideAndDeep",
    "auc",
    "bce_loss",
    "calibration_ratio",
    "fm_pairwise",
    "group_auc",
    "log_loss",
    "make_click_log",
    "normalized_entropy",
    "predict_ctr",
    "reliability_curve",
]
