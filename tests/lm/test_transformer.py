import pytest
import torch

from toyalgos.lm import TinyTransformer
from toyalgos.lm.transformer import rotary

V, L = 11, 8


def tiny(causal, seed=0, **kwargs):
    torch.manual_seed(seed)
    return TinyTransformer(V, d_model=16, n_layers=2, n_heads=2, max_len=16, causal=causal, **kwargs).eval()


def test_output_shape():
    x = torch.randint(V, (3, L))
    logits = tiny(False)(x)
    assert logits.shape == (3, L, V) and logits.dtype == torch.float32


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


def test_bad_input():
    model = tiny(False)
    with pytest.raises(ValueError, match=r"shape \(N, L\)"):
        model(torch.randint(V, (L,)))
    with pytest.raises(TypeError, match="torch.long"):
        model(torch.rand(2, L))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.randint(V, (2, 17)))
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        model(torch.full((2, L), V))
    with pytest.raises(ValueError, match="attn_mask"):
        model(torch.randint(V, (2, L)), attn_mask=torch.ones(L, L))
    with pytest.raises(ValueError, match="multiple of n_heads"):
        TinyTransformer(V, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="positive int"):
        TinyTransformer(0)


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
