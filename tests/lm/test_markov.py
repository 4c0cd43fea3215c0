import itertools
import math

import pytest
import torch

from toyalgos.lm import MarkovOracle, MarkovSource, add_bos

TINY = torch.tensor(
    [[0.0, 0.7, 0.3], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64
)  # a sparse 3-state chain


def gen(seed):
    return torch.Generator().manual_seed(seed)


def all_sequences(source, length):
    """Every sequence of ``length`` symbols as token ids, with its probability."""
    states = torch.tensor(list(itertools.product(range(source.n_states), repeat=length)))
    x = states + source.tokenizer.offset
    return x, source.log_prob(x).exp()


# ----------------------------------------------------------------------------- Markov source


def test_random_chain_is_sparse_irreducible_and_seeded():
    a, b = MarkovSource.random(12, 3, generator=gen(0)), MarkovSource.random(12, 3, generator=gen(0))
    assert torch.equal(a.transition, b.transition)
    assert not torch.equal(a.transition, MarkovSource.random(12, 3, generator=gen(1)).transition)
    P = a.transition
    assert torch.allclose(P.sum(1), torch.ones(12, dtype=P.dtype))
    assert ((P > 0).sum(1) <= 3).all()
    assert torch.allclose(a.stationary @ P, a.stationary, atol=1e-12)
    assert 0.5 < a.entropy_rate() < 1.2


def test_random_chain_uses_the_given_generator_only():
    torch.manual_seed(0)
    g = gen(7)
    a = MarkovSource.random(8, 2, generator=g)
    torch.manual_seed(1)  # the global state plays no part
    assert torch.equal(a.transition, MarkovSource.random(8, 2, generator=gen(7)).transition)
    assert not torch.equal(g.get_state(), gen(7).get_state())  # the chain was drawn from g


@pytest.mark.parametrize("length", [1, 2, 5])
def test_entropy_matches_brute_force_enumeration(length):
    source = MarkovSource(TINY)
    _, p = all_sequences(source, length)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    brute = -(p[p > 0] * p[p > 0].log()).sum().item()
    assert source.entropy(length) == pytest.approx(brute, abs=1e-10)
    assert source.entropy_per_token(length) == pytest.approx(brute / length, abs=1e-10)


def test_entropy_closed_form_of_a_known_chain():
    # Two states that swap with probability q: pi = (1/2, 1/2), h = H_b(q).
    q = 0.2
    source = MarkovSource([[1 - q, q], [q, 1 - q]])
    h = -(q * math.log(q) + (1 - q) * math.log(1 - q))
    assert source.entropy_rate() == pytest.approx(h, abs=1e-12)
    assert source.entropy(10) == pytest.approx(math.log(2) + 9 * h, abs=1e-12)


def test_samples_follow_the_chain_and_are_seeded():
    source = MarkovSource(TINY)
    x = source.sample(20_000, 6, generator=gen(0))
    assert torch.equal(x, source.sample(20_000, 6, generator=gen(0)))
    assert source.is_valid(x).all()
    s = x - source.tokenizer.offset
    freq = torch.bincount(s[:, 3], minlength=3).double() / len(s)
    assert torch.allclose(freq, source.stationary, atol=0.015)  # stationary at every position
    from_0 = s[:, 1:][s[:, :-1] == 0]
    assert (from_0 == 1).double().mean().item() == pytest.approx(0.7, abs=0.015)


def test_log_prob_and_validity():
    source = MarkovSource(TINY)
    x = source.tokenizer.encode_batch(["abc", "aab"])  # a->b->c valid; a->a forbidden
    pi = source.stationary
    assert source.log_prob(x)[0].item() == pytest.approx(math.log(pi[0] * 0.7 * 0.5), abs=1e-12)
    assert source.log_prob(x)[1].item() == -math.inf
    assert source.is_valid(x).tolist() == [True, False]
    # A special token or a mask anywhere: the source never emits it.
    tok = source.tokenizer
    odd = torch.stack(
        [add_bos(x, tok.bos_id)[0, :3], torch.tensor([tok.offset, tok.mask_id, tok.offset + 1])]
    )
    assert source.log_prob(odd).tolist() == [-math.inf, -math.inf]
    assert source.is_valid(odd).tolist() == [False, False]


def test_markov_source_bad_input():
    with pytest.raises(ValueError, match="row-stochastic"):
        MarkovSource([[0.5, 0.4], [0.5, 0.5]])
    with pytest.raises(ValueError, match="irreducible"):
        MarkovSource([[1.0, 0.0], [0.5, 0.5]])
    with pytest.raises(ValueError, match="square"):
        MarkovSource([[1.0, 0.0]])
    with pytest.raises(ValueError, match="branching"):
        MarkovSource.random(4, 5)
    with pytest.raises(ValueError, match="concentration"):
        MarkovSource.random(4, 2, concentration=0.0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        MarkovSource.random(4, 2, generator=0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        MarkovSource(TINY).sample(2, 3, generator=0)


# --------------------------------------------------------------------------------- oracle


def test_bidirectional_oracle_matches_brute_force_conditionals():
    source = MarkovSource(TINY)
    tok = source.tokenizer
    L = 5
    seqs, p = all_sequences(source, L)
    g = gen(0)
    x0 = source.sample(6, L, generator=g)
    masked = torch.rand(6, L, generator=g) < 0.6
    masked[0] = True  # nothing visible: the marginals are pi
    x_t = torch.where(masked, tok.mask_id, x0)
    probs = MarkovOracle(source)(x_t).softmax(-1).double()
    for n in range(6):
        visible = ~masked[n]
        consistent = (seqs[:, visible] == x0[n, visible]).all(1)
        for i in range(L):
            expected = torch.zeros(tok.vocab_size, dtype=torch.float64)
            expected.index_add_(0, seqs[consistent, i], p[consistent])
            expected /= expected.sum()
            assert torch.allclose(probs[n, i], expected, atol=1e-6), (n, i)


def test_causal_oracle_predicts_the_next_symbol():
    source = MarkovSource(TINY)
    x = add_bos(source.tokenizer.encode_batch(["ab"]), source.tokenizer.bos_id)
    probs = MarkovOracle(source, causal=True)(x).softmax(-1).double()[0, :, source.tokenizer.offset :]
    assert torch.allclose(probs[0], source.stationary, atol=1e-6)  # after <bos>
    assert torch.allclose(probs[1], source.transition[0], atol=1e-6)  # after 'a'
    assert torch.allclose(probs[2], source.transition[1], atol=1e-6)  # after 'b'
