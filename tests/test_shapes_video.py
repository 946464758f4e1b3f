"""The built-in shapes clips: deterministic, every caption true of the pixels, and written as exact GIFs."""

import hashlib
import json
import re
import subprocess
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image, ImageSequence

from supra.data.gif_frames import read_gif_frames
from supra.data.media.folder import MediaFolderDataModule
from supra.data.media.shapes_video import ShapesVideoDataModule
from supra.pictures.files import write_exact_gif as write_gif
from supra.procedural.shapes_clips import DIRECTIONS, MOTIONS, SPINS, generate_clips
from supra.procedural.shapes_scenes import (
    COLOURS,
    SHAPES,
    SPLIT_SEED_OFFSET,
    ShapeObject,
    parse_objects,
    render_objects,
)
from supra.utils.errors import SupraUserError
from tests.conftest import command_lines, run_command

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def clips():
    return generate_clips(400, seed=7, frames=4, canvas_size=64)


def single_object_clips(clips, motion):
    pixels, records = clips
    return [(p, c) for p, c in zip(pixels, records, strict=True) if c.motion == motion and len(c.objects) == 1]


def coverage(frame: np.ndarray) -> np.ndarray:
    """How much of each pixel the shapes cover, in [0, 1], read from the pixels alone: the corner is
    background, the pixel furthest from it is fully covered."""
    distance = np.abs(frame.astype(float) - frame[0, 0]).sum(-1)
    return distance / distance.max()


def centroid(frame: np.ndarray) -> np.ndarray:
    """(x, y) of the shapes' coverage, in pixels."""
    weights = coverage(frame)
    ys, xs = np.indices(weights.shape)
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


# -- determinism and speed --------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_clips():
    a, a_clips = generate_clips(6, seed=1)
    b, b_clips = generate_clips(6, seed=1)
    c, _ = generate_clips(6, seed=2)
    assert a.tobytes() == b.tobytes() and a_clips == b_clips
    assert a.tobytes() != c.tobytes()


def test_clip_i_depends_only_on_the_seed_and_i():
    many, many_clips = generate_clips(10, seed=4)
    few, few_clips = generate_clips(5, seed=4)
    tail, tail_clips = generate_clips(4, seed=4, start=6)
    assert np.array_equal(few, many[:5]) and few_clips == many_clips[:5]
    assert np.array_equal(tail, many[6:]) and tail_clips == many_clips[6:]


def test_golden_checksum_pins_cross_machine_determinism():
    pixels, records = generate_clips(8, seed=0, frames=4, canvas_size=64)
    assert {c.motion for c in records} == set(MOTIONS)  # turned shapes (cos/sin) included
    assert hashlib.sha256(pixels.tobytes()).hexdigest()[:16] == GOLDEN_SHA256_PREFIX
    assert records[0].captions[0] == GOLDEN_FIRST_CAPTION


def test_clips_are_uint8_frames_drawn_at_the_canvas_size():
    pixels, records = generate_clips(3, seed=0, frames=7, canvas_size=40)
    assert pixels.shape == (3, 7, 40, 40, 3) and pixels.dtype == np.uint8
    assert all(len(c.states) == 7 for c in records)


def test_a_thousand_clips_take_seconds_not_minutes():
    start = time.perf_counter()
    pixels, _ = generate_clips(1000, seed=0)
    elapsed = time.perf_counter() - start
    print(f"1000 clips of 4 frames at 64px: {elapsed:.2f}s")  # about 0.7 s on one core
    assert pixels.shape[0] == 1000 and elapsed < 30  # loose: only catches an accidental slow path


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": -1}, "n=-1"), ({"n": 2, "frames": 1}, "frames=1"), ({"n": 2, "canvas_size": 16}, "canvas_size=16"),
    ({"n": 2, "start": -3}, "start=-3"),
])
def test_bad_sizes_are_refused_with_the_value_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_clips(seed=0, **kwargs)


# -- captions are true of the pixels ----------------------------------------------------------------

