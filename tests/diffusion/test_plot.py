import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from toyalgos.diffusion import euler_sample, plot_trajectories  # noqa: E402


def rotation(x, t):
    return x @ torch.tensor([[0.0, 2.0], [-2.0, 0.0]], dtype=x.dtype)


def _z0(n):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_plot_trajectories():
    fig, ax = plt.subplots()
    try:
        traj = euler_sample(rotation, _z0(20), steps=10, return_trajectory=True).trajectory
        assert plot_trajectories(ax, traj, n_paths=5, title="rotation", lim=3.0) is ax
        assert len(ax.lines) == 5 and ax.get_title() == "rotation"
        assert ax.get_xlim() == (-3.0, 3.0)
        for bad in (torch.zeros(11, 20, 3), torch.zeros(11, 2), torch.zeros(2, 11, 20, 2)):
            with pytest.raises(ValueError, match=re.escape("must have shape (steps + 1, n, 2)")):
                plot_trajectories(ax, bad)
    finally:
        plt.close(fig)
