"""What a media folder holds, before anything is decoded: the media files, their captions, what was
ignored, and a deterministic split by file.

- Media: the pictures `caption` reads (images.IMAGE_SUFFIXES: .png .jpg .jpeg .jfif .jpe .webp .bmp .tif .tiff
  .ppm .pgm .ico .avif ...) as stills and .gif (animations), any case, in `root` and its subfolders; names are
  relative posix paths, sorted. Hidden files and folders (a leading dot: .git, .DS_Store, macOS's ._photo.jpg)
  are passed over silently, unless captions name one (counted as captions for hidden files); any other file
  is counted as "not media", and a sidecar of one (clip.txt beside clip.mp4) as its caption.
  Linked folders are followed, each real folder once (a second path to one is counted, not listed;
  captions.jsonl/csv/tsv may name a file through either path: latest/a.png finds 2024/a.png).
- Captions: `photo.txt` (or `photo.png.txt`, which wins, for when photo.png and photo.gif differ; the
  suffix in any case: PHOTO.TXT) beside a file, one caption per non-blank line; `captions.jsonl` at the
  root, lines {"file": "sub/photo.png", "caption": "..."}; `captions.csv` at the root, header
  `file,caption` (more columns after them are ignored), quoted captions may hold commas and line breaks
  (unquoted ones commas and quotes as written too when there are only the two columns: a 12" pizza, 1,000
  slices); `captions.tsv` at the root, header `file<TAB>caption`. Every one of these that is there is read
  (FolderIndex.caption_sources names them).
  Names match in either Unicode form (café.png unzipped on a Mac is NFD, its café.txt written on Linux NFC).
  A file may have several captions from all three; `captions` holds each once (what the VQ-VAE and a2a runs
  and a captioner train on), `references` every line of them, a caption written twice twice (what a
  captioner is scored against: a folder's captions have no ids of their own, so each line is one). Caption files are read as
  UTF-8, or UTF-16/32 where a byte-order mark says so (Notepad's and Excel's "Unicode"); any other as
  Windows-1252, said in one warning per folder with their count and a few of them.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.progress import Progress

from supra.data.captions import clean_caption, read_caption_table, read_lines
from supra.data.images import IMAGE_SUFFIXES
from supra.utils.distributed import rank_and_world
from supra.utils.errors import SupraUserError
from supra.utils.files import as_typed_and_absolute, parse_json
from supra.utils.folder_walk import VisibleFiles, listed_path, walk_visible
from supra.utils.numbers import counted

log = logging.getLogger(__name__)

GIF_SUFFIX = ".gif"
# the suffixes `caption` reads (Pillow's for the picture formats), so that a folder trains on every picture
# caption reads in it: .jfif .jpe .ppm .pgm .ico .avif were left out, with their captions, without a word
STILL_SUFFIXES = tuple(sorted(IMAGE_SUFFIXES - {GIF_SUFFIX}))
MEDIA_SUFFIXES = (*STILL_SUFFIXES, GIF_SUFFIX)
CAPTION_FILES = ("captions.jsonl", "captions.csv", "captions.tsv")
SIDECAR_SUFFIX = ".txt"
# what each data source wants at data.root, said where it is missing or a file
MEDIA_FOLDER = "a folder of images and GIFs"
CAPTION_FOLDER = "a folder of photos with captions (photo.txt beside each, or a captions.jsonl / .csv / .tsv at its root)"
SIDECARS = "name.txt beside each image"  # the sidecar layout, as the set-up line names it
# Each reason below is the words after its noun, counted with it (Tally.add's noun=): "1 folder listed ...",
# "2 folders listed ...". A second path to a folder (`latest -> 2024`): its files are listed once, under the
# first path, or the split by name would put their copies in train and test alike
ALIAS, ALIAS_NOUN = "listed already under another path", "folder"
# a named pipe, socket or device under a picture's name: never opened (reading a pipe waits for a writer forever)
SPECIAL, SPECIAL_NOUN = "(named pipes, sockets, devices)", "not regular file"
HIDDEN = "for hidden files (a leading dot), which are skipped"  # after "N captions"
NOT_MEDIA = "not media"
CAPTIONS_OF_NOT_MEDIA = "of files not read (name.txt beside a file that is no picture)"  # after "N captions"
NO_MEDIA_FILE = "for no media file"  # after "N captions"
BLANK_CAPTION = "blank caption"  # a noun of its own: "2 blank captions"
SHARED_SIDECAR = "that two images share, captioning neither (name each <name>.<ext>.txt: photo.jpg.txt)"  # "N sidecars"
# A caption is cut at MAX_CAPTION_CHARS where it is read, and counted: thousands of tokens, far beyond any model's
# caption length (MAX_SEQ 48), so nothing a model reads is lost, while a 200 MB line is not held and hashed whole
MAX_CAPTION_CHARS = 10_000
LONG_CAPTION = f"over {MAX_CAPTION_CHARS:,} characters, cut to them"  # after "N captions"
# a line of captions.jsonl that is no JSON object with both keys: the summary says what each line needs
UNREADABLE_LINE = '(each a JSON object with "file" and "caption")'  # after "N unreadable caption lines"
# caption lines (or images' sidecars) read between two moves of the progress bar: 200,000 take seconds
PROGRESS_STEP = 1000
Item = TypeVar("Item")


def reason_counted(n: int, reason: str, noun: str | None) -> str:
    """`n` things of `reason`, as Tally says them: "2 unreadable" (noun None: words that read after any count),
    "1 broken link" (noun "": the reason is the singular noun), "1 GIF cut short" (noun "GIF": the words after it)."""
    if noun is None:
        return f"{n} {reason}"
    return f"{counted(n, noun)} {reason}" if noun else counted(n, reason)


@dataclass
class Tally:
    """Counts by reason, with the first few examples of each (for one-line summaries). A reason is words that read
    after any count ("2 unreadable"), a singular noun added with `noun=True` ("1 broken link", "2 broken links"), or
    words after the singular noun given as `noun` ("GIF" and "cut short": "1 GIF cut short", "2 GIFs cut short")."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    nouns: dict[str, str] = field(default_factory=dict)  # reason -> the noun its count takes ("" for the reason)

    def add(self, reason: str, example: str, n: int = 1, noun: bool | str = False) -> None:
        self.counts[reason] += n
        if noun:
            self.nouns[reason] = "" if noun is True else noun
        examples = self.examples.setdefault(reason, [])
        if len(examples) < 3:
            examples.append(example)

    def describe(self, examples: int = 2) -> str:
        return ", ".join(f"{reason_counted(n, reason, self.nouns.get(reason))} (e.g. {', '.join(self.examples[reason][:examples])})"
                         for reason, n in self.counts.items())

    def __bool__(self) -> bool:
        return bool(self.counts)


