import math
import re

import numpy as np
import pytest
import torch

from toyalgos.core import Samples
from toyalgos.diffusion import (
    euler_sample,
    flow_matching_loss,
    interpolate,
    reflow_pairs,
    straightness,
    transport_cost,
)
from toyalgos.nn import TimeMLP

W = 2.0  # angular speed of the rotation field
J = torch.tensor([[0.0, -W], [W, 0.0]], dtype=torch.float64)


def rotation(x, t):
    """v(x, t) = J x: paths are circles z_t = rot(w t) z_0, the opposite of straight."""
    return x @ J.T


def rot(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def _z0(n=200, d=2, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- interpolation and the loss (Eq. 1) ------------------------------------------------------


def test_interpolate_endpoints_and_midpoint():
    """X_t = t X_1 + (1 - t) X_0: X_0 at t = 0, X_1 at t = 1, one t per sample."""
    x0, x1 = _z0(4, seed=1), _z0(4, seed=2)
    assert torch.equal(interpolate(x0, x1, torch.zeros(4, dtype=torch.float64)), x0)
    assert torch.equal(interpolate(x0, x1, torch.ones(4, dtype=torch.float64)), x1)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    rows = zip(t.numpy(), x0.numpy(), x1.numpy(), strict=True)
    expected = np.array([(1 - ti) * a + ti * b for ti, a, b in rows])
    np.testing.assert_allclose(interpolate(x0, x1, t).numpy(), expected, rtol=1e-15)


def test_loss_is_zero_for_the_velocity_of_a_deterministic_straight_coupling():
    """x1 = x0 + c: the target x1 - x0 = c everywhere, so v(x, t) = c has zero loss."""
    c = torch.tensor([1.5, -0.7])
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    x1 = x0 + c
    loss = flow_matching_loss(lambda x, t: c.expand_as(x), x0, x1, generator=torch.Generator().manual_seed(1))
    assert loss.item() < 1e-12
    # A wrong constant is penalised by exactly its squared error, whatever the t drawn.
    wrong = flow_matching_loss(
        lambda x, t: (c + 0.5).expand_as(x), x0, x1, generator=torch.Generator().manual_seed(1)
    )
    assert wrong.item() == pytest.approx(0.25, rel=1e-5)


def test_loss_is_zero_for_the_exact_velocity_from_a_point_mass():
    """Source X_0 = 0, any independent target: X_t = t X_1, so E[X_1 - X_0 | X_t = x] = x / t exactly.

    The t-dependent model v(x, t) = x / t is the minimiser and reaches loss 0; the zero model
    pays E ||X_1||^2 / d exactly, whatever t is drawn.
    """
    x1 = 2 * torch.randn(128, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = torch.zeros_like(x1)
    loss = flow_matching_loss(lambda x, t: x / t[:, None], x0, x1, generator=torch.Generator().manual_seed(1))
    assert loss.item() < 1e-10
    zero = flow_matching_loss(
        lambda x, t: torch.zeros_like(x), x0, x1, generator=torch.Generator().manual_seed(1)
    )
    assert zero.item() == pytest.approx((x1**2).mean().item(), rel=1e-12)


def test_loss_matches_its_definition_and_is_deterministic_for_a_seed():
    """|| (x1 - x0) - v(X_t, t) ||^2, t = eps + (1 - eps) U(0, 1) redrawn from the same seed."""
    torch.manual_seed(0)
    model = TimeMLP(2, hidden=8, time_scale=999.0)
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(10, 2, generator=g), 2 + torch.randn(10, 2, generator=g)
    loss = flow_matching_loss(model, x0, x1, generator=torch.Generator().manual_seed(4), eps=0.01)
    t = 0.01 + 0.99 * torch.rand(10, generator=torch.Generator().manual_seed(4))
    x_t = t[:, None] * x1 + (1 - t[:, None]) * x0
    expected = ((x1 - x0 - model(x_t, t)) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    again = flow_matching_loss(model, x0, x1, generator=torch.Generator().manual_seed(4), eps=0.01)
    other = flow_matching_loss(model, x0, x1, generator=torch.Generator().manual_seed(5), eps=0.01)
    assert torch.equal(loss, again) and not torch.equal(loss, other)


def test_loss_bad_inputs():
    model = TimeMLP(2, hidden=8)
    with pytest.raises(ValueError, match=re.escape("same shape, got (4, 2) and (5, 2)")):
        flow_matching_loss(model, torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match=re.escape("x0 has per-sample shape (3,), the model expects (2,)")):
        flow_matching_loss(model, torch.zeros(4, 3), torch.zeros(4, 3))


# --- Euler sampling --------------------------------------------------------------------------


def test_one_euler_step_is_exact_for_a_constant_velocity():
    c = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    z0 = _z0(16)
    z1 = euler_sample(lambda x, t: c.expand_as(x), z0, steps=1).x
    torch.testing.assert_close(z1, z0 + c, rtol=0, atol=1e-15)


def test_euler_on_a_time_dependent_field_uses_the_left_endpoint_times():
    """v(x, t) = 2 t integrates to z0 + 1; Euler with times i / N gives z0 + (N - 1) / N exactly."""
    z0 = _z0(4)
    for N in (1, 4, 10):
        z1 = euler_sample(lambda x, t: 2 * t[:, None].double().expand_as(x), z0, steps=N).x
        torch.testing.assert_close(z1, z0 + (N - 1) / N, rtol=0, atol=1e-6)


def test_euler_is_first_order_on_a_rotation():
    """z_1 = rot(w) z_0 exactly; Euler's error halves when N doubles (measured ratios 2.06, 2.03, 2.02)."""
    z0 = _z0()
    exact = z0 @ rot(W).T
    errors = [
        (euler_sample(rotation, z0, steps=N).x - exact).norm(dim=1).max().item() for N in (16, 32, 64, 128)
    ]
    for a, b in zip(errors[:-1], errors[1:], strict=True):
        assert 1.8 < a / b < 2.3
    assert errors[-1] < 0.1  # measured 0.060


def test_euler_trajectory_shape_and_endpoints():
    z0 = _z0(7)
    out = euler_sample(rotation, z0, steps=5, return_trajectory=True)
    z1, traj = out.x, out.trajectory
    assert type(out) is Samples and out.nfe == 5
    assert traj.shape == (6, 7, 2)
    assert torch.equal(traj[0], z0) and torch.equal(traj[-1], z1)
    torch.testing.assert_close(traj[1], z0 + rotation(z0, None) / 5)
    plain = euler_sample(rotation, z0, steps=5)
    assert type(plain) is Samples and plain.trajectory is None and plain.nfe == 5
    assert torch.equal(plain.x, z1)


@pytest.mark.parametrize("steps", [0, -3, 2.0])
def test_bad_steps(steps):
    msg = re.escape(f"steps must be a positive int, got {steps!r}")
    with pytest.raises(ValueError, match=msg):
        euler_sample(rotation, _z0(4), steps=steps)
    with pytest.raises(ValueError, match=msg):
        straightness(rotation, _z0(4), steps=steps)
    with pytest.raises(ValueError, match=msg):
        reflow_pairs(rotation, _z0(4), steps=steps)


def test_euler_rejects_wrong_data_dimension():
    with pytest.raises(ValueError, match=re.escape("z0 has per-sample shape (3,), the model expects (2,)")):
        euler_sample(TimeMLP(2, hidden=8), torch.zeros(4, 3), steps=3)


# --- straightness (Definition 3.6) -----------------------------------------------------------


def test_straightness_of_a_straight_constant_speed_flow_is_zero():
    """v(x, t) = c: z_t = z_0 + t c, the chord is c, every velocity is c."""
    c = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    assert straightness(lambda x, t: c.expand_as(x), _z0(), steps=50) < 1e-10
    # A linear field v = A z0 (each path its own constant velocity) is straight too; it needs
    # the start: along the path z_t = z_0 + t A z_0 we have z_0 = (I + t A)^-1 z_t.
    A = torch.tensor([[0.5, 1.0], [-0.3, 0.2]], dtype=torch.float64)
    I = torch.eye(2, dtype=torch.float64)

    def per_path(x, t):
        z0 = torch.linalg.solve(I + float(t[0]) * A, x.T).T
        return z0 @ A.T

    assert straightness(per_path, _z0(), steps=50) < 1e-10


def test_straightness_of_a_rotation_matches_its_closed_form():
    """For v = J z, z_t = rot(w t) z_0 and the chord is (rot(w) - I) z_0.

    S = int_0^1 ||chord - J z_t||^2 dt = w^2 |z_0|^2 - 2 chord . int J z_t dt + |chord|^2
      = w^2 |z_0|^2 - |chord|^2 = (w^2 - 2 (1 - cos w)) |z_0|^2, averaged over z_0.
    Euler's path spirals out by a factor (1 + w^2 / N^2)^(N / 2): measured relative error
    1.0e-3 with 2000 steps (4.0e-3 with 500).
    """
    z0 = _z0(500, seed=1)
    expected = (W**2 - 2 * (1 - math.cos(W))) * (z0**2).sum(1).mean().item()
    # independent check of the closed form by quadrature in numpy
    ts = np.linspace(0, 1, 4001)
    z = z0.numpy()
    chord = z @ (rot(W).numpy() - np.eye(2)).T
    dev = [((chord - z @ (J.numpy() @ rot(W * t).numpy()).T) ** 2).sum(1).mean() for t in ts]
    assert np.trapezoid(dev, ts) == pytest.approx(expected, rel=1e-6)
    S = straightness(rotation, z0, steps=2000)
    assert S == pytest.approx(expected, rel=1e-2)
    assert S > 0.1


# --- reflow and the transport cost ------------------------------------------------------------


def test_reflow_pairs_are_the_start_and_the_euler_endpoint():
    torch.manual_seed(0)
    model = TimeMLP(2, hidden=8)
    z0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    a, b = reflow_pairs(model, z0, steps=7)
    assert a is z0
    assert torch.equal(b, euler_sample(model, z0, steps=7).x)
    assert not torch.equal(b, euler_sample(model, z0, steps=8).x)


def test_transport_cost_is_mean_squared_distance():
    z0, z1 = _z0(50, d=3, seed=1), _z0(50, d=3, seed=2)
    expected = np.mean(np.sum((z1.numpy() - z0.numpy()) ** 2, axis=1))
    assert transport_cost(z0, z1) == pytest.approx(expected, rel=1e-12)
    assert transport_cost(z0, z0) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        transport_cost(z0, z1[:10])


def test_monotone_coupling_has_the_lowest_cost_in_1d():
    """In 1-D the sorted (monotone) coupling is optimal for a convex cost: it beats random couplings."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 1, generator=g, dtype=torch.float64)
    b = 3 + 0.5 * torch.randn(500, 1, generator=g, dtype=torch.float64) ** 3
    monotone = transport_cost(a.sort(0).values, b.sort(0).values)
    for _ in range(5):
        perm = torch.randperm(500, generator=g)
        assert monotone < transport_cost(a, b[perm])
    assert monotone < transport_cost(a, b)  # b's draw order is independent of a's


# --- conventions: the caller's mode, no gradients, the generator ------------------------------


def test_euler_sampling_and_straightness_restore_the_callers_mode():
    torch.manual_seed(0)
    model = TimeMLP(2, hidden=8)
    z0 = torch.randn(4, 2)
    for mode in (True, False):
        model.train(mode)
        out = euler_sample(model, z0, steps=3)
        straightness(model, z0, steps=3)
        reflow_pairs(model, z0, steps=3)
        assert all(m.training == mode for m in model.modules())
        assert not out.x.requires_grad


@pytest.mark.parametrize("bad", [0, 1.5, "seed"])
def test_bad_generator_types_raise_type_error(bad):
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
        flow_matching_loss(TimeMLP(2, hidden=8), torch.zeros(4, 2), torch.zeros(4, 2), generator=bad)
