import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from toyalgos.core import train
from toyalgos.face import (
    ArcFaceLoss,
    CosFaceLoss,
    FaceModel,
    MarginProduct,
    SoftmaxLoss,
    SphereFaceLoss,
    arcface_target,
    chebyshev_cos,
    cosface_target,
    face_loss,
    sphereface_lambda,
    sphereface_psi,
)
from toyalgos.face.claims import matches_reference

pml = pytest.importorskip("pytorch_metric_learning.losses")


def _batch(n=16, d=8, c=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randint(c, (n,), generator=g)


def _with_angles(thetas, d=3):
    """Unit weights e_0, e_1 and embeddings at angle theta to e_0 (class 0), in the (e_0, e_2) plane."""
    thetas = torch.as_tensor(thetas, dtype=torch.float64)
    x = torch.zeros(len(thetas), d, dtype=torch.float64)
    x[:, 0], x[:, 2] = torch.cos(thetas), torch.sin(thetas)
    w = torch.eye(2, d, dtype=torch.float64)
    return x, w


# --- the papers' formulas on hand-computed angles --------------------------------------------------


def test_arcface_target_is_cos_theta_plus_m_below_pi_minus_m():
    m = 0.5
    for theta in [0.0, 0.3, 1.0, math.pi / 2, 2.5, math.pi - m - 1e-3]:
        cos = torch.tensor([math.cos(theta)], dtype=torch.float64)
        assert arcface_target(cos, m).item() == pytest.approx(math.cos(theta + m), abs=1e-6)


def test_arcface_fallback_beyond_pi_minus_m_is_cos_minus_m_sin_m():
    m = 0.5
    for theta in [math.pi - m + 1e-3, 2.9, math.pi]:
        cos = torch.tensor([math.cos(theta)], dtype=torch.float64)
        # cos(θ + m) would rise again past π; the fallback keeps decreasing.
        assert arcface_target(cos, m).item() == pytest.approx(math.cos(theta) - m * math.sin(m), abs=1e-12)
    thetas = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    phi = arcface_target(torch.cos(thetas), m)
    assert (phi[1:] <= phi[:-1] + 1e-12).all(), "the target logit must decrease monotonically in θ"
    # Continuous at the switch: cos(π) = −1 = cos(π − m) − m sin m + O(m³)... both sides within m³.
    t = math.pi - m
    assert abs(math.cos(t + m) - (math.cos(t) - m * math.sin(m))) < m**3


def test_arcface_easy_margin_leaves_obtuse_angles_alone():
    m = 0.5
    cos = torch.cos(torch.tensor([0.4, 1.2, 2.0, 3.0], dtype=torch.float64))
    out = arcface_target(cos, m, easy_margin=True)
    assert out[:2].tolist() == pytest.approx([math.cos(0.4 + m), math.cos(1.2 + m)])
    assert out[2:].tolist() == pytest.approx(cos[2:].tolist())


def test_cosface_target_subtracts_m():
    cos = torch.tensor([0.9, 0.0, -0.7], dtype=torch.float64)
    assert cosface_target(cos, 0.35).tolist() == pytest.approx([0.55, -0.35, -1.05])


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_chebyshev_cos_is_cos_m_theta(m):
    thetas = torch.linspace(0, math.pi, 101, dtype=torch.float64)
    assert torch.allclose(chebyshev_cos(torch.cos(thetas), m), torch.cos(m * thetas), atol=1e-12)


def test_sphereface_psi_by_hand_for_m_4():
    # θ in [kπ/4, (k+1)π/4): ψ = (−1)^k cos(4θ) − 2k
    cases = {0.1: math.cos(0.4), 1.0: -math.cos(4.0) - 2, 2.0: math.cos(8.0) - 4, 3.0: -math.cos(12.0) - 6}
    for theta, psi in cases.items():
        cos = torch.tensor([math.cos(theta)], dtype=torch.float64)
        assert sphereface_psi(cos, 4).item() == pytest.approx(psi, abs=1e-9)
    assert sphereface_psi(torch.tensor([-1.0], dtype=torch.float64), 4).item() == pytest.approx(-7.0)
    thetas = torch.linspace(0, math.pi, 3001, dtype=torch.float64)
    psi = sphereface_psi(torch.cos(thetas), 4)
    assert (psi[1:] <= psi[:-1] + 1e-9).all(), "ψ must decrease monotonically on [0, π]"


def test_sphereface_lambda_schedule():
    assert sphereface_lambda(0) == 1000.0
    assert sphereface_lambda(10) == pytest.approx(1000 / 2.2)
    assert sphereface_lambda(10**6) == 5.0
    assert sphereface_lambda(10**6, base=0.0, lambda_min=0.0) == 0.0


@pytest.mark.parametrize("kind", ["arcface", "cosface", "softmax_norm"])
def test_margin_product_logits_on_hand_angles(kind):
    thetas = [0.2, 1.3, 2.9]  # 2.9 > π − 0.5: ArcFace's fallback
    x, w = _with_angles(thetas)
    head = MarginProduct(2, 3, margin_type=kind, margin=0.5, scale=10.0).double()
    head.weight.data = w * torch.tensor([[2.0], [0.5]], dtype=torch.float64)  # norms do not matter
    logits = head(x * 3.0, torch.zeros(3, dtype=torch.long))
    target = {
        "arcface": [math.cos(0.2 + 0.5), math.cos(1.3 + 0.5), math.cos(2.9) - 0.5 * math.sin(0.5)],
        "cosface": [math.cos(t) - 0.5 for t in thetas],
        "softmax_norm": [math.cos(t) for t in thetas],
    }[kind]
    assert logits[:, 0].tolist() == pytest.approx([10 * v for v in target], abs=1e-9)
    assert logits[:, 1].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)  # x ⟂ e_1


