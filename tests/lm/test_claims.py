"""The language-model claims pass the Bayes-optimal predictor (or a real answer) and fail each
known-bad case: an untrained network, a uniform guess, a pseudo-likelihood, two equal samplers,
random remasking's order, answers that belong to other facts."""

import math

import pytest
import torch

from toyalgos.lm import (
    MarkovOracle,
    MarkovSource,
    add_bos,
    ar_nll,
    mdm_generate,
    mdm_nll_bound,
    unmasking_steps,
)
from toyalgos.lm.claims import (
    bound_close_to_ar_nll,
    exact_answers,
    left_to_right_share,
    more_valid_samples,
    nll_close_to_entropy,
    nll_not_below_entropy,
)
from toyalgos.nn import Transformer, TransformerConfig

L = 12


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def setup():
    source = MarkovSource.random(generator=gen(0))
    tok = source.tokenizer
    x = source.sample(300, L, generator=gen(1))
    torch.manual_seed(0)
    untrained = Transformer(TransformerConfig(tok.vocab_size, 16, 1, 2, max_len=L + 1, causal=False)).eval()
    return {
        "source": source,
        "x": x,
        "entropy": source.entropy_per_token(L),
        "ar_nll": ar_nll(MarkovOracle(source, causal=True), add_bos(x, tok.bos_id)),
        "oracle_bound": mdm_nll_bound(
            MarkovOracle(source), x, mask_id=tok.mask_id, n_samples=32, generator=gen(2)
        ),
        "untrained_bound": mdm_nll_bound(untrained, x, mask_id=tok.mask_id, n_samples=8, generator=gen(2)),
    }


def test_the_oracle_passes_the_likelihood_claims(setup):
    s = setup
    for claim in [
        bound_close_to_ar_nll(s["oracle_bound"], s["ar_nll"]),
        nll_close_to_entropy(s["ar_nll"], s["entropy"], bound=1.05),
        nll_close_to_entropy(s["oracle_bound"], s["entropy"], bound=1.05),
        nll_not_below_entropy(s["ar_nll"], s["entropy"]),
        nll_not_below_entropy(s["oracle_bound"], s["entropy"]),
    ]:
        assert claim.holds, claim


def test_bound_close_to_ar_nll_fails_for_an_untrained_model(setup):
    claim = bound_close_to_ar_nll(setup["untrained_bound"], setup["ar_nll"])
    assert not claim.holds and claim.value > 2


def test_nll_close_to_entropy_fails_for_a_uniform_guess_and_an_untrained_model(setup):
    s = setup
    uniform = torch.full((300,), math.log(s["source"].n_states))
    assert not nll_close_to_entropy(uniform, s["entropy"]).holds
    assert not nll_close_to_entropy(s["untrained_bound"], s["entropy"]).holds


def test_nll_not_below_entropy_fails_for_a_pseudo_likelihood(setup):
    """-log p(x^i | all other tokens), even from the Bayes-optimal predictor, is not a likelihood:
    each token is predicted from both neighbours, so its mean undercuts the entropy."""
    s = setup
    x, mask_id = s["x"], s["source"].tokenizer.mask_id
    eye = torch.eye(L, dtype=torch.bool)
    one_masked = torch.where(eye[None], mask_id, x[:, None]).reshape(-1, L)  # row (n, i): token i masked
    log_p = MarkovOracle(s["source"])(one_masked).log_softmax(-1).view(len(x), L, L, -1)
    pseudo = -log_p[:, eye].gather(-1, x[..., None])[..., 0].mean(1)  # (N,)
    claim = nll_not_below_entropy(pseudo, s["entropy"])
    assert not claim.holds and claim.value < -10


def test_nll_not_below_entropy_needs_one_value_per_sequence():
    with pytest.raises(ValueError, match="one value per sequence"):
        nll_not_below_entropy(torch.tensor([1.0]), 1.0)


def test_more_valid_samples_fails_for_equal_samplers(setup):
    s = setup
    noise = torch.randint(
        s["source"].tokenizer.offset, s["source"].tokenizer.vocab_size, (300, L), generator=gen(3)
    )
    assert s["source"].is_valid(s["x"]).all()
    assert more_valid_samples(s["x"], noise, s["source"]).holds
    claim = more_valid_samples(s["x"], s["x"], s["source"])
    assert not claim.holds and claim.value == 0.0
    assert not more_valid_samples(noise, s["x"], s["source"]).holds


def _orders(remasking, source, seed=0):
    prompts = source.sample(200, 4, generator=gen(seed))
    out = mdm_generate(
        MarkovOracle(source),
        prompts,
        steps=L,
        gen_length=L,
        remasking=remasking,
        mask_id=source.tokenizer.mask_id,
        generator=gen(seed),
        return_trajectory=True,
    )
    return unmasking_steps(out.trajectory, source.tokenizer.mask_id)


def test_left_to_right_share_fails_for_random_remasking(setup):
    order = _orders("random", setup["source"])
    claim = left_to_right_share(order)
    harmonic = sum(1 / n for n in range(1, L + 1)) / L  # E[share] when the kept token is random
    assert not claim.holds and claim.value == pytest.approx(harmonic, abs=0.04)


def test_left_to_right_share_of_hand_made_orders():
    prompt = torch.full((2, 2), -1)
    in_order = torch.cat([prompt, torch.arange(4).expand(2, 4)], 1)
    assert left_to_right_share(in_order).value == 1.0
    # positions unmasked in the order 1, 0, 3, 2: steps 0 and 2 skip the leftmost mask
    swapped = torch.cat([prompt, torch.tensor([[1, 0, 3, 2]] * 2)], 1)
    assert left_to_right_share(swapped).value == 0.5
    with pytest.raises(ValueError, match="one generated token per step"):
        left_to_right_share(torch.tensor([[0, 0, 1, 1]]))


def test_exact_answers_fails_on_the_answers_of_other_facts():
    truth = torch.randint(0, 10, (40, 3), generator=gen(4))
    assert exact_answers(truth, truth).holds
    claim = exact_answers(truth.roll(1, 0), truth)  # every answer is another fact's partner
    assert not claim.holds and claim.value < 0.1
    wrong_letter = truth.clone()
    wrong_letter[:, 2] = (wrong_letter[:, 2] + 1) % 10  # two letters of three right is still wrong
    assert exact_answers(wrong_letter, truth).value == 0.0
