"""`python -m supra.generate` end to end on a tiny trained pair (GPT + VQ-VAE + BPE), the release folder
it loads, and every bad input as one line."""

import html
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import supra.generate as generate_module
from supra.artifacts.a2a_release import load_a2a, load_stage1_vqvae, save_a2a_release
from supra.artifacts.captioner_release import load_captioner
from supra.data.images import GENERATE_MAX_PIXELS
from supra.data.media.codes import encode_items
from supra.explain import check_a2a_options
from supra.generate import new_folder, run
from supra.models.a2a_nano import A2AConfig, A2ANano
from supra.models.vqvae import VQVAE
from supra.pictures.attention import DECODED_INPUT, GENERATED_PICTURE, INPUT_PICTURE, TILE_SCALE_NOTE
from supra.pictures.attention import TILE as HEAT_TILE
from supra.pictures.grids import LINE_HEIGHT, font, wrap
from supra.tokens.a2a_sequences import check_image_size_option
from supra.tokens.a2a_vocab import A2AVocab
from supra.utils.errors import SupraUserError
from supra.utils.hydra_quoting import quote_prompt
from tests.conftest import compose_config, run_command
from tests.picture_lines import drawn_at, titled

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}
SIDE = 16  # images 16x16 -> 2x2 codes: every mode in a few tokens


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def square(colour: str, side: int = SIDE) -> np.ndarray:
    """uint8 RGB [side, side, 3]: a coloured square on black."""
    picture = np.zeros((side, side, 3), dtype=np.uint8)
    picture[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = COLOURS[colour]
    return picture


def cycle(colour: str) -> list[str]:
    """The training clip of a colour: four frames cycling through the colours from it."""
    names = list(COLOURS)
    return [names[(names.index(colour) + i) % len(names)] for i in range(len(names))]


def train_tiny_gpt(net: A2ANano, sequences: list[list[int]], steps: int) -> None:
    """Plain next-token training, full batch: enough for the GPT to learn the handful of sequences."""
    length = max(map(len, sequences))
    idx = torch.zeros(len(sequences), length, dtype=torch.long)
    targets = torch.full((len(sequences), length), -100, dtype=torch.long)
    for i, seq in enumerate(sequences):
        idx[i, : len(seq)] = torch.tensor(seq)
        targets[i, : len(seq) - 1] = torch.tensor(seq[1:])
    optimizer = torch.optim.AdamW(net.optimizer_groups(0.0), lr=1e-2, betas=(0.9, 0.95))
    net.train()
    for _ in range(steps):
        _, loss = net(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    assert loss.item() < 0.6, loss.item()  # what is left: which colour and task a sequence starts


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A release folder of a tiny trained GPT + tiny VQ-VAE + trained BPE, and the codes it learnt."""
    torch.manual_seed(0)
    vqvae = VQVAE(num_codes=32, code_dim=8, hidden=(8, 8)).eval()
    captions = {c: f"a {c} square" for c in COLOURS}
    vocab = A2AVocab.train([*captions.values(), *(f"{t} moving" for t in captions.values())], vocab_size=300,
                           num_codes=32)
    pixels = torch.stack([torch.from_numpy(square(c)).permute(2, 0, 1) for c in COLOURS])
    with torch.no_grad():  # seed the codebook with the images' own encodings, so each colour has its codes
        z = vqvae.encoder(pixels.float() / 127.5 - 1).permute(0, 2, 3, 1).reshape(-1, 8)
        vqvae.quantizer.codebook[: len(z)] = z
    codes = dict(zip(COLOURS, encode_items(vqvae, pixels, 256, torch.device("cpu")), strict=True))
    assert len({tuple(c.flatten().tolist()) for c in codes.values()}) == len(COLOURS)
    sequences = []
    for colour, caption in captions.items():
        image, clip = codes[colour], torch.stack([codes[c] for c in cycle(colour)])
        sequences += [vocab.encode([("text", caption), ("image", image)]),
                      vocab.encode([("image", image), ("text", caption)]),
                      vocab.encode([("text", caption + " moving"), ("video", clip)]),
                      vocab.encode([("video", clip)]),
                      vocab.encode([("text", caption)])]
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=48, n_layers=2, d_model=64, n_heads=2,
                            d_mlp=128))
    train_tiny_gpt(net, sequences, steps=100)
    folder = save_a2a_release(tmp_path_factory.mktemp("pair") / "release", net, vqvae, vocab)
    return folder, codes


def generate(tmp_path: Path, folder: Path, *overrides: str) -> dict:
    """The real command's function on conf/generate.yaml composed with `overrides`."""
    # image_size=16 where the mode reads it (text mode would refuse it) and the test does not set it
    size = [] if "mode=text" in overrides or any(o.startswith("image_size=") for o in overrides) else [f"image_size={SIDE}"]
    overrides = [f"ckpt={folder}", f"out={tmp_path / 'out'}", *size, *quote_prompt(list(overrides))]
    cfg = compose_config("generate", tmp_path / "run", overrides)
    return run(cfg)


def test_release_folder_round_trips_the_pair(pair, tmp_path):
    folder, _ = pair
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                        "tokenizer.json", "vqvae.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["vocab"]["num_codes"] == 32 and config["gpt"]["context"] == 48
    net, vqvae, vocab = load_a2a(folder)
    again = save_a2a_release(tmp_path / "again", net, vqvae, vocab)
    net2, _, vocab2 = load_a2a(again)
    idx = torch.randint(0, vocab.layout.vocab_size, (1, 20))
    assert torch.equal(net(idx)[0], net2(idx)[0]) and vocab2.layout == vocab.layout
    assert f"{net.get_num_params():,}" in (folder / "README.md").read_text()


def test_a_tied_head_a2a_release_may_leave_out_its_head_but_not_the_embedding_it_is_tied_to(tmp_path):
    from safetensors.torch import load_file, save_file, save_model

    torch.manual_seed(0)
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=16, n_layers=1, d_model=16, n_heads=2,
                            d_mlp=32, tie_head=True)).eval()
    folder = save_a2a_release(tmp_path / "tied", net, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)
    weights = folder / "model.safetensors"
    save_file({k: v for k, v in load_file(weights).items() if k != "lm_head.weight"}, weights)
    loaded, _, _ = load_a2a(folder)  # tied to the embedding again, as the captioner's head is
    idx = torch.randint(0, vocab.layout.vocab_size, (1, 8))
    assert loaded.lm_head.weight is loaded.tok_emb.weight and torch.equal(loaded(idx)[0], net(idx)[0])
    save_model(net, str(weights))  # de-duplicated: keeps lm_head.weight alone
    with pytest.raises(SupraUserError, match=re.escape(f"{weights} lacks tok_emb.weight, the token embedding that "
                                                       "lm_head.weight is tied to: it was saved with its tied weights "
                                                       "de-duplicated")):
        load_a2a(folder)


def test_the_a2a_card_counts_one_block_and_one_head_in_the_singular(tmp_path):
    vocab = A2AVocab.train(["a red square"], vocab_size=270, num_codes=16)
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=16, n_layers=1, d_model=16, n_heads=1,
                            d_mlp=32))
    folder = save_a2a_release(tmp_path / "one", net, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)
    assert "| GPT (1 block, d 16, 1 head, MLP 32 " in (folder / "README.md").read_text()  # not "1 blocks, 1 heads"


def test_an_a2a_release_config_cut_short_or_mistyped_is_one_line(pair, tmp_path):
    import json
    import shutil

    broken = {"no vocab": lambda c: {k: v for k, v in c.items() if k != "vocab"},
              "an unknown VQ-VAE key": lambda c: {**c, "vqvae": {**c["vqvae"], "foo": 1}}}
    for name, edit in broken.items():
        folder = tmp_path / name.replace(" ", "_")
        shutil.copytree(pair[0], folder)
        (folder / "config.json").write_text(json.dumps(edit(json.loads((folder / "config.json").read_text()))))
        with pytest.raises(SupraUserError, match=r"config.json is not a readable a2a_nano config \(") as err:
            load_a2a(folder)
        assert "\n" not in str(err.value), name


def test_a_misspelt_key_of_an_a2a_release_config_is_refused_naming_it_not_dropped(pair, tmp_path):
    import json
    import shutil

    misspelt = {"gpt": lambda c: {**c, "gpt": {**c["gpt"], "activaton": "relu"}},
                "top": lambda c: {**c, "FOO": 1}}
    for name, edit in misspelt.items():
        folder = tmp_path / name
        shutil.copytree(pair[0], folder)
        (folder / "config.json").write_text(json.dumps(edit(json.loads((folder / "config.json").read_text()))))
        with pytest.raises(SupraUserError) as err:
            load_a2a(folder)
        assert str(folder / "config.json") in str(err.value) and "\n" not in str(err.value)
    assert "unknown key gpt.activaton (did you mean gpt.activation?)" in str(pytest.raises(
        SupraUserError, load_a2a, tmp_path / "gpt").value)


def test_a2a_lightning_checkpoint_loads_like_the_release(pair, tmp_path):
    net, vqvae, vocab = load_a2a(pair[0])
    state = {f"net.{k}": v for k, v in net.state_dict().items()} | {f"vqvae.{k}": v for k, v in vqvae.state_dict().items()}
    net_cfg = {"_target_": "supra.models.a2a_nano.A2ANano.from_kwargs", **net.config.to_dict(), "vocab_size": "???"}
    meta = {"kind": "supra.a2a", "a2a_vocab": vocab.to_json(), "run_config": {"model": {"net": net_cfg}},
            "vqvae_config": {"num_codes": 32, "code_dim": 8, "hidden": [8, 8]}}
    torch.save({"state_dict": state, "supra": meta}, tmp_path / "a2a.ckpt")
    net2, _, _ = load_a2a(tmp_path / "a2a.ckpt")
    idx = torch.randint(0, vocab.layout.vocab_size, (1, 20))
    assert torch.equal(net(idx)[0], net2(idx)[0])
    run_command("export", f"ckpt={tmp_path / 'a2a.ckpt'}", f"out={tmp_path / 'exported'}")  # python -m supra.export
    net3, _, _ = load_a2a(tmp_path / "exported")
    assert torch.equal(net(idx)[0], net3(idx)[0])
    torch.save({"state_dict": state, "supra": meta | {"kind": "supra.vqvae"}}, tmp_path / "vq.ckpt")
    with pytest.raises(SupraUserError, match="is a VQ-VAE checkpoint, not an a2a_nano one: give the a2a_nano model "
                                             "trained over it"):
        load_a2a(tmp_path / "vq.ckpt")


