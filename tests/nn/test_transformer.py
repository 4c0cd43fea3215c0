import pytest
import torch
from torch import nn

from toyalgos.nn import (
    Block,
    FeedForward,
    SelfAttention,
    Transformer,
    TransformerConfig,
    layer_norm,
    rotary,
)

V, L = 11, 8


def tiny(causal, seed=0, **parts):
    torch.manual_seed(seed)
    config = TransformerConfig(V, d_model=16, n_layers=2, n_heads=2, max_len=16, causal=causal)
    return Transformer(config, **parts).eval()


def test_output_shape_and_config_attributes():
    model = tiny(False)
    logits = model(torch.randint(V, (3, L)))
    assert logits.shape == (3, L, V) and logits.dtype == torch.float32
    assert (model.vocab_size, model.max_len, model.causal) == (V, 16, False)
    assert model.config.head_dim == 8


@pytest.mark.parametrize("j", [0, 3, L - 1])
def test_causal_output_ignores_later_tokens_bidirectional_does_not(j):
    x = torch.randint(V, (2, L), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[:, j] = (y[:, j] + 1) % V
    causal, bidir = tiny(True), tiny(False)
    with torch.no_grad():
        dc = (causal(x) - causal(y)).abs().amax(dim=(0, 2))
        db = (bidir(x) - bidir(y)).abs().amax(dim=(0, 2))
    assert (dc[:j] == 0).all() and (dc[j:] > 0).all()
    assert (db > 0).all()


def test_attention_masks_combine_with_the_causal_mask():
    x = torch.randint(V, (2, L))
    causal, bidir = tiny(True), tiny(False)
    bidir.load_state_dict(causal.state_dict())
    everything = torch.ones(L, L, dtype=torch.bool)
    lower = everything.tril()
    with torch.no_grad():
        assert torch.allclose(bidir(x, attn_mask=everything), bidir(x), atol=1e-5)
        assert torch.allclose(causal(x, attn_mask=everything), causal(x), atol=1e-5)
        assert torch.allclose(bidir(x, attn_mask=lower.expand(2, L, L)), causal(x), atol=1e-5)
        assert torch.allclose(bidir(x, positions=torch.arange(L)), bidir(x))


def test_attn_mask_true_means_may_attend():
    """A query allowed to see only itself ignores every other token; a per-row mask acts per row."""
    model = tiny(False)
    x = torch.randint(V, (2, L), generator=torch.Generator().manual_seed(3))
    y = x.clone()
    y[:, 1:] = (y[:, 1:] + 1) % V  # change every token but the first
    only_self = torch.eye(L, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(model(x, attn_mask=only_self)[:, 0], model(y, attn_mask=only_self)[:, 0])
        assert not torch.allclose(model(x)[:, 0], model(y)[:, 0])
        per_row = torch.stack([only_self, torch.ones(L, L, dtype=torch.bool)])
        out_x, out_y = model(x, attn_mask=per_row), model(y, attn_mask=per_row)
    assert torch.allclose(out_x[0, 0], out_y[0, 0]) and not torch.allclose(out_x[1, 0], out_y[1, 0])


def test_rotary_keeps_norms_and_makes_scores_depend_on_offsets_only():
    """RoPE rotates channel pairs: norms are unchanged, and <R_m q, R_n k> depends on m - n only."""
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)

    def score(m, n):
        return (rotary(q, torch.tensor([m])) * rotary(k, torch.tensor([n]))).sum().item()

    assert score(3, 1) == pytest.approx(score(7, 5), abs=1e-5) == pytest.approx(score(2, 0), abs=1e-5)
    assert score(3, 1) != pytest.approx(score(1, 3), abs=1e-3)
    x = torch.randn(2, 3, 5, 8, generator=g)
    rotated = rotary(x, torch.arange(5))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[:, :, 0], x[:, :, 0])  # position 0: no rotation
    # Per-row positions (N, L) give the same result as the shared (L,) ones.
    torch.testing.assert_close(rotary(x, torch.arange(5).expand(2, 5)), rotated)


def test_rope_only_model_sees_relative_positions_only():
    """Without the learned table, shifting every position by a constant changes nothing."""
    model = tiny(False, position_embedding=None)
    assert model.pos_emb is None
    x = torch.randint(V, (2, L), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(model(x, positions=torch.arange(L) + 5), model(x), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(tiny(False)(x, positions=torch.arange(L) + 5), tiny(False)(x), atol=1e-3)


class CountingFeedForward(nn.Module):
    """A feed-forward part that records how often it runs: stands in for a future MoE."""

    def __init__(self, config):
        super().__init__()
        self.inner, self.calls = FeedForward(config), 0

    def forward(self, h):
        self.calls += 1
        return 2 * self.inner(h)


class RMSNorm(nn.Module):
    """A norm part other than the default LayerNorm (torch's own needs torch >= 2.4)."""

    def __init__(self, config):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(config.d_model))

    def forward(self, h):
        return self.weight * h * h.pow(2).mean(-1, keepdim=True).add(1e-6).rsqrt()


def test_parts_come_from_the_factories():
    made = []

    def feed_forward(config):
        made.append(config)
        return CountingFeedForward(config)

    model = tiny(True, feed_forward=feed_forward, norm=RMSNorm)
    assert len(made) == 2 and all(c is model.config for c in made)
    assert all(isinstance(b.feed_forward, CountingFeedForward) for b in model.blocks)
    assert all(isinstance(b.attention, SelfAttention) for b in model.blocks)
    assert isinstance(model.norm, RMSNorm) and isinstance(model.blocks[0].norm1, RMSNorm)
    model(torch.randint(V, (2, L)))
    assert [b.feed_forward.calls for b in model.blocks] == [1, 1]


def test_default_parts_and_same_seed_same_weights():
    a, b = tiny(True), tiny(True)
    assert all(
        torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    block = Block(a.config)
    assert isinstance(block.attention, SelfAttention) and isinstance(block.feed_forward, FeedForward)
    assert isinstance(layer_norm(a.config), nn.LayerNorm)
    # GPT-2 initialisation: zero biases, weights of standard deviation 0.02.
    assert (a.head.bias == 0).all() and a.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.2)


def test_bad_input():
    model = tiny(False)
    with pytest.raises(ValueError, match=r"tokens must have 2 dimensions"):
        model(torch.randint(V, (L,)))
    with pytest.raises(TypeError, match="dtype torch.int64"):
        model(torch.rand(2, L))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.randint(V, (2, 17)))
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        model(torch.full((2, L), V))
    with pytest.raises(ValueError, match="attn_mask"):
        model(torch.randint(V, (2, L)), attn_mask=torch.ones(L, L))
    with pytest.raises(ValueError, match="positions"):
        model(torch.randint(V, (2, L)), positions=torch.arange(L) + 10)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        TransformerConfig(V, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="vocab_size must be a positive int"):
        TransformerConfig(0)
    with pytest.raises(TypeError, match="causal must be a bool"):
        TransformerConfig(V, causal=1)
    with pytest.raises(TypeError, match="TransformerConfig"):
        Transformer(V)
