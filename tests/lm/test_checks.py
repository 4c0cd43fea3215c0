import pytest
import torch

from toyalgos.lm import check_tokens, gumbel_argmax


def test_check_tokens_accepts_a_batch_and_names_the_argument():
    x = torch.zeros(2, 3, dtype=torch.long)
    assert check_tokens(x) is x
    with pytest.raises(TypeError, match="prompt must be a torch.Tensor, got list"):
        check_tokens([[1]], "prompt")
    with pytest.raises(TypeError, match="x must have dtype torch.int64, got dtype torch.float32"):
        check_tokens(x.float())
    with pytest.raises(ValueError, match=r"x must have shape \(N, L\), got shape \(3,\)"):
        check_tokens(x[0])
    with pytest.raises(ValueError, match="at least 4 token"):
        check_tokens(x, min_length=4)


def test_gumbel_argmax_samples_the_softmax():
    logits = torch.tensor([0.0, 1.0, 2.0]).log_softmax(-1).expand(20_000, 3)
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(gumbel_argmax(logits, 1.0, generator=g), minlength=3).double() / 20_000
    assert torch.allclose(counts, logits[0].double().softmax(-1), atol=0.015)
    assert (gumbel_argmax(logits, 0.0) == 2).all()  # temperature 0: the argmax
    hot = torch.bincount(gumbel_argmax(logits, 0.5, generator=g), minlength=3).double() / 20_000
    assert torch.allclose(hot, (logits[0].double() / 0.5).softmax(-1), atol=0.015)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        gumbel_argmax(logits, 1.0, generator=0)
