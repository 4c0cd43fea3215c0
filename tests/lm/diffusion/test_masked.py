import itertools
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toyalgos.core import Samples, train
from toyalgos.lm import (
    MarkovOracle,
    MarkovSource,
    forward_mask,
    masked_token_loss,
    mdm_generate,
    mdm_infill,
    mdm_loss,
    mdm_nll_bound,
    mdm_sft_loss,
    num_transfer_tokens,
    unmasking_steps,
)
from toyalgos.nn import Transformer, TransformerConfig

V, MASK = 10, 1


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny(seed=0, max_len=32):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(V, d_model=16, n_layers=1, n_heads=2, max_len=max_len)).eval()


class Spy(nn.Module):
    """Wraps a model and keeps every input it is called with."""

    def __init__(self, model):
        super().__init__()
        self.model, self.inputs = model, []

    def forward(self, x):
        self.inputs.append(x.clone())
        return self.model(x)


def data(n=4, length=8, seed=0):
    return torch.randint(2, V, (n, length), generator=gen(seed))


def order(out):
    """The step at which each token was unmasked, from a sampler's trajectory."""
    return unmasking_steps(out.trajectory, MASK)


# ------------------------------------------------------------------------- forward process


def test_mask_fraction_matches_t():
    x = data(400, 50)
    for t in (0.1, 0.5, 0.9):
        batch = forward_mask(x, mask_id=MASK, t=t, eps=0.0, generator=gen(0))
        assert batch.masked.float().mean().item() == pytest.approx(t, abs=0.01)
        assert torch.equal(batch.x_t == MASK, batch.masked)
        assert torch.equal(batch.x_t[~batch.masked], x[~batch.masked])
    batch = forward_mask(x, mask_id=MASK, t=torch.tensor(0.0), eps=0.1, generator=gen(0))
    assert torch.allclose(batch.p_mask, torch.full((400,), 0.1))
    assert batch.masked.float().mean().item() == pytest.approx(0.1, abs=0.01)


def test_random_t_masks_each_row_at_its_own_rate():
    batch = forward_mask(data(2000, 64), mask_id=MASK, generator=gen(1))
    frac = batch.masked.float().mean(1)
    assert frac.mean().item() == pytest.approx(0.5, abs=0.02)  # E[t] = 1/2
    assert (frac - batch.p_mask).abs().mean().item() < 0.06  # binomial noise at L = 64
    assert torch.equal(batch.masked, forward_mask(data(2000, 64), mask_id=MASK, generator=gen(1)).masked)


# --------------------------------------------------------------------------- loss weighting


def test_masked_token_loss_hand_computed():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]], [[0.0, math.log(4.0)], [0.0, 0.0]]])
    x0 = torch.tensor([[0, 0], [1, 1]])
    masked = torch.tensor([[True, True], [True, False]])
    p_mask = torch.tensor([0.5, 0.25])
    # row 0: -log(1/2) / 0.5 and -log(3/4) / 0.5; row 1: -log(4/5) / 0.25, then unmasked.
    expected = torch.tensor([[2 * math.log(2.0), 2 * math.log(4 / 3)], [4 * math.log(5 / 4), 0.0]])
    assert torch.allclose(masked_token_loss(logits, x0, masked, p_mask), expected, atol=1e-6)


def reference_pretraining_loss(logits, x, masked, p_mask):
    """The reference's loss, written with its boolean indexing."""
    p = p_mask[:, None].repeat(1, x.shape[1])
    token_loss = F.cross_entropy(logits[masked], x[masked], reduction="none") / p[masked]
    return token_loss.sum() / (x.shape[0] * x.shape[1])


