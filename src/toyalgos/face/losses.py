"""Face recognition losses: the identity softmax and its normalised, margin-carrying descendants.

DeepFace (Taigman et al. 2014) and DeepID (Sun et al. 2014) train a plain softmax classifier over
thousands of identities and keep its last hidden layer as the face embedding. The margin losses
normalise both the class weights W_j and the feature x, so that the logit of class j is a cosine
cos θ_j = <x/‖x‖, W_j/‖W_j‖>, and make the *target* logit harder to win:

=============  ===================================  ============================  ================
loss           target logit                         other logits                  paper
=============  ===================================  ============================  ================
softmax        W_y·x + b_y                          W_j·x + b_j                   DeepFace/DeepID
softmax_norm   s cos θ_y                            s cos θ_j                     NormFace
sphereface     ‖x‖ (λ cos θ_y + ψ(θ_y)) / (1 + λ)   ‖x‖ cos θ_j                   arXiv 1704.08063
cosface        s (cos θ_y − m)                      s cos θ_j                     arXiv 1801.09414
arcface        s cos(θ_y + m)                       s cos θ_j                     arXiv 1801.07698
=============  ===================================  ============================  ================

``MarginProduct`` computes these logits (the margin type a parameter, as in
``ronghuaiyang/arcface-pytorch``'s ``ArcMarginProduct``); ``SphereFaceLoss``, ``CosFaceLoss``,
``ArcFaceLoss`` and ``SoftmaxLoss`` are the per-paper entry points, called ``loss(embeddings,
labels)`` and returning the mean cross-entropy. Every weight has shape (num_classes,
embedding_size), as ``nn.Linear``'s; pytorch-metric-learning stores the transpose.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core.checks import check_choice, check_number, check_positive_int, check_tensor

MARGIN_TYPES = ("softmax_norm", "sphereface", "cosface", "arcface")
# Where sin θ = sqrt(1 - cos² θ) is computed, 1 - cos² is kept above this so that the gradient
# stays finite at θ = 0 and θ = π (d sqrt(u)/du is infinite at u = 0).
_SIN_FLOOR = 1e-12


def check_face_batch(embeddings: object, labels: object, num_classes: int, embedding_size: int) -> None:
    """Embeddings (N, embedding_size) float and labels (N,) integers in [0, num_classes)."""
    embeddings = check_tensor(embeddings, "embeddings", dim=2, dtype="float")
    labels = check_tensor(labels, "labels", dim=1)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if embeddings.shape[1] != embedding_size:
        raise ValueError(
            f"embeddings must have {embedding_size} columns, got shape {tuple(embeddings.shape)}"
        )
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"labels must have one entry per embedding, got {labels.shape[0]} and {embeddings.shape[0]}"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got values in [{labels.min()}, {labels.max()}]"
        )


def cosine_logits(embeddings: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """cos θ_j = <x/‖x‖, W_j/‖W_j‖> for every feature and class: (N, D), (C, D) -> (N, C).

    NormFace (Wang et al. 2017, arXiv 1704.06369) eq. 3; clamped to [-1, 1] against rounding.
    """
    return F.linear(F.normalize(embeddings, dim=1), F.normalize(weight, dim=1)).clamp(-1.0, 1.0)


def arcface_target(cos: torch.Tensor, margin: float, *, easy_margin: bool = False) -> torch.Tensor:
    """ArcFace's target logit before scaling, cos(θ + m) (Deng et al. 2019, arXiv 1801.07698, eq. 3).

    cos(θ + m) = cos θ cos m − sin θ sin m. It stops decreasing in θ once θ + m > π, so, as in
    insightface and arcface-pytorch, where θ > π − m (cos θ < th = cos(π − m)) it is replaced by
    the straight line cos θ − mm, mm = sin(π − m)·m = m sin m, which keeps the target logit
    monotone. With ``easy_margin`` the margin applies only where cos θ > 0 (θ < π/2).
    """
    sin = torch.sqrt((1.0 - cos * cos).clamp(min=_SIN_FLOOR))
    phi = cos * math.cos(margin) - sin * math.sin(margin)  # cos(θ + m)
    if easy_margin:
        return torch.where(cos > 0, phi, cos)
    th, mm = math.cos(math.pi - margin), math.sin(math.pi - margin) * margin
    return torch.where(cos > th, phi, cos - mm)


def cosface_target(cos: torch.Tensor, margin: float) -> torch.Tensor:
    """CosFace / AM-Softmax's target logit before scaling, cos θ − m.

    Wang et al. 2018, arXiv 1801.09414, eq. 4 (AM-Softmax, arXiv 1801.05599, is the same).
    """
    return cos - margin


def chebyshev_cos(cos: torch.Tensor, m: int) -> torch.Tensor:
    """cos(mθ) as the Chebyshev polynomial T_m(cos θ): T_0 = 1, T_1 = c, T_{n+1} = 2c T_n − T_{n−1}.

    A polynomial in cos θ, so its gradient is finite at θ = 0 and π, where acos's is not
    (L-Softmax, Liu et al. 2016, arXiv 1612.02295, eq. 7, writes the same multiple-angle formula).
    """
    prev, cur = torch.ones_like(cos), cos
    if m == 0:
        return prev
    for _ in range(m - 1):
        prev, cur = cur, 2 * cos * cur - prev
    return cur


def sphereface_psi(cos: torch.Tensor, m: int) -> torch.Tensor:
    """SphereFace's ψ(θ) = (−1)^k cos(mθ) − 2k for θ in [kπ/m, (k+1)π/m], k = 0 .. m−1.

    Liu et al. 2017, arXiv 1704.08063, eq. 7: a monotone decreasing extension of cos(mθ) to [0, π].
    k is a piecewise constant (no gradient).
    """
    with torch.no_grad():
        theta = torch.acos(cos.clamp(-1.0, 1.0))
        k = torch.floor(theta * m / math.pi).clamp(max=m - 1)  # θ = π belongs to the last piece
    sign = 1.0 - 2.0 * torch.remainder(k, 2)  # (−1)^k
    return sign * chebyshev_cos(cos, m) - 2.0 * k


def sphereface_lambda(
    step: int, *, base: float = 1000.0, gamma: float = 0.12, power: float = 1.0, lambda_min: float = 5.0
) -> float:
    """λ = max(λ_min, base (1 + γ step)^−power): SphereFace's annealing weight at a training step.

    The target logit (λ cos θ + ψ(θ)) / (1 + λ) starts as plain softmax (λ = 1000) and moves to
    mostly ψ (λ = 5) within a few thousand steps (SphereFace's released code; arcface-pytorch's
    ``SphereProduct`` uses the same constants). base = lambda_min = 0 gives ψ alone.
    """
    return max(lambda_min, base * (1.0 + gamma * step) ** (-power))


class MarginProduct(nn.Module):
    """Normalised class weights W (num_classes, embedding_size) and a margin on the target logit.

    ``margin_type`` picks the row of the table in the module docstring: ``'arcface'`` (margin
    m in radians, in [0, π/2), ``easy_margin`` optional), ``'cosface'`` (m in cosine units),
    ``'sphereface'`` (m a positive integer; logits carry the feature norm ‖x‖ times ``scale``
    instead of s, and the target logit is annealed with λ = ``sphereface_lambda(step)``, where
    ``step`` counts training-mode calls, as BatchNorm's ``num_batches_tracked`` does) and
    ``'softmax_norm'`` (no margin). ``forward(embeddings, labels)`` returns the logits (N, C).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        *,
        margin_type: str = "arcface",
        margin: float = 0.5,
        scale: float = 64.0,
        easy_margin: bool = False,
        lambda_base: float = 1000.0,
        lambda_min: float = 5.0,
    ):
        super().__init__()
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.embedding_size = check_positive_int(embedding_size, "embedding_size")
        self.margin_type = check_choice(margin_type, "margin_type", MARGIN_TYPES)
        self.scale = check_number(scale, "scale", 0, low_open=True)
        if margin_type == "arcface":
            margin = check_number(margin, "margin", 0, math.pi / 2, high_open=True)
        elif margin_type == "sphereface":
            margin = check_positive_int(margin, "margin")
        else:
            margin = check_number(margin, "margin", 0)
        self.margin = margin
        self.easy_margin = bool(easy_margin)
        self.lambda_base = check_number(lambda_base, "lambda_base", 0)
        self.lambda_min = check_number(lambda_min, "lambda_min", 0)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.xavier_uniform_(self.weight)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos θ_j (N, C) of each embedding with each class weight, no margin."""
        return cosine_logits(embeddings, self.weight)

    def lambda_(self) -> float:
        """SphereFace's current annealing weight λ (used by ``margin_type='sphereface'`` only)."""
        step = int(self.step)
        return sphereface_lambda(step, base=self.lambda_base, lambda_min=self.lambda_min)

    def target_logit(self, cos: torch.Tensor) -> torch.Tensor:
        """The target class's logit before scaling, from its cosine (N,) -> (N,)."""
        if self.margin_type == "arcface":
            return arcface_target(cos, self.margin, easy_margin=self.easy_margin)
        if self.margin_type == "cosface":
            return cosface_target(cos, self.margin)
        if self.margin_type == "sphereface":
            lam = self.lambda_()
            return (lam * cos + sphereface_psi(cos, self.margin)) / (1.0 + lam)
        return cos

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits (N, C): every class's scaled cosine, the target class's with its margin."""
        check_face_batch(embeddings, labels, self.num_classes, self.embedding_size)
        cos = self.cosine(embeddings)  # (N, C)
        labels = labels.long()
        target = self.target_logit(cos.gather(1, labels[:, None]).squeeze(1))  # (N,)
        logits = cos.scatter(1, labels[:, None], target[:, None].to(cos.dtype))
        if self.margin_type == "sphereface":
            if self.training:
                self.step.add_(1)
            return logits * (self.scale * embeddings.norm(dim=1, keepdim=True))
        return logits * self.scale


class _MarginLoss(MarginProduct):
    """A ``MarginProduct`` whose call returns the mean cross-entropy of its logits."""

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(super().forward(embeddings, labels), labels.long())


class ArcFaceLoss(_MarginLoss):
    """ArcFace, additive angular margin: CE over s cos(θ_y + m), s cos θ_j (Deng et al. 2019, eq. 3).

    ``margin`` in radians (pytorch-metric-learning's is in degrees). Defaults are the paper's.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 0.5,
        scale: float = 64.0,
        *,
        easy_margin: bool = False,
    ):
        super().__init__(
            num_classes,
            embedding_size,
            margin_type="arcface",
            margin=margin,
            scale=scale,
            easy_margin=easy_margin,
        )


