"""Sample grids: readable tiles with captions, written atomically, sent to the loggers."""

from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import DataLoader, TensorDataset

from supra.callbacks.caption_grid import CaptionGridCallback
from supra.data.images import normalize_images
from supra.pictures import grids
from supra.pictures.files import save_image_atomic
from supra.pictures.grids import (
    FONT_SIZE,
    LINE_HEIGHT,
    MAX_LINES,
    NAME_COLOUR,
    TILE,
    font,
    render_caption_grid,
    render_image_rows,
    render_reconstructions,
    title_height,
    title_lines,
    wrap,
)
from supra.utils.private_apis import stop_at_end_of_batch


def images(n: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_grid_has_one_tile_per_image_in_rows_of_columns():
    grid = render_caption_grid(images(6), ["a red circle"] * 6, ["a small red circle"] * 6, columns=4)
    assert grid.mode == "RGB" and grid.width == 4 * TILE
    two_rows = grid.height
    one_row = render_caption_grid(images(4), ["a red circle"] * 4, ["a small red circle"] * 4, columns=4).height
    assert two_rows > one_row


def test_captions_are_drawn_under_the_tiles_and_long_ones_wrap():
    short = render_caption_grid(images(1), ["a red circle"], columns=1)
    long = render_caption_grid(images(1), ["a very long caption " * 10], columns=1)
    assert long.width == short.width and long.height > short.height  # wrapped onto more lines, not wider
    text_band = np.asarray(short)[TILE:, :, :]
    assert (text_band < 128).any(), "dark caption text under the image"


def text_line(text: str, colour: tuple[int, int, int], width: int = TILE) -> np.ndarray:
    """One line of text as the grids draw it, 4 px in: `width` px wide, LINE_HEIGHT tall, on white."""
    picture = Image.new("RGB", (width, LINE_HEIGHT), "white")
    ImageDraw.Draw(picture).text((4, 0), text, fill=colour, font=font())
    return np.asarray(picture)


def test_named_tiles_show_their_file_name_first_in_their_text_block():
    """caption's grid matched its tiles to the files only by their order in captions.jsonl."""
    names = ["holiday/beach.jpg", "cat.png"]
    grid = np.asarray(render_caption_grid(images(2), ["a", "b"], columns=2, names=names))
    for column, name in enumerate(names):
        first_line = grid[TILE : TILE + LINE_HEIGHT, column * TILE : (column + 1) * TILE]
        assert np.array_equal(first_line, text_line(name, NAME_COLOUR)), name
        second_line = grid[TILE + LINE_HEIGHT : TILE + 2 * LINE_HEIGHT, column * TILE : (column + 1) * TILE]
        assert np.array_equal(second_line, text_line("model: " + "ab"[column], (20, 20, 20)))
    with pytest.raises(ValueError, match="names"):
        render_caption_grid(images(2), ["a", "b"], names=["one.png"])


def test_row_pictures_carry_a_title_and_say_over_each_row_whose_images_it_shows():
    """Reconstructions and video grids were bare rows of tiles: no split or step, nothing saying which row
    held the originals and which the model's."""
    originals, reconstructions = images(2), images(2).flip(-1)
    picture = np.asarray(render_reconstructions(originals, reconstructions, title="reconstructions, val, step 6"))
    bare = np.asarray(render_image_rows([originals, reconstructions]))  # the rows as they were drawn before
    width, title_band, label_band = bare.shape[1], LINE_HEIGHT + 8, LINE_HEIGHT + 4
    assert picture.shape == (bare.shape[0] + title_band + 2 * label_band, width, 3)
    assert np.array_equal(picture[4 : 4 + LINE_HEIGHT], text_line("reconstructions, val, step 6", (0, 0, 0), width))
    strip = 2 * 4 + 128  # a row: 64 px images upscaled 2x, between 4 px borders
    second_label = title_band + label_band + strip - 4
    for top, role in ((title_band, "originals"), (second_label, "reconstructions")):
        assert np.array_equal(picture[top + 4 : top + 4 + LINE_HEIGHT], text_line(role, (20, 20, 20), width)), role
    # under each label, its row of tiles as before
    assert np.array_equal(picture[title_band + label_band :][: strip - 4], bare[: strip - 4])
    assert np.array_equal(picture[second_label + label_band :], bare[strip - 4 :])


def test_title_is_optional():
    assert render_caption_grid(images(1), ["x"], title="step 5", columns=1).height > \
        render_caption_grid(images(1), ["x"], columns=1).height


def glyph(char: str) -> np.ndarray:
    """One character as the grids draw it, white on black."""
    picture = Image.new("L", (24, 24))
    ImageDraw.Draw(picture).text((2, 2), char, fill=255, font=font())
    return np.asarray(picture)


def test_accented_letters_and_dashes_are_drawn_as_themselves_not_as_boxes():
    """Pillow's bundled font draws ASCII alone: "un café rouge — ü" showed boxes for é, — and ü. The grids draw
    with DejaVu Sans, which matplotlib (a dependency) ships; it has no CJK (see the fallback font tests below)."""
    box = glyph("\ue000")  # a private-use character no font draws: the box of a missing glyph
    for char in "éü—ßΩж":
        assert not np.array_equal(glyph(char), box), char
    assert not np.array_equal(glyph("é"), glyph("e"))


def test_without_dejavu_sans_the_grids_draw_with_pillows_bundled_font_as_before(monkeypatch):
    monkeypatch.setattr(grids, "_dejavu_sans", lambda: None)  # an install whose matplotlib lacks the file
    assert font().getname() == ImageFont.load_default(size=FONT_SIZE).getname()


def drawn(text: str, face: ImageFont.ImageFont) -> np.ndarray:
    picture = Image.new("L", (120, 20))
    ImageDraw.Draw(picture).text((2, 2), text, fill=255, font=face)
    return np.asarray(picture)


def test_text_dejavu_sans_lacks_is_drawn_in_an_installed_font_fontconfig_finds_covering_it(monkeypatch):
    """"一只猫" drew as boxes: a text with a character DejaVu Sans has no glyph for is handed, whole, to a
    font that covers it (here DejaVu Serif, which has ᴕ, stands in for a CJK font that fontconfig lists)."""
    sans = grids._dejavu_sans()
    serif = str(sans.with_name("DejaVuSerif.ttf"))
    monkeypatch.setattr(grids, "_fonts_covering", lambda characters: (serif,) if characters == {"ᴕ"} else ())
    fallback = ImageFont.truetype(serif, FONT_SIZE)
    assert np.array_equal(drawn("a ᴕ b", font()), drawn("a ᴕ b", fallback))
    assert font().getlength("a ᴕ b") == fallback.getlength("a ᴕ b")  # wrapped by the width it is drawn at
    # what DejaVu Sans covers is drawn by it alone, as before: ASCII and accents to the same bytes
    plain = ImageFont.truetype(str(sans), FONT_SIZE)
    for text in ("a dog runs", "un café — ü"):
        assert np.array_equal(drawn(text, font()), drawn(text, plain))


def test_text_no_installed_font_covers_is_drawn_as_boxes_and_said_once_naming_its_characters(monkeypatch, caplog):
    monkeypatch.setattr(grids, "_fonts_covering", lambda characters: ())  # no CJK or emoji font installed
    monkeypatch.setattr(grids, "_said_undrawable", set())
    for text in ("一只猫 🐶", "一只猫", "another 猫"):
        render_caption_grid(images(1), [text], columns=1)
    assert [r.getMessage() for r in caption_warnings(caplog)] == [
        "pictures draw 一 (U+4E00), 只 (U+53EA), 猫 (U+732B), 🐶 (U+1F436) as boxes: no installed font has them "
        "(fontconfig finds a font such as Noto Sans CJK once installed)"]


def caption_warnings(caplog: pytest.LogCaptureFixture) -> list:
    return [record for record in caplog.records if record.name == "supra.pictures.grids"]


def test_a_title_wider_than_the_picture_wraps_onto_more_lines_whole():
    """It was drawn on one line and cut off at the picture's edge, mid-word."""
    title = "<TEXT>un café rouge — a long prompt that goes on and on</TEXT><IMAGE>  (seed 0)"
    one_line = render_caption_grid(images(1), ["x"], title="step 5", columns=1)
    wrapped = render_caption_grid(images(1), ["x"], title=title, columns=1)
    assert wrapped.width == one_line.width and wrapped.height >= one_line.height + 2 * LINE_HEIGHT
    lines = title_lines(title, font(), TILE - 8)
    assert " ".join(lines) == " ".join(title.split())  # every word there, in order
    assert all(font().getlength(line) <= TILE - 8 for line in lines)
    assert title_lines("step 5  (seed 0)", font(), TILE - 8) == ["step 5  (seed 0)"]  # one that fits: as written


def test_a_title_with_line_breaks_gets_a_band_as_tall_as_its_lines_above_the_tiles():
    """A prompt holding a line break fitted the width, so it stayed one string: Pillow drew its later lines
    over the image tiles, in a band one line tall."""
    title = "<TEXT>a red\nsquare\non the left</TEXT><IMAGE>  (seed 0)"
    assert title_lines(title, font(), 4 * TILE - 8) == ["<TEXT>a red", "square", "on the left</TEXT><IMAGE>  (seed 0)"]
    one_line = render_caption_grid(images(1), ["x"], title="step 5", columns=1)
    three_lines = render_caption_grid(images(1), ["x"], title="a red\nsquare\non the left", columns=1)
    assert three_lines.height == one_line.height + 2 * LINE_HEIGHT
    band = np.asarray(three_lines)[: title_height(["a red", "square", "on the left"])]
    last_line = band[4 + 2 * LINE_HEIGHT : 4 + 3 * LINE_HEIGHT]
    assert (last_line < 128).any(), "the third line drawn inside the band, above the tiles"


def test_a_caption_with_a_line_break_wraps_onto_its_own_lines():
    assert wrap("a red\nsquare", font(), TILE - 8) == ["a red", "square"]
    assert wrap("a red\n\nsquare", font(), TILE - 8) == ["a red", "", "square"]  # a blank line kept
    broken = render_caption_grid(images(1), ["a red\nsquare"], columns=1)
    assert broken.height == render_caption_grid(images(1), ["a red"], columns=1).height + LINE_HEIGHT


def test_save_is_atomic_and_creates_directories(tmp_path):
    grid = render_caption_grid(images(2), ["a", "b"], columns=2)
    path = save_image_atomic(grid, tmp_path / "samples" / "grid.png")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["grid.png"]


def test_a_word_wider_than_a_tile_is_cut_and_endless_captions_are_capped():
    one_word = render_caption_grid(images(1), ["x" * 300], columns=1)
    assert one_word.width == TILE
    endless = render_caption_grid(images(1), ["word " * 1000], columns=1)
    assert endless.height < TILE + (MAX_LINES + 2) * LINE_HEIGHT


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        render_caption_grid(images(2).float(), ["a", "b"])
    with pytest.raises(ValueError, match="as many captions"):
        render_caption_grid(images(2), ["a"])
    with pytest.raises(ValueError, match="as many captions"):
        render_caption_grid(images(0), [])


# -- the callback ------------------------------------------------------------------------------------


class TinySamples(L.LightningDataModule):
    """Stand-in for the captioning datamodule: a few random batches and `sample_images`."""

    split = "test"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, int]] = []

    def sample_images(self, split: str, n: int) -> tuple[torch.Tensor, list[list[str]]]:
        self.requests.append((split, n))
        return images(n), [[f"reference {i}", "another"] for i in range(n)]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return normalize_images(images)

    def _loader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)

    train_dataloader = val_dataloader = test_dataloader = _loader


