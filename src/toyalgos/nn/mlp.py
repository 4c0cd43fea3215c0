"""A time-conditioned MLP: the denoiser shared by the diffusion and flow notebooks."""

from __future__ import annotations

import math

import torch
from torch import nn

from toyalgos.core.checks import check_positive_int


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (integer or real) times, as in DDPM (Ho et al. 2020, App. B).

    Vaswani et al.'s position encoding: frequencies ``max_period ** (-k / half)`` for
    ``k = 0..half-1``, output ``[sin(t f_k), cos(t f_k)]`` of shape ``(n, dim)``.
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even number >= 2, got {dim}")
    t = torch.as_tensor(t)
    if t.dim() > 1:
        raise ValueError(f"t must be a scalar or have shape (n,), got shape {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.reshape(-1, 1).float() * freqs
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class TimeMLP(nn.Module):
    """``model(x, t)`` for vectors ``x`` of shape ``(n, data_dim)`` and times ``t`` of shape ``(n,)``.

    The time (a 0-based DDPM step, or a continuous noise level) goes through a sinusoidal
    embedding and a small MLP whose output is split into one shift per residual block:
    ``h <- h + W2 silu(W1 silu(h) + e_i)``. ``time_scale`` multiplies ``t`` before the
    embedding, so continuous times in ``[0, 1]`` can use the frequencies of steps in ``[0, 1000)``.

    Args:
        data_dim: size of a data vector (2 for the 2-D toys, 64 for 8x8 digits).
        hidden: width of the hidden layers.
        n_blocks: number of residual blocks.
        emb_dim: size of the sinusoidal time embedding.
        time_scale: factor applied to ``t`` before embedding.
        out_dim: output size (defaults to ``data_dim``: the model predicts noise, velocity, ...).
    """

    def __init__(
        self,
        data_dim: int,
        hidden: int = 128,
        n_blocks: int = 3,
        emb_dim: int = 64,
        time_scale: float = 1.0,
        out_dim: int | None = None,
    ):
        super().__init__()
        for name, value in [
            ("data_dim", data_dim),
            ("hidden", hidden),
            ("n_blocks", n_blocks),
            ("emb_dim", emb_dim),
        ]:
            check_positive_int(value, name)
        self.data_shape = (data_dim,)
        self.emb_dim = emb_dim
        self.n_blocks = n_blocks
        self.time_scale = time_scale
        # The time MLP stays emb_dim wide: it sees one scalar, and it is a third of the cost
        # when it is as wide as the data path.
        self.time_mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, hidden * n_blocks)
        )
        self.inp = nn.Linear(data_dim, hidden)
        self.lin1 = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_blocks))
        self.lin2 = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_blocks))
        self.out = nn.Linear(hidden, out_dim or data_dim)

    def _embed(self, t: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(sinusoidal_embedding(t * self.time_scale, self.emb_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.data_shape[0]:
            raise ValueError(f"x must have shape (n, {self.data_shape[0]}), got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},) or be a scalar, got {tuple(t.shape)}")
        if x.shape[0] > 1 and bool((t == t[0]).all()):
            # One shared time (every sampling step): embed it once, broadcast to the batch.
            e = self._embed(t[:1])
        else:
            e = self._embed(t)
        shifts = e.chunk(self.n_blocks, dim=-1)
        h = self.inp(x)
        for lin1, lin2, shift in zip(self.lin1, self.lin2, shifts, strict=True):
            h = h + lin2(nn.functional.silu(lin1(nn.functional.silu(h)) + shift))
        return self.out(nn.functional.silu(h))
