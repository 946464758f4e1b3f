"""`python -m supra.caption`: caption your own images with a checkpoint or a release folder (conf/caption.yaml;
`--help` lists every option). Writes <out>/captions.jsonl ({"image_id", "file", "caption"} per image) and
<out>/captions.png (a grid); files are named relative to `images`; files that cannot be read are listed,
not fatal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.progress import track

from supra.artifacts.captioner_release import load_captioner, scored_decoding
from supra.data.images import IMAGE_SUFFIXES, UNREADABLE, image_to_uint8, load_rgb, normalize_images
from supra.models.vlm_generation import DecodeConfig, generate
from supra.pictures.files import save_image_atomic
from supra.pictures.grids import render_caption_grid
from supra.utils.cli import hydra_command
from supra.utils.errors import SupraUserError
from supra.utils.files import require_writable_dir, write_text_atomic


def find_images(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    raise SupraUserError(f"images={path} does not exist: give an image file or a folder of images")


def caption_images(ckpt: str, images: str, out: str, decode: str = "beam", batch_size: int = 64,
                   grid_images: int = 16) -> dict[str, str]:
    """Caption every image under `images`; returns {file relative to `images`: caption} and writes
    captions.jsonl ({"image_id", "file", "caption"} per image) + captions.png."""
    if batch_size < 1:
        raise SupraUserError(f"batch_size={batch_size} must be >= 1")
    DecodeConfig(strategy=decode)  # a one-line error for an unknown strategy, before the model loads
    net, tokenizer, run_config = load_captioner(ckpt)
    # the other settings of the decoding its scores were measured with (length penalty, caption length, ...)
    settings = DecodeConfig(**{**scored_decoding(ckpt, run_config), "strategy": decode})
    require_writable_dir(out, f"out={out}")  # before the work, not after it
    # out= inside images=: its own captions.png (of an earlier run) is not a picture to caption
    files = [f for f in find_images(Path(images)) if f.resolve() != (Path(out) / "captions.png").resolve()]
    root = Path(images) if Path(images).is_dir() else Path(images).parent  # files are named relative to it
    if not files:
        raise SupraUserError(f"images={images} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    size = net.config.IMG_SIZE
    captions: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    thumbnails: list[torch.Tensor] = []
    for start in track(range(0, len(files), batch_size), description=f"captioning {len(files)} images"):
        batch, names = [], []
        for path in files[start : start + batch_size]:
            try:
                batch.append(image_to_uint8(load_rgb(path), size))
                names.append(path.relative_to(root).as_posix())
            except UNREADABLE as err:
                unreadable[str(path)] = f"{type(err).__name__}: {err}"
        if not batch:
            continue
        images_uint8 = torch.stack(batch)
        ids = generate(net, normalize_images(images_uint8, net.image_input.mean, net.image_input.std), tokenizer.bos_id, tokenizer.eos_id, settings)
        captions.update(zip(names, tokenizer.decode_batch(ids), strict=True))
        thumbnails += list(images_uint8[: max(0, grid_images - len(thumbnails))])
    if not captions:
        raise SupraUserError(f"none of the {len(files)} images under images={images} could be read (first: "
                             f"{next(iter(unreadable))}: {next(iter(unreadable.values()))}): give readable images")
    out_dir = Path(out)
    # the same records as predictions.json: the image's id (here its path under `images`) and its file
    lines = [json.dumps({"image_id": f, "file": f, "caption": c}) for f, c in captions.items()]
    write_text_atomic(out_dir / "captions.jsonl", "\n".join(lines) + ("\n" if lines else ""))
    if thumbnails:
        grid = render_caption_grid(torch.stack(thumbnails), list(captions.values())[: len(thumbnails)], columns=4)
        save_image_atomic(grid, out_dir / "captions.png")
    for path, reason in unreadable.items():
        print(f"skipped unreadable image {path}: {reason}", file=sys.stderr)
    return captions


def run(cfg: DictConfig) -> dict[str, str]:
    captions = caption_images(str(cfg.ckpt), str(cfg.images), str(cfg.out), cfg.decode, int(cfg.batch_size),
                              int(cfg.grid_images))
    print(f"captioned {len(captions)} images -> {Path(cfg.out) / 'captions.jsonl'}")
    return captions


main = hydra_command("caption", run)

if __name__ == "__main__":
    main()