def pair_checkpoint(folder: Path, path: Path, sources: dict) -> Path:
    """The release's pair as a train.py checkpoint whose run trained on `sources` (data.sources)."""
    net, vqvae, vocab = load_a2a(folder)
    state = {f"net.{k}": v for k, v in net.state_dict().items()} | {f"vqvae.{k}": v for k, v in vqvae.state_dict().items()}
    meta = {"kind": "supra.a2a", "a2a_vocab": vocab.to_json(), "net_config": net.config.to_dict(),
            "run_config": {"data": {"sources": sources}},
            "vqvae_config": {"num_codes": 32, "code_dim": 8, "hidden": [8, 8]}}
    torch.save({"state_dict": state, "supra": meta}, path)
    return path


def test_image_size_defaults_to_the_size_the_model_was_trained_at_and_another_is_noted(pair, tmp_path, capsys):
    # a run of 16 px sources (one left out): its GPT learnt 2x2 grids, which its context of 48 holds; 64 px it cannot
    ckpt = pair_checkpoint(pair[0], tmp_path / "a2a.ckpt", {"shapes": {"image_size": SIDE}, "shapes_video": None})
    image = ["mode=text2image", "prompt=a red square", "num_samples=1"]
    summary = generate(tmp_path, ckpt, *image, "image_size=null")
    assert torch.tensor(summary["codes"]).shape == (1, 2, 2)
    assert "note" not in capsys.readouterr().err
    generate(tmp_path, ckpt, *image, "image_size=24")  # used as given, and said once
    assert capsys.readouterr().err.count("note: image_size=24 but ckpt=") == 1
    # its release records the size too; one exported before it did (none recorded) draws at 64 px, as it always has
    run_command("export", f"ckpt={ckpt}", f"out={tmp_path / 'release'}")
    assert json.loads((tmp_path / "release" / "config.json").read_text())["image_size"] == SIDE
    assert torch.tensor(generate(tmp_path, tmp_path / "release", *image, "image_size=null")["codes"]).shape == (1, 2, 2)
    with pytest.raises(SupraUserError, match="image_size=64"):
        generate(tmp_path, pair[0], *image, "image_size=null")
    # explain takes the same default: its maps are over the model's own 2x2 grid
    run_command("explain", f"ckpt={ckpt}", "prompt=a red square", f"out={tmp_path / 'explained'}")
    assert torch.tensor(json.loads((tmp_path / "explained" / "explain.json").read_text())["codes"]).shape == (2, 2)


def test_a_model_of_another_kind_is_named_before_any_option_with_what_reads_it(tmp_path):
    """A captioner's .ckpt without a prompt was first asked for one, and only then refused, naming no command that
    reads it (its release folder's refusal did): the model is checked first, one line for .ckpt and folder alike."""
    torch.save({"state_dict": {}, "supra": {"kind": "supra.captioning"}}, tmp_path / "captioner.ckpt")
    torch.save({"state_dict": {}, "supra": {"kind": "supra.vqvae"}}, tmp_path / "vqvae.ckpt")
    release = tmp_path / "captioner_release"
    release.mkdir()
    (release / "config.json").write_text("{}")
    (release / "model.safetensors").write_bytes(b"")
    caption_instead = ("not an a2a_nano one: load_captioner reads it in Python, python -m supra.caption and "
                       "evaluate.py on the command line$")
    for model, message in ((tmp_path / "captioner.ckpt", f"is a captioner checkpoint, {caption_instead}"),
                           (release, f"is a SupraVL-Nano captioner release, {caption_instead}"),
                           (tmp_path / "vqvae.ckpt", "is a VQ-VAE checkpoint, not an a2a_nano one: give the a2a_nano "
                                                     "model trained over it")):
        with pytest.raises(SupraUserError, match=rf"^ckpt={re.escape(str(model))} {message}"):
            generate(tmp_path, model, "mode=text2image")  # no prompt


def test_every_loader_names_a_model_of_another_kind_and_what_to_give_or_what_reads_it(tmp_path, capsys):
    """One table (artifacts/kinds.py) for every loader: the caption command given an a2a .ckpt points to generate as
    it does for an a2a release (it said "give a checkpoint of that model"), and a VQ-VAE option given another model
    names the file to give instead."""
    for name, kind in (("a2a", "supra.a2a"), ("captioner", "supra.captioning"), ("vqvae", "supra.vqvae")):
        torch.save({"state_dict": {}, "supra": {"kind": kind}}, tmp_path / f"{name}.ckpt")
    a2a = re.escape(str(tmp_path / "a2a.ckpt"))
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "photos" / "red.png")
    with pytest.raises(SystemExit):
        run_command("caption", f"ckpt={tmp_path / 'a2a.ckpt'}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'out'}")
    assert re.fullmatch(rf"error: ckpt={a2a} is an a2a_nano checkpoint \(GPT \+ VQ-VAE\), not a captioner: load_a2a "
                        rf"reads it in Python; caption a picture with it by python -m supra.generate ckpt={a2a} "
                        r"mode=image2text image=PICTURE\n",
                        capsys.readouterr().err)
    with pytest.raises(SupraUserError, match=r"is a VQ-VAE checkpoint, not a captioner: python -m supra.tokenize_media "
                                             r"and evaluate.py read it$"):
        load_captioner(tmp_path / "vqvae.ckpt")
    for name, message in (("a2a", "an a2a_nano checkpoint, not a VQ-VAE: give the VQ-VAE checkpoint it was trained "
                                  "over, or an a2a release folder (its vqvae.safetensors)"),
                          ("captioner", "a captioner checkpoint, not a VQ-VAE: give a VQ-VAE checkpoint (a captioner "
                                        "is read by load_captioner in Python, python -m supra.caption and evaluate.py)")):
        given = tmp_path / f"{name}.ckpt"
        with pytest.raises(SupraUserError, match=rf"^model.vqvae_ckpt={re.escape(str(given))} is {re.escape(message)}$"):
            load_stage1_vqvae(given, what="model.vqvae_ckpt")


def test_the_caption_command_given_an_a2a_release_names_the_command_that_captions_with_it(pair, tmp_path, capsys):
    folder = pair[0]
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "photos" / "red.png")
    with pytest.raises(SystemExit):
        run_command("caption", f"ckpt={folder}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'out'}")
    assert capsys.readouterr().err == (f"error: ckpt={folder} is an a2a_nano release (GPT + VQ-VAE), not a captioner: "
                                       f"load_a2a reads it in Python; caption a picture with it by python -m "
                                       f"supra.generate ckpt={folder} mode=image2text image=PICTURE\n")


def test_text2image_writes_pngs_and_a_grid_and_draws_the_learnt_codes(pair, tmp_path):
    folder, codes = pair
    summary = generate(tmp_path, folder, "mode=text2image", "prompt=a blue square", "temperature=0", "num_samples=2")
    out = tmp_path / "out"
    assert summary["files"] == ["image_0.png", "image_1.png", "grid.png"]
    assert Image.open(out / "image_0.png").size == (SIDE, SIDE)
    assert torch.equal(torch.tensor(summary["codes"][0]), codes["blue"])
    assert json.loads((out / "generation.json").read_text())["prompt"] == "<TEXT>a blue square</TEXT><IMAGE>"


def test_text2image_grid_labels_each_sample_and_upscales_it_sharp_as_trainings_grid(pair, tmp_path):
    """It said "model: sample 0" (a caption's prefix) under images smoothed bicubic."""
    from PIL import ImageDraw

    from supra.pictures.grids import LINE_HEIGHT, TILE, font

    generate(tmp_path, pair[0], "mode=text2image", "prompt=a blue square", "num_samples=1")
    grid = Image.open(tmp_path / "out" / "grid.png").convert("RGB")
    # one tile at the bottom, 4 px in, its one-line label over it
    tile = grid.crop((4, grid.height - TILE, TILE - 4, grid.height - 8))
    sharp = Image.open(tmp_path / "out" / "image_0.png").convert("RGB").resize(tile.size, Image.NEAREST)
    assert np.array_equal(np.asarray(tile), np.asarray(sharp))
    label_top = grid.height - TILE - LINE_HEIGHT - 4
    label = Image.new("RGB", (TILE, LINE_HEIGHT), "white")
    ImageDraw.Draw(label).text((4, 0), "sample 0", fill=(20, 20, 20), font=font())
    assert np.array_equal(np.asarray(grid.crop((0, label_top, TILE, label_top + LINE_HEIGHT))), np.asarray(label))


def test_raw_prompt_with_control_tokens_equals_the_plain_prompt_wrapped(pair, tmp_path):
    plain = generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "seed=5")
    raw = generate(tmp_path, pair[0], "mode=text2image", "prompt=<TEXT>a red square</TEXT><IMAGE>", "seed=5")
    assert plain["codes"] == raw["codes"]


def test_guidance_reaches_the_sampler_and_zero_means_the_empty_caption(pair, tmp_path):
    unguided = generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "seed=5", "guidance=0")
    empty = generate(tmp_path, pair[0], "mode=text2image", "prompt=<TEXT></TEXT><IMAGE>", "seed=5")
    assert unguided["codes"] == empty["codes"]


def test_image2text_captions_the_image(pair, tmp_path):
    Image.fromarray(square("green", 40)).save(tmp_path / "green.png")  # 40x40: fitted to 16x16
    summary = generate(tmp_path, pair[0], "mode=image2text", f"image={tmp_path / 'green.png'}", "temperature=0",
                       "num_samples=1")
    assert summary["texts"] == ["a green square"]
    assert (tmp_path / "out" / "captions.txt").read_text() == "a green square\n"
    assert (tmp_path / "out" / "grid.png").is_file()


def test_image2text_grid_shows_the_picture_given_beside_what_the_model_read_of_it_each_labelled(pair, tmp_path):
    """It showed the VQ-VAE's reconstruction alone, unlabelled, under a title naming the picture's file."""
    from supra.data.images import fit
    from supra.pictures.grids import NAME_COLOUR, TILE

    picture = square("green", 40)
    Image.fromarray(picture).save(tmp_path / "green.png")  # 40x40: fitted to 16x16, as the model is given it
    summary = generate(tmp_path, pair[0], "mode=image2text", f"image={tmp_path / 'green.png'}", "num_samples=2",
                       "max_new_tokens=3")
    grid = Image.open(tmp_path / "out" / "grid.png").convert("RGB")
    assert titled(grid, "image2text, seed 0: green.png")
    labels = ["green.png, 16x16 (resize=crop): the model's input", "its VQ-VAE reconstruction: what the model read"]
    wrapped = [wrap(label, font(), TILE - 8) for label in labels]
    top = LINE_HEIGHT + 8  # under the title
    for column, lines in enumerate(wrapped):
        tile = grid.crop((column * TILE, 0, (column + 1) * TILE, grid.height))
        assert all(drawn_at(tile, top + 4 + i * LINE_HEIGHT, line, NAME_COLOUR) for i, line in enumerate(lines))
    tiles_top = top + max(map(len, wrapped)) * LINE_HEIGHT + 8
    given = Image.fromarray(fit(picture, SIDE, "crop", 10**6).permute(1, 2, 0).numpy()).resize((TILE - 8, TILE - 8),
                                                                                                Image.NEAREST)
    shown = grid.crop((4, tiles_top, TILE - 4, tiles_top + TILE - 8))
    assert np.array_equal(np.asarray(shown), np.asarray(given))  # the user's picture, not its reconstruction
    read = grid.crop((TILE + 4, tiles_top, 2 * TILE - 4, tiles_top + TILE - 8))
    assert not np.array_equal(np.asarray(read), np.asarray(given))
    captions_top = tiles_top + TILE  # under the tiles' bottom border
    for i, text in enumerate(summary["texts"]):
        assert drawn_at(grid, captions_top + i * LINE_HEIGHT, f"sample {i}: {text}", (20, 20, 20))


