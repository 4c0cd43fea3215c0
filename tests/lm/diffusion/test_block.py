"""Block diffusion (BD3-LM): the masks against a brute-force construction, the loss at L' = L
against MDLM / LLaDA, at L' = 1 with t = 1 against the autoregressive NLL, the cached sampler
against recomputation, determinism, bad input, and the notebook's claims on known-bad cases."""

import math

import pytest
import torch
import torch.nn.functional as F

from toyalgos.core import Samples
from toyalgos.lm import (
    MarkovSource,
    bd3_generate,
    bd3_loss,
    bd3_nelbo,
    block_diffusion_masks,
    mdm_loss,
)
from toyalgos.lm.claims import (
    clipped_variance_ratio,
    nelbo_falls_with_block_size,
    nll_matches_ar,
    same_tokens,
)
from toyalgos.nn import Transformer, TransformerConfig

V, MASK = 10, 1


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny(seed=0, max_len=32, n_layers=2, learned_positions=True):
    torch.manual_seed(seed)
    config = TransformerConfig(V, d_model=16, n_layers=n_layers, n_heads=2, max_len=max_len)
    kwargs = {} if learned_positions else {"position_embedding": None}
    return Transformer(config, **kwargs).eval()


def data(n=4, length=8, seed=0):
    return torch.randint(2, V, (n, length), generator=gen(seed))


def never_predicts_mask(model):
    """A model whose mask logit is -1e4 below the rest: softmax gives the mask exactly 0."""
    with torch.no_grad():
        model.head.weight[MASK] = 0.0
        model.head.bias[MASK] = -1e4
    return model


# ----------------------------------------------------------------------------------- masks


def brute_force_mask(L, Lb):
    """The reference's block_diff_mask over x_t ⊕ x_0, one (query, key) pair at a time."""
    full = torch.zeros(2 * L, 2 * L, dtype=torch.bool)
    for q in range(2 * L):
        for k in range(2 * L):
            q_clean, k_clean = q >= L, k >= L
            bq, bk = (q % L) // Lb, (k % L) // Lb
            diagonal = bq == bk and q_clean == k_clean
            offset = bq > bk and k_clean and not q_clean
            causal = bq >= bk and k_clean and q_clean
            full[q, k] = diagonal or offset or causal
    return full


@pytest.mark.parametrize("L, Lb", [(8, 1), (8, 2), (8, 4), (8, 8), (12, 3), (6, 6)])
def test_masks_equal_a_brute_force_construction(L, Lb):
    masks = block_diffusion_masks(L, Lb)
    assert torch.equal(masks.full, brute_force_mask(L, Lb))
    assert masks.full.shape == (2 * L, 2 * L)
    assert not masks.full[L:, :L].any()  # a clean token never sees a noisy one


def test_mask_parts_are_disjoint_and_named_as_in_the_paper():
    m = block_diffusion_masks(8, 2)
    assert not (m.block_diagonal & m.offset_block_causal).any()
    assert torch.equal(m.block_causal, m.block_diagonal | m.offset_block_causal)
    assert torch.equal(m.block_diagonal, torch.block_diag(*[torch.ones(2, 2)] * 4).bool())
    assert torch.equal(block_diffusion_masks(5, 1).block_causal, torch.ones(5, 5).tril().bool())
    assert (
        block_diffusion_masks(5, 5).block_diagonal.all()
        and not block_diffusion_masks(5, 5).offset_block_causal.any()
    )


# ------------------------------------------------------------------------------------ loss


def test_one_block_is_mdlm_and_equals_llada_at_eps_0_on_the_same_masks():
    model = never_predicts_mask(tiny())
    x = data(16, 8)
    ours = bd3_loss(model, x, block_size=8, mask_id=MASK, beta=0.0, omega=1.0, generator=gen(3))
    llada = mdm_loss(model, x, mask_id=MASK, eps=0.0, generator=gen(3))
    assert torch.allclose(ours, llada, rtol=1e-6, atol=1e-7)


