"""The standard-library corpus: deterministic, split by file, one byte per token; windows; bits per byte."""

import math

import pytest
import torch

from toyalgos.lm.scaling import (
    VOCAB_SIZE,
    bits_per_byte,
    evenly_spaced_windows,
    random_windows,
    stdlib_corpus,
)
from toyalgos.lm.scaling.model import scaling_model


@pytest.fixture(scope="module")
def corpus():
    return stdlib_corpus()


def test_deterministic_and_split_by_file(corpus):
    again = stdlib_corpus()
    assert torch.equal(corpus.train, again.train) and torch.equal(corpus.val, again.val)
    assert corpus.train_files == again.train_files and corpus.val_files == again.val_files
    assert not set(corpus.train_files) & set(corpus.val_files)
    names = sorted(corpus.train_files + corpus.val_files)
    assert corpus.val_files == tuple(names[::10])  # every 10th kept file, in sorted order
    assert len(corpus.train) > 1_000_000 and len(corpus.val) > 100_000
    assert corpus.train.dtype == torch.uint8 and int(corpus.train.max()) < VOCAB_SIZE


def test_tokens_are_the_files_bytes(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    (tmp_path / "c.py").write_text("z = 'é'\n")  # not ASCII: skipped
    (tmp_path / "d.py").write_text("w = 4\n")
    (tmp_path / "e.txt").write_text("not python\n")
    c = stdlib_corpus(val_every=3, root=tmp_path)
    assert c.val_files == ("a.py",) and c.train_files == ("b.py", "d.py")
    assert bytes(c.train.tolist()) == b"y = 2\nw = 4\n" and bytes(c.val.tolist()) == b"x = 1\n"


def test_windows():
    tokens = torch.arange(100, dtype=torch.uint8)
    x = random_windows(tokens, 64, 9, generator=torch.Generator().manual_seed(0))
    assert x.shape == (64, 10) and x.dtype == torch.long
    assert ((x[:, 1:] - x[:, :-1]) == 1).all()  # consecutive tokens
    y = random_windows(tokens, 64, 9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, y)
    e = evenly_spaced_windows(tokens, 4, 9)
    assert e[:, 0].tolist() == [0, 30, 60, 90] and e[-1, -1] == 99


def test_bits_per_byte_of_a_uniform_model():
    """A model with zero output weights predicts uniformly: exactly log2(V) bits per byte."""
    torch.manual_seed(0)
    model = scaling_model(VOCAB_SIZE, 8, 1, 16)
    torch.nn.init.zeros_(model.head.weight)
    windows = evenly_spaced_windows(torch.arange(128, dtype=torch.uint8).repeat(3), 10, 16)
    assert bits_per_byte(model, windows) == pytest.approx(math.log2(VOCAB_SIZE), abs=1e-5)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="val_every"):
        stdlib_corpus(val_every=1)
    with pytest.raises(ValueError, match="ASCII"):
        stdlib_corpus(root=tmp_path)
    with pytest.raises(ValueError, match="seq_len"):
        random_windows(torch.arange(5), 2, 5)
    with pytest.raises(TypeError, match="generator"):
        random_windows(torch.arange(50), 2, 5, generator=0)
    with pytest.raises(ValueError, match="batch_size"):
        random_windows(torch.arange(50), 0, 5)