@dataclass
class FolderIndex:
    """The media files of a folder (sorted relative paths), each one's captions, and what was passed over."""

    root: Path
    media: list[str]
    captions: dict[str, list[str]]
    ignored: Tally = field(default_factory=Tally)  # files that are not media, folders walked already (ALIAS)
    caption_problems: Tally = field(default_factory=Tally)
    # what the captions were read from, in reading order: SIDECARS where a photo.txt was, then each root
    # caption file there is (all of them: their captions joined), for the set-up line to name
    caption_sources: list[str] = field(default_factory=list)
    # every caption line of each media file, in reading order, repeats too (captions holds each once)
    references: dict[str, list[str]] = field(default_factory=dict)
    # the folder as walk_visible listed it: what a caption source looks its images up in, not listed again
    walk: VisibleFiles | None = None


def _key(name: str) -> str:
    """A path as written in captions.jsonl/csv -> our relative posix form."""
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _hidden(name: str) -> bool:
    """Whether a relative path passes through a hidden file or folder (`.hidden.jpg`, `.thumbs/a.png`), which
    `walk_visible` passes over: a caption naming one names a file that is there but skipped, not a missing one."""
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:  # outside the folder: not one of its files at all
        return False
    return any(part.startswith(".") and part != "." for part in parts)


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def file_named(files: list[str], aliases: dict[str, str]) -> Callable[[str], str | None]:
    """A lookup: a relative posix path as a caption or annotation file writes it -> the file of `files` it
    names, or None. Through a second path to its folder (`aliases`, walk_visible's: latest/a.png is
    2024/a.png), and in either Unicode form: a folder unzipped on a Mac holds "é" as e + a combining accent
    (NFD) where an editor's captions.jsonl or a dataset's json writes one character (NFC). A name written
    exactly as a file's wins over another file's name in the other form."""
    exact = set(files)
    on_disk = {_nfc(name): name for name in files}
    nfc_aliases = {_nfc(alias): _nfc(listed) for alias, listed in aliases.items()}

    def find(name: str) -> str | None:
        listed = listed_path(name, aliases)
        return listed if listed in exact else on_disk.get(listed_path(_nfc(name), nfc_aliases))

    return find