def test_loss_is_the_written_formula():
    """One t per block, mask w.p. t, weight 1/t, SUBS log-softmax, the x_t half of one pass."""
    model, x, Lb = tiny(), data(5, 8), 2
    g = gen(4)
    u = torch.rand(5, 4, generator=g)
    t = (0.2 + 0.6 * u).repeat_interleave(Lb, dim=1)
    masked = torch.rand(5, 8, generator=g) < t
    x_t = torch.where(masked, MASK, x)
    L = 8
    allowed = torch.zeros(2 * L, 2 * L, dtype=torch.bool)
    for q in range(2 * L):
        for k in range(2 * L):
            bq, bk = (q % L) // Lb, (k % L) // Lb
            allowed[q, k] = (
                (q < L and k < L and bq == bk) or (q < L <= k and bk < bq) or (q >= L and k >= L and bk <= bq)
            )
    logits = model(torch.cat([x_t, x], 1), attn_mask=allowed, positions=torch.arange(L).repeat(2))[:, :L]
    logits[..., MASK] = float("-inf")
    nll = -F.log_softmax(logits, -1).gather(-1, x[..., None])[..., 0]
    expected = (nll * masked / t).sum() / x.numel()
    ours = bd3_loss(model, x, block_size=Lb, mask_id=MASK, beta=0.2, omega=0.8, generator=gen(4))
    assert torch.allclose(ours, expected, rtol=1e-6)


def test_block_size_1_at_t_1_is_the_next_token_nll_of_the_same_predictions():
    """Every token masked: token i sees only x^{<i} (its own noisy block is just the mask)."""
    model, x = tiny(), data(6, 8)
    loss = bd3_loss(model, x, block_size=1, mask_id=MASK, t=1.0)
    # the same predictions by hand: position i reads [x^0 .. x^{i-1}, M] with a causal mask
    nll = []
    for i in range(8):
        inp = torch.cat([x[:, :i], torch.full((6, 1), MASK)], 1)
        logits = model(inp, attn_mask=torch.ones(i + 1, i + 1).tril().bool())[:, -1]
        logits[:, MASK] = float("-inf")
        nll.append(-F.log_softmax(logits, -1).gather(-1, x[:, i : i + 1])[:, 0])
    assert torch.allclose(loss, torch.stack(nll, 1).mean(), rtol=1e-5)
    est = bd3_nelbo(model, x, block_size=1, mask_id=MASK, t=1.0, n_samples=3)
    assert torch.allclose(est.per_sequence.float(), torch.stack(nll, 1).mean(1), rtol=1e-5)


def test_nelbo_estimates_the_loss_and_reports_its_standard_error():
    model, x = tiny(), data(64, 8)
    est = bd3_nelbo(model, x, block_size=4, mask_id=MASK, n_samples=8, generator=gen(0))
    assert est.per_sequence.shape == (64,)
    assert est.nelbo == pytest.approx(est.per_sequence.mean().item())
    assert est.se == pytest.approx(est.per_sequence.std().item() / 8)
    losses = torch.stack(
        [bd3_loss(model, x, block_size=4, mask_id=MASK, generator=gen(s)) for s in range(40)]
    )
    assert abs(losses.mean().item() - est.nelbo) < 4 * (losses.std().item() / 40**0.5 + est.se)
    # an untrained network guesses: about log V nats per token
    assert est.nelbo == pytest.approx(math.log(V - 1), rel=0.2)


def test_loss_trains_and_keeps_the_model_mode():
    model = tiny().train()
    x = data(8, 8)
    loss = bd3_loss(model, x, block_size=2, mask_id=MASK, generator=gen(0))
    loss.backward()
    assert model.training and all(p.grad is not None for p in model.head.parameters())
    bd3_nelbo(model, x, block_size=2, mask_id=MASK, n_samples=2)
    assert model.training