def test_mdm_loss_equals_the_reference_formula():
    model, x = Spy(tiny()), data(6, 12)
    loss = mdm_loss(model, x, mask_id=MASK, generator=gen(3))
    batch = forward_mask(x, mask_id=MASK, generator=gen(3))  # the same draw
    assert torch.equal(model.inputs[0], batch.x_t)
    with torch.no_grad():
        expected = reference_pretraining_loss(model.model(batch.x_t), x, batch.masked, batch.p_mask)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_losses_train_with_partial():
    """The loss contract: train(model, partial(loss, mask_id=..., generator=g), data)."""
    x = data(64, 8)
    model = tiny()
    history = train(
        model, partial(mdm_loss, mask_id=MASK, generator=gen(0)), x, steps=5, batch_size=8, progress=False
    )
    assert history.loss.shape == (5,) and not model.training
    prompts = torch.randint(0, 4, (64,))
    history = train(
        model,
        partial(mdm_sft_loss, mask_id=MASK, generator=gen(0)),
        (x, prompts),
        steps=5,
        batch_size=8,
        progress=False,
    )
    assert history.loss.shape == (5,)


def test_sft_loss_never_masks_the_prompt_and_divides_by_answer_length():
    model, x = Spy(tiny()), data(6, 12)
    prompt_length = torch.tensor([0, 3, 5, 5, 11, 2])
    loss = mdm_sft_loss(model, x, prompt_length, mask_id=MASK, generator=gen(4))
    x_t = model.inputs[0]
    is_prompt = torch.arange(12) < prompt_length[:, None]
    assert torch.equal(x_t[is_prompt], x[is_prompt])
    batch = forward_mask(x, mask_id=MASK, generator=gen(4))
    assert torch.equal(x_t[~is_prompt], batch.x_t[~is_prompt])
    masked = x_t == MASK
    with torch.no_grad():
        logits = model.model(x_t)
    p = batch.p_mask[:, None].expand(6, 12)
    answer = (12 - prompt_length)[:, None].expand(6, 12).float()
    token_loss = F.cross_entropy(logits[masked], x[masked], reduction="none") / p[masked]
    expected = (token_loss / answer[masked]).sum() / 6
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_bad_input():
    with pytest.raises(ValueError, match="prompt_length"):
        mdm_sft_loss(tiny(), data(2, 6), 6, mask_id=MASK)
    with pytest.raises(ValueError, match="eps"):
        forward_mask(data(), mask_id=MASK, eps=1.0)
    with pytest.raises(ValueError, match="t must lie"):
        forward_mask(data(), mask_id=MASK, t=1.5)
    with pytest.raises(TypeError, match="dtype torch.int64"):
        mdm_loss(tiny(), data().float(), mask_id=MASK)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        mdm_loss(tiny(), data(), mask_id=MASK, generator=3)


# ------------------------------------------------------------------------------- NLL bound


def exact_eq6_expectation(model, x, L):
    """E over l ~ U{1..L} and a uniform l-subset of (L / l) sum_masked -log p(x^i | x_t), per token."""
    total = torch.zeros(len(x), dtype=torch.float64)
    for l in range(1, L + 1):
        subsets = list(itertools.combinations(range(L), l))
        for s in subsets:
            masked = torch.zeros(len(x), L, dtype=torch.bool)
            masked[:, list(s)] = True
            loss = masked_token_loss(model(torch.where(masked, MASK, x)), x, masked, torch.ones(len(x)))
            total += loss.sum(1).double() * (L / l) / (L * len(subsets))
    return total / L


def test_bound_is_tight_for_the_true_conditionals_and_loose_otherwise():
    """Eq. 6 enumerated exactly: = -log p(x) with the true conditionals (every order factorises p),
    and >= the entropy, in expectation over the data, for any other predictor (Gibbs)."""
    L = 4
    source = MarkovSource([[0.0, 0.7, 0.3], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])
    states = torch.tensor(list(itertools.product(range(3), repeat=L)))
    x = states + source.tokenizer.offset
    p = source.log_prob(x).exp()
    x, p = x[p > 0], p[p > 0]
    tight = exact_eq6_expectation(MarkovOracle(source), x, L)
    assert torch.allclose(tight, -source.log_prob(x) / L, atol=1e-5)
    wrong = MarkovOracle(MarkovSource([[0.2, 0.5, 0.3], [0.4, 0.2, 0.4], [0.6, 0.2, 0.2]]))
    loose = exact_eq6_expectation(wrong, x, L)
    assert (p * loose).sum().item() > source.entropy_per_token(L) + 0.05


