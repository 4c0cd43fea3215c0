"""DeepSeekMoE and loss-free balancing: the gate, Eq. 16, Eqs. 17-20, MaxVio, the layer against a
loop over tokens and experts, the Transformer part, the domain corpus, bad input, determinism and
the notebook's claims."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from toyalgos.core import Loss, seed_everything, train
from toyalgos.lm import MarkovSource, add_bos, ar_loss
from toyalgos.lm.claims import balances_worse, loss_close_to_baseline, loss_cost_at_least, maxvio_reduced
from toyalgos.lm.deepseek import (
    DomainMixture,
    MoE,
    RoutingLog,
    balance_term,
    bias_update,
    expert_counts,
    expert_load,
    max_violation,
    moe_ar_loss,
    moe_feed_forward,
    moe_layers,
    route_tokens,
)
from toyalgos.nn import Transformer, TransformerConfig

# ------------------------------------------------------------------------------- the gate


def test_selection_uses_biased_scores_and_gates_use_unbiased_ones():
    s = torch.tensor([[0.9, 0.8, 0.1, 0.2]])
    bias = torch.tensor([0.0, 0.0, 1.0, 0.0])  # lifts expert 2 into the top 2 (0.1 + 1 > 0.8)
    weights, indices = route_tokens(s, bias, 2)
    assert indices.tolist() == [[2, 0]]
    assert torch.allclose(weights, torch.tensor([[0.1 / 1.0, 0.9 / 1.0]]))  # s, not s + b, normalised
    unbiased = route_tokens(s, torch.zeros(4), 2)
    assert unbiased.indices.tolist() == [[0, 1]]
    assert torch.allclose(unbiased.weights, torch.tensor([[0.9 / 1.7, 0.8 / 1.7]]))


def test_gates_sum_to_route_scale_and_the_bias_takes_no_gradient():
    logits = torch.randn(20, 8, requires_grad=True)
    bias = torch.randn(8, requires_grad=True)
    weights, _ = route_tokens(logits.sigmoid(), bias, 3, route_scale=2.5)
    assert torch.allclose(weights.sum(-1), torch.full((20,), 2.5))
    weights.square().sum().backward()
    assert bias.grad is None and logits.grad.abs().sum() > 0


def test_group_limited_routing_picks_experts_only_in_the_best_groups():
    # 8 experts in 4 groups of 2; a group's score is the sum of its best K / topk_groups scores
    s = torch.tensor([[0.1, 0.2, 0.9, 0.3, 0.8, 0.85, 0.4, 0.1]])
    r = route_tokens(s, torch.zeros(8), 2, n_groups=4, topk_groups=2)  # best 1 per group: 0.2 0.9 0.85 0.4
    assert sorted(r.indices[0].tolist()) == [2, 5]  # groups 1 and 2 kept; 0.9 and 0.85 win in them
    r = route_tokens(s, torch.zeros(8), 2, n_groups=4, topk_groups=1)  # best 2 per group: 0.3 1.2 1.65 0.5
    assert sorted(r.indices[0].tolist()) == [4, 5]  # group 2 only, though expert 2 has the top score


# ------------------------------------------------------------------------------ balancing


def test_bias_moves_in_the_sign_of_the_load_error():
    load = torch.tensor([10.0, 2.0, 6.0, 6.0])  # mean 6: overloaded, underloaded, on target twice
    new = bias_update(torch.tensor([0.5, 0.5, 0.5, -0.5]), load, 1e-3)
    assert torch.allclose(new, torch.tensor([0.5 - 1e-3, 0.5 + 1e-3, 0.5, -0.5]))
    assert torch.equal(bias_update(torch.zeros(4), load, 0.0), torch.zeros(4))


def test_forward_in_training_mode_updates_the_bias_once_and_eval_never():
    torch.manual_seed(0)
    moe = MoE(8, 6, 2, 4, gamma=0.01)
    h = torch.randn(3, 10, 8)
    with torch.no_grad():
        moe.eval()
        moe(h)
        assert torch.equal(moe.bias, torch.zeros(6))
        moe.train()
        moe(h)
    load = moe.last_load
    assert load.sum() == 3 * 10 * 2
    assert torch.allclose(moe.bias, 0.01 * torch.sign(load.mean() - load))


def test_one_bias_update_per_training_step_under_core_train():
    torch.manual_seed(0)
    config = TransformerConfig(16, d_model=16, n_layers=2, n_heads=2, max_len=9, causal=True, mlp_ratio=1)
    model = Transformer(config, feed_forward=moe_feed_forward(4, 2, 8, gamma=1e-2))
    data = torch.randint(5, 16, (64, 9), generator=torch.Generator().manual_seed(1))
    with RoutingLog(model) as log:
        train(model, moe_ar_loss, data, steps=7, batch_size=8, progress=False)
    expert_load(model, data)  # evaluation after training: recorded nowhere, moves nothing
    assert log.load.shape == log.bias.shape == (7, 2, 4)
    assert torch.allclose(log.load.sum(-1), torch.full((7, 2), 8 * 8 * 2.0))
    steps = 1e-2 * torch.sign(log.load.mean(-1, keepdim=True) - log.load)  # Eq. 16, step by step
    assert torch.allclose(log.bias, steps.cumsum(0), atol=1e-6)
    assert torch.allclose(torch.stack([m.bias for m in moe_layers(model)]), log.bias[-1])


def test_bias_update_in_forward_equals_updating_after_the_optimiser_step():
    # Wang et al. Alg. 1 orders a step as: route, backward, optimiser step, then b from the batch's
    # load. The layer moves b at the end of its forward instead; the weights and biases must agree.
    def run(gamma_in_layer: bool) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        moe = MoE(8, 6, 2, 4, gamma=1e-2 if gamma_in_layer else 0.0)
        head = torch.nn.Linear(8, 1)
        opt = torch.optim.Adam([*moe.parameters(), *head.parameters()], lr=1e-2)
        g = torch.Generator().manual_seed(1)
        for _ in range(20):
            h = torch.randn(4, 5, 8, generator=g)
            loss = head(moe(h)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not gamma_in_layer:
                moe.bias.copy_(bias_update(moe.bias, moe.last_load, 1e-2))
        return moe.gate.weight.detach(), moe.bias.clone()

    (w_forward, b_forward), (w_after, b_after) = run(True), run(False)
    assert b_forward.abs().sum() > 0
    assert torch.equal(b_forward, b_after)
    assert torch.equal(w_forward, w_after)


def _balance_by_hand(scores: torch.Tensor, indices: torch.Tensor, alpha: float) -> float:
    """Eqs. 17-20 with loops: f_i = N_r / (K_r T) sum_t 1[i selected], P_i = mean_t s'_{i,t}."""
    N, T, E = scores.shape
    K = indices.shape[-1]
    total = 0.0
    for n in range(N):
        loss = 0.0
        for i in range(E):
            f = E / (K * T) * sum(1.0 for t in range(T) if i in indices[n, t].tolist())
            P = sum(scores[n, t, i].item() / scores[n, t].sum().item() for t in range(T)) / T
            loss += f * P
        total += alpha * loss
    return total / N


