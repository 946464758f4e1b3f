"""The caption tokenizer: fixed special ids, lossless round trip, truncation that keeps EOS, atomic save."""

import pytest
import torch

from supra.tokens import caption_bpe
from supra.tokens.caption_bpe import BOS_ID, EOS_ID, PAD_ID, CaptionTokenizer, readable_token

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


def test_token_labels_name_the_tokens_decoding_drops(tokenizer):
    # what explain and the attention maps write above each tile: never an empty label
    assert [tokenizer.token_label(i) for i in (PAD_ID, BOS_ID, EOS_ID, 3)] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    red = tokenizer.encode_batch(["red"], max_len=8)[0][0, 1].item()
    assert tokenizer.token_label(red).strip() == "red"  # a word-initial piece keeps its space


def test_a_token_holding_part_of_a_character_is_labelled_by_its_bytes_not_a_box(tokenizer):
    """A byte-level token that is one byte of "è" decoded alone to U+FFFD: explain's tiles read 'c', 'r', '\ufffd',
    '\ufffd', 'm', 'e'. Each token keeps its own label (attention is per token), readable now."""
    ids = tokenizer.encode_batch(["crème"], max_len=16)[0][0].tolist()[1:-1]  # never seen in training: bytes
    labels = [tokenizer.token_label(i) for i in ids]
    assert "<0xC3>" in labels and "<0xA8>" in labels and not any("\ufffd" in label for label in labels)
    assert readable_token("\ufffd", "mÃ") == "m<0xC3>"  # whole characters as text, the cut one as its byte
    assert readable_token("è", "Ã¨") == "è"
    assert readable_token("\ufffd", "▁x") == "\ufffd"  # no byte-level symbols (another tokenizer's): as decoded


def test_a_caption_cut_in_the_middle_of_a_character_ends_before_it_not_in_a_box(tokenizer):
    """A caption cut at max_new_tokens may end in one or two of the three bytes of "猫" (a byte-level BPE emits
    them one by one): decoding wrote U+FFFD at its end, into predictions.json and captions.jsonl. The cut
    character is left out; a U+FFFD the caption holds as text is kept."""
    ids = tokenizer.encode_batch(["a red 猫"], max_len=32)[0][0].tolist()
    ids = ids[: ids.index(EOS_ID)]  # BOS, "a red", then the 3 bytes of 猫
    assert tokenizer.decode(ids) == "a red 猫"
    assert [tokenizer.decode(ids[:-1]), tokenizer.decode(ids[:-2] + [EOS_ID, PAD_ID])] == ["a red", "a red"]
    assert tokenizer.decode_batch([ids[:-1], ids]) == ["a red", "a red 猫"]
    kept = tokenizer.encode_batch(["a red \ufffd"], max_len=32)[0][0].tolist()
    assert tokenizer.decode(kept) == tokenizer.decode_batch([kept])[0] == "a red \ufffd"


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


# -- GPT-2's published files ----------------------------------------------------------------------


