import pytest
import torch

from toyalgos.nn import ConvBackbone, conv_bn_act


def test_conv_bn_act_keeps_size_for_3x3_and_divides_for_patches():
    x = torch.rand(2, 3, 16, 16)
    assert conv_bn_act(3, 5)(x).shape == (2, 5, 16, 16)
    assert conv_bn_act(3, 5, kernel=4, stride=4)(x).shape == (2, 5, 4, 4)
    assert conv_bn_act(3, 5, kernel=3, stride=2)(x).shape == (2, 5, 8, 8)


@pytest.mark.parametrize(
    ("channels", "patch", "strides"), [((8,), 4, [4]), ((8, 16), 4, [4, 8]), ((4, 8, 16), 2, [2, 4, 8])]
)
def test_backbone_stage_strides_and_widths(channels, patch, strides):
    net = ConvBackbone(channels, patch=patch, depth=1)
    maps = net.features(torch.rand(2, 3, 32, 64))
    assert [(m.shape[1], 32 // m.shape[2], 64 // m.shape[3]) for m in maps] == [
        (c, s, s) for c, s in zip(channels, strides, strict=True)
    ]
    assert net.stride == strides[-1]
    torch.testing.assert_close(net(torch.ones(1, 3, 32, 64)), net.features(torch.ones(1, 3, 32, 64))[-1])


def test_backbone_receptive_field_is_local_before_mixing():
    """Without mixing convs, a patchify stem's cell sees only its own patch."""
    torch.manual_seed(0)
    net = ConvBackbone((4,), patch=4, depth=0).eval()
    x = torch.rand(1, 3, 16, 16)
    y = x.clone()
    y[..., :4, :4] = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        changed = (net(x) - net(y)).abs().sum(1)[0] > 0
    assert changed[0, 0] and changed.sum() == 1


@pytest.mark.parametrize(
    ("kwargs", "shape", "match"),
    [
        ({"channels": ()}, None, "channels must be a non-empty sequence"),
        ({"channels": (8, 0)}, None, r"channels\[1\] must be a positive int, got 0"),
        ({"patch": 0}, None, "patch must be a positive int"),
        ({"depth": -1}, None, "depth must be an int >= 0"),
        ({}, (3, 32, 32), r"images must have shape \(N, C, H, W\)"),
        ({}, (1, 3, 30, 32), "multiples of 8"),
    ],
)
def test_backbone_bad_input_raises_value_error(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        ConvBackbone(**kwargs).features(torch.zeros(shape or (1, 3, 8, 8)))