def test_balance_term_equals_eqs_17_to_20_by_hand():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(3, 7, 5, generator=g)
    indices = torch.rand(3, 7, 5, generator=g).topk(2, dim=-1).indices
    assert balance_term(scores, indices, alpha=0.3).item() == pytest.approx(
        _balance_by_hand(scores, indices, 0.3), rel=1e-6
    )


def test_balance_term_is_alpha_under_perfect_balance_and_larger_when_skewed():
    # 4 experts, top-1, 4 tokens each to its own expert with uniform scores: f = 1, P = 1/4
    scores = torch.full((1, 4, 4), 0.5)
    balanced = torch.arange(4).view(1, 4, 1)
    assert balance_term(scores, balanced, alpha=0.1).item() == pytest.approx(0.1)
    skewed_scores = torch.tensor([[[0.9, 0.1, 0.1, 0.1]] * 4])
    skewed = torch.zeros(1, 4, 1, dtype=torch.long)
    assert balance_term(skewed_scores, skewed, alpha=0.1).item() > 0.2


def test_moe_layer_computes_the_balance_term_per_sequence():
    torch.manual_seed(0)
    moe = MoE(8, 6, 2, 4, alpha=0.2)
    h = torch.randn(3, 5, 8)
    moe(h)
    x = h.reshape(-1, 8)
    scores, routing = moe.route(x)
    expected = balance_term(scores.view(3, 5, 6), routing.indices.view(3, 5, 2), alpha=0.2)
    assert torch.allclose(moe.last_balance, expected)