def test_mc_bound_estimates_the_exact_nll_of_the_oracle():
    source = MarkovSource.random(6, 2, generator=gen(2))
    x = source.sample(8, 8, generator=gen(0))
    exact = (-source.log_prob(x) / 8).float()
    oracle = MarkovOracle(source)
    mask_id = source.tokenizer.mask_id
    bound = mdm_nll_bound(oracle, x, mask_id=mask_id, n_samples=4096, generator=gen(0))
    assert torch.allclose(bound, exact, atol=0.03)  # a rare transition (p = 0.04) makes the tail heavy
    assert mdm_nll_bound(
        oracle, x, mask_id=mask_id, n_samples=256, batch_size=100, generator=gen(0)
    ).shape == (8,)
    random_t = mdm_nll_bound(
        oracle, x, mask_id=mask_id, n_samples=4096, estimator="random_t", eps=0.0, generator=gen(0)
    )
    assert random_t.mean().item() == pytest.approx(exact.mean().item(), abs=0.03)
    # conditional: -log p(answer | prompt) / A = -(log p(x) - log p(prompt)) / A
    cond = mdm_nll_bound(oracle, x, mask_id=mask_id, n_samples=1024, prompt_length=3, generator=gen(0))
    exact_cond = -(source.log_prob(x) - source.log_prob(x[:, :3])) / 5
    assert torch.allclose(cond, exact_cond.float(), atol=0.03)


def test_mc_bound_of_a_wrong_model_exceeds_the_entropy():
    source = MarkovSource.random(6, 2, generator=gen(2))
    x = source.sample(200, 8, generator=gen(1))
    wrong = MarkovOracle(MarkovSource.random(6, 6, generator=gen(5)))
    bound = mdm_nll_bound(wrong, x, mask_id=source.tokenizer.mask_id, n_samples=32, generator=gen(0))
    assert bound.mean().item() > source.entropy_per_token(8) + 0.1


def test_fixed_count_masks_every_level_equally_and_spares_the_prompt():
    spy, x = Spy(tiny()), data(3, 9)
    mdm_nll_bound(spy, x, mask_id=MASK, n_samples=12, prompt_length=3, generator=gen(0))
    x_t = torch.cat(spy.inputs)
    assert (x_t[:, :3] != MASK).all()
    counts = (x_t == MASK).sum(1).view(3, 12)
    for row in counts:  # 12 draws over A = 6 levels: each level exactly twice
        assert torch.equal(torch.bincount(row, minlength=7)[1:], torch.full((6,), 2))


def test_bound_bad_input():
    with pytest.raises(ValueError, match="estimator must be one of"):
        mdm_nll_bound(tiny(), data(), mask_id=MASK, estimator="exact")
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        mdm_nll_bound(tiny(), data(), mask_id=MASK, n_samples=0)


# -------------------------------------------------------------------------------- sampling


def test_num_transfer_tokens_spreads_the_tokens_evenly():
    assert num_transfer_tokens(10, 4).tolist() == [[3, 3, 2, 2]]
    assert num_transfer_tokens(torch.tensor([8, 3]), 4).tolist() == [[2, 2, 2, 2], [1, 1, 1, 0]]
    n = torch.arange(30)
    assert torch.equal(num_transfer_tokens(n, 7).sum(1), n)


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_one_token_per_step_when_steps_equal_gen_length(remasking):
    prompt = data(3, 4)
    out = mdm_generate(
        tiny(),
        prompt,
        steps=12,
        gen_length=12,
        remasking=remasking,
        mask_id=MASK,
        generator=gen(0),
        return_trajectory=True,
    )
    x, history = out.x, order(out)
    assert torch.equal(x[:, :4], prompt)
    assert (x != MASK).all()
    assert (history[:, :4] == -1).all()
    for row in history[:, 4:]:
        assert sorted(row.tolist()) == list(range(12))


