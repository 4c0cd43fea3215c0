"""Simulated FP8 (DeepSeek-V3 §3.3): the casts against a brute-force round-to-nearest-even on the
format's grid, block scales and their error bound, the short accumulator against hand
computations, FP8Linear's three GEMMs against their formulas, bad input, determinism, and the
notebook's claims on good and known-bad cases."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import seed_everything
from toyalgos.lm import FP8Linear, fp8_matmul, quantize_fp8
from toyalgos.lm.claims import (
    accumulation_error_grows,
    fp8_loss_matches,
    fp8_outlier_error_ratio,
    fp8_tokens_kept,
    fp8_tokens_lost,
    promotion_cuts_error,
    unscaled_fp8_loss_gap,
)
from toyalgos.lm.deepseek import (
    FP8_BLOCK,
    FP8_COLUMN,
    FP8_FORMATS,
    FP8_TILE,
    FP8Recipe,
    FP8Tensor,
    convert_to_fp8,
    dequantize_fp8,
    fake_quantize_fp8,
    fp8_cast,
    fp8_grid,
    fp8_operand,
    fp8_to_float,
    limited_precision_matmul,
    outlier_channels,
    relative_error,
    token_imbalanced,
    truncate_significand,
)
from toyalgos.nn import Transformer, TransformerConfig


def gen(seed):
    return torch.Generator().manual_seed(seed)


def rne_on_grid(y, fmt):
    """Brute force: the grid value nearest to |y|, ties to the even index (= even mantissa), signed."""
    grid = fp8_grid(fmt).double()
    d = (y.double().abs()[..., None] - grid).abs()
    best = d.min(-1, keepdim=True).values
    ties = d == best
    idx = torch.arange(len(grid))
    pick = torch.where(
        ties.sum(-1) > 1, (ties & (idx % 2 == 0)).double().argmax(-1), ties.double().argmax(-1)
    )
    return (grid[pick] * y.sign()).float()


def half_gap(y, fmt):
    """Half the distance between the two grid values around |y| (within the format's range)."""
    grid = fp8_grid(fmt).double()
    i = torch.searchsorted(grid, y.double().abs()).clamp(1, len(grid) - 1)
    return (grid[i] - grid[i - 1]) / 2


# --- Formats and casts --------------------------------------------------------------------


def test_grids_have_the_formats_sizes_and_ranges():
    e4m3, e5m2 = fp8_grid("e4m3"), fp8_grid("e5m2")
    assert len(e4m3) == 127 and len(e5m2) == 124  # 0, subnormals, normals; NaN (and inf) left out
    for fmt, grid in [("e4m3", e4m3), ("e5m2", e5m2)]:
        f = FP8_FORMATS[fmt]
        assert grid[0] == 0 and grid[1] == f.min_subnormal and grid[-1] == f.max
        assert f.min_normal in grid.tolist()
        assert f.max == torch.finfo(f.dtype).max
    # relative step inside a binade: 2^-3 for E4M3, 2^-2 for E5M2
    assert e4m3[e4m3 >= 1][1] == 1.125 and e5m2[e5m2 >= 1][1] == 1.25


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_cast_rounds_to_nearest_even_on_the_grid(fmt):
    grid = fp8_grid(fmt)
    mids = (grid[1:] + grid[:-1]) / 2  # exact ties
    y = torch.cat(
        [mids, -mids, torch.rand(2000, generator=gen(0)) * grid[-1], torch.randn(2000, generator=gen(1))]
    )
    torch.testing.assert_close(fp8_cast(y, fmt), rne_on_grid(y, fmt), rtol=0, atol=0)
    assert fp8_cast(torch.tensor([1.0625, 1.1875, 1.0 + 2**-4 + 2**-3]), "e4m3").tolist() == [1.0, 1.25, 1.25]


def test_decoding_reads_torch_own_cast():
    for dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        codes = torch.arange(256, dtype=torch.uint8).view(dtype).reshape(16, 16)
        torch.testing.assert_close(fp8_to_float(codes), codes.float(), equal_nan=True, rtol=0, atol=0)
    with pytest.raises(TypeError, match="float8"):
        fp8_to_float(torch.ones(3))


def test_e4m3_saturates_at_448_and_e5m2_overflows_to_inf():
    x = torch.tensor([448.0, 464.0, 500.0, 1e6, float("inf"), -1e6, float("-inf")])
    assert fp8_cast(x, "e4m3").tolist() == [448.0, 448.0, 448.0, 448.0, 448.0, -448.0, -448.0]
    y = fp8_cast(torch.tensor([57344.0, 61439.0, 61440.0, 1e6, -1e6]), "e5m2")
    assert y.tolist() == [57344.0, 57344.0, float("inf"), float("inf"), float("-inf")]
    assert fp8_cast(torch.tensor([float("nan")]), "e4m3").isnan().all()
    # below half the smallest subnormal: flushed to zero
    assert fp8_cast(torch.tensor([2.0**-10, 2.0**-10 * 1.01]), "e4m3").tolist() == [0.0, 2.0**-9]


# --- Scaling ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("block", [None, (1, 32), (32, 32), (32, 1), (4, 16)])
def test_quantise_dequantise_error_is_at_most_half_a_grid_step_times_the_scale(fmt, block):
    x = torch.randn(64, 96, generator=gen(2)) * torch.logspace(-3, 3, 96)  # channels of every size
    q = quantize_fp8(x, block, fmt=fmt)
    rows, cols = q.block
    scale = q.scales.repeat_interleave(rows, 0).repeat_interleave(cols, 1)  # (64, 96)
    assert q.codes.dtype == FP8_FORMATS[fmt].dtype and q.scales.dtype == torch.float32
    err = (dequantize_fp8(q) - x).abs()
    bound = half_gap(x / scale, fmt) * scale
    assert (err <= bound * (1 + 1e-5) + 1e-30).all()
    # the codes are the round-to-nearest-even of x / s
    torch.testing.assert_close(q.codes.float(), rne_on_grid(x / scale, fmt), rtol=0, atol=0)


def test_scales_are_the_block_max_abs_over_the_format_max():
    x = torch.randn(64, 256, generator=gen(3))
    for block, shape in [(FP8_TILE, (64, 2)), ((32, 128), (2, 2)), (None, (1, 1)), ((64, 1), (1, 256))]:
        q = quantize_fp8(x, block)
        assert q.scales.shape == shape
        r, c = q.block
        amax = x.reshape(64 // r, r, 256 // c, c).abs().amax(dim=(1, 3))
        torch.testing.assert_close(q.scales, amax / 448.0)
        codes_max = q.codes.float().reshape(64 // r, r, 256 // c, c).abs().amax(dim=(1, 3))
        assert (codes_max == 448.0).all()  # every block's largest value lands on E4M3's max


def test_tiles_follow_the_reference_kernel_layout():
    """act_quant: tiles of 128 along the last dimension, scales [..., K / 128]; weight blocks 128 x 128."""
    x = torch.randn(4, 384, generator=gen(4))
    q = quantize_fp8(x)
    assert q.block == (1, 128) and q.scales.shape == (4, 3)
    w = torch.randn(256, 384, generator=gen(5))
    assert quantize_fp8(w, FP8_BLOCK).scales.shape == (2, 3)
    torch.testing.assert_close(q.scales[1, 2], x[1, 256:].abs().max() / 448)


def test_an_all_zero_tile_quantises_to_zeros():
    x = torch.randn(2, 256, generator=gen(6))
    x[0, :128] = 0.0
    q = quantize_fp8(x)
    assert q.scales[0, 0] == 1.0 and (q.codes[0, :128].float() == 0).all()
    assert (dequantize_fp8(q)[0, :128] == 0).all()
    assert (quantize_fp8(torch.zeros(4, 8), None).codes.float() == 0).all()
    assert relative_error(x[1:], dequantize_fp8(q)[1:]) < 0.04


def test_bad_input_raises_clear_errors():
    x = torch.randn(4, 256)
    for bad in [float("nan"), float("inf"), float("-inf")]:
        y = x.clone()
        y[2, 7] = bad
        with pytest.raises(ValueError, match="finite"):
            quantize_fp8(y)
    with pytest.raises(ValueError, match="divide"):
        quantize_fp8(torch.randn(4, 200))  # 128 does not divide 200
    with pytest.raises(ValueError, match="divide"):
        quantize_fp8(torch.randn(100, 256), FP8_BLOCK)
    with pytest.raises(ValueError, match="dimensions"):
        quantize_fp8(torch.randn(256))
    with pytest.raises(TypeError, match="floating"):
        quantize_fp8(torch.ones(4, 128, dtype=torch.long))
    with pytest.raises(TypeError, match="block"):
        quantize_fp8(x, 128)
    with pytest.raises(ValueError, match="block rows"):
        quantize_fp8(x, (0, 128))
    with pytest.raises(ValueError, match="fmt"):
        quantize_fp8(x, fmt="e3m4")
    with pytest.raises(TypeError, match="FP8Tensor"):
        dequantize_fp8(x)
    with pytest.raises(ValueError, match="shape"):
        relative_error(x, x[:2])


def test_fine_scaling_keeps_small_tokens_that_one_scale_flushes():
    x = token_imbalanced(256, 512, generator=gen(7))
    per_token = {b: relative_error(x, fake_quantize_fp8(x, b), dim=-1) for b in [None, FP8_TILE, FP8_BLOCK]}
    assert per_token[FP8_TILE].max() < 0.04
    assert per_token[None].max() == 1.0 and per_token[FP8_BLOCK].max() == 1.0  # some token flushed to zero


# --- The accumulator ----------------------------------------------------------------------


def test_truncate_significand_by_hand():
    x = torch.tensor([449.0, -449.0, 7.9, 0.0, 896.0, 1.0 + 2**-20])
    assert truncate_significand(x, 3).tolist() == [448.0, -448.0, 7.0, 0.0, 896.0, 1.0]
    assert truncate_significand(torch.tensor([1.0 + 2**-20]), 21).item() == 1.0 + 2**-20
    y = torch.randn(1000, dtype=torch.float64, generator=gen(8))
    torch.testing.assert_close(truncate_significand(y, 24), y.float().double(), rtol=2**-23, atol=0)
    assert (truncate_significand(y, 10).abs() <= y.abs()).all()  # toward zero


def test_accumulator_equals_a_hand_computation():
    """Products 1, 1, 448, 1 with a 3-bit running sum: 448 + 1 = 449 truncates to 448."""
    a = torch.tensor([[1.0, 1.0, 448.0, 1.0]])
    b = torch.ones(4, 1)
    hand = {4: 448.0, None: 448.0, 2: 450.0, 1: 451.0}  # (1+1), then (448+1) -> 448; 2 + 448 = 450
    for n_c, value in hand.items():
        assert limited_precision_matmul(a, b, n_c=n_c, accumulator_bits=3).item() == value
    assert limited_precision_matmul(a, b, n_c=None, accumulator_bits=None).item() == 451.0
    # FP8 GEMM: a has max-abs 448 (scale 1), b = 1.75 has scale 1.75 / 448 = 2^-8: both exact in E4M3.
    # Products 1.75, 1.75, 784, 1.75; with 3 bits 784 itself truncates to 768.
    b = torch.full((4, 1), 1.75)
    assert fp8_matmul(a, b, block_a=None, block_b=None, n_c=1, accumulator_bits=3).item() == 773.25
    assert fp8_matmul(a, b, block_a=None, block_b=None, n_c=4, accumulator_bits=3).item() == 768.0


def test_fp8_matmul_is_the_accumulator_on_the_quantised_operands():
    a, b = torch.randn(8, 256, generator=gen(9)), torch.randn(256, 128, generator=gen(10))
    out = fp8_matmul(a, b, n_c=64, accumulator_bits=12)
    ref = limited_precision_matmul(
        fake_quantize_fp8(a, FP8_TILE), fake_quantize_fp8(b, FP8_BLOCK), n_c=64, accumulator_bits=12
    )
    assert torch.equal(out, ref) and out.dtype == torch.float32
    exact = fake_quantize_fp8(a, FP8_TILE).double() @ fake_quantize_fp8(b, FP8_BLOCK).double()
    full = fp8_matmul(a, b, n_c=None, accumulator_bits=None)
    assert relative_error(exact, full) < 1e-6  # FP32 accumulation: only rounding
    assert 0.005 < relative_error(a.double() @ b.double(), full) < 0.06  # the FP8 operands' error


def test_promotion_with_n_c_one_is_a_sequential_fp32_sum():
    a, b = torch.randn(3, 64, generator=gen(11)), torch.randn(64, 5, generator=gen(12))
    out = limited_precision_matmul(a, b, n_c=1, accumulator_bits=None)
    ref = torch.zeros(3, 5)
    for k in range(64):
        ref = ref + (a[:, k, None].double() * b[k].double()).float()
    assert torch.equal(out, ref)


def test_no_promotion_is_worse_than_short_promotion_intervals():
    K = 2048
    a = fake_quantize_fp8(torch.randn(8, K, generator=gen(13)))
    b = fake_quantize_fp8(torch.randn(K, 8, generator=gen(14)), FP8_COLUMN)
    exact = a.double() @ b.double()
    err = {
        n: relative_error(exact, limited_precision_matmul(a, b, n_c=n)).item() for n in [None, 512, 128, 32]
    }
    assert err[None] > 10 * err[128]
    assert err[None] > err[512] > err[128] > err[32]
    assert err[None] > 0.01  # a 14-bit truncating running sum over 2048 terms loses percents


def test_accumulator_bad_input():
    a, b = torch.randn(2, 8), torch.randn(8, 3)
    with pytest.raises(ValueError, match="n_c must divide"):
        limited_precision_matmul(a, b, n_c=3)
    with pytest.raises(ValueError, match="share K"):
        limited_precision_matmul(a, b.T)
    with pytest.raises(ValueError, match="accumulator_bits"):
        limited_precision_matmul(a, b, n_c=None, accumulator_bits=0)
    with pytest.raises(ValueError, match="n_c"):
        limited_precision_matmul(a, b, n_c=0)


# --- FP8 linear layers --------------------------------------------------------------------

RECIPE = FP8Recipe("fine", block_size=16)


@pytest.mark.parametrize("n_tokens", [64, 40])  # 40: the token axis is padded for Wgrad's 16 x 1 tiles
def test_fp8_linear_gradients_are_the_three_gemms_on_quantised_operands(n_tokens):
    torch.manual_seed(0)
    layer = FP8Linear(32, 48, recipe=RECIPE)
    x = torch.randn(n_tokens, 32, generator=gen(15), requires_grad=True)
    g = torch.randn(n_tokens, 48, generator=gen(16)) * torch.logspace(-4, 0, n_tokens)[:, None]
    y = layer(x)
    y.backward(g)

    def q(t, block):  # zero-pad to whole blocks, quantise, crop
        pad = (0, -t.shape[1] % block[1], 0, -t.shape[0] % block[0])
        return fake_quantize_fp8(F.pad(t, pad), block)[: t.shape[0], : t.shape[1]]

    w = layer.weight.detach()
    torch.testing.assert_close(y, q(x.detach(), (1, 16)) @ q(w, (16, 16)).T + layer.bias)  # Fprop
    torch.testing.assert_close(x.grad, q(g, (1, 16)) @ q(w, (16, 16)))  # Dgrad
    torch.testing.assert_close(layer.weight.grad, q(g, (16, 1)).T @ q(x.detach(), (16, 1)))  # Wgrad
    torch.testing.assert_close(layer.bias.grad, g.sum(0))
    # and they are close to, but not equal to, the exact gradients
    assert 0 < relative_error(x.grad, g @ w) < 0.06
    assert 0 < relative_error(layer.weight.grad, g.T @ x.detach()) < 0.06


@pytest.mark.parametrize("scaling", ["tensor", "none"])
def test_fp8_linear_other_scalings(scaling):
    torch.manual_seed(0)
    recipe = FP8Recipe(scaling, 16)
    layer = FP8Linear(32, 16, bias=False, recipe=recipe)
    x = torch.randn(20, 32, generator=gen(17), requires_grad=True)
    g = torch.randn(20, 16, generator=gen(18))
    layer(x).backward(g)
    quant = (lambda t: fake_quantize_fp8(t, None)) if scaling == "tensor" else fp8_cast
    w = layer.weight.detach()
    torch.testing.assert_close(layer(x), quant(x) @ quant(w).T)
    torch.testing.assert_close(x.grad, quant(g) @ quant(w))
    torch.testing.assert_close(layer.weight.grad, quant(g).T @ quant(x.detach()))
    assert torch.equal(fp8_operand(g, "column", recipe), quant(g))  # one scale whatever the role


def test_fp8_linear_keeps_leading_dimensions_and_is_close_to_linear():
    torch.manual_seed(0)
    layer = FP8Linear(64, 32, recipe=FP8Recipe(block_size=32))
    ref = nn.Linear(64, 32)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(3, 5, 64, generator=gen(19))
    y = layer(x)
    assert y.shape == (3, 5, 32)
    assert relative_error(ref(x), y) < 0.05
    assert "scaling=fine" in repr(layer)


def test_unscaled_cast_flushes_small_gradients():
    """Without a scale, gradients below half of E4M3's smallest subnormal (2^-10) vanish."""
    torch.manual_seed(0)
    layer = FP8Linear(16, 16, recipe=FP8Recipe("none", 16))
    x = torch.randn(16, 16, generator=gen(20))
    layer(x).backward(torch.full((16, 16), 1e-4))
    assert (layer.weight.grad == 0).all()
    scaled = FP8Linear(16, 16, recipe=FP8Recipe("fine", 16))
    scaled.load_state_dict(layer.state_dict())
    scaled(x).backward(torch.full((16, 16), 1e-4))
    assert relative_error(x.T.sum(1, keepdim=True).T.expand(16, 16) * 1e-4, scaled.weight.grad) < 0.1


def test_convert_to_fp8_replaces_the_blocks_linears_and_shares_their_parameters():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(12, 32, 2, 2, max_len=9, causal=True))
    tokens = torch.randint(12, (4, 9), generator=gen(21))
    before = model(tokens).detach()
    params = {n: p for n, p in model.named_parameters()}
    convert_to_fp8(model.blocks, RECIPE)
    fp8 = [n for n, m in model.named_modules() if isinstance(m, FP8Linear)]
    assert len(fp8) == 2 * 4  # qkv, proj, up, down in each block
    assert type(model.head) is nn.Linear  # the output head stays in full precision
    assert all(p is params[n] for n, p in model.named_parameters())  # same Parameter objects
    after = model(tokens)
    assert 0 < relative_error(before, after.detach()) < 0.05
    after.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_recipe_bad_input():
    with pytest.raises(ValueError, match="scaling"):
        FP8Linear(4, 4, recipe=FP8Recipe("blockwise"))
    with pytest.raises(ValueError, match="block_size"):
        FP8Linear(4, 4, recipe=FP8Recipe("fine", 0))
    with pytest.raises(ValueError, match="fmt"):
        FP8Linear(4, 4, recipe=FP8Recipe("fine", 16, "e2m5"))
    with pytest.raises(TypeError, match="FP8Recipe"):
        convert_to_fp8(nn.Linear(4, 4), ("fine", 16, "e4m3"))
    with pytest.raises(TypeError, match="module"):
        convert_to_fp8("model")
    with pytest.raises(ValueError, match="role"):
        fp8_operand(torch.randn(4, 4), "row", RECIPE)


# --- Determinism --------------------------------------------------------------------------


def _train_fp8(seed, steps=5):
    seed_everything(seed)
    model = convert_to_fp8(
        Transformer(TransformerConfig(12, 32, 1, 2, max_len=9, causal=True)).blocks, RECIPE
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    h = torch.randn(8, 9, 32, generator=gen(seed))
    losses = []
    for _ in range(steps):
        loss = (model[0](h, torch.arange(9)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_determinism():
    assert torch.equal(token_imbalanced(8, 16, generator=gen(1)), token_imbalanced(8, 16, generator=gen(1)))
    o1, o2 = (
        outlier_channels(8, 16, factor=100.0, generator=gen(2)),
        outlier_channels(8, 16, factor=100.0, generator=gen(2)),
    )
    assert torch.equal(o1.x, o2.x) and torch.equal(o1.channels, o2.channels)
    x = torch.randn(16, 128, generator=gen(3))
    q1, q2 = quantize_fp8(x), quantize_fp8(x)
    assert isinstance(q1, FP8Tensor) and torch.equal(q1.codes.float(), q2.codes.float())
    assert _train_fp8(0) == _train_fp8(0)


def test_test_tensors():
    o = outlier_channels(64, 32, factor=1e3, n_outliers=3, generator=gen(4))
    assert o.channels.tolist() == sorted(o.channels.tolist()) and len(o.channels) == 3
    assert o.x[:, o.channels].abs().mean() > 100 * o.x.abs().median()
    x = token_imbalanced(1000, 64, decades=4.0, generator=gen(5))
    norms = x.norm(dim=1).log10()
    assert norms.max() - norms.min() > 3.5
    with pytest.raises(ValueError, match="n_outliers"):
        outlier_channels(4, 8, factor=10.0, n_outliers=9)
    with pytest.raises(TypeError, match="generator"):
        token_imbalanced(4, 8, generator=0)


# --- Claims -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imbalanced():
    x = token_imbalanced(256, 512, generator=gen(22))
    return x, {b: fake_quantize_fp8(x, b) for b in [None, FP8_TILE, FP8_BLOCK]}


def test_fp8_tokens_kept_fails_on_per_tensor_and_block_scaling(imbalanced):
    x, xq = imbalanced
    assert fp8_tokens_kept(x, xq[FP8_TILE]).holds
    assert not fp8_tokens_kept(x, xq[None]).holds
    assert not fp8_tokens_kept(x, xq[FP8_BLOCK]).holds


def test_fp8_tokens_lost_fails_on_tiles(imbalanced):
    x, xq = imbalanced
    assert fp8_tokens_lost(x, xq[None]).holds and fp8_tokens_lost(x, xq[FP8_BLOCK]).holds
    assert not fp8_tokens_lost(x, xq[FP8_TILE]).holds


def test_fp8_outlier_error_ratio_fails_on_outliers_the_exponent_absorbs():
    claims = {}
    for factor in [1e2, 1e4]:
        o = outlier_channels(256, 512, factor=factor, generator=gen(23))
        claims[factor] = fp8_outlier_error_ratio(
            o.x, fake_quantize_fp8(o.x, None), fake_quantize_fp8(o.x), o.channels
        )
    assert claims[1e4].holds and claims[1e4].value > 1.4
    assert not claims[1e2].holds and abs(claims[1e2].value - 1) < 0.05


@pytest.fixture(scope="module")
def gemms():
    K = 4096
    a = fake_quantize_fp8(torch.randn(4, K, generator=gen(24)))
    b = fake_quantize_fp8(torch.randn(K, 4, generator=gen(25)), FP8_COLUMN)
    exact = a.double() @ b.double()
    short = {n: limited_precision_matmul(a, b, n_c=n) for n in [32, 128, 512, K]}
    fp32 = {n: limited_precision_matmul(a, b, n_c=n, accumulator_bits=None) for n in [32, 128, 512, K]}
    return exact, short, fp32


def test_promotion_cuts_error_fails_with_an_exact_accumulator(gemms):
    exact, short, fp32 = gemms
    assert promotion_cuts_error(exact, short[4096], short[128]).holds
    assert not promotion_cuts_error(exact, fp32[4096], fp32[128]).holds
    assert not promotion_cuts_error(exact, short[128], short[128]).holds  # equal intervals


def test_accumulation_error_grows_fails_with_an_exact_accumulator(gemms):
    exact, short, fp32 = gemms
    three = [32, 128, 512]
    assert accumulation_error_grows(exact, {n: short[n] for n in three}).holds
    assert not accumulation_error_grows(exact, {n: fp32[n] for n in three}).holds
    with pytest.raises(ValueError, match="two"):
        accumulation_error_grows(exact, {128: short[128]})


def _regression_losses(recipe, seed, steps=150):
    """A 32 -> 32 linear student of a noisy linear teacher, trained with Adam: validation MSE."""
    g = gen(seed)
    teacher = torch.randn(32, 32, generator=g) / 32**0.5
    x, x_val = torch.randn(256, 32, generator=g), torch.randn(256, 32, generator=g)
    y, y_val = x @ teacher.T + 0.5 * torch.randn(256, 32, generator=g), x_val @ teacher.T
    torch.manual_seed(seed)
    model = nn.Linear(32, 32) if recipe is None else FP8Linear(32, 32, recipe=recipe)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return F.mse_loss(model(x_val), y_val).item() + 0.25  # plus the noise floor


@pytest.fixture(scope="module")
def trained():
    return {
        name: [_regression_losses(recipe, s) for s in range(3)]
        for name, recipe in [("fp32", None), ("fp8", RECIPE), ("cast", FP8Recipe("none", 16))]
    }


def test_fp8_loss_matches_fails_when_fp8_is_cast_without_scaling(trained):
    assert fp8_loss_matches(trained["fp8"], trained["fp32"]).holds
    assert not fp8_loss_matches(trained["cast"], trained["fp32"]).holds
    with pytest.raises(ValueError, match="one loss per seed"):
        fp8_loss_matches(trained["fp8"][:2], trained["fp32"])


def test_unscaled_fp8_loss_gap_fails_when_fp8_is_scaled(trained):
    assert unscaled_fp8_loss_gap(trained["cast"], trained["fp32"]).holds
    assert not unscaled_fp8_loss_gap(trained["fp8"], trained["fp32"]).holds