@pytest.fixture
def gpt2_folder(tmp_path):
    """vocab.json + merges.txt laid out as OpenAI and the Hub publish GPT-2's: byte-level symbols (Ġ is a
    space), a `#version` header line in merges.txt, <|endoftext|> as the last id. A few merges only."""
    import json

    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {symbol: i for i, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    merges = [("Ġ", "c"), ("a", "t"), ("Ġc", "at"), ("Ġ", "a")]
    for left, right in merges:
        vocab[left + right] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return tmp_path


def test_gpt2_files_load_after_our_special_ids(gpt2_folder):
    tokenizer = CaptionTokenizer.from_gpt2_files(gpt2_folder)
    assert tokenizer.vocab_size == 256 + 4 + 1 + 4  # alphabet, merges, <|endoftext|>, then ours first
    assert [tokenizer.hf.token_to_id(t) for t in ("<pad>", "<bos>", "<eos>", "<unk>")] == [0, 1, 2, 3]
    assert tokenizer.hf.token_to_id("Ġcat") == 256 + 2 + 4  # GPT-2's id moved up by 4
    ids, _ = tokenizer.encode_batch(["a cat", "A Cat sat"], max_len=16)
    assert ids[0, :4].tolist() == [BOS_ID, tokenizer.hf.token_to_id("Ġa"), tokenizer.hf.token_to_id("Ġcat"), EOS_ID]
    assert tokenizer.decode_batch(ids.tolist()) == ["a cat", "A Cat sat"]  # cased, as GPT-2
    assert CaptionTokenizer.from_json(tokenizer.to_json()).encode_batch(["a cat"], 16)[0].tolist() == ids[:1, :4].tolist()


def test_data_gpt2_tokenizer_replaces_the_trained_bpe(gpt2_folder):
    from supra.data.captioning.shapes import ShapesDataModule

    data = ShapesDataModule(num_train=4, num_val=2, num_test=2, vocab_size=300, gpt2_tokenizer=str(gpt2_folder))
    data.setup("fit")
    assert data.tokenizer.to_json() == CaptionTokenizer.from_gpt2_files(gpt2_folder).to_json()


def test_gpt2_files_larger_than_vocab_size_say_which_vocab_size_to_set(gpt2_folder):
    """The message for a trained tokenizer.json of another run ("use the tokenizer.json the model was trained
    with") was given for GPT-2's files too, where the fix is a VOCAB_SIZE that holds them."""
    from supra.data.captioning.shapes import ShapesDataModule
    from supra.utils.errors import SupraUserError

    with pytest.raises(SupraUserError, match=rf"^data.gpt2_tokenizer={gpt2_folder} has 265 tokens \(GPT-2's after "
                                             r"Supra's 4 special ones\) but model.net.VOCAB_SIZE is 260: set "
                                             r"model.net.VOCAB_SIZE=265$"):
        ShapesDataModule(num_train=4, num_val=2, num_test=2, vocab_size=260, gpt2_tokenizer=str(gpt2_folder)).setup("fit")


def test_gpt2_files_missing_or_inconsistent_are_named(gpt2_folder, tmp_path):
    from supra.data.captioning.shapes import ShapesDataModule
    from supra.utils.errors import SupraUserError

    with pytest.raises(SupraUserError, match=r"data.gpt2_tokenizer=.*nowhere.*vocab.json not found"):
        ShapesDataModule(num_train=4, num_val=2, num_test=2, gpt2_tokenizer=str(tmp_path / "nowhere")).setup("fit")
    (gpt2_folder / "merges.txt").write_text("#version: 0.2\nĠ zz\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"merges.txt: merge 'Ġ zz' is not two tokens of vocab.json"):
        CaptionTokenizer.from_gpt2_files(gpt2_folder)


@pytest.mark.parametrize(("vocab", "held"), [('["a", "b"]', "it holds an array"), ('{"a": "0"}', "it maps 'a' to '0'"),
                                             ('{"a": -1}', "it maps 'a' to -1")])
def test_a_vocab_json_that_is_no_mapping_of_tokens_to_ids_is_one_line_naming_it(gpt2_folder, vocab, held):
    """A list failed with AttributeError: 'list' object has no attribute 'items', string ids with a TypeError."""
    from supra.data.captioning.shapes import ShapesDataModule
    from supra.utils.errors import SupraUserError

    (gpt2_folder / "vocab.json").write_text(vocab, encoding="utf-8")
    with pytest.raises(SupraUserError, match=rf"^data.gpt2_tokenizer=.*vocab.json is not GPT-2's vocab.json \(a JSON "
                                             rf"mapping of tokens to whole-number ids; {held}\)$"):
        ShapesDataModule(num_train=4, num_val=2, num_test=2, gpt2_tokenizer=str(gpt2_folder)).setup("fit")


def test_a_32k_caption_bpe_trains_and_feeds_a_32k_model():
    from supra.models.vlm_nano import VLMNano

    tokenizer = CaptionTokenizer.train(CAPTIONS, vocab_size=32_000)  # as many as the captions need, at most 32k
    assert tokenizer.vocab_size <= 32_000
    net = VLMNano(VOCAB_SIZE=32_000, D_MODEL=32, N_HEADS=2, D_FF=64, N_LAYERS=1)
    assert net.lm_head.weight.shape == (32_000, 32)


def test_a_trained_bpe_holds_every_byte_and_the_special_tokens_whatever_its_vocab_size():
    from supra.tokens.caption_bpe import MIN_TRAINED_VOCAB

    assert MIN_TRAINED_VOCAB == 260  # 256 bytes + <pad> <bos> <eos> <unk>: what train's docstring promises
    assert CaptionTokenizer.train(CAPTIONS, vocab_size=200).vocab_size == 260


def test_a_huge_caption_trains_on_its_first_characters_and_says_so(caplog):
    import time

    from supra.tokens.caption_bpe import TRAIN_CHARS

    huge = "data:image/png;base64," + "ab" * 100_000  # a data URI pasted as a caption: minutes, quadratically
    start = time.perf_counter()
    tokenizer = CaptionTokenizer.train([huge, *CAPTIONS], 2048)
    assert time.perf_counter() - start < 1.0
    assert tokenizer.to_json() == CaptionTokenizer.train([huge[:TRAIN_CHARS], *CAPTIONS], 2048).to_json()
    assert "tokenizer: 1 caption longer than 2000 characters: trained on its first 2000 only" in caplog.messages
    caplog.clear()
    CaptionTokenizer.train([huge, huge, *CAPTIONS], 2048)
    assert "tokenizer: 2 captions longer than 2000 characters: trained on their first 2000 only" in caplog.messages
    caplog.clear()
    CaptionTokenizer.train(CAPTIONS, 2048)  # captions of any shipped data set are far shorter: no word of it
    assert "longer than" not in caplog.text


def test_a_tokenizer_json_without_our_special_ids_is_named_for_what_it_holds(tokenizer, tmp_path):
    from supra.tokens.caption_bpe import SpecialTokensError

    text = tokenizer.to_json()
    for ours, theirs in (("<pad>", "[PAD]"), ("<bos>", "[BOS]"), ("<eos>", "[EOS]"), ("<unk>", "[UNK]")):
        text = text.replace(f'"{ours}"', f'"{theirs}"')
    (tmp_path / "u.json").write_text(text)
    with pytest.raises(SpecialTokensError) as err:
        CaptionTokenizer.from_file(tmp_path / "u.json")
    assert str(err.value) == (f"{tmp_path / 'u.json'} reads, but its ids 0-3 are [PAD] [BOS] [EOS] [UNK], not Supra's "
                              "special tokens <pad> <bos> <eos> <unk>")


def test_captions_are_lower_cased_as_the_scorer_does_and_otherwise_kept_as_written():
    """The scorer's PTB tokenizer lower-cases and nothing more: NFKC folded full-width digits, ligatures and
    superscripts ("２３" -> "23"), references the model could then never emit."""
    captions = ["２人の男性が歩いている", "the ﬁrst Café in town", "a man wearing a number ２３ shirt x²"]
    tokenizer = CaptionTokenizer.train(captions * 3, vocab_size=400)
    ids, _ = tokenizer.encode_batch(captions, max_len=64)
    assert [tokenizer.decode(row) for row in ids.tolist()] == [c.lower() for c in captions]


def test_a_word_final_capital_sigma_is_lower_cased_to_final_sigma_as_the_scorer_does(tokenizer):
    """The scorer's PTB tokenizer (Java's toLowerCase, as Python's str.lower) makes a word-final Σ ς; the
    tokenizer made every Σ σ, so the best caption a model could emit scored Bleu_4 0.66 against its own reference.
    Tokenizers stored before (NFKC among their normalisers) encode it so too; GPT-2's stays cased."""
    from tokenizers import normalizers

    reference = "Ο ΣΊΣΥΦΟΣ ΚΑΙ Ο ΒΡΆΧΟΣ"
    trained = CaptionTokenizer.train([reference] * 3, vocab_size=300)
    old = CaptionTokenizer.from_json(tokenizer.to_json())
    old.hf.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.Strip()])
    for each in (trained, CaptionTokenizer.from_json(trained.to_json()), CaptionTokenizer.from_json(old.to_json())):
        ids, _ = each.encode_batch([reference, "ΟΔΟΣ"], max_len=64)
        assert each.decode_batch(ids.tolist()) == ["ο σίσυφος και ο βράχος", "οδος"]


