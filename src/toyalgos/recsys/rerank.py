"""Re-ranking a list for relevance and diversity: MMR, DPP MAP inference, list metrics.

A ranker scores each item alone; the list a user sees is a set, and a list of ten near-copies
of the best item is a poor list. Two classic re-rankers trade relevance for diversity:

- MMR (Carbonell & Goldstein 1998, Eq. 2): pick, one at a time,
  argmax_{i not in S} [lam * rel_i - (1 - lam) * max_{j in S} sim(i, j)].
- DPP (Chen, Zhang & Zhou, NeurIPS 2018): score a set Y by log det L_Y with the kernel
  L = Diag(r) S Diag(r) (S: item similarities, PSD; r: relevance), so
  log det L_Y = sum_{i in Y} log r_i^2 + log det S_Y: relevance times the squared volume
  spanned by the items' feature vectors. Exact MAP is NP-hard; the greedy adds the item
  with the largest gain log det L_{Y+i} - log det L_Y. Their fast greedy keeps an
  incremental Cholesky factor, so step t costs O(t M) and k steps O(k^2 M) (Algorithm 1).

List metrics: NDCG (linear gain, as scikit-learn's ``ndcg_score``), intra-list average
distance (ILAD) and category coverage.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from toyalgos.core.checks import check_int, check_number, check_positive_int, check_tensor


def _check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as float64 when every value is finite."""
    x = check_tensor(x, name).double()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {int((~torch.isfinite(x)).sum())} NaN or inf values")
    return x


def check_kernel(kernel: torch.Tensor, name: str = "kernel", tol: float = 1e-8) -> torch.Tensor:
    """A finite, symmetric (M, M) matrix with a non-negative diagonal, as float64.

    A DPP's kernel must also be positive semi-definite (every det L_Y >= 0). Checking that
    takes an O(M^3) eigendecomposition, more than the fast greedy itself, so the greedy
    solvers check it on the way instead: a squared distance d_i^2 below ``-tol * max L_ii``
    (or a negative determinant) raises. ``check_psd`` does the full check.
    """
    K = _check_finite(kernel, name)
    if K.dim() != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square (M, M) matrix, got shape {tuple(K.shape)}")
    scale = K.abs().max().clamp(min=1e-300)
    if (K - K.T).abs().max() > tol * scale:
        raise ValueError(f"{name} must be symmetric")
    if K.diagonal().min() < -tol * scale:
        raise ValueError(f"{name} must be positive semi-definite, got a negative diagonal entry")
    return K


def check_psd(kernel: torch.Tensor, name: str = "kernel", tol: float = 1e-8) -> torch.Tensor:
    """``check_kernel``, and every eigenvalue >= ``-tol * max |L|`` (rounding): positive semi-definite."""
    K = check_kernel(kernel, name, tol)
    low = torch.linalg.eigvalsh(K).min()
    if low < -tol * K.abs().max().clamp(min=1e-300):
        raise ValueError(f"{name} must be positive semi-definite, got an eigenvalue {low.item():.3g} < 0")
    return K


def _check_square(kernel: torch.Tensor) -> torch.Tensor:
    """A non-empty (M, M) tensor as float64; its values are checked row by row as they are read."""
    K = check_tensor(kernel, "kernel").double()
    if K.dim() != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"kernel must be a non-empty square (M, M) matrix, got shape {tuple(K.shape)}")
    return K


def _finite_row(row: torch.Tensor, what: str) -> torch.Tensor:
    """A row of the kernel, if every value is finite."""
    if not torch.isfinite(row).all():
        raise ValueError(f"kernel must be finite, got NaN or inf in its {what}")
    return row


def _check_read(kernel: torch.Tensor, picks: list[int], d2: torch.Tensor, tol: float = 1e-8) -> None:
    """After a greedy run: the rows it read are finite, symmetric among the picks, and no squared
    distance went negative (d_i^2 only decreases, so its last value shows any negative one)."""
    _finite_row(kernel[picks], "picked rows")
    sub = kernel[picks][:, picks]
    if (sub - sub.T).abs().max() > tol * sub.abs().max().clamp(min=1e-300):
        raise ValueError("kernel must be symmetric")
    unpicked = d2[torch.isfinite(d2)]
    if unpicked.numel():
        _not_psd(unpicked.min().item(), kernel)


def _not_psd(value: float, kernel: torch.Tensor, tol: float = 1e-8) -> None:
    if value < -tol * kernel.diagonal().max().item():
        raise ValueError(f"kernel must be positive semi-definite, found a squared distance {value:.3g} < 0")


