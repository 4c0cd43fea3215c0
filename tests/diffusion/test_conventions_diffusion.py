"""The conventions of CONTRIBUTING.md, checked over the diffusion family's public API."""

import inspect

import pytest
import torch

import toyalgos.diffusion as diffusion
from toyalgos.core import Samples
from toyalgos.diffusion import data
from toyalgos.diffusion._sampling import model_device, start_noise
from toyalgos.nn import TimeMLP


def _public_callables():
    for module in (diffusion, data):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj
            elif inspect.isclass(obj):
                for meth_name, meth in vars(obj).items():
                    if inspect.isfunction(meth) and not meth_name.startswith("_"):
                        yield f"{module.__name__}.{name}.{meth_name}", meth
    yield "start_noise", start_noise


def test_all_lists_every_public_name():
    public = {n for n, v in vars(diffusion).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert public == set(diffusion.__all__) - {"data"}


@pytest.mark.parametrize("name, fn", list(_public_callables()), ids=lambda v: v if isinstance(v, str) else "")
def test_randomness_and_names(name, fn):
    params = inspect.signature(fn).parameters
    assert not {"seed", "rng", "num_steps", "n_steps"} & set(params), name
    if "generator" in params:
        assert params["generator"].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params["generator"].default is None, name


def test_samples_is_the_core_class():
    assert not hasattr(diffusion, "Samples")
    from toyalgos.diffusion import ddpm, edm, flow

    assert ddpm.Samples is edm.Samples is flow.Samples is Samples


def test_start_noise():
    model = TimeMLP(2, hidden=8)
    g = torch.Generator().manual_seed(0)
    x = start_noise(model, (3, 2), generator=g)
    assert torch.equal(x, torch.randn(3, 2, generator=torch.Generator().manual_seed(0)))
    x_T = torch.ones(3, 2)
    assert torch.equal(start_noise(model, (3, 2), x_T), x_T)
    assert model_device(model) == torch.device("cpu") and model_device(lambda x, t: x) == torch.device("cpu")
    with pytest.raises(ValueError, match="batch dimension"):
        start_noise(model, ())
    with pytest.raises(ValueError, match=r"shape has per-sample shape \(3,\), the model expects \(2,\)"):
        start_noise(model, (4, 3))
