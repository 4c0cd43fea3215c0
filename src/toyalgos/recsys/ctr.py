"""CTR models over categorical fields and dense features: LR, FM, FFM, Wide & Deep, DeepFM, DCN-v2.

Every model takes the same batch, ``(sparse, dense)`` with ``sparse`` an int64 tensor of
shape (B, F) (one label-encoded value per field) and ``dense`` a float tensor (B, D), and
returns click logits of shape (B,). They share the embedding code below; each model is the
paper's formula on top of it.

- LR: logit = b + sum_f w[x_f] + w_d . dense.
- FM (Rendle 2010): LR + sum_{i<j} <v_i, v_j>, computed in O(F k) as
  1/2 sum_k [(sum_i v_ik)^2 - sum_i v_ik^2] (Eq. 5 of the paper).
- FFM (Juan et al. 2016): LR + sum_{i<j} <v_{i, f_j}, v_{j, f_i}>: one vector per (value, other field).
- Wide & Deep (Cheng et al. 2016): wide = LR over the fields and chosen crossed fields,
  deep = MLP over the concatenated embeddings and dense features; summed, trained jointly.
- DeepFM (Guo et al. 2017): FM + MLP sharing the same embeddings.
- DCN-v2 (Wang et al. 2021): cross layers x_{l+1} = x_0 * (W_l x_l + b_l) + x_l on the
  stacked input x_0 = [embeddings, dense], in parallel with an MLP.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from toyalgos.core import evaluating
from toyalgos.core.checks import check_positive_int, check_tensor


def _check_fields(
    cardinalities: Sequence[int], field_names: Sequence[str] | None = None
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Field sizes (positive ints, at least one) and one name per field (``'field i'`` by default)."""
    if not cardinalities:
        raise ValueError(f"cardinalities must be a non-empty sequence of positive ints, got {cardinalities}")
    for i, c in enumerate(cardinalities):
        check_positive_int(c, f"cardinalities[{i}]")
    names = tuple(field_names) if field_names else tuple(f"field {i}" for i in range(len(cardinalities)))
    if len(names) != len(cardinalities):
        raise ValueError(f"{len(names)} field names for {len(cardinalities)} cardinalities")
    return tuple(cardinalities), names


class FieldEmbedding(nn.Module):
    """One table for all fields: value x of field f lives at row offset_f + x.

    Checks every index against its field's cardinality, so a bad index names its field
    instead of failing inside ``nn.Embedding``.
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        dim: int,
        field_names: Sequence[str] | None = None,
        init_std: float = 0.01,
    ):
        super().__init__()
        self.cardinalities, self.field_names = _check_fields(cardinalities, field_names)
        check_positive_int(dim, "dim")
        offsets = torch.tensor((0, *self.cardinalities[:-1])).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("limits", torch.tensor(self.cardinalities), persistent=False)
        self.table = nn.Embedding(sum(self.cardinalities), dim)
        nn.init.normal_(self.table.weight, std=init_std)

    def check(self, sparse: torch.Tensor) -> None:
        """``sparse`` must be (B, F) integer indices, each inside its field's [0, cardinality)."""
        check_tensor(sparse, "sparse")
        if sparse.dim() != 2 or sparse.shape[1] != len(self.cardinalities):
            raise ValueError(
                f"sparse must have shape (B, {len(self.cardinalities)}), got {tuple(sparse.shape)}"
            )
        if sparse.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"sparse must hold integer indices, got {sparse.dtype}")
        bad = (sparse < 0) | (sparse >= self.limits)
        if bad.any():
            row, f = bad.nonzero()[0].tolist()
            raise ValueError(
                f"field {self.field_names[f]!r} has index {sparse[row, f].item()}, "
                f"outside [0, {self.cardinalities[f]})"
            )

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        """(B, F) indices -> (B, F, dim) vectors."""
        self.check(sparse)
        return self.table(sparse + self.offsets)


def check_dense(dense: torch.Tensor | None, batch: int, n_dense: int) -> None:
    """Dense features must be (batch, n_dense) when the model was built with n_dense > 0."""
    if dense is not None:
        check_tensor(dense, "dense")
    if n_dense and (dense is None or dense.shape != (batch, n_dense)):
        got = None if dense is None else tuple(dense.shape)
        raise ValueError(f"dense must have shape ({batch}, {n_dense}), got {got}")


