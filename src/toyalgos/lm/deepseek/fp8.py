"""FP8 mixed-precision training, simulated: fine-grained scaling, promoted accumulation, FP8 linear layers.

DeepSeek-V3 (DeepSeek-AI 2024, arXiv:2412.19437, §3.3 and App. B) runs all three GEMMs of every
linear layer in FP8: the forward pass (Fprop, y = x W^T), the activation gradient (Dgrad,
dx = dy W) and the weight gradient (Wgrad, dW = dy^T x). Three ideas make that work:

1. **One format, fine-grained scales** (§3.3.2). Every tensor is E4M3 (4 exponent bits, 3
   mantissa bits, largest value 448); each group of elements along the inner dimension K of its
   GEMM gets its own scale, computed online from the group's max-abs, s = max|x| / 448:
   activations and gradients per 1 x 128 tile (one token, 128 channels), weights per 128 x 128
   block. An outlier then spoils only its own tile.
2. **Promoted accumulation** (§3.3.2). The tensor cores keep only about 14 bits of the running
   sum; every N_C = 128 products the partial sum is copied to an FP32 register, where the
   group's scales are applied, so the error of the short accumulator cannot grow with K.
3. **Straight-through training.** Master weights stay in FP32; the quantiser sits in front of
   each GEMM and the gradient passes it unchanged.

The reference kernels (``deepseek-ai/DeepSeek-V3``, ``inference/kernel.py``) do the same on a GPU:
``act_quant`` (tiles of 128, s = amax / 448, x / s cast to ``float8_e4m3fn``, float32 scales of
shape ``[..., K / 128]``), ``weight_quant`` / ``weight_dequant`` (one scale per 128 x 128 block)
and ``fp8_gemm`` (an FP32 accumulator that adds ``dot(a, b) * a_s * b_s`` per K block of 128).

Here the FP8 values are real: torch's ``float8_e4m3fn`` and ``float8_e5m2`` casts work on a CPU
(round to nearest, ties to even; E4M3 saturates at +-448, E5M2 overflows to inf). Arithmetic on
FP8 tensors does not, so every GEMM multiplies the dequantised values in FP32 (fake
quantisation): the operands are exactly those an FP8 GEMM would see. The short accumulator is a
model (``limited_precision_matmul``): the hardware's exact rounding is not public.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core.checks import (
    check_choice,
    check_generator,
    check_int,
    check_number,
    check_positive_int,
    check_tensor,
)


class FP8Format(NamedTuple):
    """An 8-bit floating-point format: 1 sign bit, ``exponent_bits``, ``mantissa_bits``."""

    name: str
    dtype: torch.dtype
    exponent_bits: int
    mantissa_bits: int
    max: float  # largest finite value
    min_normal: float  # smallest positive normal value, 2^(1 - bias)
    min_subnormal: float  # smallest positive value, min_normal * 2^-mantissa_bits


FP8_FORMATS = {
    "e4m3": FP8Format("e4m3", torch.float8_e4m3fn, 4, 3, 448.0, 2.0**-6, 2.0**-9),
    "e5m2": FP8Format("e5m2", torch.float8_e5m2, 5, 2, 57344.0, 2.0**-14, 2.0**-16),
}

Block = tuple[int, int] | None  # (rows, cols) of one scaling group; None: one scale for the tensor

FP8_TILE = (1, 128)  # activations and output gradients along K: one token, 128 channels
FP8_BLOCK = (128, 128)  # weights
FP8_COLUMN = (128, 1)  # Wgrad's operands, whose inner dimension is the token axis


def _format(fmt: str) -> FP8Format:
    return FP8_FORMATS[check_choice(fmt, "fmt", FP8_FORMATS)]


def fp8_grid(fmt: str = "e4m3") -> torch.Tensor:
    """Every finite value >= 0 of the format, ascending (float32): the grid FP8 rounds to.

    Read off all 256 bit patterns. E4M3 has 127 of them (0, 7 subnormals, 15 binades of 8 less
    the top code, which is NaN), E5M2 124 (0, 3 subnormals, 30 binades of 4).
    """
    values = _decode_table(_format(fmt).dtype)
    return values[torch.isfinite(values) & (values >= 0)].unique()


def fp8_cast(x: torch.Tensor, fmt: str = "e4m3") -> torch.Tensor:
    """``x`` rounded to the FP8 grid without any scaling, back in float32.

    Round to nearest, ties to even. Out of range, E4M3 (``float8_e4m3fn``, no infinities)
    saturates to +-448, inf included, while E5M2 rounds past 61440 to +-inf; NaN stays NaN.
    Values below half the smallest subnormal flush to zero.
    """
    check_tensor(x, "x", dtype="float")
    return fp8_to_float(x.float().to(_format(fmt).dtype))


class FP8Tensor(NamedTuple):
    """A quantised matrix: ``x ~ codes * scale`` of its block.

    ``codes`` ``(M, K)`` hold x / s in an FP8 dtype; ``scales`` ``(M / rows, K / cols)`` float32
    hold one s per block; ``block`` is ``(rows, cols)``, the whole matrix for per-tensor scaling.
    """

    codes: torch.Tensor
    scales: torch.Tensor
    block: tuple[int, int]


def _check_block(x: torch.Tensor, block: Block) -> tuple[int, int]:
    if block is None:
        return tuple(x.shape)
    if not (isinstance(block, tuple) and len(block) == 2):
        raise TypeError(f"block must be a (rows, cols) tuple or None, got {block!r}")
    rows, cols = check_positive_int(block[0], "block rows"), check_positive_int(block[1], "block cols")
    M, K = x.shape
    if M % rows or K % cols:
        raise ValueError(
            f"block {block} must divide the tensor's shape {tuple(x.shape)}: pad it, or pick a block "
            "size that divides both dimensions"
        )
    return rows, cols


def quantize_fp8(x: torch.Tensor, block: Block = FP8_TILE, *, fmt: str = "e4m3") -> FP8Tensor:
    """Block-wise FP8 quantisation with online max-abs scales (DeepSeek-V3 §3.3.2, ``act_quant``).

    Each ``block`` of ``x`` ``(M, K)`` gets the scale s = max|x_block| / max_fmt and its values
    are stored as round(x / s) in the format, so the largest one lands on +-448 (E4M3). Use
    ``FP8_TILE`` (1 x 128) for activations and gradients, ``FP8_BLOCK`` (128 x 128) for weights,
    ``FP8_COLUMN`` (128 x 1) for an operand whose inner dimension is its rows, and ``None`` for
    one scale per tensor. A block of zeros gets s = 1 and codes 0 (the reference kernel clamps
    the max-abs at 1e-4 instead). NaN or inf in ``x`` raises: one inf would make s infinite and
    every code in its block zero.
    """
    check_tensor(x, "x", dim=2, dtype="float")
    rows, cols = _check_block(x, block)
    f = _format(fmt)
    M, K = x.shape
    blocks = x.float().reshape(M // rows, rows, K // cols, cols)  # (M/r, r, K/c, c)
    amax = blocks.abs().amax(dim=(1, 3))  # (M/r, K/c); NaN and inf propagate
    if not torch.isfinite(amax).all():
        raise ValueError(
            "x must be finite: FP8 scaling needs a finite max-abs in every block, found NaN or inf"
        )
    scales = torch.where(amax > 0, amax / f.max, torch.ones_like(amax))
    codes = (blocks / scales[:, None, :, None]).to(f.dtype).reshape(M, K)
    return FP8Tensor(codes, scales, (rows, cols))


@functools.cache
def _decode_table(dtype: torch.dtype) -> torch.Tensor:
    """The float32 value of each of the 256 codes, from torch's own cast."""
    return torch.arange(256, dtype=torch.uint8).view(dtype).float()


