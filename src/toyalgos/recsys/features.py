"""Feature engineering for CTR models: transforms, hashing, encodings, and training on sparse ids.

Raw logs hold counts with heavy tails, ids with millions of values and a long tail of rare
ones, and fields whose interaction matters more than each alone. This module holds the
standard tools, each a short function on tensors:

- binning (equal-width and quantile, as scikit-learn's ``KBinsDiscretizer``), and ``torch.log1p``
  for heavy-tailed counts;
- the hashing trick (Weinberger et al. 2009): index = h(x) mod m, sign from the hash's sign bit,
  with MurmurHash3 as in scikit-learn's ``FeatureHasher``; hashed crosses; collision rates;
- count encoding, grouping rare values into one "other" value, and smoothed target encoding,
  in-sample (leaks the row's own label) or out-of-fold (cross-fitting, as ``TargetEncoder``);
- ``train_early_stopping``: the training loop with a validation log, early stopping and L2 on
  the embedding tables that the long-tail regime needs;
- ``make_feature_table``: raw features with a known truth (informative, redundant and noise
  columns, a heavy-tailed count, a pure-noise id with many levels, two fields that act only
  together).

Feature selection uses scikit-learn's estimators directly (``mutual_info_classif``, ``RFE``,
an L1 ``LogisticRegression``): there is nothing to add to them here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from toyalgos.core import train as core_train
from toyalgos.core.checks import (
    check_generator,
    check_int,
    check_number,
    check_positive_int,
    check_same_length,
    check_tensor,
)

from .ctr import FieldEmbedding, bce_loss, predict_ctr


def _finite_1d(x: torch.Tensor, name: str) -> torch.Tensor:
    x = check_tensor(x, name, dim=1)
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {int((~torch.isfinite(x)).sum())} NaN or inf values")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    return x


def _ids(x: torch.Tensor, name: str) -> torch.Tensor:
    x = _finite_1d(x, name)
    if x.is_floating_point() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of ids, got {x.dtype}")
    if x.min() < 0:
        raise ValueError(f"{name} must be non-negative ids, got {x.min().item()}")
    return x.long()


# --- Binning ------------------------------------------------------------------------------


class Bins(NamedTuple):
    """Bin codes of the fitted values and the bin edges (n_bins + 1 of them, increasing)."""

    codes: torch.Tensor  # (n,) int64 in [0, n_bins)
    edges: torch.Tensor  # (n_bins + 1,) float64


def apply_bins(x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bin code of each value: the number of inner edges <= x (values outside go to the end bins)."""
    x = _finite_1d(x, "x").double()
    return torch.searchsorted(edges[1:-1].contiguous(), x, right=True)


def bin_equal_width(x: torch.Tensor, n_bins: int) -> Bins:
    """``n_bins`` bins of equal width between min(x) and max(x) (``strategy='uniform'``)."""
    x = _finite_1d(x, "x").double()
    check_int(n_bins, "n_bins", 2)
    edges = torch.linspace(x.min().item(), x.max().item(), n_bins + 1, dtype=torch.float64)
    return Bins(apply_bins(x, edges), edges)


def bin_quantile(x: torch.Tensor, n_bins: int) -> Bins:
    """Bins holding equal shares of the values: edges at the i / n_bins quantiles (``'quantile'``).

    Edges are linearly interpolated quantiles; repeated edges (ties in a heavy tail) are
    merged, as scikit-learn does, so there may be fewer than ``n_bins`` bins.
    """
    x = _finite_1d(x, "x").double()
    check_int(n_bins, "n_bins", 2)
    q = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    edges = torch.quantile(x, q) if x.numel() <= 16_000_000 else torch.quantile(x[:16_000_000], q)
    keep = torch.cat([torch.tensor([True]), edges[1:] - edges[:-1] > 1e-8])
    edges = edges[keep]
    return Bins(apply_bins(x, edges), edges)


# --- Hashing ------------------------------------------------------------------------------