def test_max_violation_of_balanced_and_known_loads():
    assert max_violation(torch.full((16,), 7.0)) == 0.0
    assert max_violation(torch.tensor([1.0, 2.0, 3.0, 6.0])) == pytest.approx(1.0)  # (6 - 3) / 3
    assert max_violation(torch.tensor([0.0, 0.0, 0.0, 5.0])) == pytest.approx(3.0)  # E - 1
    two_layers = torch.tensor([[1.0, 2.0, 3.0, 6.0], [4.0, 4.0, 4.0, 4.0]])
    assert max_violation(two_layers) == pytest.approx(0.5)  # the mean over layers


def test_expert_counts_counts_every_slot():
    indices = torch.tensor([[0, 2], [2, 3], [2, 0]])
    assert expert_counts(indices, 5).tolist() == [2.0, 0.0, 3.0, 1.0, 0.0]


# ------------------------------------------------------------------------------ the layer


def _swiglu(x, w1, w3, w2):
    return (F.silu(x @ w1) * (x @ w3)) @ w2


def _moe_by_loops(moe: MoE, h: torch.Tensor) -> torch.Tensor:
    """Eqs. 12-15 one token and one expert at a time, with the same weights."""
    x = h.reshape(-1, h.shape[-1])
    E, K = moe.n_experts, moe.top_k
    out = torch.zeros_like(x)
    for t in range(len(x)):
        logits = moe.gate.weight @ x[t]
        s = logits.sigmoid() if moe.affinity == "sigmoid" else logits.softmax(0)
        sel = s + moe.bias
        allowed = list(range(E))
        if moe.n_groups > 1:
            size = E // moe.n_groups
            per_group = min(max(1, K // moe.topk_groups), size)
            group_score = [
                sorted(sel[g * size : (g + 1) * size].tolist())[-per_group:] for g in range(moe.n_groups)
            ]
            best = sorted(range(moe.n_groups), key=lambda g: -sum(group_score[g]))[: moe.topk_groups]
            allowed = [i for i in range(E) if i // size in best]
        chosen = sorted(allowed, key=lambda i: -sel[i].item())[:K]
        z = sum(s[i] for i in chosen)
        for i in chosen:
            out[t] += moe.route_scale * s[i] / z * _swiglu(x[t], moe.w1[i], moe.w3[i], moe.w2[i])
        sh = moe.shared
        out[t] += _swiglu(x[t], sh.w1.weight.T, sh.w3.weight.T, sh.w2.weight.T)
    return out.view(h.shape)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"affinity": "softmax", "route_scale": 2.5},
        {"n_groups": 4, "topk_groups": 2},
        {"n_shared": 2, "n_groups": 2, "topk_groups": 1},
    ],
)
def test_moe_layer_equals_a_loop_over_tokens_and_experts(options):
    torch.manual_seed(0)
    moe = MoE(6, 8, 3, 5, **options)
    with torch.no_grad():
        for w in (moe.w1, moe.w2, moe.w3, moe.gate.weight):
            w.normal_(0, 0.5, generator=torch.Generator().manual_seed(w.numel()))
        moe.bias.copy_(torch.randn(8, generator=torch.Generator().manual_seed(3)) * 0.3)
    h = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(moe(h), _moe_by_loops(moe, h), atol=1e-5)


def test_moe_gradients_reach_the_gate_and_the_selected_experts_only():
    torch.manual_seed(0)
    moe = MoE(6, 8, 2, 5)  # top-1 would give every gate 1: no gradient to the router
    x = torch.randn(4, 6)
    moe(x).square().sum().backward()
    used = expert_counts(moe.route(x)[1].indices, 8) > 0
    touched = moe.w1.grad.abs().sum((1, 2)) > 0
    assert torch.equal(touched, used) and moe.gate.weight.grad.abs().sum() > 0