def _check_k(k: int, M: int) -> int:
    check_positive_int(k, "k")
    if k > M:
        raise ValueError(f"k must be at most the number of items M={M}, got k={k}")
    return k


# --- MMR ----------------------------------------------------------------------------------


def mmr(relevance: torch.Tensor, similarity: torch.Tensor, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance (Carbonell & Goldstein 1998, Eq. 2): k items, greedily.

    Each step picks argmax_{i not in S} [lam * relevance_i - (1 - lam) * max_{j in S} sim(i, j)];
    the first pick is the most relevant item. ``lam = 1`` sorts by relevance; ``lam = 0`` ignores it
    after the first pick. Ties go to the lower index. Returns item indices in pick order.
    """
    rel = _check_finite(relevance, "relevance")
    S = _check_finite(similarity, "similarity")
    M = rel.shape[0]
    if rel.dim() != 1 or S.shape != (M, M):
        raise ValueError(
            f"relevance must be (M,) and similarity (M, M), got {tuple(rel.shape)}, {tuple(S.shape)}"
        )
    _check_k(k, M)
    lam = check_number(lam, "lam", 0, 1)
    i = int(rel.argmax())
    picks, chosen = [i], torch.zeros(M, dtype=torch.bool)
    chosen[i] = True
    max_sim = S[i].clone()  # (M,) max_{j in S} sim(i, j)
    while len(picks) < k:
        score = (lam * rel - (1 - lam) * max_sim).masked_fill(chosen, -math.inf)
        i = int(score.argmax())
        picks.append(i)
        chosen[i] = True
        max_sim = torch.maximum(max_sim, S[i])
    return picks


# --- DPP ----------------------------------------------------------------------------------


def dpp_kernel(relevance: torch.Tensor, similarity: torch.Tensor, theta: float) -> torch.Tensor:
    """L = Diag(r') S Diag(r') with r'_i = exp(alpha r_i), alpha = theta / (2 (1 - theta)).

    Chen et al. (2018, Sec. 4.1): log det L_Y = 2 alpha sum_{i in Y} r_i + log det S_Y, which is
    proportional to theta sum r_i + (1 - theta) log det S_Y, so ``theta`` trades relevance
    (theta -> 1) against diversity (theta = 0: the volume alone). ``theta`` lies in [0, 1);
    theta = 1 would be an infinite alpha (sort by relevance instead). ``similarity`` must be PSD;
    that is checked by the solvers as they go (``check_psd`` checks it at once, in O(M^3)).
    """
    rel = _check_finite(relevance, "relevance")
    S = check_kernel(similarity, "similarity")
    if rel.dim() != 1 or S.shape[0] != rel.shape[0]:
        raise ValueError(f"relevance must be (M,) with M={S.shape[0]}, got shape {tuple(rel.shape)}")
    theta = check_number(theta, "theta", 0, 1, high_open=True)
    r = torch.exp(theta / (2 * (1 - theta)) * rel)  # (M,)
    return r[:, None] * S * r[None, :]


def log_det(kernel: torch.Tensor, items: Sequence[int]) -> float:
    """log det L_Y of the principal submatrix on ``items`` (-inf when it is singular)."""
    K = check_tensor(kernel, "kernel").double()
    idx = torch.as_tensor(list(items), dtype=torch.long)
    sign, value = torch.linalg.slogdet(K[idx][:, idx])
    return value.item() if sign > 0 else -math.inf


def dpp_greedy(kernel: torch.Tensor, k: int, *, eps: float = 1e-10) -> list[int]:
    """Fast greedy MAP inference for a DPP (Chen, Zhang & Zhou 2018, Algorithm 1), O(k^2 M).

    It reads only the diagonal and the k picked rows of L, and checks what it read when it is
    done (finite values, symmetry among the picks, no negative squared distance d_i^2), so
    that checking costs O(kM), not the O(M^2) of reading all of L.

    With the Cholesky factor of L_Y, adding item i multiplies det L_Y by d_i^2, the squared
    distance of i from the span of Y in the kernel's geometry. Keep for every item a row c_i
    (its Cholesky entries against Y) and d_i^2; after picking j, for every item i (Eq. 8-10):

        e_i = (L_ji - <c_j, c_i>) / d_j,   c_i <- [c_i, e_i],   d_i^2 <- d_i^2 - e_i^2,

    and pick next argmax_i d_i^2. Stops early, returning fewer than k items, when the best
    d_i^2 falls below ``eps`` (every remaining item lies in the span: det L_Y would be 0).
    """
    L = _check_square(kernel)
    M = L.shape[0]
    _check_k(k, M)
    K = L.cpu().numpy()  # NumPy: the loop is k small steps, where torch's per-call cost would dominate
    c = np.zeros((k, M))  # c[t, i]: Cholesky entry of item i against pick t
    d2 = K.diagonal().copy()  # (M,) d_i^2 = L_ii - |c_i|^2
    j = int(d2.argmax())
    picks = [j]
    while len(picks) < k:
        t = len(picks) - 1
        e = (K[j] - c[:t, j] @ c[:t]) / math.sqrt(d2[j])  # (M,) Eq. 9
        c[t] = e
        d2 -= e**2  # Eq. 10
        d2[j] = -math.inf  # picked
        j = int(d2.argmax())
        if d2[j] < eps:
            break
        picks.append(j)
    _check_read(L, picks, torch.from_numpy(d2))
    return picks


def dpp_greedy_naive(kernel: torch.Tensor, k: int, *, eps: float = 1e-10) -> list[int]:
    """The same greedy, written directly: each step scores every candidate by log det L_{Y+i}.

    One batched ``slogdet`` over all M candidates per step: O(M t^3) at step t, O(k^4 M) in all
    (the cost the fast greedy removes). Stops, as the fast one, when the best det ratio
    det L_{Y+i} / det L_Y falls below ``eps``.
    """
    L = check_kernel(kernel)
    M = L.shape[0]
    _check_k(k, M)
    picks: list[int] = []
    current = 0.0  # log det L_Y, with det of the empty matrix = 1
    while len(picks) < k:
        Y = torch.tensor(picks, dtype=torch.long)
        cand = torch.arange(M)
        sets = torch.cat([Y.expand(M, len(picks)), cand[:, None]], dim=1)  # (M, t+1): Y then i
        sub = L[sets[:, :, None], sets[:, None, :]]  # (M, t+1, t+1)
        sign, value = torch.linalg.slogdet(sub)
        ratio = sign * torch.exp(value - current)  # det L_{Y+i} / det L_Y = d_i^2
        ratio[picks] = math.inf
        _not_psd(ratio.min().item(), L)
        gain = torch.where(sign > 0, value - current, torch.tensor(-math.inf, dtype=torch.float64))
        gain[picks] = -math.inf
        j = int(gain.argmax())
        if gain[j] < math.log(eps):
            break
        picks.append(j)
        current = value[j].item()
    return picks


def dpp_map_bruteforce(kernel: torch.Tensor, k: int) -> list[int]:
    """The exact MAP set: argmax over all C(M, k) subsets of log det L_Y (tiny M only).

    One batched ``slogdet`` over every subset; refuses more than 200,000 subsets. Returns the
    set's items in increasing order.
    """
    L = check_psd(kernel)
    M = L.shape[0]
    _check_k(k, M)
    if math.comb(M, k) > 200_000:
        raise ValueError(f"C({M}, {k}) = {math.comb(M, k):,} subsets: too many for brute force (max 200,000)")
    sets = torch.tensor(list(itertools.combinations(range(M), k)), dtype=torch.long)  # (C, k)
    sign, value = torch.linalg.slogdet(L[sets[:, :, None], sets[:, None, :]])
    value = torch.where(sign > 0, value, torch.tensor(-math.inf, dtype=torch.float64))
    return sets[int(value.argmax())].tolist()


def dpp_sliding_window(kernel: torch.Tensor, k: int, window: int, *, eps: float = 1e-10) -> list[int]:
    """Greedy MAP with a sliding window (Chen et al. 2018, Sec. 5): diverse among neighbours only.

    Each step picks argmax_i det L_{W+i} / det L_W, where W holds the last ``window - 1`` picks,
    so an item only has to differ from the items just above it in a long list. Here the
    conditional variance d_i^2 = L_ii - L_iW L_W^{-1} L_Wi is recomputed from a Cholesky factor
    of the window at each step, O(w^2 M) (the paper updates the factor in place with Givens
    rotations at the same order of cost). With ``window >= k`` it is ``dpp_greedy``.
    """
    L = check_kernel(kernel)
    M = L.shape[0]
    _check_k(k, M)
    check_int(window, "window", 1)
    picks: list[int] = []
    while len(picks) < k:
        W = picks[max(0, len(picks) - window + 1) :] if window > 1 else []
        d2 = L.diagonal().clone()  # (M,)
        if W:
            chol = torch.linalg.cholesky(L[W][:, W])  # (w, w)
            V = torch.linalg.solve_triangular(chol, L[W], upper=False)  # (w, M): c_i for every item
            d2 = d2 - (V**2).sum(0)
        d2[picks] = math.inf
        _not_psd(d2.min().item(), L)
        d2[picks] = -math.inf
        j = int(d2.argmax())
        if d2[j] < eps:
            break
        picks.append(j)
    return picks


# --- List metrics -------------------------------------------------------------------------


def ndcg(gains: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """NDCG@k of lists whose items' gains are given in display order, shape (..., L) -> (...).

    DCG@k = sum_{p <= k} g_p / log2(p + 1), divided by the DCG of the same gains sorted in
    decreasing order (linear gain, as ``sklearn.metrics.ndcg_score``). A list without any
    positive gain has NDCG 0. Gains must be finite and non-negative.
    """
    g = _check_finite(gains, "gains")
    if g.dim() == 0 or g.shape[-1] == 0:
        raise ValueError(f"gains must have a last dimension of length >= 1, got shape {tuple(g.shape)}")
    if (g < 0).any():
        raise ValueError("gains must be non-negative")
    k = g.shape[-1] if k is None else check_positive_int(k, "k")
    discount = 1 / torch.log2(torch.arange(2, g.shape[-1] + 2, dtype=torch.float64))  # (L,)
    discount[k:] = 0
    dcg = (g * discount).sum(-1)
    ideal = (g.sort(-1, descending=True).values * discount).sum(-1)
    return torch.where(ideal > 0, dcg / ideal.clamp(min=1e-300), torch.zeros_like(dcg))


def ilad(features: torch.Tensor) -> torch.Tensor:
    """Intra-list average distance: mean over pairs i != j of 1 - cos(f_i, f_j); (..., L, d) -> (...).

    0 for a list of copies, 1 for mutually orthogonal items (above 1 when items point apart).
    Needs at least two items.
    """
    f = _check_finite(features, "features")
    if f.dim() < 2 or f.shape[-2] < 2:
        raise ValueError(f"features must be (..., L, d) with L >= 2 items, got shape {tuple(f.shape)}")
    u = f / f.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    cos = u @ u.transpose(-1, -2)  # (..., L, L)
    L = f.shape[-2]
    off_diagonal = cos.sum((-1, -2)) - cos.diagonal(dim1=-2, dim2=-1).sum(-1)  # sum_{i != j} cos
    return 1 - off_diagonal / (L * (L - 1))


def coverage(categories: torch.Tensor, n_categories: int) -> torch.Tensor:
    """Share of the ``n_categories`` categories that appear in each list; (..., L) ints -> (...)."""
    c = check_tensor(categories, "categories")
    check_positive_int(n_categories, "n_categories")
    if c.is_floating_point() or c.dim() == 0:
        raise TypeError(f"categories must be an integer tensor (..., L), got {c.dtype} {tuple(c.shape)}")
    if c.numel() and (c.min() < 0 or c.max() >= n_categories):
        raise ValueError(
            f"categories must lie in [0, {n_categories}), got {c.min().item()}..{c.max().item()}"
        )
    present = torch.zeros(*c.shape[:-1], n_categories, dtype=torch.bool)
    present.scatter_(-1, c.long(), True)
    return present.double().mean(-1)


# --- A catalogue of items with categories -------------------------------------------------


class ItemCatalog(NamedTuple):
    """Items as unit feature vectors in category clusters: ``features`` (M, d), ``category`` (M,)."""

    features: torch.Tensor  # (M, d) float64, unit rows
    category: torch.Tensor  # (M,) int64 in [0, n_categories)
    n_categories: int

    def similarity(self) -> torch.Tensor:
        """S_ij = <f_i, f_j>, the cosine of two items: a Gram matrix, so PSD."""
        return self.features @ self.features.T


def make_item_catalog(
    n_items: int = 200,
    n_categories: int = 8,
    dim: int = 8,
    *,
    spread: float = 0.5,
    generator: torch.Generator | None = None,
) -> ItemCatalog:
    """``n_items`` unit vectors: a random unit centre per category plus ``spread`` x Gaussian noise.

    Items of one category are similar (cosine about 1 / (1 + spread^2)), items of two
    categories nearly orthogonal when ``dim`` is large enough. Categories are drawn uniformly.
    """
    check_positive_int(n_items, "n_items")
    check_positive_int(n_categories, "n_categories")
    check_positive_int(dim, "dim")
    check_number(spread, "spread", 0)
    centres = torch.randn(n_categories, dim, generator=generator, dtype=torch.float64)
    centres = centres / centres.norm(dim=1, keepdim=True)
    category = torch.randint(n_categories, (n_items,), generator=generator)
    f = centres[category] + spread / dim**0.5 * torch.randn(
        n_items, dim, generator=generator, dtype=torch.float64
    )
    return ItemCatalog(f / f.norm(dim=1, keepdim=True), category, n_categories)