_MASK = 0xFFFFFFFF


def _rotl(x: torch.Tensor, r: int) -> torch.Tensor:
    return ((x << r) | (x >> (32 - r))) & _MASK


def murmur3_32(keys: torch.Tensor, salt: int | torch.Tensor = 0) -> torch.Tensor:
    """MurmurHash3 (x86, 32 bit) of each 4-byte integer key, as a signed int32 in an int64 tensor.

    The same hash as ``sklearn.utils.murmurhash3_32(key, seed=salt)`` and the one
    ``FeatureHasher`` applies to a feature's bytes. ``salt`` may be a tensor (one per key).
    """
    k = (check_tensor(keys, "keys").long() & _MASK) * 0xCC9E2D51 & _MASK
    k = _rotl(k, 15) * 0x1B873593 & _MASK
    h = torch.as_tensor(salt, dtype=torch.long) & _MASK ^ k
    h = (_rotl(h, 13) * 5 + 0xE6546B64) & _MASK
    h = h ^ 4  # the key's length in bytes
    h = h ^ (h >> 16)
    h = h * 0x85EBCA6B & _MASK
    h = h ^ (h >> 13)
    h = h * 0xC2B2AE35 & _MASK
    h = h ^ (h >> 16)
    return torch.where(h >= 2**31, h - 2**32, h)


class Hashed(NamedTuple):
    """Hashed features: a bucket in [0, n_buckets) and a sign in {-1, +1} per value."""

    index: torch.Tensor  # (n,) int64
    sign: torch.Tensor  # (n,) float32


def hash_features(ids: torch.Tensor, n_buckets: int, *, salt: int = 0) -> Hashed:
    """The hashing trick with a sign hash (Weinberger et al. 2009, Sec. 2), as ``FeatureHasher``.

    h = murmur3_32(id); index = |h| mod n_buckets; sign = +1 if h >= 0 else -1. The sign
    makes colliding values cancel in expectation instead of adding up (an unbiased inner
    product). Any ``n_buckets`` works (a power of two makes the modulus a bit mask). Values never
    seen in training simply land in some bucket: hashing needs no vocabulary.
    """
    h = murmur3_32(_ids(ids, "ids"), salt)
    check_positive_int(n_buckets, "n_buckets")
    return Hashed(h.abs() % n_buckets, torch.where(h >= 0, 1.0, -1.0))


def hash_cross(a: torch.Tensor, b: torch.Tensor, n_buckets: int, *, salt: int = 0) -> Hashed:
    """A hashed cross feature "a x b": the hash of b salted by the hash of a (Wide & Deep's wide part).

    One bucket per observed pair (up to collisions), without a card(a) x card(b) table.
    """
    a, b = _ids(a, "a"), _ids(b, "b")
    check_same_length("a", a, "b", b)
    return hash_features(b, n_buckets, salt=murmur3_32(a, salt))  # type: ignore[arg-type]


def collision_rate(index: torch.Tensor) -> float:
    """Share of distinct values whose bucket holds at least one other value.

    ``index``: the bucket of each *distinct* value (e.g. ``hash_features(unique_ids, m).index``).
    """
    index = _ids(index, "index")
    counts = torch.bincount(index)
    return (counts[index] > 1).double().mean().item()


def expected_collision_rate(n_values: int, n_buckets: int) -> float:
    """1 - (1 - 1/m)^(n - 1): the chance that one of n values shares its bucket, for a random hash.

    The expected number of colliding pairs is n (n - 1) / (2 m), about n^2 / 2^(b + 1) for m = 2^b.
    """
    check_positive_int(n_values, "n_values")
    check_positive_int(n_buckets, "n_buckets")
    return 1 - (1 - 1 / n_buckets) ** (n_values - 1)


# --- Count, frequency and target encoding -------------------------------------------------


