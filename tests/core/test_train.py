from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from toyalgos.core import Loss, lr_factor, multistep_lr, seed_everything, train


def _regression(n=512, generator=None):
    x = torch.randn(n, 3, generator=generator)
    w_true = torch.tensor([[1.5], [-2.0], [0.5]])
    y = x @ w_true + 0.3 + 0.01 * torch.randn(n, 1, generator=generator)
    return x, y


def _mse(model, xb, yb):
    return ((model(xb) - yb) ** 2).mean()


def test_reaches_least_squares_solution():
    g = seed_everything(0)
    x, y = _regression(generator=g)
    model = nn.Linear(3, 1)
    history = train(
        model,
        _mse,
        (x, y),
        steps=1500,
        batch_size=128,
        lr=0.02,
        lr_schedule="cosine",
        generator=g,
        progress=False,
    )
    # Closed form: ordinary least squares with an intercept column.
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    sol = torch.linalg.lstsq(design, y).solution.squeeze()
    fitted = torch.cat([model.weight.detach().squeeze(), model.bias.detach()])
    assert torch.allclose(fitted, sol, atol=5e-3)
    assert history.loss.shape == (1500,) and history.terms == {}
    assert history.loss[-100:].mean() < 0.01 * history.loss[:10].mean()


def test_same_seed_same_losses():
    runs = []
    for _ in range(2):
        g = seed_everything(7)
        model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
        x, y = _regression(generator=g)
        runs.append(train(model, _mse, (x, y), steps=50, generator=g, progress=False).loss)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_callable_and_iterable_data():
    model = nn.Linear(1, 1)
    batches = [torch.ones(4, 1), 2 * torch.ones(4, 1)]
    seen = []

    def loss_fn(m, b):
        seen.append(b[0, 0].item())
        return m(b).pow(2).mean()

    train(model, loss_fn, batches, steps=5, progress=False)
    assert seen == [1.0, 2.0, 1.0, 2.0, 1.0]  # an iterable is cycled in order
    calls = []
    train(model, loss_fn, lambda: calls.append(1) or torch.ones(2, 1), steps=3, progress=False)
    assert len(calls) == 3


def test_ema_matches_manual_average():
    # Constant gradient, plain SGD with momentum: the trajectory and its EMA are computable.
    w = nn.Parameter(torch.zeros(1))
    model = nn.Module()
    model.w = w
    decay, lr, steps = 0.9, 0.1, 20
    train(
        model,
        lambda m, _: 2.0 * m.w.sum(),
        lambda: None,
        steps=steps,
        lr=lr,
        optimizer="sgd",
        ema_decay=decay,
        progress=False,
    )
    theta, velocity, ema = 0.0, 0.0, 0.0
    for _ in range(steps):
        velocity = 0.9 * velocity + 2.0
        theta -= lr * velocity
        ema = decay * ema + (1 - decay) * theta
    assert w.item() == pytest.approx(ema, rel=1e-5)


def test_lr_factor():
    assert lr_factor(0, 100, "constant") == 1.0
    assert lr_factor(0, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(50, 100, "cosine") == pytest.approx(0.5)
    assert lr_factor(4, 100, "cosine", warmup=10) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor(0, 10, "step")


def test_multistep_schedule():
    """DeepSeek LLM's schedule: warm-up, then 1, x0.316 from 80 % of the steps, x0.1 from 90 %."""
    f = [lr_factor(s, 20, "multistep", warmup=4) for s in range(20)]
    assert f == [0.25, 0.5, 0.75] + [1.0] * 13 + [0.316] * 2 + [0.1] * 2
    assert f == [multistep_lr(s, 20, 4) for s in range(20)]
    # train uses it: SGD (momentum 0.9) on the constant gradient of w, step by step
    model = nn.Module()
    model.w = nn.Parameter(torch.zeros(1))
    train(
        model,
        lambda m, _: m.w.sum(),
        torch.ones(4, 1),
        steps=20,
        lr=0.1,
        optimizer="sgd",
        lr_schedule="multistep",
        warmup=4,
        progress=False,
    )
    w = velocity = 0.0
    for factor in f:
        velocity = 0.9 * velocity + 1.0
        w -= 0.1 * factor * velocity
    assert model.w.item() == pytest.approx(w, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 5, "optimizer": "lion"}, ValueError, "optimizer"),
        ({"steps": 5, "lr": 0}, ValueError, "lr"),
        ({"steps": 5, "ema_decay": 1.0}, ValueError, "ema_decay"),
        ({"steps": 5, "lr_schedule": "linear"}, ValueError, "lr_schedule"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    model = nn.Linear(1, 1)
    with pytest.raises(error, match=match):
        train(model, lambda m, b: m(b).mean(), torch.ones(4, 1), progress=False, **kwargs)


def test_bad_data_and_loss():
    model = nn.Linear(1, 1)
    with pytest.raises(ValueError, match="first dimension"):
        train(
            model, lambda m, a, b: m(a).mean(), (torch.ones(4, 1), torch.ones(3, 1)), steps=1, progress=False
        )
    with pytest.raises(ValueError, match="scalar"):
        train(model, lambda m, b: m(b), torch.ones(4, 1), steps=1, progress=False)
    with pytest.raises(TypeError, match="data must be"):
        train(model, lambda m, b: m(b).mean(), 3, steps=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train(model, lambda m, b: m(b).mean(), [], steps=1, progress=False)
    with pytest.raises(TypeError, match="generator"):
        train(model, lambda m, b: m(b).mean(), torch.ones(4, 1), steps=1, generator=0, progress=False)


def test_loss_terms_are_recorded_and_partial_binds_options():
    """A loss returning ``Loss`` has its terms recorded step by step; options come through partial."""
    model = nn.Linear(1, 1)

    def two_terms(m, b, *, weight):
        a, c = m(b).pow(2).mean(), m.weight.pow(2).sum()
        return Loss(a + weight * c, {"fit": a, "decay": c})

    history = train(model, partial(two_terms, weight=0.5), torch.ones(8, 1), steps=4, progress=False)
    assert set(history.terms) == {"fit", "decay"}
    np.testing.assert_allclose(history.loss, history.terms["fit"] + 0.5 * history.terms["decay"], rtol=1e-6)


def test_leaves_model_in_eval_mode():
    model = nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.5), nn.Linear(4, 1))
    train(model, lambda m, b: m(b).mean(), torch.ones(4, 1), steps=1, progress=False)
    assert not any(m.training for m in model.modules())