def test_a_stored_tokenizer_keeps_the_normaliser_it_was_trained_with(tokenizer):
    """A checkpoint's or release's tokenizer.json trained with NFKC reads back with it: its model's ids hold."""
    from tokenizers import normalizers

    old = CaptionTokenizer.from_json(tokenizer.to_json())
    old.hf.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(), normalizers.Strip()])
    stored = CaptionTokenizer.from_json(old.to_json())
    ids, _ = stored.encode_batch(["a ﬁne red circle"], max_len=48)
    assert stored.decode(ids[0].tolist()) == "a fine red circle"


def test_caption_text_naming_a_special_token_is_encoded_as_text(tokenizer):
    """"press the <eos> key" is a caption of a keyboard: its <eos> never becomes the EOS id (the model would learn
    to stop there), nor <pad> a padding position; decoding keeps it, and still drops the real BOS/EOS/PAD."""
    captions = ["press the <eos> key", "a sign reading <pad> and <unk>", "a tag <bos> shown"]
    ids, _ = tokenizer.encode_batch(captions, max_len=64)
    for row, caption in zip(ids.tolist(), captions, strict=True):
        inner = row[1 : row.index(EOS_ID)]
        assert row[0] == BOS_ID and not {PAD_ID, BOS_ID, EOS_ID, 3} & set(inner)
        assert tokenizer.decode(row) == caption


