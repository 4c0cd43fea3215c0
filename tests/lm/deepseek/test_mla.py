"""MLA: the absorbed path equals the naive one, the latent cache equals recomputation, the cache
sizes are V2's Table 1 and V3's real numbers, and RoPE on the content key breaks absorption."""

from functools import partial

import pytest
import torch

from toyalgos.lm import MLA, ar_generate, kv_cache_elements, mla_forward_cached
from toyalgos.lm.deepseek import LatentCache, coupled_rope_scores
from toyalgos.nn import Transformer, TransformerConfig

CONFIG = TransformerConfig(vocab_size=20, d_model=64, n_layers=2, n_heads=4, max_len=32, causal=True)


def mla_model(seed=0, impl="naive", **sizes):
    torch.manual_seed(seed)
    sizes = {"d_c": 24, "d_q": 40, "d_rope": 8, **sizes}
    model = Transformer(CONFIG, attention=partial(MLA, impl=impl, **sizes)).double()
    for p in model.parameters():  # larger than GPT-2's 0.02, so that attention is far from uniform
        torch.nn.init.normal_(p, std=0.3)
    return model


def set_impl(model, impl):
    for block in model.blocks:
        block.attention.impl = impl


def tokens(n=3, length=24, seed=1):
    return torch.randint(0, CONFIG.vocab_size, (n, length), generator=torch.Generator().manual_seed(seed))


# --- naive = absorbed ----------------------------------------------------------------------


def test_absorbed_equals_naive_in_float64():
    model, x = mla_model(), tokens()
    naive = model(x)
    set_impl(model, "absorb")
    absorbed = model(x)
    assert (naive - absorbed).abs().max() < 1e-10
    assert naive.std() > 0.1  # the outputs are not trivially small


