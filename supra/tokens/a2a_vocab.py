"""a2a_nano's vocabulary: a byte-level BPE for the text ids, then 7 control tokens, then the visual codes.

    [text ids][<TEXT> </TEXT> <IMAGE> </IMAGE> <VIDEO> </VIDEO> <FRAME>][256 codes]   (TokenLayout)

The text part is GPT-2's 50,257-id BPE when the user gives its files (`data.text_tokenizer=PATH`:
vocab.json + merges.txt, or a tokenizer.json), which makes the release's 50,520 ids; otherwise (the
default: nothing may be downloaded) a byte-level BPE trained on the corpus captions, GPT-2's
pre-tokenisation and no normaliser, so text round-trips exactly. Control tokens and codes are not in
the HF tokenizer: they are ids past its end, handled here, so any GPT-2 file works unchanged.

`encode(segments)` / `decode(ids)` is the one pair that turns mixed sequences into ids and back.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from supra.tokens.a2a_layout import CONTROL_TOKENS, TokenLayout
from supra.tokens.caption_bpe import read_gpt2_vocab, readable_token, without_cut_character
from supra.utils.errors import SupraUserError, first_line

# A segment of a mixed sequence: ("text", str) | ("image", int64 [h, w] codes) | ("video", int64 [T, h, w]).
Segment = tuple[str, object]

# A token's name as render writes it (a control token, a code as <c17>), with the backslashes before it: text that
# reads so is escaped, so a rendered prompt tells a typed "<c5>" from code 5.
_TOKEN_NAME_RE = re.compile(r"(\\*)(" + "|".join(re.escape(t) for t in CONTROL_TOKENS) + r"|<c\d+>)")
_TRAILING_BACKSLASHES_RE = re.compile(r"(\\+)\Z")
FORMAT = "supra.a2a_vocab"


class A2AVocab:
    """Text tokenizer (HF `tokenizers`) + TokenLayout; ids 0..text_size-1 are the tokenizer's own."""

    def __init__(self, tokenizer: Tokenizer, num_codes: int = 256, source: str = "trained") -> None:
        ids = sorted(tokenizer.get_vocab(with_added_tokens=True).values())
        if ids != list(range(len(ids))):
            raise SupraUserError(f"text tokenizer ids are not 0..{len(ids) - 1} without gaps; use a complete vocabulary")
        self.hf = tokenizer
        self.source = source  # "trained" | "gpt2": said in the release card
        self.layout = TokenLayout(text_size=len(ids), num_codes=num_codes)

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def train(cls, captions: Iterable[str], vocab_size: int = 4096, num_codes: int = 256) -> A2AVocab:
        """A byte-level BPE with at most `vocab_size` text ids (fewer when the captions need fewer:
        layout.text_size is what it really has); the 256 byte symbols are always in, so any text encodes."""
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator(captions, trainer=trainer)
        return cls(tok, num_codes, source="trained")

    @classmethod
    def from_gpt2(cls, path: str | os.PathLike, num_codes: int = 256) -> A2AVocab:
        """GPT-2's tokenizer files: a folder with tokenizer.json, or with vocab.json + merges.txt, or a
        tokenizer.json file. Missing or unreadable files, or a byte-level vocabulary without its 256 byte symbols
        -> one-line SupraUserError naming them."""
        path = Path(path)
        if path.is_file():
            return cls(_whole_byte_level(_read_tokenizer_json(path), path), num_codes, source="gpt2")
        if not path.is_dir():
            raise SupraUserError(
                f"data.text_tokenizer={path} does not exist: give a folder with GPT-2's vocab.json + merges.txt "
                "(or tokenizer.json), or leave it unset to train a BPE on the captions"
            )
        if (path / "tokenizer.json").is_file():
            return cls(_whole_byte_level(_read_tokenizer_json(path / "tokenizer.json"), path, "tokenizer.json"),
                       num_codes, source="gpt2")
        missing = [name for name in ("vocab.json", "merges.txt") if not (path / name).is_file()]
        if missing:
            raise SupraUserError(
                f"data.text_tokenizer={path} lacks {' and '.join(missing)}: GPT-2's tokenizer needs vocab.json + "
                "merges.txt (or one tokenizer.json)"
            )
        try:  # tokenizers' own reading of a wrong vocab.json says only "Bad vocabulary json file", or worse
            read_gpt2_vocab(path / "vocab.json")
        except ValueError as err:
            raise SupraUserError(f"data.text_tokenizer={path}: {err}") from None
        try:
            bpe = models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt"))
        except Exception as err:  # tokenizers raises bare Exceptions on bad files
            raise SupraUserError(f"{path}/vocab.json + merges.txt are not a readable GPT-2 BPE ({err})") from err
        tok = Tokenizer(bpe)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        return cls(_whole_byte_level(tok, path, "vocab.json"), num_codes, source="gpt2")

    @classmethod
    def build(cls, text_tokenizer: str | None, captions: Iterable[str], vocab_size: int = 4096,
              num_codes: int = 256) -> A2AVocab:
        """The config's choice: GPT-2 files at `text_tokenizer`, else a BPE trained on `captions`."""
        if text_tokenizer:
            return cls.from_gpt2(text_tokenizer, num_codes)
        return cls.train(captions, vocab_size, num_codes)

    # -- storing (checkpoint["supra"]["a2a_vocab"], release tokenizer.json) ----------------------

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": 1, "num_codes": self.layout.num_codes,
                           "source": self.source, "tokenizer": json.loads(self.hf.to_str())})

    @classmethod
    def from_json(cls, text: str) -> A2AVocab:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise SupraUserError(f"this JSON is not an a2a vocabulary (format {data.get('format')!r}, expected {FORMAT!r})")
        return cls(Tokenizer.from_str(json.dumps(data["tokenizer"])), data["num_codes"], data.get("source", "trained"))

    # -- text -----------------------------------------------------------------------------------

    def encode_text(self, text: str) -> list[int]:
        """The text ids of `text`, without `<TEXT>` `</TEXT>` around them (a2a_sequences.text_block adds those)."""
        return self.hf.encode(text, add_special_tokens=False).ids

    def decode_text(self, ids: Iterable[int]) -> str:
        """Text of the text ids in `ids`; control ids and codes are dropped, so codes never show as text."""
        text_size = self.layout.text_size
        return self.hf.decode([i for i in map(int, ids) if 0 <= i < text_size], skip_special_tokens=True)

    def decode_generated(self, ids: Iterable[int]) -> str:
        """decode_text of generated ids (a caption, a text continued), without the U+FFFD of a character cut off
        by their end (the room for text ran out mid-character), as the captioner's decode leaves it out."""
        text_ids = [i for i in map(int, ids) if 0 <= i < self.layout.text_size]
        return without_cut_character(self.hf, text_ids, self.decode_text(text_ids))

    def token_label(self, token: int) -> str:
        """One token as explain and the attention maps label it: its text, or its name where decoding drops
        it (a text special such as GPT-2's <|endoftext|>, a control token, a code as <c17>); part of a
        character as its bytes (<0xC3>)."""
        if 0 <= token < self.layout.text_size:
            symbols = self.hf.id_to_token(token)
            return readable_token(self.decode_text([token]), symbols) or symbols or f"<{token}>"
        return self.render([token])

    def parse_prompt(self, prompt: str) -> list[int]:
        """"<TEXT>a red square</TEXT><IMAGE>" -> ids: control tokens by name, text between them by the BPE.
        Reads render's escapes, so generation.json's prompt gives back its ids: a name after an odd number of
        backslashes is text ("\\<IMAGE>" the text "<IMAGE>"), and the backslashes before a name are halved; a
        code's name (<c5>) is text, as a prompt cannot write codes."""
        ids: list[int] = []
        controls = self.layout.control_ids
        text, start = "", 0
        for match in _TOKEN_NAME_RE.finditer(prompt):
            backslashes, name = match[1], match[2]
            text += prompt[start : match.start()] + "\\" * (len(backslashes) // 2)
            start = match.end()
            if len(backslashes) % 2 or name not in controls:
                text += name
                continue
            if text:  # the text between two tokens encoded whole, as it was before render split it
                ids += self.encode_text(text)
                text = ""
            ids.append(controls[name])
        text += prompt[start:]
        return ids + self.encode_text(text) if text else ids

    def render(self, ids: Iterable[int]) -> str:
        """ids -> readable string: text decoded, control tokens by name, codes as <c17> (generation.json's
        prompt, labels). Unambiguous: text that reads as a token's name is written with a backslash before
        it (the text "<c5>" as \\<c5>, its backslashes before it doubled), as are a text's backslashes just
        before a token; other text is written as it is."""
        layout, out, run = self.layout, [], []
        names = {v: k for k, v in layout.control_ids.items()}
        for i in map(int, ids):
            if 0 <= i < layout.text_size:
                run.append(i)
                continue
            if run:
                out.append(_escaped(self.decode_text(run), before_token=True))
                run = []
            out.append(names.get(i) or f"<c{i - layout.code_offset}>")
        if run:
            out.append(_escaped(self.decode_text(run), before_token=False))
        return "".join(out)

    # -- mixed sequences ------------------------------------------------------------------------

    def encode(self, segments: Sequence[Segment]) -> list[int]:
        """Segments -> ids: ("text", s) -> <TEXT> s </TEXT>; ("image", [h, w]) -> an image block;
        ("video", [T, h, w]) -> a video block."""
        ids: list[int] = []
        for kind, value in segments:
            if kind == "text":
                ids += [self.layout.text_open, *self.encode_text(str(value)), self.layout.text_close]
            elif kind == "image":
                ids += self.layout.image_block(value)
            elif kind == "video":
                ids += self.layout.video_block(value)
            else:
                raise ValueError(f"segment kind {kind!r} is unknown: use 'text', 'image' or 'video'")
        return ids

    def decode(self, ids: Iterable[int], grid_side: int | None = None) -> list[Segment]:
        """ids -> segments, the inverse of `encode`. Text ids outside a block are text too; an opener
        ends the block before it; an unclosed block decodes as far as it goes: an image keeps its whole
        rows, a video its whole frames. grid_side: the code grid's side (default: the square root of a
        frame's or image's code count). Codes inside text and text inside image blocks are dropped."""
        layout = self.layout
        segments: list[Segment] = []
        kind, body, frames = None, [], []

        def flush() -> None:
            nonlocal kind, body, frames
            if kind == "text" and body:
                segments.append(("text", self.decode_text(body)))
            elif kind == "image" and body:
                side = grid_side or _side(len(body))
                rows = len(body) // side
                if rows:
                    segments.append(("image", layout.to_codes(torch.tensor(body[: rows * side])).view(rows, side)))
            elif kind == "video":
                whole = [f for f in [*frames, body] if f]
                side = grid_side or (_side(len(whole[0])) if whole else 1)
                whole = [f for f in whole if len(f) == side * side]
                if whole:
                    segments.append(("video", layout.to_codes(torch.tensor(whole)).view(len(whole), side, side)))
            kind, body, frames = None, [], []

        for i in map(int, ids):
            if i in (layout.text_open, layout.image_open, layout.video_open):
                flush()
                kind = {layout.text_open: "text", layout.image_open: "image", layout.video_open: "video"}[i]
            elif i in (layout.text_close, layout.image_close, layout.video_close):
                flush()
            elif i == layout.frame:
                if kind == "video":
                    if body:
                        frames.append(body)
                    body = []
            elif layout.code_offset <= i < layout.vocab_size:
                if kind in ("image", "video"):
                    body.append(i)
            elif 0 <= i < layout.text_size:
                if kind is None:
                    kind = "text"
                if kind == "text":
                    body.append(i)
            else:
                raise ValueError(f"id {i} is outside the vocabulary of {layout.vocab_size}")
        flush()
        return segments


def control_names_in(prompt: str) -> list[str]:
    """The control-token names `prompt` holds as tokens, not escaped (after an even number of backslashes)."""
    return [m[2] for m in _TOKEN_NAME_RE.finditer(prompt) if m[2] in CONTROL_TOKENS and len(m[1]) % 2 == 0]


def _escaped(text: str, before_token: bool) -> str:
    """Text as render writes it: a token name in it ("<c5>", "<TEXT>") after a backslash, the backslashes before
    it doubled, so a name after an even number of backslashes (none) is a token; the trailing backslashes
    doubled too where a token follows."""
    text = _TOKEN_NAME_RE.sub(lambda m: m[1] * 2 + "\\" + m[2], text)
    return _TRAILING_BACKSLASHES_RE.sub(lambda m: m[1] * 2, text) if before_token else text


def _side(n: int) -> int:
    """The side of a square grid of n codes, or n itself (one row) when n is not square."""
    side = math.isqrt(n)
    return side if side * side == n else max(n, 1)


def _whole_byte_level(tok: Tokenizer, path: Path, file: str | None = None) -> Tokenizer:
    """`tok` (data.text_tokenizer=`path`, its `file` where it is a folder) when it is no byte-level BPE or has
    all 256 byte symbols, which spell whatever no merge covers: a vocabulary cut short would drop that text
    without a word ("a red square" as two ids)."""
    if not isinstance(tok.pre_tokenizer, pre_tokenizers.ByteLevel) and not isinstance(tok.decoder, decoders.ByteLevel):
        return tok
    vocab = tok.get_vocab(with_added_tokens=False)
    missing = [symbol for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()) if symbol not in vocab]
    if missing:
        raise SupraUserError(
            f"data.text_tokenizer={path}{f' ({file})' if file else ''} lacks {len(missing)} of the 256 byte symbols "
            "of a byte-level BPE "
            f"({', '.join(map(repr, missing[:3]))}{', ...' if len(missing) > 3 else ''}): it is not GPT-2's whole "
            "vocabulary; give its complete vocab.json + merges.txt (or tokenizer.json)"
        )
    return tok


def _read_tokenizer_json(path: Path) -> Tokenizer:
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises bare Exceptions on bad JSON
        raise SupraUserError(f"{path} is not a readable tokenizer.json ({first_line(err)})") from err
