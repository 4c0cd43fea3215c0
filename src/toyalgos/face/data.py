"""Synthetic faces with no download: identities are fixed traits, images are renderings under nuisances.

Each identity draws ten latent traits once (face width and height, skin tone, hair line, eye
spacing, height and size, mouth width, height and curve). Each image of it renders those traits
into a small grey picture under variation that says nothing about who it is: a shift and a
scale (pose), a small change of expression (eye size, mouth curve), brightness and contrast,
pixel noise and, now and then, an occluding grey bar. Training and test identities are
disjoint, so verification on the test identities is an open-set question: does the embedding
separate people it never saw? Rendering is vectorised over all images at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from toyalgos.core.checks import check_generator, check_number, check_positive_int

TRAITS = (
    "face_width",
    "face_height",
    "skin",
    "hair_line",
    "eye_spacing",
    "eye_height",
    "eye_size",
    "mouth_width",
    "mouth_height",
    "mouth_curve",
)
# Each trait's range; an identity draws uniformly inside it. Lengths in units of half the image.
_LOW = torch.tensor([0.50, 0.62, 0.45, -0.75, 0.30, -0.35, 0.07, 0.18, 0.28, -0.12])
_HIGH = torch.tensor([0.72, 0.90, 0.90, -0.35, 0.55, -0.08, 0.14, 0.42, 0.52, 0.12])


@dataclass(frozen=True)
class Faces:
    """Train images (N, 1, S, S) with identity labels in [0, train identities); test images of
    other identities with labels in [0, test identities); verification pairs (P, 2) of test-image
    indices with ``same`` (P,) bool, half genuine, half impostor; each identity's traits."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    pairs: torch.Tensor
    same: torch.Tensor
    train_traits: torch.Tensor
    test_traits: torch.Tensor

    @property
    def num_classes(self) -> int:
        return self.train_traits.shape[0]