def test_every_clip_has_five_different_captions_naming_the_changing_object(clips):
    _, records = clips
    for clip in records:
        mover = clip.objects[0]
        assert len(set(clip.captions)) == 5
        for caption in clip.captions:
            named = parse_objects(caption)
            assert named[mover.colour, mover.shape] == 1, caption
            assert set(named) <= {(o.colour, o.shape) for o in clip.objects}, caption
            for article, nxt in pairwise(caption.split()):
                if article in ("a", "an"):
                    assert (article == "an") == (nxt[0] in "aeiou"), caption


def test_all_motions_directions_spins_colours_and_pairs_occur(clips):
    _, records = clips
    assert {c.motion for c in records} == set(MOTIONS)
    assert {c.change for c in records if c.motion == "move"} == set(DIRECTIONS)
    assert {c.change for c in records if c.motion == "rotate"} == set(SPINS)
    assert {c.change for c in records if c.motion == "recolour"} == set(COLOURS)
    assert {o.shape for c in records for o in c.objects} == set(SHAPES)
    assert Counter(len(c.objects) for c in records).keys() == {1, 2}


def test_moving_shapes_go_the_way_their_captions_say(clips):
    pixels, records = clips
    moving = [(p, c) for p, c in zip(pixels, records, strict=True) if c.motion == "move"]
    assert len(moving) > 50
    for frames, clip in moving:
        direction = next(d for d, phrase in (("right", "to the right"), ("left", "to the left"), ("up", " up"),
                                             ("down", " down")) if phrase in clip.captions[0])
        dx, dy = DIRECTIONS[direction]
        # Beside a still shape, the centroid of both moves by the moving one's share of the coverage only.
        least_along, most_across = (4.0, 0.1) if len(clip.objects) == 1 else (0.5, 1.0)
        for before, after in pairwise(frames):
            step = centroid(after) - centroid(before)
            along, across = (step[0] * dx, step[1]) if dx else (step[1] * dy, step[0])
            assert along > least_along and abs(across) < most_across, (clip.captions[0], step)


def test_turning_shapes_change_outline_in_place(clips):
    turning = single_object_clips(clips, "rotate")
    assert len(turning) > 20
    for frames, clip in turning:
        assert clip.objects[0].shape != "circle" and re.search(r"\b(turns|rotates|spinning)\b", clip.captions[0])
        masks = [coverage(f) > 0.5 for f in frames]
        for before, after in pairwise(masks):
            assert (before != after).sum() >= 5, clip.captions[1]
        for frame in frames[1:]:
            assert np.abs(centroid(frame) - centroid(frames[0])).max() < 0.5, clip.captions[1]


def test_recoloured_shapes_change_from_the_first_named_colour_to_the_second(clips):
    pixels, records = clips
    recoloured = [(p, c) for p, c in zip(pixels, records, strict=True) if c.motion == "recolour"]
    assert len(recoloured) > 50
    for frames, clip in recoloured:
        old, new = re.search(r"changes from (\w+) to (\w+)", clip.captions[0]).groups()
        changed = np.any(frames[0] != frames[-1], axis=-1)  # the recoloured shape, and only it
        first, last = (Counter(map(tuple, f[changed])).most_common(1)[0][0] for f in (frames[0], frames[-1]))
        assert first == COLOURS[old] and last == COLOURS[new], clip.captions[0]
        assert np.array_equal(coverage(frames[0]) > 0, coverage(frames[-1]) > 0), "the outline stays"


def test_a_second_shape_stands_still_and_never_touches_the_first(clips):
    pixels, records = clips
    pairs = [(p, c) for p, c in zip(pixels, records, strict=True) if len(c.objects) == 2]
    assert len(pairs) > 100
    for frames, clip in pairs:
        still = clip.objects[1]
        assert all(objects[1] == still for objects in clip.states)
        for frame, (mover, _) in zip(frames, clip.states, strict=True):
            alone = [render_objects((o,), clip.background, 64) != clip.background for o in (mover, still)]
            assert not (alone[0].any(-1) & alone[1].any(-1)).any(), clip.captions[0]
            assert np.array_equal(render_objects((still,), clip.background, 64)[alone[1]], frame[alone[1]])


