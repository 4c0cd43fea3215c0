"""The multi-scale notebook's claims hold for what they should and fail each known-bad case: a
detector no better than its baseline on small objects, one that misses the small objects the
reference finds, a single-scale detector that already finds every size."""

import pytest
import torch

from toyalgos.detection import make_shapes
from toyalgos.detection.claims import (
    ap_small_ratio_at_least,
    far_size_recall_at_most,
    recall_share_at_least,
)

SMALL, LARGE = (0.0, 12.0**2), (24.0**2, 1e10)


@pytest.fixture(scope="module")
def data():
    return make_shapes(
        60, 128, n_objects=(2, 5), size_range=(4.0, 48.0), generator=torch.Generator().manual_seed(7)
    )


def _truth(data, keep_small=1.0, keep_large=1.0):
    """Ground truth as detections (score 0.9), keeping every object but a share of the small (side
    below 12 px) and large (24 px and up) ones, chosen by position in the image."""
    out = []
    for b, lab in zip(data.boxes, data.labels, strict=True):
        side = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).sqrt()
        rank = torch.arange(len(b)) / max(len(b), 1)
        keep = (
            ((side < 12) & (rank < keep_small))
            | ((side >= 24) & (rank < keep_large))
            | ((side >= 12) & (side < 24))
        )
        out.append({"boxes": b[keep], "labels": lab[keep], "scores": torch.full((int(keep.sum()),), 0.9)})
    return out


def test_ap_small_ratio_at_least_holds_against_a_detector_that_misses_small_objects(data):
    assert ap_small_ratio_at_least(_truth(data), _truth(data, keep_small=0.4), data.targets(), SMALL).holds


def test_ap_small_ratio_at_least_fails_on_a_detector_no_better_than_its_baseline(data):
    claim = ap_small_ratio_at_least(
        _truth(data, keep_small=0.5), _truth(data, keep_small=0.5), data.targets(), SMALL
    )
    assert not claim.holds and claim.value == pytest.approx(1.0)


def test_recall_share_at_least_holds_when_as_good_or_better_than_the_reference(data):
    assert recall_share_at_least(_truth(data), _truth(data), data.targets(), SMALL).holds
    assert recall_share_at_least(_truth(data), _truth(data, keep_small=0.5), data.targets(), SMALL).holds


def test_recall_share_at_least_fails_on_a_detector_that_misses_the_small_objects(data):
    claim = recall_share_at_least(_truth(data, keep_small=0.0), _truth(data), data.targets(), SMALL)
    assert not claim.holds and claim.value == 0.0


def test_far_size_recall_at_most_holds_when_the_single_scale_misses_large_objects(data):
    assert far_size_recall_at_most(_truth(data, keep_large=0.2), _truth(data), data.targets(), LARGE).holds


def test_far_size_recall_at_most_fails_on_a_single_scale_detector_that_finds_every_size(data):
    claim = far_size_recall_at_most(_truth(data), _truth(data), data.targets(), LARGE)
    assert not claim.holds and claim.value == pytest.approx(1.0)