def test_loss_and_nelbo_are_deterministic_per_generator():
    model, x = tiny(), data(8, 8)
    a = bd3_loss(model, x, block_size=2, mask_id=MASK, generator=gen(5))
    b = bd3_loss(model, x, block_size=2, mask_id=MASK, generator=gen(5))
    assert torch.equal(a, b)
    e1 = bd3_nelbo(model, x, block_size=4, mask_id=MASK, n_samples=4, batch_size=7, generator=gen(6))
    e2 = bd3_nelbo(model, x, block_size=4, mask_id=MASK, n_samples=4, batch_size=7, generator=gen(6))
    assert torch.equal(e1.per_sequence, e2.per_sequence)


# -------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("learned_positions", [True, False])
@pytest.mark.parametrize(
    "prompt_len, temperature, context",
    [(0, 1.0, None), (4, 1.0, None), (2, 0.0, None), (4, 1.0, 6), (0, 1.0, 2), (2, 1.0, 8)],
)
def test_cached_sampler_equals_recomputation(learned_positions, prompt_len, temperature, context):
    model = tiny(max_len=16, learned_positions=learned_positions)
    prompt = data(6, prompt_len, seed=1)
    kw = dict(gen_length=12, block_size=2, steps=3, mask_id=MASK, temperature=temperature, context=context)
    cached = bd3_generate(model, prompt, kv_cache=True, generator=gen(7), return_trajectory=True, **kw)
    again = bd3_generate(model, prompt, kv_cache=False, generator=gen(7), return_trajectory=True, **kw)
    assert isinstance(cached, Samples)
    assert torch.equal(cached.x, again.x) and torch.equal(cached.trajectory, again.trajectory)
    assert cached.nfe == 3 * 6 and cached.trajectory.shape == (19, 6, prompt_len + 12)
    assert torch.equal(cached.x[:, :prompt_len], prompt) and not (cached.x == MASK).any()