def draw_traits(n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` identities' traits (n, 10), uniform inside each trait's range (order: ``TRAITS``)."""
    check_positive_int(n, "n")
    u = torch.rand(n, len(TRAITS), generator=check_generator(generator))
    return _LOW + u * (_HIGH - _LOW)


def _soft(x: torch.Tensor, sharpness: float) -> torch.Tensor:
    """A soft step 1[x > 0] (about a pixel wide), so that sub-pixel changes of a trait change pixels."""
    return torch.sigmoid(sharpness * x)


def render_faces(
    traits: torch.Tensor,
    *,
    size: int = 24,
    nuisance: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One image (N, 1, size, size) per row of ``traits`` (N, 10), under random nuisances.

    ``nuisance`` scales every nuisance (0: the identity's canonical face, no noise).
    """
    check_positive_int(size, "size")
    nuisance = check_number(nuisance, "nuisance", 0)
    g = check_generator(generator)
    n = traits.shape[0]
    t = traits.T.reshape(len(TRAITS), n, 1, 1)
    face_w, face_h, skin, hair, eye_dx, eye_y, eye_r, mouth_w, mouth_y, curve = t

    def draw(k: int, *, generator: torch.Generator | None = g) -> torch.Tensor:
        return torch.randn(n, k, 1, generator=generator)  # (N, k, 1): k standard normals per image

    shift, scale = 0.10 * nuisance * draw(2), torch.exp(0.08 * nuisance * draw(1))
    eye_r = eye_r * torch.exp(0.10 * nuisance * draw(1))  # expression: squint
    curve = curve + 0.05 * nuisance * draw(1)  # expression: smile
    sharp = size / 2.0  # about one pixel wide edges
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # [-1, 1]
    u = (grid.view(1, 1, -1) - shift[:, :1]) / scale  # (N, 1, S)
    v = (grid.view(1, -1, 1) - shift[:, 1:]) / scale  # (N, S, 1)

    head = _soft(1 - torch.sqrt((u / face_w) ** 2 + (v / face_h) ** 2 + 1e-9), sharp * face_w)
    hair_mask = head * _soft(hair - v, sharp)
    eyes = torch.maximum(
        _soft(eye_r - torch.sqrt((u - eye_dx / 2) ** 2 + (v - eye_y) ** 2 + 1e-9), sharp),
        _soft(eye_r - torch.sqrt((u + eye_dx / 2) ** 2 + (v - eye_y) ** 2 + 1e-9), sharp),
    )
    mouth_line = mouth_y - curve * (1 - (u / mouth_w) ** 2)  # a parabola through the corners
    mouth = _soft(0.06 - (v - mouth_line).abs(), sharp) * _soft(mouth_w - u.abs(), sharp)

    image = 0.25 + (skin - 0.25) * head  # background 0.25, skin inside the head
    image = image * (1 - 0.75 * hair_mask)
    image = image * (1 - 0.85 * eyes) * (1 - 0.7 * mouth)
    # Occlusion: with probability 0.2 * nuisance, a mid-grey horizontal bar across the face.
    occluded = torch.rand(n, 1, 1, generator=g) < 0.2 * min(nuisance, 1.0)
    bar_y = 0.8 * (2 * torch.rand(n, 1, 1, generator=g) - 1)
    bar = occluded * _soft(0.15 - (grid.view(1, -1, 1) - bar_y).abs(), sharp)
    image = image * (1 - bar) + 0.5 * bar
    contrast, brightness = torch.exp(0.15 * nuisance * draw(1)), 0.08 * nuisance * draw(1)
    image = (image - 0.5) * contrast + 0.5 + brightness
    image = image + 0.05 * nuisance * torch.randn(n, size, size, generator=g)
    return image.unsqueeze(1)


def _pairs(
    identities: int, per_identity: int, num_pairs: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_pairs`` // 2 genuine and as many impostor pairs of images stored identity-major."""
    half = num_pairs // 2
    g = generator
    who = torch.randint(identities, (half,), generator=g)
    a = torch.randint(per_identity, (half,), generator=g)
    b = (a + torch.randint(1, per_identity, (half,), generator=g)) % per_identity
    genuine = torch.stack([who * per_identity + a, who * per_identity + b], 1)
    first = torch.randint(identities, (half,), generator=g)
    second = (first + torch.randint(1, identities, (half,), generator=g)) % identities
    picks = torch.randint(per_identity, (half, 2), generator=g)
    impostor = torch.stack([first * per_identity + picks[:, 0], second * per_identity + picks[:, 1]], 1)
    pairs = torch.cat([genuine, impostor])
    same = torch.cat([torch.ones(half, dtype=torch.bool), torch.zeros(half, dtype=torch.bool)])
    order = torch.randperm(2 * half, generator=g)
    return pairs[order], same[order]


def make_faces(
    train_identities: int = 200,
    test_identities: int = 100,
    images_per_identity: int = 20,
    *,
    num_pairs: int = 6000,
    size: int = 24,
    nuisance: float = 1.0,
    generator: torch.Generator | None = None,
) -> Faces:
    """A face data set: disjoint train and test identities, and verification pairs on the test ones.

    Images are stored identity-major (identity i's images at rows i·k .. i·k + k − 1).
    """
    check_positive_int(train_identities, "train_identities")
    check_positive_int(images_per_identity, "images_per_identity")
    check_positive_int(num_pairs, "num_pairs")
    g = check_generator(generator)
    if check_positive_int(test_identities, "test_identities") < 2 or images_per_identity < 2:
        raise ValueError(
            "verification pairs need at least 2 test identities and 2 images per identity, got "
            f"{test_identities} and {images_per_identity}"
        )
    if num_pairs < 2:
        raise ValueError(f"num_pairs must be at least 2 (one genuine, one impostor), got {num_pairs}")
    train_traits = draw_traits(train_identities, generator=g)
    test_traits = draw_traits(test_identities, generator=g)
    k = images_per_identity
    train_labels = torch.arange(train_identities).repeat_interleave(k)
    test_labels = torch.arange(test_identities).repeat_interleave(k)
    train_images = render_faces(train_traits[train_labels], size=size, nuisance=nuisance, generator=g)
    test_images = render_faces(test_traits[test_labels], size=size, nuisance=nuisance, generator=g)
    pairs, same = _pairs(test_identities, k, num_pairs, g)
    return Faces(train_images, train_labels, test_images, test_labels, pairs, same, train_traits, test_traits)