def test_sphereface_logits_keep_the_feature_norm_and_anneal():
    x, w = _with_angles([1.0])
    head = SphereFaceLoss(2, 3, lambda_base=0.0, lambda_min=0.0).double()
    head.weight.data = w
    logits = MarginProduct.forward(head, 2.5 * x, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(2.5 * (-math.cos(4.0) - 2))
    annealed = SphereFaceLoss(2, 3).double()
    annealed.weight.data = w
    logits = MarginProduct.forward(annealed, 2.5 * x, torch.tensor([0]))  # step 0: λ = 1000
    lam, psi = 1000.0, -math.cos(4.0) - 2
    assert logits[0, 0].item() == pytest.approx(2.5 * (lam * math.cos(1.0) + psi) / (1 + lam))
    assert int(annealed.step) == 1  # a training-mode call advances the schedule


def test_losses_are_mean_cross_entropy_of_the_logits():
    x, y = _batch()
    loss = ArcFaceLoss(5, 8).double()
    logits = MarginProduct.forward(loss, x, y)
    assert loss(x, y).item() == pytest.approx(F.cross_entropy(logits, y).item())
    soft = SoftmaxLoss(5, 8).double()
    assert soft(x, y).item() == pytest.approx(F.cross_entropy(x @ soft.weight.T + soft.bias, y).item())


# --- against pytorch-metric-learning on shared weights ---------------------------------------------


def _shared(ours, theirs):
    theirs.W.data = ours.weight.detach().T.clone()  # theirs is (embedding, classes)
    return ours, theirs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("margin", [0.5, 0.2, 1.2])
def test_arcface_matches_pytorch_metric_learning(margin, dtype):
    x, y = _batch(64, 16, 10, dtype=dtype)
    ours, theirs = _shared(
        ArcFaceLoss(10, 16, margin=margin).to(dtype), pml.ArcFaceLoss(10, 16, margin=math.degrees(margin))
    )
    assert matches_reference(ours(x, y), theirs(x, y)).holds
    # Sanity: pml's own default margin is 28.6 degrees, 0.4992 rad, not 0.5.
    assert abs(math.radians(28.6) - 0.5) > 1e-4


def test_matches_reference_fails_with_the_margin_in_the_wrong_unit():
    x, y = _batch(64, 16, 10)
    ours, theirs = _shared(ArcFaceLoss(10, 16, margin=0.5).double(), pml.ArcFaceLoss(10, 16, margin=0.5))
    assert not matches_reference(ours(x, y), theirs(x, y)).holds


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cosface_matches_pytorch_metric_learning(dtype):
    x, y = _batch(64, 16, 10, dtype=dtype)
    ours, theirs = _shared(CosFaceLoss(10, 16).to(dtype), pml.CosFaceLoss(10, 16))
    assert (ours(x, y) - theirs(x, y)).abs().item() < 1e-5


@pytest.mark.parametrize("margin", [1, 2, 3, 4])
def test_sphereface_without_annealing_matches_pytorch_metric_learning(margin):
    x, y = _batch(64, 16, 10)
    ours = SphereFaceLoss(10, 16, margin=margin, lambda_base=0.0, lambda_min=0.0).double()
    ours, theirs = _shared(ours, pml.SphereFaceLoss(10, 16, margin=margin))
    assert (ours(x, y) - theirs(x, y)).abs().item() < 1e-5


def test_arcface_with_fallback_angles_matches_pytorch_metric_learning():
    # Embeddings pointing away from their class weight: θ near π, where the fallback applies.
    x, y = _batch(32, 4, 3)
    ours = ArcFaceLoss(3, 4, margin=0.5).double()
    x = -ours.weight.detach()[y] + 0.05 * x
    ours, theirs = _shared(ours, pml.ArcFaceLoss(3, 4, margin=math.degrees(0.5)))
    assert (ours(x, y) - theirs(x, y)).abs().item() < 1e-5


# --- gradients --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: ArcFaceLoss(2, 3),
        lambda: ArcFaceLoss(2, 3, easy_margin=True),
        lambda: CosFaceLoss(2, 3),
        lambda: SphereFaceLoss(2, 3),
        lambda: MarginProduct(2, 3, margin_type="softmax_norm"),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_are_finite_at_theta_zero_and_pi(make, dtype):
    x, w = _with_angles([0.0, math.pi, 0.0, math.pi])
    x, w = x.to(dtype), w.to(dtype)
    loss = make().to(dtype)
    loss.weight.data = w
    x.requires_grad_(True)
    y = torch.tensor([0, 0, 1, 1])  # θ_target = 0, π (class 0); π/2 (class 1)
    out = loss(x, y).sum()
    out.backward()
    assert torch.isfinite(out)
    assert torch.isfinite(x.grad).all() and torch.isfinite(loss.weight.grad).all()


# --- bad input -------------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    loss = ArcFaceLoss(5, 8)
    with pytest.raises(ValueError, match="embeddings must have 2 dimensions"):
        loss(torch.randn(8), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="8 columns"):
        loss(torch.randn(4, 7), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        loss(torch.randn(4, 8), torch.tensor([0, 1, 5, 2]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        loss(torch.randn(4, 8), torch.tensor([0, -1, 2, 2]))
    with pytest.raises(TypeError, match="integer"):
        loss(torch.randn(4, 8), torch.zeros(4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        loss([[0.0] * 8], torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="one entry per embedding"):
        loss(torch.randn(4, 8), torch.zeros(3, dtype=torch.long))
    for s in [0.0, -1.0]:
        for make in [ArcFaceLoss, CosFaceLoss, SphereFaceLoss]:
            with pytest.raises(ValueError, match="scale"):
                make(5, 8, scale=s)
    for m in [-0.1, math.pi / 2, 2.0]:
        with pytest.raises(ValueError, match="margin"):
            ArcFaceLoss(5, 8, margin=m)
    for m in [0, -2, 1.5, 4.0, True]:
        with pytest.raises(ValueError, match="margin must be a positive int"):
            SphereFaceLoss(5, 8, margin=m)
    with pytest.raises(ValueError, match="margin_type"):
        MarginProduct(5, 8, margin_type="arc")
    with pytest.raises(ValueError, match="num_classes"):
        SoftmaxLoss(0, 8)


# --- training ----------------------------------------------------------------------------------------


def test_face_loss_trains_backbone_and_head_together_and_is_deterministic():
    def run(seed):
        torch.manual_seed(seed)
        embed = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        model = FaceModel(embed, ArcFaceLoss(3, 4, margin=0.3, scale=16.0))
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(300, 6, generator=g)
        y = (x[:, 0] > 0.5).long() + (x[:, 1] > 0).long()
        before = [p.detach().clone() for p in model.parameters()]
        hist = train(
            model, partial(face_loss), (x, y), steps=150, batch_size=64, lr=1e-2, generator=g, progress=False
        )
        moved = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
        return hist.loss, moved

    loss, moved = run(0)
    assert all(moved), "every parameter, backbone and class weights, must be trained"
    assert loss[-20:].mean() < 0.5 * loss[:20].mean()
    again, _ = run(0)
    assert (loss == again).all()