@pytest.mark.parametrize("context", [None, 4, 8, 12])
def test_cached_logits_equal_the_block_causal_forward(context):
    """The cache reproduces model(x, attn_mask=M_BC) on the last block (up to float rounding),
    and with a window, M_BC restricted to the last ``context`` tokens of each block's view."""
    from toyalgos.lm.diffusion.block import _cached_forward, _prompt_cache

    model, x = tiny(max_len=16), data(3, 16, seed=2)
    mask = block_diffusion_masks(16, 4).block_causal
    if context is not None:
        block = torch.arange(16) // 4
        mask = mask & (block[:, None] - block[None, :] < context // 4)
    full = model(x, attn_mask=mask)
    cache = _prompt_cache(model, x[:, :12], 4, None if context is None else context - 4)
    last = _cached_forward(model, x[:, 12:], torch.arange(12, 16), cache)[0]
    assert torch.allclose(last, full[:, 12:], atol=1e-5)


def test_a_context_window_forgets_old_blocks_and_the_whole_window_is_no_window():
    model = tiny(max_len=16, learned_positions=False)
    kw = dict(gen_length=12, block_size=2, steps=2, mask_id=MASK, temperature=0.0)
    free = bd3_generate(model, data(8, 4, seed=3), **kw).x
    assert torch.equal(bd3_generate(model, data(8, 4, seed=3), context=16, **kw).x, free)
    # with a window of one block, a block sees nothing before it: the prompt cannot matter
    a = bd3_generate(model, data(8, 4, seed=3), context=2, **kw).x[:, 4:]
    b = bd3_generate(model, data(8, 4, seed=4), context=2, **kw).x[:, 4:]
    assert torch.equal(a, b)


def test_blocks_are_generated_left_to_right_and_beyond_the_training_length():
    model = tiny(max_len=24, learned_positions=False)
    out = bd3_generate(
        model,
        data(2, 0),
        gen_length=24,
        block_size=4,
        steps=2,
        mask_id=MASK,
        generator=gen(0),
        return_trajectory=True,
    )
    masked = out.trajectory == MASK  # (13, 2, 24)
    for s in range(1, 13):
        done = ((s - 1) // 2) * 4  # blocks finished before this step's block
        assert not masked[s, :, :done].any() and masked[s, :, done + 4 :].all()
    assert out.x.shape == (2, 24) and not (out.x == MASK).any()


def test_one_step_per_block_unmasks_everything_and_steps_past_block_size_are_fine():
    model = tiny()
    for steps in (1, 7):
        out = bd3_generate(
            model, data(3, 0), gen_length=8, block_size=4, steps=steps, mask_id=MASK, generator=gen(1)
        )
        assert not (out.x == MASK).any() and out.nfe == 2 * steps


def test_sampler_is_deterministic_per_generator_and_keeps_the_mode():
    model = tiny().train()
    kw = dict(gen_length=8, block_size=4, steps=2, mask_id=MASK)
    a = bd3_generate(model, data(4, 4), generator=gen(2), **kw)
    b = bd3_generate(model, data(4, 4), generator=gen(2), **kw)
    c = bd3_generate(model, data(4, 4), generator=gen(3), **kw)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert model.training


# ------------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors():
    model, x = tiny(), data(4, 8)
    loss = lambda **kw: bd3_loss(model, x, **{"block_size": 2, "mask_id": MASK, **kw})  # noqa: E731
    with pytest.raises(ValueError, match="divide"):
        loss(block_size=3)
    with pytest.raises(ValueError, match="beta < omega"):
        loss(beta=0.5, omega=0.5)
    with pytest.raises(ValueError, match="beta < omega"):
        loss(beta=0.8, omega=0.3)
    with pytest.raises(ValueError, match="omega"):
        loss(omega=1.5)
    with pytest.raises(ValueError, match="beta"):
        loss(beta=-0.1)
    with pytest.raises(ValueError, match="t must"):
        loss(t=0.0)
    with pytest.raises(ValueError, match="mask token"):
        bd3_loss(model, torch.where(x == x[0, 0], MASK, x), block_size=2, mask_id=MASK)
    with pytest.raises(ValueError, match="token ids"):
        bd3_loss(model, x + V, block_size=2, mask_id=MASK)
    with pytest.raises(ValueError, match="bidirectional"):
        bd3_loss(Transformer(TransformerConfig(V, 16, 1, 2, causal=True)), x, block_size=2, mask_id=MASK)
    with pytest.raises(TypeError, match="generator"):
        loss(generator=0)
    with pytest.raises(ValueError, match="n_samples"):
        bd3_nelbo(model, x, block_size=2, mask_id=MASK, n_samples=0)
    with pytest.raises(ValueError, match="divide"):
        block_diffusion_masks(8, 3)
    with pytest.raises(ValueError, match="max_len"):
        bd3_loss(tiny(max_len=12), x, block_size=2, mask_id=MASK)

    gen_kw = dict(gen_length=8, block_size=4, steps=2, mask_id=MASK)
    with pytest.raises(ValueError, match="steps"):
        bd3_generate(model, data(2, 4), **{**gen_kw, "steps": 0})
    with pytest.raises(ValueError, match="multiple of block_size"):
        bd3_generate(model, data(2, 4), **{**gen_kw, "gen_length": 6})
    with pytest.raises(ValueError, match="multiple of block_size"):
        bd3_generate(model, data(2, 3), **gen_kw)
    with pytest.raises(ValueError, match="mask token"):
        bd3_generate(model, torch.full((2, 4), MASK), **gen_kw)
    with pytest.raises(ValueError, match="token ids"):
        bd3_generate(model, data(2, 4) + V, **gen_kw)
    with pytest.raises(ValueError, match="max_len"):
        bd3_generate(model, data(2, 4), **{**gen_kw, "gen_length": 32})
    with pytest.raises(ValueError, match="context"):
        bd3_generate(model, data(2, 4), **{**gen_kw, "context": 6})
    with pytest.raises(ValueError, match="context"):
        bd3_generate(model, data(2, 4), **{**gen_kw, "context": 0})


# --------------------------------------------------------------------------------- claims


@pytest.fixture(scope="module")
def markov():
    source = MarkovSource.random(generator=gen(0))
    return source, source.sample(400, 8, generator=gen(1))


def test_nelbo_falls_with_block_size_holds_for_an_ordered_chain():
    base = torch.rand(500, generator=gen(0))
    ordered = [base + 0.2, base + 0.1, base]  # L' = L, 16, 4
    assert nelbo_falls_with_block_size(ordered, ["L", "16", "4"]).holds


def test_nelbo_falls_with_block_size_fails_on_equal_models_and_on_a_reversed_order():
    base = torch.rand(500, generator=gen(0))
    noise = lambda s: 0.05 * torch.randn(500, generator=gen(s))  # noqa: E731
    equal = [base + noise(1), base + noise(2), base + noise(3)]  # one model scored three times
    assert not nelbo_falls_with_block_size(equal, ["L", "16", "4"]).holds
    assert not nelbo_falls_with_block_size([base, base + 0.1, base + 0.2], ["L", "16", "4"]).holds
    with pytest.raises(ValueError, match="same sequences"):
        nelbo_falls_with_block_size([base, base[:10]], ["a", "b"])


def test_nll_matches_ar_fails_on_an_untrained_network_and_holds_near_the_truth(markov):
    source, x = markov
    torch.manual_seed(0)
    untrained = Transformer(TransformerConfig(source.tokenizer.vocab_size, 16, 1, 2, max_len=16))
    bad = bd3_nelbo(untrained, x, block_size=1, mask_id=source.tokenizer.mask_id, t=1.0).per_sequence
    exact = -source.log_prob(x) / 8  # the true NLL per token of each sequence
    assert nll_matches_ar(exact * 1.01, exact, bound=0.02).holds
    assert not nll_matches_ar(bad, exact, bound=0.02).holds
    assert not nll_matches_ar(exact * 0.95, exact, bound=0.02).holds  # too good is as wrong


def test_clipped_variance_ratio_fails_when_both_use_the_same_schedule():
    model, x = tiny(), data(32, 8)

    def losses(b, o, seed):
        g = gen(seed)
        return torch.stack(
            [
                torch.stack(
                    [
                        bd3_loss(model, x[k::2], block_size=4, mask_id=MASK, beta=b, omega=o, generator=g)
                        for _ in range(96)
                    ]
                )
                for k in range(2)
            ]
        ).detach()  # (2 batches, 96 draws)

    full, clipped, again = losses(1e-3, 1.0, 0), losses(0.3, 0.8, 0), losses(1e-3, 1.0, 1)
    assert clipped_variance_ratio(clipped, full, bound=0.7).holds
    assert not clipped_variance_ratio(again, full, bound=0.7).holds  # no clipping at all
    assert not clipped_variance_ratio(full, clipped, bound=0.7).holds  # the schedules swapped
    with pytest.raises(ValueError, match="two losses"):
        clipped_variance_ratio(full[:, :1], full)


def test_same_tokens_holds_for_cache_and_recompute():
    model = tiny(max_len=16)
    kw = dict(gen_length=8, block_size=2, steps=2, mask_id=MASK)
    a = bd3_generate(model, data(20, 0), kv_cache=True, generator=gen(0), **kw).x
    b = bd3_generate(model, data(20, 0), kv_cache=False, generator=gen(0), **kw).x
    assert same_tokens(a, b).holds


def test_same_tokens_fails_on_different_seeds():
    model = tiny(max_len=16)
    kw = dict(gen_length=8, block_size=2, steps=2, mask_id=MASK, kv_cache=False)
    a = bd3_generate(model, data(20, 0), generator=gen(0), **kw).x
    c = bd3_generate(model, data(20, 0), generator=gen(1), **kw).x
    assert not same_tokens(a, c).holds
    with pytest.raises(ValueError, match="shape"):
        same_tokens(a, c[:, :4])
