"""Feature engineering against scikit-learn: binning, hashing, target encoding; encodings, the
early-stopping loop and the feature table's truth."""

import numpy as np
import pytest
import torch
from sklearn.feature_extraction import FeatureHasher
from sklearn.preprocessing import KBinsDiscretizer, TargetEncoder
from sklearn.utils import murmurhash3_32

from toyalgos.recsys import (
    LR,
    DeepFM,
    apply_bins,
    auc,
    bce_l2_loss,
    bin_equal_width,
    bin_quantile,
    collision_rate,
    count_encode,
    embedding_parameters,
    expected_collision_rate,
    group_rare,
    hash_cross,
    hash_features,
    kfold,
    make_click_log,
    make_feature_table,
    murmur3_32,
    target_encode,
    target_encoding_table,
    train_early_stopping,
)

# --- Binning ------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_binning_matches_kbinsdiscretizer(strategy):
    g = torch.Generator().manual_seed(0)
    x = torch.exp(1.5 * torch.randn(5000, generator=g, dtype=torch.float64))  # heavy tail
    kwargs = dict(quantile_method="linear") if strategy == "quantile" else {}
    ref = KBinsDiscretizer(n_bins=7, encode="ordinal", strategy=strategy, **kwargs).fit(x.numpy()[:, None])
    ours = (bin_quantile if strategy == "quantile" else bin_equal_width)(x, 7)
    np.testing.assert_allclose(ours.edges.numpy(), ref.bin_edges_[0], rtol=1e-12)
    assert np.array_equal(ours.codes.numpy(), ref.transform(x.numpy()[:, None])[:, 0].astype(int))
    new = torch.exp(1.5 * torch.randn(1000, generator=g, dtype=torch.float64)) * 2  # some beyond the edges
    assert np.array_equal(
        apply_bins(new, ours.edges).numpy(), ref.transform(new.numpy()[:, None])[:, 0].astype(int)
    )


def test_quantile_bins_hold_equal_shares_and_merge_ties():
    x = torch.arange(1000.0)
    assert torch.bincount(bin_quantile(x, 4).codes).tolist() == [250] * 4
    ties = torch.cat([torch.zeros(900), torch.arange(1.0, 101.0)])  # 90 % zeros
    assert len(bin_quantile(ties, 10).edges) < 11


@pytest.mark.parametrize("n_bins", [1, 0, 2.5])
def test_binning_refuses_fewer_than_two_bins(n_bins):
    with pytest.raises(ValueError, match="n_bins"):
        bin_quantile(torch.randn(10), n_bins)


def test_binning_refuses_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        bin_equal_width(torch.tensor([1.0, float("inf")]), 3)


# --- Hashing ------------------------------------------------------------------------------


def test_murmur3_matches_sklearn():
    keys = torch.tensor([0, 1, 2, 7, 1234567, 2**31 - 1, 99999, 42])
    for salt in (0, 1, 12345):
        ours = murmur3_32(keys, salt).tolist()
        assert ours == [murmurhash3_32(int(k), seed=salt) for k in keys]


def test_hash_features_matches_featurehasher():
    """FeatureHasher hashes a feature's bytes; a 4-byte little-endian id hashes as murmur3_32(id)."""
    ids = torch.randint(0, 10**6, (300,), generator=torch.Generator().manual_seed(1))
    for n_buckets in (16, 1000, 2**12):
        hasher = FeatureHasher(n_features=n_buckets, input_type="pair", alternate_sign=True)
        X = hasher.transform([[(int(i).to_bytes(4, "little"), 1)] for i in ids]).tocsr()
        ours = hash_features(ids, n_buckets)
        assert np.array_equal(X.indices, ours.index.numpy())
        assert np.array_equal(X.data, ours.sign.numpy())


def test_collision_rate_matches_the_formula_for_a_good_hash():
    ids = torch.arange(20_000) * 7919  # distinct ids with a structure
    for m in (2**12, 2**15):
        measured = collision_rate(hash_features(ids, m).index)
        assert measured == pytest.approx(expected_collision_rate(20_000, m), rel=0.03)
    assert collision_rate(torch.tensor([0, 1, 2, 3])) == 0.0
    assert collision_rate(torch.tensor([0, 0, 1])) == pytest.approx(2 / 3)


def test_hash_cross_depends_on_both_fields():
    a = torch.tensor([1, 1, 2, 2])
    b = torch.tensor([5, 6, 5, 6])
    index = hash_cross(a, b, 2**20).index
    assert len(set(index.tolist())) == 4
    assert torch.equal(hash_cross(a, b, 2**20).index, index)  # deterministic
    with pytest.raises(ValueError, match="same number of rows"):
        hash_cross(a, b[:3], 8)


def test_hashing_refuses_bad_ids():
    with pytest.raises(TypeError, match="integer"):
        hash_features(torch.tensor([0.5]), 8)
    with pytest.raises(ValueError, match="non-negative"):
        hash_features(torch.tensor([-1]), 8)
    with pytest.raises(ValueError, match="n_buckets"):
        hash_features(torch.tensor([1]), 0)


# --- Encodings ----------------------------------------------------------------------------


def test_count_encode_and_group_rare():
    train = torch.tensor([0, 0, 0, 2, 2, 5])
    assert count_encode(train, torch.tensor([0, 1, 2, 5, 9])).tolist() == [3, 0, 2, 1, 0]
    table = group_rare(train, 2)
    assert table.tolist() == [1, 0, 2, 0, 0, 0]  # 0 and 2 kept, the rest -> "other" (0)