class TinyCaptioner(L.LightningModule):
    """Records how it was asked to caption; its captions are fixed strings."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.calls: list[dict] = []

    def generate_captions(self, images: torch.Tensor) -> list[str]:
        self.calls.append({"shape": tuple(images.shape), "dtype": images.dtype, "training": self.training,
                           "grad": torch.is_grad_enabled()})
        return [f"caption {i}" for i in range(len(images))]

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).mean())

    test_step = validation_step

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_callback_writes_grids_and_logs_them_to_tensorboard_during_fit_and_test(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    callback = CaptionGridCallback(num_images=3, columns=2, output_dir=str(tmp_path / "run"))
    tensorboard = TensorBoardLogger(tmp_path / "run", name="tensorboard", version="")
    trainer = L.Trainer(
        accelerator="cpu", max_steps=2, limit_train_batches=2, num_sanity_val_steps=1, callbacks=[callback],
        logger=[CSVLogger(tmp_path / "run", name="csv"), tensorboard], default_root_dir=tmp_path / "root",
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )
    module, datamodule = TinyCaptioner(), TinySamples()
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, verbose=False)

    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["test_step_000002.png", "val_step_000002.png"]
    assert callback.last_path == run / "samples" / "test_step_000002.png"
    assert (run / "samples.png").read_bytes() == callback.last_path.read_bytes()  # the latest grid
    assert not (tmp_path / "root").exists()  # output_dir wins over default_root_dir
    assert datamodule.requests == [("val", 3), ("test", 3)]  # the sanity check made no grid
    assert module.calls == [{"shape": (3, 3, 64, 64), "dtype": torch.float32, "training": False, "grad": False}] * 2
    tags = EventAccumulator(str(run / "tensorboard")).Reload().Tags()["images"]
    assert {"val/samples", "test/samples"} <= set(tags)


def test_no_validation_pictures_after_a_sigterm_so_the_checkpoint_comes_first(tmp_path, caplog):
    """A preemption's SIGTERM gives 30 to 120 s: the pictures drawn as a validation ends (minutes for the a2a
    model's) came before last.ckpt, and the run was killed without it."""
    callback = CaptionGridCallback(num_images=2, output_dir=str(tmp_path / "run"))
    trainer = L.Trainer(accelerator="cpu", max_steps=2, limit_train_batches=2, num_sanity_val_steps=0,
                        callbacks=[callback], logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False)
    module, datamodule = TinyCaptioner(), TinySamples()
    trainer.fit(module, datamodule=datamodule)
    drawn = list(datamodule.requests)
    stop_at_end_of_batch(trainer)  # as Lightning's SIGTERM handler marks it
    with caplog.at_level("INFO", logger="supra.callbacks.sample_grid"):
        callback.on_validation_end(trainer, module)
    assert datamodule.requests == drawn == [("val", 2)]  # nothing drawn after the signal
    assert [r.getMessage() for r in caplog.records if r.name == "supra.callbacks.sample_grid"] == [
        "CaptionGridCallback: no val pictures at step 2: the run is stopping (SIGTERM, or Ctrl-C), and its "
        "checkpoint comes first"]


