"""A synthetic ad-impression log whose true click probability is known.

Real click logs never reveal p(click | impression): a label is one Bernoulli draw of it. Here
the probability is written down, so every model can be measured against the best any model
could do (the Bayes-optimal AUC and log loss of ``true_ctr`` itself).

The true logit has the parts CTR models are built to capture:

    logit = b + sum_f w_f[x_f]                      first-order (LR)
              + sum_{(f, g) in PAIRS} <u_f[x_f], u_g[x_g]>   pairwise field interactions (FM)
              + h(dense)                            a non-linear term in the dense features (DNN)

Categorical values are drawn with Zipf-like (power-law) frequencies, as user and item ids
are in practice; the item's category is a function of the item, and the user's activity (a
dense feature) is a function of the user. Every other field is drawn per impression,
independently. Position enters through its own weight only (a position bias, falling with
the slot), so the observed CTR falls with the slot too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from toyalgos.core.checks import check_generator, check_int, check_number, check_positive_int

SPARSE_FIELDS = ("user", "item", "category", "site", "position", "device", "hour")
DENSE_FIELDS = ("log_price", "user_activity")
PAIRS = (("user", "category"), ("hour", "category"), ("device", "site"))


@dataclass(frozen=True)
class ClickLog:
    """Impressions: categorical fields (label-encoded), dense features, bids, labels and the truth."""

    sparse: torch.Tensor  # (n, F) int64, column f in [0, cardinalities[f])
    dense: torch.Tensor  # (n, D) float32, standardised
    bid: torch.Tensor  # (n,) float32, cost per click the advertiser offers
    labels: torch.Tensor  # (n,) float32 in {0, 1}
    true_ctr: torch.Tensor  # (n,) float32, the probability the label was drawn from
    field_names: tuple[str, ...] = SPARSE_FIELDS
    dense_names: tuple[str, ...] = DENSE_FIELDS
    cardinalities: tuple[int, ...] = ()

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, idx: slice | torch.Tensor) -> ClickLog:
        """Rows ``idx`` (a slice, index tensor or boolean mask) as a new log."""
        return replace(
            self, **{f.name: getattr(self, f.name)[idx] for f in fields(self) if f.name in _ROW_FIELDS}
        )

    def column(self, name: str) -> torch.Tensor:
        """One categorical field by name, e.g. ``log.column('user')`` for group AUC."""
        if name not in self.field_names:
            raise ValueError(f"unknown field {name!r}; fields are {self.field_names}")
        return self.sparse[:, self.field_names.index(name)]

    @property
    def inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """What a model sees: ``(sparse, dense)``."""
        return self.sparse, self.dense


_ROW_FIELDS = ("sparse", "dense", "bid", "labels", "true_ctr")


def _zipf_probs(k: int, exponent: float) -> torch.Tensor:
    p = 1.0 / torch.arange(1, k + 1, dtype=torch.float64) ** exponent
    return p / p.sum()


def _check_truth(
    n_users: int, n_items: int, n_categories: int, n_sites: int, latent_dim: int, zipf_exponent: float
) -> None:
    """The truth's sizes are positive ints and its Zipf exponent is >= 0."""
    sizes = dict(n_users=n_users, n_items=n_items, n_categories=n_categories, n_sites=n_sites)
    for name, value in dict(sizes, latent_dim=latent_dim).items():
        check_positive_int(value, name)
    check_number(zipf_exponent, "zipf_exponent", 0)