def test_absorbed_equals_naive_for_one_layer_with_a_mask():
    mla = mla_model().blocks[0].attention
    h = torch.randn(2, 10, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    mask = torch.rand(10, 10, generator=torch.Generator().manual_seed(3)) < 0.7
    mask |= torch.eye(10, dtype=torch.bool)
    naive = mla(h, torch.arange(10), mask)
    mla.impl = "absorb"
    assert torch.allclose(naive, mla(h, torch.arange(10), mask), atol=1e-12, rtol=0)


def test_naive_path_is_multi_head_attention_with_the_up_projected_keys():
    """The naive path written out: keys [W^UK c; k^R], values W^UV c, softmax(q.k / sqrt(d_h + d_r))."""
    mla = mla_model().blocks[0].attention
    L, H, d, r = 7, 4, 16, 8
    h = torch.randn(1, L, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    pos = torch.arange(L)
    q_c, q_r = mla.queries(h, pos)
    c_kv, k_r = mla.latent(h, pos)
    k_c = mla.w_uk(c_kv).view(1, L, H, d).transpose(1, 2)
    v = mla.w_uv(c_kv).view(1, L, H, d).transpose(1, 2)
    q = torch.cat([q_c, q_r], -1)
    k = torch.cat([k_c, k_r[:, None].expand(1, H, L, r)], -1)
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    expected = mla.w_o(y.transpose(1, 2).reshape(1, L, H * d))
    assert torch.allclose(mla(h, pos), expected, atol=1e-12, rtol=0)


def test_float32_paths_agree_to_rounding():
    model, x = mla_model().float(), tokens()
    naive = model(x)
    set_impl(model, "absorb")
    assert (naive - model(x)).abs().max() < 1e-4


# --- RoPE on the content key ---------------------------------------------------------------


def test_absorption_fails_with_rope_on_the_content_key():
    mla = mla_model().blocks[0].attention
    h = torch.randn(2, 12, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    scores = coupled_rope_scores(mla, h, torch.arange(12))
    gap = (scores.naive - scores.absorbed).abs().amax(dim=(0, 1, 2))  # per key position
    assert gap[0] < 1e-12  # key position 0: its rotation is the identity
    assert (gap[1:] > 0.05 * scores.naive.abs().max()).all()  # elsewhere off by the logits' size


def test_decoupled_key_makes_logits_depend_on_relative_position_only():
    """Shifting every position by 5 leaves MLA's output unchanged (no learned positions here)."""
    mla = mla_model().blocks[0].attention
    h = torch.randn(1, 9, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(mla(h, torch.arange(9)), mla(h, torch.arange(9) + 5), atol=1e-5)


# --- the latent cache ----------------------------------------------------------------------


@pytest.mark.parametrize("prefill", [1, 10])
def test_cached_decoding_equals_full_recomputation(prefill):
    model, x = mla_model(), tokens()
    full = model(x)
    out = mla_forward_cached(model, x[:, :prefill])
    logits, caches = [out.logits], out.caches
    for i in range(prefill, x.shape[1]):
        out = mla_forward_cached(model, x[:, i : i + 1], caches)
        logits.append(out.logits)
        caches = out.caches
    assert (torch.cat(logits, 1) - full).abs().max() < 1e-10
    assert all(isinstance(c, LatentCache) and c.c_kv.shape == (3, 24, 24) for c in caches)
    assert all(c.k_rope.shape == (3, 24, 8) and c.elements_per_token == 32 for c in caches)


def test_cached_greedy_decoding_equals_ar_generate():
    model = mla_model()
    prompt = tokens(n=4, length=3, seed=7)
    out = mla_forward_cached(model, prompt)
    x = prompt
    for _ in range(10):
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        x = torch.cat([x, nxt], 1)
        out = mla_forward_cached(model, nxt, out.caches)
    assert torch.equal(x, ar_generate(model, prompt, gen_length=10, temperature=0).x)


def test_cache_holds_latents_not_per_head_keys():
    model = mla_model()
    caches = mla_forward_cached(model, tokens()).caches
    per_token = sum(c.c_kv[0, 0].numel() + c.k_rope[0, 0].numel() for c in caches) / len(caches)
    assert per_token == kv_cache_elements("mla", 4, 16, d_c=24, d_rope=8) == 32
    assert kv_cache_elements("mha", 4, 16) / per_token == 4.0


def test_wrong_caches_are_rejected():
    model = mla_model()
    caches = mla_forward_cached(model, tokens()).caches
    with pytest.raises(ValueError, match="one LatentCache per block"):
        mla_forward_cached(model, tokens(length=1), caches[:1])
    with pytest.raises(ValueError, match="max_len"):
        mla_forward_cached(model, tokens(length=9), caches)
    with pytest.raises(TypeError, match="MLA"):
        mla_forward_cached(Transformer(CONFIG), tokens())


# --- cache sizes ---------------------------------------------------------------------------


def test_kv_cache_elements_formulas():
    assert kv_cache_elements("mha", 8, 32) == 2 * 8 * 32
    assert kv_cache_elements("gqa", 8, 32, n_groups=2) == 2 * 2 * 32
    assert kv_cache_elements("gqa", 8, 32, n_groups=8) == kv_cache_elements("mha", 8, 32)
    assert kv_cache_elements("gqa", 8, 32, n_groups=1) == kv_cache_elements("mqa", 8, 32) == 64
    assert kv_cache_elements("mla", 8, 32, d_c=128, d_rope=16) == 144


def test_kv_cache_elements_of_deepseek_v2_and_v3():
    # V3: 128 heads of 128, d_c = 512, d_rope = 64: 576 vs 32,768 per layer per token (56.9x)
    assert kv_cache_elements("mla", 128, 128, d_c=512, d_rope=64) == 576
    assert kv_cache_elements("mha", 128, 128) == 32_768
    assert round(32_768 / 576, 1) == 56.9
    assert 61 * 576 == 35_136  # per token over V3's 61 layers
    # V2 Table 1: d_c = 4 d_h, d_rope = d_h / 2 gives (9/2) d_h, GQA with 2.25 groups
    d_h = 128
    assert kv_cache_elements("mla", 128, d_h, d_c=4 * d_h, d_rope=d_h // 2) == 4.5 * d_h


@pytest.mark.parametrize(
    "kind, kwargs, error",
    [
        ("mha", {"d_c": 4}, ValueError),
        ("mla", {"d_c": 4}, ValueError),
        ("mla", {"d_c": 0, "d_rope": 4}, ValueError),
        ("gqa", {}, ValueError),
        ("gqa", {"n_groups": 3}, ValueError),
        ("mqa", {"n_groups": 1}, ValueError),
        ("bogus", {}, ValueError),
    ],
)
def test_kv_cache_elements_bad_input(kind, kwargs, error):
    with pytest.raises(error):
        kv_cache_elements(kind, 8, 32, **kwargs)


# --- bad input and determinism -------------------------------------------------------------


@pytest.mark.parametrize(
    "sizes", [{"d_c": 0}, {"d_c": -4}, {"d_q": 0}, {"d_rope": 7}, {"d_rope": 0}, {"impl": "fast"}]
)
def test_mla_bad_sizes(sizes):
    with pytest.raises(ValueError):
        MLA(CONFIG, **sizes)


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        TransformerConfig(vocab_size=20, d_model=60, n_heads=8)


def test_mla_is_deterministic_per_seed():
    x = tokens()
    assert torch.equal(mla_model(seed=3)(x), mla_model(seed=3)(x))
    assert not torch.equal(mla_model(seed=3)(x), mla_model(seed=4)(x))


def test_mla_trains():
    """Gradients reach every MLA weight through the Transformer."""
    model = mla_model()
    model(tokens()).logsumexp(-1).mean().backward()
    mla = model.blocks[0].attention
    for name in ["w_dq", "w_uq", "w_qr", "w_dkv", "w_kr", "w_uk", "w_uv", "w_o"]:
        assert getattr(mla, name).weight.grad.abs().sum() > 0, name