def test_image2text_reads_a_gifs_first_frame_as_shown_as_training_does(pair, tmp_path):
    from supra.data.gif_frames import read_gif_frames
    from tests.media_fixtures import PALETTE, Frame, gif_bytes, solid

    # a green square drawn on a screen it does not fill: the rest is transparent (white), not palette index 0
    gif = gif_bytes(SIDE, SIDE, [Frame(solid(8, 8, PALETTE.index(COLOURS["green"])), left=4, top=4)])
    (tmp_path / "framed.gif").write_bytes(gif)
    Image.fromarray(read_gif_frames(gif)[0]).save(tmp_path / "shown.png")
    prompts = []
    for name in ("framed.gif", "shown.png"):
        generate(tmp_path, pair[0], "mode=image2text", f"image={tmp_path / name}", "num_samples=1", "max_new_tokens=1")
        prompts.append(json.loads((tmp_path / "out" / "generation.json").read_text())["prompt"])  # the image's codes
    assert prompts[0] == prompts[1]


def test_text_mode_continues_the_prompt(pair, tmp_path):
    summary = generate(tmp_path, pair[0], "mode=text", "prompt=a yellow", "temperature=0", "num_samples=1")
    assert summary["texts"] == [" square"]
    assert (tmp_path / "out" / "text.txt").read_text() == "a yellow square\n"


def test_printed_samples_are_the_lines_of_text_txt_the_prompts_text_first(pair, tmp_path, capsys):
    generate(tmp_path, pair[0], "mode=text", "prompt=a yellow", "temperature=0", "num_samples=1")
    assert capsys.readouterr().out.splitlines()[1:] == ["  a yellow square"]
    assert (tmp_path / "out" / "text.txt").read_text() == "a yellow square\n"


def test_a_raw_prompt_that_closes_its_text_is_followed_by_a_new_text_as_generation_json_records(pair, tmp_path):
    summary = generate(tmp_path, pair[0], "mode=text", "prompt=<TEXT>a yellow</TEXT>", "temperature=0", "num_samples=1")
    record = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert record["prompt"] == "<TEXT>a yellow</TEXT><TEXT>" and record["prompt_text"] == ""  # the <TEXT> it was given
    # the sample is the new text alone: "a yellow" is a text of its own before it, not the sample's start
    assert (tmp_path / "out" / "text.txt").read_text() == summary["texts"][0] + "\n"
    open_prompt = generate(tmp_path, pair[0], "mode=text", "prompt=<TEXT>a yellow", "temperature=0", "num_samples=1")
    assert open_prompt["prompt"] == "<TEXT>a yellow" and open_prompt["prompt_text"] == "a yellow"
    assert (tmp_path / "out" / "text.txt").read_text() == "a yellow square\n"


def test_a_text_limit_beyond_what_the_context_leaves_is_said_and_the_limit_used_recorded(pair, tmp_path, capsys):
    Image.fromarray(square("green")).save(tmp_path / "green.png")
    image2text = ("mode=image2text", f"image={tmp_path / 'green.png'}", "num_samples=1")
    note = ("note: max_new_tokens=100, but the context of 48 leaves 41 after the prompt's 7 tokens: texts stop there "
            "at the latest\n")  # the prompt: <IMAGE>, 2x2 codes, </IMAGE>, <TEXT>
    generate(tmp_path, pair[0], *image2text, "max_new_tokens=100")
    assert capsys.readouterr().err == note
    assert json.loads((tmp_path / "out" / "generation.json").read_text())["max_new_tokens"] == 41
    generate(tmp_path, pair[0], *image2text, "max_new_tokens=5")  # room enough: nothing to say
    assert capsys.readouterr().err == ""
    assert json.loads((tmp_path / "out" / "generation.json").read_text())["max_new_tokens"] == 5
    run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'green.png'}", f"out={tmp_path / 'ex'}",
                f"image_size={SIDE}", "max_new_tokens=100")
    assert capsys.readouterr().err == note
    assert json.loads((tmp_path / "ex" / "explain.json").read_text())["max_new_tokens"] == 41


def labelled_at_left(picture: Image.Image, label: str) -> bool:
    """Whether `label` is written under the strip's first tile (dark grey on white, from x = 4)."""
    face = font()
    written = Image.new("RGB", (int(face.getlength(label)) + 1, LINE_HEIGHT), "white")
    ImageDraw.Draw(written).text((0, 0), label, fill=(20, 20, 20), font=face)
    expected, pixels = np.asarray(written), np.asarray(picture.convert("RGB"))
    height, width = expected.shape[:2]
    return any(np.array_equal(pixels[y : y + height, 4 : 4 + width], expected) for y in range(len(pixels) - height))


def test_explains_first_tile_says_which_picture_it_shows(pair, tmp_path):
    """text2image labelled the picture the model drew "input" (its input is the prompt); image2text shows the
    given picture as the VQ-VAE's codes decode it, not the picture itself."""
    run_command("explain", f"ckpt={pair[0]}", "mode=text2image", "prompt=a red square", f"image_size={SIDE}",
                f"out={tmp_path / 'drawn'}")
    drawn = Image.open(tmp_path / "drawn" / "attention.png")
    assert labelled_at_left(drawn, GENERATED_PICTURE) and not labelled_at_left(drawn, INPUT_PICTURE)
    Image.fromarray(square("green")).save(tmp_path / "green.png")
    run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'green.png'}", f"image_size={SIDE}",
                f"out={tmp_path / 'captioned'}")
    captioned = Image.open(tmp_path / "captioned" / "attention.png")
    assert labelled_at_left(captioned, wrap(DECODED_INPUT, font(), HEAT_TILE - 4)[0])


def test_explains_picture_names_its_model_and_prompt_and_its_page_says_the_summary_once(pair, tmp_path):
    """attention.png carried only the summary line (shared alone it named no model, nor that each tile is scaled
    to its own maximum, which the page says), and attention.html showed that line twice (its text, then the
    picture's title) over a strip wider than the window."""
    run_command("explain", f"ckpt={pair[0]}", "mode=text2image", "prompt=a red square", f"image_size={SIDE}",
                f"out={tmp_path / 'drawn'}")
    summary = "text2image: 'a red square'; per word, the attention each generated code paid it"
    assert titled(Image.open(tmp_path / "drawn" / "attention.png"),
                  f"{pair[0].name}: a red square\n{summary}\n{TILE_SCALE_NOTE}")
    page = (tmp_path / "drawn" / "attention.html").read_text()
    assert f"<h1>{pair[0].name}: a red square</h1>" in page and f"<p>{html.escape(summary)}</p>" not in page
    assert ".strip{max-width:100%" in page and "<img class='strip'" in page


def test_text_files_hold_one_line_per_sample_with_line_breaks_escaped(pair, tmp_path):
    generate(tmp_path, pair[0], "mode=text", "prompt=a red\nsquare\\x", "num_samples=2", "max_new_tokens=3")
    lines = (tmp_path / "out" / "text.txt").read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith("a red\\nsquare\\\\x") for line in lines), lines