def fp8_to_float(codes: torch.Tensor) -> torch.Tensor:
    """FP8 ``codes`` as float32: ``codes.float()``, read from a 256-entry table (faster on a CPU)."""
    check_tensor(codes, "codes")
    if codes.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2):
        raise TypeError(f"codes must be float8_e4m3fn or float8_e5m2, got dtype {codes.dtype}")
    return torch.take(_decode_table(codes.dtype), codes.view(torch.uint8).long())


def dequantize_fp8(q: FP8Tensor) -> torch.Tensor:
    """``codes * scale`` of each block, float32 ``(M, K)`` (``weight_dequant`` for any block)."""
    if not isinstance(q, FP8Tensor):
        raise TypeError(f"q must be an FP8Tensor from quantize_fp8, got {type(q).__name__}")
    (M, K), (rows, cols) = q.codes.shape, q.block
    blocks = fp8_to_float(q.codes).reshape(M // rows, rows, K // cols, cols)
    return (blocks * q.scales[:, None, :, None]).reshape(M, K)


def fake_quantize_fp8(x: torch.Tensor, block: Block = FP8_TILE, *, fmt: str = "e4m3") -> torch.Tensor:
    """``dequantize_fp8(quantize_fp8(x, block, fmt=fmt))``: the values an FP8 GEMM computes with."""
    return dequantize_fp8(quantize_fp8(x, block, fmt=fmt))


def relative_error(x: torch.Tensor, x_hat: torch.Tensor, *, dim: int | None = None) -> torch.Tensor:
    """||x - x_hat|| / ||x||: over the whole tensor (``dim=None``) or along ``dim`` (per token: -1).

    A slice that is zero in ``x`` and in ``x_hat`` has error 0.
    """
    check_tensor(x, "x", dtype="float")
    check_tensor(x_hat, "x_hat", dtype="float")
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have one shape, got {tuple(x.shape)} and {tuple(x_hat.shape)}")
    x, diff = x.double(), x.double() - x_hat.double()
    if dim is None:
        return diff.norm() / x.norm().clamp_min(1e-300)
    return diff.norm(dim=dim) / x.norm(dim=dim).clamp_min(1e-300)


# --- The accumulator ---------------------------------------------------------------------


def truncate_significand(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x`` with only its ``bits`` leading significant bits kept, rounded toward zero.

    The model of a short accumulator: x = m 2^e with 0.5 <= |m| < 1 becomes
    trunc(m 2^bits) 2^(e - bits). float32 keeps 24 bits, the H800's FP8 tensor cores about 14.
    """
    check_positive_int(bits, "bits")
    m, e = torch.frexp(x.double())
    return torch.ldexp(torch.trunc(torch.ldexp(m, torch.tensor(bits))), e - bits)


def limited_precision_matmul(
    a: torch.Tensor, b: torch.Tensor, *, n_c: int | None = 128, accumulator_bits: int | None = 14
) -> torch.Tensor:
    """``a @ b`` summed as an FP8 tensor core does, with promotion to FP32 every ``n_c`` products.

    ``a`` ``(M, K)``, ``b`` ``(K, N)``. The K products of each output split into chunks of
    ``n_c`` (``None``: one chunk, no promotion). Inside a chunk a running sum adds one exact
    product at a time and keeps ``accumulator_bits`` significant bits (``truncate_significand``;
    ``None``: exact), as in DeepSeek-V3's description of the H800 (§3.3.2: products aligned and
    truncated to about 14 bits). At the end of each chunk the partial sum is promoted: added,
    in order, to an FP32 accumulator (CUDA cores, where ``fp8_gemm`` applies the scales).
    Returns float32 ``(M, N)``.
    """
    check_tensor(a, "a", dim=2, dtype="float")
    check_tensor(b, "b", dim=2, dtype="float")
    (M, K), N = a.shape, b.shape[1]
    if b.shape[0] != K:
        raise ValueError(f"a (M, K) and b (K, N) must share K, got {tuple(a.shape)} and {tuple(b.shape)}")
    n_c = K if n_c is None else check_positive_int(n_c, "n_c")
    if K % n_c:
        raise ValueError(f"n_c must divide K = {K}, got n_c = {n_c}")
    if accumulator_bits is not None:
        check_positive_int(accumulator_bits, "accumulator_bits")
    G = K // n_c
    a_chunks = a.double().reshape(M, G, n_c).permute(1, 0, 2)  # (G, M, n_c): chunk g holds k = g n_c + j
    b_chunks = b.double().reshape(G, n_c, N)  # (G, n_c, N)
    partial = torch.zeros(G, M, N, dtype=torch.float64)
    for j in range(n_c):  # the running sum of every chunk, all chunks at once
        partial = partial + a_chunks[:, :, j, None] * b_chunks[:, j, None, :]
        if accumulator_bits is not None:
            partial = truncate_significand(partial, accumulator_bits)
    out = torch.zeros(M, N, dtype=torch.float32)
    for chunk in partial.float():  # promotion: FP32 adds, one chunk after the other
        out = out + chunk
    return out


def fp8_matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    block_a: Block = FP8_TILE,
    block_b: Block = FP8_BLOCK,
    fmt: str = "e4m3",
    n_c: int | None = 128,
    accumulator_bits: int | None = 14,
) -> torch.Tensor:
    """A simulated FP8 GEMM ``a @ b``: quantised operands, a short accumulator promoted every ``n_c``.

    ``a`` ``(M, K)`` is quantised in ``block_a`` groups (1 x 128 tiles along K), ``b`` ``(K, N)``
    in ``block_b`` groups (128 x 128 blocks; ``FP8_COLUMN`` for an activation); both scale
    groups run along the inner dimension K, so that one pair of scales covers each chunk of
    128 products. The dequantised operands are multiplied by ``limited_precision_matmul``.
    """
    a_q = fake_quantize_fp8(a, block_a, fmt=fmt)
    b_q = fake_quantize_fp8(b, block_b, fmt=fmt)
    return limited_precision_matmul(a_q, b_q, n_c=n_c, accumulator_bits=accumulator_bits)


# --- Training: FP8 linear layers ----------------------------------------------------------


class FP8Recipe(NamedTuple):
    """How the operands of an ``FP8Linear``'s three GEMMs are quantised.

    ``scaling``: ``'fine'`` (DeepSeek-V3: 1 x B tiles for activations and gradients, B x B blocks
    for weights, B x 1 tiles for Wgrad's token-axis operands), ``'tensor'`` (one max-abs scale per
    operand) or ``'none'`` (a plain cast to FP8, scale 1). ``block_size``: B (128 in DeepSeek-V3).
    ``fmt``: ``'e4m3'`` for every tensor, as in DeepSeek-V3, or ``'e5m2'``.
    """

    scaling: str = "fine"
    block_size: int = 128
    fmt: str = "e4m3"


SCALINGS = ("fine", "tensor", "none")
DEEPSEEK_V3_FP8 = FP8Recipe()  # E4M3 everywhere, 1 x 128 tiles, 128 x 128 blocks


def _check_recipe(recipe: FP8Recipe) -> FP8Recipe:
    if not isinstance(recipe, FP8Recipe):
        raise TypeError(f"recipe must be an FP8Recipe, got {type(recipe).__name__}")
    check_choice(recipe.scaling, "recipe.scaling", SCALINGS)
    check_positive_int(recipe.block_size, "recipe.block_size")
    _format(recipe.fmt)
    return recipe


def fp8_operand(x: torch.Tensor, role: str, recipe: FP8Recipe) -> torch.Tensor:
    """The FP8 values that a GEMM operand ``x`` ``(M, K)`` is replaced with, under ``recipe``.

    ``role`` names the scaling group of fine scaling: ``'tile'`` (1 x B), ``'block'`` (B x B) or
    ``'column'`` (B x 1). Dimensions that B does not divide are padded with zeros for the
    quantisation (a zero changes no block's max-abs), then cropped: a toy layer narrower than
    B gets one tile per row.
    """
    check_choice(role, "role", ("tile", "block", "column"))
    if recipe.scaling == "none":
        return fp8_cast(x, recipe.fmt)
    if recipe.scaling == "tensor":
        return fake_quantize_fp8(x, None, fmt=recipe.fmt)
    B = recipe.block_size
    block = {"tile": (1, B), "block": (B, B), "column": (B, 1)}[role]
    M, K = x.shape
    pad_m, pad_k = -M % block[0], -K % block[1]
    if pad_m == pad_k == 0:
        return fake_quantize_fp8(x, block, fmt=recipe.fmt)
    padded = F.pad(x, (0, pad_k, 0, pad_m))
    return fake_quantize_fp8(padded, block, fmt=recipe.fmt)[:M, :K]


class FP8LinearFunction(torch.autograd.Function):
    """y = x W^T + b with Fprop, Dgrad and Wgrad on FP8 operands (DeepSeek-V3 Fig. 6).

    Fprop:  y  = Q_tile(x) Q_block(W)^T + b
    Dgrad:  dx = Q_tile(dy) Q_block(W)
    Wgrad:  dW = Q_column(dy)^T Q_column(x),   db = sum over tokens of dy (FP32, no GEMM)

    Each quantiser's groups run along its GEMM's inner dimension: K for Fprop, the output
    features for Dgrad, the tokens for Wgrad (hence the 128 x 1 tiles). The gradient passes the
    quantisers straight through. Dgrad reuses Fprop's quantised weight (a square block quantises
    the same along either axis); x is kept in full precision for Wgrad's 128 x 1 tiles.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, recipe: FP8Recipe
    ) -> torch.Tensor:
        w_q = fp8_operand(weight, "block", recipe)  # (N, K), stored once: Dgrad reuses it
        ctx.save_for_backward(x, w_q)
        ctx.recipe, ctx.has_bias = recipe, bias is not None
        y = fp8_operand(x, "tile", recipe) @ w_q.T  # (M, N)
        return y if bias is None else y + bias

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w_q = ctx.saved_tensors
        recipe = ctx.recipe
        dx = fp8_operand(dy, "tile", recipe) @ w_q  # (M, K)
        dw = fp8_operand(dy, "column", recipe).T @ fp8_operand(x, "column", recipe)  # (N, K)
        db = dy.sum(0) if ctx.has_bias else None
        return dx, dw, db, None


