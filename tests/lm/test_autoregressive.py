from functools import partial

import pytest
import torch

from toyalgos.core import Samples, train
from toyalgos.lm import MarkovOracle, MarkovSource, add_bos, ar_generate, ar_loss, ar_nll
from toyalgos.nn import Transformer, TransformerConfig

V, PAD = 9, 0


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny(causal=True, seed=0):
    torch.manual_seed(seed)
    return Transformer(
        TransformerConfig(V, d_model=16, n_layers=1, n_heads=2, max_len=16, causal=causal)
    ).eval()


def batch_with_padding():
    x = torch.randint(1, V, (4, 7), generator=gen(0))
    x[1, 5:] = PAD
    x[3, 3:] = PAD
    return x


def test_ar_nll_equals_manual_log_softmax_gather():
    model, x = tiny(), batch_with_padding()
    with torch.no_grad():
        log_p = model(x[:, :-1]).log_softmax(-1)
    expected = []
    for n in range(len(x)):  # plain loops: the reference the vectorised code must match
        terms = [-log_p[n, i, x[n, i + 1]] for i in range(x.shape[1] - 1) if x[n, i + 1] != PAD]
        expected.append(torch.stack(terms).mean())
    assert torch.allclose(ar_nll(model, x, pad_id=PAD), torch.stack(expected), atol=1e-6)
    assert torch.allclose(ar_nll(model, x, pad_id=PAD, batch_size=3), ar_nll(model, x, pad_id=PAD), atol=1e-6)


def test_ar_loss_is_the_token_mean_and_ignores_padding():
    model, x = tiny(), batch_with_padding()
    with torch.no_grad():
        nll = -model(x[:, :-1]).log_softmax(-1).gather(-1, x[:, 1:, None])[..., 0]
    keep = x[:, 1:] != PAD
    assert ar_loss(model, x, pad_id=PAD).item() == pytest.approx(nll[keep].mean().item(), abs=1e-6)
    full = x.clone()
    full[full == PAD] = 1
    assert ar_loss(model, full).item() == pytest.approx(ar_nll(model, full).mean().item(), abs=1e-6)


def test_ar_loss_trains_with_the_plain_train_loop():
    """The loss contract: train(model, ar_loss, data), and partial for the options."""
    model = tiny()
    x = torch.randint(1, V, (64, 6), generator=gen(1))
    before = ar_loss(model, x).item()
    history = train(model, partial(ar_loss, pad_id=PAD), x, steps=30, batch_size=16, lr=1e-2, progress=False)
    assert history.loss.shape == (30,) and ar_loss(model, x).item() < before


def test_oracle_ar_nll_is_the_exact_log_likelihood():
    source = MarkovSource.random(6, 2, generator=gen(1))
    x = source.sample(32, 10, generator=gen(0))
    nll = ar_nll(MarkovOracle(source, causal=True), add_bos(x, source.tokenizer.bos_id))
    assert torch.allclose(nll.double(), -source.log_prob(x) / 10, atol=1e-5)


def test_ar_generate_keeps_the_prompt_and_is_seeded():
    model = tiny()
    prompt = torch.randint(V, (3, 2))
    out = ar_generate(model, prompt, gen_length=6, temperature=1.0, generator=gen(7))
    assert isinstance(out, Samples) and out.nfe == 6 and out.trajectory is None
    a = out.x
    assert a.shape == (3, 8) and torch.equal(a[:, :2], prompt)
    assert torch.equal(a, ar_generate(model, prompt, gen_length=6, temperature=1.0, generator=gen(7)).x)
    assert not torch.equal(a, ar_generate(model, prompt, gen_length=6, temperature=1.0, generator=gen(8)).x)
    greedy = ar_generate(model, prompt, gen_length=6, temperature=0.0).x
    assert torch.equal(
        greedy, ar_generate(model, prompt, gen_length=6, temperature=1.0, top_k=1, generator=gen(3)).x
    )


def test_ar_evaluation_restores_the_callers_mode():
    model = tiny().train()
    prompt = torch.randint(V, (2, 2))
    ar_generate(model, prompt, gen_length=3, generator=gen(0))
    ar_nll(model, add_bos(prompt, 2))
    assert all(m.training for m in model.modules())
    model.eval()
    ar_generate(model, prompt, gen_length=3, generator=gen(0))
    assert not any(m.training for m in model.modules())


def test_ar_generate_from_the_oracle_gives_valid_sequences():
    source = MarkovSource.random(8, 2, generator=gen(0))
    bos = source.tokenizer.bos_id
    x = ar_generate(
        MarkovOracle(source, causal=True), torch.full((50, 1), bos), gen_length=12, generator=gen(0)
    ).x
    assert source.is_valid(x[:, 1:]).all()


def test_ar_bad_input():
    model = tiny()
    with pytest.raises(ValueError, match="at least 1 token"):
        ar_generate(model, torch.zeros(2, 0, dtype=torch.long), gen_length=3)
    with pytest.raises(ValueError, match="exceeds max_len"):
        ar_generate(model, torch.zeros(2, 10, dtype=torch.long), gen_length=7)
    with pytest.raises(ValueError, match="top_k"):
        ar_generate(model, torch.zeros(2, 1, dtype=torch.long), gen_length=3, top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        ar_generate(model, torch.zeros(2, 1, dtype=torch.long), gen_length=3, temperature=-1.0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        ar_generate(model, torch.zeros(2, 1, dtype=torch.long), gen_length=3, generator=7)
    with pytest.raises(ValueError, match="causal model"):
        ar_loss(tiny(causal=False), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2"):
        ar_nll(model, torch.zeros(2, 1, dtype=torch.long))
