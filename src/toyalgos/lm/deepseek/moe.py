"""DeepSeekMoE with auxiliary-loss-free load balancing (DeepSeek-V3, arXiv 2412.19437, §2.1.2).

The layer (Eqs. 12-15): a token's hidden state u goes through ``n_shared`` shared experts,
which every token uses, and through the K of ``n_experts`` fine-grained routed experts with the
highest affinity,

    h' = u + sum_i FFN^s_i(u) + sum_i g_i FFN^r_i(u),
    s_i = sigmoid(u^T e_i)   (DeepSeek-V2: softmax over the experts),
    g_i = s_i / sum_{j in TopK} s_j   for the selected experts, 0 for the others.

(The block adds u itself: ``Block`` computes ``h + feed_forward(norm(h))``.) Every expert is a
SwiGLU MLP, ``w2(silu(w1 x) * w3 x)``, as in ``deepseek-ai/DeepSeek-V3`` ``inference/model.py``.

Balancing. A router left alone sends most tokens to a few experts. Two remedies, which V3 uses
together (``alpha`` = 1e-4, ``gamma`` = 1e-3) and which this layer takes as two numbers (0 = off):

- **Loss-free bias** (Eq. 16 and the update rule after it; Wang et al. 2024, arXiv 2408.15664,
  Alg. 1): a per-expert bias b_i is added to the scores *for the top-K selection only*; the
  gate values g_i still come from the unbiased s_i. After each training step, from that
  batch's load c_i (tokens routed to expert i), b_i <- b_i + gamma * sign(mean(c) - c_i): an
  overloaded expert becomes less attractive, an underloaded one more. It takes no gradient.
- **Sequence-wise auxiliary loss** (Eqs. 17-20): L_Bal = alpha sum_i f_i P_i per sequence of T
  tokens, with f_i = N_r / (K T) * #(tokens of the sequence that select i) and P_i the mean over
  the sequence of the normalised affinities s_i / sum_j s_j. Only P_i carries a gradient.

When the bias is updated. Wang et al.'s Alg. 1 trains on a batch, then counts that batch's load
and updates b; V3 updates it at the end of each step. ``core.train`` has no hook after the
optimiser step, and the update needs nothing from that step: it reads only the batch's routing,
which the forward pass has already made, and b does not enter the gradient (it only chose the
experts). So the layer updates b at the end of each forward pass in training mode, from that
forward's load; the sequence of biases and weights is the same as Alg. 1's, since the next
batch is the first to be routed with the new b either way. One training step must therefore
make one forward pass (``core.train`` does; gradient accumulation over micro-batches would
update once per micro-batch); evaluation (``evaluating``, eval mode) never moves the bias.
The auxiliary term reaches the training loss through ``moe_ar_loss``, which adds every layer's
``last_balance`` to the next-token loss and returns both as ``Loss`` terms.

Group-limited routing (V3's node-limited routing, M = 4 of 8 groups): the experts form
``n_groups`` equal groups; each token first keeps the ``topk_groups`` groups with the largest
sum of their best K / ``topk_groups`` selection scores (V3: the best 2 of 8 per node), then picks
its K experts inside them. Load statistics: ``expert_counts`` (the load c_i of one batch),
``expert_load`` (a model's load on held-out tokens, per layer), ``max_violation`` (Wang et al.'s
MaxVio = (max_i c_i - mean c) / mean c) and ``RoutingLog`` (every training step's load and bias).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Loss, evaluating
from toyalgos.core.checks import check_choice, check_int, check_number, check_positive_int, check_tensor
from toyalgos.nn import TransformerConfig

from ..autoregressive import ar_loss
from ..checks import check_tokens

AFFINITIES = ("sigmoid", "softmax")


class Routing(NamedTuple):
    """Which experts each token uses: ``weights`` ``(T, K)`` the gate values g, ``indices`` ``(T, K)``."""

    weights: torch.Tensor
    indices: torch.Tensor


# --------------------------------------------------------------------------------- the gate


def expert_affinity(logits: torch.Tensor, kind: str = "sigmoid") -> torch.Tensor:
    """Token-to-expert affinities s_{i,t} from the logits u_t^T e_i (Eq. 14): sigmoid or softmax."""
    check_choice(kind, "affinity", AFFINITIES)
    return logits.sigmoid() if kind == "sigmoid" else logits.softmax(dim=-1)


def _group_limit(selection: torch.Tensor, n_groups: int, topk_groups: int, top_k: int) -> torch.Tensor:
    """Scores of experts outside each token's ``topk_groups`` best groups set to -inf, ``(T, E)``."""
    T, E = selection.shape
    grouped = selection.view(T, n_groups, E // n_groups)
    per_group = min(max(1, top_k // topk_groups), E // n_groups)  # V3: K / M = 8 / 4 = 2
    group_score = grouped.topk(per_group, dim=-1).values.sum(-1)  # (T, n_groups)
    keep = torch.zeros_like(group_score, dtype=torch.bool)
    keep.scatter_(1, group_score.topk(topk_groups, dim=-1).indices, True)
    return grouped.masked_fill(~keep[..., None], -math.inf).view(T, E)


def _check_routing(n_experts: int, top_k: int, n_groups: int, topk_groups: int) -> None:
    """K experts must be available: at most ``n_experts``, and at most those in the kept groups."""
    check_int(top_k, "top_k", 1, n_experts)
    check_positive_int(n_groups, "n_groups")
    if n_experts % n_groups:
        raise ValueError(f"n_groups must divide n_experts, got n_experts={n_experts}, n_groups={n_groups}")
    check_int(topk_groups, "topk_groups", 1, n_groups)
    if top_k > topk_groups * (n_experts // n_groups):
        raise ValueError(
            f"top_k={top_k} exceeds the {topk_groups * (n_experts // n_groups)} experts in "
            f"topk_groups={topk_groups} groups of {n_experts // n_groups}"
        )


def route_tokens(
    scores: torch.Tensor,
    bias: torch.Tensor,
    top_k: int,
    *,
    n_groups: int = 1,
    topk_groups: int = 1,
    route_scale: float = 1.0,
) -> Routing:
    """Top-K on the biased scores, gates from the unbiased ones (Eqs. 13, 15, 16).

    ``scores`` ``(T, E)`` are the affinities s; ``bias`` ``(E,)`` the balancing bias b. The
    selection uses s + b (after the group limit when ``n_groups > 1``); the gate values are the
    *unbiased* s of the selected experts, normalised to sum to 1 over them (Eq. 13) and times
    ``route_scale`` (V3: 2.5). Returns ``Routing(weights, indices)``, both ``(T, K)``.
    """
    _check_routing(scores.shape[-1], top_k, n_groups, topk_groups)
    selection = scores.detach() + bias  # the bias only routes: no gradient, no gate value
    if n_groups > 1:
        selection = _group_limit(selection, n_groups, topk_groups, top_k)
    indices = selection.topk(top_k, dim=-1).indices  # (T, K)
    gates = scores.gather(-1, indices)  # the original, unbiased s
    return Routing(gates / gates.sum(-1, keepdim=True) * route_scale, indices)


# -------------------------------------------------------------------------------- balancing


def expert_counts(indices: torch.Tensor, n_experts: int) -> torch.Tensor:
    """The load c_i: how many tokens chose expert i, float32 ``(E,)`` from the ``(T, K)`` indices."""
    return torch.bincount(indices.reshape(-1), minlength=n_experts).to(torch.float32)


def bias_update(bias: torch.Tensor, load: torch.Tensor, gamma: float) -> torch.Tensor:
    """V3's bias update (§2.1.2, after Eq. 16) / Wang et al. Alg. 1: b_i + gamma * sign(mean(c) - c_i).

    ``bias`` ``(E,)``, ``load`` ``(E,)`` the batch's load c_i; returns the new bias ``(E,)``.

    An overloaded expert (c_i above the mean) moves down by gamma, an underloaded one up; an
    expert exactly at the mean keeps its bias.
    """
    check_number(gamma, "gamma", 0)
    error = load.mean() - load  # e_i = c_bar - c_i
    return bias + gamma * torch.sign(error).to(bias.dtype)


def balance_term(scores: torch.Tensor, indices: torch.Tensor, *, alpha: float) -> torch.Tensor:
    """The sequence-wise balance loss L_Bal = alpha * sum_i f_i P_i (Eqs. 17-20), mean over sequences.

    ``scores`` ``(N, T, E)``: the unbiased affinities of N sequences of T tokens; ``indices``
    ``(N, T, K)``: the experts each token selected. f_i = E / (K T) * #(tokens choosing i) is
    1 for every expert under perfect balance; P_i = (1/T) sum_t s_{i,t} / sum_j s_{j,t}. The
    gradient flows through P only (f is a count).
    """
    check_number(alpha, "alpha", 0)
    N, T, E = scores.shape
    K = indices.shape[-1]
    chosen = torch.zeros(N, T, E, device=scores.device).scatter_(-1, indices, 1.0)  # 1[i in TopK]
    f = chosen.sum(1) * E / (K * T)  # (N, E), Eq. 18
    P = (scores / scores.sum(-1, keepdim=True)).mean(1)  # (N, E), Eqs. 19-20
    return alpha * (f * P).sum(-1).mean()  # Eq. 17, averaged over the sequences


def max_violation(load: torch.Tensor) -> float:
    """MaxVio = (max_i c_i - mean c) / mean c of a per-expert load (Wang et al. 2024).

    0 for a perfectly balanced load; E - 1 when one expert takes everything. ``load`` is
    ``(E,)``, or ``(layers, E)``, whose MaxVio is the mean over layers (as Wang et al. report).
    """
    load = check_tensor(load, "load", dim=(1, 2)).double()
    if (load < 0).any() or (load.sum(-1) <= 0).any():
        raise ValueError("load must be non-negative counts with a positive total per layer")
    mean = load.mean(-1)
    return ((load.amax(-1) - mean) / mean).mean().item()


# ---------------------------------------------------------------------------------- experts


class Expert(nn.Module):
    """One expert: ``w2(silu(w1 x) * w3 x)``, no biases (V3's ``Expert`` and ``MLP``)."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(d_model, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d_model, bias=False)
        self.w3 = nn.Linear(d_model, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def _check_moe(
    n_experts: int,
    top_k: int,
    d_expert: int,
    n_shared: int,
    affinity: str,
    n_groups: int,
    topk_groups: int,
    route_scale: float,
    alpha: float,
    gamma: float,
) -> None:
    check_positive_int(n_experts, "n_experts")
    check_positive_int(d_expert, "d_expert")
    _check_routing(n_experts, top_k, n_groups, topk_groups)
    check_int(n_shared, "n_shared", 0)
    check_choice(affinity, "affinity", AFFINITIES)
    check_number(route_scale, "route_scale", 0, low_open=True)
    check_number(alpha, "alpha", 0)
    check_number(gamma, "gamma", 0)


class MoE(nn.Module):
    """DeepSeekMoE feed-forward: ``moe(h) -> h``, ``h`` of shape ``(N, L, d_model)`` or ``(T, d_model)``.

    Args:
        d_model: width of the token states.
        n_experts: routed experts N_r (V3: 256).
        top_k: routed experts per token K_r (V3: 8); at most ``n_experts``.
        d_expert: hidden width of each expert (V3: 2048); the shared part has
            ``n_shared * d_expert``.
        n_shared: shared experts N_s (V3: 1; 0 for none).
        affinity: ``'sigmoid'`` (V3) or ``'softmax'`` (V2); gates are normalised over the
            selected experts either way.
        n_groups: expert groups for group-limited routing (V3: 8); 1 for none.
        topk_groups: groups each token may use (V3: 4); 1 for none.
        route_scale: factor on the gates (V3: 2.5).
        alpha: weight of the sequence-wise balance loss (Eq. 17); 0 for none (V3: 1e-4).
        gamma: bias update speed (Eq. 16); 0 for none (V3: 1e-3).

    After a forward pass, ``last_load`` ``(E,)`` holds its load c_i and ``last_balance`` its
    balance loss (0 when ``alpha`` is 0), which ``moe_ar_loss`` adds to the training loss. In
    training mode with ``gamma > 0`` the pass ends with the bias update (``bias_update``).
    """

    def __init__(
        self,
        d_model: int,
        n_experts: int,
        top_k: int,
        d_expert: int,
        *,
        n_shared: int = 1,
        affinity: str = "sigmoid",
        n_groups: int = 1,
        topk_groups: int = 1,
        route_scale: float = 1.0,
        alpha: float = 0.0,
        gamma: float = 0.0,
    ):
        super().__init__()
        check_positive_int(d_model, "d_model")
        _check_moe(
            n_experts, top_k, d_expert, n_shared, affinity, n_groups, topk_groups, route_scale, alpha, gamma
        )
        self.n_experts, self.top_k, self.affinity = n_experts, top_k, affinity
        self.n_groups, self.topk_groups, self.route_scale = n_groups, topk_groups, float(route_scale)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.gate = nn.Linear(d_model, n_experts, bias=False)  # the centroids e_i
        self.register_buffer("bias", torch.zeros(n_experts))  # b_i: routing only, no gradient
        # the routed experts' w1, w3 (E, d, h) and w2 (E, h, d), stacked so that one batched matmul
        # runs every expert on its own tokens
        self.w1 = nn.Parameter(torch.empty(n_experts, d_model, d_expert))
        self.w3 = nn.Parameter(torch.empty(n_experts, d_model, d_expert))
        self.w2 = nn.Parameter(torch.empty(n_experts, d_expert, d_model))
        for w in (self.w1, self.w2, self.w3):
            nn.init.normal_(w, std=0.02)  # GPT-2's initialisation, as the Transformer's other weights
        self.shared = Expert(d_model, n_shared * d_expert) if n_shared else None
        self.last_load = torch.zeros(n_experts)
        self.last_balance = torch.zeros(())

    def extra_repr(self) -> str:
        return (
            f"n_experts={self.n_experts}, top_k={self.top_k}, affinity={self.affinity!r}, "
            f"n_groups={self.n_groups}, topk_groups={self.topk_groups}, alpha={self.alpha:g}, "
            f"gamma={self.gamma:g}"
        )

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, Routing]:
        """Affinities s ``(T, E)`` of tokens ``x`` ``(T, d)`` and their ``Routing``."""
        scores = expert_affinity(self.gate(x), self.affinity)
        routing = route_tokens(
            scores,
            self.bias,
            self.top_k,
            n_groups=self.n_groups,
            topk_groups=self.topk_groups,
            route_scale=self.route_scale,
        )
        return scores, routing

    def combine(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        """sum_i g_i FFN_i(x) over each token's selected experts, ``(T, d)``.

        Only the selected experts run: the (token, slot) pairs are sorted by expert and packed
        into one ``(E, C, d)`` batch, C the busiest expert's load, so that three batched
        matmuls run every expert on its own tokens (the reference loops over the experts).
        """
        weights, indices = routing
        T, K = indices.shape
        flat = indices.reshape(-1)  # (T K,) the expert of each (token, slot)
        order = flat.argsort(stable=True)  # the slots grouped by expert
        expert, token = flat[order], order // K
        count = torch.bincount(flat, minlength=self.n_experts)
        slot = torch.arange(T * K, device=x.device) - (count.cumsum(0) - count)[expert]  # place in its group
        batch = x.new_zeros(self.n_experts, int(count.max()), x.shape[1]).index_put((expert, slot), x[token])
        out = torch.bmm(F.silu(torch.bmm(batch, self.w1)) * torch.bmm(batch, self.w3), self.w2)  # (E, C, d)
        gated = out[expert, slot] * weights.reshape(-1)[order, None]  # (T K, d)
        return torch.zeros_like(x).index_add(0, token, gated)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        check_tensor(h, "h", dim=(2, 3), dtype="float")
        x = h.reshape(-1, h.shape[-1])  # (T, d), T = N L
        scores, routing = self.route(x)
        y = self.combine(x, routing)
        if self.shared is not None:
            y = y + self.shared(x)
        load = expert_counts(routing.indices, self.n_experts)
        self.last_load = load
        if self.alpha > 0:
            seq = h.shape[-2] if h.dim() == 3 else len(x)  # a 2-D input is one sequence
            self.last_balance = balance_term(
                scores.view(-1, seq, self.n_experts),
                routing.indices.view(-1, seq, self.top_k),
                alpha=self.alpha,
            )
        else:
            self.last_balance = torch.zeros((), device=h.device)
        if self.training and self.gamma > 0:
            with torch.no_grad():
                self.bias.copy_(bias_update(self.bias, load, self.gamma))
        return y.view(h.shape)


def moe_feed_forward(
    n_experts: int,
    top_k: int,
    d_expert: int,
    *,
    n_shared: int = 1,
    affinity: str = "sigmoid",
    n_groups: int = 1,
    topk_groups: int = 1,
    route_scale: float = 1.0,
    alpha: float = 0.0,
    gamma: float = 0.0,
) -> Callable[[TransformerConfig], MoE]:
    """A ``feed_forward`` part for ``toyalgos.nn.Transformer``: ``config -> MoE(config.d_model, ...)``.

    ``Transformer(config, feed_forward=moe_feed_forward(16, 2, 16, gamma=1e-3))`` puts a MoE
    layer in every block. The options are checked here, before any model is built.
    """
    options = dict(
        n_shared=n_shared,
        affinity=affinity,
        n_groups=n_groups,
        topk_groups=topk_groups,
        route_scale=route_scale,
        alpha=alpha,
        gamma=gamma,
    )
    _check_moe(n_experts, top_k, d_expert, **options)

    def part(config: TransformerConfig) -> MoE:
        return MoE(config.d_model, n_experts, top_k, d_expert, **options)

    return part


# --------------------------------------------------------------------- training and statistics


def moe_layers(model: nn.Module) -> list[MoE]:
    """The ``MoE`` layers of ``model``, in order (first block first)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return [m for m in model.modules() if isinstance(m, MoE)]


def moe_ar_loss(model: nn.Module, x: torch.Tensor, *, pad_id: int | None = None) -> Loss:
    """Next-token cross-entropy plus every MoE layer's balance loss (Eq. 17), as ``Loss`` terms.

    ``x`` as for ``ar_loss`` (``<bos>`` then the sequence). ``terms``: ``'ce'`` and
    ``'balance'`` (the sum over layers; 0 for layers with ``alpha = 0``).
    """
    ce = ar_loss(model, x, pad_id=pad_id)
    balance = sum((m.last_balance for m in moe_layers(model)), torch.zeros((), device=ce.device))
    return Loss(ce + balance, {"ce": ce.detach(), "balance": balance.detach()})


def expert_load(model: nn.Module, tokens: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Per-layer expert load of ``model`` on ``tokens`` ``(N, L)``, float64 ``(layers, E)``.

    The model reads the tokens in eval mode (``evaluating``: no bias update), ``batch_size``
    rows at a time; ``max_violation`` of the result is Wang et al.'s MaxVio_global when the
    tokens are a held-out set.
    """
    check_tokens(tokens, "tokens")
    check_positive_int(batch_size, "batch_size")
    layers = moe_layers(model)
    if not layers:
        raise ValueError("model has no MoE layer")
    load = torch.zeros(len(layers), layers[0].n_experts, dtype=torch.float64)
    with evaluating(model):
        for chunk in tokens.split(batch_size):
            model(chunk)
            load += torch.stack([m.last_load.double().cpu() for m in layers])
    return load


class RoutingLog:
    """Records each training forward pass's load and bias in every MoE layer of a model.

    ``with RoutingLog(model) as log: train(...)``; then ``log.load`` and ``log.bias`` are
    ``(steps, layers, E)``: the load c_i of each step's batch and the bias after that step's
    update. Forward passes in eval mode (evaluation) are not recorded.
    """

    def __init__(self, model: nn.Module):
        self.layers = moe_layers(model)
        if not self.layers:
            raise ValueError("model has no MoE layer")
        self._loads: list[list[torch.Tensor]] = [[] for _ in self.layers]
        self._biases: list[list[torch.Tensor]] = [[] for _ in self.layers]
        self._handles: list = []

    def _record(self, k: int) -> Callable:
        def hook(module: MoE, inputs: object, output: object) -> None:
            if module.training:
                self._loads[k].append(module.last_load.detach().cpu())
                self._biases[k].append(module.bias.detach().cpu().clone())

        return hook

    def __enter__(self) -> RoutingLog:
        self._handles = [m.register_forward_hook(self._record(k)) for k, m in enumerate(self.layers)]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @staticmethod
    def _stack(per_layer: list[list[torch.Tensor]]) -> torch.Tensor:
        if not per_layer[0]:
            return torch.zeros(0, len(per_layer), 0)
        return torch.stack([torch.stack(steps) for steps in per_layer], dim=1)

    @property
    def load(self) -> torch.Tensor:
        """Load per training step, ``(steps, layers, E)``."""
        return self._stack(self._loads)

    @property
    def bias(self) -> torch.Tensor:
        """Bias after each training step, ``(steps, layers, E)``."""
        return self._stack(self._biases)
