"""A tiny convolutional backbone for the detection notebooks.

A patchify stem (one convolution with kernel = stride = ``patch``, as in ViT and ConvNeXt)
turns the image into a coarse grid at almost no cost; each further stage halves the
resolution with a stride-2 3x3 convolution; ``depth`` 3x3 convolutions at the last
resolution then mix each cell with its neighbours. Every convolution is followed by batch
norm and a leaky ReLU (slope 0.1, as in YOLO). For channels (32, 64) and depth 2 it needs 6.3 M
multiply-adds per 64x64 image, against 14.2 M for a conv + max-pool ladder of widths (16, 32, 64,
64); since it never holds full-resolution activations, a training step takes about a fifth of
the ladder's time on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from toyalgos.core.checks import check_nonnegative_int, check_positive_int


def conv_bn_act(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias: batch norm has one) -> BatchNorm -> LeakyReLU(0.1); odd kernels are padded so
    that at stride 1 the spatial size is kept."""
    padding = kernel // 2 if kernel % 2 else 0
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.1),
    )


class ConvBackbone(nn.Module):
    """Image (N, c_in, H, W) -> feature map (N, channels[-1], H / stride, W / stride).

    ``stride = patch * 2 ** (len(channels) - 1)``. ``features`` returns every stage's map
    (strides patch, 2 patch, ...) for multi-scale heads.
    """

    def __init__(self, channels: Sequence[int] = (32, 64), patch: int = 4, depth: int = 2, c_in: int = 3):
        super().__init__()
        channels = tuple(channels)
        if not channels:
            raise ValueError("channels must be a non-empty sequence of positive ints, got ()")
        for i, c in enumerate(channels):
            check_positive_int(c, f"channels[{i}]")
        check_positive_int(patch, "patch")
        check_nonnegative_int(depth, "depth")
        self.channels, self.patch = channels, patch
        self.stride = patch * 2 ** (len(channels) - 1)
        stages = [conv_bn_act(c_in, channels[0], patch, patch)]
        stages += [conv_bn_act(a, b, 3, 2) for a, b in zip(channels[:-1], channels[1:], strict=True)]
        self.stages = nn.ModuleList(stages)
        self.mix = nn.Sequential(*[conv_bn_act(channels[-1], channels[-1]) for _ in range(depth)])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every stage, finest first; the last one after the ``depth`` mixing convs."""
        if x.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(
                f"image height and width must be multiples of {self.stride}, got {tuple(x.shape)}"
            )
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        maps[-1] = self.mix(maps[-1])
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]
