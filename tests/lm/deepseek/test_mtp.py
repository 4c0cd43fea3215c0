"""MTP: the module and loss written out by hand, draft acceptance, and self-speculative decoding
that reproduces plain greedy decoding exactly."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from toyalgos.core import Loss
from toyalgos.lm import MLA, MTPModule, ar_generate, draft_acceptance, mtp_loss, speculative_generate
from toyalgos.nn import Transformer, TransformerConfig

CONFIG = TransformerConfig(vocab_size=12, d_model=32, n_layers=2, n_heads=4, max_len=40, causal=True)


def model(seed=0, std=0.3, attention=None):
    torch.manual_seed(seed)
    main = Transformer(CONFIG) if attention is None else Transformer(CONFIG, attention=attention)
    m = MTPModule(main).double()
    for p in m.parameters():  # peaked random models: greedy runs with repeats and mismatches
        torch.nn.init.normal_(p, std=std)
    return m


def tokens(n=4, length=10, seed=1):
    return torch.randint(0, CONFIG.vocab_size, (n, length), generator=torch.Generator().manual_seed(seed))


def test_main_logits_are_the_transformers():
    m, x = model(), tokens()
    out = m(x)
    assert torch.equal(out.logits, m.main(x))
    assert out.draft_logits.shape == (4, 9, CONFIG.vocab_size)


def test_shared_embedding_and_head_are_counted_once():
    m = model()
    own = [name for name, _ in m.named_parameters() if not name.startswith("main.")]
    n_own = sum(p.numel() for name, p in m.named_parameters() if name in own)
    assert sum(p.numel() for p in m.parameters()) == n_own + sum(p.numel() for p in m.main.parameters())
    assert not any("tok_emb" in name or "head" in name for name in own)


def test_mtp_loss_equals_a_hand_computation():
    """V3 Eqs. 21-25 written out: h' = M [RMSNorm(h_i); RMSNorm(Emb(t_{i+1}))], one block, shared head."""
    m, x = model(), tokens(length=12)
    inp = x[:, :-1]
    L = inp.shape[1]
    pos = torch.arange(L)
    h = m.main.tok_emb(inp) + m.main.pos_emb(pos)
    for block in m.main.blocks:
        h = block(h, pos)
    h = m.main.norm(h)
    main_logits = m.main.head(h)

    def rms(v, w):
        return v / torch.sqrt((v * v).mean(-1, keepdim=True) + torch.finfo(v.dtype).eps) * w

    e = m.main.tok_emb(inp[:, 1:])
    u = torch.cat([rms(h[:, :-1], m.h_norm.weight), rms(e, m.e_norm.weight)], -1) @ m.proj.weight.T
    u = m.block(u, torch.arange(L - 1))
    draft_logits = m.main.head(m.norm(u))
    ce = torch.nn.functional.cross_entropy
    l_main = ce(main_logits.reshape(-1, 12), x[:, 1:].reshape(-1))
    l_mtp = ce(draft_logits.reshape(-1, 12), x[:, 2:].reshape(-1))
    loss = mtp_loss(m, x, lam=0.3)
    assert isinstance(loss, Loss)
    assert torch.allclose(loss.terms["main"], l_main, atol=1e-12)
    assert torch.allclose(loss.terms["mtp"], l_mtp, atol=1e-12)
    assert torch.allclose(loss.total, l_main + 0.3 * l_mtp, atol=1e-12)
    assert torch.allclose(mtp_loss(m, x, lam=0.0).total, l_main, atol=1e-12)


def test_mtp_module_is_causal():
    """The draft at position i depends on tokens up to i + 1 only."""
    m, x = model(), tokens()
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 1) % CONFIG.vocab_size
    assert torch.allclose(m(x).draft_logits[:, :5], m(y).draft_logits[:, :5], atol=1e-12)
    assert not torch.allclose(m(x).draft_logits[:, 5], m(y).draft_logits[:, 5])