def test_samples_type_and_trajectory():
    """Always Samples; the trajectory (start first, steps + 1 states) only when asked for."""
    model, prompt = tiny(), data(2, 3)
    kwargs = dict(steps=4, gen_length=8, temperature=1.0, mask_id=MASK)
    plain = mdm_generate(model, prompt, generator=gen(0), **kwargs)
    full = mdm_generate(model, prompt, generator=gen(0), return_trajectory=True, **kwargs)
    assert type(plain) is Samples and type(full) is Samples
    assert plain.nfe == full.nfe == 4 and plain.trajectory is None
    assert torch.equal(plain.x, full.x)
    assert full.trajectory.shape == (5, 2, 11)
    assert (full.trajectory[0, :, 3:] == MASK).all() and torch.equal(full.trajectory[-1], full.x)
    assert ((full.trajectory == MASK).sum(-1)[:, 0] == torch.tensor([8, 6, 4, 2, 0])).all()
    x_t = data(2, 6)
    x_t[:, 1:4] = MASK
    filled = mdm_infill(model, x_t, steps=3, mask_id=MASK, return_trajectory=True)
    assert type(filled) is Samples and filled.nfe == 3 and filled.trajectory.shape == (4, 2, 6)
    assert torch.equal(filled.trajectory[0], x_t)
    assert mdm_infill(model, x_t, steps=3, mask_id=MASK).trajectory is None


def test_samplers_restore_the_callers_mode():
    model = tiny().train()
    mdm_generate(model, data(2, 2), steps=2, gen_length=4, mask_id=MASK)
    x_t = data(2, 4)
    x_t[:, 0] = MASK
    mdm_infill(model, x_t, steps=1, mask_id=MASK)
    mdm_nll_bound(model, data(2, 4), mask_id=MASK, n_samples=2)
    assert all(m.training for m in model.modules())


class Ramp(nn.Module):
    """Predicts token 2 everywhere, more confidently the further right: logit 0.3 * position."""

    def forward(self, x):
        logits = torch.zeros(*x.shape, V)
        logits[..., 2] = 0.3 * torch.arange(x.shape[1], dtype=torch.float32)
        return logits


def test_low_confidence_keeps_the_most_confident_predictions_first():
    """With confidence rising to the right, low-confidence remasking unmasks right to left, two
    per step; within blocks, right to left inside each block. Random remasking follows no order."""
    prompt = data(2, 2)
    out = mdm_generate(Ramp(), prompt, steps=4, gen_length=8, mask_id=MASK, return_trajectory=True)
    assert order(out)[:, 2:].tolist() == [[3, 3, 2, 2, 1, 1, 0, 0]] * 2
    out = mdm_generate(
        Ramp(), prompt, steps=4, gen_length=8, block_length=4, mask_id=MASK, return_trajectory=True
    )
    assert order(out)[:, 2:].tolist() == [[1, 1, 0, 0, 3, 3, 2, 2]] * 2
    out = mdm_generate(
        Ramp(),
        data(50, 2),
        steps=8,
        gen_length=8,
        remasking="random",
        mask_id=MASK,
        generator=gen(0),
        return_trajectory=True,
    )
    assert not (order(out)[:, 2:] == torch.arange(7, -1, -1)).all(1).any()


def test_blocks_are_generated_left_to_right():
    out = mdm_generate(
        tiny(), data(2, 3), steps=8, gen_length=12, block_length=3, mask_id=MASK, return_trajectory=True
    )
    steps = order(out)[:, 3:].view(2, 4, 3)  # 4 blocks of 3 tokens, 2 steps each
    for b in range(4):
        assert ((steps[:, b] >= 2 * b) & (steps[:, b] < 2 * b + 2)).all()
    assert (out.x != MASK).all()