class FP8Linear(nn.Linear):
    """An ``nn.Linear`` whose three GEMMs run on simulated FP8 operands (``FP8LinearFunction``).

    The parameters stay float32 (the master weights); input ``(..., in_features)`` is flattened
    to tokens ``(M, in_features)`` for the GEMMs; the output is float32.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *, recipe: FP8Recipe = DEEPSEEK_V3_FP8
    ):
        super().__init__(in_features, out_features, bias)
        self.recipe = _check_recipe(recipe)

    def extra_repr(self) -> str:
        r = self.recipe
        return f"{super().extra_repr()}, scaling={r.scaling}, block_size={r.block_size}, fmt={r.fmt}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = FP8LinearFunction.apply(x.reshape(-1, self.in_features), self.weight, self.bias, self.recipe)
        return y.reshape(*lead, self.out_features)


def convert_to_fp8(module: nn.Module, recipe: FP8Recipe = DEEPSEEK_V3_FP8) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``module`` with an ``FP8Linear`` sharing its parameters.

    In place; returns ``module``. Convert only what DeepSeek-V3 runs in FP8: the blocks' linear
    layers (``convert_to_fp8(model.blocks)``), not the embedding or the output head.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    _check_recipe(recipe)
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            fp8 = FP8Linear(child.in_features, child.out_features, child.bias is not None, recipe=recipe)
            fp8.weight, fp8.bias = child.weight, child.bias
            setattr(module, name, fp8)
        else:
            convert_to_fp8(child, recipe)
    return module


# --- Test tensors -------------------------------------------------------------------------


def token_imbalanced(
    n_tokens: int, dim: int, *, decades: float = 6.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A gradient-like matrix ``(n_tokens, dim)``: N(0, 1) rows scaled by 10^(-decades U), U ~ U[0, 1].

    Activation gradients differ by orders of magnitude from token to token (DeepSeek-V3
    App. B.2): one scale for many tokens is set by the largest and flushes the smallest.
    """
    check_positive_int(n_tokens, "n_tokens")
    check_positive_int(dim, "dim")
    check_number(decades, "decades", 0)
    check_generator(generator)
    x = torch.randn(n_tokens, dim, generator=generator)
    return x * 10.0 ** (-decades * torch.rand(n_tokens, 1, generator=generator))


class OutlierActivations(NamedTuple):
    """``x`` ``(n_tokens, dim)`` and the indices of its outlier ``channels`` (ascending)."""

    x: torch.Tensor
    channels: torch.Tensor


def outlier_channels(
    n_tokens: int,
    dim: int,
    *,
    factor: float,
    n_outliers: int = 4,
    generator: torch.Generator | None = None,
) -> OutlierActivations:
    """An activation-like matrix ``(n_tokens, dim)``: N(0, 1), ``n_outliers`` random channels x ``factor``.

    LLM activations carry a few channels that are persistently 10 to 1000 times larger than the
    rest; the per-tensor scale then follows them.
    """
    check_positive_int(n_tokens, "n_tokens")
    check_positive_int(dim, "dim")
    check_number(factor, "factor", 0, low_open=True)
    check_generator(generator)
    check_int(n_outliers, "n_outliers", 0, dim)
    x = torch.randn(n_tokens, dim, generator=generator)
    channels = torch.randperm(dim, generator=generator)[:n_outliers].sort().values
    x[:, channels] *= factor
    return OutlierActivations(x, channels)