def test_shapes_stay_inside_the_canvas(clips):
    pixels, records = clips
    for frames, clip in zip(pixels, records, strict=True):
        edges = np.concatenate([frames[:, 0], frames[:, -1], frames[:, :, 0], frames[:, :, -1]], axis=1)
        assert (edges == clip.background).all(), clip.captions[0]


def test_a_square_turned_a_quarter_looks_upright_and_a_triangle_turned_half_points_down():
    def draw(shape, angle):
        return render_objects((ShapeObject(shape, "red", "large", (0.5, 0.5), angle),), (240, 240, 240), 64)

    assert np.array_equal(draw("square", 90.0), draw("square", 0.0))
    widths = {angle: (coverage(draw("triangle", angle)) > 0.5).sum(1) for angle in (0.0, 180.0)}
    rows = np.flatnonzero(widths[0.0])
    assert widths[0.0][rows[0]] < widths[0.0][rows[-1]]  # apex up: narrow at the top
    rows = np.flatnonzero(widths[180.0])
    assert widths[180.0][rows[0]] > widths[180.0][rows[-1]]  # apex down


# -- DataModule -------------------------------------------------------------------------------------

SMALL = {"num_train": 6, "num_val": 4, "num_test": 3, "batch_size": 4}


def test_datamodule_gives_uint8_clips_at_image_size_with_five_captions():
    dm = ShapesVideoDataModule(**SMALL, frames=5, image_size=48)
    dm.setup("fit")
    items = dm.items("train")
    assert items.is_clips and items.pixels.shape == (6, 5, 3, 48, 48) and items.pixels.dtype == torch.uint8
    assert [len(c) for c in items.captions] == [5] * 6 and items.names[0] == "train_00000"
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["pixels"].shape == (4, 5, 3, 48, 48) and batch["pixels"].dtype == torch.float32
    assert batch["pixels"].min() >= -1.0 and batch["pixels"].max() <= 1.0


def test_datamodule_splits_are_different_clips_of_the_seed():
    dm = ShapesVideoDataModule(**SMALL, seed=3)
    val, test = dm.items("val").pixels, dm.items("test").pixels
    assert not torch.equal(val[:3], test[:3])
    expected, records = generate_clips(4, seed=3 + SPLIT_SEED_OFFSET["val"])
    assert torch.equal(val, torch.from_numpy(expected).permute(0, 1, 4, 2, 3))
    assert dm.clips["val"] == records and dm.items("val").captions == [list(c.captions) for c in records]


def test_the_config_file_builds_the_datamodule():
    cfg = OmegaConf.load(CONF / "data" / "shapes_video.yaml")
    dm = instantiate(cfg, num_train=2, num_val=1, num_test=1)
    assert isinstance(dm, ShapesVideoDataModule) and dm.items("test").pixels.shape == (1, 4, 3, 64, 64)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_val": 0}, "data.num_val=0"), ({"frames": 1}, "data.frames=1"), ({"image_size": 24}, "data.image_size=24"),
    ({"seed": -1}, "data.seed=-1"),
])
def test_bad_datamodule_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(SupraUserError, match=message):
        ShapesVideoDataModule(**{**SMALL, **kwargs})


# -- GIFs -------------------------------------------------------------------------------------------

def read_gif(path: Path) -> tuple[list[np.ndarray], list[int], int]:
    """Frames (RGB), durations and loop count, as Pillow reads them."""
    with Image.open(path) as image:
        frames = [(np.asarray(f.convert("RGB")), f.info["duration"]) for f in ImageSequence.Iterator(image)]
        return [f for f, _ in frames], [d for _, d in frames], image.info["loop"]


