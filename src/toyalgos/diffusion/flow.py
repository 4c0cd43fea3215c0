"""Flow matching and rectified flow (Liu, Gong & Liu 2022, "Flow Straight and Fast", arXiv:2209.03003).

Convention of the paper and its code: t = 0 is the source pi_0 (noise, or any distribution),
t = 1 the target pi_1 (data), and the interpolation between a coupled pair (X_0, X_1) is

    X_t = t X_1 + (1 - t) X_0,      its velocity  X_1 - X_0.

Rectified flow fits v(x, t) to that velocity by least squares (Eq. 1),

    min_v  int_0^1 E || (X_1 - X_0) - v(X_t, t) ||^2 dt,

and moves samples along dZ_t = v(Z_t, t) dt. Reflow re-couples: draw Z_0 ~ pi_0, solve the
learned ODE to get Z_1, and fit a new flow on the pairs (Z_0, Z_1). Paths then cross less and
straighten, so few Euler steps suffice. (``edm.FlowMatching`` is the same model in EDM's
convention, noise at t = 1.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from toyalgos.core import Samples, evaluating
from toyalgos.core.checks import check_generator, check_positive_int

from ._checks import check_data_shape, check_same_shape

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_pair(model: Velocity, x0: torch.Tensor, x1: torch.Tensor) -> None:
    """A coupled pair of batches, each of the model's per-sample shape."""
    check_same_shape("x0", x0, "x1", x1)
    check_data_shape(x0.shape, getattr(model, "data_shape", None), "x0")


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """X_t = t X_1 + (1 - t) X_0, with one t per sample."""
    t = t.reshape(-1, *([1] * (x0.dim() - 1)))
    return t * x1 + (1 - t) * x0


def flow_matching_loss(
    model: Velocity,
    x0: torch.Tensor,
    x1: torch.Tensor,
    *,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """|| (x1 - x0) - v(X_t, t) ||^2 with t ~ U(eps, 1), averaged over batch and features.

    ``x0`` and ``x1`` are coupled row by row: independent draws for 1-rectified flow, the
    pairs of ``reflow_pairs`` for the next one. ``model(x, t)`` gets t as a float tensor in
    [0, 1] (the reference code feeds 999 t to its network: use ``TimeMLP(time_scale=999)``).
    Like the reference, t avoids 0 by ``eps``. Feed ``train`` with
    ``functools.partial(flow_matching_loss, generator=g)`` and the pairs ``(x0, x1)``.
    """
    _check_pair(model, x0, x1)
    check_generator(generator)
    t = eps + (1 - eps) * torch.rand(x0.shape[0], generator=generator).to(x0.device)
    target = x1 - x0
    return nn.functional.mse_loss(model(interpolate(x0, x1, t), t), target)


def euler_sample(
    model: Velocity, z0: torch.Tensor, *, steps: int, return_trajectory: bool = False
) -> Samples:
    """Euler's method for dZ/dt = v(Z, t) from t = 0 to 1: z <- z + v(z, i/N) / N, N = ``steps``.

    ``steps = 1`` is the one-step generator z_1 = z_0 + v(z_0, 0). Uses ``steps`` network calls;
    the trajectory, when asked for, holds every z_i, shape ``(steps + 1, *z0.shape)``.
    """
    check_positive_int(steps, "steps")
    check_data_shape(z0.shape, getattr(model, "data_shape", None), "z0")
    z, path, dt = z0, [z0], 1.0 / steps
    with evaluating(model):
        for i in range(steps):
            z = z + dt * model(z, torch.full((z0.shape[0],), i * dt, device=z0.device))
            path.append(z)
    return Samples(z, steps, torch.stack(path).cpu() if return_trajectory else None)


def reflow_pairs(model: Velocity, z0: torch.Tensor, *, steps: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """The coupling of a trained flow: (Z_0, Z_1) with Z_1 the ODE solution from Z_0 (Euler, ``steps``).

    Training a new flow on these pairs is reflow (Section 2.3); the paper proves the new
    coupling has no larger transport cost E c(Z_1 - Z_0) for any convex c (Theorem 3.5).
    """
    return z0, euler_sample(model, z0, steps=steps).x


def straightness(model: Velocity, z0: torch.Tensor, *, steps: int = 100) -> float:
    """S(Z) = int_0^1 E || (Z_1 - Z_0) - dZ_t/dt ||^2 dt (Definition 3.6), on an Euler path.

    Estimated as (1/N) sum_i mean_samples || (z_N - z_0) - v(z_i, t_i) ||^2 (squared norm
    summed over features). Zero exactly when every path is a straight line at constant speed.
    """
    path = euler_sample(model, z0, steps=steps, return_trajectory=True).trajectory  # (steps + 1, n, ...)
    velocity = (path[1:] - path[:-1]) * steps  # the v(z_i, t_i) Euler stepped with
    dev = (path[-1] - path[0] - velocity).pow(2).flatten(2).sum(-1)  # (steps, n)
    return dev.mean().item()


def transport_cost(z0: torch.Tensor, z1: torch.Tensor) -> float:
    """E || Z_1 - Z_0 ||^2 of a coupling: reflow does not increase it (Theorem 3.5)."""
    check_same_shape("z0", z0, "z1", z1)
    return (z1 - z0).pow(2).flatten(1).sum(1).mean().item()
