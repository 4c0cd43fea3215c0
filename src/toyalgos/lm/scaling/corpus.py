"""A real-text corpus with no download: the Python standard library's own source, one byte per token.

Scaling laws need text with structure at every scale (spelling, syntax, long-range names), which
a Markov chain lacks. Every Python installation ships several megabytes of such text: the
``*.py`` files at the top of the standard library. ``stdlib_corpus`` reads them at run time,
in sorted order, keeps the files that are pure ASCII (so that one character is one byte and
the vocabulary is the 128 ASCII codes), and sets aside every ``val_every``-th file as the
validation split, so no validation file is ever seen in training.

The metric is DeepSeek LLM's (arXiv:2401.02954, §3.2): bits per byte, the held-out negative
log-likelihood in bits divided by the bytes it covers; here one token is one byte, so it is the
NLL per token in nats over ln 2. The text depends on the Python version (3.11 and 3.12 ship
different files), so numbers are comparable within one version.
"""

from __future__ import annotations

import math
import sysconfig
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from toyalgos.core.checks import check_generator, check_positive_int, check_tensor

from ..autoregressive import ar_nll

VOCAB_SIZE = 128  # the ASCII codes: token id = byte value


class TextCorpus(NamedTuple):
    """Byte tokens of the training and validation files, and the files' names in order."""

    train: torch.Tensor  # (n_train,) uint8
    val: torch.Tensor  # (n_val,) uint8
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]


def stdlib_corpus(*, val_every: int = 10, root: str | Path | None = None) -> TextCorpus:
    """The standard library's top-level ``*.py`` files as byte tokens, split by file.

    Files are read in sorted order; those that are not pure ASCII are skipped; file number i
    (counting the kept ones from 0) goes to validation when ``i % val_every == 0``. ``root`` is
    the folder to read (the running Python's standard library by default).
    """
    check_positive_int(val_every, "val_every")
    if val_every < 2:
        raise ValueError(f"val_every must be at least 2 (1 leaves nothing to train on), got {val_every}")
    folder = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    texts = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.py"))]
    texts = [(name, data) for name, data in texts if data and data.isascii()]
    if len(texts) < 2:
        raise ValueError(f"found {len(texts)} ASCII *.py file(s) in {folder}, need at least 2")
    val = [t for i, t in enumerate(texts) if i % val_every == 0]
    train = [t for i, t in enumerate(texts) if i % val_every != 0]

    def tokens(part: list[tuple[str, bytes]]) -> torch.Tensor:
        return torch.frombuffer(bytearray(b"".join(data for _, data in part)), dtype=torch.uint8)

    return TextCorpus(tokens(train), tokens(val), tuple(n for n, _ in train), tuple(n for n, _ in val))


def _check_stream(tokens: object, seq_len: int) -> torch.Tensor:
    check_tensor(tokens, "tokens", dim=1)
    check_positive_int(seq_len, "seq_len")
    if len(tokens) < seq_len + 1:
        raise ValueError(f"tokens must hold at least seq_len + 1 = {seq_len + 1} tokens, got {len(tokens)}")
    return tokens


def random_windows(
    tokens: torch.Tensor, batch_size: int, seq_len: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``batch_size`` windows of ``seq_len + 1`` consecutive tokens at random offsets, ``(B, L + 1)`` long.

    A causal model reads the first ``seq_len`` and is scored on the last ``seq_len``
    (``ar_loss``), so each window trains on ``seq_len`` tokens.
    """
    _check_stream(tokens, seq_len)
    check_positive_int(batch_size, "batch_size")
    check_generator(generator)
    start = torch.randint(len(tokens) - seq_len, (batch_size,), generator=generator)  # (B,)
    return tokens[start[:, None] + torch.arange(seq_len + 1)].long()  # (B, L + 1)


def evenly_spaced_windows(tokens: torch.Tensor, n_windows: int, seq_len: int) -> torch.Tensor:
    """``n_windows`` windows of ``seq_len + 1`` tokens at evenly spaced offsets, ``(n, L + 1)`` long.

    The fixed evaluation set: the same windows for every model, spread over the whole split.
    """
    _check_stream(tokens, seq_len)
    check_positive_int(n_windows, "n_windows")
    start = torch.linspace(0, len(tokens) - seq_len - 1, n_windows).long()  # (n,)
    return tokens[start[:, None] + torch.arange(seq_len + 1)].long()


def bits_per_byte(model: nn.Module, windows: torch.Tensor, *, batch_size: int = 1024) -> float:
    """Mean held-out NLL of the last ``L`` tokens of each window, in bits per byte.

    One token is one byte (ASCII), so bits per byte = (nats per token) / ln 2. ``windows`` is
    ``(n, L + 1)`` token ids, e.g. ``evenly_spaced_windows(corpus.val, ...)``.
    """
    return ar_nll(model, windows, batch_size=batch_size).mean().item() / math.log(2)