class CosFaceLoss(_MarginLoss):
    """CosFace / AM-Softmax, additive cosine margin: CE over s (cos θ_y − m), s cos θ_j
    (Wang et al. 2018, arXiv 1801.09414, eq. 4). Defaults are the CosFace paper's."""

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 0.35, scale: float = 64.0):
        super().__init__(num_classes, embedding_size, margin_type="cosface", margin=margin, scale=scale)


class SphereFaceLoss(_MarginLoss):
    """SphereFace / A-Softmax, multiplicative angular margin: CE over ‖x‖ (λ cos θ_y + ψ(θ_y)) / (1 + λ)
    and ‖x‖ cos θ_j, times ``scale`` (Liu et al. 2017, arXiv 1704.08063, eq. 7).

    λ anneals from ``lambda_base`` to ``lambda_min`` over training-mode calls
    (``sphereface_lambda``); ``lambda_base = lambda_min = 0`` is ψ alone, pytorch-metric-learning's
    ``SphereFaceLoss``.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: int = 4,
        scale: float = 1.0,
        *,
        lambda_base: float = 1000.0,
        lambda_min: float = 5.0,
    ):
        super().__init__(
            num_classes,
            embedding_size,
            margin_type="sphereface",
            margin=margin,
            scale=scale,
            lambda_base=lambda_base,
            lambda_min=lambda_min,
        )


class SoftmaxLoss(nn.Module):
    """The DeepFace / DeepID identity classifier: CE over W x + b, no normalisation, no margin.

    Taigman et al. 2014 (DeepFace) §4.1 and Sun et al. 2014 (DeepID) §3: a softmax over the
    training identities; the feature before it is the face embedding.
    """

    def __init__(self, num_classes: int, embedding_size: int, *, bias: bool = True):
        super().__init__()
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.embedding_size = check_positive_int(embedding_size, "embedding_size")
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None
        nn.init.xavier_uniform_(self.weight)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_face_batch(embeddings, labels, self.num_classes, self.embedding_size)
        return F.cross_entropy(F.linear(embeddings, self.weight, self.bias), labels.long())