def test_a_stored_tokenizer_encodes_special_token_names_as_text_too(tokenizer, tmp_path):
    stored = CaptionTokenizer.from_file(tokenizer.save(tmp_path / "tokenizer.json"))
    ids, _ = stored.encode_batch(["press the <eos> key"], max_len=64)
    assert ids[0].tolist().count(EOS_ID) == 1 and stored.decode(ids[0].tolist()) == "press the <eos> key"


def test_encoding_a_split_in_chunks_reports_each_and_gives_the_tokens_of_one_batch(tokenizer, monkeypatch):
    """A split of 200,000 captions takes seconds to encode: a progress bar moves after each chunk, and the tokens
    (padded to the longest caption of all, not of each chunk) are those of encoding them at once."""
    captions = [" ".join(["a red ball"] * (1 + i % 4)) for i in range(25)]
    whole, cut = tokenizer.encode_batch(captions, 12)
    monkeypatch.setattr(caption_bpe, "ENCODE_CHUNK", 10)
    done = []
    chunked, cut_in_chunks = tokenizer.encode_batch(captions, 12, done.append)
    assert done == [10, 10, 5]
    assert torch.equal(chunked, whole) and cut_in_chunks == cut > 0


def _encoded_one_row_at_a_time(tokenizer: CaptionTokenizer, captions: list[str], max_len: int) -> torch.Tensor:
    """The plain way encode_batch promises to match: each caption encoded alone and written into its row."""
    rows = [[BOS_ID, *tokenizer.hf.encode(caption.lower()).ids[: max_len - 2], EOS_ID] for caption in captions]
    out = torch.full((len(rows), max(map(len, rows), default=2)), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


@pytest.mark.parametrize("max_len", [3, 8, 64])
def test_batch_encoding_gives_the_tensor_of_encoding_each_caption_alone(tokenizer, max_len):
    """Long captions (cut, EOS kept), ones empty once stripped, non-ASCII and mixed case: the same int64 ids,
    padding and width as one caption at a time."""
    captions = ["a small red circle on the left " * 12, "", "   ", "A Crème Brûlée beside a 猫 🐈", "ΟΔΟΣ",
                "press the <eos> key", "a red circle", "\t\n", "naïve  café\u00a0au lait"]
    ids, n_cut = tokenizer.encode_batch(captions, max_len)
    expected = _encoded_one_row_at_a_time(tokenizer, captions, max_len)
    assert ids.dtype == torch.int64 and torch.equal(ids, expected)
    assert n_cut == sum(len(tokenizer.hf.encode(caption.lower()).ids) > max_len - 2 for caption in captions)


def test_no_captions_encode_to_an_empty_batch_of_bos_eos_width(tokenizer):
    ids, n_cut = tokenizer.encode_batch([], 16)
    assert ids.shape == (0, 2) and ids.dtype == torch.int64 and n_cut == 0


def test_a_split_is_placed_in_its_tensor_at_once_not_a_tensor_per_caption(tokenizer, monkeypatch):
    """A tensor built per caption cost seconds of set-up for a split of 200,000 captions."""
    built = []
    real_tensor = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *args, **kwargs: built.append(1) or real_tensor(*args, **kwargs))
    tokenizer.encode_batch(CAPTIONS, 48)
    assert built == []
