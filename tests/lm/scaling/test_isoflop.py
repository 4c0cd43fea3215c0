"""Eq. 1, the IsoFLOP runner and its compute count, the parabola vertex and the power-law fit."""

import numpy as np
import pytest
import torch

from toyalgos.core import lr_factor, multistep_lr, seed_everything
from toyalgos.lm import multistep_lr as lm_multistep_lr
from toyalgos.lm.scaling import (
    evenly_spaced_windows,
    fit_power_law,
    flops_per_token,
    isoflop_sweep,
    optimal_hyperparameters,
    parabola_vertex,
    stdlib_corpus,
    train_at_budget,
)


def test_eq1_matches_the_papers_7b_setting():
    """DeepSeek LLM 7B: C = M D with M = 72 * 30 * 4096^2 + 12 * 30 * 4096 * 4096, D = 2T tokens."""
    M = flops_per_token(30, 4096, 4096, 102400).M
    hp = optimal_hyperparameters(M * 2e12)
    assert hp.lr == pytest.approx(4.2e-4, rel=0.03)  # Table 2 used 4.2e-4
    assert hp.batch_tokens == pytest.approx(2304 * 4096, rel=0.03)  # and 2304 sequences of 4096
    with pytest.raises(ValueError, match="budget"):
        optimal_hyperparameters(0.0)


def test_multistep_schedule_values():
    steps, warmup = 100, 10
    f = [multistep_lr(s, steps, warmup) for s in range(steps)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0
    assert f[10:80] == [1.0] * 70 and f[80:90] == [0.316] * 10 and f[90:] == [0.1] * 10
    assert [lr_factor(s, steps, "multistep", warmup) for s in range(steps)] == f
    assert lm_multistep_lr is multistep_lr


def test_parabola_vertex_is_exact_on_a_parabola():
    M = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    loss = 0.7 * (np.log(M) - np.log(7e3)) ** 2 + 2.5
    v = parabola_vertex(M, loss)
    assert v.M == pytest.approx(7e3, rel=1e-9) and v.loss == pytest.approx(2.5, abs=1e-12)
    assert v.curvature == pytest.approx(0.7) and v.interior
    assert not parabola_vertex(M, -loss).interior  # a maximum
    assert not parabola_vertex(M, 0.7 * (np.log(M) - np.log(3e5)) ** 2).interior  # minimum beyond the range
    with pytest.raises(ValueError, match="3 distinct"):
        parabola_vertex(M[:2], loss[:2])
    with pytest.raises(ValueError, match="positive"):
        parabola_vertex([-1.0, 1.0, 2.0], [1.0, 2.0, 3.0])


def test_power_law_recovers_the_exponent_and_its_interval_covers_it():
    rng = np.random.default_rng(0)
    C = np.logspace(9, 12, 6)
    exact = fit_power_law(C, 0.17 * C**0.52)
    assert exact.a == pytest.approx(0.52) and exact.k == pytest.approx(0.17)
    assert exact.predict(1e13) == pytest.approx(0.17 * 1e13**0.52)
    hits_a = hits_k = 0
    trials = 400
    for _ in range(trials):
        y = 0.17 * C**0.52 * np.exp(0.05 * rng.standard_normal(len(C)))
        fit = fit_power_law(C, y, confidence=0.9)
        hits_a += fit.a_interval[0] < 0.52 < fit.a_interval[1]
        hits_k += fit.k_interval[0] < 0.17 < fit.k_interval[1]
    # 90 % intervals: the coverage is binomial(400, 0.9), standard error 0.015
    assert 0.85 < hits_a / trials < 0.95 and 0.85 < hits_k / trials < 0.95


def test_power_law_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1.0, 2.0, 0.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="confidence"):
        fit_power_law([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], confidence=1.0)


@pytest.fixture(scope="module")
def corpus():
    return stdlib_corpus()


def test_compute_count_and_determinism(corpus):
    val = evenly_spaced_windows(corpus.val, 16, 8)
    runs = []
    for _ in range(2):
        seed_everything(0)
        runs.append(
            train_at_budget(
                corpus.train, val, 3e7, 8, lr=1e-2, batch_size=4, generator=torch.Generator().manual_seed(1)
            )
        )
    r = runs[0]
    step = r.M * 4 * 8
    assert r.M == flops_per_token(1, 8, 8, 128).M
    assert r.steps == int(3e7 // step) and r.tokens == r.steps * 32
    assert 3e7 - step < r.flops == r.M * r.tokens <= 3e7
    assert runs[0][:-1] == runs[1][:-1] and np.array_equal(
        runs[0].train_loss, runs[1].train_loss
    )  # same seed
    assert r.train_loss.shape == (r.steps,)


def test_sweep_shapes_and_bad_budgets(corpus):
    g = seed_everything(0)
    sweep = isoflop_sweep(corpus, [2e7, 4e7], [[4, 8], [8]], seq_len=8, n_eval=8, generator=g, progress=False)
    assert sweep.budget.tolist() == [2e7, 2e7, 4e7] and sweep.d_model.tolist() == [4, 8, 8]
    assert (sweep.flops <= sweep.budget).all() and len(sweep.at(2e7).runs) == 2
    with pytest.raises(ValueError, match="less than one step"):
        isoflop_sweep(corpus, [1e3], [[8]], seq_len=8, n_eval=8, progress=False)
    with pytest.raises(ValueError, match="budget"):
        isoflop_sweep(corpus, [-1.0], [[8]], progress=False)
    with pytest.raises(ValueError, match="d_model"):
        isoflop_sweep(corpus, [1e9], [[0]], progress=False)
    with pytest.raises(ValueError, match="one list of widths per budget"):
        isoflop_sweep(corpus, [1e9, 2e9], [[8]], progress=False)
