"""M, 6N1 and 6N2 against DeepSeek LLM's Table 3, and against torch's own count of a training step."""

import pytest
import torch

from toyalgos.lm import ar_loss
from toyalgos.lm.scaling import counted_flops, flops_per_token, width_for_flops
from toyalgos.lm.scaling.model import CausalAttention, scaling_model
from toyalgos.nn import Transformer, TransformerConfig

# DeepSeek LLM Table 3 (n_vocab 102400, l_seq 4096): n_layers, d_model, 6N1/M, 6N2/M.
TABLE_3 = [
    (8, 512, 0.43, 1.32),
    (12, 768, 0.53, 1.02),
    (24, 1024, 0.60, 0.81),
    (24, 2048, 0.75, 0.88),
    (32, 4096, 0.86, 0.91),
    (95, 8192, 0.92, 0.93),
]


@pytest.mark.parametrize("n_layer, d_model, r1, r2", TABLE_3)
def test_table_3_ratios(n_layer, d_model, r1, r2):
    f = flops_per_token(n_layer, d_model, 4096, 102400)
    assert round(f.six_n1 / f.M, 2) == r1
    assert round(f.six_n2 / f.M, 2) == r2


def test_formulas_by_hand():
    f = flops_per_token(8, 512, 4096, 102400)
    assert f.six_n1 == 72 * 8 * 512**2 == 150_994_944
    assert f.M == 150_994_944 + 12 * 8 * 512 * 4096
    assert f.six_n2 == 150_994_944 + 6 * 102400 * 512
    assert f == (f.M, f.six_n1, f.six_n2)  # a NamedTuple


@pytest.mark.parametrize("n_layer, d_model, seq_len", [(1, 16, 32), (2, 24, 16), (3, 8, 8)])
def test_torch_counts_m_plus_the_output_layer(n_layer, d_model, seq_len):
    """FlopCounterMode on one forward + backward: exactly (M + 6 V d) per trained token."""
    V, B = 50, 3
    f = flops_per_token(n_layer, d_model, seq_len, V)
    x = torch.randint(V, (B, seq_len + 1), generator=torch.Generator().manual_seed(0))
    for model in [
        scaling_model(V, d_model, n_layer, seq_len),
        Transformer(TransformerConfig(V, d_model, n_layer, 2, max_len=seq_len, causal=True)),
    ]:
        assert counted_flops(model, ar_loss, x) == (f.M + 6 * V * d_model) * B * seq_len
        assert all(p.grad is None for p in model.parameters())


def test_width_for_flops_inverts_m():
    for n_layer, d, L in [(1, 16, 32), (4, 100, 128)]:
        assert width_for_flops(flops_per_token(n_layer, d, L, 10).M, n_layer, L) == pytest.approx(d)


@pytest.mark.parametrize(
    "args, match",
    [
        ((0, 512, 4096, 100), "n_layer"),
        ((8, -1, 4096, 100), "d_model"),
        ((8, 512, 0, 100), "seq_len"),
        ((8, 512, 4096, 0), "vocab_size"),
        ((8, 512.0, 4096, 100), "d_model"),
    ],
)
def test_bad_sizes(args, match):
    with pytest.raises(ValueError, match=match):
        flops_per_token(*args)
    with pytest.raises(ValueError, match="m must be"):
        width_for_flops(-1.0, 1, 32)


def test_causal_attention_part_is_causal_and_refuses_masks():
    torch.manual_seed(0)
    model = scaling_model(20, 8, 1, 10)
    x = torch.randint(20, (2, 10), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 1) % 20  # change the future: the first 6 positions' logits stay the same
    with torch.no_grad():
        assert torch.allclose(model(x)[:, :6], model(y)[:, :6], atol=1e-6)
        with pytest.raises(ValueError, match="attn_mask"):
            model(x, attn_mask=torch.ones(10, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="causal"):
        Transformer(TransformerConfig(20, 8, 1, 2, max_len=10), attention=CausalAttention)
