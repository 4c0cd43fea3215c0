"""PRM, the personalized re-ranking model (Pei et al., RecSys 2019, arXiv:1904.06813), and a list
click model in which an item's clicks depend on the items above it.

A pointwise ranker scores each item alone, so it cannot see that the third shoe in a row
gets fewer clicks than the first. PRM reads the whole initial list at once (Sec. 4):

    input  E = [x_i ; pv_i] + pe_i          item features, a pre-trained ranker's output, and a
                                            learned embedding of the item's initial rank (Eq. 4-5)
    encode N Transformer blocks (self-attention over the list, then a feed-forward layer)
    output softmax over the list of a linear score per item (Eq. 11); trained with the
           cross-entropy of the clicks (Eq. 12), then the list is re-sorted by score.

Without the position embedding and with every rotary angle 0, nothing marks an item's place,
so permuting the input list permutes the scores the same way (permutation equivariance).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from toyalgos.core import evaluating
from toyalgos.core.checks import check_number, check_positive_int, check_tensor
from toyalgos.nn import Block, TransformerConfig, learned_positions
from toyalgos.nn.transformer import Part

from .rerank import ItemCatalog


class PRM(nn.Module):
    """``model(x) -> scores``: x (N, L, item_dim) in initial-rank order, scores (N, L).

    ``position_embedding`` is a part ``config -> module`` mapping ranks (L,) to (L, d_model)
    vectors (default: a learned table, the paper's pe), or ``None`` for none. Attention is
    ``toyalgos.nn``'s, with all rotary angles 0: the only position signal is the embedding.
    """

    def __init__(
        self,
        item_dim: int,
        *,
        d_model: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
        max_len: int = 64,
        position_embedding: Part | None = learned_positions,
    ):
        super().__init__()
        check_positive_int(item_dim, "item_dim")
        self.config = TransformerConfig(1, d_model, n_layers, n_heads, max_len, mlp_ratio=2)
        self.item_dim = item_dim
        self.input = nn.Linear(item_dim, d_model)  # the paper's W^E on [x_i ; pv_i]
        self.rank_emb = None if position_embedding is None else position_embedding(self.config)
        self.blocks = nn.ModuleList(Block(self.config) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.score = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", dim=3, dtype="float")
        N, L, D = x.shape
        if D != self.item_dim or L > self.config.max_len:
            raise ValueError(
                f"x must be (N, L <= {self.config.max_len}, {self.item_dim}), got {tuple(x.shape)}"
            )
        h = self.input(x)  # (N, L, d_model)
        if self.rank_emb is not None:
            h = h + self.rank_emb(torch.arange(L, device=x.device))
        no_rotation = torch.zeros(L, device=x.device)  # rotary angle 0: attention sees no order
        for block in self.blocks:
            h = block(h, no_rotation)
        return self.score(self.norm(h)).squeeze(-1)  # (N, L)


def prm_loss(model: nn.Module, x: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
    """PRM's loss (Eq. 12): -sum_i y_i log softmax(scores)_i per list, averaged over lists.

    ``clicks`` (N, L) in {0, 1}; a list without clicks adds 0 (it says nothing about the order).
    """
    logp = torch.log_softmax(model(x), dim=-1)
    return -(clicks * logp).sum(-1).mean()


def rerank_order(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The permutation (N, L) that sorts each list by the model's scores, highest first."""
    with evaluating(model):
        return model(x).argsort(dim=-1, descending=True)


# --- Lists whose clicks depend on what is above ------------------------------------------


class RankedLists(NamedTuple):
    """N initial lists of L items, in the initial ranker's order, with logged clicks."""

    items: torch.Tensor  # (N, L) item ids
    category: torch.Tensor  # (N, L) their categories
    attractiveness: torch.Tensor  # (N, L) true logit of a click on the item alone
    score: torch.Tensor  # (N, L) the initial ranker's score (a noisy estimate of attractiveness)
    features: torch.Tensor  # (N, L, d + C + 1) PRM's input [item vector ; category one-hot ; score]
    clicks: torch.Tensor  # (N, L) float {0, 1}, drawn with the list shown in this order


def context_click_probability(
    attractiveness: torch.Tensor,
    category: torch.Tensor,
    *,
    fatigue: float = 0.3,
    position_bias: float = 0.5,
) -> torch.Tensor:
    """P(click) of each item of lists shown in the given order, (N, L) -> (N, L).

    sigmoid(attractiveness) x (1 / log2(p + 2))^position_bias x fatigue^(items of the same
    category above it): lower slots are looked at less (``position_bias`` = 0: every slot is
    seen), and a user who has seen the category already clicks it less.
    """
    check_number(fatigue, "fatigue", 0, 1)
    check_number(position_bias, "position_bias", 0)
    L = category.shape[-1]
    same = category[..., :, None] == category[..., None, :]  # (N, L, L) same[p, q]
    above = torch.ones(L, L, dtype=torch.bool).tril(-1)  # q < p
    repeats = (same & above).sum(-1)  # (N, L)
    position = torch.log2(torch.arange(L, dtype=torch.float64) + 2) ** -position_bias
    return torch.sigmoid(attractiveness.double()) * position * fatigue ** repeats.double()


def make_ranked_lists(
    catalog: ItemCatalog,
    n_lists: int,
    list_len: int = 30,
    *,
    score_noise: float = 0.5,
    fatigue: float = 0.3,
    position_bias: float = 0.5,
    generator: torch.Generator | None = None,
) -> RankedLists:
    """Requests from random users; each list is the top ``list_len`` items by a noisy score.

    A user is a random direction u; an item's attractiveness is 3 <u, f_i> - 1, the ranker's
    score adds Gaussian noise of std ``score_noise``, and the clicks are drawn with
    ``context_click_probability`` for the list in the ranker's order. PRM's input per item is
    the item's vector, its category (one-hot) and the ranker's score.
    """
    check_positive_int(n_lists, "n_lists")
    M, d = catalog.features.shape
    check_positive_int(list_len, "list_len")
    if list_len > M:
        raise ValueError(f"list_len must be at most the catalogue's size {M}, got {list_len}")
    users = torch.randn(n_lists, d, generator=generator, dtype=torch.float64)
    users = users / users.norm(dim=1, keepdim=True)
    attract_all = 3 * users @ catalog.features.T - 1  # (N, M)
    score_all = attract_all + score_noise * torch.randn(n_lists, M, generator=generator, dtype=torch.float64)
    score, items = score_all.topk(list_len, dim=1)  # (N, L), sorted by score
    attract = attract_all.gather(1, items)
    category = catalog.category[items]
    p = context_click_probability(attract, category, fatigue=fatigue, position_bias=position_bias)
    clicks = torch.bernoulli(p, generator=generator).float()
    one_hot = torch.nn.functional.one_hot(category, catalog.n_categories)
    features = torch.cat([catalog.features[items], one_hot, score[..., None]], dim=-1).float()
    return RankedLists(items, category, attract, score, features, clicks)
