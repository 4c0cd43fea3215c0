"""IsoFLOP curves and the power laws fitted through their minima (DeepSeek LLM §3.1-3.2).

DeepSeek LLM (arXiv:2401.02954) spends each compute budget C in several ways, C = M D: a
model of scale M (non-embedding FLOPs/token, ``flops_per_token``) trained on D = C / M tokens.
The validation loss of those runs against M is an IsoFLOP curve; its minimum is the best
model for that budget. The steps:

1. hyper-parameters from the budget (Eq. 1): eta_opt = 0.3118 C^-0.1250, B_opt = 0.2920 C^0.3271
   (B in tokens);
2. train every (C, M) pair for D = C / M tokens, with the multi-step schedule, and count the
   FLOPs actually spent (``IsoFlopSweep.flops``: M times the tokens trained, never above C);
3. fit a parabola to each curve in log M and take its vertex (``parabola_vertex``);
4. fit M_opt = k C^a and D_opt = (1 / k) C^(1 - a) through the vertices (``fit_power_law``),
   with confidence intervals, and predict a larger, held-out budget before running it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from toyalgos.core import progress_bar, train
from toyalgos.core.checks import check_generator, check_number, check_positive_int

from ..autoregressive import ar_loss
from ..checks import check_tokens
from .corpus import VOCAB_SIZE, TextCorpus, bits_per_byte, evenly_spaced_windows, random_windows
from .flops import flops_per_token
from .model import scaling_model


class Hyperparameters(NamedTuple):
    """Peak learning rate and batch size in tokens for a compute budget (Eq. 1)."""

    lr: float
    batch_tokens: float


def optimal_hyperparameters(budget: float) -> Hyperparameters:
    """DeepSeek LLM Eq. 1: eta_opt = 0.3118 C^-0.1250, B_opt = 0.2920 C^0.3271 tokens."""
    check_number(budget, "budget", 0, low_open=True)
    return Hyperparameters(0.3118 * budget**-0.1250, 0.2920 * budget**0.3271)


class IsoFlopRun(NamedTuple):
    """One training run: its budget, shape, hyper-parameters, the compute it spent and its loss."""

    budget: float
    d_model: int
    M: float  # non-embedding FLOPs per token
    tokens: int  # training tokens actually seen, D
    flops: float  # M * tokens, the compute spent (<= budget)
    steps: int
    batch_size: int  # sequences per step
    lr: float
    loss: float  # validation bits per byte
    train_loss: np.ndarray  # (steps,) training loss per step, nats per token


class IsoFlopSweep(NamedTuple):
    """Every run of a sweep, one entry per run in each array (``runs`` keeps the records)."""

    budget: np.ndarray
    d_model: np.ndarray
    M: np.ndarray
    tokens: np.ndarray
    flops: np.ndarray
    loss: np.ndarray
    runs: tuple[IsoFlopRun, ...]

    def at(self, budget: float) -> IsoFlopSweep:
        """The runs of one budget."""
        return _sweep([r for r in self.runs if r.budget == budget])


def _sweep(runs: list[IsoFlopRun]) -> IsoFlopSweep:
    def col(name: str) -> np.ndarray:
        return np.array([getattr(r, name) for r in runs])

    return IsoFlopSweep(*(col(n) for n in ("budget", "d_model", "M", "tokens", "flops", "loss")), tuple(runs))


def train_at_budget(
    corpus: torch.Tensor,
    val_windows: torch.Tensor,
    budget: float,
    d_model: int,
    *,
    lr: float,
    batch_size: int,
    n_layer: int = 1,
    n_heads: int = 2,
    lr_schedule: str = "multistep",
    warmup: float = 0.05,
    generator: torch.Generator | None = None,
) -> IsoFlopRun:
    """Train a ``scaling_model`` of width ``d_model`` on as many tokens as ``budget`` buys.

    The sequence length is the windows' (``val_windows`` is ``(n, L + 1)``); each step trains on
    ``batch_size`` random windows of ``corpus``, L tokens each, and the run takes the most steps
    whose compute M x tokens stays within ``budget``. ``warmup`` is a fraction of the steps.
    The parameters are initialised from torch's global generator (seed it first). Returns the
    run with its validation bits per byte; raises if the budget buys less than one step.
    """
    check_tokens(val_windows, "val_windows", min_length=2)
    check_positive_int(batch_size, "batch_size")
    check_number(warmup, "warmup", 0, 1, high_open=True)
    seq_len = val_windows.shape[1] - 1
    M = flops_per_token(n_layer, d_model, seq_len, VOCAB_SIZE).M
    step_flops = M * batch_size * seq_len
    steps = math.floor(check_number(budget, "budget", 0, low_open=True) / step_flops)
    if steps < 1:
        raise ValueError(
            f"budget {budget:.3g} FLOPs buys less than one step of d_model={d_model} "
            f"({step_flops:.3g} FLOPs for {batch_size} x {seq_len} tokens): raise it or shrink the model"
        )
    model = scaling_model(VOCAB_SIZE, d_model, n_layer, seq_len, n_heads)
    history = train(
        model,
        ar_loss,
        lambda: random_windows(corpus, batch_size, seq_len, generator=generator),
        steps=steps,
        lr=lr,
        optimizer="adamw",
        weight_decay=0.1,
        lr_schedule=lr_schedule,
        warmup=round(warmup * steps),
        grad_clip=1.0,
        generator=generator,
        progress=False,
    )
    tokens = len(history.loss) * batch_size * seq_len  # what the loop actually trained on
    flops = M * tokens
    if not budget - step_flops < flops <= budget:  # the compute counter: within one step of C
        raise RuntimeError(f"spent {flops:.4g} FLOPs against a budget of {budget:.4g}")
    loss = bits_per_byte(model, val_windows)
    return IsoFlopRun(budget, d_model, M, tokens, flops, steps, batch_size, lr, loss, history.loss)


def isoflop_sweep(
    corpus: TextCorpus,
    budgets: Sequence[float],
    widths: Sequence[Sequence[int]],
    *,
    seq_len: int = 32,
    n_layer: int = 1,
    n_heads: int = 2,
    batch_scale: float = 1.0,
    n_eval: int = 512,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> IsoFlopSweep:
    """Train every width of ``widths[i]`` at budget ``budgets[i]``; Eq. 1 sets the LR and batch.

    The batch is ``batch_scale`` times Eq. 1's B_opt tokens, in windows of ``seq_len``. All runs
    read the same stream of training windows (one seed drawn from ``generator``), so the curves
    differ by model, not by data, and are scored on the same ``n_eval`` validation windows.
    Raises ``ValueError`` when a budget buys less than one step of one of its widths.
    """
    check_generator(generator)
    check_number(batch_scale, "batch_scale", 0, low_open=True)
    if len(budgets) != len(widths) or not budgets:
        raise ValueError(
            f"need one list of widths per budget, got {len(budgets)} budgets, {len(widths)} lists"
        )
    for budget, ws in zip(budgets, widths, strict=True):
        check_number(budget, "budget", 0, low_open=True)
        for d in ws:
            check_positive_int(d, "d_model")
    val = evenly_spaced_windows(corpus.val, n_eval, seq_len)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    plan = [(c, d) for c, ws in zip(budgets, widths, strict=True) for d in ws]
    runs = []
    for budget, d in progress_bar(plan, desc="IsoFLOP runs", enabled=progress):
        lr, batch_tokens = optimal_hyperparameters(budget)
        batch_size = max(1, round(batch_scale * batch_tokens / seq_len))
        runs.append(
            train_at_budget(
                corpus.train,
                val,
                budget,
                d,
                lr=lr,
                batch_size=batch_size,
                n_layer=n_layer,
                n_heads=n_heads,
                generator=torch.Generator().manual_seed(seed),
            )
        )
    return _sweep(runs)


class Vertex(NamedTuple):
    """The minimum of a parabola fitted to loss against log M: where, how low, and how curved.

    ``interior`` is True when the parabola opens upward and its vertex lies strictly inside the
    range of M sampled: the curve has a minimum, not just a slope.
    """

    M: float
    loss: float
    curvature: float  # second-order coefficient in (ln M)^2
    interior: bool


def parabola_vertex(M: np.ndarray | Sequence[float], loss: np.ndarray | Sequence[float]) -> Vertex:
    """Least-squares parabola loss = c2 (ln M)^2 + c1 ln M + c0 through an IsoFLOP curve; its vertex.

    Needs three points or more, with at least three distinct M; the vertex is ln M* = -c1 / (2 c2).
    """
    x, y = np.log(_positive(M, "M")), np.asarray(loss, dtype=float)
    if x.shape != y.shape or len(np.unique(x)) < 3:
        raise ValueError(
            f"need M and loss of equal length with at least 3 distinct M, got {len(x)}, {len(y)}"
        )
    if not np.isfinite(y).all():
        raise ValueError("loss must be finite")
    c2, c1, c0 = np.polyfit(x, y, 2)
    if c2 == 0:
        return Vertex(float("nan"), float("nan"), 0.0, False)
    x_star = -c1 / (2 * c2)
    interior = bool(c2 > 0 and x.min() < x_star < x.max())
    return Vertex(float(np.exp(x_star)), float(c0 - c1**2 / (4 * c2)), float(c2), interior)


class PowerLaw(NamedTuple):
    """y = k x^a fitted in log-log space, with ``confidence`` intervals on k and a."""

    k: float
    a: float
    k_interval: tuple[float, float]
    a_interval: tuple[float, float]
    confidence: float

    def predict(self, x: float | np.ndarray) -> np.ndarray:
        """k x^a, an array of the shape of ``x`` (0-d for a number)."""
        return self.k * np.asarray(x, dtype=float) ** self.a


def fit_power_law(
    x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float], *, confidence: float = 0.95
) -> PowerLaw:
    """Least squares of ln y = ln k + a ln x; Student-t intervals on a and on ln k (n - 2 d.o.f.).

    With n points the intervals use n - 2 degrees of freedom, so three points are the fewest
    that give one (a wide one: t = 12.7 at 95 %).
    """
    from scipy.special import stdtrit  # Student-t quantiles; scipy is scikit-learn's dependency

    lx, ly = np.log(_positive(x, "x")), np.log(_positive(y, "y"))
    check_number(confidence, "confidence", 0, 1, low_open=True, high_open=True)
    n = len(lx)
    if lx.shape != ly.shape or n < 3 or len(np.unique(lx)) < 2:
        raise ValueError(
            f"need x and y of equal length, at least 3 points and 2 distinct x, got {n}, {len(ly)}"
        )
    a, ln_k = np.polyfit(lx, ly, 1)
    resid = ly - (ln_k + a * lx)
    s2 = resid @ resid / (n - 2)
    sxx = ((lx - lx.mean()) ** 2).sum()
    se_a, se_ln_k = math.sqrt(s2 / sxx), math.sqrt(s2 * (1 / n + lx.mean() ** 2 / sxx))
    q = float(stdtrit(n - 2, 0.5 + confidence / 2))
    return PowerLaw(
        float(math.exp(ln_k)),
        float(a),
        (math.exp(ln_k - q * se_ln_k), math.exp(ln_k + q * se_ln_k)),
        (float(a - q * se_a), float(a + q * se_a)),
        confidence,
    )


def _positive(values: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or not (np.isfinite(v) & (v > 0)).all():
        raise ValueError(f"{name} must be a 1-D sequence of positive finite numbers, got {values!r}")
    return v
