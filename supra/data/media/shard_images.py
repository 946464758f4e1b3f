"""Image-caption shards (img2dataset's layout, or `python -m supra.write_shards`) as images for the a2a
mixture: each split's shards read once and decoded at `image_size`, their codes then computed once by the
frozen VQ-VAE and cached like any source's. Streaming the codes of web-scale shards is not done here.

    data.sources.web: {_target_: supra.data.media.shard_images.ShardImagesMediaDataModule,
                       train_shards: 'DIR/{00000..00009}.tar', val_shards: ..., test_shards: ..., image_size: 64}
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

from supra.data.caption_sources.shards import (
    check_local_shards,
    expand_shards,
    local_shard_file,
    read_whole,
    warn_scored_shards_trained_on,
)
from supra.data.media.datamodule import MediaDataModule, MediaItems
from supra.utils.folder_walk import file_stamp

log = logging.getLogger(__name__)


class ShardImagesMediaDataModule(MediaDataModule):
    """The shards of each split as images [N, 3, S, S] with their captions (squashed to a square); `draft`: JPEG
    draft-mode decoding of the train split (val and test are decoded in full)."""

    # 2: items named by their json's id, else `<shard path below the list's shared folder>/<key>`, and filed
    # by its url. Codes cached under 1 named the samples of a/00000.tar and b/00000.tar alike (00000.tar/<key>):
    # scoring kept one of each pair, under a name that did not say which image it was.
    # 3: only an id write_shards wrote names an item: under 2, an img2dataset `id` column repeated per caption
    # named several images alike, and scoring kept one of them.
    # 4: items carry their references (write_shards's json lists them as the source publishes them): codes cached
    # under 3 scored image2text against the training captions, final stop dropped and repeats once.
    # 5: val and test decoded in full (draft mode for train alone), as a folder of the same files scores: codes
    # cached under 4 held their draft-decoded pixels.
    items_version = 5

    def __init__(self, train_shards: str, val_shards: str, test_shards: str, draft: bool = True, **common: Any) -> None:
        super().__init__(**common)
        self.specs = {"train": train_shards, "val": val_shards, "test": test_shards}
        self.draft = draft
        self.inputs_checked = False

    def inputs_stamp(self) -> str:
        """Local shards by size and modification time, a `pipe:` command by those of the files it names; a
        remote one by its URL alone (asking a store would wait on the network at every setup, even offline)."""
        # data.<split>_shards: the a2a mixture names them data.sources.<name>.<split>_shards (options_of_source)
        urls = [u for split, spec in self.specs.items() for u in expand_shards(spec, f"data.{split}_shards")]
        return "|".join(f"{u}:{shard_stamp(u)}" for u in urls)

    def check_inputs(self, options: str = "data", warn: bool = True) -> None:
        """Every split's local shards there, before any is decoded: a typo in a brace range is one line naming
        its option, not fewer images, nor an error after the other splits were decoded. Val or test shards
        that are train shards are said in a warning, as data=shards says it."""
        urls = {split: expand_shards(spec, f"{options}.{split}_shards") for split, spec in self.specs.items()}
        for split, spec in self.specs.items():
            check_local_shards(urls[split], f"{options}.{split}_shards={spec!r}")
        if warn:
            warn_scored_shards_trained_on(urls, options)
        self.inputs_checked = True

    def load_split(self, split: str) -> MediaItems:
        if not self.inputs_checked:  # on its own (a VQ-VAE's data, tokenize_media); the a2a mixture checks first
            self.check_inputs()
        # draft mode (if on) for train alone: val and test score the pixels their files give every other reader
        whole = read_whole(self.specs[split], self.image_size, self.draft and split == "train")
        log.info("shards %s: %d images; unusable: %s", split, len(whole.keys), whole.tally.describe())
        return MediaItems(whole.images, whole.captions, [str(i) for i in whole.ids], None, whole.files, whole.references)


def shard_stamp(url: str) -> str:
    """What changes when the shard `url` names is rewritten: a local file's size and modification time; for a
    `pipe:` command (`pipe:cat /data/00000.tar`), those of the words of it that are files here, whichever
    command reads them; "" for a remote URL, or a command that names no local file."""
    path = local_shard_file(url)
    if path is not None:
        return file_stamp(path)
    if not url.startswith("pipe:"):
        return ""
    words = shlex.shlex(url.removeprefix("pipe:"), posix=True, punctuation_chars=True)
    words.whitespace_split = True  # `cat a.tar; exit 3` gives a.tar, not `a.tar;`

    def is_file(word: str) -> bool:
        try:
            return Path(word).is_file()
        except OSError:  # a word too long for a path name, say: no file
            return False

    try:
        files = [w for w in words if is_file(w)]
    except ValueError:  # quotes the shell would refuse too: the command stamps nothing, as a remote URL
        return ""
    return ",".join(f"{name}={file_stamp(name)}" for name in files)