def mlp(sizes: Sequence[int], *, out_features: int | None = 1, dropout: float = 0.0) -> nn.Sequential:
    """Linear-ReLU(-Dropout) layers through ``sizes``, then a linear head with ``out_features`` outputs.

    ``mlp([d, 64, 32])`` maps d -> 64 -> 32 -> 1 (a logit); ``out_features=None`` leaves out the
    head and ends on the last ReLU (a hidden representation of size ``sizes[-1]``, or the
    identity, an empty stack, when ``sizes`` is ``[d]``).
    """
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    if out_features is not None:
        layers.append(nn.Linear(sizes[-1], out_features))
    return nn.Sequential(*layers)


class LR(nn.Module):
    """Logistic regression: b + sum_f w[x_f] + w_d . dense (one-hot fields = an embedding of size 1)."""

    def __init__(
        self, cardinalities: Sequence[int], n_dense: int = 0, field_names: Sequence[str] | None = None
    ):
        super().__init__()
        self.weights = FieldEmbedding(cardinalities, 1, field_names, init_std=0.0)
        self.dense = nn.Linear(n_dense, 1, bias=False) if n_dense else None
        self.bias = nn.Parameter(torch.zeros(()))
        self.n_dense = n_dense

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor | None = None) -> torch.Tensor:
        check_dense(dense, sparse.shape[0], self.n_dense)
        z = self.bias + self.weights(sparse).sum(dim=(1, 2))
        if self.dense is not None:
            z = z + self.dense(dense).squeeze(1)
        return z


def fm_pairwise(v: torch.Tensor) -> torch.Tensor:
    """sum_{i<j} <v_i, v_j> for v of shape (B, F, k), in O(F k): 1/2 sum_k [(sum_i v)^2 - sum_i v^2]."""
    return 0.5 * (v.sum(1).pow(2) - v.pow(2).sum(1)).sum(1)


class FM(LR):
    """Factorization machine (Rendle 2010, Eq. 1): LR + sum_{i<j} <v_i, v_j> over k-dim field embeddings."""

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_dense: int = 0,
        k: int = 8,
        field_names: Sequence[str] | None = None,
    ):
        super().__init__(cardinalities, n_dense, field_names)
        self.embedding = FieldEmbedding(cardinalities, k, field_names)

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(sparse, dense) + fm_pairwise(self.embedding(sparse))


class FFM(LR):
    """Field-aware FM (Juan et al. 2016): value x of field i has one vector per field j,
    used when meeting field j: LR + sum_{i<j} <v_{i, f_j}, v_{j, f_i}>.
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_dense: int = 0,
        k: int = 4,
        field_names: Sequence[str] | None = None,
    ):
        super().__init__(cardinalities, n_dense, field_names)
        self.n_fields = len(cardinalities)
        self.embedding = FieldEmbedding(cardinalities, self.n_fields * k, field_names)
        self.k = k
        i, j = torch.triu_indices(self.n_fields, self.n_fields, offset=1)
        self.register_buffer("pair_i", i, persistent=False)
        self.register_buffer("pair_j", j, persistent=False)

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor | None = None) -> torch.Tensor:
        B = sparse.shape[0]
        e = self.embedding(sparse).view(B, self.n_fields, self.n_fields, self.k)  # e[b, i, j] = v_{x_i, j}
        pairs = (e[:, self.pair_i, self.pair_j] * e[:, self.pair_j, self.pair_i]).sum((1, 2))
        return super().forward(sparse, dense) + pairs


class _Deep(nn.Module):
    """Shared parts of the deep models: embeddings, and the MLP input [flattened embeddings, dense]."""

    def __init__(self, cardinalities, n_dense, k, field_names):
        super().__init__()
        self.embedding = FieldEmbedding(cardinalities, k, field_names)
        self.n_dense = n_dense
        self.input_dim = len(cardinalities) * k + n_dense

    def deep_input(self, v: torch.Tensor, dense: torch.Tensor | None) -> torch.Tensor:
        check_dense(dense, v.shape[0], self.n_dense)
        x = v.flatten(1)
        return torch.cat([x, dense], dim=1) if self.n_dense else x


def _check_crosses(crosses: Sequence[tuple[int, int]], n_fields: int) -> tuple[tuple[int, int], ...]:
    """Wide & Deep's crossed fields: pairs of field positions in 0..n_fields - 1."""
    for a, b in crosses:
        if not (0 <= a < n_fields and 0 <= b < n_fields):
            raise ValueError(f"cross ({a}, {b}) refers to a field outside 0..{n_fields - 1}")
    return tuple((a, b) for a, b in crosses)