class _Captions:
    def __init__(self, root: Path, media: list[str], aliases: dict[str, str], problems: Tally,
                 progress: Progress) -> None:
        self.root = root
        self.progress = progress
        self.by_file: dict[str, list[str]] = {name: [] for name in media}
        self.every_line: dict[str, list[str]] = {name: [] for name in media}  # repeats too: FolderIndex.references
        # a name as a caption file writes it -> the file's own, in either Unicode form, through either path
        self.file_named = file_named(media, aliases)
        self.problems = problems
        self.not_utf8: list[Path] = []  # read as Windows-1252: said once at the end, not once per file

    def _shown(self, items: Iterable[Item], description: str, total: int | None) -> Iterator[Item]:
        """`items`, with a progress bar of `description` that moves as they are read."""
        task, n = self.progress.add_task(description, total=total), 0
        for n, item in enumerate(items, 1):
            yield item
            if n % PROGRESS_STEP == 0:
                self.progress.advance(task, PROGRESS_STEP)
        self.progress.advance(task, n % PROGRESS_STEP)

    def add(self, name: str, caption: str, where: str) -> None:
        too_long = len(caption) > MAX_CAPTION_CHARS
        caption = clean_caption(caption[:MAX_CAPTION_CHARS])
        name = self.file_named(name) or name
        if name not in self.by_file:
            self.problems.add(HIDDEN if _hidden(name) and (self.root / name).is_file() else NO_MEDIA_FILE, where,
                              noun="caption")
        elif not caption:
            self.problems.add(BLANK_CAPTION, where, noun=True)
        else:
            if too_long:
                self.problems.add(LONG_CAPTION, where, noun="caption")
            self.every_line[name].append(caption)
            if caption not in self.by_file[name]:
                self.by_file[name].append(caption)

    def read_sidecars(self, files: set[str]) -> set[str]:
        """Captions from <name>.txt / <stem>.txt beside each file; returns the sidecars used."""
        used = set()
        # photo.jpg's sidecar by its name less the suffix, in any case (PHOTO.JPG beside PHOTO.TXT); sorted,
        # so where photo.TXT and photo.txt both exist the lower-case one wins. Keyed in NFC, as file_named matches:
        # café.png unzipped on a Mac (NFD) and the café.txt written for it on Linux (NFC) are a pair
        sidecars = {_nfc(f[: -len(SIDECAR_SUFFIX)]): f
                    for f in sorted(files) if f.lower().endswith(SIDECAR_SUFFIX)}
        by_stem, shared = self._stem_sidecars(sidecars)
        used |= shared  # read, and counted: not "not media"
        for name in self._shown(self.by_file, f"reading the sidecars of {counted(len(self.by_file), 'file', grouped=True)}",
                                len(self.by_file)):
            sidecar = sidecars.get(_nfc(name)) or by_stem.get(name)
            if sidecar is not None:
                used.add(sidecar)
                lines = [line for line in read_lines(self.root / sidecar, self.not_utf8) if line.strip()]
                if not lines:  # counted, as a blank caption of captions.jsonl is: not a file silently without one
                    self.problems.add(BLANK_CAPTION, sidecar, noun=True)
                for line in lines:
                    self.add(name, line, sidecar)
        return used

    def _stem_sidecars(self, sidecars: dict[str, str]) -> tuple[dict[str, str], set[str]]:
        """The <stem>.txt of each file without a <name>.txt, by file; and the <stem>.txt files that two such files
        share (x.txt beside x.jpg and x.png), which caption neither, counted: which picture one describes is
        unknown, and the two files, split by name, could be one picture in train and in test."""
        users: dict[str, list[str]] = {}
        for name in self.by_file:
            sidecar = sidecars.get(_nfc(name.rsplit(".", 1)[0]))
            if sidecar is not None and _nfc(name) not in sidecars:
                users.setdefault(sidecar, []).append(name)
        for sidecar, names in users.items():
            if len(names) > 1:
                self.problems.add(SHARED_SIDECAR, f"{sidecar} ({', '.join(names)})", noun="sidecar")
        return ({names[0]: sidecar for sidecar, names in users.items() if len(names) == 1},
                {sidecar for sidecar, names in users.items() if len(names) > 1})

    def read_jsonl(self, path: Path) -> None:
        lines = read_lines(path, self.not_utf8)
        for number, line in enumerate(self._shown(lines, f"reading {path.name}", len(lines)), 1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                entry = parse_json(line)
                name, caption = entry["file"], entry["caption"]
                if not isinstance(name, str) or not isinstance(caption, str):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                self.problems.add(UNREADABLE_LINE, where, noun="unreadable caption line")
                continue
            self.add(_key(name), caption, where)

    def read_csv(self, path: Path) -> None:
        delimiter = "\t" if path.suffix == ".tsv" else ","
        rows = read_caption_table(path, ("file", "caption"), delimiter, media_suffixes=MEDIA_SUFFIXES,
                                  not_utf8=self.not_utf8)
        for number, name, caption in self._shown(rows, f"reading {path.name}", None):
            self.add(_key(name), caption, f"{path.name}:{number}")


def scan_folder(root: str | Path, wanted: str = MEDIA_FOLDER, show_progress: bool = False) -> FolderIndex:
    """Find the media files under `root` and their captions (`show_progress`: a bar while their files are
    read); nothing is decoded.

    One-line SupraUserError when root is missing, not a folder (saying it wants `wanted`: what the data source
    reading it takes), or holds no media file.
    """
    root = Path(root)
    if not root.exists():
        raise SupraUserError(f"data.root={as_typed_and_absolute(root)} does not exist: point it at {wanted}")
    if not root.is_dir():
        raise SupraUserError(f"data.root={as_typed_and_absolute(root)} is a file, not a folder: point it at {wanted}")
    walk = walk_visible(root)
    files = walk.files
    media = [f for f in files if f.lower().endswith(MEDIA_SUFFIXES)]
    if not media:
        found = f" (only {len(files)} other files, e.g. {', '.join(files[:2])})" if files else " (it is empty)"
        raise SupraUserError(
            f"data.root={root} holds no images or GIFs{found}: add {' '.join(STILL_SUFFIXES)} or .gif files "
            "(subfolders are searched too) or point data.root elsewhere"
        )
    index = FolderIndex(root, media, {}, walk=walk)
    for alias, listed in walk.aliases.items():
        index.ignored.add(ALIAS, f"{alias} = {listed}", noun=ALIAS_NOUN)
    for name in walk.special:
        index.ignored.add(SPECIAL, name, noun=SPECIAL_NOUN)
    with Progress(disable=not show_progress, transient=True) as progress:
        captions = _Captions(root, media, walk.aliases, index.caption_problems, progress)
        used = captions.read_sidecars(set(files))
        index.caption_sources = [SIDECARS] if used else []
        for name in CAPTION_FILES:
            if (root / name).is_file():
                (captions.read_jsonl if name.endswith(".jsonl") else captions.read_csv)(root / name)
                used.add(name)
                index.caption_sources.append(name)
    index.captions, index.references = captions.by_file, captions.every_line
    if captions.not_utf8 and rank_and_world()[0] == 0:  # every DDP rank reads the folder alike: said by rank 0 alone
        names = [path.relative_to(root).as_posix() for path in captions.not_utf8]
        is_, them, their = ("is", "it", "its") if len(names) == 1 else ("are", "them", "their")
        log.warning("%s under %s %s not UTF-8 (e.g. %s): read as Windows-1252; save %s as UTF-8 if %s captions look "
                    "wrong", counted(len(names), "caption file"), root, is_, ", ".join(names[:3]), them, their)
    left_out = [name for name in files if name not in used and name not in index.captions]
    their_captions = captions_of(left_out)
    for name in left_out:
        if name in their_captions:
            index.ignored.add(CAPTIONS_OF_NOT_MEDIA, name, noun="caption")
        else:
            index.ignored.add(NOT_MEDIA, name)
    return index


def captions_of(left_out: list[str]) -> set[str]:
    """The sidecars among `left_out` whose file is left out too (clip.txt or clip.mp4.txt beside clip.mp4):
    counted with it, not as files of no kind."""
    others = [name for name in left_out if not name.lower().endswith(SIDECAR_SUFFIX)]
    names = {_nfc(name) for name in others} | {_nfc(name.rsplit(".", 1)[0]) for name in others}
    return {name for name in left_out
            if name.lower().endswith(SIDECAR_SUFFIX) and _nfc(name[: -len(SIDECAR_SUFFIX)]) in names}


def _draw(name: str, seed: int) -> float:
    """A number in [0, 1) that a seeded hash of the name alone gives: the file's split follows from it."""
    # surrogateescape: a name that is not UTF-8 (a Latin-1 file name on Linux) hashes as its bytes
    return int.from_bytes(hashlib.sha256(f"{seed}\0{name}".encode("utf-8", "surrogateescape")).digest()[:8], "big") / 2**64


def split_by_file(files: list[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """train/val/test lists of files (each sorted): a file is in val when its draw (`_draw`, from its name
    and the seed) is under val_fraction, in test when under val_fraction + test_fraction, else in train.

    So a file's split does not depend on which other files exist: adding files to a folder never moves an
    old one between splits (a held-out image is never trained on later). The sizes are the fractions on
    average; a held-out split with a fraction > 0 that no draw falls in (a folder of a few files) takes
    the train file of lowest draw, and gives it back to train once files of its own arrive: the one
    exception, which no rule of a file's name alone can avoid (lent_files names it, for the set-up line).
    """
    draws = {name: _draw(name, seed) for name in files}
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for name, u in draws.items():
        splits["val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"].append(name)
    for split, fraction in (("val", val_fraction), ("test", test_fraction)):
        if fraction > 0 and not splits[split] and len(splits["train"]) > 1:
            lowest = min(splits["train"], key=draws.__getitem__)
            splits["train"].remove(lowest)
            splits[split].append(lowest)
    n_val, n_test = len(splits["val"]), len(splits["test"])
    if not splits["train"] or (val_fraction > 0 and not n_val) or (test_fraction > 0 and not n_test):
        raise SupraUserError(
            f"{len(files)} usable media files are too few for a train split beside a val and a test split: add "
            "files, or lower data.val_fraction / data.test_fraction (0 turns a split off)"
        )
    return {split: sorted(names) for split, names in splits.items()}


def lent_files(splits: dict[str, list[str]], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """The file split_by_file lent to each held-out split of `splits` that no draw fell in, by split: its
    own draw says train."""
    return {split: name for split in ("val", "test") for name in splits[split]
            if _draw(name, seed) >= val_fraction + test_fraction}


def lent_note(lent: dict[str, str]) -> str:
    """What a set-up summary line says of lent_files ('' when none was lent): the lent file goes back to
    train once the split has a file of its own, so a model trained then has seen what was scored here."""
    return "; ".join(f"{split} holds {name}, lent from train as no file's seeded hash falls in {split}: it goes back "
                     f"to train once the folder has a {split} file of its own, so a model trained then has seen it"
                     for split, name in lent.items())
