import pytest
import torch

from toyalgos.face import TRAITS, draw_traits, make_faces, render_faces


def test_make_faces_shapes_disjoint_identities_and_pairs():
    g = torch.Generator().manual_seed(0)
    f = make_faces(10, 6, 5, num_pairs=100, size=16, generator=g)
    assert f.train_images.shape == (50, 1, 16, 16) and f.test_images.shape == (30, 1, 16, 16)
    assert f.train_labels.tolist() == [i for i in range(10) for _ in range(5)]
    assert f.num_classes == 10 and f.train_traits.shape == (10, len(TRAITS))
    assert f.pairs.shape == (100, 2) and f.same.sum() == 50
    who = f.test_labels[f.pairs]
    assert ((who[:, 0] == who[:, 1]) == f.same).all()
    assert (f.pairs[:, 0] != f.pairs[:, 1]).all()  # a genuine pair is two different images
    assert torch.isfinite(f.train_images).all()


def test_make_faces_is_deterministic_per_seed():
    a = make_faces(5, 3, 4, num_pairs=20, generator=torch.Generator().manual_seed(1))
    b = make_faces(5, 3, 4, num_pairs=20, generator=torch.Generator().manual_seed(1))
    c = make_faces(5, 3, 4, num_pairs=20, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.pairs, b.pairs)
    assert not torch.equal(a.train_images, c.train_images)


def test_nuisance_zero_renders_the_identity_exactly_and_identities_differ():
    g = torch.Generator().manual_seed(0)
    traits = draw_traits(2, generator=g)
    same = render_faces(traits[[0, 0]], nuisance=0.0, generator=g)
    assert torch.equal(same[0], same[1])
    other = render_faces(traits[[0, 1]], nuisance=0.0, generator=g)
    assert (other[0] - other[1]).abs().mean() > 0.01
    # With nuisances, two images of one identity are closer on average than two identities' images.
    many = draw_traits(50, generator=g)
    a = render_faces(many, generator=g).flatten(1)
    b = render_faces(many, generator=g).flatten(1)
    genuine = (a - b).norm(dim=1).mean()
    impostor = (a - b.roll(1, 0)).norm(dim=1).mean()
    assert genuine < impostor


def test_bad_input():
    with pytest.raises(ValueError, match="2 test identities"):
        make_faces(5, 1, 4)
    with pytest.raises(ValueError, match="images_per_identity"):
        make_faces(5, 3, 0)
    with pytest.raises(TypeError, match="generator"):
        make_faces(5, 3, 4, generator=0)
    with pytest.raises(ValueError, match="nuisance"):
        render_faces(draw_traits(2), nuisance=-1.0)
