import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve as sk_roc_curve

from toyalgos.face import (
    angle_stats,
    best_threshold,
    class_centres,
    cosine_similarity,
    roc_curve,
    tar_at_far,
    verification_accuracy,
)
from toyalgos.face.claims import intra_class_angle_drop, tar_gain


def _scores(n=4000, seed=0, gap=1.5, ties=False):
    g = torch.Generator().manual_seed(seed)
    same = torch.rand(n, generator=g) < 0.5
    scores = torch.randn(n, generator=g, dtype=torch.float64) + gap * same
    if ties:
        scores = torch.round(scores * 4) / 4
    return scores, same


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_roc_curve_matches_sklearn(seed, ties):
    scores, same = _scores(seed=seed, ties=ties)
    fpr, tpr, thr = sk_roc_curve(same.numpy(), scores.numpy(), drop_intermediate=False)
    ours = roc_curve(scores, same)
    np.testing.assert_allclose(ours.far.numpy(), fpr, atol=1e-12)
    np.testing.assert_allclose(ours.tar.numpy(), tpr, atol=1e-12)
    np.testing.assert_allclose(ours.thresholds.numpy()[1:], thr[1:], atol=1e-12)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("far", [1e-3, 1e-2, 0.1, 0.5])
def test_tar_at_far_matches_sklearn(far, ties):
    scores, same = _scores(20000, ties=ties)
    fpr, tpr, _ = sk_roc_curve(same.numpy(), scores.numpy())
    assert tar_at_far(scores, same, far) == pytest.approx(tpr[fpr <= far].max(), abs=1e-12)


def test_tar_at_far_without_ties_is_the_impostor_quantile_rule():
    scores, same = _scores(20000, seed=3)
    impostor = np.sort(scores[~same].numpy())[::-1]
    k = int(math.floor(0.01 * len(impostor)))  # at most k impostors accepted
    threshold = impostor[k]  # accept scores strictly above the (k+1)-th highest impostor
    tar = (scores[same].numpy() > threshold).mean()
    assert tar_at_far(scores, same, 0.01) == pytest.approx(tar, abs=1e-12)


def test_best_threshold_accuracy_matches_sklearn_roc():
    for seed in range(3):
        scores, same = _scores(3000, seed=seed)
        fpr, tpr, _ = sk_roc_curve(same.numpy(), scores.numpy(), drop_intermediate=False)
        p, n = float(same.sum()), float((~same).sum())
        t, acc = best_threshold(scores, same)
        assert acc == pytest.approx(((tpr * p + (1 - fpr) * n) / (p + n)).max(), abs=1e-12)
        assert ((scores >= t) == same).double().mean().item() == pytest.approx(acc, abs=1e-12)


def test_verification_accuracy_k_fold():
    scores, same = _scores(6000, gap=2.0)
    out = verification_accuracy(scores, same, folds=10)
    # Two unit Gaussians 2 apart: the Bayes accuracy is Φ(1) = 0.8413.
    assert out.mean == pytest.approx(0.8413, abs=0.02)
    assert 0 < out.std < 0.05 and len(out.thresholds) == 10
    assert ((out.thresholds - 1.0).abs() < 0.2).all()  # the midpoint of the two means
    # Each fold's accuracy is measured on its own pairs with the others' threshold: never above the
    # accuracy with the best threshold chosen on all pairs, on average.
    assert out.mean <= best_threshold(scores, same)[1] + 1e-12
    perfect = verification_accuracy(torch.tensor([0.9, 0.1] * 10), torch.tensor([True, False] * 10), folds=5)
    assert perfect.mean == 1.0 and perfect.std == 0.0