def test_printed_samples_are_one_line_each_with_control_characters_escaped(pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(A2AVocab, "decode_text", lambda self, ids: "a red\nsquare\x1b[2J\\")  # ESC clears a screen
    generate(tmp_path, pair[0], "mode=text", "prompt=a", "num_samples=2")
    # the prompt's text first, which the stand-in decodes alike
    assert capsys.readouterr().out.splitlines()[1:] == ["  " + "a red\\nsquare\\x1b[2J\\\\" * 2] * 2


def write_gif(path: Path, colours: list[str]) -> None:
    frames = [Image.fromarray(square(c)) for c in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def test_video_modes_write_gifs_with_the_asked_frames_and_a_strip_grid(pair, tmp_path):
    folder, codes = pair
    write_gif(tmp_path / "clip.gif", cycle("green"))
    summary = generate(tmp_path, folder, "mode=video2video", f"image={tmp_path / 'clip.gif'}", "frames=4",
                       "temperature=0", "num_samples=1")
    assert summary["given_frames"] == 2 and summary["files"] == ["video_0.gif", "grid.png"]
    # Given green, blue: the model goes on with the yellow and red it learnt.
    assert torch.equal(torch.tensor(summary["codes"][0]), torch.stack([codes[c] for c in cycle("green")]))
    with Image.open(tmp_path / "out" / "video_0.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (SIDE, SIDE)
    # generation.json's prompt is what the model was given: the GIF's first two frames, the video left open
    given = "".join(f"<FRAME>{''.join(f'<c{c}>' for c in codes[colour].flatten().tolist())}" for colour in ("green", "blue"))
    assert json.loads((tmp_path / "out" / "generation.json").read_text())["prompt"] == f"<VIDEO>{given}"
    summary = generate(tmp_path, folder, "mode=text2video", "prompt=a blue square moving", "frames=3",
                       "num_samples=2", "seed=1")
    assert [len(c) for c in summary["codes"]] == [3, 3]
    assert summary["prompt"] == "<TEXT>a blue square moving</TEXT><VIDEO>"
    with Image.open(tmp_path / "out" / "video_1.gif") as gif:
        assert gif.n_frames == 3


def frame_times(path: Path) -> list[int]:
    with Image.open(path) as gif:
        times = []
        for i in range(gif.n_frames):
            gif.seek(i)
            times.append(gif.info["duration"])
        return times


def test_video2video_plays_at_the_pace_of_its_gif_and_text2video_at_250_ms(pair, tmp_path):
    folder, _ = pair
    frames = [Image.fromarray(square(c)) for c in cycle("green") * 2]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], loop=0,
                   duration=[50, 100, 200, 200, 100, 100, 100, 100])
    # the given frames keep their times; the generated ones take the median of them
    generate(tmp_path, folder, "mode=video2video", f"image={tmp_path / 'clip.gif'}", "frames=5", "given_frames=3",
             "temperature=0", "num_samples=1")
    assert frame_times(tmp_path / "out" / "video_0.gif") == [50, 100, 200, 100, 100]
    generate(tmp_path, folder, "mode=text2video", "prompt=a blue square moving", "frames=2", "num_samples=1")
    assert frame_times(tmp_path / "out" / "video_0.gif") == [250, 250]


def test_video_grids_are_titled_and_say_which_row_is_the_gifs_and_which_the_samples(pair, tmp_path):
    """They were bare rows of frames: no prompt, seed or file, nothing saying which row was given."""
    from supra.pictures.grids import LINE_HEIGHT

    row = 4 + 2 * 64 + 4  # the 16 px frames upscaled 8x, between 4 px borders
    write_gif(tmp_path / "clip.gif", cycle("green"))
    generate(tmp_path, pair[0], "mode=video2video", f"image={tmp_path / 'clip.gif'}", "frames=4", "num_samples=2")
    grid = Image.open(tmp_path / "out" / "grid.png").convert("RGB")
    title_band, label_band = LINE_HEIGHT + 8, LINE_HEIGHT + 4
    assert grid.height == title_band + 3 * (label_band + row - 4) + 4
    assert titled(grid, "video2video, seed 0: clip.gif")
    labels = ["the GIF's frames (the first 2 frames given)", "sample 0: 2 given, 2 generated",
              "sample 1: 2 given, 2 generated"]
    for k, label in enumerate(labels):
        assert drawn_at(grid, title_band + k * (label_band + row - 4) + 4, label, (20, 20, 20)), label
    generate(tmp_path, pair[0], "mode=text2video", "prompt=a red square moving", "frames=4", "num_samples=1", "seed=3")
    grid = Image.open(tmp_path / "out" / "grid.png").convert("RGB")
    assert titled(grid, "text2video, seed 3: a red square moving")
    assert drawn_at(grid, title_band + 4, "sample 0", (20, 20, 20))


def test_a_clip_given_one_frame_says_the_first_frame_not_the_first_1_frames(pair, tmp_path):
    from supra.pictures.grids import LINE_HEIGHT

    write_gif(tmp_path / "clip.gif", cycle("green"))
    generate(tmp_path, pair[0], "mode=video2video", f"image={tmp_path / 'clip.gif'}", "frames=3", "num_samples=1")
    grid = Image.open(tmp_path / "out" / "grid.png").convert("RGB")
    assert drawn_at(grid, LINE_HEIGHT + 8 + 4, "the GIF's frames (the first frame given)", (20, 20, 20))


def test_every_modes_grid_is_titled_by_the_mode_the_seed_and_what_the_user_gave(pair, tmp_path):
    """text2image and text2video were titled by the prompt as the model got it ("<TEXT>a red square</TEXT>
    <IMAGE>  (seed 0)"), with no mode, unlike image2text's and video2video's "image2text, seed 0: file"."""
    Image.fromarray(square("green")).save(tmp_path / "green.png")
    for overrides, title in ((["mode=image2text", f"image={tmp_path / 'green.png'}", "max_new_tokens=2"],
                              "image2text, seed 0: green.png"),
                             (["mode=text2image", "prompt=a red square", "seed=4"], "text2image, seed 4: a red square"),
                             (["mode=text2image", "prompt=<TEXT>a red square</TEXT>"],  # a raw prompt: as typed
                              "text2image, seed 0: <TEXT>a red square</TEXT>")):
        generate(tmp_path, pair[0], *overrides, "num_samples=1")
        assert titled(Image.open(tmp_path / "out" / "grid.png"), title), overrides


def test_same_seed_same_output(pair, tmp_path):
    args = ("mode=text2video", "prompt=a red square moving", "frames=2", "temperature=3.0", "num_samples=2")
    first = generate(tmp_path, pair[0], *args, "seed=11")
    png = (tmp_path / "out" / "grid.png").read_bytes()
    assert generate(tmp_path, pair[0], *args, "seed=11")["codes"] == first["codes"]
    assert (tmp_path / "out" / "grid.png").read_bytes() == png
    assert generate(tmp_path, pair[0], *args, "seed=12")["codes"] != first["codes"]


def test_many_samples_are_drawn_a_batch_at_a_time_in_turn_from_the_seeds_generator(pair, tmp_path, monkeypatch):
    """A batch holds a KV cache per sequence: num_samples=100000 at once was killed for memory without a word.
    Up to SAMPLE_BATCH samples are one batch, as always; beyond, the first SAMPLE_BATCH are a run of that many
    and the others are drawn after them from the same generator: same seed, same output."""
    red = ("prompt=a red square", "temperature=3.0", "seed=5")
    one_batch = {mode: generate(tmp_path, pair[0], f"mode={mode}", *red, "num_samples=2")
                 for mode in ("text", "text2image")}
    sizes = []
    for name in ("generate_texts", "generate_images"):
        sampler = getattr(generate_module.gen, name)
        monkeypatch.setattr(generate_module.gen, name, lambda net, layout, prompts, *a, sampler=sampler, **k:
                            sizes.append(len(prompts)) or sampler(net, layout, prompts, *a, **k))
    monkeypatch.setattr(generate_module, "SAMPLE_BATCH", 2)
    for mode, key in (("text", "texts"), ("text2image", "codes")):
        batched = generate(tmp_path, pair[0], f"mode={mode}", *red, "num_samples=5")
        assert sizes == [2, 2, 1] and batched[key][:2] == one_batch[mode][key]
        assert generate(tmp_path, pair[0], f"mode={mode}", *red, "num_samples=5")[key] == batched[key]
        assert len(batched[key]) == 5 and len(set(map(str, batched[key]))) > 1  # the later batches drew anew
        sizes.clear()
    # best_of samples best_of sequences for each: one sample (its two candidates, sampled by the inner call) a batch
    generate(tmp_path, pair[0], "mode=text2image", *red, "num_samples=3", "best_of=2")
    assert sizes == [1, 2] * 3
    assert len(list((tmp_path / "out").glob("image_*.png"))) == 3


def test_bad_inputs_are_one_line_each(pair, tmp_path, pipes_never_opened):
    folder = pair[0]
    Image.fromarray(np.zeros((16, 24, 3), dtype=np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(tmp_path / "odd.png")
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    write_gif(tmp_path / "short.gif", ["red", "blue"])
    Image.fromarray(np.zeros((400, 1, 3), dtype=np.uint8)).save(tmp_path / "thin.png")  # 400 pixels, padded 160,000
    os.mkfifo(tmp_path / "pipe.jpg")  # there, but reading it would wait for a writer forever
    (tmp_path / "L.png").symlink_to(tmp_path / "L.png")
    cases = [
        (["mode=image2text", f"image={tmp_path / 'pipe.jpg'}"], r"^image=.*pipe\.jpg is not a regular file \(a named pipe, "
         r"socket or device\): give an image file$"),
        (["mode=image2text", f"image={tmp_path / 'L.png'}"], r"^image=.*L\.png is a link that loops to itself"),
        (["mode=image2text", f"image={tmp_path / 'thin.png'}", "resize=pad", "max_pixels=10000"],
         r"^image=.*thin\.png cannot be used: 1x400 padded to a 400x400 square = 160000 pixels, over max_pixels=10000: "
         r"the padded square is too large"),
        (["mode=text2image", "prompt=" + "a red square " * 20], r"the prompt \(\d+ tokens\) with a 16x16 image of 2x2 codes \(5 more\) is \d+ tokens, \d+ over the context of 48: shorten the prompt by \d+ tokens"),
        (["mode=image2text", f"image={tmp_path / 'wide.png'}", "resize=refuse"], r"is 24x16, not square: resize=refuse takes 16x16 images \(image_size\); give "
         r"one, or set resize=squash \(a model trained on photos saw them so\), crop or pad$"),
        # the image alone over the context: which image_size fits, not "shorten the prompt" when there is none
        (["mode=image2text", f"image={tmp_path / 'wide.png'}", "image_size=64"],
         r"^image_size=64: a 64x64 image \(8x8 codes, 67 tokens\) with a caption is 68 tokens, 20 over the context of 48: "
         r"give image_size=48 or smaller$"),
        (["mode=text2image", "prompt=a red square", "image_size=64"], r"^image_size=64: a 64x64 image \(8x8 codes\) in its "
         r"block is 66 tokens, 18 over the context of 48: give image_size=48 or smaller$"),
        (["mode=text2video", "prompt=a red square", "image_size=64"], r"^image_size=64: a video of one 64x64 frame \(8x8 codes\) is "
         r"67 tokens, 19 over the context of 48: give image_size=48 or smaller$"),
        (["mode=video2video", f"image={tmp_path / 'short.gif'}", "frames=2", "image_size=48"], r"^image_size=48: a "
         r"video of two 48x48 frames \(one given; 6x6 codes each\) is 76 tokens, 28 over the context of 48: give image_size=32 or smaller$"),
        (["mode=image2text", f"image={tmp_path / 'wide.png'}", "prompt=" + "a red square " * 20], r"^the image block "
         r"\(6 tokens\) and the prompt \(\d+ tokens\) with text generation \(1 more\) is \d+ tokens, \d+ over the "
         r"context of 48: shorten the prompt by \d+ tokens$"),
        (["mode=image2text", f"image={tmp_path / 'odd.png'}", "resize=refuse"],
         r"is 20x20, not 16x16 \(image_size\): resize=refuse takes images of that size; set resize=squash \(.*\), crop or pad"),
        # a square of another multiple of 8 is not taken at its own size: image_size is what the model sees
        (["mode=image2text", f"image={tmp_path / 'big.png'}", "resize=refuse"],
         r"is 32x32, not 16x16 \(image_size\): .* set image_size=32, resize=squash \(.*\), crop or pad, or give a 16x16 image$"),
        (["mode=video2video", f"image={tmp_path / 'short.gif'}", "frames=4"], r"has 2 frames but frames=4 asks for 4"),
        (["mode=text2video", "prompt=a red square", "frames=9"], r"frames=9 of 2x2 codes .* at most 8 frames fit"),
        (["mode=image2text", f"image={tmp_path / 'nowhere.png'}"], r"does not exist"),
        (["mode=sketch"], r"mode='sketch' is unknown"),
        (["mode=text2image", "prompt=a red square", "guidance=-1"], r"guidance=-1 must be a number >= 0"),
        (["mode=text2image", "prompt=a red square", "guidance=inf"], r"guidance=inf must be a number >= 0"),
        (["mode=text", "prompt=a", "temperature=nan"], r"temperature=nan must be a number >= 0"),
        (["mode=image2text", f"image={tmp_path}"], r"is a folder: give one image file in it"),
        (["mode=text2image", "prompt=a red square", "best_of=0"], r"best_of=0 must be >= 1"),
        (["mode=text2image", "prompt=<IMAGE>", "best_of=2"], r"best_of needs a prompt with a caption"),
        (["mode=text2image", "prompt=<TEXT>a red square"], r"prompt='<TEXT>a red square': prompt ends inside an open text block"),
        (["mode=text", "prompt=<IMAGE>"], r"prompt='<IMAGE>': prompt ends inside an open image block"),
        # text where only codes go ("<c5>" is text too: codes cannot be written), once sampled on without a word
        *(([f"mode={mode}", f"prompt={prompt}"], rf"^prompt='{re.escape(prompt)}': text inside an? {block} block, "
           rf"which holds only codes; a raw prompt cannot write codes \(<c5> in it is text\): leave its {block} "
           rf"block empty$")
          for mode, prompt, block in (("text2image", "<TEXT>a red</TEXT><IMAGE>hello world", "image"),
                                      ("text2image", "<TEXT>a red</TEXT><IMAGE><c5>", "image"),
                                      ("text", "<IMAGE>a red", "image"),
                                      ("text2video", "<TEXT>a red</TEXT><VIDEO>hello", "video"),
                                      ("text2video", "<VIDEO><FRAME>hello", "video"))),
        (["mode=video2video", f"image={tmp_path / 'short.gif'}", "frames=2", "prompt=<VIDEO>hello"],
         r"^prompt='<VIDEO>hello': text inside a video block"),
        *((["mode=video2video", f"image={tmp_path / 'short.gif'}", "frames=2", f"prompt={prompt}"],
           rf"prompt='{prompt}': prompt ends inside an open {block} block; close it before the GIF's frames")
          for prompt, block in (("<TEXT>a red", "text"), ("<IMAGE>", "image"), ("<VIDEO>", "video"))),
        (["mode=text", "prompt=a", "temperature=abc"], r"temperature='abc' must be a number"),
        (["mode=text", "prompt=a", "num_samples=0"], r"^num_samples=0 must be >= 1$"),
        (["mode=text2image", "prompt=a", "num_samples=100000"], r"^num_samples=100000 is over 1024, the samples "
         r"grid.png can show: for more, run generate again with another seed$"),
        # not "image=... cannot be used: ... over max_pixels=0": the option is wrong, not the picture
        *(([f"mode={mode}", f"image={tmp_path / 'odd.png'}", f"max_pixels={limit}"], rf"^max_pixels={limit} must be >= 1$")
          for mode in ("image2text", "video2video") for limit in (0, -1)),
        # train.py's seeds: a torch generator takes 64 bits, and the text2image error named the prompt
        *(([f"mode={mode}", "prompt=a", f"seed={seed}"], rf"^seed={seed} must be from 0 to 4294967295$")
          for mode in ("text", "text2image") for seed in (2**64, -1)),
        (["mode=text", "prompt=a", "device=gpu"], r"device='gpu' is unknown: choose cpu, cuda \(or cuda:N\) or auto"),
        (["mode=video2video", f"image={tmp_path / 'short.gif'}", "frames=2", "given_frames=0"],
         r"given_frames=0 must be between 1 and frames - 1 = 1"),
    ]
    if not torch.cuda.is_available():
        cases.append((["mode=text", "prompt=a", "device=cuda"], r"device=cuda but torch finds no CUDA GPU here"))
    for overrides, message in cases:
        with pytest.raises(SupraUserError, match=message) as err:
            generate(tmp_path, folder, *overrides)
        assert "\n" not in str(err.value)
    # image_size square, resize=refuse takes it as it is
    Image.fromarray(square("red")).save(tmp_path / "red.png")
    assert generate(tmp_path, folder, "mode=image2text", f"image={tmp_path / 'red.png'}", "resize=refuse",
                    "num_samples=1")["texts"]
    # Not square, but resize=crop (the default) fits it.
    assert generate(tmp_path, folder, "mode=image2text", f"image={tmp_path / 'wide.png'}", "num_samples=1")["texts"]
    assert generate(tmp_path, folder, "mode=image2text", f"image={tmp_path / 'wide.png'}", "resize=squash",
                    "num_samples=1")["texts"]


def test_a_cuda_device_past_the_last_gpu_is_refused_counting_one_gpu_and_two_gpus(tmp_path, monkeypatch):
    """"this machine has 1 CUDA GPU", "... 2 CUDA GPUs", never "GPU(s)"."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    for count, gpus in ((1, "1 CUDA GPU"), (2, "2 CUDA GPUs")):
        monkeypatch.setattr("torch.cuda.device_count", lambda count=count: count)
        with pytest.raises(SupraUserError) as refused:
            generate_module.Request(mode="text", out=str(tmp_path), prompt="a", device="cuda:2")
        assert str(refused.value) == f"device=cuda:2 but this machine has {gpus}: use cuda:0 up to the last, or device=auto"


def test_resize_squash_gives_a_picture_as_photo_sources_give_it_to_training():
    """A model trained on photos (COCO, caption folders, shards) saw each one squashed whole: with
    resize=squash generate sees the same pixels; crop (the default, as media folders train) cuts the sides."""
    import numpy as np

    from supra.data.images import fit, image_to_uint8

    stripes = np.zeros((64, 192, 3), np.uint8)
    stripes[:, :64, 0] = stripes[:, 64:128, 1] = stripes[:, 128:, 2] = 255  # red, green, blue side by side
    trained_on = image_to_uint8(Image.fromarray(stripes), 64)  # the photo sources' decoded-image cache
    assert torch.equal(fit(stripes, 64, "squash"), trained_on)
    assert not torch.equal(fit(stripes, 64, "crop"), trained_on)  # green alone


def test_a_vqvae_whose_codebook_disagrees_with_the_gpt_is_refused(pair, tmp_path):
    vqvae = VQVAE(num_codes=64, code_dim=8, hidden=(8, 8))
    net_cfg = {"_target_": "supra.models.vqvae.VQVAE", "num_codes": 64, "code_dim": 8, "hidden": [8, 8]}
    torch.save({"state_dict": {f"net.{k}": v for k, v in vqvae.state_dict().items()},
                "supra": {"kind": "supra.vqvae", "run_config": {"model": {"net": net_cfg}}}}, tmp_path / "vq64.ckpt")
    with pytest.raises(SupraUserError, match="codebook has 64 codes but the GPT's vocabulary has 32 code ids"):
        generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", f"vqvae={tmp_path / 'vq64.ckpt'}")


def test_vqvae_takes_an_a2a_release_folder_as_training_takes_one_for_model_vqvae_ckpt(pair, tmp_path):
    """vqvae=RELEASE was refused ("a directory: give a .ckpt") though model.vqvae_ckpt=RELEASE trains over it."""
    text2image = ["mode=text2image", "prompt=a red square", "num_samples=1"]
    own = generate(tmp_path / "own", pair[0], *text2image)
    given = generate(tmp_path / "given", pair[0], *text2image, f"vqvae={pair[0]}")  # the release's own VQ-VAE
    assert given["codes"] == own["codes"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "given" / "out" / "image_0.png")),
                          np.asarray(Image.open(tmp_path / "own" / "out" / "image_0.png")))
    with pytest.raises(SupraUserError, match=rf"^vqvae={re.escape(str(tmp_path))} is a folder but no a2a release: give "
                                             r"a VQ-VAE checkpoint \(.ckpt\) written by .*, or an a2a release folder"):
        generate(tmp_path / "other", pair[0], *text2image, f"vqvae={tmp_path}")


def test_the_command_line_reports_a_bad_input_in_one_line(pair, tmp_path, capsys):
    # in process: the command's own ending of a user error (exit_on_user_error), without paying Lightning's import
    write_gif(tmp_path / "short.gif", ["red"])
    with pytest.raises(SystemExit) as end:
        run_command("generate", f"ckpt={pair[0]}", "mode=video2video", f"image={tmp_path / 'short.gif'}",
                    f"image_size={SIDE}", f"out={tmp_path / 'out'}", run_dir=tmp_path / "hydra")
    assert end.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: image={tmp_path / 'short.gif'} has 1 frame but frames=4 asks for 4: give a longer GIF or fewer frames"]


def test_explain_checks_the_options_it_shares_with_generate_the_same_way(pair, tmp_path, capsys):
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "black.png")
    text2image = ["mode=text2image", "prompt=a red square"]
    cases = [
        ([*text2image, "temperature=-1"], "temperature=-1 must be a number >= 0 (0 = greedy)"),
        ([*text2image, "guidance=-2"], "guidance=-2 must be a number >= 0 (1 = off)"),
        ([*text2image, "best_of=0"], "best_of=0 must be >= 1 (1 = off)"),
        ([*text2image, "image_size=60"], "image_size=60 must be a positive multiple of 8"),
        ([*text2image, "seed=abc"], "seed='abc' must be a whole number"),
        ([*text2image, "seed=18446744073709551616"], "seed=18446744073709551616 must be from 0 to 4294967295"),
        (["mode=text2image", "prompt=" + "a red square " * 20, "image_size=16"], "shorten the prompt by"),
        (["mode=image2text", f"image={tmp_path / 'black.png'}", "max_new_tokens=0"], "max_new_tokens=0 must be >= 1"),
        (["mode=image2text", f"image={tmp_path / 'black.png'}"],  # 64 px: 8x8 codes, over the tiny model's 48
         "image_size=64: a 64x64 image (8x8 codes, 67 tokens) with a caption is 68 tokens, 20 over the context of 48: "
         "give image_size=48 or smaller"),
        # the image alone over the context: which image_size fits, not "shorten the prompt" of a few tokens
        (["mode=text2image", "prompt=a red square"], "image_size=64: a 64x64 image (8x8 codes) after the shortest "
                                                     "caption is 69 tokens, 21 over the context of 48: give image_size=48 "
                                                     "or smaller"),
    ]
    for overrides, message in cases:
        with pytest.raises(SystemExit):
            run_command("explain", f"ckpt={pair[0]}", f"out={tmp_path / 'out'}", *overrides)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (overrides, err)
        if overrides[-1].startswith("guidance"):  # generate says the same
            with pytest.raises(SupraUserError, match=r"guidance=-2 must be a number >= 0 \(1 = off\)"):
                generate(tmp_path, pair[0], *overrides)
    assert not (tmp_path / "out").exists()


def test_explain_refuses_the_options_its_mode_would_ignore(pair, tmp_path, capsys):
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "black.png")
    cases = [
        ([f"image={tmp_path / 'black.png'}", "guidance=2", "best_of=3"],
         "guidance=2 best_of=3: explaining image2text does not read them (it reads image, image_size, resize, max_new_tokens)"),
        (["prompt=a red square", "beam_width=5"],
         "beam_width=5: explaining text2image does not read it (it reads prompt, image_size, seed, temperature, guidance, "
         "best_of)"),
        # the other mode's input: image2text would caption the image and never read the prompt, and the reverse
        (["mode=image2text", f"image={tmp_path / 'black.png'}", "prompt='a blue circle'"],
         "prompt=a blue circle: explaining image2text does not read it (it reads image, image_size, resize, max_new_tokens)"),
        (["mode=text2image", "prompt=a red square", f"image={tmp_path / 'black.png'}"],
         f"image={tmp_path / 'black.png'}: explaining text2image does not read it (it reads prompt, image_size,"),
        ([f"image={tmp_path / 'black.png'}", "prompt='a blue circle'"],  # mode=auto: which one is meant?
         f"image={tmp_path / 'black.png'} and prompt='a blue circle' with mode=auto: choose mode=image2text (explain "
         "the image's caption) or mode=text2image (explain drawing the prompt)"),
        (["prompt=a red square", "resize=squash"], "resize=squash: explaining text2image does not read it"),
        ([f"image={tmp_path / 'black.png'}", "resize=stretch"], "resize='stretch' is unknown: choose crop, pad, squash"),
        (quote_prompt(["prompt=<TEXT>a red square</TEXT><IMAGE>"]),  # generate's raw prompt, quoted as main() does
         "explain draws the caption alone (prompt=\"a red square\"), without control tokens such as <TEXT> or <IMAGE>"),
    ]
    for overrides, message in cases:
        with pytest.raises(SystemExit):
            run_command("explain", f"ckpt={pair[0]}", f"out={tmp_path / 'out'}", *overrides)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (overrides, err)
    assert not (tmp_path / "out").exists()
    # at their defaults, given or not, they are no change
    run_command("explain", f"ckpt={pair[0]}", f"out={tmp_path / 'out'}", f"image={tmp_path / 'black.png'}",
                "guidance=1.0", "beam_width=null", "max_new_tokens=2", "image_size=32", "resize=squash")
    assert json.loads((tmp_path / "out" / "explain.json").read_text())["resize"] == "squash"  # as photo sources train


def test_explain_never_writes_its_heat_map_over_its_own_input(pair, tmp_path, capsys):
    ex = tmp_path / "ex"
    ex.mkdir()
    Image.fromarray(square("red")).save(ex / "attention.png")  # an earlier heat map, given back as the picture
    picture = (ex / "attention.png").read_bytes()
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={pair[0]}", f"image={ex / 'attention.png'}", f"out={ex}", f"image_size={SIDE}")
    assert capsys.readouterr().err == (f"error: image={ex / 'attention.png'} is attention.png in out={ex}, which this "
                                       "run writes: give another out= folder (or copy the image out of it)\n")
    assert (ex / "attention.png").read_bytes() == picture and [p.name for p in ex.iterdir()] == ["attention.png"]


def test_explain_writes_over_an_earlier_explain_of_the_folder_never_the_users_own_files(pair, tmp_path, capsys):
    Image.fromarray(square("red")).save(tmp_path / "red.png")
    explain = ["explain", f"ckpt={pair[0]}", f"image={tmp_path / 'red.png'}", f"out={tmp_path / 'ex'}", f"image_size={SIDE}"]
    run_command(*explain)
    run_command(*explain)  # its own outputs: replaced
    (tmp_path / "ex" / "explain.json").write_text('{"notes": "mine"}')  # now the user's
    with pytest.raises(SystemExit):
        run_command(*explain)
    assert capsys.readouterr().err.endswith(
        f"error: out={tmp_path / 'ex'} already holds attention.png, attention.html, explain.json, which this run would "
        "write over and no earlier explain wrote (its explain.json names the checkpoint and the tokens explained): "
        "choose a new out= folder, or move them away\n")
    assert (tmp_path / "ex" / "explain.json").read_text() == '{"notes": "mine"}'


def test_explain_on_a_full_disk_is_one_line_and_keeps_the_earlier_explains_three_files_together(pair, tmp_path,
                                                                                                   capsys):
    from tests.conftest import file_size_limit

    ex = tmp_path / "ex"
    for colour in ("red", "blue"):
        Image.fromarray(square(colour)).save(tmp_path / f"{colour}.png")
    run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'red.png'}", f"out={ex}", f"image_size={SIDE}")
    earlier = {name: (ex / name).read_bytes() for name in ("attention.png", "attention.html", "explain.json")}
    sizes = {name: len(data) for name, data in earlier.items()}
    assert sizes["attention.png"] < sizes["attention.html"]  # room for the picture, not the page: cut in the middle
    capsys.readouterr()
    with file_size_limit((sizes["attention.png"] + sizes["attention.html"]) // 2), pytest.raises(SystemExit):
        run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'blue.png'}", f"out={ex}", f"image_size={SIDE}")
    assert capsys.readouterr().err == (f"error: cannot write to out={ex} (File too large): free space there, or give "
                                       "another out= folder\n")
    # no new picture beside the earlier page and record, no temp file left
    assert {p.name: p.read_bytes() for p in ex.iterdir()} == earlier


def test_explain_refuses_an_empty_out_and_says_an_unreadable_picture_is_none_as_for_a_captioner(pair, tmp_path,
                                                                                                capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where out="" would write
    Image.fromarray(square("red")).save(tmp_path / "red.png")
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'red.png'}", "out=", f"image_size={SIDE}")
    assert capsys.readouterr().err == ("error: out= is empty: give the folder to write attention.png, attention.html "
                                       "and explain.json to\n")
    assert [p.name for p in tmp_path.iterdir()] == ["red.png"]
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'empty.png'}", f"out={tmp_path / 'out'}",
                    f"image_size={SIDE}")
    assert capsys.readouterr().err == (f"error: image={tmp_path / 'empty.png'} cannot be read as a picture: "
                                       "empty file (0 bytes); give a PNG, JPEG, ...\n")


def test_explain_says_a_picture_is_too_large_and_to_resize_it(pair, tmp_path, capsys):
    Image.new("1", (10000, 6000)).save(tmp_path / "huge.png")  # 60 million pixels: refused from its header
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'huge.png'}", f"out={tmp_path / 'out'}",
                    f"image_size={SIDE}")
    # not "over max_pixels=...": explain has no such option
    assert capsys.readouterr().err == (f"error: image={tmp_path / 'huge.png'} is too large (10000x6000 = 60,000,000 "
                                       "pixels; explain reads up to 50,000,000 pixels): resize the picture and give "
                                       "the smaller copy\n")


def test_a_second_generation_into_the_same_folder_leaves_only_its_own_outputs_and_the_users_files(pair, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")  # the user's own file: never touched
    generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "num_samples=3")
    generate(tmp_path, pair[0], "mode=text2image", "prompt=a blue square", "num_samples=1")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["generation.json", "grid.png", "image_0.png", "notes.txt"]
    # an earlier output given back as image= is the user's input now: captioned, not removed
    generate(tmp_path, pair[0], "mode=image2text", f"image={tmp_path / 'out' / 'image_0.png'}", "num_samples=1")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["captions.txt", "generation.json", "grid.png",
                                                                  "image_0.png", "notes.txt"]
    # given through a link from elsewhere, the same: the file it points to is kept, the link still leads to it
    sym = tmp_path / "sym"
    generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "num_samples=2", f"out={sym}")
    (tmp_path / "mine.png").symlink_to(sym / "image_1.png")
    generate(tmp_path, pair[0], "mode=image2text", f"image={tmp_path / 'mine.png'}", "num_samples=1", f"out={sym}")
    assert sorted(p.name for p in sym.iterdir()) == ["captions.txt", "generation.json", "grid.png", "image_1.png"]
    assert (tmp_path / "mine.png").exists()


def test_the_users_own_files_in_out_are_never_written_over(pair, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("grid.png", "image_0.png", "text.txt"):  # the user's, not written by any generate
        (out / name).write_text("mine")
    refused = rf"^out={out} already holds {{}}, which this run would write over and no earlier generate wrote " \
              r"\(its generation.json does not list them\): choose a new out= folder, or move them away$"
    with pytest.raises(SupraUserError, match=refused.format("image_0.png, grid.png")):
        generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "num_samples=1")
    with pytest.raises(SupraUserError, match=refused.format("text.txt")):
        generate(tmp_path, pair[0], "mode=text", "prompt=a", "num_samples=1")
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "image_0.png", "text.txt"]
    assert all((out / name).read_text() == "mine" for name in ("grid.png", "image_0.png", "text.txt"))
    # a generation.json that no generate wrote is the user's too
    (out / "generation.json").write_text("my notes on these pictures")
    (out / "text.txt").unlink()
    with pytest.raises(SupraUserError, match=refused.format("generation.json")):
        generate(tmp_path, pair[0], "mode=text", "prompt=a", "num_samples=1")
    assert (out / "generation.json").read_text() == "my notes on these pictures"
    # an earlier generate's record names its own files: those are replaced, one it did not write is not
    (out / "generation.json").unlink()
    generate(tmp_path, pair[0], "mode=text", "prompt=a", "num_samples=1")
    with pytest.raises(SupraUserError, match=refused.format("image_0.png, grid.png")):
        generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "num_samples=1")
    generate(tmp_path, pair[0], "mode=text", "prompt=a", "num_samples=2")
    assert (out / "grid.png").read_text() == "mine"


def test_a_folder_where_an_output_file_goes_is_refused_before_any_work(pair, tmp_path, capsys):
    (tmp_path / "ga" / "grid.png").mkdir(parents=True)
    with pytest.raises(SupraUserError, match=rf"^out={tmp_path / 'ga'} holds a folder grid.png where this run writes "
                                             r"its file grid.png: move the folder away or give another out= folder$"):
        generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "num_samples=1", f"out={tmp_path / 'ga'}")
    assert [p.name for p in (tmp_path / "ga").iterdir()] == ["grid.png"]  # no image_0.png, no generation.json
    Image.fromarray(square("red")).save(tmp_path / "red.png")
    (tmp_path / "ea" / "explain.json").mkdir(parents=True)
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'red.png'}", f"out={tmp_path / 'ea'}",
                    f"image_size={SIDE}")
    assert capsys.readouterr().err == (f"error: out={tmp_path / 'ea'} holds a folder explain.json where this run writes "
                                       "its file explain.json: move the folder away or give another out= folder\n")
    assert [p.name for p in (tmp_path / "ea").iterdir()] == ["explain.json"]  # no attention.png, .html


def test_generate_and_explain_refuse_out_a_release_or_a_run_folder_as_caption_does(pair, tmp_path, capsys):
    """Their files would ship with the release (an export's copy, a push) or mix with the run's records."""
    import shutil

    release = shutil.copytree(pair[0], tmp_path / "release")  # the fixture's is shared: a failing run would write there
    run_folder = tmp_path / "run_folder"
    (run_folder / "checkpoints").mkdir(parents=True)
    (run_folder / "checkpoints" / "best.ckpt").write_bytes(b"")
    Image.fromarray(square("red")).save(tmp_path / "red.png")
    for out, files, why in ((release, "the generated files", "is a release folder (config.json + model.safetensors), "
                             "whose copies and pushes would carry {}"),
                            (run_folder, "", "holds a run's records (checkpoints/best.ckpt)")):
        held = sorted(p.name for p in out.rglob("*"))
        with pytest.raises(SupraUserError) as refused:
            generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "num_samples=1", f"out={out}")
        assert str(refused.value) == f"out={out} {why.format(files)}: choose another out= folder"
        with pytest.raises(SystemExit):
            run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'red.png'}", f"out={out}", f"image_size={SIDE}")
        explained = why.format("the attention maps")
        assert capsys.readouterr().err == f"error: out={out} {explained}: choose another out= folder\n"
        assert sorted(p.name for p in out.rglob("*")) == held  # nothing written there


def test_an_input_that_this_run_would_write_over_is_refused_before_any_work(pair, tmp_path):
    out = tmp_path / "out"
    generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "num_samples=1")
    grid = (out / "grid.png").read_bytes()
    with pytest.raises(SupraUserError, match=rf"^image={out / 'grid.png'} is grid.png in out={out}, which this run "
                                             r"writes: give another out= folder \(or copy the image out of it\)$"):
        generate(tmp_path, pair[0], "mode=image2text", f"image={out / 'grid.png'}", "num_samples=1")
    assert (out / "grid.png").read_bytes() == grid
    generate(tmp_path, pair[0], "mode=text2video", "prompt=a red square moving", "frames=2", "num_samples=1")
    video = (out / "video_0.gif").read_bytes()
    with pytest.raises(SupraUserError, match=r"is video_0.gif in out=.*, which this run writes"):
        generate(tmp_path, pair[0], "mode=video2video", f"image={out / 'video_0.gif'}", "frames=2", "num_samples=1")
    assert (out / "video_0.gif").read_bytes() == video


class Killed(BaseException):
    """A kill -9 in a test: nothing after it runs, no handler of the command's own catches it."""


def test_a_run_stopped_while_writing_leaves_a_record_saying_so_and_the_next_run_removes_the_mix(pair, tmp_path,
                                                                                                monkeypatch):
    out, moving = tmp_path / "out", ("mode=text2video", "frames=2")
    generate(tmp_path, pair[0], *moving, "prompt=a red square moving", "num_samples=3")
    save_gif = generate_module.save_gif_atomic

    def killed_after_the_first_video(frames, path, durations_ms):
        if Path(path).name != "video_0.gif":
            raise Killed
        return save_gif(frames, path, durations_ms)

    monkeypatch.setattr(generate_module, "save_gif_atomic", killed_after_the_first_video)
    with pytest.raises(Killed):
        generate(tmp_path, pair[0], *moving, "prompt=a blue square moving", "num_samples=3")
    # video_0.gif is the new run's, video_1/2.gif the old one's: the record says so, not the old run's prompt
    record = json.loads((out / "generation.json").read_text())
    assert "prompt" not in record, record  # not the old run's record, as if all four were its files
    assert record == {"incomplete": generate_module.INCOMPLETE,
                      "files": ["grid.png", "video_0.gif", "video_1.gif", "video_2.gif"]}
    monkeypatch.undo()
    generate(tmp_path, pair[0], *moving, "prompt=a blue square moving", "num_samples=1")
    assert sorted(p.name for p in out.iterdir()) == ["generation.json", "grid.png", "video_0.gif"]


def test_a_bad_input_or_a_failed_sampling_leaves_no_out_folder(pair, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a picture")
    write_gif(tmp_path / "one_frame.gif", ["red"])
    (tmp_path / "zero.gif").write_bytes(b"")
    cases = [
        (["mode=image2text", f"image={tmp_path / 'broken.png'}"], "cannot be read as a picture"),
        (["mode=video2video", f"image={tmp_path / 'one_frame.gif'}", "frames=4"], "has 1 frame but frames=4"),
        (["mode=video2video", f"image={tmp_path / 'zero.gif'}", "frames=4"],  # as every reader says a 0-byte file
         rf"^image={re.escape(str(tmp_path / 'zero.gif'))} cannot be used as a clip: empty file \(0 bytes\)$"),
        (["mode=text2image", "prompt=<IMAGE>", "best_of=2"], "best_of needs a prompt with a caption"),  # while sampling
    ]
    for overrides, message in cases:
        with pytest.raises(SupraUserError, match=message):
            generate(tmp_path, pair[0], *overrides)
        assert not (tmp_path / "out").exists(), overrides


def test_an_option_the_mode_does_not_read_is_refused_not_ignored(pair, tmp_path):
    Image.fromarray(square("green")).save(tmp_path / "green.png")
    cases = [
        (["mode=text2image", "prompt=a red square", f"image={tmp_path / 'nowhere.png'}"],
         rf"^image={tmp_path / 'nowhere.png'}: mode=text2image does not read it \(it reads prompt, image_size, guidance, "
         r"best_of, vqvae\); leave it out$"),
        (["mode=image2text", f"image={tmp_path / 'green.png'}", "guidance=3", "best_of=4"],
         r"^guidance=3 best_of=4: mode=image2text does not read them \(it reads image, prompt, .*\); leave them out$"),
        (["mode=text", "prompt=a", "image_size=32"], r"^image_size=32: mode=text does not read it"),
        (["mode=text2video", "prompt=a red square", "given_frames=1", "max_new_tokens=9"],
         r"^max_new_tokens=9 given_frames=1: mode=text2video does not read them"),
    ]
    for overrides, message in cases:
        with pytest.raises(SupraUserError, match=message):
            generate(tmp_path, pair[0], *overrides)
    # at their defaults, given or not, they are no change
    generate(tmp_path, pair[0], "mode=image2text", f"image={tmp_path / 'green.png'}", "guidance=1.0", "best_of=1",
             "frames=4", "num_samples=1")


def test_greedy_decoding_refuses_the_options_it_would_ignore(pair, tmp_path, capsys):
    with pytest.raises(SupraUserError, match=r"^top_k=5 top_p=0.3 seed=7: temperature=0 \(greedy decoding\) does not "
                                             r"read them; leave them out$"):
        generate(tmp_path, pair[0], "mode=text2image", "prompt=a red square", "temperature=0", "top_k=5", "top_p=0.3",
                 "seed=7")
    with pytest.raises(SupraUserError, match=r"^seed=3: temperature=0 \(greedy decoding\) does not read it"):
        generate(tmp_path, pair[0], "mode=text", "prompt=a", "temperature=0", "seed=3")
    generate(tmp_path, pair[0], "mode=text", "prompt=a", "temperature=0", "seed=0", "num_samples=1")  # the default
    generate(tmp_path, pair[0], "mode=text", "prompt=a", "temperature=0.5", "top_k=5", "seed=7", "num_samples=1")
    with pytest.raises(SystemExit):  # explain's text2image alike
        run_command("explain", f"ckpt={pair[0]}", "mode=text2image", "prompt=a red square", "temperature=0", "seed=7",
                    f"out={tmp_path / 'ex'}", f"image_size={SIDE}")
    assert capsys.readouterr().err.endswith("error: seed=7: temperature=0 (greedy decoding) does not read it; leave it out\n")


def test_an_empty_or_blank_prompt_is_said_to_be_empty_with_the_raw_prompt_that_draws_without_a_caption(
        pair, tmp_path, capsys):
    """prompt='' was answered "mode=text2image needs prompt=..." as if none were given. An empty or blank one is said
    to be empty, with the raw prompt that draws without a caption, which is drawn; no prompt still says one is
    needed. explain, which maps the attention on the prompt's words, asks for a caption."""
    trained = {"text2image": ("<TEXT></TEXT><IMAGE>", "as data.caption_dropout trains it"),
               "text2video": ("<VIDEO>", "as the video task trains it")}
    for prompt in ("", " ", "\t "):
        for mode, (raw, why) in trained.items():
            with pytest.raises(SupraUserError, match=re.escape(
                    f"prompt={prompt!r} is empty: mode={mode} draws from a caption; give one (e.g. prompt=\"a red "
                    f"square\"), or prompt=\"{raw}\" to draw without one ({why})") + "$"):
                generate(tmp_path, pair[0], f"mode={mode}", f"prompt='{prompt}'")
        with pytest.raises(SystemExit):
            run_command("explain", f"ckpt={pair[0]}", f"out={tmp_path / 'out'}", "mode=text2image", f"prompt='{prompt}'")
        assert capsys.readouterr().err == (f"error: prompt={prompt!r} is empty: explain maps the attention each drawn "
                                           "code pays the prompt's words; give a caption (e.g. prompt=\"a red square\")\n")
    assert not (tmp_path / "out").exists()
    for mode, (raw, _) in trained.items():
        with pytest.raises(SupraUserError, match=rf'^mode={mode} needs prompt="..." \(e.g. prompt="a red square"\)$'):
            generate(tmp_path, pair[0], f"mode={mode}")
        frames = ["frames=2"] if mode == "text2video" else []
        assert generate(tmp_path, pair[0], f"mode={mode}", f"prompt={raw}", "num_samples=1", *frames)["prompt"] == raw


def test_explain_given_an_empty_prompt_without_mode_says_the_prompt_is_empty(pair, tmp_path, capsys):
    """prompt='' without mode= was read as image2text and asked for image=: it is said to be empty, as with
    mode=text2image."""
    for prompt in ("", " "):
        with pytest.raises(SystemExit):
            run_command("explain", f"ckpt={pair[0]}", f"out={tmp_path / 'out'}", f"prompt='{prompt}'")
        assert capsys.readouterr().err == (f"error: prompt={prompt!r} is empty: explain maps the attention each drawn "
                                           "code pays the prompt's words; give a caption (e.g. prompt=\"a red square\")\n")
    assert not (tmp_path / "out").exists()


def test_a_gif_cut_short_is_said_refused_when_too_few_frames_are_left(pair, tmp_path, capsys):
    write_gif(tmp_path / "clip.gif", cycle("green"))
    data = (tmp_path / "clip.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: int(len(data) * 0.8)])  # cut inside the third frame
    cut = tmp_path / "cut.gif"
    with pytest.raises(SupraUserError, match=rf"^image={cut} is cut short \(the file is cut inside the block at byte "
                                             r"\d+, after 2 frames\): its 2 frames before the cut are fewer than "
                                             r"frames=4; give the whole GIF or fewer frames$"):
        generate(tmp_path, pair[0], "mode=video2video", f"image={cut}", "frames=4")
    generate(tmp_path, pair[0], "mode=video2video", f"image={cut}", "frames=2", "num_samples=1")
    assert capsys.readouterr().err == (f"note: image={cut} is cut short (the file is cut inside the block at byte 168, "
                                       "after 2 frames): its first 2 frames, before the cut, are used\n")


def test_a_gif_cut_short_given_as_a_picture_is_noted_as_video2video_notes_it_in_the_singular_after_one_frame(
        pair, tmp_path, capsys):
    """image2text and explain read a GIF's first frame and said nothing of the file being cut short after it, while
    video2video notes it (and said "after 1 frames"). Each notes it in one line, and uses that frame."""
    write_gif(tmp_path / "clip.gif", cycle("green"))
    data = (tmp_path / "clip.gif").read_bytes()
    cut = tmp_path / "cut.gif"
    cut.write_bytes(data[: len(data) // 2])  # cut inside the second frame
    note = (f"note: image={cut} is cut short (the file is cut inside the block at byte 120, after 1 frame): its first "
            "frame, before the cut, is used\n")
    generate(tmp_path, pair[0], "mode=image2text", f"image={cut}", "num_samples=1", "max_new_tokens=5")
    assert capsys.readouterr().err == note
    run_command("explain", f"ckpt={pair[0]}", f"image={cut}", f"image_size={SIDE}", "max_new_tokens=5",
                f"out={tmp_path / 'ex'}")
    assert capsys.readouterr().err == note
    with pytest.raises(SupraUserError, match=re.escape(
            f"image={cut} is cut short (the file is cut inside the block at byte 120, after 1 frame): its 1 frame "
            "before the cut is fewer than frames=2; give the whole GIF or fewer frames")):
        generate(tmp_path, pair[0], "mode=video2video", f"image={cut}", "frames=2", "num_samples=1")
    generate(tmp_path, pair[0], "mode=image2text", f"image={tmp_path / 'clip.gif'}", "num_samples=1",
             "max_new_tokens=5")  # whole: no note
    assert capsys.readouterr().err == ""


def test_the_dated_default_out_never_replaces_a_run_started_the_same_second(pair, tmp_path, capsys):
    overrides = [f"ckpt={pair[0]}", f"paths.log_dir={tmp_path / 'logs'}", "mode=text", "prompt=a", "num_samples=1"]
    cfg = compose_config("generate", tmp_path / "run", overrides)  # no out=: logs/generate/runs/<date_time>
    dated = Path(cfg.out)
    dated.mkdir(parents=True)
    (dated / "text.txt").write_text("another run's\n")  # started the same second
    for n in (1, 2):
        run(cfg)
        folder = dated.with_name(f"{dated.name}_{n}")
        assert sorted(p.name for p in folder.iterdir()) == ["generation.json", "text.txt"]
        assert f"wrote {folder}: text.txt, generation.json" in capsys.readouterr().out
    assert (dated / "text.txt").read_text() == "another run's\n"
    # out= given: an earlier generate's outputs there are replaced (test_a_second_generation_into_the_same_folder...)


def test_a_dated_out_folder_under_a_file_names_that_file(tmp_path):
    """The dated out= of generate under a file said "(Not a directory)", naming no file."""
    a_file = tmp_path / "a_file"
    a_file.write_text("a file where a folder should go")
    with pytest.raises(SupraUserError, match=rf"^cannot write to out={re.escape(str(a_file))}/out \({re.escape(str(a_file))} "
                                             r"is a file, not a folder\): choose a folder with out=DIR$"):
        new_folder(a_file / "out")


def test_the_prompt_generation_json_records_given_back_generates_the_same(pair, tmp_path):
    """A text holding "<IMAGE>" is recorded escaped (\\<IMAGE>); that recorded prompt was refused when given back
    ('text inside an image block'). It now makes the same prompt, and the same images."""
    first = generate(tmp_path, pair[0], "mode=text2image", r"prompt=a blue \<IMAGE> square", "seed=3")
    recorded = json.loads((tmp_path / "out" / "generation.json").read_text())["prompt"]
    assert recorded == r"<TEXT>a blue \<IMAGE> square</TEXT><IMAGE>"
    again = generate(tmp_path, pair[0], "mode=text2image", f"prompt={recorded}", "seed=3")
    assert json.loads((tmp_path / "out" / "generation.json").read_text())["prompt"] == recorded
    assert again["codes"] == first["codes"]


def test_a_plain_prompt_holding_a_control_token_name_is_refused_not_taken_as_raw(pair, tmp_path):
    """"a sign reading <FRAME> red" was silently used as a raw prompt (no <TEXT> around it)."""
    with pytest.raises(SupraUserError) as err:
        generate(tmp_path, pair[0], "mode=text2image", "prompt=a sign reading <FRAME> red")
    assert str(err.value) == ("prompt='a sign reading <FRAME> red' holds <FRAME> but does not start with a control "
                              "token: start it with <TEXT> for a raw prompt, or write \\<FRAME> for the text")


def test_a_picture_that_cannot_be_read_is_said_in_the_words_caption_and_explain_use(pair, tmp_path):
    """generate mode=image2text showed Pillow's errors ("UnidentifiedImageError: cannot identify image file", "image
    file is truncated (34 bytes not processed)"): an empty, garbage or cut-short file is named as explain names it."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(square("red")).save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:-40])
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "garbage.png").write_bytes(b"these bytes are no picture at all")
    cases = [("cut.jpg", "damaged or cut short"), ("zero.jpg", "empty file (0 bytes)"),
             ("garbage.png", "not a picture file")]
    for name, why in cases:
        with pytest.raises(SupraUserError) as refused:
            generate(tmp_path, pair[0], "mode=image2text", f"image={tmp_path / name}")
        assert str(refused.value) == f"image={tmp_path / name} cannot be read as a picture: {why}; give a PNG, JPEG, ..."


@pytest.mark.parametrize("size", [0, 4, 12])
def test_generate_and_explain_refuse_an_image_size_the_vqvae_cannot_take_in_one_line(size, tmp_path):
    # one rule and one wording for both commands (check_image_size_option), with the VQ-VAE's one downsampling
    message = f"image_size={size} must be a positive multiple of 8 (the VQ-VAE's patch)"
    for refuse in (check_image_size_option,
                   lambda s: generate_module.Request(mode="text", out=str(tmp_path), prompt="a", image_size=s),
                   lambda s: check_a2a_options(compose_config("explain", tmp_path, ["ckpt=x", f"image_size={s}"]))):
        with pytest.raises(SupraUserError) as err:
            refuse(size)
        assert str(err.value) == message


def test_an_a2a_models_picture_limit_is_one_number_in_generate_its_conf_explain_and_the_demo(tmp_path):
    # 50,000,000 was written in each of them: a change to one left the others behind
    from supra import demo, explain

    assert GENERATE_MAX_PIXELS == 50_000_000
    assert compose_config("generate", tmp_path, ["ckpt=x", "mode=text"]).max_pixels == GENERATE_MAX_PIXELS
    assert generate_module.Request(mode="text", out=str(tmp_path)).max_pixels == GENERATE_MAX_PIXELS
    assert explain.GENERATE_MAX_PIXELS is demo.GENERATE_MAX_PIXELS is GENERATE_MAX_PIXELS


def test_generation_json_records_the_model_and_every_setting_that_changes_the_samples(pair, tmp_path):
    """generation.json held the mode, seed and samples alone: a run of guidance=2 temperature=0.5 best_of=2 could
    not be told from the plain one, nor its model named. It records the checkpoint, vqvae= when given, and each
    option of the mode that changes a sample; those given back draw the same samples."""
    folder = pair[0]
    settings = ["mode=text2image", "prompt=a red square", "num_samples=2", "seed=3", "temperature=0.5", "top_k=5",
                "top_p=0.9", "guidance=2", "best_of=2"]
    first = generate(tmp_path, folder, *settings, f"vqvae={folder}")
    record = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert {key: record[key] for key in list(record)[:13]} == {
        "mode": "text2image", "ckpt": str(folder), "vqvae": str(folder), "seed": 3, "num_samples": 2,
        "temperature": 0.5, "top_k": 5, "top_p": 0.9, "image_size": SIDE, "guidance": 2.0, "best_of": 2,
        "device": "cpu", "files": ["image_0.png", "image_1.png", "grid.png"]}
    replayed = [f"{key}={record[key]}" for key in ("mode", "seed", "num_samples", "temperature", "top_k", "top_p",
                                                   "image_size", "guidance", "best_of")]
    again = generate(tmp_path / "again", folder, *replayed, f"prompt={record['prompt']}")
    assert again["codes"] == first["codes"]
    assert "vqvae" not in again  # none given: the pair's own
    # video2video: the GIF, its frames and the frames given as used (half of them, given_frames=null)
    write_gif(tmp_path / "clip.gif", cycle("green"))
    video = generate(tmp_path, folder, "mode=video2video", f"image={tmp_path / 'clip.gif'}", "frames=4",
                     "temperature=0", "num_samples=1")
    assert {key: video[key] for key in ("image", "frames", "given_frames", "image_size", "resize", "temperature")} == {
        "image": str(tmp_path / "clip.gif"), "frames": 4, "given_frames": 2, "image_size": SIDE, "resize": "crop",
        "temperature": 0.0}


def test_explain_json_of_text2image_records_every_setting_that_changes_the_picture_drawn(pair, tmp_path):
    """explain.json of text2image held the checkpoint, prompt and codes alone: a picture drawn with seed=4
    guidance=2 best_of=2 could not be drawn again from it. It records them, the seed used when none is given (0),
    and the image size; image2text's its image size beside its resize."""
    drawn = ["mode=text2image", "prompt=a red square", f"image_size={SIDE}"]
    run_command("explain", f"ckpt={pair[0]}", *drawn, "seed=4", "temperature=0.5", "guidance=2", "best_of=2",
                f"out={tmp_path / 'drawn'}")
    record = json.loads((tmp_path / "drawn" / "explain.json").read_text())
    assert {key: record[key] for key in list(record)[:8]} == {
        "ckpt": str(pair[0]), "mode": "text2image", "prompt": "a red square", "seed": 4, "temperature": 0.5,
        "guidance": 2.0, "best_of": 2, "image_size": SIDE}
    run_command("explain", f"ckpt={pair[0]}", *drawn, f"out={tmp_path / 'plain'}")
    plain = json.loads((tmp_path / "plain" / "explain.json").read_text())
    assert (plain["seed"], plain["temperature"], plain["guidance"], plain["best_of"]) == (0, 1.0, 1.0, 1)
    Image.fromarray(square("green")).save(tmp_path / "green.png")
    run_command("explain", f"ckpt={pair[0]}", f"image={tmp_path / 'green.png'}", f"image_size={SIDE}",
                f"out={tmp_path / 'read'}")
    assert json.loads((tmp_path / "read" / "explain.json").read_text())["image_size"] == SIDE
