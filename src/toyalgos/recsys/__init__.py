"""Recommendation and ads ranking: synthetic click logs, CTR models and their metrics."""

from . import claims
from .auction import AuctionOutcome, second_price_auction
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
    check_dense,
    fm_pairwise,
    mlp,
    predict_ctr,
)
from .data import DENSE_FIELDS, PAIRS, SPARSE_FIELDS, ClickLog, ClickModel, make_click_log
from .metrics import (
    ReliabilityCurve,
    auc,
    calibration_ratio,
    expected_calibration_error,
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
    "AuctionOutcome",
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
    "expected_calibration_error",
    "check_dense",
    "claims",
    "fm_pairwise",
    "group_auc",
    "log_loss",
    "make_click_log",
    "mlp",
    "normalized_entropy",
    "predict_ctr",
    "reliability_curve",
    "second_price_auction",
]