def test_moe_as_the_transformers_feed_forward_part():
    torch.manual_seed(0)
    config = TransformerConfig(12, d_model=16, n_layers=3, n_heads=2, max_len=8, causal=True)
    model = Transformer(config, feed_forward=moe_feed_forward(8, 2, 4, alpha=0.1))
    x = torch.randint(0, 12, (4, 8), generator=torch.Generator().manual_seed(0))
    assert model(x).shape == (4, 8, 12)
    layers = moe_layers(model)
    assert len(layers) == 3 and all(isinstance(b.feed_forward, MoE) for b in model.blocks)
    out = moe_ar_loss(model, x)
    assert isinstance(out, Loss)
    assert torch.allclose(out.terms["ce"], ar_loss(model, x))
    assert torch.allclose(out.total, out.terms["ce"] + sum(m.last_balance for m in layers))
    assert out.terms["balance"] > 0
    load = expert_load(model, x, batch_size=3)
    assert load.shape == (3, 8) and torch.allclose(
        load.sum(-1), torch.full((3,), 4 * 8 * 2.0, dtype=load.dtype)
    )


def test_the_balance_loss_reaches_the_gate_through_the_training_loss():
    x = torch.randint(0, 12, (4, 8), generator=torch.Generator().manual_seed(0))
    grads = {}
    for alpha in (0.0, 1.0):
        torch.manual_seed(0)
        config = TransformerConfig(12, d_model=16, n_layers=1, n_heads=2, max_len=8, causal=True)
        model = Transformer(config, feed_forward=moe_feed_forward(8, 2, 4, alpha=alpha))
        moe_ar_loss(model, x).total.backward()
        grads[alpha] = moe_layers(model)[0].gate.weight.grad.clone()
    assert not torch.allclose(grads[0.0], grads[1.0])


def test_same_seed_same_training():
    def run():
        g = seed_everything(3)
        data = DomainMixture.random(2, 6, generator=g)
        x = add_bos(data.sample(32, 8, generator=g).x, data.tokenizer.bos_id)
        config = TransformerConfig(
            data.tokenizer.vocab_size, d_model=16, n_layers=1, n_heads=2, max_len=9, causal=True
        )
        model = Transformer(config, feed_forward=moe_feed_forward(4, 2, 8, alpha=0.01, gamma=1e-2))
        with RoutingLog(model) as log:
            history = train(model, moe_ar_loss, x, steps=5, batch_size=8, generator=g, progress=False)
        return history.loss, log.bias

    (loss_a, bias_a), (loss_b, bias_b) = run(), run()
    assert (loss_a == loss_b).all() and torch.equal(bias_a, bias_b)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("args", "options", "match"),
    [
        ((8, 9, 4), {}, "top_k"),
        ((8, 0, 4), {}, "top_k"),
        ((8, 2, 0), {}, "d_expert"),
        ((8, 2, 4), {"n_groups": 3}, "n_groups must divide"),
        ((8, 2, 4), {"n_groups": 4, "topk_groups": 5}, "topk_groups"),
        ((8, 6, 4), {"n_groups": 4, "topk_groups": 2}, "exceeds"),
        ((8, 2, 4), {"affinity": "relu"}, "affinity"),
        ((8, 2, 4), {"alpha": -0.1}, "alpha"),
        ((8, 2, 4), {"gamma": -1e-3}, "gamma"),
        ((8, 2, 4), {"n_shared": -1}, "n_shared"),
    ],
)
def test_bad_options_raise(args, options, match):
    with pytest.raises(ValueError, match=match):
        MoE(16, *args, **options)
    with pytest.raises(ValueError, match=match):
        moe_feed_forward(*args, **options)