def test_generate_is_seeded_and_greedy_low_confidence_is_deterministic():
    model, prompt = tiny(), data(4, 2)
    kwargs = dict(steps=5, gen_length=10, mask_id=MASK)
    sampled = dict(temperature=1.0, remasking="random", **kwargs)
    a = mdm_generate(model, prompt, generator=gen(1), **sampled).x
    assert torch.equal(a, mdm_generate(model, prompt, generator=gen(1), **sampled).x)
    assert not torch.equal(a, mdm_generate(model, prompt, generator=gen(2), **sampled).x)
    g0 = mdm_generate(model, prompt, generator=gen(1), **kwargs).x
    assert torch.equal(g0, mdm_generate(model, prompt, generator=gen(2), **kwargs).x)


def test_generate_unconditionally_from_an_empty_prompt():
    empty = torch.zeros(3, 0, dtype=torch.long)
    x = mdm_generate(tiny(), empty, steps=4, gen_length=8, mask_id=MASK, temperature=1.0, generator=gen(0)).x
    assert x.shape == (3, 8) and (x != MASK).all()


def test_random_remasking_one_token_per_step_samples_the_oracle_exactly():
    """With the true conditionals and one token per step the reverse process is exact:
    every sample is a possible sequence of the sparse chain."""
    source = MarkovSource.random(8, 2, generator=gen(0))
    empty = torch.zeros(64, 0, dtype=torch.long)
    x = mdm_generate(
        MarkovOracle(source),
        empty,
        steps=16,
        gen_length=16,
        temperature=1.0,
        remasking="random",
        mask_id=1,
        generator=gen(0),
    ).x
    assert source.is_valid(x).all()


def test_infill_fills_masks_anywhere_and_keeps_the_rest():
    x = data(3, 8)
    x_t = x.clone()
    x_t[0, :3] = MASK
    x_t[1, [1, 4, 7]] = MASK
    x_t[2, 5] = MASK
    out = mdm_infill(tiny(), x_t, steps=3, mask_id=MASK, return_trajectory=True)
    history = order(out)
    given = x_t != MASK
    assert torch.equal(out.x[given], x[given]) and (out.x != MASK).all()
    assert (history[given] == -1).all()
    assert sorted(history[1][~given[1]].tolist()) == [0, 1, 2]  # one mask per step
    assert history[2, 5].item() == 0


def test_generate_bad_input():
    model, prompt = tiny(), data(2, 3)
    with pytest.raises(ValueError, match="multiple of block_length"):
        mdm_generate(model, prompt, steps=4, gen_length=10, block_length=4, mask_id=MASK)
    with pytest.raises(ValueError, match="multiple of the number of blocks"):
        mdm_generate(model, prompt, steps=5, gen_length=8, block_length=4, mask_id=MASK)
    with pytest.raises(ValueError, match="at most gen_length"):
        mdm_generate(model, prompt, steps=9, gen_length=8, mask_id=MASK)
    with pytest.raises(ValueError, match="mask token; use mdm_infill"):
        mdm_generate(model, torch.tensor([[2, MASK, 3]]), steps=4, gen_length=8, mask_id=MASK)
    with pytest.raises(ValueError, match="remasking"):
        mdm_generate(model, prompt, steps=4, gen_length=8, remasking="topk", mask_id=MASK)
    with pytest.raises(ValueError, match="temperature"):
        mdm_generate(model, prompt, steps=4, gen_length=8, temperature=-0.5, mask_id=MASK)
    with pytest.raises(ValueError, match=r"shape \(N, L\)"):
        mdm_generate(model, prompt[0], steps=4, gen_length=8, mask_id=MASK)
    with pytest.raises(ValueError, match="max_len"):
        mdm_generate(tiny(max_len=8), prompt, steps=4, gen_length=8, mask_id=MASK)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        mdm_generate(model, prompt, steps=4, gen_length=8, mask_id=MASK, generator=0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        mdm_infill(model, prompt, steps=1, mask_id=MASK, generator=0)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        mdm_infill(model, prompt, steps=0, mask_id=MASK)


def test_prompt_length_must_fit_the_batch():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        mdm_sft_loss(tiny(), data(2, 6), torch.tensor([1, 2, 3]), mask_id=MASK)
    with pytest.raises(ValueError, match="prompt_length"):
        mdm_nll_bound(tiny(), data(2, 6), mask_id=MASK, prompt_length=1.5)
