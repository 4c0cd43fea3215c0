"""The shared pieces behind the conventions: checks, evaluating, numpy_rng and the result types."""

import numpy as np
import pytest
import torch
from torch import nn

from toyalgos.core import Samples, evaluating, numpy_rng
from toyalgos.core.checks import (
    check_choice,
    check_generator,
    check_nonnegative_int,
    check_number,
    check_positive_int,
    check_same_length,
    check_tensor,
)


def test_int_checks():
    assert check_positive_int(3, "steps") == 3
    assert check_nonnegative_int(0, "k") == 0
    for bad in [0, -1, 2.0, True, "3"]:
        with pytest.raises(ValueError, match=r"steps must be a positive int, got"):
            check_positive_int(bad, "steps")
    with pytest.raises(ValueError, match="k must be an int >= 0, got -1"):
        check_nonnegative_int(-1, "k")


def test_number_check_bounds_and_kinds():
    assert check_number(1, "lr", 0, low_open=True) == 1.0
    assert isinstance(check_number(1, "lr"), float)
    assert check_number(0.0, "p", 0, 1) == 0.0
    with pytest.raises(ValueError, match=r"p must lie in \(0, 1\], got 0"):
        check_number(0, "p", 0, 1, low_open=True)
    with pytest.raises(ValueError, match=r"decay must lie in \(0, 1\), got 1"):
        check_number(1, "decay", 0, 1, low_open=True, high_open=True)
    with pytest.raises(ValueError, match=r"t must lie in \[0, inf\)"):
        check_number(-0.5, "t", 0)
    with pytest.raises(TypeError, match="t must be a number, got str"):
        check_number("0.5", "t")
    with pytest.raises(TypeError, match="number"):
        check_number(True, "t")


def test_choice_tensor_and_length_checks():
    assert check_choice("heun", "solver", ("euler", "heun")) == "heun"
    with pytest.raises(ValueError, match=r"solver must be one of \['euler', 'heun'\], got 'rk4'"):
        check_choice("rk4", "solver", ("euler", "heun"))
    x = torch.zeros(2, 3, dtype=torch.long)
    assert check_tensor(x, "x", dim=2, dtype=torch.long) is x
    assert check_tensor(torch.zeros(2), "y", dim=(1, 2), dtype="float") is not None
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        check_tensor([1], "x")
    with pytest.raises(ValueError, match=r"x must have 3 dimensions, got shape \(2, 3\)"):
        check_tensor(x, "x", dim=3)
    with pytest.raises(TypeError, match="floating-point"):
        check_tensor(x, "x", dtype="float")
    with pytest.raises(TypeError, match="dtype torch.float32"):
        check_tensor(x, "x", dtype=torch.float32)
    with pytest.raises(ValueError, match="same number of rows, got 2 and 3"):
        check_same_length("a", torch.zeros(2), "b", torch.zeros(3))


def test_generator_check():
    g = torch.Generator()
    assert check_generator(g) is g and check_generator(None) is None
    for bad in [0, np.random.default_rng(0), "g"]:
        with pytest.raises(TypeError, match="generator must be a torch.Generator or None"):
            check_generator(bad)


def test_evaluating_restores_each_submodule_and_disables_grad():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2))
    model[2].eval()  # a mixed state must come back exactly
    before = [m.training for m in model.modules()]
    with evaluating(model):
        assert not any(m.training for m in model.modules())
        assert not torch.is_grad_enabled()
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError), evaluating(model):
        raise RuntimeError("restored on errors too")
    assert [m.training for m in model.modules()] == before
    with evaluating(lambda x: x):  # any callable is accepted; nothing to switch
        pass


def test_numpy_rng_follows_the_torch_generator():
    a = numpy_rng(torch.Generator().manual_seed(3)).normal(size=4)
    b = numpy_rng(torch.Generator().manual_seed(3)).normal(size=4)
    c = numpy_rng(torch.Generator().manual_seed(4)).normal(size=4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - NumPy's global state is untouched
    numpy_rng(torch.Generator().manual_seed(3)).normal(size=4)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_samples_is_a_stable_named_tuple():
    out = Samples(torch.zeros(2), 5)
    x, nfe, trajectory = out
    assert nfe == 5 and trajectory is None and out._fields == ("x", "nfe", "trajectory")
