"""The anchor-free notebook's claims hold for what they should and fail each known-bad case: a
detector no better than its baseline, decoding without the max-pool, the same heat-map loss twice."""

import pytest
import torch

from toyalgos.detection import CenterNetOutput, centernet_targets, decode_heatmap, make_shapes
from toyalgos.detection.claims import ap50_gain_at_least, peaks_match_nms, recall_ratio_at_least


def _g(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def data():
    return make_shapes(60, generator=_g(4))


def _truth(data, every=1):
    """Ground truth as detections (score 0.9), keeping every ``every``-th object of each image."""
    return [
        {"boxes": b[::every], "labels": lab[::every], "scores": torch.full((len(b[::every]),), 0.9)}
        for b, lab in zip(data.boxes, data.labels, strict=True)
    ]


def _smeared_output(data):
    """Targets as network output, every image's heat scaled by its own confidence in [0.05, 1] and
    every cell predicting the image's largest box size, as a trained size head does around a centre:
    the cells around a confident peak become duplicates that outrank the peaks of other images."""
    t = centernet_targets(data.boxes, data.labels, C=3, image_size=64)
    confidence = 0.05 + 0.95 * torch.rand(len(data), 1, 1, 1, generator=_g(5))
    size = t.size.amax(dim=(2, 3), keepdim=True).expand_as(t.size).clone()
    size[t.mask.unsqueeze(1).expand_as(size)] = t.size[t.mask.unsqueeze(1).expand_as(size)]
    return CenterNetOutput((t.heatmap * confidence).clamp(1e-4, 1 - 1e-4), t.offset, size)


def test_recall_ratio_at_least_holds_for_a_detector_that_finds_twice_as_many(data):
    assert recall_ratio_at_least(_truth(data), _truth(data, every=2), data.targets()).holds


def test_recall_ratio_at_least_fails_on_a_detector_no_better_than_its_baseline(data):
    claim = recall_ratio_at_least(_truth(data, every=2), _truth(data, every=2), data.targets())
    assert not claim.holds and claim.value == pytest.approx(1.0)


def test_peaks_match_nms_holds_for_max_pool_peaks(data):
    out = _smeared_output(data)
    claim = peaks_match_nms(decode_heatmap(out), decode_heatmap(out, iou_threshold=0.5), data.targets())
    assert claim.holds and claim.value < 1e-9


def test_peaks_match_nms_fails_on_decoding_without_the_max_pool(data):
    out = _smeared_output(data)
    raw = decode_heatmap(out, peaks=False)
    claim = peaks_match_nms(raw, decode_heatmap(out, peaks=False, iou_threshold=0.5), data.targets())
    assert not claim.holds  # the duplicates around confident peaks outrank weaker objects


def test_ap50_gain_at_least_holds_against_a_detector_that_misses_half(data):
    assert ap50_gain_at_least(_truth(data), _truth(data, every=2), data.targets()).holds


def test_ap50_gain_at_least_fails_on_the_same_detector_twice(data):
    claim = ap50_gain_at_least(_truth(data), _truth(data), data.targets())
    assert not claim.holds and claim.value == 0.0
