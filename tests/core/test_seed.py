import random

import numpy as np
import pytest
import torch
from torch import nn

from toyalgos.core import get_device, model_device, seed_everything


def _draws():
    return random.random(), np.random.rand(), torch.rand(3).tolist()  # noqa: NPY002


def test_same_seed_same_numbers_everywhere():
    g1 = seed_everything(123)
    a = _draws(), torch.rand(2, generator=g1).tolist()
    g2 = seed_everything(123)
    b = _draws(), torch.rand(2, generator=g2).tolist()
    assert a == b


def test_different_seed_different_numbers():
    seed_everything(1)
    a = _draws()
    seed_everything(2)
    assert _draws() != a


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_out_of_range(seed):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(seed)


@pytest.mark.parametrize("seed", [1.5, "0", True])
def test_seed_wrong_type(seed):
    with pytest.raises(TypeError, match="seed"):
        seed_everything(seed)


def test_get_device():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")
    with pytest.raises(TypeError):
        get_device(3)


def test_model_device():
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")  # no parameters
    assert model_device(lambda x: x) == torch.device("cpu")  # a plain function
    if torch.cuda.is_available():
        assert model_device(nn.Linear(2, 2).cuda()).type == "cuda"