def test_callback_uses_default_root_dir_and_restores_training_mode(tmp_path):
    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False, received_sigterm=False, global_step=7, loggers=[],
                              datamodule=TinySamples(), default_root_dir=str(tmp_path))
    module = TinyCaptioner().train()
    callback = CaptionGridCallback(num_images=2, dirname="grids")
    callback.on_validation_end(trainer, module)
    assert callback.last_path == tmp_path / "grids" / "val_step_000007.png" and callback.last_path.is_file()
    assert module.training and module.calls[0]["training"] is False


def test_a_part_kept_in_eval_inside_a_training_module_is_still_in_eval_after_the_pictures(tmp_path):
    """Each module is given back in its own mode, not the whole module switched to training: a frozen part (a
    stage-2 model's VQ-VAE) stays in eval."""
    trainer = SimpleNamespace(is_global_zero=True, sanity_checking=False, received_sigterm=False, global_step=7, loggers=[],
                              datamodule=TinySamples(), default_root_dir=str(tmp_path))
    module = TinyCaptioner().train()
    module.layer.eval()
    CaptionGridCallback(num_images=2).on_validation_end(trainer, module)
    assert module.training and not module.layer.training


def test_callback_does_nothing_on_other_ranks(tmp_path):
    datamodule = TinySamples()
    trainer = SimpleNamespace(is_global_zero=False, sanity_checking=False, received_sigterm=False, global_step=7, loggers=[],
                              datamodule=datamodule, default_root_dir=str(tmp_path))
    callback = CaptionGridCallback(num_images=2)
    callback.on_validation_end(trainer, TinyCaptioner())
    assert datamodule.requests == [] and list(tmp_path.iterdir()) == [] and callback.last_path is None
