import pytest
import torch
import torch.nn.functional as F

from toyalgos.lm import SubsParameterization, loglinear_noise, mdlm_loss, mdm_loss, subs_logits
from toyalgos.nn import Transformer, TransformerConfig

V, MASK = 10, 1


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny(seed=0):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(V, d_model=16, n_layers=1, n_heads=2, max_len=32))


def data(seed=0):
    return torch.randint(2, V, (16, 20), generator=gen(seed))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mdlm_loglinear_equals_llada_at_eps_zero(seed):
    net = tiny(seed)
    x = data(seed)
    mdlm = mdlm_loss(
        net, x, mask_id=MASK, noise=loglinear_noise(0.0), sampling_eps=0.0, generator=gen(10 + seed)
    )
    llada = mdm_loss(SubsParameterization(net, MASK), x, mask_id=MASK, eps=0.0, generator=gen(10 + seed))
    assert abs(mdlm.item() - llada.item()) < 1e-6


def test_without_subs_the_two_losses_differ():
    """LLaDA's loss on the raw logits gives the mask token some probability; MDLM's SUBS does not."""
    net, x = tiny(), data()
    mdlm = mdlm_loss(net, x, mask_id=MASK, noise=loglinear_noise(0.0), sampling_eps=0.0, generator=gen(3))
    llada = mdm_loss(net, x, mask_id=MASK, eps=0.0, generator=gen(3))
    assert llada.item() > mdlm.item() + 1e-3


def test_subs_never_predicts_the_mask_and_copies_visible_tokens():
    logits = torch.randn(2, 5, V, generator=gen(0))
    x_t = torch.tensor([[MASK, 3, 4, MASK, 9], [2, MASK, MASK, 7, 8]])
    log_p = subs_logits(logits, x_t, MASK)
    assert torch.isneginf(log_p[..., MASK]).all()
    visible = x_t != MASK
    assert (log_p[visible].exp().argmax(-1) == x_t[visible]).all()
    assert torch.allclose(log_p[visible].exp().sum(-1), torch.ones(visible.sum()))
    expected = F.log_softmax(torch.cat([logits[..., :MASK], logits[..., MASK + 1 :]], -1), -1)
    masked = ~visible
    assert torch.allclose(
        torch.cat([log_p[..., :MASK], log_p[..., MASK + 1 :]], -1)[masked], expected[masked]
    )


def test_mdlm_loss_is_deterministic_trains_and_has_finite_gradients():
    net, x = tiny(), data()
    a = mdlm_loss(net, x, mask_id=MASK, generator=gen(1))
    b = mdlm_loss(net, x, mask_id=MASK, generator=gen(1))
    assert torch.equal(a, b)
    a.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_mdlm_bad_input():
    net = tiny()
    with pytest.raises(ValueError):
        mdlm_loss(net, data(), mask_id=MASK, sampling_eps=1.0)
    with pytest.raises(TypeError):
        mdlm_loss(net, data(), mask_id=MASK, noise="loglinear")
    with pytest.raises(TypeError):
        mdlm_loss(net, data().float(), mask_id=MASK)
