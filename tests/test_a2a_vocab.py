"""a2a_nano's vocabulary: the id layout (text, 7 control tokens, 256 codes) and the mixed encode/decode pair."""

import json

import pytest
import torch
from tokenizers import pre_tokenizers

from supra.tokens.a2a_layout import CONTROL_TOKENS, TokenLayout
from supra.tokens.a2a_vocab import A2AVocab
from supra.utils.errors import SupraUserError


def test_release_layout_has_50520_ids_with_controls_after_gpt2_text():
    layout = TokenLayout(text_size=50_257)
    assert layout.vocab_size == 50_520
    assert [layout.text_open, layout.text_close, layout.image_open, layout.image_close,
            layout.video_open, layout.video_close, layout.frame] == list(range(50_257, 50_264))
    assert list(layout.control_ids) == list(CONTROL_TOKENS)
    assert layout.code_offset == 50_264


def test_code_ids_round_trip_and_refuse_non_codes():
    layout = TokenLayout(text_size=100, num_codes=16)
    codes = torch.arange(16).view(4, 4)
    ids = layout.code_ids(codes)
    assert ids.min() == 107 and ids.max() == 122
    assert torch.equal(layout.to_codes(ids), codes)
    assert layout.is_code(ids).all() and not ((ids >= 0) & (ids < layout.text_size)).any()
    with pytest.raises(ValueError, match="not a visual code"):
        layout.to_codes(torch.tensor([106]))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        layout.code_ids(torch.tensor([16]))


def test_image_and_video_blocks_are_raster_order_with_markers():
    layout = TokenLayout(text_size=10, num_codes=8)
    codes = torch.tensor([[0, 1], [2, 3]])
    assert layout.image_block(codes) == [12, 17, 18, 19, 20, 13]
    video = layout.video_block(torch.stack([codes, codes + 4]))
    assert video == [14, 16, 17, 18, 19, 20, 16, 21, 22, 23, 24, 15]
    assert len(video) == layout.video_block_len(frames=2, grid_tokens=4)


def test_four_frames_of_64_codes_fit_in_384_and_frames_that_fit_says_how_many():
    assert TokenLayout.video_block_len(4, 64) == 262
    assert TokenLayout.frames_that_fit(64) == 5
    assert TokenLayout.frames_that_fit(256) == 1  # a 128x128 image: 16x16 codes
    assert TokenLayout.frames_that_fit(64, prefix=200) == 2
    assert TokenLayout.frames_that_fit(1024) == 0


# -- A2AVocab --------------------------------------------------------------------------------------


CAPTIONS = ["a red square", "a blue circle", "a green triangle", "a red circle moving left",
            "a blue square rotating", "a green square"] * 5


