"""The toy reasoning task: problems, R1-Zero rule rewards on hand-written completions, the base corpus."""

import pytest
import torch

from toyalgos.lm.rl import (
    addition_problems,
    reasoning_tokenizer,
    rule_reward,
    split_problems,
    warmup_sequences,
)

TOK = reasoning_tokenizer()


def encode(texts, length=12):
    """Completions written with ``$`` for <eos>, right-padded."""
    out = torch.full((len(texts), length), TOK.pad_id)
    for i, t in enumerate(texts):
        ids = [TOK.eos_id if ch == "$" else TOK.encode(ch)[0].item() for ch in t]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


CASES = [  # completion, accuracy, format for the answer 11
    ("(1+)[11]$", 1, 1),
    ("()[11]$", 1, 1),
    ("(12)[10]$", 0, 1),
    ("[11]$", 1, 0),  # no think part
    ("(1)11$", 0, 0),  # no answer tag: no reward at all
    ("()[011]$", 0, 0),  # leading zero
    ("()[11]", 1, 0),  # never ends
    ("()[11]5$", 1, 0),  # text after the answer
    ("(12)[1+]$", 0, 0),
    ("()[]$", 0, 0),
    ("()[11]$[3]", 1, 1),  # after <eos> nothing counts
    ("$()[11]$", 0, 0),
    ("(1)(2)[11]$", 1, 0),
    ("()[11]]$", 1, 0),
    ("()[1[1]$", 0, 0),
    ("(()[11]$", 1, 0),
]


def test_rule_reward_on_hand_written_completions():
    texts, acc, fmt = zip(*CASES, strict=True)
    r = rule_reward(encode(texts), torch.full((len(texts),), 11), TOK, format_weight=0.1)
    assert r.accuracy.tolist() == list(map(float, acc))
    assert r.format.tolist() == list(map(float, fmt))
    torch.testing.assert_close(r.reward, r.accuracy + 0.1 * r.format)


def test_rule_reward_reads_one_to_three_digit_answers():
    r = rule_reward(encode(["()[0]$", "()[7]$", "()[65]$", "()[108]$"]), torch.tensor([0, 7, 65, 108]), TOK)
    assert r.accuracy.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_rule_reward_checks_its_input():
    with pytest.raises(ValueError):
        rule_reward(encode(["()[1]$"]), torch.tensor([1, 2]), TOK)
    with pytest.raises(TypeError):
        rule_reward(encode(["()[1]$"]), torch.tensor([1.0]), TOK)


def test_problems_are_all_sums_written_in_fixed_width():
    probs = addition_problems(TOK, (2, 1))
    assert len(probs.answers) == 1000
    assert TOK.decode(probs.prompts[57 * 10 + 8]) == "57+8="
    assert probs.answers[57 * 10 + 8] == 65
    assert TOK.decode(probs.prompts[7 * 10 + 3]) == "07+3="
    with pytest.raises(ValueError):
        addition_problems(TOK, (4, 1))


def test_split_is_disjoint_and_deterministic():
    probs = addition_problems(TOK, (1, 1))
    tr, te = split_problems(probs, 25, generator=torch.Generator().manual_seed(0))
    tr2, te2 = split_problems(probs, 25, generator=torch.Generator().manual_seed(0))
    assert torch.equal(te.prompts, te2.prompts) and len(te.answers) == 25 and len(tr.answers) == 75
    assert not set(map(tuple, tr.operands.tolist())) & set(map(tuple, te.operands.tolist()))


def test_warmup_corpus_is_right_and_tagged_at_the_stated_rate():
    probs = addition_problems(TOK, (2, 1))
    x = warmup_sequences(TOK, probs, 4000, tagged=0.25, generator=torch.Generator().manual_seed(0))
    texts = TOK.decode_batch(x)
    prompt, rest = texts[0].split("=")
    a, b = map(int, prompt.split("+"))
    think, answer = rest[1:].split(")")
    assert int(think) == a % 10 + b % 10 and int(answer.strip("[]")) == a + b
    answers = torch.tensor([sum(map(int, t.split("=")[0].split("+"))) for t in texts])
    r = rule_reward(x[:, 6:], answers, TOK)
    assert r.accuracy.mean().item() == pytest.approx(0.25, abs=0.03)  # right whenever tagged
    assert torch.equal(r.accuracy, r.format)