def test_bad_inputs_raise():
    moe = MoE(8, 4, 2, 4)
    with pytest.raises(ValueError, match="dimensions"):
        moe(torch.randn(8))
    with pytest.raises(TypeError, match="floating"):
        moe(torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="top_k"):
        route_tokens(torch.rand(3, 4), torch.zeros(4), 5)
    with pytest.raises(ValueError, match="exceeds"):  # 6 experts wanted, 4 left in 2 groups of 2
        route_tokens(torch.rand(3, 8), torch.zeros(8), 6, n_groups=4, topk_groups=2)
    with pytest.raises(TypeError):
        max_violation([1.0, 2.0])
    with pytest.raises(ValueError, match="positive total"):
        max_violation(torch.zeros(4))
    with pytest.raises(ValueError, match="no MoE"):
        expert_load(
            Transformer(TransformerConfig(8, d_model=8, n_heads=2)), torch.zeros(1, 4, dtype=torch.long)
        )
    with pytest.raises(TypeError, match="number"):
        bias_update(torch.zeros(2), torch.ones(2), "0.1")


# --------------------------------------------------------------------------- domain corpus


def test_domain_mixture_log_prob_is_the_mixture_of_the_chains():
    g = torch.Generator().manual_seed(0)
    data = DomainMixture.random(3, 6, generator=g)
    batch = data.sample(50, 10, generator=g)
    by_hand = torch.tensor(
        [math.log(sum(math.exp(s.log_prob(x[None])[0].item()) / 3 for s in data.sources)) for x in batch.x]
    )
    assert torch.allclose(data.log_prob(batch.x), by_hand.double(), atol=1e-9)
    assert data.sources[0].is_valid(batch.x[batch.domain == 0]).all()
    assert torch.allclose(data.nll_per_token(batch.x), -data.log_prob(batch.x) / 10)


def test_domain_mixture_draws_domains_with_their_weights_and_is_deterministic():
    sources = [MarkovSource.random(5, generator=torch.Generator().manual_seed(k)) for k in range(2)]
    data = DomainMixture(sources, weights=[3.0, 1.0])
    a = data.sample(4000, 4, generator=torch.Generator().manual_seed(1))
    b = data.sample(4000, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.x, b.x) and torch.equal(a.domain, b.domain)
    assert abs(a.domain.float().mean().item() - 0.25) < 0.03


def test_domain_mixture_bad_input():
    with pytest.raises(TypeError):
        DomainMixture([])
    with pytest.raises(ValueError, match="alphabet"):
        DomainMixture([MarkovSource.random(5), MarkovSource.random(6)])
    with pytest.raises(ValueError, match="weights"):
        DomainMixture([MarkovSource.random(5)] * 2, weights=[1.0, -1.0])


# ---------------------------------------------------------------------------------- claims


def test_maxvio_reduced_holds_for_a_balanced_load():
    assert maxvio_reduced(torch.tensor([9.8, 10.4, 10.0, 9.8]), torch.tensor([20.0, 10.0, 5.0, 5.0])).holds


def test_maxvio_reduced_fails_on_the_baseline_itself():
    skewed = torch.tensor([20.0, 10.0, 5.0, 5.0])
    assert not maxvio_reduced(skewed, skewed).holds
    assert not maxvio_reduced(torch.tensor([[18.0, 12.0, 5.0, 5.0]]), skewed[None]).holds  # a little better


def test_balances_worse_holds_for_an_oscillating_router():
    assert balances_worse(torch.tensor([16.0, 8.0, 8.0, 8.0]), torch.tensor([11.0, 10.0, 10.0, 9.0])).holds


def test_balances_worse_fails_on_equal_settings():
    load = torch.tensor([11.0, 10.0, 10.0, 9.0])
    assert not balances_worse(load, load).holds


def test_loss_close_to_baseline_holds_within_and_below():
    assert (
        loss_close_to_baseline(1.01, 1.0).holds
        and loss_close_to_baseline(torch.tensor([0.9, 0.95]), 1.0).holds
    )


def test_loss_close_to_baseline_fails_on_an_untrained_model():
    untrained = math.log(17)  # a uniform guess over 17 tokens
    assert not loss_close_to_baseline(untrained, 1.0).holds


def test_loss_cost_at_least_holds_for_a_costly_setting():
    assert loss_cost_at_least(torch.tensor([1.03, 1.05]), torch.tensor([1.0, 1.0])).holds


def test_loss_cost_at_least_fails_on_equal_models():
    nll = torch.tensor([1.0, 1.1, 0.9])
    assert not loss_cost_at_least(nll, nll).holds
    assert not loss_cost_at_least(0.99, 1.0).holds  # better, not costlier
