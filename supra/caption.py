"""`python -m supra.caption`: caption your own images with a checkpoint or a release folder (conf/caption.yaml;
`--help` lists every option). Writes <out>/captions.jsonl ({"image_id", "file", "caption"} per image) and
<out>/captions.png (a grid); files are named relative to `images`; files that cannot be read (a broken
link among them) are skipped, not fatal: counted by reason, with examples, in one line; files whose suffix is
no picture's (IMAGE_SUFFIXES) are passed over, counted in one line. It decodes as the model's run did, with
decode=, beam_width= and seed= over it as explain takes them. Stopped by Ctrl-C or a SIGTERM, it removes the
out folder it made. An earlier caption run's grid under `images` (a
captions.png beside the captions.jsonl it wrote) is passed over. Only an earlier caption run's outputs in
`out` are replaced; a file of the user's there of either name is refused, as is out= a release or run folder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import torch
from omegaconf import DictConfig
from PIL import Image
from rich.progress import track

from supra.artifacts.captioner_release import command_decoding, load_captioner
from supra.data.folder_index import SPECIAL, SPECIAL_NOUN, Tally
from supra.data.gif_frames import first_frame_cut_note
from supra.data.images import (
    DAMAGED,
    EMPTY_FILE,
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    NOT_A_PICTURE,
    UNREADABLE,
    PixelRangeError,
    image_to_uint8,
    load_rgb,
    normalize_images,
    why_unreadable,
)
from supra.models.vlm_generation import DecodeConfig, generate
from supra.models.vlm_nano import VLMNano
from supra.pictures.grids import render_caption_grid
from supra.tokens.caption_bpe import CaptionTokenizer
from supra.utils.cli import check_option_types, check_paths_given, hydra_command
from supra.utils.disk_room import room_to_write
from supra.utils.errors import SupraUserError
from supra.utils.files import (
    atomic_paths,
    parse_json,
    readable_json,
    refuse_folders_in_the_way,
    refuse_overwriting_input,
    refuse_replacing_others,
    require_writable_dir,
)
from supra.utils.folder_walk import link_loops, not_regular, walk_visible
from supra.utils.numbers import counted
from supra.utils.run_folders import refuse_model_folder

GRID, RECORDS = "captions.png", "captions.jsonl"  # what a caption run writes into out
PLAIN_REASONS = (EMPTY_FILE, DAMAGED, NOT_A_PICTURE)  # why_unreadable's
# the other kinds of a file that could not be read, as the skip line counts them ("2 too large (e.g. ...)", "1
# broken link"): words, not Pillow's class names
BROKEN_LINK, TOO_LARGE, NO_KNOWN_RANGE = "broken link", "too large", "of no known pixel range"


def is_broken_link(path: Path) -> bool:
    """A link whose target does not exist (or that loops: link_loops tells which)."""
    return path.is_symlink() and not path.exists()


def unreadable_reason(path: Path, err: BaseException) -> str:
    """Why an image file could not be read, as the skip line says it: a link's fault by what it points to; a
    picture too large or of no known pixel range by the loader's reason, which says what to do; else in the
    words explain and the demo use (why_unreadable: empty, damaged or cut short, not a picture file)."""
    if link_loops(path):
        return f"a link to {path.readlink()}, which loops back to itself"
    if is_broken_link(path):
        return f"a link to {path.readlink()}, which does not exist"
    if isinstance(err, PixelRangeError | Image.DecompressionBombError):
        return str(err)
    return why_unreadable(path, err)


def find_images(path: Path) -> list[Path]:
    """An image file, or the images under a folder as training reads folders (walk_visible): linked folders
    followed, each once; hidden files passed over (macOS's ._photo.jpg is no picture). A broken link, and a
    named pipe or other special file, with an image's name is kept, so that it is listed among the files that
    could not be read, not passed over (a pipe is never opened: reading it waits forever)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return walk_pictures(path)[0]
    if not_regular(path):
        raise SupraUserError(f"images={path} is not a regular file (a named pipe, socket or device): give an image "
                             "file or a folder of images")
    if link_loops(path):
        raise SupraUserError(f"images={path} is a link that loops to itself (or through others back to it): give an "
                             "image file or a folder of images")
    raise SupraUserError(f"images={path} does not exist: give an image file or a folder of images")


def walk_pictures(folder: Path) -> tuple[list[Path], list[str]]:
    """(the image files under `folder`, as find_images lists them; the names of the other files there, passed
    over for their suffix, which is no picture's: IMAGE_SUFFIXES)."""
    walk = walk_visible(folder)
    pictures, others = [], []
    for name in sorted(walk.files + walk.special):
        if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            others.append(name)
        elif (folder / name).is_file() or is_broken_link(folder / name) or name in walk.special:
            pictures.append(folder / name)
    return pictures, others


def is_caption_record(path: Path) -> bool:
    """A captions.jsonl that caption wrote: one {"image_id": f, "file": f, "caption": ...} per line, the id
    its file, as caption_images writes it. Ground-truth captions in the caption-folder format ({"file",
    "caption"}, perhaps more keys) and anything unreadable are the user's, never replaced."""
    try:
        records = [parse_json(line) for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, ValueError):  # none, a folder, not UTF-8, not JSON lines
        return False
    return bool(records) and all(isinstance(r, dict) and r.keys() == {"image_id", "file", "caption"}
                                 and r["image_id"] == r["file"] for r in records)


def is_earlier_output(path: Path) -> bool:
    """A caption run's grid (out= inside images=, this run's or another's): a picture of captions, not one to
    caption. Known by its name beside the captions.jsonl that run wrote: a photo of the user's that is
    called captions.png is captioned like any other."""
    return path.name == GRID and is_caption_record(path.parent / RECORDS)


def check_out_folder(images: Path, out: Path) -> None:
    """Before any work: out/captions.jsonl and out/captions.png are replaced only when an earlier caption
    run wrote them (its captions.jsonl, is_caption_record); the user's own captions (the caption-folder
    format) or photo of that name are refused in one line, never written over. So is images= that is
    one of them (images=out/captions.png: captioned, then replaced by the grid), and a folder of either name;
    and a release folder or a run's folder (refuse_model_folder)."""
    refuse_model_folder(out, "the captions")
    refuse_overwriting_input(images, "images", out, [RECORDS, GRID])
    refuse_folders_in_the_way(out, [RECORDS, GRID])
    refuse_replacing_others(out, [RECORDS, GRID], [RECORDS, GRID] if is_caption_record(out / RECORDS) else [],
                            "caption run wrote (its captions.jsonl has one {\"image_id\", \"file\", \"caption\"} "
                            "per image)")


def earlier_captions(out: Path) -> int:
    """How many images an earlier caption run's captions.jsonl in `out` captioned (0: none there)."""
    records = out / RECORDS
    return len(records.read_text(encoding="utf-8").splitlines()) if is_caption_record(records) else 0


def images_to_caption(images: Path, out: Path) -> list[Path]:
    """The image files under `images`, earlier caption runs' grids passed over (named on stderr); given as
    the file itself, an image is the user's choice and is captioned whatever its name."""
    if images.is_file():
        return [images]
    files, earlier = [], []
    pictures, not_pictures = walk_pictures(images) if images.is_dir() else (find_images(images), [])
    for path in pictures:
        (earlier if is_earlier_output(path) else files).append(path)
    others = [str(p) for p in earlier if p.resolve() != (out / GRID).resolve()]
    if others:
        print(f"note: passed over {counted(len(others), 'grid')} of earlier caption runs: {', '.join(others)}",
              file=sys.stderr)
    say_passed_over(images, out, not_pictures)
    if not files:
        raise SupraUserError(f"images={images} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


SHOWN_NAMES = 3  # the files a note names; the rest it counts


def say_passed_over(images: Path, out: Path, names: list[str]) -> None:
    """One line for the files under `images` whose suffix is no picture's (notes.txt, a .pdf), a few named, so
    that none is left out without a word; this run's own captions.jsonl (out= inside images=) is not one."""
    own = (out / RECORDS).resolve()
    names = [name for name in names if (images / name).resolve() != own]
    if names:
        shown = ", ".join(names[:SHOWN_NAMES]) + (", ..." if len(names) > SHOWN_NAMES else "")
        print(f"note: passed over {len(names)} file{'s' * (len(names) != 1)} whose suffix is no picture's "
              f"({shown}); caption reads {', '.join(sorted(IMAGE_SUFFIXES))}", file=sys.stderr)


@contextmanager
def out_folder(out: Path) -> Iterator[Path]:
    """out=, made and proven writable before the work (not after it), and removed again with the folders
    made for it when the work ends early: refused (nothing could be read), or stopped (Ctrl-C, a SIGTERM taken
    as one): such a run leaves nothing behind."""
    made = [folder for folder in (out, *out.parents) if not folder.exists()]  # deepest first
    require_writable_dir(out, f"out={out}")
    try:
        yield out
    except BaseException:  # KeyboardInterrupt too
        for folder in made:
            with suppress(OSError):  # rmdir removes only an empty folder: never anything written there
                folder.rmdir()
        raise


def caption_images(ckpt: str, images: str, out: str, decode: str | None = None, batch_size: int = 64,
                   grid_images: int = 16, beam_width: int | None = None, seed: int | None = None) -> dict[str, str]:
    """Caption every image under `images`; returns {file relative to `images`: caption} and writes
    captions.jsonl ({"image_id", "file", "caption"} per image) + captions.png (none when grid_images=0).
    decode: beam | greedy | sample; None: the model's run's strategy. beam_width (beam search) and seed
    (sampling): None, the run's; either given to a decoding that does not read it is refused, as explain
    refuses it. Every other setting is its run's."""
    if batch_size < 1:
        raise SupraUserError(f"batch_size={batch_size} must be >= 1")
    if grid_images < 0:
        raise SupraUserError(f"grid_images={grid_images} must be >= 0 (0: no captions.png)")
    if decode is not None:
        DecodeConfig(strategy=decode)  # a one-line error for an unknown strategy, before the model loads
    files = images_to_caption(Path(images), Path(out))
    check_out_folder(Path(images), Path(out))
    replaced = earlier_captions(Path(out))  # said once they are: a second folder captioned into out= replaces the first's
    net, tokenizer, run_config = load_captioner(ckpt)
    # the decoding its scores were measured with (width, length penalty, caption length, ...), decode=,
    # beam_width= and seed= over it, checked as explain checks them: explain's caption is this one
    given = {"ckpt": ckpt, "decode": decode, "beam_width": beam_width, "seed": seed}
    settings = command_decoding(given, "caption", net, run_config)
    with out_folder(Path(out)) as out_dir:
        captions, thumbnails = _caption_files(net, tokenizer, settings, files, Path(images), batch_size, grid_images)
        # the same records as predictions.json: the image's id (here its path under `images`) and its file
        lines = [readable_json({"image_id": f, "file": f, "caption": c}) for f, c in captions.items()]
        grid = _captions_grid(captions, thumbnails) if thumbnails else None
        # both renamed in once both are written: a write cut short (a full disk) is one line, and leaves no
        # new captions beside an earlier run's grid
        with room_to_write(f"out={out_dir}", "free space there, or give another out= folder"), \
                atomic_paths(*(out_dir / name for name in ([RECORDS, GRID] if grid else [RECORDS]))) as written:
            written[0].write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
            if grid is not None:
                grid.save(written[1], format="PNG")
        if grid is None:  # an earlier run's grid would show other images beside these captions
            (out_dir / GRID).unlink(missing_ok=True)
    if replaced:  # its records name files only relative to its images=, which no file of a run keeps
        print(f"note: replaced the captions of {replaced} image{'s' * (replaced != 1)} an earlier caption run wrote "
              f"into out={out}", file=sys.stderr)
    return captions


def _captions_grid(captions: dict[str, str], thumbnails: list[torch.Tensor]) -> Image.Image:
    """The first images captioned, each named by its file (the tiles would match captions.jsonl by order
    alone), in rows of up to 4: one image makes a one-tile picture, not a row of blanks."""
    shown = len(thumbnails)
    return render_caption_grid(torch.stack(thumbnails), list(captions.values())[:shown], columns=min(4, shown),
                               names=list(captions)[:shown])


def _caption_files(net: VLMNano, tokenizer: CaptionTokenizer, settings: DecodeConfig, files: list[Path], images: Path,
                   batch_size: int, grid_images: int) -> tuple[dict[str, str], list[torch.Tensor]]:
    """{file relative to `images`: caption} and the first `grid_images` pictures (uint8); unreadable files
    counted by reason in one stderr line (a few named), and a SupraUserError when none could be read."""
    root = images if images.is_dir() else images.parent  # files are named relative to it
    size = net.config.IMG_SIZE
    captions: dict[str, str] = {}
    unreadable = Tally()  # one line at the end: 600 broken files are not 600 lines
    thumbnails: list[torch.Tensor] = []
    last_reason = ""  # a single file's, for its one line
    cut_notes: list[str] = []  # GIFs cut short, each captioned by its first frame: said after the progress bar
    for start in track(range(0, len(files), batch_size), description=f"captioning {counted(len(files), 'image')}"):
        batch, names = [], []
        for path in files[start : start + batch_size]:
            if not_regular(path):  # never opened: reading a named pipe waits for a writer forever
                unreadable.add(SPECIAL, path.relative_to(root).as_posix(), noun=SPECIAL_NOUN)
                continue
            try:
                batch.append(image_to_uint8(load_rgb(path), size))
                names.append(path.relative_to(root).as_posix())
                # named as the skip line names files: images= itself, or its path under the folder
                what = f"images={images}" if images.is_file() else names[-1]
                if note := first_frame_cut_note(path, what, MAX_PIXELS):  # as explain and generate note one
                    cut_notes.append(note)
            except UNREADABLE as err:
                name, reason = path.relative_to(root).as_posix(), unreadable_reason(path, err)
                if is_broken_link(path) or link_loops(path):
                    unreadable.add(BROKEN_LINK, f"{name}: {reason}", noun=True)  # looping too
                elif reason in PLAIN_REASONS:  # the reason is the kind: counted by it, the files named
                    unreadable.add(reason, name)
                else:  # readable, but not as it is: the kind in words, the reason saying what to do
                    unreadable.add(TOO_LARGE if isinstance(err, Image.DecompressionBombError) else NO_KNOWN_RANGE,
                                   f"{name}: {reason}")
                last_reason = reason
        if not batch:
            continue
        images_uint8 = torch.stack(batch)
        ids = generate(net, normalize_images(images_uint8, net.image_input.mean, net.image_input.std), tokenizer.bos_id, tokenizer.eos_id, settings)
        captions.update(zip(names, tokenizer.decode_batch(ids), strict=True))
        thumbnails += list(images_uint8[: max(0, grid_images - len(thumbnails))])
    for note in cut_notes:
        print(note, file=sys.stderr)
    if not captions and images.is_file():  # one picture: said as explain says it, not "none of the 1 images"
        raise SupraUserError(f"images={images} cannot be read as a picture: {last_reason}; give a PNG, JPEG, ...")
    if not captions:
        none = "the one image" if len(files) == 1 else f"none of the {len(files)} images"
        read = "could not be read" if len(files) == 1 else "could be read"
        raise SupraUserError(f"{none} under images={images} {read} ({unreadable.describe()}): give readable images")
    if unreadable:
        print(f"skipped {sum(unreadable.counts.values())} of {len(files)} images that could not be read: "
              f"{unreadable.describe()}", file=sys.stderr)
    return captions, thumbnails


def run(cfg: DictConfig) -> dict[str, str]:
    check_paths_given(cfg, {"images": "an image file or a folder of images", "out": "the folder to write captions to"})
    # batch_size=2.7 was cut to 2, abc a traceback
    check_option_types(cfg, whole=("batch_size", "grid_images", "beam_width", "seed"), optional=("beam_width", "seed"))
    captions = caption_images(str(cfg.ckpt), str(cfg.images), str(cfg.out), cfg.decode, cfg.batch_size, cfg.grid_images,
                              cfg.beam_width, cfg.seed)
    print(f"captioned {len(captions)} image{'s' * (len(captions) != 1)} -> {Path(cfg.out) / 'captions.jsonl'}")
    return captions


main = hydra_command("caption", run)


if __name__ == "__main__":
    main()
