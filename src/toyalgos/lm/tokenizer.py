"""Character-level token ids: five special tokens, then one id per character.

The special tokens are those the language models of this family need: ``<pad>`` to fill a
batch, ``<mask>`` for the masked diffusion model, ``<bos>`` for the autoregressive model to
condition its first token on (``add_bos``), and ``<eos>``, ``<sep>`` to lay out facts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .checks import check_tokens

SPECIALS = ("<pad>", "<mask>", "<bos>", "<eos>", "<sep>")
GLYPHS = {"<pad>": "·", "<mask>": "_", "<bos>": "^", "<eos>": "$", "<sep>": ">"}


class CharTokenizer:
    """One token per character of ``alphabet``, after five special tokens.

    Ids: 0 ``<pad>``, 1 ``<mask>``, 2 ``<bos>``, 3 ``<eos>``, 4 ``<sep>``, then the characters in
    the order given. ``decode`` writes the special tokens as the glyphs of ``GLYPHS``
    (``_`` for a mask, ``>`` for the separator) and by default drops pad, bos and eos.
    """

    def __init__(self, alphabet: str):
        if not isinstance(alphabet, str) or not alphabet:
            raise ValueError(f"alphabet must be a non-empty string of characters, got {alphabet!r}")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet has repeated characters: {alphabet!r}")
        clash = set(alphabet) & set(GLYPHS.values())
        if clash:
            raise ValueError(f"alphabet must not use the special-token glyphs {sorted(clash)}")
        self.alphabet = alphabet
        self.pad_id, self.mask_id, self.bos_id, self.eos_id, self.sep_id = range(len(SPECIALS))
        self.offset = len(SPECIALS)
        self._ids = {c: i + self.offset for i, c in enumerate(alphabet)}
        self._chars = [GLYPHS[s] for s in SPECIALS] + list(alphabet)

    @property
    def vocab_size(self) -> int:
        return self.offset + len(self.alphabet)

    def __repr__(self) -> str:
        return f"CharTokenizer({self.alphabet!r}, vocab_size={self.vocab_size})"

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> torch.Tensor:
        """Token ids of ``text``, shape ``(len(text) + bos + eos,)``."""
        unknown = sorted(set(text) - set(self._ids))
        if unknown:
            raise ValueError(f"characters {unknown} are not in the alphabet {self.alphabet!r}")
        ids = [self.bos_id] * bos + [self._ids[c] for c in text] + [self.eos_id] * eos
        return torch.tensor(ids, dtype=torch.long)

    def encode_batch(
        self, texts: Sequence[str], length: int | None = None, bos: bool = False, eos: bool = False
    ) -> torch.Tensor:
        """Fixed-length batch ``(N, length)``: each text encoded, then right-padded with ``<pad>``.

        ``length`` defaults to the longest encoded text; a longer text raises ``ValueError``.
        """
        rows = [self.encode(t, bos, eos) for t in texts]
        if not rows:
            raise ValueError("texts is empty")
        longest = max(len(r) for r in rows)
        length = longest if length is None else length
        if longest > length:
            raise ValueError(f"a text encodes to {longest} tokens, more than length={length}")
        out = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def decode(self, ids: torch.Tensor | Sequence[int], strip: bool = True) -> str:
        """Text of a 1-D id sequence (``decode_batch`` for a batch).

        With ``strip`` pad, bos and eos are dropped; masks and separators are always shown.
        """
        ids = torch.as_tensor(ids)
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D (use decode_batch for a batch), got shape {tuple(ids.shape)}")
        dropped = {self.pad_id, self.bos_id, self.eos_id} if strip else set()
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), got {ids.min()}..{ids.max()}")
        return "".join(self._chars[i] for i in ids.tolist() if i not in dropped)

    def decode_batch(self, ids: torch.Tensor, strip: bool = True) -> list[str]:
        """Texts of a 2-D batch of id sequences, one per row."""
        if torch.as_tensor(ids).dim() != 2:
            raise ValueError(f"ids must be 2-D (N, L), got shape {tuple(torch.as_tensor(ids).shape)}")
        return [self.decode(row, strip) for row in ids]


def add_bos(x: torch.Tensor, bos_id: int) -> torch.Tensor:
    """Prepend a ``<bos>`` column: what an autoregressive model conditions its first token on."""
    check_tokens(x, min_length=0)
    return torch.cat([torch.full((x.shape[0], 1), bos_id, dtype=torch.long, device=x.device), x], dim=1)
