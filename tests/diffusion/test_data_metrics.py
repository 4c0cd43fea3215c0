import math
import re

import pytest
import torch
from scipy.stats import wasserstein_distance

from toyalgos.diffusion import data, mmd_rbf, sliced_wasserstein


@pytest.mark.parametrize("name", sorted(data.DATASETS_2D))
def test_2d_generators_are_deterministic_and_centred(name):
    a = data.sample_2d(name, 5000, generator=torch.Generator().manual_seed(0))
    b = data.sample_2d(name, 5000, generator=torch.Generator().manual_seed(0))
    assert a.shape == (5000, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert a.mean(0).abs().max() < 0.35 and 0.5 < a.std(0).min() and a.abs().max() < 3.5


def test_data_bad_input():
    with pytest.raises(ValueError, match=r"name must be one of .*'moons'.*got 'spiral'"):
        data.sample_2d("spiral", 10)
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        data.two_moons(0)
    with pytest.raises(ValueError, match="n must be a positive int, got 2.5"):
        data.swiss_roll(2.5)
    with pytest.raises(ValueError, match="means"):
        data.gaussian_mixture(10, [1.0, 2.0])
    with pytest.raises(ValueError, match="std"):
        data.gaussian_mixture(10, [[1.0, 2.0]], std=0.0)


@pytest.mark.parametrize("name", sorted(data.DATASETS_2D))
def test_data_makers_take_a_keyword_generator_and_refuse_other_kinds(name):
    with pytest.raises(TypeError):
        data.DATASETS_2D[name](10, torch.Generator())  # the generator is keyword-only
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
        data.sample_2d(name, 10, generator=0)


def test_digits_are_bundled_and_scaled():
    x, y = data.load_digits()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert x.min() == -1 and x.max() == 1
    assert set(y.tolist()) == set(range(10))


def test_sliced_wasserstein_of_a_sample_to_itself_is_zero():
    x = torch.randn(500, 3)
    assert sliced_wasserstein(x, x[torch.randperm(500)]).item() == pytest.approx(0, abs=1e-6)


def test_sliced_wasserstein_of_a_shift_has_closed_form():
    # Shifting by v moves every projection by theta.v, so SW_2 = sqrt(E (theta.v)^2) = |v| / sqrt(d).
    x = torch.randn(1000, 4)
    v = torch.tensor([1.0, 2.0, 0.0, -2.0])
    sw = sliced_wasserstein(x, x + v, n_projections=20_000, generator=torch.Generator().manual_seed(0))
    assert sw.item() == pytest.approx(v.norm().item() / math.sqrt(4), rel=0.02)
    small = sliced_wasserstein(
        x, x + 0.5 * v, n_projections=20_000, generator=torch.Generator().manual_seed(0)
    )
    assert small < sw


@pytest.mark.parametrize("m", [300, 200])
def test_sliced_wasserstein_in_1d_is_scipy_w1(m):
    x, y = torch.randn(300, 1), 0.5 + 2 * torch.randn(m, 1)
    ours = sliced_wasserstein(x, y, n_projections=4, p=1).item()
    ref = wasserstein_distance(x.squeeze().numpy(), y.squeeze().numpy())
    assert ours == pytest.approx(ref, rel=1e-5 if m == 300 else 0.02)


def _mmd_naive(x, y, h):
    k = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))  # noqa: E731
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_matches_the_definition_and_detects_a_shift():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 2, generator=g), torch.randn(9, 2, generator=g) + 1
    assert mmd_rbf(x, y, bandwidth=0.7).item() == pytest.approx(_mmd_naive(x, y, 0.7), rel=1e-5)
    both = mmd_rbf(x, y, bandwidth=[0.7, 2.0]).item()
    assert both == pytest.approx(_mmd_naive(x, y, 0.7) + _mmd_naive(x, y, 2.0), rel=1e-5)
    a, b = torch.randn(800, 2, generator=g), torch.randn(800, 2, generator=g)
    same, shifted = mmd_rbf(a, b).item(), mmd_rbf(a, b + 0.5).item()
    assert abs(same) < 0.005 < shifted


def test_metric_bad_input():
    with pytest.raises(ValueError, match="same dimension"):
        sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match=re.escape("x must have 2 dimensions, got shape (5,)")):
        mmd_rbf(torch.zeros(5), torch.zeros(5))
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        mmd_rbf(torch.zeros(5, 2), [[0.0, 0.0]] * 5)
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd_rbf(torch.zeros(1, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match=re.escape("bandwidth must lie in (0, inf), got 0.0")):
        mmd_rbf(torch.randn(5, 2), torch.randn(5, 2), bandwidth=0.0)
    with pytest.raises(ValueError, match="n_projections must be a positive int, got 0"):
        sliced_wasserstein(torch.randn(5, 2), torch.randn(5, 2), n_projections=0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
        sliced_wasserstein(torch.randn(5, 2), torch.randn(5, 2), generator=1)