def test_target_encoding_table_matches_sklearn_fit():
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 50, (3000,), generator=g)
    y = torch.bernoulli(torch.full((3000,), 0.3), generator=g)
    ref = TargetEncoder(smooth=10.0, target_type="binary").fit(ids.numpy()[:, None], y.numpy())
    table = target_encoding_table(ids, y, 60, smoothing=10.0)
    np.testing.assert_allclose(table[ref.categories_[0]].numpy(), ref.encodings_[0], rtol=1e-10)
    assert table[55].item() == pytest.approx(y.mean().item())  # unseen: the prior


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_out_of_fold_target_encoding_matches_sklearn_cross_fitting():
    from sklearn.model_selection import StratifiedKFold

    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 200, (4000,), generator=g)
    y = torch.bernoulli(torch.full((4000,), 0.25), generator=g)
    enc = TargetEncoder(smooth=5.0, target_type="binary", cv=5, shuffle=True, random_state=0)
    ref = enc.fit_transform(ids.numpy()[:, None], y.numpy())[:, 0]
    folds = np.empty(4000, dtype=np.int64)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    for f, (_, held) in enumerate(cv.split(ids.numpy()[:, None], y.numpy())):
        folds[held] = f
    ours = target_encode(ids, y, smoothing=5.0, folds=torch.from_numpy(folds))
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10)


def test_in_sample_target_encoding_of_a_noise_id_leaks_and_out_of_fold_does_not():
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(0, 5000, (40_000,), generator=g)
    y = torch.bernoulli(torch.full((40_000,), 0.25), generator=g)
    assert auc(y, target_encode(ids, y, smoothing=5.0)) > 0.65
    folds = kfold(40_000, 5, generator=g)
    assert abs(auc(y, target_encode(ids, y, smoothing=5.0, folds=folds)) - 0.5) < 0.03


def test_kfold_is_balanced_and_deterministic():
    folds = kfold(103, 5, generator=torch.Generator().manual_seed(0))
    assert sorted(torch.bincount(folds).tolist()) == [20, 20, 21, 21, 21]
    assert torch.equal(folds, kfold(103, 5, generator=torch.Generator().manual_seed(0)))


def test_target_encoding_bad_input():
    with pytest.raises(ValueError, match="n_values"):
        target_encoding_table(torch.tensor([0, 7]), torch.tensor([0.0, 1.0]), 5)
    with pytest.raises(ValueError, match="finite"):
        target_encode(torch.tensor([0, 1]), torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="same number of rows"):
        target_encode(torch.tensor([0, 1]), torch.tensor([0.0]))


# --- Training in the long-tail regime -----------------------------------------------------


def test_bce_l2_loss_adds_the_embedding_penalty():
    tr = make_click_log(1000, generator=torch.Generator().manual_seed(0), splits=(1.0, 0.0, 0.0))[0]
    torch.manual_seed(0)
    model = DeepFM(tr.cardinalities, 2, 4)
    penalty = sum(p.pow(2).sum() for p in embedding_parameters(model))
    base = bce_l2_loss(model, tr.sparse, tr.dense, tr.labels)
    assert bce_l2_loss(model, tr.sparse, tr.dense, tr.labels, embedding_decay=0.1).item() == pytest.approx(
        base.item() + 0.05 * penalty.item(), rel=1e-6
    )
    assert len(embedding_parameters(model)) == 2  # LR's weights and the shared field vectors


def test_train_early_stopping_keeps_the_best_epoch_and_is_deterministic():
    tr, va, _, _ = make_click_log(
        20_000, generator=torch.Generator().manual_seed(1), n_users=500, n_items=500
    )

    def run():
        torch.manual_seed(0)
        model = LR(tr.cardinalities, 2)
        h = train_early_stopping(
            model,
            (tr.sparse, tr.dense, tr.labels),
            (va.sparse, va.dense, va.labels),
            epochs=8,
            patience=1,
            lr=0.05,
            generator=torch.Generator().manual_seed(0),
            progress=False,
        )
        return model, h

    model, h = run()
    assert h.best_epoch == int(np.argmin(h.valid_loss))
    assert len(h.valid_loss) <= 8 and len(h.valid_loss) == len(h.train_loss)
    assert run()[1] == h
    with pytest.raises(ValueError, match="patience"):
        train_early_stopping(model, (tr.sparse, tr.dense, tr.labels), (va.sparse,), epochs=1, patience=0)


# --- The feature table --------------------------------------------------------------------


def test_feature_table_truth():
    t = make_feature_table(50_000, generator=torch.Generator().manual_seed(0))
    assert t.numeric.shape == (50_000, 28) and t.informative.sum() == 5
    assert 0.2 < t.labels.mean() < 0.3
    assert t.count.max() > 100 * t.count.median()  # heavy tail
    # The noise id and the noise columns carry nothing; the pair (a, b) carries what a and b do not.
    assert abs(auc(t.labels, t.noise_id.double()) - 0.5) < 0.02
    assert all(abs(auc(t.labels, t.numeric[:, j]) - 0.5) < 0.02 for j in range(8, 28))
    assert abs(auc(t.labels, t.numeric[:, 0]) - 0.5) > 0.05
    assert torch.equal(t[:10].labels, t.labels[:10]) and t[:10].kinds == t.kinds
    same = make_feature_table(50_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same.labels, t.labels)
