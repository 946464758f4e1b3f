"""The caption tokenizer: fixed special ids, lossless round trip, truncation that keeps EOS, atomic save."""

import pytest

from supra.tokens.caption_bpe import BOS_ID, EOS_ID, PAD_ID, CaptionTokenizer

CAPTIONS = ["a small red circle on the left", "a blue square above a green triangle",
            "there is a large purple triangle at the top of the picture"] * 20


@pytest.fixture(scope="module")
def tokenizer() -> CaptionTokenizer:
    return CaptionTokenizer.train(CAPTIONS, vocab_size=2048)


def test_special_ids_are_pad0_bos1_eos2(tokenizer):
    assert (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2)
    assert [tokenizer.hf.token_to_id(t) for t in ("<pad>", "<bos>", "<eos>")] == [0, 1, 2]


def test_vocabulary_never_exceeds_the_limit():
    assert CaptionTokenizer.train(CAPTIONS, vocab_size=300).vocab_size <= 300


def test_training_is_deterministic():
    assert CaptionTokenizer.train(CAPTIONS, 2048).to_json() == CaptionTokenizer.train(CAPTIONS, 2048).to_json()


def test_encode_decode_round_trip_and_padding(tokenizer):
    ids, n_cut = tokenizer.encode_batch(CAPTIONS[:3], max_len=48)
    assert n_cut == 0
    assert ids[:, 0].tolist() == [BOS_ID] * 3
    for row, caption in zip(ids.tolist(), CAPTIONS[:3], strict=True):
        assert row[row.index(EOS_ID) + 1 :] == [PAD_ID] * (len(row) - row.index(EOS_ID) - 1)
        assert tokenizer.decode(row) == caption


def test_long_captions_are_cut_with_eos_kept(tokenizer):
    ids, n_cut = tokenizer.encode_batch(["a small red circle on the left " * 20, "a red circle"], max_len=10)
    assert n_cut == 1
    assert ids.shape[1] == 10 and ids[0, -1].item() == EOS_ID


def test_decoding_lowercases_and_normalises_spacing(tokenizer):
    ids, _ = tokenizer.encode_batch(["  A Small RED circle "], max_len=48)
    assert tokenizer.decode(ids[0].tolist()) == "a small red circle"


def test_save_and_reload_keep_the_ids(tokenizer, tmp_path):
    path = tokenizer.save(tmp_path / "sub" / "tokenizer.json")
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temp file left behind
    again = CaptionTokenizer.from_file(path)
    assert again.encode_batch(CAPTIONS[:3], 48)[0].tolist() == tokenizer.encode_batch(CAPTIONS[:3], 48)[0].tolist()


def test_unreadable_tokenizer_file_is_named(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json is not a readable tokenizer.json"):
        CaptionTokenizer.from_file(bad)
