"""The caption tokenizer: a byte-level BPE (Hugging Face `tokenizers`) trained on training captions.

Ids 0-3 are fixed: <pad> 0, <bos> 1, <eos> 2, <unk> 3, whatever the data, so the model's BOS/EOS
defaults hold. Saved as tokenizer.json beside the run's checkpoints and inside every checkpoint.
GPT-2's published files (vocab.json + merges.txt) load too, their ids moved up by 4 to keep 0-3.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from supra.utils.files import parse_json, write_text_atomic
from supra.utils.numbers import counted, is_whole

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
# A trained byte-level BPE always holds every byte and the special tokens, however small its vocab_size.
MIN_TRAINED_VOCAB = 256 + len(SPECIAL_TOKENS)
# Characters of each caption the BPE trains on: far more than MAX_SEQ tokens can use, and a bound on its
# training time, which grows with the square of a word's length (a data URI pasted as a caption).
TRAIN_CHARS = 2000
# How train() builds a tokenizer, in the key of the tokenizers a cache holds: a new way never reuses one
# trained the old way (2: no NFKC; 3: lower-cased by str.lower, a word-final Σ as ς).
TRAINING_VERSION = 3
# captions encoded between two calls of encode_batch's `advance`: a progress bar moves every second or so
ENCODE_CHUNK = 10_000


def read_gpt2_vocab(path: Path) -> dict[str, int]:
    """GPT-2's vocab.json at `path`: a JSON mapping of tokens to whole-number ids, or a ValueError naming the file
    (a list, or ids given as strings, failed far from here with an AttributeError or TypeError)."""
    what = "not GPT-2's vocab.json (a JSON mapping of tokens to whole-number ids"
    try:
        vocab = parse_json(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is {what}: {err})") from None
    if not isinstance(vocab, dict):
        kind = {list: "an array", str: "a string"}.get(type(vocab), "a number or null")
        raise ValueError(f"{path} is {what}; it holds {kind})")
    bad = next(((token, i) for token, i in vocab.items() if not is_whole(i, 0)), None)
    if bad is not None:
        raise ValueError(f"{path} is {what}; it maps {bad[0]!r} to {bad[1]!r})")
    return vocab


@functools.cache
def _byte_of_symbol() -> dict[str, int]:
    """GPT-2's byte-level alphabet read back: the printable character each byte is written as in a token -> the
    byte (printable Latin-1 bytes as themselves, the others as chr(256 + n) in byte order)."""
    as_themselves = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [byte for byte in range(256) if byte not in as_themselves]
    return {chr(byte): byte for byte in as_themselves} | {chr(256 + n): byte for n, byte in enumerate(moved)}


def _readable(data: bytes) -> str:
    """UTF-8 bytes as text, each byte that is only part of a character (cut off by the token's edge) as <0xC3>."""
    text = ""
    while data:
        try:
            return text + data.decode("utf-8")
        except UnicodeDecodeError as err:
            text += data[: err.start].decode("utf-8") + "".join(f"<0x{byte:02X}>" for byte in data[err.start : err.end])
            data = data[err.end :]
    return text


def _ends_mid_character(data: bytes) -> bool:
    """Whether `data` ends in the first bytes of a UTF-8 character whose last ones are missing."""
    for n in range(1, min(3, len(data)) + 1):
        try:
            data[-n:].decode("utf-8")
            return False
        except UnicodeDecodeError as err:
            if err.start == 0 and err.reason == "unexpected end of data":
                return True
    return False


def without_cut_character(hf: Tokenizer, text_ids: Sequence[int], text: str) -> str:
    """`text` (`text_ids` decoded by the byte-level BPE `hf`, no special ids among them) without the U+FFFD
    that decoding writes for the bytes of a character cut off by the end (a caption cut at its most tokens: its
    other bytes never came); one the text holds as text stays."""
    if not text.endswith("\ufffd"):
        return text
    byte_of, tail = _byte_of_symbol(), b""
    for token in reversed(text_ids):
        symbols = hf.id_to_token(int(token))
        if symbols is None or any(symbol not in byte_of for symbol in symbols):
            return text  # not a byte-level token: nothing to tell
        tail = bytes(byte_of[symbol] for symbol in symbols) + tail
        if len(tail) >= 3:  # a cut character left at most 3 of its bytes
            break
    return text[:-1] if _ends_mid_character(tail) else text


def readable_token(decoded: str, symbols: str | None) -> str:
    """One token's text as explain labels it: `decoded` (the token decoded alone), unless that holds U+FFFD, a
    box that says nothing: a byte-level BPE token (`symbols`, as id_to_token gives them) holding part of a
    UTF-8 character ("è" is two bytes; a token may hold one) then reads as its whole characters and its
    partial bytes as <0xC3>."""
    byte_of = _byte_of_symbol()
    if "\ufffd" not in decoded or not symbols or any(symbol not in byte_of for symbol in symbols):
        return decoded
    return _readable(bytes(byte_of[symbol] for symbol in symbols))


def _lower_cases(tokenizer: Tokenizer) -> bool:
    """Whether `tokenizer`'s normaliser lower-cases (Supra's trained ones do; GPT-2's, with none, is cased)."""
    if tokenizer.normalizer is None:
        return False

    def holds(node: object) -> bool:
        if isinstance(node, dict):
            return node.get("type") == "Lowercase" or any(map(holds, node.values()))
        return isinstance(node, list) and any(map(holds, node))

    return holds(json.loads(tokenizer.normalizer.__getstate__()))


class SpecialTokensError(ValueError):
    """A tokenizer that reads but lacks Supra's special tokens at ids 0-3; `found`: what it holds there,
    for callers that say so in their own words."""

    def __init__(self, message: str, found: Sequence[str | None] = ()) -> None:
        super().__init__(message)  # found defaults: an error rebuilt from its message alone (unpickled) still builds
        self.found = list(found)


class CaptionTokenizer:
    """Encode captions to BOS ... EOS id sequences and decode ids back to text."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        found = [tokenizer.id_to_token(i) for i in range(len(SPECIAL_TOKENS))]
        if found != list(SPECIAL_TOKENS):
            raise SpecialTokensError(f"its ids 0-3 are {' '.join(map(str, found))}, not Supra's special tokens "
                                     f"{' '.join(SPECIAL_TOKENS)}", found)
        # caption text reading "<eos>" or "<pad>" is text, never the special id (an EOS mid-caption taught the
        # model to stop there); not stored in tokenizer.json, so set here for every tokenizer, old ones too
        tokenizer.encode_special_tokens = True
        self.hf = tokenizer
        self.bos_id, self.eos_id = BOS_ID, EOS_ID
        # lower-cased in Python first, as the scorer's PTB tokenizer (Java's toLowerCase) does: the normaliser's
        # Lowercase goes one character at a time and makes a word-final Σ σ, where both make it ς. The stored
        # normaliser is left as it is, so tokenizers saved before read back and encode everything else the same.
        self.lower_cases = _lower_cases(tokenizer)

    # -- building and storing ---------------------------------------------------------------------

    @classmethod
    def train(cls, captions: Iterable[str], vocab_size: int) -> CaptionTokenizer:
        """Train a byte-level BPE of at most `vocab_size` tokens (fewer if the captions need fewer), but never
        fewer than MIN_TRAINED_VOCAB (260): its 256 byte tokens and 4 special ones come whatever `vocab_size`.
        Each caption's first TRAIN_CHARS characters train it (a warning says how many were longer)."""
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        # lower-cased as the caption scorer's PTB tokenizer does, and nothing more: NFKC ("２３" -> "23", "ﬁ" -> "fi")
        # made references the model could never emit. Tokenizers stored before keep their own (NFKC) normaliser.
        tok.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Strip()])
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        n_cut = 0

        def bounded(texts: Iterable[str]) -> Iterable[str]:
            nonlocal n_cut
            for text in texts:
                n_cut += len(text) > TRAIN_CHARS
                yield text[:TRAIN_CHARS].lower()  # as encode_batch sees it (lower_cases)

        tok.train_from_iterator(bounded(captions), trainer=trainer)
        if n_cut:
            log.warning("tokenizer: %s longer than %d characters: trained on %s first %d only",
                        counted(n_cut, "caption"), TRAIN_CHARS, "its" if n_cut == 1 else "their", TRAIN_CHARS)
        return cls(tok)

    @classmethod
    def from_gpt2_files(cls, folder: str | os.PathLike) -> CaptionTokenizer:
        """GPT-2's byte-level BPE from `folder`/vocab.json and merges.txt, as OpenAI and the Hugging Face
        Hub publish them (merges.txt opens with a `#version` line). Cased, no normaliser, as GPT-2; its
        50,257 tokens follow our 4 special ones, so VOCAB_SIZE must be at least 50,261."""
        folder = Path(folder)
        vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
        for path in (vocab_path, merges_path):
            if not path.is_file():
                raise ValueError(f"{path} not found: GPT-2's tokenizer is a folder with vocab.json and merges.txt")
        gpt2_vocab = read_gpt2_vocab(vocab_path)
        vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
        vocab.update({token: i + len(SPECIAL_TOKENS) for token, i in gpt2_vocab.items() if token not in vocab})
        lines = merges_path.read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
        bad = next((m for m in merges if len(m) != 2 or not all(part in vocab for part in m)), None)
        if bad is not None:
            raise ValueError(f"{merges_path}: merge {' '.join(bad)!r} is not two tokens of {vocab_path.name}")
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens(list(SPECIAL_TOKENS))  # already at ids 0-3: marks them special (skipped in decoding)
        return cls(tok)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> CaptionTokenizer:
        """tokenizer.json at `path`; a ValueError naming it when it does not read, a SpecialTokensError when
        it reads but lacks Supra's special tokens (the caller says what to do)."""
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises bare Exceptions on bad JSON
            raise ValueError(f"{path} is not a readable tokenizer.json ({err})") from err
        try:
            return cls(tokenizer)
        except SpecialTokensError as err:
            raise SpecialTokensError(f"{path} reads, but {err}", err.found) from None

    @classmethod
    def from_json(cls, text: str) -> CaptionTokenizer:
        return cls(Tokenizer.from_str(text))

    def to_json(self) -> str:
        return self.hf.to_str()

    def save(self, path: str | os.PathLike) -> Path:
        """Write tokenizer.json atomically (temp file + rename), so a crash never leaves half a file."""
        return write_text_atomic(path, self.to_json())

    # -- using ------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode_batch(self, captions: Sequence[str], max_len: int,
                     advance: Callable[[int], None] | None = None) -> tuple[torch.Tensor, int]:
        """Captions -> int64 [N, L] of BOS, tokens, EOS, right-padded with PAD_ID; L <= max_len.

        A caption longer than max_len is cut with its EOS kept; returns how many were cut. `advance(n)` is called
        after each ENCODE_CHUNK captions encoded (a progress bar's: a split of 200,000 takes seconds).
        """
        if max_len < 3:
            raise ValueError(f"max_len={max_len} leaves no room for a token between BOS and EOS")
        texts = [caption.lower() for caption in captions] if self.lower_cases else list(captions)
        # the ids alone (no offsets): a fifth faster where the installed tokenizers has it (0.21 on)
        encode = getattr(self.hf, "encode_batch_fast", self.hf.encode_batch)
        kept: list[list[int]] = []
        n_truncated = 0
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunk = texts[start:start + ENCODE_CHUNK]
            for encoding in encode(chunk):
                ids = encoding.ids
                n_truncated += len(ids) > max_len - 2
                kept.append(ids[: max_len - 2])
            if advance is not None:
                advance(len(chunk))
        # placed by numpy in one go: a torch.tensor per row took seconds for a split of 200,000 captions
        n_tokens = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
        width = int(n_tokens.max(initial=0)) + 2
        out = np.full((len(kept), width), PAD_ID, dtype=np.int64)
        out[:, 0] = BOS_ID
        columns = np.arange(width)
        out[(columns >= 1) & (columns <= n_tokens[:, None])] = np.fromiter(
            itertools.chain.from_iterable(kept), dtype=np.int64, count=int(n_tokens.sum()))
        out[np.arange(len(kept)), n_tokens + 1] = EOS_ID
        out = torch.from_numpy(out)
        return out, n_truncated

    def decode(self, ids: Sequence[int]) -> str:
        """The caption text of token ids (generate's output), special tokens (BOS, EOS, PAD) dropped; a last
        token holding only the first bytes of a character (a caption cut at max_new_tokens) is left out."""
        return self._whole(list(ids), self.hf.decode(list(ids), skip_special_tokens=True))

    def _whole(self, ids: list[int], text: str) -> str:
        """`text` (decoded `ids`) stripped, without the U+FFFD of a character cut off by the caption's end."""
        return without_cut_character(self.hf, [i for i in ids if i >= len(SPECIAL_TOKENS)], text.strip()).strip()

    def token_label(self, token: int) -> str:
        """One token as explain and the attention maps label it: its text, or its name where decoding drops
        it (<pad>, <bos>, <eos>, <unk>), never an empty tile; part of a character as its bytes (<0xC3>)."""
        symbols = self.hf.id_to_token(token)
        return readable_token(self.hf.decode([token], skip_special_tokens=True), symbols) or symbols or f"<{token}>"

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        """decode of each row of ids, in one call."""
        rows = [list(ids) for ids in batch]
        return [self._whole(ids, text) for ids, text in zip(rows, self.hf.decode_batch(rows, skip_special_tokens=True),
                                                             strict=True)]