def write_tiny_gpt2_files(folder) -> int:
    """GPT-2's file format with GPT-2's byte alphabet and three merges; returns the text size it makes."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = ["Ġ r", "e d", "Ġr ed"]
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for merge in merges:
        vocab["".join(merge.split())] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return len(vocab)


@pytest.fixture(scope="module")
def vocab() -> A2AVocab:
    return A2AVocab.train(CAPTIONS, vocab_size=300)


def test_trained_bpe_stops_at_its_real_size_and_puts_the_layout_after_it(vocab):
    assert 256 < vocab.layout.text_size <= 300
    assert vocab.layout.vocab_size == vocab.layout.text_size + 7 + 256
    assert len(vocab.encode_text("a red square")) < len("a red square")  # merges were learnt


def test_text_round_trips_exactly_even_with_unseen_characters(vocab):
    for text in ["a red square", "A Purple HEXAGON, 3x!", "über ☃"]:
        assert vocab.decode_text(vocab.encode_text(text)) == text


def test_a_generated_caption_cut_in_the_middle_of_a_character_ends_before_it_as_the_captioners_does(vocab):
    """An image2text caption cut at its most tokens may end in one or two of the three bytes of "猫": decode_text
    wrote U+FFFD at its end, into captions.txt, the test report and the demo, where the captioner's decode leaves
    the cut character out. decode_generated leaves it out; a U+FFFD the caption holds as text is kept, and
    decode_text (render, prompts) still decodes every byte it is given."""
    ids = vocab.encode_text("a red 猫")
    end = vocab.layout.text_close
    assert [vocab.decode_generated(ids[:-1]), vocab.decode_generated([*ids[:-2], end])] == ["a red ", "a red "]
    assert vocab.decode_generated(ids) == "a red 猫"
    assert vocab.decode_generated(vocab.encode_text("a red \ufffd")) == "a red \ufffd"
    assert vocab.decode_text(ids[:-1]) == "a red \ufffd"


def test_mixed_encode_decode_round_trip(vocab):
    image = torch.randint(0, 256, (8, 8))
    video = torch.randint(0, 256, (4, 2, 2))
    segments = [("text", "a red square"), ("image", image), ("text", "moving"), ("video", video)]
    ids = vocab.encode(segments)
    assert len(ids) == (2 + len(vocab.encode_text("a red square"))) + 66 + (2 + len(vocab.encode_text("moving"))) + 22
    decoded = vocab.decode(ids)
    assert [k for k, _ in decoded] == ["text", "image", "text", "video"]
    assert decoded[0][1] == "a red square" and decoded[2][1] == "moving"
    assert torch.equal(decoded[1][1], image) and torch.equal(decoded[3][1], video)


def test_decoded_text_never_shows_codes_and_partial_blocks_decode_as_far_as_they_go(vocab):
    layout = vocab.layout
    red = vocab.encode_text("red")
    ids = [layout.text_open, *red, layout.code_offset + 5, layout.text_close]
    assert vocab.decode(ids) == [("text", "red")]
    assert vocab.decode_text([*red, layout.code_offset, layout.image_open]) == "red"
    partial_image = [layout.image_open, *(layout.code_offset + torch.arange(11)).tolist()]
    (kind, codes), = vocab.decode(partial_image, grid_side=4)
    assert kind == "image" and torch.equal(codes, torch.arange(8).view(2, 4))  # whole rows only
    frame = (layout.code_offset + torch.arange(4)).tolist()
    partial_video = [layout.video_open, layout.frame, *frame, layout.frame, *frame[:2]]
    (kind, codes), = vocab.decode(partial_video)
    assert kind == "video" and codes.shape == (1, 2, 2)


def test_parse_prompt_reads_control_tokens_by_name_like_encode(vocab):
    prompt = vocab.parse_prompt("<TEXT>a red square</TEXT><IMAGE>")
    assert prompt == [*vocab.encode([("text", "a red square")]), vocab.layout.image_open]
    assert vocab.render(prompt) == "<TEXT>a red square</TEXT><IMAGE>"


def test_rendered_ids_tell_a_code_or_control_token_from_text_that_reads_like_one(vocab):
    """generation.json's prompt rendered a typed "<c5>" (four text tokens) exactly as code 5: now text that
    reads as a token's name is written after a backslash, backslashes before it (or before a token) doubled,
    and any other text as it is."""
    layout = vocab.layout
    code_5 = [layout.text_open, *vocab.encode_text("a red"), layout.text_close, layout.image_open, layout.code_offset + 5]
    typed_5 = vocab.parse_prompt("<TEXT>a red</TEXT><IMAGE>") + vocab.encode_text("<c5>")
    assert vocab.render(code_5) == "<TEXT>a red</TEXT><IMAGE><c5>"
    assert vocab.render(typed_5) == r"<TEXT>a red</TEXT><IMAGE>\<c5>"

    def text_block(text: str) -> str:
        return vocab.render([layout.text_open, *vocab.encode_text(text), layout.text_close])

    assert text_block("see <c12> or <IMAGE>") == r"<TEXT>see \<c12> or \<IMAGE></TEXT>"
    assert text_block(r"a \<c5>") == r"<TEXT>a \\\<c5></TEXT>"  # the typed backslash doubled, then the escape
    assert text_block("ends in a backslash\\") == r"<TEXT>ends in a backslash\\</TEXT>"  # before a real token
    assert text_block(r"C:\pics <c> c5> 1 < 2") == r"<TEXT>C:\pics <c> c5> 1 < 2</TEXT>"  # nothing to tell apart
    assert vocab.render(vocab.encode_text("a trailing \\")) == "a trailing \\"  # no token after it


@pytest.mark.parametrize("text", ["see <c12> or <IMAGE>", r"a \<c5>", "ends in a backslash\\", r"C:\pics <c> 1 < 2",
                                  "a sign reading <FRAME> red", "two \\\\<TEXT> and </TEXT>"])
def test_a_rendered_prompt_parses_back_to_its_ids(vocab, text):
    """generation.json's prompt is render's: parse_prompt read its "\\<IMAGE>" as a backslash and a token, so the
    recorded prompt given back was another prompt (or refused). Its escapes are read now."""
    layout = vocab.layout
    ids = [layout.text_open, *vocab.encode_text(text), layout.text_close, layout.image_open]
    assert vocab.parse_prompt(vocab.render(ids)) == ids


def test_token_labels_name_control_tokens_codes_and_text_specials(vocab, tmp_path):
    # what explain and the attention maps write above each tile: never an empty label
    layout = vocab.layout
    assert "".join(vocab.token_label(i) for i in vocab.encode_text("a red square")) == "a red square"
    assert vocab.token_label(layout.image_open) == "<IMAGE>" and vocab.token_label(layout.code_offset + 17) == "<c17>"
    write_tiny_gpt2_files(tmp_path)
    gpt2 = A2AVocab.from_gpt2(tmp_path)
    assert gpt2.token_label(gpt2.hf.token_to_id("<|endoftext|>")) == "<|endoftext|>"


def test_a_prompt_words_part_of_a_character_is_labelled_by_its_bytes_not_a_box(vocab):
    """explain text2image drew "crème" as the tiles 'c', 'r', '\ufffd', '\ufffd', 'm', 'e'."""
    labels = [vocab.token_label(i) for i in vocab.encode_text("crème")]
    assert "".join(labels) == "cr<0xC3><0xA8>me"


def test_vocab_survives_json_as_stored_in_checkpoints(vocab):
    again = A2AVocab.from_json(vocab.to_json())
    assert again.layout == vocab.layout
    assert again.encode_text("a blue circle") == vocab.encode_text("a blue circle")


def test_gpt2_files_give_their_own_text_size_and_the_same_layout_after_it(tmp_path):
    text_size = write_tiny_gpt2_files(tmp_path)
    vocab = A2AVocab.from_gpt2(tmp_path)
    assert vocab.source == "gpt2" and vocab.layout.text_size == text_size == 260
    assert vocab.layout.code_offset == 267 and vocab.layout.vocab_size == 523
    assert vocab.encode_text(" red") == [258]  # the merges apply
    assert vocab.decode_text(vocab.encode_text("a red square")) == "a red square"
    vocab.hf.save(str(tmp_path / "tokenizer.json"))  # the one-file form loads the same
    assert A2AVocab.from_gpt2(tmp_path / "tokenizer.json").layout == vocab.layout


def test_missing_or_incomplete_gpt2_path_is_one_line_naming_what_is_missing(tmp_path):
    with pytest.raises(SupraUserError, match="does not exist"):
        A2AVocab.from_gpt2(tmp_path / "nowhere")
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(SupraUserError, match="lacks merges.txt") as err:
        A2AVocab.from_gpt2(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "vocab.json").unlink()
    with pytest.raises(SupraUserError, match="lacks vocab.json and merges.txt"):
        A2AVocab.from_gpt2(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SupraUserError, match="not a readable tokenizer.json"):
        A2AVocab.from_gpt2(tmp_path / "broken.json")


def test_a_vocab_json_that_is_no_mapping_of_tokens_to_ids_is_named_as_such(tmp_path):
    """tokenizers' own reading said "Bad vocabulary json file" of a list, and of string ids that the byte symbols
    were missing: the same check as data.gpt2_tokenizer's says what the file should be."""
    write_tiny_gpt2_files(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    (tmp_path / "vocab.json").write_text(json.dumps({token: str(i) for token, i in vocab.items()}), encoding="utf-8")
    with pytest.raises(SupraUserError, match=rf"^data.text_tokenizer={tmp_path}: .*vocab.json is not GPT-2's vocab.json "
                                             r"\(a JSON mapping of tokens to whole-number ids; it maps '.' to '0'\)$"):
        A2AVocab.from_gpt2(tmp_path)


def test_a_gpt2_vocabulary_cut_short_of_its_byte_symbols_is_refused_not_read_as_fewer_ids(tmp_path):
    # without its 256 byte symbols a byte-level BPE drops the text they spell: "a red square" was [0, 0]
    (tmp_path / "vocab.json").write_text('{"a": 0}')
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(SupraUserError, match=rf"^data.text_tokenizer={tmp_path} \(vocab.json\) lacks 255 of the 256 "
                                             r"byte symbols of a byte-level BPE \('!', '\"', '#', ...\): it is not "
                                             r"GPT-2's whole vocabulary; give its complete vocab.json \+ merges.txt"):
        A2AVocab.from_gpt2(tmp_path)
    write_tiny_gpt2_files(tmp_path)  # the byte symbols and a few merges: whole, if small
    whole = A2AVocab.from_gpt2(tmp_path)
    whole.hf.save(str(tmp_path / "tokenizer.json"))
    vocab = json.loads((tmp_path / "tokenizer.json").read_text())
    del vocab["model"]["vocab"]["!"]  # the one-file form alike
    (tmp_path / "tokenizer.json").write_text(json.dumps(vocab))
    with pytest.raises(SupraUserError, match=r"\(tokenizer.json\) lacks 1 of the 256 byte symbols .*\('!'\): it is"):
        A2AVocab.from_gpt2(tmp_path)
