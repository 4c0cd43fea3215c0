"""GRPO's pieces against closed forms and an independent rewrite of TRL's documented loss."""

import math
from functools import partial

import pytest
import torch

from toyalgos.lm import ar_generate
from toyalgos.lm.rl import (
    addition_problems,
    aggregate_tokens,
    clipped_surrogate,
    completion_logp,
    completion_mask,
    grpo_advantages,
    grpo_loss,
    grpo_train,
    kl_k3,
    kv_generate,
    reasoning_tokenizer,
    reinforce_advantages,
    rule_reward,
    samples_to_accuracy,
    zero_std_fraction,
)
from toyalgos.nn import Transformer, TransformerConfig


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny_model(seed=0, vocab=21, max_len=16):
    torch.manual_seed(seed)
    return Transformer(
        TransformerConfig(vocab, d_model=16, n_layers=1, n_heads=2, max_len=max_len, causal=True)
    )


# --- advantages ----------------------------------------------------------------------------


def test_advantages_have_mean_zero_and_unit_std_per_group():
    r = torch.rand(6, 8, generator=gen(0))
    a = grpo_advantages(r)
    assert a.shape == r.shape
    torch.testing.assert_close(a.mean(1), torch.zeros(6), atol=1e-6, rtol=0)
    torch.testing.assert_close(a.std(1), torch.ones(6))


def test_advantages_are_zero_for_constant_groups_and_count_them():
    r = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.1, 0.1, 0.1]])
    a = grpo_advantages(r)
    assert (a[[0, 2]] == 0).all() and (a[1] != 0).all()
    assert zero_std_fraction(r) == pytest.approx(2 / 3)


def test_advantage_scales():
    r = torch.tensor([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 6.0, 6.0]])
    torch.testing.assert_close(grpo_advantages(r, scale="none"), r - r.mean(1, keepdim=True))
    torch.testing.assert_close(grpo_advantages(r, scale="batch"), (r - r.mean(1, keepdim=True)) / r.std())
    torch.testing.assert_close(reinforce_advantages(r), r - r.mean())


@pytest.mark.parametrize("bad", [torch.ones(4, 1), torch.tensor([[1.0, float("nan")]]), torch.ones(4)])
def test_advantages_refuse_groups_of_one_nan_and_1d(bad):
    with pytest.raises(ValueError):
        grpo_advantages(bad)


# --- KL ------------------------------------------------------------------------------------


def test_k3_is_nonnegative_and_zero_on_equal_policies():
    logp, ref = torch.randn(100, generator=gen(0)), torch.randn(100, generator=gen(1))
    assert (kl_k3(logp, ref) >= 0).all()
    assert kl_k3(logp, logp).abs().max() == 0


def test_k3_is_unbiased_for_kl():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    q = torch.tensor([0.25, 0.25, 0.25, 0.25])
    exact = (p * (p / q).log()).sum().item()
    x = torch.multinomial(p, 200_000, replacement=True, generator=gen(0))
    est = kl_k3(p.log()[x], q.log()[x])
    se = est.std().item() / math.sqrt(len(x))
    assert abs(est.mean().item() - exact) < 4 * se


# --- clipped objective ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "ratio, advantage, zero_grad",
    [
        (1.5, 1.0, True),  # up past 1 + eps with a positive advantage: clipped, no push further
        (0.5, -1.0, True),  # down past 1 - eps with a negative advantage: clipped
        (0.5, 1.0, False),  # below 1 - eps with a positive advantage: the gradient pulls it back up
        (1.5, -1.0, False),  # above 1 + eps with a negative advantage: pulled back down
        (1.1, 1.0, False),  # inside the range: the plain ratio's gradient
    ],
)
def test_clip_gradient_vanishes_only_in_the_direction_of_the_advantage(ratio, advantage, zero_grad):
    log_ratio = torch.tensor(math.log(ratio), requires_grad=True)
    clipped_surrogate(log_ratio.exp(), torch.tensor(advantage), 0.2).backward()
    if zero_grad:
        assert log_ratio.grad == 0
    else:
        assert log_ratio.grad == pytest.approx(ratio * advantage)


# --- aggregation and the loss vs TRL -------------------------------------------------------


def test_aggregations():
    per_token = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, 9.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert aggregate_tokens(per_token, mask, "grpo").item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate_tokens(per_token, mask, "bnpo").item() == pytest.approx(10.0 / 4)
    assert aggregate_tokens(per_token, mask, "dr_grpo").item() == pytest.approx(10.0 / 8)
    with pytest.raises(ValueError):
        aggregate_tokens(per_token, mask, "dapo")


def test_completion_mask_runs_through_the_first_eos():
    c = torch.tensor([[5, 3, 6, 3], [5, 6, 7, 8]])
    assert completion_mask(c, 3).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def trl_grpo_loss(model, input_ids, completion_mask, advantages, old_logps, ref_logps, epsilon, beta):
    """TRL GRPOTrainer._compute_loss for loss_type='grpo', token-level ratio, written from its definition."""
    logits_to_keep = completion_mask.size(1)
    logits = model(input_ids)[:, :-1, :][:, -logits_to_keep:]  # logits predicting the completion tokens
    per_token_logps = torch.gather(
        logits.log_softmax(-1), 2, input_ids[:, -logits_to_keep:].unsqueeze(2)
    ).squeeze(2)
    per_token_kl = torch.exp(ref_logps - per_token_logps) - (ref_logps - per_token_logps) - 1
    coef_1 = torch.exp(per_token_logps - old_logps)
    coef_2 = torch.clamp(coef_1, 1 - epsilon, 1 + epsilon)
    per_token_loss = -torch.min(coef_1 * advantages.unsqueeze(1), coef_2 * advantages.unsqueeze(1))
    per_token_loss = per_token_loss + beta * per_token_kl
    return ((per_token_loss * completion_mask).sum(-1) / completion_mask.sum(-1).clamp(min=1.0)).mean()


