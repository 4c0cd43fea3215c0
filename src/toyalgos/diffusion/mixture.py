"""An isotropic Gaussian mixture: draws from it, and its exact denoiser.

The exact denoiser lives beside the data it is exact for. It needs no training, so with it a
sampler's error is the ODE solver's alone (the EDM notebook's first experiment); the same
mixture, drawn with ``gaussian_mixture``, is the training data of the 2-D notebooks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from toyalgos.core.checks import check_generator, check_positive_int

from ._checks import check_sigma


def _mixture_params(
    means: Sequence[Sequence[float]] | torch.Tensor,
    stds: float | Sequence[float] | torch.Tensor,
    weights: Sequence[float] | torch.Tensor | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked ``(means (k, d), stds (k,), weights (k,) summing to 1)`` in ``dtype``."""
    means = torch.as_tensor(means, dtype=dtype)
    if means.dim() != 2:
        raise ValueError(f"means must have shape (k, d), got {tuple(means.shape)}")
    k = means.shape[0]
    stds = torch.as_tensor(stds, dtype=dtype).expand(k)
    if (stds <= 0).any():
        raise ValueError(f"std must be > 0, got {stds.tolist()}")
    w = torch.full((k,), 1.0 / k, dtype=dtype) if weights is None else torch.as_tensor(weights, dtype=dtype)
    if w.shape != (k,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {k} non-negative numbers, got {weights}")
    return means, stds, w / w.sum()


def gaussian_mixture(
    n: int,
    means: Sequence[Sequence[float]] | torch.Tensor,
    std: float | Sequence[float] = 0.1,
    weights: Sequence[float] | torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` draws from sum_k w_k N(mu_k, s_k^2 I): a component index, then Gaussian noise around its mean.

    Returns a float32 tensor of shape ``(n, d)``; ``std`` is one std or one per component,
    ``weights`` default to equal.
    """
    check_positive_int(n, "n")
    check_generator(generator)
    means, stds, w = _mixture_params(means, std, weights, torch.float32)
    comp = torch.multinomial(w, n, replacement=True, generator=generator)
    z = torch.randn(n, means.shape[1], generator=generator)
    return means[comp] + stds[comp, None] * z


class GaussianMixtureDenoiser:
    """The exact denoiser D(x; sigma) = E[x0 | x0 + sigma n = x] of a Gaussian mixture.

    For x0 ~ sum_k pi_k N(mu_k, Sigma_k): D = sum_k w_k(x) [mu_k + Sigma_k (Sigma_k + sigma^2 I)^-1
    (x - mu_k)], w_k(x) proportional to pi_k N(x; mu_k, Sigma_k + sigma^2 I). No training: it
    isolates the error of the ODE solver from the error of a learned network. Isotropic
    components (``stds``) keep it closed form and cheap. Called as ``D(x, sigma)``, like an
    ``EDMDenoiser``, with ``sigma`` a scalar or one per sample.
    """

    def __init__(
        self,
        means: Sequence[Sequence[float]] | torch.Tensor,
        stds: float | Sequence[float] | torch.Tensor,
        weights: Sequence[float] | torch.Tensor | None = None,
    ):
        self.means, self.stds, w = _mixture_params(means, stds, weights, torch.float64)
        self.log_weights = torch.log(w)
        self.data_shape = (self.means.shape[1],)

    def __call__(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        x64 = x.double()
        sig2 = check_sigma(sigma, x64) ** 2  # (n, 1)
        var = self.stds**2 + sig2  # (n, k): variance of x under component k
        d = self.means.shape[1]
        sq = ((x64[:, None, :] - self.means[None]) ** 2).sum(-1)  # (n, k)
        log_p = self.log_weights - 0.5 * sq / var - 0.5 * d * torch.log(var)
        w = torch.softmax(log_p, dim=1)
        shrink = (self.stds**2 / var)[..., None]  # Sigma_k (Sigma_k + sigma^2 I)^-1
        post = self.means[None] + shrink * (x64[:, None, :] - self.means[None])
        return (w[..., None] * post).sum(1).to(x.dtype)
