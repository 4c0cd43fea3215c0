import pytest
import torch

from toyalgos.lm import CharTokenizer, candidate_facts, fact_sequences, reversal_pairs


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_reversal_pairs_are_a_seeded_bijection():
    pairs = reversal_pairs(200, generator=gen(3))
    assert pairs == reversal_pairs(200, generator=gen(3))
    assert pairs != reversal_pairs(200, generator=gen(4))
    firsts, seconds = zip(*pairs, strict=True)
    assert len(set(firsts)) == 200 and len(set(seconds)) == 200
    assert all(len(a) == 3 and set(a) <= set("ABCDEFGHIJ") for a in firsts)
    assert all(len(b) == 3 and set(b) <= set("klmnopqrst") for b in seconds)


def test_fact_sequences_layout():
    pairs = [("AB", "kl"), ("BA", "lk")]
    tok = CharTokenizer("ABkl")
    x = fact_sequences(pairs, tok)
    assert x.shape == (2, 7)
    assert (x[:, 0] == tok.bos_id).all() and (x[:, 3] == tok.sep_id).all() and (x[:, -1] == tok.eos_id).all()
    assert tok.decode_batch(x) == ["AB>kl", "BA>lk"]
    assert tok.decode_batch(fact_sequences(pairs, tok, reverse=True)) == ["kl>AB", "lk>BA"]


def test_reversal_bad_input():
    with pytest.raises(ValueError, match="at most"):
        reversal_pairs(101, name_length=2)
    with pytest.raises(ValueError, match="disjoint"):
        reversal_pairs(5, first="abc", second="cde")
    with pytest.raises(ValueError, match="same length"):
        fact_sequences([("AB", "k"), ("A", "l")], CharTokenizer("ABkl"))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        reversal_pairs(5, generator=0)


def test_candidate_facts_put_every_name_in_every_fact():
    tok = CharTokenizer("ABCDEFGHIJklmnopqrst")
    pairs = reversal_pairs(5, generator=torch.Generator().manual_seed(0))
    facts = fact_sequences(pairs, tok)
    first = slice(1, 4)
    cand = candidate_facts(facts, first)
    assert cand.shape == (5, 5, facts.shape[1])
    assert torch.equal(cand.diagonal().T, facts)  # [i, i] is the fact itself
    for i in range(5):
        for j in range(5):
            a, b = tok.decode(cand[i, j]).split(">")
            assert (a, b) == (pairs[j][0], pairs[i][1])  # fact i's B with fact j's A
    with pytest.raises(TypeError):
        candidate_facts(facts.tolist(), first)