def test_cli_writes_exact_looping_gifs_and_five_caption_lines_per_clip(tmp_path, capsys):
    run_command("shapes_gifs", f"out={tmp_path}", "n=7", "frames=3", "seed=2", "size=48", "split=val", "duration_ms=120")
    assert "wrote 7 clips" in capsys.readouterr().out
    dm = ShapesVideoDataModule(**SMALL | {"num_val": 7}, frames=3, seed=2, image_size=48)
    expected = dm.items("val")
    gifs = sorted(p.name for p in tmp_path.glob("*.gif"))
    assert gifs == [f"clip_{i:05d}.gif" for i in range(7)]
    lines = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert lines == [{"file": gif, "caption": c} for gif, caps in zip(gifs, expected.captions, strict=True) for c in caps]
    for gif, clip in zip(gifs, expected.pixels, strict=True):
        frames, durations, loop = read_gif(tmp_path / gif)
        assert durations == [120] * 3 and loop == 0
        assert np.array_equal(np.stack(frames), clip.permute(0, 2, 3, 1).numpy())
        assert np.array_equal(np.stack(read_gif_frames(tmp_path / gif)), np.stack(frames))
    assert [p.name for p in tmp_path.glob(".*")] == [".shapes_gifs.json"], "no temp files left behind"
    assert json.loads((tmp_path / ".shapes_gifs.json").read_text())["files"] == gifs  # what a later run may replace


def test_repeated_frames_are_kept_not_merged(tmp_path):
    pixels, _ = generate_clips(1, seed=0)
    a, b = pixels[0, 0], pixels[0, 1]
    frames = np.stack([a, a, a, b, b, a])
    frames, durations, _ = read_gif(write_gif(frames, tmp_path / "repeats.gif", duration_ms=100))
    assert len(frames) == 6 and durations == [100] * 6
    assert np.array_equal(np.stack(frames), np.stack([a, a, a, b, b, a]))


def test_more_colours_than_a_gif_palette_holds_are_refused(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="colours"):
        write_gif(noise, tmp_path / "noise.gif")
    assert not list(tmp_path.iterdir())


def test_fewer_clips_into_the_same_folder_leave_no_clip_without_captions(tmp_path):
    run_command("shapes_gifs", f"out={tmp_path}", "n=3", "frames=2", "size=32")
    (tmp_path / "clip_mine.gif").write_bytes(b"GIF89a")  # not listed by the command: never touched
    run_command("shapes_gifs", f"out={tmp_path}", "n=1", "frames=2", "size=32")
    assert sorted(p.name for p in tmp_path.glob("*.gif")) == ["clip_00000.gif", "clip_mine.gif"]


@pytest.mark.parametrize(("args", "message"), [
    (["size=100000"], "size=100000 is too large: use 1024 or less (each clip is drawn in memory, frames x size x size "
                      "x 3 bytes)"),
    (["size=1024", "frames=400"], "frames=400 of size=1024 would take 1.2 GiB a clip in memory: use at most 341 "
                                  "frames of that size, or a smaller size"),
    (["seed=4294967296"], "seed=4294967296 must be from 0 to 4294967295"),  # data.seed's range: no aliased clips
])
def test_a_clip_too_large_for_memory_is_refused_in_one_line_before_anything_is_written(args, message, tmp_path,
                                                                                        capsys):
    """size=100000 was numpy's out-of-memory traceback, and left the folder's record marked incomplete."""
    with pytest.raises(SystemExit):
        run_command("shapes_gifs", f"out={tmp_path / 'gifs'}", "n=1", *args)
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "gifs").exists()


def test_clips_drawn_a_few_at_a_time_to_stay_within_memory_are_the_same_clips(tmp_path, monkeypatch):
    from supra import shapes_gifs

    run_command("shapes_gifs", f"out={tmp_path / 'together'}", "n=3", "frames=2", "size=32")
    monkeypatch.setattr(shapes_gifs, "MAX_CLIP_BYTES", 2 * 32 * 32 * 3)  # one clip at a time
    run_command("shapes_gifs", f"out={tmp_path / 'one_by_one'}", "n=3", "frames=2", "size=32")
    for name in ("clip_00000.gif", "clip_00002.gif", "captions.jsonl"):
        assert (tmp_path / "together" / name).read_bytes() == (tmp_path / "one_by_one" / name).read_bytes()