class WideAndDeep(nn.Module):
    """Wide & Deep (Cheng et al. 2016): wide (LR over fields and crossed fields) + deep
    (MLP over embeddings and dense), one logit.

    ``crosses`` are pairs of field positions whose value pairs become one more categorical
    field of size card_a * card_b: the hand-made cross-product features of the paper.
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_dense: int = 0,
        k: int = 8,
        hidden: Sequence[int] = (64, 32),
        crosses: Sequence[tuple[int, int]] = (),
        field_names: Sequence[str] | None = None,
    ):
        super().__init__()
        cardinalities, names = _check_fields(cardinalities, field_names)
        self.crosses = _check_crosses(crosses, len(cardinalities))
        self.cross_card = [cardinalities[b] for _, b in self.crosses]
        wide_cards = list(cardinalities) + [cardinalities[a] * cardinalities[b] for a, b in self.crosses]
        wide_names = [*names] + [f"{names[a]} x {names[b]}" for a, b in self.crosses]
        self.wide = LR(wide_cards, n_dense, wide_names)
        self.deep = _Deep(cardinalities, n_dense, k, field_names)
        self.mlp = mlp([self.deep.input_dim, *hidden])

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor | None = None) -> torch.Tensor:
        v = self.deep.embedding(sparse)  # checks indices first
        crossed = [
            sparse[:, a] * c + sparse[:, b] for (a, b), c in zip(self.crosses, self.cross_card, strict=True)
        ]
        wide_in = torch.cat([sparse, torch.stack(crossed, 1)], 1) if crossed else sparse
        return self.wide(wide_in, dense) + self.mlp(self.deep.deep_input(v, dense)).squeeze(1)


class DeepFM(nn.Module):
    """DeepFM (Guo et al. 2017, Eq. 1): FM and an MLP on the same field embeddings, logits summed
    (no hand-made crosses).
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_dense: int = 0,
        k: int = 8,
        hidden: Sequence[int] = (64, 32),
        field_names: Sequence[str] | None = None,
    ):
        super().__init__()
        self.linear = LR(cardinalities, n_dense, field_names)
        self.deep = _Deep(cardinalities, n_dense, k, field_names)
        self.mlp = mlp([self.deep.input_dim, *hidden])

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor | None = None) -> torch.Tensor:
        v = self.deep.embedding(sparse)
        return (
            self.linear(sparse, dense) + fm_pairwise(v) + self.mlp(self.deep.deep_input(v, dense)).squeeze(1)
        )


class CrossNetV2(nn.Module):
    """DCN-v2 cross layers: x_{l+1} = x_0 * (W_l x_l + b_l) + x_l (Eq. 1 of Wang et al. 2021)."""

    def __init__(self, dim: int, n_layers: int = 2):
        super().__init__()
        check_positive_int(n_layers, "n_layers")
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))
        for layer in self.layers:
            nn.init.zeros_(layer.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class DCNv2(nn.Module):
    """Deep & Cross Network v2 (Wang et al. 2021), parallel form: [cross(x_0), MLP(x_0)] -> linear.

    The MLP has no head of its own: one linear layer reads both branches and gives the logit.
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_dense: int = 0,
        k: int = 8,
        n_cross: int = 2,
        hidden: Sequence[int] = (64, 32),
        field_names: Sequence[str] | None = None,
    ):
        super().__init__()
        self.deep = _Deep(cardinalities, n_dense, k, field_names)
        d = self.deep.input_dim
        self.cross = CrossNetV2(d, n_cross)
        self.mlp = mlp([d, *hidden], out_features=None)  # no head of its own: it shares DCN's
        self.head = nn.Linear(d + (hidden[-1] if hidden else 0), 1)

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor | None = None) -> torch.Tensor:
        x0 = self.deep.deep_input(self.deep.embedding(sparse), dense)
        parts = [self.cross(x0), self.mlp(x0)] if len(self.mlp) else [self.cross(x0)]
        return self.head(torch.cat(parts, dim=1)).squeeze(1)


def bce_loss(
    model: nn.Module, sparse: torch.Tensor, dense: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean binary cross-entropy of the model's logits: the log loss every CTR model minimises."""
    return nn.functional.binary_cross_entropy_with_logits(model(sparse, dense), labels)


def predict_ctr(
    model: nn.Module, sparse: torch.Tensor, dense: torch.Tensor, *, batch_size: int = 65_536
) -> torch.Tensor:
    """Predicted click probabilities sigmoid(logit), in batches, in eval mode (the caller's mode is kept)."""
    check_positive_int(batch_size, "batch_size")
    with evaluating(model):
        out = [
            torch.sigmoid(model(s, d))
            for s, d in zip(sparse.split(batch_size), dense.split(batch_size), strict=True)
        ]
    return torch.cat(out) if out else torch.empty(0)