def count_encode(train_ids: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """How often each of ``ids`` occurs in ``train_ids`` (float; 0 for a value never seen)."""
    train_ids, ids = _ids(train_ids, "train_ids"), _ids(ids, "ids")
    counts = torch.bincount(train_ids, minlength=int(ids.max()) + 1).double()
    return counts[ids]


def group_rare(train_ids: torch.Tensor, min_count: int) -> torch.Tensor:
    """A lookup table mapping each value to a new id: 0 ("other") for values seen fewer than
    ``min_count`` times in ``train_ids``, 1..K for the K frequent ones (in order of value).

    Use as ``table[ids]``; values beyond the table (never seen) map to 0 with
    ``table[ids.clamp(max=len(table) - 1)] * (ids < len(table))``.
    """
    train_ids = _ids(train_ids, "train_ids")
    check_positive_int(min_count, "min_count")
    frequent = torch.bincount(train_ids) >= min_count
    return torch.where(frequent, frequent.long().cumsum(0), 0)


def kfold(n: int, n_folds: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fold id in [0, n_folds) for each of n rows, a random permutation of equal-size folds."""
    check_positive_int(n, "n")
    check_int(n_folds, "n_folds", 2)
    check_generator(generator)
    return (torch.arange(n) % n_folds)[torch.randperm(n, generator=generator)]


def target_encoding_table(
    ids: torch.Tensor, labels: torch.Tensor, n_values: int, *, smoothing: float = 10.0
) -> torch.Tensor:
    """The smoothed mean label of each value: (sum_y + m prior) / (n + m), shape (n_values,).

    ``prior`` is the mean label and ``m`` = ``smoothing`` acts as m pseudo-rows at the prior,
    so a rare value's encoding shrinks towards it; a value never seen gets the prior
    (scikit-learn's ``TargetEncoder(smooth=m)`` for a binary target).
    """
    ids, y = _ids(ids, "ids"), _finite_1d(labels, "labels").double()
    check_same_length("ids", ids, "labels", y)
    check_positive_int(n_values, "n_values")
    if ids.max() >= n_values:
        raise ValueError(f"ids must lie in [0, n_values={n_values}), got {ids.max().item()}")
    m = check_number(smoothing, "smoothing", 0)
    prior = y.mean()
    n = torch.bincount(ids, minlength=n_values).double()
    s = torch.bincount(ids, weights=y, minlength=n_values)
    return (s + m * prior) / (n + m).clamp(min=1e-12)


def target_encode(
    ids: torch.Tensor, labels: torch.Tensor, *, smoothing: float = 10.0, folds: torch.Tensor | None = None
) -> torch.Tensor:
    """Smoothed target encoding of each row, in-sample (``folds=None``) or out-of-fold.

    In-sample, a row's encoding includes its own label: for a rare value it nearly *is* the
    label, which a model reads as signal on training rows and which is gone on new rows
    (leakage). Out-of-fold (cross-fitting), a row in fold f is encoded with the table fitted
    on the other folds only, as ``TargetEncoder.fit_transform`` does; encode new rows with
    ``target_encoding_table`` of all training rows.
    """
    ids, y = _ids(ids, "ids"), _finite_1d(labels, "labels").double()
    n_values = int(ids.max()) + 1
    if folds is None:
        return target_encoding_table(ids, y, n_values, smoothing=smoothing)[ids]
    folds = _ids(folds, "folds")
    check_same_length("ids", ids, "folds", folds)
    out = torch.empty(len(ids), dtype=torch.float64)
    for f in folds.unique().tolist():  # one table per fold: a loop over folds, not rows
        held = folds == f
        table = target_encoding_table(ids[~held], y[~held], n_values, smoothing=smoothing)
        out[held] = table[ids[held]]
    return out


# --- Training in the long-tail regime -----------------------------------------------------


class EarlyStopping(NamedTuple):
    """Per-epoch train and validation log loss, and the epoch whose weights were kept (0-based)."""

    train_loss: list[float]
    valid_loss: list[float]
    best_epoch: int


def embedding_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of every ``FieldEmbedding`` in ``model`` (one row per id: the long tail)."""
    return [p for m in model.modules() if isinstance(m, FieldEmbedding) for p in m.parameters()]


def bce_l2_loss(
    model: nn.Module,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    labels: torch.Tensor,
    *,
    embedding_decay: float = 0.0,
) -> torch.Tensor:
    """Log loss plus L2 on the embedding tables: bce + decay / 2 * sum |E|^2 (DeepCTR's
    ``l2_reg_embedding``). It pulls the vectors of ids seen a few times towards 0."""
    penalty = sum(p.pow(2).sum() for p in embedding_parameters(model))
    return bce_loss(model, sparse, dense, labels) + 0.5 * embedding_decay * penalty


def _epoch(data: tuple[torch.Tensor, ...], batch_size: int, generator: torch.Generator | None):
    """One pass over ``data`` in a random order, as a list of batches."""
    order = torch.randperm(data[0].shape[0], generator=generator)
    return [tuple(d[idx] for d in data) for idx in order.split(batch_size)]


def train_early_stopping(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    valid_data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    patience: int,
    batch_size: int = 4096,
    lr: float = 1e-3,
    embedding_decay: float = 0.0,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "training",
) -> EarlyStopping:
    """Train a CTR model epoch by epoch on ``(sparse, dense, labels)``, watching a validation log.

    Each epoch is one ``core.train`` call over the training rows in a new random order, with
    ``bce_l2_loss`` and Adam, its learning rate decaying from ``lr`` to 0 over the epoch (a
    cosine cycle per epoch, as in warm restarts, Loshchilov & Hutter 2017), so that every epoch
    ends at a settled point for the validation check. Training
    stops after ``patience`` epochs without a lower validation log loss, and the model keeps
    the weights of its best epoch: early stopping, which regularises by limiting how far the
    rare ids' vectors travel from their initial values near 0.
    """
    check_positive_int(epochs, "epochs")
    check_positive_int(patience, "patience")
    check_positive_int(batch_size, "batch_size")
    check_number(embedding_decay, "embedding_decay", 0)
    check_generator(generator)
    loss_fn = partial(bce_l2_loss, embedding_decay=embedding_decay)
    history = EarlyStopping([], [], 0)
    best, best_state = math.inf, copy.deepcopy(model.state_dict())
    steps = math.ceil(train_data[0].shape[0] / batch_size)
    for epoch in range(epochs):
        h = core_train(
            model,
            loss_fn,
            _epoch(train_data, batch_size, generator),
            steps=steps,
            lr=lr,
            lr_schedule="cosine",
            progress=progress,
            desc=f"{desc}, epoch {epoch + 1}",
        )
        history.train_loss.append(float(h.loss.mean()))
        p = predict_ctr(model, valid_data[0], valid_data[1]).double().clamp(1e-7, 1 - 1e-7)
        y = valid_data[2].double()
        history.valid_loss.append(-(y * p.log() + (1 - y) * (1 - p).log()).mean().item())
        if history.valid_loss[-1] < best:
            best, best_state = history.valid_loss[-1], copy.deepcopy(model.state_dict())
            history = history._replace(best_epoch=epoch)
        elif epoch - history.best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    return history


# --- Raw features with a known truth ------------------------------------------------------


@dataclass(frozen=True)
class FeatureTable:
    """Rows of raw features, their labels and the true click probability they were drawn from."""

    numeric: torch.Tensor  # (n, p) float32: informative, then redundant, then noise columns
    kinds: tuple[str, ...]  # (p,) "informative" | "redundant" | "noise"
    count: torch.Tensor  # (n,) float32, heavy-tailed; its log enters the truth
    noise_id: torch.Tensor  # (n,) int64, many levels, independent of the label
    field_a: torch.Tensor  # (n,) int64, acts on the label only together with field_b
    field_b: torch.Tensor  # (n,) int64
    labels: torch.Tensor  # (n,) float32 in {0, 1}
    true_ctr: torch.Tensor  # (n,) float32

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, idx: slice | torch.Tensor) -> FeatureTable:
        """Rows ``idx`` as a new table."""
        return replace(
            self, **{f.name: getattr(self, f.name)[idx] for f in fields(self) if f.name != "kinds"}
        )

    @property
    def informative(self) -> torch.Tensor:
        """Boolean mask (p,) of the informative numeric columns."""
        return torch.tensor([k == "informative" for k in self.kinds])


def make_feature_table(
    n: int,
    *,
    n_informative: int = 5,
    n_redundant: int = 3,
    n_noise: int = 20,
    n_id_levels: int = 5000,
    n_field_levels: int = 10,
    cross_scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> FeatureTable:
    """``n`` rows whose label is drawn from a known logit:

        logit = b + sum_j beta_j x_j + 0.8 z(log1p(count)) + W[a, b]

    - x_j, j < ``n_informative``: standard normal, beta_j = +-(0.4 .. 0.8);
    - redundant columns: sums of two informative columns plus a little noise (they carry
      information, but nothing the informative columns do not);
    - noise columns: standard normal, unused by the truth;
    - ``count``: log-normal counts (median about 5, a tail into the thousands); the truth uses
      the standardised log1p(count);
    - ``noise_id``: uniform over ``n_id_levels`` values, unused by the truth;
    - ``field_a``, ``field_b``: uniform over ``n_field_levels`` values each; W (levels x
      levels, std ``cross_scale``, rows and columns centred) is a pure interaction: neither
      field alone says anything about the label.

    b is set so the base rate is about 0.25. One ``generator`` fixes the truth and the rows.
    """
    for name, v in dict(
        n=n, n_informative=n_informative, n_id_levels=n_id_levels, n_field_levels=n_field_levels
    ).items():
        check_positive_int(v, name)
    check_int(n_redundant, "n_redundant", 0)
    check_int(n_noise, "n_noise", 0)
    check_number(cross_scale, "cross_scale", 0)
    g = check_generator(generator)
    # The truth.
    beta = (0.4 + 0.4 * torch.rand(n_informative, generator=g)) * torch.where(
        torch.rand(n_informative, generator=g) < 0.5, -1.0, 1.0
    )
    pairs = (
        torch.stack([torch.randperm(n_informative, generator=g)[:2] for _ in range(n_redundant)])
        if n_redundant
        else None
    )
    W = cross_scale * torch.randn(n_field_levels, n_field_levels, generator=g)
    W = W - W.mean(0, keepdim=True) - W.mean(1, keepdim=True) + W.mean()  # no main effects
    # The rows.
    x = torch.randn(n, n_informative, generator=g)
    cols = [x]
    if pairs is not None:
        red = x[:, pairs[:, 0]] + x[:, pairs[:, 1]] + 0.3 * torch.randn(n, n_redundant, generator=g)
        cols.append(red / red.std(0, keepdim=True))
    cols.append(torch.randn(n, n_noise, generator=g))
    numeric = torch.cat(cols, dim=1)
    log_count = 1.6 + 1.4 * torch.randn(n, generator=g)  # log of a log-normal count
    count = torch.floor(torch.exp(log_count))
    z = torch.log1p(count)
    noise_id = torch.randint(n_id_levels, (n,), generator=g)
    a = torch.randint(n_field_levels, (n,), generator=g)
    b = torch.randint(n_field_levels, (n,), generator=g)
    logit = -1.6 + x @ beta + 0.8 * (z - 1.75) / 1.25 + W[a, b]
    true_ctr = torch.sigmoid(logit)
    labels = torch.bernoulli(true_ctr, generator=g)
    kinds = ("informative",) * n_informative + ("redundant",) * n_redundant + ("noise",) * n_noise
    return FeatureTable(numeric, kinds, count, noise_id, a, b, labels, true_ctr)