def test_the_users_own_clip_00000_gif_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "clip_00000.gif").write_bytes(b"GIF89a mine")  # named as the command names its clips
    (tmp_path / "clip_00007.gif").write_bytes(b"GIF89a mine too")
    mine = "".join(json.dumps({"file": f"clip_0000{i}.gif", "caption": f"my clip {i}"}) + "\n" for i in (0, 7))
    (tmp_path / "captions.jsonl").write_text(mine)
    with pytest.raises(SystemExit) as exit_info:
        run_command("shapes_gifs", f"out={tmp_path}", "n=2", "frames=2", "size=32")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "clip_00000.gif" in err and "clip_00007.gif" not in err and "out=" in err
    assert (tmp_path / "clip_00000.gif").read_bytes() == b"GIF89a mine"
    assert (tmp_path / "clip_00007.gif").read_bytes() == b"GIF89a mine too"
    assert (tmp_path / "captions.jsonl").read_text() == mine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["captions.jsonl", "clip_00000.gif", "clip_00007.gif"]


def test_a_clip_named_gif_of_the_users_beside_an_earlier_runs_clips_is_kept_with_its_caption(tmp_path):
    run_command("shapes_gifs", f"out={tmp_path}", "n=2", "frames=2", "size=32")
    (tmp_path / "clip_00007.gif").write_bytes(b"GIF89a mine")  # added later: the earlier run did not write it
    mine = json.dumps({"file": "clip_00007.gif", "caption": "my own seventh clip"})
    with (tmp_path / "captions.jsonl").open("a") as captions:
        captions.write(mine + "\n")
    run_command("shapes_gifs", f"out={tmp_path}", "n=1", "frames=2", "size=32")
    assert sorted(p.name for p in tmp_path.glob("*.gif")) == ["clip_00000.gif", "clip_00007.gif"]
    assert (tmp_path / "clip_00007.gif").read_bytes() == b"GIF89a mine"
    assert mine in (tmp_path / "captions.jsonl").read_text().splitlines()


def test_the_users_own_clip_named_gif_listed_in_captions_jsonl_is_kept_with_its_caption(tmp_path):
    run_command("shapes_gifs", f"out={tmp_path}", "n=2", "frames=2", "size=32")
    (tmp_path / "clip_intro.gif").write_bytes(b"GIF89a")  # the user's, captioned in the same file
    mine = json.dumps({"file": "clip_intro.gif", "caption": "my own intro clip"})
    with (tmp_path / "captions.jsonl").open("a") as captions:
        captions.write(mine + "\n")
    run_command("shapes_gifs", f"out={tmp_path}", "n=1", "frames=2", "size=32")
    assert sorted(p.name for p in tmp_path.glob("*.gif")) == ["clip_00000.gif", "clip_intro.gif"]
    assert mine in (tmp_path / "captions.jsonl").read_text().splitlines()


