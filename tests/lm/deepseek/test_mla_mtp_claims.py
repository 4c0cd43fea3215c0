"""The claims of the MLA and MTP notebook hold on a correct result and fail each known-bad case:
absorption with RoPE on the content key, a decoder that drops the cache, a cache of materialised
keys and values, an untrained MTP module."""

from functools import partial

import pytest
import torch

from toyalgos.core import train
from toyalgos.lm import (
    MLA,
    MarkovSource,
    MTPModule,
    add_bos,
    ar_generate,
    draft_acceptance,
    kv_cache_elements,
    mla_forward_cached,
    mtp_loss,
)
from toyalgos.lm.claims import (
    absorbed_matches_naive,
    cache_ratio_matches,
    cached_matches_recomputed,
    drafts_accepted,
    exact_answers,
)
from toyalgos.lm.deepseek import coupled_rope_scores
from toyalgos.nn import Transformer, TransformerConfig

CONFIG = TransformerConfig(vocab_size=20, d_model=32, n_layers=2, n_heads=4, max_len=24, causal=True)


@pytest.fixture(scope="module")
def mla_model():
    torch.manual_seed(0)
    model = Transformer(CONFIG, attention=partial(MLA, d_c=16, d_rope=4)).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model


def x_(n=3, length=16):
    return torch.randint(0, 20, (n, length), generator=torch.Generator().manual_seed(1))


def test_absorbed_matches_naive_holds_on_the_two_paths(mla_model):
    x = x_()
    naive = mla_model(x)
    for b in mla_model.blocks:
        b.attention.impl = "absorb"
    absorbed = mla_model(x)
    for b in mla_model.blocks:
        b.attention.impl = "naive"
    assert absorbed_matches_naive(naive, absorbed).holds


def test_absorbed_matches_naive_fails_on_rope_on_the_content_key(mla_model):
    h = torch.randn(2, 10, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    scores = coupled_rope_scores(mla_model.blocks[0].attention, h, torch.arange(10))
    assert not absorbed_matches_naive(scores.naive, scores.absorbed).holds
    with pytest.raises(ValueError, match="one shape"):
        absorbed_matches_naive(scores.naive, scores.absorbed[:, :, 1:])


def test_cached_matches_recomputed_holds_with_the_cache(mla_model):
    x = x_()
    out = mla_forward_cached(mla_model, x[:, :4])
    logits, caches = [out.logits], out.caches
    for i in range(4, 16):
        out = mla_forward_cached(mla_model, x[:, i : i + 1], caches)
        logits.append(out.logits)
        caches = out.caches
    assert cached_matches_recomputed(torch.cat(logits, 1), mla_model(x)).holds


def test_cached_matches_recomputed_fails_on_a_decoder_that_drops_the_cache(mla_model):
    x = x_()
    no_cache = torch.cat([mla_forward_cached(mla_model, x[:, i : i + 1]).logits for i in range(16)], 1)
    assert not cached_matches_recomputed(no_cache, mla_model(x)).holds


def test_cache_ratio_matches_holds_on_the_latent_cache(mla_model):
    caches = mla_forward_cached(mla_model, x_()).caches
    mla_elements = caches[0].elements_per_token
    mha_elements = 2 * 32  # keys and values of 4 heads of 8
    formula = kv_cache_elements("mha", 4, 8) / kv_cache_elements("mla", 4, 8, d_c=16, d_rope=4)
    assert cache_ratio_matches(mha_elements, mla_elements, formula).holds


def test_cache_ratio_matches_fails_on_materialised_keys_and_values():
    naive_cache = 4 * (8 + 4) + 4 * 8  # every head's [k^C; k^R] and v^C
    formula = kv_cache_elements("mha", 4, 8) / kv_cache_elements("mla", 4, 8, d_c=16, d_rope=4)
    assert not cache_ratio_matches(64, naive_cache, formula).holds


@pytest.fixture(scope="module")
def trained():
    """An MTP model trained with and without the MTP loss on a Markov chain (acceptance 0.96 vs 0.00)."""
    g = torch.Generator().manual_seed(0)
    source = MarkovSource.random(generator=g)
    tok = source.tokenizer
    config = TransformerConfig(tok.vocab_size, 32, 1, 4, max_len=20, causal=True)
    models = {}
    for lam in [0.0, 0.3]:
        torch.manual_seed(0)
        model = MTPModule(Transformer(config))
        draw = partial(lambda: add_bos(source.sample(64, 16, generator=g), tok.bos_id))
        train(model, partial(mtp_loss, lam=lam), draw, steps=150, lr=1e-2, generator=g, progress=False)
        models[lam] = model
    prompts = add_bos(source.sample(100, 2, generator=g), tok.bos_id)
    samples = add_bos(source.sample(100, 16, generator=g), tok.bos_id)
    return models, prompts, samples


def test_drafts_accepted_holds_after_mtp_training(trained):
    models, prompts, _ = trained
    x = ar_generate(models[0.3].main, prompts, gen_length=12, temperature=0).x
    assert drafts_accepted(draft_acceptance(models[0.3], x, prompt_length=3)).holds


def test_drafts_accepted_teacher_forced_holds_after_mtp_training_and_fails_without(trained):
    """On source samples every state is a context, not only the few of a greedy rollout's cycle."""
    models, _, samples = trained
    claim = drafts_accepted(draft_acceptance(models[0.3], samples), label="teacher-forced")
    assert claim.holds and "teacher-forced" in claim.statement
    assert not drafts_accepted(draft_acceptance(models[0.0], samples)).holds


def test_drafts_accepted_fails_on_an_untrained_mtp_module(trained):
    models, prompts, _ = trained
    x = ar_generate(models[0.0].main, prompts, gen_length=12, temperature=0).x
    assert not drafts_accepted(draft_acceptance(models[0.0], x, prompt_length=3)).holds


def test_speculative_identity_uses_exact_answers(trained):
    """Output identity is ``exact_answers(spec, greedy, bound=1.0)``: one differing token fails it."""
    models, prompts, _ = trained
    x = ar_generate(models[0.3].main, prompts, gen_length=12, temperature=0).x
    assert exact_answers(x, x, bound=1.0).holds
    y = x.clone()
    y[0, -1] = (y[0, -1] + 1) % 17
    assert not exact_answers(y, x, bound=1.0).holds