def test_grpo_loss_equals_trl_formula_on_a_hand_built_batch():
    model = tiny_model(0)
    g = gen(3)
    x = torch.randint(5, 21, (6, 11), generator=g)
    mask = torch.tensor(
        [[1.0] * 6, [1.0] * 3 + [0.0] * 3, [1.0] * 6, [1.0] + [0.0] * 5, [1.0] * 4 + [0.0] * 2, [1.0] * 6]
    )
    adv = torch.tensor([1.2, -0.4, 0.0, 2.0, -1.5, 0.3])
    with torch.no_grad():
        base = completion_logp(model, x, 5)
    old = base + 0.3 * torch.randn(base.shape, generator=g)  # some ratios far outside the clip range
    ref = base + 0.2 * torch.randn(base.shape, generator=g)
    ours = grpo_loss(model, x, mask, adv, old, ref, prompt_length=5, epsilon=0.2, beta=0.04).total
    theirs = trl_grpo_loss(model, x, mask, adv, old, ref, 0.2, 0.04)
    torch.testing.assert_close(ours, theirs)
    g1 = torch.autograd.grad(ours, list(model.parameters()))
    g2 = torch.autograd.grad(
        trl_grpo_loss(model, x, mask, adv, old, ref, 0.2, 0.04), list(model.parameters())
    )
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


def test_on_policy_grpo_loss_gradient_is_the_policy_gradient():
    """With old = current (ratio 1) and beta 0 the gradient is -mean_i 1/|o_i| sum_t A_i grad log pi."""
    model = tiny_model(1)
    x = torch.randint(5, 21, (4, 9), generator=gen(4))
    mask = torch.ones(4, 4)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    with torch.no_grad():
        old = completion_logp(model, x, 5)
    loss = grpo_loss(model, x, mask, adv, old, old, prompt_length=5, beta=0.0).total
    pg = -(completion_logp(model, x, 5).mean(1) * adv).mean()
    for a, b in zip(
        torch.autograd.grad(loss, list(model.parameters())),
        torch.autograd.grad(pg, list(model.parameters())),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


# --- sampling and training -----------------------------------------------------------------


def test_kv_generate_draws_what_ar_generate_draws():
    model = tiny_model(2)
    prompt = torch.randint(5, 21, (32, 5), generator=gen(5))
    for temperature in (1.0, 0.0):
        a = ar_generate(model, prompt, gen_length=9, temperature=temperature, generator=gen(6)).x
        b = kv_generate(model, prompt, gen_length=9, temperature=temperature, generator=gen(6)).x
        assert torch.equal(a, b)


def test_kv_generate_refuses_a_bidirectional_model():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(21, d_model=16, n_layers=1, n_heads=2, max_len=16, causal=False))
    with pytest.raises(ValueError):
        kv_generate(model, torch.zeros(2, 3, dtype=torch.long), gen_length=2)


def _run(seed, **options):
    kw = {"group_size": 4, **options}
    tok = reasoning_tokenizer()
    probs = addition_problems(tok, (1, 1))
    model = tiny_model(seed, tok.vocab_size)
    return model, grpo_train(
        model,
        probs.prompts,
        probs.answers,
        partial(rule_reward, tok=tok),
        eos_id=tok.eos_id,
        steps=3,
        prompts_per_step=4,
        gen_length=8,
        eval_prompts=probs.prompts[:10],
        eval_answers=probs.answers[:10],
        eval_every=2,
        generator=gen(seed),
        progress=False,
        **kw,
    )


def test_grpo_train_is_deterministic_and_records_every_step():
    m1, h1 = _run(0)
    m2, h2 = _run(0)
    for a, b in zip(h1, h2, strict=True):
        assert (a == b).all()
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))
    assert len(h1.reward) == 3 and h1.samples.tolist() == [16, 32, 48]
    assert h1.eval_step.tolist() == [0, 2, 3]
    assert ((h1.zero_std >= 0) & (h1.zero_std <= 1)).all()


def test_grpo_train_refuses_groups_of_one():
    with pytest.raises(ValueError):
        _run(0, group_size=1)


def test_samples_to_accuracy():
    _, h = _run(0)
    h = h._replace(accuracy=torch.tensor([0.0, 0.6, 0.6]).numpy())
    assert samples_to_accuracy(h, 0.5, window=1) == 32
    assert samples_to_accuracy(h, 0.5, window=2) == 48
    assert samples_to_accuracy(h, 0.9, window=1) == math.inf


def test_loss_needs_completion_tokens():
    model = tiny_model(0)
    with pytest.raises(ValueError):
        grpo_loss(
            model,
            torch.zeros(2, 5, dtype=torch.long),
            torch.ones(2, 0),
            torch.zeros(2),
            torch.zeros(2, 0),
            torch.zeros(2, 0),
            prompt_length=5,
        )