def test_a_run_that_dies_part_way_leaves_no_new_clip_under_an_old_clips_caption(tmp_path, monkeypatch):
    import supra.shapes_gifs

    run_command("shapes_gifs", f"out={tmp_path}", "n=3", "frames=2", "size=32")
    written = []

    def dies_after_one(pixels, path, duration_ms):  # as a kill after the first GIF of the second run
        if written:
            raise KeyboardInterrupt
        written.append(path)
        write_gif(pixels, path, duration_ms)

    monkeypatch.setattr(supra.shapes_gifs, "write_exact_gif", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_command("shapes_gifs", f"out={tmp_path}", "n=3", "frames=2", "size=32", "seed=7")
    assert written == [tmp_path / "clip_00000.gif"]  # a seed-7 clip where a seed-0 one was
    assert (tmp_path / "captions.jsonl").read_text() == ""  # the seed-0 captions are gone with it


def test_clips_written_beside_the_users_own_pictures_keep_the_users_captions(tmp_path):
    from supra.shapes_gifs import write_clips

    Image.new("RGB", (32, 32), (255, 0, 0)).save(tmp_path / "photo.png")
    mine = json.dumps({"file": "photo.png", "caption": "my red café photo"}, ensure_ascii=False)
    (tmp_path / "captions.jsonl").write_text(mine + "\n", encoding="utf-16")  # Notepad's "Unicode", read by media_folder
    for n in (2, 1):  # a second, smaller run drops the first one's extra clip and its captions, not the user's
        write_clips(tmp_path, n, frames=2, size=32, show_progress=False)
        lines = (tmp_path / "captions.jsonl").read_text().splitlines()
        assert lines[0] == mine and len(lines) == 1 + 5 * n
        assert {json.loads(line)["file"] for line in lines[1:]} == {f"clip_{i:05d}.gif" for i in range(n)}


def test_the_written_folder_reads_back_as_the_same_clips_with_data_media_folder(tmp_path):
    run_command("shapes_gifs", f"out={tmp_path}", "n=10", "split=test")
    folder = MediaFolderDataModule(root=str(tmp_path), mode="clips", frames=4, image_size=64, show_progress=False,
                                   val_fraction=0.0, test_fraction=0.0)
    items = folder.items("train")
    generated = ShapesVideoDataModule(**SMALL | {"num_test": 10}).items("test")
    rows = [int(name[len("clip_"):len("clip_00000")]) for name in items.names]
    assert sorted(rows) == list(range(10))
    assert torch.equal(items.pixels, generated.pixels[rows])
    assert items.captions == [generated.captions[r] for r in rows]


@pytest.fixture(scope="module")
def shapes_gifs_lines(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """`python -m supra.shapes_gifs` given --help, an unknown option and no out=, in one interpreter."""
    out = tmp_path_factory.mktemp("gifs")
    runs = {"help": ["shapes_gifs", "--help"], "unknown": ["shapes_gifs", f"out={out}", "n=2", "fps=3"],
            "missing": ["shapes_gifs", "n=2"]}
    return dict(zip(runs, command_lines(*runs.values()), strict=True))


def test_cli_help_explains_the_arguments(shapes_gifs_lines):
    result = shapes_gifs_lines["help"]
    assert result.returncode == 0 and "out=gifs/ n=100" in result.stdout and "duration_ms: 250" in result.stdout


@pytest.mark.parametrize(("args", "named"), [
    (["n=0"], "n=0"), (["n=many"], "n='many' must be a whole number"), (["n=2", "frames=1"], "frames=1"), (["n=2", "size=16"], "size=16"),
    (["n=2", "split=dev"], "split='dev'"), (["n=2", "duration_ms=25"], "duration_ms=25"),
])
def test_bad_arguments_are_one_line_and_exit_code_2(tmp_path, capsys, args, named):
    with pytest.raises(SystemExit) as exit_info:
        run_command("shapes_gifs", f"out={tmp_path / 'out'}", *args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ") and named in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_an_unwritable_output_folder_is_one_line_and_exit_code_2(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        run_command("shapes_gifs", f"out={tmp_path / 'a_file' / 'clips'}", "n=2")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "cannot write to out=" in err


def test_an_unknown_or_missing_option_is_one_line_naming_it(shapes_gifs_lines):
    unknown = shapes_gifs_lines["unknown"]
    assert unknown.returncode == 2
    assert unknown.stderr == ("error: fps=3: no such option (the options there are: duration_ms, frames, n, out, seed, "
                              "size, split)\n")
    missing = shapes_gifs_lines["missing"]
    assert missing.returncode == 2 and missing.stderr == "error: missing out=... (--help lists every option)\n"


# Computed once from generate_clips(8, seed=0, frames=4, canvas_size=64); a change here changes everyone's data.
GOLDEN_SHA256_PREFIX = "0a328e5c45f22155"
GOLDEN_FIRST_CAPTION = "a green circle moves up"


def test_more_clips_than_memory_holds_fail_at_once_not_after_sampling_them_all():
    """The pixels' array comes first, as the scenes': their records are never sampled for an array that cannot be."""
    with pytest.raises(MemoryError):
        generate_clips(10**12, 0, 4, 32)