def test_cosine_similarity_and_angle_stats_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [-1.0, 1.0], [1.0, 0.0]])
    assert cosine_similarity(a, b).tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-7)
    # Class 0 at ±10° around 0°, class 1 at ±20° around 90°: intra 10 and 20, inter 90.
    deg = torch.tensor([-10.0, 10.0, 70.0, 110.0], dtype=torch.float64)
    emb = torch.stack([torch.cos(torch.deg2rad(deg)), torch.sin(torch.deg2rad(deg))], 1) * 3
    labels = torch.tensor([0, 0, 1, 1])
    stats = angle_stats(emb, labels)
    assert stats.intra.tolist() == pytest.approx([10, 10, 20, 20], abs=1e-6)
    assert stats.inter.tolist() == pytest.approx([90.0], abs=1e-6)
    assert stats.nearest.tolist() == pytest.approx([90.0, 90.0], abs=1e-6)
    assert torch.allclose(class_centres(emb, labels), torch.eye(2, dtype=torch.float64), atol=1e-9)


def test_nearest_centre_angle_is_the_smallest_angle_to_another_centre():
    # Three centres on a circle at 0°, 30° and 100°: nearest angles 30, 30 and 70.
    deg = torch.tensor([0.0, 30.0, 100.0], dtype=torch.float64)
    emb = torch.stack([torch.cos(torch.deg2rad(deg)), torch.sin(torch.deg2rad(deg))], 1)
    stats = angle_stats(emb, torch.tensor([0, 1, 2]))
    assert stats.nearest.tolist() == pytest.approx([30.0, 30.0, 70.0], abs=1e-6)
    assert sorted(stats.inter.tolist()) == pytest.approx([30.0, 70.0, 100.0], abs=1e-6)


def test_bad_input_raises_clear_errors():
    scores, same = _scores(200)
    for far in [0.0, 1.0, -0.1, 2.0]:
        with pytest.raises(ValueError, match="far"):
            tar_at_far(scores, same, far)
    with pytest.raises(ValueError, match="impostor pairs"):
        tar_at_far(scores, same, 1e-3)  # about 100 impostors cannot measure FAR = 0.001
    for fn in [roc_curve, tar_at_far, best_threshold, verification_accuracy]:
        with pytest.raises(ValueError, match="both genuine and impostor"):
            fn(scores, torch.ones(200, dtype=torch.bool))
        with pytest.raises(ValueError, match="both genuine and impostor"):
            fn(scores, torch.zeros(200, dtype=torch.bool))
    with pytest.raises(ValueError, match="same number of rows"):
        roc_curve(scores, same[:-1])
    with pytest.raises(TypeError, match="torch.Tensor"):
        roc_curve(scores.tolist(), same)
    with pytest.raises(ValueError, match="folds"):
        verification_accuracy(scores, same, folds=1)
    with pytest.raises(ValueError, match="same shape"):
        cosine_similarity(torch.randn(3, 2), torch.randn(3, 4))


# --- claims -----------------------------------------------------------------------------------------


def test_tar_gain_fails_when_the_margin_loss_is_no_better_than_softmax():
    weak, same = _scores(20000, gap=1.0)
    g = torch.Generator().manual_seed(5)
    strong = weak + 2.0 * same  # genuine pairs pulled apart from impostors
    assert tar_gain(strong, weak, same).holds
    assert not tar_gain(weak, weak, same).holds
    noisy = weak + 0.01 * torch.randn(len(weak), generator=g, dtype=torch.float64)
    assert not tar_gain(noisy, weak, same).holds


def test_intra_class_angle_drop_fails_when_classes_are_no_more_compact():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(20, 16, generator=g)
    labels = torch.arange(20).repeat_interleave(10)
    noise = torch.randn(200, 16, generator=g)
    compact, spread = centres[labels] + 0.2 * noise, centres[labels] + 0.6 * noise
    assert intra_class_angle_drop(compact, spread, labels).holds
    assert not intra_class_angle_drop(spread, spread, labels).holds  # the baseline itself: drop 0
    assert not intra_class_angle_drop(spread, compact, labels).holds  # noisier than the baseline
