import pytest
import torch

from toyalgos.lm import CharTokenizer, add_bos


def test_tokenizer_ids_round_trip_and_batches():
    tok = CharTokenizer("abc")
    assert (tok.pad_id, tok.mask_id, tok.bos_id, tok.eos_id, tok.sep_id) == (0, 1, 2, 3, 4)
    assert tok.vocab_size == 8
    ids = tok.encode("cab", bos=True, eos=True)
    assert ids.tolist() == [2, 7, 5, 6, 3]
    assert tok.decode(ids) == "cab"
    assert tok.decode(ids, strip=False) == "^cab$"
    batch = tok.encode_batch(["ab", "c"], length=4)
    assert batch.tolist() == [[5, 6, 0, 0], [7, 0, 0, 0]]
    assert tok.decode_batch(batch) == ["ab", "c"]
    assert tok.decode(torch.tensor([5, 1, 4, 6])) == "a_>b"
    with pytest.raises(ValueError, match="decode_batch"):
        tok.decode(batch)  # one return type per method: a batch has its own
    with pytest.raises(ValueError, match="2-D"):
        tok.decode_batch(ids)


def test_tokenizer_bad_input():
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer("aba")
    with pytest.raises(ValueError, match="glyphs"):
        CharTokenizer("a_")
    with pytest.raises(ValueError, match="not in the alphabet"):
        CharTokenizer("ab").encode("abc")
    with pytest.raises(ValueError, match="more than length"):
        CharTokenizer("ab").encode_batch(["abab"], length=3)


def test_add_bos():
    x = torch.tensor([[5, 6], [7, 8]])
    assert add_bos(x, 2).tolist() == [[2, 5, 6], [2, 7, 8]]
    assert add_bos(torch.zeros(3, 0, dtype=torch.long), 2).tolist() == [[2]] * 3
