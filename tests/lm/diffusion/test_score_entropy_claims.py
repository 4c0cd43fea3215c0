"""Notebook 21's claims (score entropy): a good case that holds, a known-bad one that fails."""

import pytest
import torch

from toyalgos.lm import (
    AbsorbingGraph,
    AbsorbingScore,
    MarkovSource,
    SubsParameterization,
    UniformGraph,
    loglinear_noise,
    mdlm_loss,
    mdm_loss,
    sedd_nll_bound,
    sedd_sample,
)
from toyalgos.lm.claims import bound_below, losses_agree, more_allowed_transitions
from toyalgos.nn import Transformer, TransformerConfig


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def source():
    return MarkovSource.random(generator=gen(0))


def net(vocab, seed=0):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab, d_model=16, n_layers=1, n_heads=2, max_len=16))


def test_losses_agree_holds_for_mdlm_and_llada_at_eps_zero():
    model, x = net(13), torch.randint(12, (32, 16), generator=gen(1))
    a = mdlm_loss(model, x, mask_id=12, noise=loglinear_noise(0.0), sampling_eps=0.0, generator=gen(2))
    b = mdm_loss(SubsParameterization(model, 12), x, mask_id=12, eps=0.0, generator=gen(2))
    assert losses_agree(a, b).holds


def test_losses_agree_fails_without_subs_or_on_other_masks():
    model, x = net(13), torch.randint(12, (32, 16), generator=gen(1))
    a = mdlm_loss(model, x, mask_id=12, noise=loglinear_noise(0.0), sampling_eps=0.0, generator=gen(2))
    raw = mdm_loss(model, x, mask_id=12, eps=0.0, generator=gen(2))  # the mask token keeps probability
    other = mdm_loss(SubsParameterization(model, 12), x, mask_id=12, eps=0.0, generator=gen(3))
    assert not losses_agree(a, raw).holds
    assert not losses_agree(a, other).holds


def test_bound_below_holds_for_the_exact_model_against_an_untrained_one(source):
    """The Bayes-optimal i.i.d. predictor of the stationary marginal beats an untrained network."""
    K = source.n_states
    x = source.sample(200, 8, generator=gen(4)) - source.tokenizer.offset
    graph, noise = AbsorbingGraph(K), loglinear_noise(0.0)
    untrained = sedd_nll_bound(
        AbsorbingScore(net(K + 1), K), x, graph=graph, noise=noise, n_samples=8, generator=gen(5)
    )
    marginal = torch.nn.Module()
    marginal.logits = torch.nn.Parameter(
        torch.cat([source.stationary.log(), torch.zeros(1, dtype=torch.float64)]).float()
    )
    marginal.forward = lambda t: marginal.logits.expand(*t.shape, -1)
    fitted = sedd_nll_bound(
        AbsorbingScore(marginal, K), x, graph=graph, noise=noise, n_samples=8, generator=gen(5)
    )
    assert bound_below(fitted.per_sequence, untrained.per_sequence).holds


def test_bound_below_fails_for_equal_or_swapped_models(source):
    x = source.sample(200, 8, generator=gen(4)) - source.tokenizer.offset
    K = source.n_states
    b = sedd_nll_bound(
        AbsorbingScore(net(K + 1), K),
        x,
        graph=AbsorbingGraph(K),
        noise=loglinear_noise(0.0),
        n_samples=4,
        generator=gen(5),
    ).per_sequence
    assert not bound_below(b, b).holds
    assert not bound_below(b + 0.1, b).holds
    with pytest.raises(ValueError):
        bound_below(b, b[:5])


def test_more_allowed_transitions_holds_for_the_source_against_uniform_tokens(source):
    real = source.sample(300, 16, generator=gen(6))
    noise = torch.randint(source.tokenizer.offset, source.tokenizer.vocab_size, (300, 16), generator=gen(7))
    assert more_allowed_transitions(real, noise, source).holds


def test_more_allowed_transitions_fails_for_equal_samplers(source):
    """The same sampler twice (absorbing graph: Euler and Tweedie draw the same tokens) scores 0."""
    K = source.n_states
    model = AbsorbingScore(net(K + 1), K)
    common = dict(graph=AbsorbingGraph(K), noise=loglinear_noise(), steps=4)
    euler = (
        sedd_sample(model, (200, 12), sampler="euler", generator=gen(8), **common).x + source.tokenizer.offset
    )
    tweedie = (
        sedd_sample(model, (200, 12), sampler="tweedie", generator=gen(8), **common).x
        + source.tokenizer.offset
    )
    claim = more_allowed_transitions(tweedie, euler, source)
    assert claim.value == 0 and not claim.holds
    uniform = UniformGraph(K).sample_limit((200, 12), generator=gen(9)) + source.tokenizer.offset
    assert not more_allowed_transitions(uniform, source.sample(200, 12, generator=gen(1)), source).holds
