import math

import pytest
import torch

from toyalgos.nn import TimeMLP, sinusoidal_embedding


def test_sinusoidal_embedding_values():
    e = sinusoidal_embedding(torch.tensor([0, 1]), 4)
    # frequencies 1 and 10000^(-1/2) = 0.01
    expected = torch.tensor([[0, 0, 1, 1], [math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)]])
    assert torch.allclose(e, expected, atol=1e-6)
    assert sinusoidal_embedding(torch.tensor(3.0), 8).shape == (1, 8)


@pytest.mark.parametrize("dim", [0, 3])
def test_sinusoidal_embedding_bad_dim(dim):
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(torch.tensor([1]), dim)


def test_shared_time_fast_path_equals_general_path():
    torch.manual_seed(0)
    model = TimeMLP(3, hidden=16, n_blocks=2)
    x = torch.randn(5, 3)
    t = torch.full((5,), 7)
    shared = model(x, t)
    per_row = torch.cat([model(x[i : i + 1], t[i : i + 1]) for i in range(5)])
    assert torch.allclose(shared, per_row, atol=1e-6)
    assert torch.allclose(model(x, torch.tensor(7)), shared)


def test_time_changes_the_output():
    torch.manual_seed(0)
    model = TimeMLP(2, hidden=16)
    x = torch.randn(4, 2)
    assert not torch.allclose(model(x, torch.zeros(4)), model(x, torch.full((4,), 500)))


def test_shapes_and_errors():
    model = TimeMLP(2, hidden=8, out_dim=5)
    assert model(torch.randn(4, 2), torch.arange(4)).shape == (4, 5)
    assert model.data_shape == (2,)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        model(torch.randn(4, 3), torch.arange(4))
    with pytest.raises(ValueError, match="t must have shape"):
        model(torch.randn(4, 2), torch.arange(3))
    with pytest.raises(ValueError, match="hidden"):
        TimeMLP(2, hidden=0)
