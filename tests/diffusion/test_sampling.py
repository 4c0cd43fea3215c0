"""Where every diffusion sampler starts: Gaussian noise of the batch shape, or a given x_T."""

import pytest
import torch

from toyalgos.diffusion._sampling import start_noise
from toyalgos.nn import TimeMLP


def test_start_noise():
    model = TimeMLP(2, hidden=8)
    g = torch.Generator().manual_seed(0)
    x = start_noise(model, (3, 2), generator=g)
    assert torch.equal(x, torch.randn(3, 2, generator=torch.Generator().manual_seed(0)))
    x_T = torch.ones(3, 2)
    assert torch.equal(start_noise(model, (3, 2), x_T), x_T)
    with pytest.raises(ValueError, match="batch dimension"):
        start_noise(model, ())
    with pytest.raises(ValueError, match=r"shape has per-sample shape \(3,\), the model expects \(2,\)"):
        start_noise(model, (4, 3))
    with pytest.raises(TypeError, match="generator"):
        start_noise(model, (3, 2), generator=0)