class ClickModel:
    """The ground truth: field vocabularies, their frequencies, and the true logit's parameters.

    ``cardinalities`` maps each field of ``SPARSE_FIELDS`` to its number of values (the
    category field's size is ``n_categories``). ``interaction_scale`` sets the std of the
    pairwise terms, ``nonlinear_scale`` that of h(dense); ``bias`` sets the base CTR. The
    truth's random parameters (each item's category, the first-order weights, the latent
    tables, then each user's activity) are drawn from ``generator`` in that order.
    """

    def __init__(
        self,
        *,
        generator: torch.Generator | None = None,
        n_users: int = 100,
        n_items: int = 100,
        n_categories: int = 20,
        n_sites: int = 50,
        zipf_exponent: float = 0.8,
        latent_dim: int = 4,
        interaction_scale: float = 0.6,
        nonlinear_scale: float = 0.5,
        bias: float = -4.0,
    ):
        _check_truth(n_users, n_items, n_categories, n_sites, latent_dim, zipf_exponent)
        g = check_generator(generator)
        self.cardinalities = dict(
            user=n_users, item=n_items, category=n_categories, site=n_sites, position=4, device=3, hour=24
        )
        self.bias = bias
        self.nonlinear_scale = nonlinear_scale
        self.item_category = torch.randint(n_categories, (n_items,), generator=g)
        self.freq = {
            "user": _zipf_probs(n_users, zipf_exponent),
            "item": _zipf_probs(n_items, zipf_exponent),
            "site": _zipf_probs(n_sites, zipf_exponent),
            "position": torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64),
            "device": torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64),
            "hour": torch.full((24,), 1 / 24, dtype=torch.float64),
        }
        # First-order weights: position matters most (the top slot is seen), then item and site.
        first_std = dict(user=0.3, item=0.5, category=0.3, site=0.4, position=0.0, device=0.2, hour=0.2)
        self.w = {f: first_std[f] * torch.randn(c, generator=g) for f, c in self.cardinalities.items()}
        self.w["position"] = torch.tensor([0.6, 0.1, -0.3, -0.6])
        # Pairwise terms <u_f[x_f], u_g[x_g]>: one latent table per field and pair.
        scale = (interaction_scale / latent_dim**0.5) ** 0.5
        self.latent = {
            pair: tuple(scale * torch.randn(self.cardinalities[f], latent_dim, generator=g) for f in pair)
            for pair in PAIRS
        }
        # Each user's activity, standardised over impressions (users weighted by their frequency).
        a = torch.randn(n_users, generator=g, dtype=torch.float64)
        a = a - (self.freq["user"] * a).sum()
        self.user_activity = (a / (self.freq["user"] * a**2).sum().sqrt()).float()

    def sample_features(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` impressions' categorical values (Zipf-like) and standardised dense features.

        Price is drawn per impression; user activity is the user's own (``user_activity[user]``).
        """
        check_positive_int(n, "n")
        check_generator(generator)
        cols = {}
        for f in SPARSE_FIELDS:
            if f == "category":
                continue
            cols[f] = torch.multinomial(self.freq[f], n, replacement=True, generator=generator)
        cols["category"] = self.item_category[cols["item"]]
        sparse = torch.stack([cols[f] for f in SPARSE_FIELDS], dim=1)
        log_price = torch.randn(n, generator=generator)
        activity = self.user_activity[cols["user"]]
        return sparse, torch.stack([log_price, activity], dim=1)

    def logit(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """The true logit of each impression (see the module docstring)."""
        col = {f: sparse[:, i] for i, f in enumerate(SPARSE_FIELDS)}
        z = torch.full((sparse.shape[0],), self.bias)
        for f in SPARSE_FIELDS:
            z = z + self.w[f][col[f]]
        for (f, g), (uf, ug) in self.latent.items():
            z = z + (uf[col[f]] * ug[col[g]]).sum(1)
        price, activity = dense[:, 0], dense[:, 1]
        # Users like mid-priced items, and active users click more on cheap ones.
        h = -0.5 * price**2 + 0.5 - torch.tanh(2 * price) * torch.relu(activity)
        return z + self.nonlinear_scale * h

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> ClickLog:
        """``n`` impressions with bids (log-normal), true CTR and Bernoulli labels."""
        sparse, dense = self.sample_features(n, generator=generator)
        true_ctr = torch.sigmoid(self.logit(sparse, dense))
        labels = torch.bernoulli(true_ctr, generator=generator)
        bid = torch.exp(0.5 * torch.randn(n, generator=generator))
        return ClickLog(
            sparse,
            dense,
            bid,
            labels,
            true_ctr,
            cardinalities=tuple(self.cardinalities[f] for f in SPARSE_FIELDS),
        )


def _check_splits(n: int, splits: tuple[float, float, float]) -> None:
    """n is an int >= 3, and splits are three non-negative fractions that sum to 1."""
    check_int(n, "n", 3)
    if len(splits) != 3 or any(s < 0 for s in splits) or abs(sum(splits) - 1) > 1e-9:
        raise ValueError(f"splits must be three non-negative fractions summing to 1, got {splits}")


def make_click_log(
    n: int,
    *,
    generator: torch.Generator | None = None,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    **truth,
) -> tuple[ClickLog, ClickLog, ClickLog, ClickModel]:
    """Train / valid / test logs of ``n`` impressions in all, and the ``ClickModel`` that made them.

    One ``generator`` fixes everything: the truth is drawn from it first, then the ``n`` rows,
    which are split in order (train, then valid, then test). ``truth`` goes to ``ClickModel``
    (cardinalities, Zipf exponent, interaction and non-linear scales, bias).
    """
    _check_splits(n, splits)
    model = ClickModel(generator=generator, **truth)
    log = model.sample(n, generator=generator)
    n_train = round(splits[0] * n)
    n_valid = min(round(splits[1] * n), n - n_train)
    return log[:n_train], log[n_train : n_train + n_valid], log[n_train + n_valid :], model