def test_mtp_loss_trains_the_module_only_when_lambda_is_positive():
    m, x = model(), tokens()
    mtp_loss(m, x, lam=0.0).total.backward()
    assert m.proj.weight.grad is None or m.proj.weight.grad.abs().sum() == 0
    m.zero_grad()
    mtp_loss(m, x, lam=0.3).total.backward()
    assert m.proj.weight.grad.abs().sum() > 0


# --- speculative decoding ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("std", [0.3, 1.0])
def test_speculative_equals_greedy_on_random_models(seed, std):
    m = model(seed=seed, std=std)
    prompt = tokens(n=16, length=3, seed=seed)
    spec = speculative_generate(m, prompt, gen_length=25)
    greedy = ar_generate(m.main, prompt, gen_length=25, temperature=0)
    assert torch.equal(spec.x, greedy.x)
    assert 1 + 24 // 2 <= spec.nfe <= 25


def test_speculative_equals_greedy_with_mla_attention():
    m = model(attention=partial(MLA, d_c=16, d_rope=4))
    prompt = tokens(n=8, length=2, seed=9)
    greedy = ar_generate(m.main, prompt, gen_length=20, temperature=0)
    assert torch.equal(speculative_generate(m, prompt, gen_length=20).x, greedy.x)


def test_perfect_drafter_halves_the_calls():
    """A model whose drafts are always right: every verification call advances two tokens."""
    m = model()
    torch.nn.init.zeros_(m.main.head.weight)
    torch.nn.init.zeros_(m.main.head.bias)
    m.main.head.bias.data[3] = 1.0  # main and draft both always predict token 3
    prompt = tokens(n=5, length=2)
    spec = speculative_generate(m, prompt, gen_length=21)
    assert (spec.x[:, 2:] == 3).all()
    assert spec.nfe == 1 + 10  # the first call gives 1 token, then 2 per call
    assert draft_acceptance(m, spec.x, prompt_length=2).all()


def test_draft_acceptance_counts_the_checks_speculative_decoding_makes():
    m = model(seed=2)
    prompt = tokens(n=6, length=3)
    x = ar_generate(m.main, prompt, gen_length=15, temperature=0).x
    accepted = draft_acceptance(m, x, prompt_length=3)
    assert accepted.shape == (6, 14)
    # by hand: the draft made at i (from h_i and x_{i+1}) against the main argmax at i + 1
    out = m(x)
    for i in range(2, 16):
        assert torch.equal(accepted[:, i - 2], out.draft_logits[:, i].argmax(-1) == x[:, i + 2])


def test_single_token_and_short_generations():
    m = model()
    prompt = tokens(n=3, length=4)
    for g in [1, 2, 3]:
        assert torch.equal(
            speculative_generate(m, prompt, gen_length=g).x,
            ar_generate(m.main, prompt, gen_length=g, temperature=0).x,
        )
    assert speculative_generate(m, prompt, gen_length=1).nfe == 1


def test_bad_input():
    m = model()
    with pytest.raises(ValueError, match="max_len"):
        speculative_generate(m, tokens(length=30), gen_length=20)
    with pytest.raises(ValueError):
        speculative_generate(m, tokens(), gen_length=0)
    with pytest.raises(ValueError):
        mtp_loss(m, tokens(length=2))
    with pytest.raises(ValueError):
        mtp_loss(m, tokens(), lam=-0.1)
    with pytest.raises(TypeError):
        MTPModule(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="causal"):
        MTPModule(Transformer(TransformerConfig(vocab_size=12, causal=False)))
    with pytest.raises(ValueError):
        draft_acceptance(m, tokens(length=5), prompt_length=4)


def test_determinism():
    x = tokens()
    assert torch.equal(mtp_loss(model(seed=5), x).total, mtp_loss(model(seed=5), x).total)
    prompt = tokens(n=4, length=2)
    assert torch.equal(
        speculative_generate(model(seed=5), prompt, gen_length=12).x,
        speculative_generate(model(seed=5), prompt, gen_length=12).x,
    )


def test_speculative_generate_keeps_the_mode():
    m = model()
    m.train()
    speculative_generate(m, tokens(n=2, length=2), gen_length=5)
    assert m.training and F is not None
