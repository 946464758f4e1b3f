"""The demo page: its handlers answer every bad upload with a message, and the page itself works in a real
headless browser (Chromium from the system's packages, driven by selenium): upload, caption, heatmaps."""

from __future__ import annotations

import gc
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from supra.artifacts.a2a_release import save_a2a_release
from supra.demo import A2ADemo, CaptionerDemo
from supra.models.a2a_nano import A2AConfig, A2ANano
from supra.models.vqvae import VQVAE
from supra.tokens.a2a_vocab import A2AVocab
from tests.media_fixtures import Frame, gif_bytes, png_claiming, solid


@pytest.fixture(scope="module")
def bad_uploads(tmp_path_factory) -> dict[str, Path]:
    # where Gradio keeps an upload: a long temporary path, meaningless to the person at the page
    folder = tmp_path_factory.mktemp("gradio") / ("f4ddeb998f7ddf23e0e1" * 3)
    folder.mkdir()
    files = {"not an image": b"just some text", "bomb": png_claiming(40_000, 40_000), "empty": b""}
    good = folder / "good.png"
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 40, 40)).save(good)
    files["truncated"] = good.read_bytes()[:60]
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name.replace(' ', '_')}.png"
        paths[name].write_bytes(data)
    paths["good"] = good
    paths["one-frame GIF"] = folder / "still.gif"
    paths["one-frame GIF"].write_bytes(gif_bytes(8, 8, [Frame(solid(8, 8, 1))]))
    return paths


def test_the_captioner_page_answers_every_bad_upload_with_a_message(trained_run, bad_uploads):
    demo = CaptionerDemo(str(trained_run / "checkpoints" / "best.ckpt"))
    # the reasons in the words caption and explain use
    what_to_do = {"not an image": "not a picture file; upload a PNG, JPEG, GIF, WebP or BMP picture",
                  "truncated": "damaged or cut short; upload it again or upload another picture (a PNG, JPEG",
                  "empty": "empty file (0 bytes); upload it again or upload another picture (a PNG, JPEG",
                  "bomb": "it is too large to open safely (over 50,000,000 pixels); upload a smaller copy"}
    for name, reason in what_to_do.items():
        caption, maps, message = demo.caption(str(bad_uploads[name]))
        assert caption == "" and maps is None, name
        # named as uploaded, whole words, what to do; never the server's temporary path
        assert message.startswith(f"⚠️ {bad_uploads[name].name} cannot be used as a picture: {reason}"), message
        assert str(bad_uploads[name].parent) not in message and "gradio" not in message, message
    assert demo.caption(None)[2] == "⚠️ upload a picture first"
    caption, maps, message = demo.caption(str(bad_uploads["good"]), decode="greedy")
    assert caption and maps is not None and message == ""


def test_a_picture_of_no_known_range_or_cut_in_its_header_is_said_so(tmp_path):
    import numpy as np
    from PIL import Image

    from supra.demo import _still
    from supra.utils.errors import SupraUserError

    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), "F").save(tmp_path / "float.tif")
    Image.fromarray(np.full((4, 4), 70_000, dtype=np.int32), "I").save(tmp_path / "deep.tif")
    (tmp_path / "cut.gif").write_bytes(gif_bytes(8, 8, [Frame(solid(8, 8, 1))])[:10])  # inside its header
    said = {"float.tif": "float pixels (mode F), of no known range: convert the picture to 8 or 16-bit",
            "deep.tif": "32-bit pixels from 70000 to 70000, of no known range: convert the picture to 8 or 16-bit",
            "cut.gif": "damaged or cut short; upload it again or upload another picture"}
    for name, why in said.items():  # the loader's reason, with what to do: not "damaged", not "no picture file"
        with pytest.raises(SupraUserError) as refused:
            _still(str(tmp_path / name), 16, "squash")
        assert str(refused.value).startswith(f"{name} cannot be used as a picture: {why}"), refused.value


@pytest.mark.parametrize(("net", "why"), [
    ({"resampler_layers": 1, "N_VIS": 8}, "a resampler's latent tokens"),  # 8 latent tokens: no square grid
    ({"N_VIS": 1}, "its one visual token (N_VIS=1)"),  # a 1x1 map: every word drawn at full heat
])
def test_a_captioner_without_places_captions_on_the_page_without_maps(trained_run, bad_uploads, tmp_path, net, why):
    from supra.models.vlm_nano import VLMNano

    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    net_config = {**checkpoint["supra"]["run_config"]["model"]["net"], **net}
    net = VLMNano(**{k: v for k, v in net_config.items() if not k.startswith("_")})
    checkpoint["supra"]["run_config"]["model"]["net"] = net_config
    checkpoint["state_dict"] = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save(checkpoint, tmp_path / "placeless.ckpt")
    demo = CaptionerDemo(str(tmp_path / "placeless.ckpt"))
    caption, maps, message = demo.caption(str(bad_uploads["good"]), decode="greedy")
    assert isinstance(caption, str) and maps is None and message.startswith(f"ℹ️ no attention maps: {why}")


def test_the_a2a_page_refuses_a_one_frame_gif_for_video_in_a_message(tmp_path, bad_uploads):
    torch.manual_seed(0)
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=300, n_layers=1, d_model=16, n_heads=2, d_mlp=32))
    folder = save_a2a_release(tmp_path / "a2a", net, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)
    demo = A2ADemo(str(folder))
    gif, message = demo.video2video(str(bad_uploads["one-frame GIF"]), given=2, new=1)
    assert gif is None and "still.gif has 1 frame: the model needs 2" in message
    (tmp_path / "zero.gif").write_bytes(b"")  # as every reader of pictures says it (not "starts with b''")
    assert demo.video2video(str(tmp_path / "zero.gif"), given=2, new=1) == (
        None, "⚠️ zero.gif cannot be used as a clip: empty file (0 bytes); upload an animated GIF")
    gif, message = demo.video2video(str(bad_uploads["good"]), given=2, new=1)  # a PNG given as the clip
    assert gif is None and message == "⚠️ good.png cannot be used as a clip: it is a PNG picture, not a GIF; upload an animated GIF"
    (tmp_path / "huge.gif").write_bytes(gif_bytes(10_000, 10_000, [Frame(solid(8, 8, 1))]))
    gif, message = demo.video2video(str(tmp_path / "huge.gif"), given=2, new=1)  # said as the picture tab says it
    assert gif is None and message == ("⚠️ huge.gif cannot be used as a clip: it is too large to open safely "
                                       "(over 50,000,000 pixels); upload a smaller copy")
    assert demo.image2text(str(bad_uploads["bomb"]))[2].startswith("⚠️")
    assert demo.text2image("  ")[2].startswith("⚠️ write a prompt")
    prompt = " ".join(["a red square"] * 100)  # over the context of 300 with the image's 65 tokens: refused first
    long = demo.vocab.encode_text(prompt)
    over = len(long) + 3 + 65 - 300
    assert demo.text2image(prompt) == (None, None, (
        f"⚠️ the prompt ({len(long) + 3} tokens) with a 64x64 image of 8x8 codes (65 more) is {len(long) + 68} tokens, {over} over "
        f"the context of 300: shorten the prompt by {over} tokens"))
    image, word_maps, message = demo.text2image("a red square", best_of=1, seed=5)
    assert image is not None and word_maps is not None and message == "🎲 seed 5: give it as the seed to draw this again"


def seed_shown(message: str) -> int:
    match = re.search(r"🎲 seed (\d+): give it as the seed to draw this again", message)
    assert match, message
    return int(match.group(1))


def test_the_captioner_page_captions_as_the_caption_command_with_the_models_run_decoding(trained_run, bad_uploads,
                                                                                        tmp_path):
    import gradio as gr

    from supra.demo import build_page
    from tests.conftest import run_command

    # a run that decoded with beam width 5 and length penalty 1 (not DecodeConfig's defaults)
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["decode"] |= {"beam_width": 5, "length_penalty": 1.0}
    torch.save(checkpoint, tmp_path / "wide.ckpt")
    demo = CaptionerDemo(str(tmp_path / "wide.ckpt"))
    captioned = run_command("caption", f"ckpt={tmp_path / 'wide.ckpt'}", f"images={bad_uploads['good']}",
                            f"out={tmp_path / 'out'}")
    assert demo.caption(str(bad_uploads["good"]))[0] == captioned["good.png"]
    assert demo.caption(str(bad_uploads["good"]), "beam", 5)[0] == captioned["good.png"]  # the page's controls
    page = build_page(str(tmp_path / "wide.ckpt"))  # its controls start at the run's decoding
    sliders = {b.label: b.value for b in page.blocks.values() if isinstance(b, gr.Slider)}
    assert sliders["beam width"] == 5
    assert [b.value for b in page.blocks.values() if isinstance(b, gr.Radio)] == ["beam"]
    assert [b.format for b in page.blocks.values() if isinstance(b, gr.Image)] == ["png"]  # not lossy WebP
    assert [b.label for b in page.blocks.values() if b.elem_id == "seed"] == [
        "seed (sample; blank: a new draw each click)"]


def run_decoding(trained_run: Path, folder: Path, name: str, **decode: object) -> str:
    """A copy of the trained run's checkpoint whose run decoded with `decode`."""
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["decode"] |= decode
    torch.save(checkpoint, folder / name)
    return str(folder / name)


def test_the_temperature_slider_holds_a_runs_temperature_below_its_usual_range(trained_run, tmp_path):
    import gradio as gr

    from supra.demo import build_page

    for strategy in ("sample", "beam"):  # the slider is there whatever the run's strategy
        blocks = build_page(run_decoding(trained_run, tmp_path, f"{strategy}.ckpt", strategy=strategy,
                                         temperature=0.05)).blocks.values()
        (slider,) = [b for b in blocks if isinstance(b, gr.Slider) and b.label == "temperature (sample)"]
        assert slider.value == 0.05 and slider.preprocess(0.05) == 0.05  # what each click sends: not refused
        assert (slider.minimum, slider.maximum) == (0.05, 2.0)


def test_the_seed_field_starts_at_the_seed_of_a_run_that_sampled(trained_run, tmp_path):
    import gradio as gr

    from supra.demo import build_page

    for strategy, starts_at in (("sample", "1234"), ("beam", "")):  # a beam run's seed drew nothing: left blank
        ckpt = run_decoding(trained_run, tmp_path, f"{strategy}.ckpt", strategy=strategy, seed=1234)
        (seed,) = [b for b in build_page(ckpt).blocks.values() if b.elem_id == "seed"]
        assert seed.value == starts_at  # the first click samples as `python -m supra.caption` does
        # a text box: a blank stays blank (a number box sends 0) and what is typed reaches _seed as it is
        assert isinstance(seed, gr.Textbox) and [seed.preprocess(v) for v in ("", "2.5", "-3")] == ["", "2.5", "-3"]


def test_sampling_on_the_page_draws_anew_at_each_click_and_shows_the_seed_to_draw_it_again(trained_run, bad_uploads):
    demo = CaptionerDemo(str(trained_run / "checkpoints" / "best.ckpt"))
    good = str(bad_uploads["good"])
    clicks = [demo.caption(good, "sample", temperature=2.0) for _ in range(3)]  # the seed left blank
    seeds = [seed_shown(message) for _, _, message in clicks]
    assert len(set(seeds)) == 3  # a fresh draw at each click (one in a million would repeat)
    for (caption, _, _), seed in zip(clicks, seeds, strict=True):  # the seed shown gives the caption again,
        again, _, message = demo.caption(good, "sample", temperature=2.0, seed=float(seed))  # as the page gives it
        assert (again, seed_shown(message)) == (caption, seed)
    assert demo.caption(good, "sample", seed=-3)[2] == (
        "⚠️ seed -3 must be a whole number from 0 to 4294967295, or blank for a new draw at each click")
    assert demo.caption(good, "greedy")[2] == ""  # nothing drawn at random: no seed to show


def test_the_seed_field_is_read_exactly_within_the_seeds_the_commands_take():
    from supra.demo import _seed
    from supra.utils.errors import SupraUserError
    from supra.utils.seeds import MAX_SEED

    # the number box gives floats, a typed value may come as text: both read as the whole number they are
    assert [_seed(v) for v in (3.0, "3", " 7 ", 0, float(MAX_SEED), str(MAX_SEED))] == [3, 3, 7, 0, MAX_SEED, MAX_SEED]
    for bad in (3.5, "2.5", "abc", -1, "-1", MAX_SEED + 1, "9007199254740993", 2.0**63, float("nan"),
                "1_000", "\u0661\u0662"):  # an underscore and Arabic-Indic digits: int() reads both
        with pytest.raises(SupraUserError, match=f"must be a whole number from 0 to {MAX_SEED}, or blank"):
            _seed(bad)
    assert all(0 <= _seed(blank) <= MAX_SEED for blank in (None, "", "  "))


def test_the_a2a_pages_frame_sliders_stay_within_the_models_context(tmp_path):
    import gradio as gr

    from supra.demo import build_page

    torch.manual_seed(0)
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    # 300 tokens hold 4 frames of 64 px (65 tokens each): 2 given leave room for 2, 3 for 1
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=300, n_layers=1, d_model=16, n_heads=2, d_mlp=32))
    folder = save_a2a_release(tmp_path / "a2a", net, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)
    blocks = build_page(str(folder)).blocks.values()
    sliders = {b.label: b for b in blocks if isinstance(b, gr.Slider)}
    assert (sliders["frames given"].maximum, sliders["frames to add"].maximum) == (3, 2)
    assert [b.label for b in blocks if b.elem_id == "seed"] == ["seed (blank: a new draw each click)"]
    # the pictures sent as PNG, not Gradio's lossy WebP; the GIF as it is
    assert [b.format for b in blocks if isinstance(b, gr.Image) and b.type == "pil"] == ["png"] * 3
    demo = A2ADemo(str(folder))
    drawn = [demo.text2image("a red square", seed=None) for _ in range(3)]  # left blank: a fresh draw each time
    seeds = [seed_shown(message) for *_, message in drawn]
    assert len(set(seeds)) == 3
    again = demo.text2image("a red square", seed=seeds[0])
    assert seed_shown(again[2]) == seeds[0] and again[0].tobytes() == drawn[0][0].tobytes()
    assert [demo.most_frames_to_add(g) for g in (1, 2, 3)] == [3, 2, 1]
    (tmp_path / "two.gif").write_bytes(gif_bytes(8, 8, [Frame(solid(8, 8, 1)), Frame(solid(8, 8, 2))]))
    gif, message = demo.video2video(str(tmp_path / "two.gif"), given=2, new=demo.most_frames_to_add(2))
    assert message == "" and gif is not None  # the most the slider allows is what the model can do
    again, _ = demo.video2video(str(tmp_path / "two.gif"), given=2, new=1)
    assert again == gif and [p.name for p in Path(gif).parent.iterdir()] == ["continued.gif"]  # no folder per call
    folder = Path(gif).parent
    del demo
    gc.collect()
    assert not folder.exists()  # removed with the demo


def test_the_a2a_page_of_a_model_holding_one_frame_says_1_frame_in_the_singular(tmp_path):
    import gradio as gr

    from supra.demo import build_page

    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    # 100 tokens hold 1 frame of 64 px (65 tokens each)
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=100, n_layers=1, d_model=16, n_heads=2, d_mlp=32))
    folder = save_a2a_release(tmp_path / "a2a", net, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)
    notes = [b.value for b in build_page(str(folder)).blocks.values() if isinstance(b, gr.Markdown)
             and "too few to continue" in str(b.value)]
    assert notes == ["This model's context (100 tokens) holds 1 frame of 64 px: too few to continue a GIF."]


def test_the_pages_attention_strips_show_their_own_titles_and_wrap_to_a_page_column(tmp_path, bad_uploads):
    """Gradio's label badge covered the start of a strip's drawn title, and a strip of 8 tiles a row was scaled
    to the page's column (its labels ~5 px tall)."""
    import gradio as gr

    from supra.demo import STRIP_COLUMNS, build_page
    from supra.pictures.attention import TILE

    folder = small_a2a_release(tmp_path / "a2a", context=300)
    strips = [b for b in build_page(str(folder)).blocks.values() if isinstance(b, gr.Image) and b.elem_id in
              ("word_maps", "maps")]
    assert len(strips) == 2 and not any(strip.show_label for strip in strips)
    demo = A2ADemo(str(folder))
    _, word_maps, _ = demo.text2image("a red square above a blue circle", seed=1)
    _, maps, _ = demo.image2text(str(bad_uploads["good"]))
    for strip in (word_maps, maps):  # the picture and each word's tile, three a row
        assert strip.width == STRIP_COLUMNS * (TILE + 8) == 504


def small_a2a_release(folder: Path, context: int) -> Path:
    torch.manual_seed(0)
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=context, n_layers=1, d_model=16, n_heads=2,
                            d_mlp=32))
    return save_a2a_release(folder, net, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)


def test_the_a2a_page_says_what_its_models_context_cannot_hold_and_where_it_cut_a_caption(tmp_path, bad_uploads,
                                                                                         capsys):
    from tests.conftest import run_command

    small = A2ADemo(str(small_a2a_release(tmp_path / "66", context=66)))  # a 64 px picture is 67 tokens with <TEXT>
    assert small.image2text(str(bad_uploads["good"])) == ("", None, (
        "⚠️ this model's context of 66 tokens cannot hold a 64x64 image (8x8 codes, 67 tokens) with a caption (68 "
        "tokens): the page works at 64 px; give a model of a longer context, or use python -m supra.explain with a "
        "smaller image_size="))
    # not "shorten the prompt by 3 tokens": no prompt is short enough
    assert small.text2image("a", seed=1)[2] == (
        "⚠️ this model's context of 66 tokens cannot hold a 64x64 image (8x8 codes) after the shortest caption (69 "
        "tokens): the page works at 64 px; give a model of a longer context, or use python -m supra.explain with a "
        "smaller image_size=")
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={tmp_path / '66'}", "prompt=a", f"out={tmp_path / 'out'}")
    assert capsys.readouterr().err == ("error: image_size=64: a 64x64 image (8x8 codes) after the shortest caption is "
                                       "69 tokens, 3 over the context of 66: give image_size=56 or smaller\n")
    caption, maps, message = A2ADemo(str(small_a2a_release(tmp_path / "80", context=80))).image2text(
        str(bad_uploads["good"]))
    assert maps is not None and message == ("ℹ️ the caption is cut at 13 tokens: the model's context of 80 leaves no "
                                            "more after the picture's 67")


def test_generate_says_shorten_the_prompt_only_where_a_shorter_prompt_fits(tmp_path, capsys):
    """generate said "shorten the prompt by N tokens" where N was the whole prompt or more (no shorter prompt fits):
    then the image size that fits with it, or a prompt of <IMAGE> alone (<IMAGE> codes </IMAGE>)."""
    from tests.conftest import run_command

    prompt = "a red square a blue circle"
    for context in (66, 70):
        release = small_a2a_release(tmp_path / str(context), context=context)
        with pytest.raises(SystemExit):
            run_command("generate", f"ckpt={release}", f"prompt={prompt}", "num_samples=1", f"out={tmp_path / 'out'}")
        err = capsys.readouterr().err
        written = len(A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16).encode_text(prompt))
        over = written + 3 + 65 - context  # <TEXT> prompt </TEXT><IMAGE>, then 8x8 codes and </IMAGE>
        assert err.count("\n") == 1 and f"{over} over the context of {context}: " in err, err
        if over < written:
            assert err.endswith(f": shorten the prompt by {over} tokens\n"), err
        else:
            assert err.endswith(": give image_size=56 or smaller, or prompt='<IMAGE>' for an image without a "
                                "caption\n"), err
    run_command("generate", f"ckpt={tmp_path / '66'}", "prompt='<IMAGE>'", "num_samples=1", f"out={tmp_path / 'out'}")  # it fits


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_taken_or_impossible_port_is_one_line_before_the_model_loads():
    from omegaconf import ListConfig

    from supra.demo import check_can_serve
    from supra.utils.errors import SupraUserError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SupraUserError, match=f"cannot serve on 127.0.0.1:{port} .*choose another with port=N$"):
            check_can_serve("127.0.0.1", port)  # not "or host=127.0.0.1": it is the host
    for bad in ("abc", 0, 70000):
        with pytest.raises(SupraUserError, match="must be a whole number from 1 to 65535"):
            check_can_serve("127.0.0.1", bad)
    for host, shown in ((1234, "1234"), (None, "null"), ("", ""), (" ", " ")):  # "" would serve every network
        with pytest.raises(SupraUserError, match=rf"^host={shown} is no address: give this machine's, e.g. host=127.0.0.1"):
            check_can_serve(host, 7860)
    for bracketed in ("[::1]", ListConfig(["::1"])):  # as the printed URL shows it, quoted or as Hydra reads it bare
        with pytest.raises(SupraUserError, match=r"^host=\[::1\]: give the address without brackets \(host=::1\)"):
            check_can_serve(bracketed, 7860)
    # another machine's address, or a name of none: not this machine's, which no other port mends
    for elsewhere, why in (("192.0.2.1", "is not an address of this machine"), ("nosuchhost.invalid", "is no address")):
        with pytest.raises(SupraUserError, match=rf"^host={elsewhere} {why} .*: give one of its own, e.g. host=127\.0\.0\.1"):
            check_can_serve(elsewhere, 7860)


def test_an_ipv6_host_is_served_and_shown_at_a_url_in_brackets(monkeypatch, capsys):
    from omegaconf import OmegaConf

    import supra.demo

    launched = {}

    class Page:  # Gradio's page, as far as run() uses it: Gradio builds its URL from server_name
        def launch(self, **settings: object) -> None:
            launched.update(settings)

    monkeypatch.setattr(supra.demo, "build_page", lambda ckpt: Page())
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    supra.demo.run(OmegaConf.create({"ckpt": "model.ckpt", "host": "::1", "port": port}))
    assert launched["server_name"] == "[::1]" and f"on http://[::1]:{port} " in capsys.readouterr().out
    assert supra.demo.url_host("127.0.0.1") == "127.0.0.1"


def test_a_checkpoint_of_another_model_is_named_in_words(monkeypatch):
    import supra.demo
    from supra.artifacts.kinds import VQVAE_CHECKPOINT
    from supra.utils.errors import SupraUserError

    monkeypatch.setattr(supra.demo, "artifact_kind", lambda ckpt, accepts: VQVAE_CHECKPOINT)
    with pytest.raises(SupraUserError, match="^ckpt=vq.ckpt is a VQ-VAE checkpoint: the demo shows captioner and a2a_nano"):
        supra.demo.build_page("vq.ckpt")


def test_a_checkpoint_of_an_unknown_model_is_told_the_models_the_demo_shows(tmp_path):
    import supra.demo
    from supra.utils.errors import SupraUserError

    torch.save({"state_dict": {}, "supra": {"kind": "supra.diffusion"}}, tmp_path / "later.ckpt")
    with pytest.raises(SupraUserError, match="which this version of Supra does not know: give a captioner checkpoint, "
                                             "an a2a_nano checkpoint$"):  # not a VQ-VAE's, which it refuses next
        supra.demo.build_page(str(tmp_path / "later.ckpt"))


def wait_until_served(server: subprocess.Popen, port: int) -> None:
    """Until the demo's own page answers on `port`: not any listener there, such as another test process's that
    took the port after free_port let it go (the demo then ends with "cannot serve on", said here)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stdout.read()
        if '"title":"Supra demo"' in page_at(port):  # the page's config, as Gradio serves it
            return
        time.sleep(0.5)
    raise AssertionError("the demo did not serve its page within 120 s")


def page_at(port: int) -> str:
    """The HTML served at 127.0.0.1:`port`/, or "" while nothing there answers HTTP."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):  # refused, reset, timed out, or not HTTP (a TCPStore's bytes)
        return ""


@pytest.mark.ddp  # the port free_port chose is bound seconds later: it takes turns with the DDP tests' ports
def test_a_demo_stopped_with_sigterm_ends_normally_and_leaves_no_gif_folder(tmp_path):
    port, folder = free_port(), small_a2a_release(tmp_path / "a2a", context=300)
    (tmp_path / "temp").mkdir()
    server = subprocess.Popen([sys.executable, "-m", "supra.demo", f"ckpt={folder}", f"port={port}"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "TMPDIR": str(tmp_path / "temp")})  # where its GIF folder goes
    try:
        wait_until_served(server, port)
        assert [p.name[:11] for p in (tmp_path / "temp").iterdir() if p.name.startswith("supra_demo_")] == ["supra_demo_"]
    finally:
        server.terminate()  # SIGTERM, as a service manager stops it
        output = ended(server)
    assert server.returncode == 0 and "Traceback" not in output, output
    assert not [p for p in (tmp_path / "temp").iterdir() if p.name.startswith("supra_demo_")]


def ended(server: subprocess.Popen, timeout: float = 60) -> str:
    """The server's output once it has ended; one that does not end in `timeout` is killed, not left serving."""
    try:
        return server.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError(f"the demo did not end within {timeout} s of SIGTERM:\n{server.communicate()[0]}") from None


def test_a_sigterm_while_the_page_is_built_ends_the_demo_as_ctrl_c_does(tmp_path, monkeypatch):
    # the GIF folder is made as the model loads, before the page serves: a SIGTERM then, before the demo took it
    # as Ctrl-C, ended the process with no cleanup; every command takes it from its start (sigterm_as_ctrl_c)
    import tempfile

    import supra.demo as demo
    from supra.utils.cli import sigterm_as_ctrl_c

    folder = small_a2a_release(tmp_path / "a2a", context=300)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the GIF folder goes
    built = demo.build_page

    def build_then_sigterm(ckpt: str):
        page = built(ckpt)
        assert [p.name[:11] for p in tmp_path.glob("supra_demo_*")] == ["supra_demo_"]
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # else the signal would end this process
        os.kill(os.getpid(), signal.SIGTERM)
        return page

    monkeypatch.setattr(demo, "build_page", build_then_sigterm)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a process started from a shell has it
    try:
        # it returns, as from Ctrl-C: the command then exits normally, which removes the GIF folder (the test
        # above sees a served demo do so)
        with sigterm_as_ctrl_c():  # as the command's main takes it
            demo.run(OmegaConf.create({"ckpt": str(folder), "host": "127.0.0.1", "port": free_port()}))
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.ddp  # the port free_port chose is bound seconds later: it takes turns with the DDP tests' ports
def test_the_page_in_a_headless_browser_captions_an_upload_and_names_a_bad_one(trained_run, bad_uploads, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "Chromium and its driver are needed: apt-get install chromium chromium-driver"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "supra.demo", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"port={port}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    options.binary_location = browser
    page = None
    try:
        wait_until_served(server, port)
        page = webdriver.Chrome(service=Service(driver), options=options)
        wait = WebDriverWait(page, 60)

        def upload_and_run(path: Path) -> None:
            page.get(f"http://127.0.0.1:{port}/")
            wait.until(lambda p: p.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
            page.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(path))
            wait.until(lambda p: path.stem in p.find_element(By.ID, "upload").text)  # uploaded (name shown, suffix apart)
            wait.until(lambda p: p.find_elements(By.ID, "run"))[0].click()  # drawn anew after an upload, on a busy CPU later

        upload_and_run(bad_uploads["good"])
        wait.until(lambda p: p.find_element(By.CSS_SELECTOR, "#caption textarea").get_attribute("value"))
        wait.until(lambda p: p.find_elements(By.CSS_SELECTOR, "#maps img"))  # the heatmaps appear
        assert page.find_element(By.CSS_SELECTOR, "#maps img").get_attribute("src").endswith(".png")  # not lossy WebP
        # sampling with the seed field blank, then with a seed typed in: the seed drawn with is shown
        seed = page.find_element(By.CSS_SELECTOR, "#seed input")
        assert seed.get_attribute("value") == ""  # blank on the page, as it says: not a 0 that draws alike each time
        wait.until(lambda p: p.find_elements(By.CSS_SELECTOR, "#decode [data-testid=sample-radio-label]"))[0].click()
        page.find_element(By.ID, "run").click()
        wait.until(lambda p: "🎲 seed " in p.find_element(By.ID, "message").text)
        first = seed_shown(page.find_element(By.ID, "message").text)
        page.find_element(By.ID, "run").click()  # blank still: a new draw
        wait.until(lambda p: seed_shown(p.find_element(By.ID, "message").text) != first)
        for typed in ("-3", "2.5"):  # the demo's own message, not Gradio's toast or a seed rounded to 2
            seed.send_keys(Keys.BACKSPACE * 5, typed)
            page.find_element(By.ID, "run").click()
            wait.until(lambda p, typed=typed: f"seed {typed} must be a whole number from 0 to 4294967295, or blank for "
                       "a new draw at each click" in p.find_element(By.ID, "message").text)
        seed.send_keys(Keys.BACKSPACE * 5, "7")
        page.find_element(By.ID, "run").click()
        wait.until(lambda p: "🎲 seed 7:" in p.find_element(By.ID, "message").text)
        upload_and_run(bad_uploads["not an image"])
        wait.until(lambda p: "cannot be used as a picture" in p.find_element(By.ID, "message").text)
        assert "not_an_image.png" in page.find_element(By.ID, "message").text
        assert server.poll() is None  # the server goes on after a bad upload
    finally:
        if page is not None:
            page.quit()
        server.terminate()
        server.wait(timeout=30)
    assert server.poll() is not None  # the server ends with the test


def test_both_picture_tabs_note_a_gif_cut_short_and_caption_its_first_frame(trained_run, tmp_path):
    """As caption, explain and generate note it: the picture tabs read a GIF cut short without a word."""
    torch.manual_seed(0)
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=300, n_layers=1, d_model=16, n_heads=2, d_mlp=32))
    a2a = A2ADemo(str(save_a2a_release(tmp_path / "a2a", net, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)),
                  image_size=16)
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], loop=0, duration=100)
    data = (tmp_path / "clip.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) - 10])  # cut inside the last frame
    note = (r"ℹ️ cut\.gif is cut short \(the file is cut inside the block at byte \d+, after 2 frames\): its first "
            r"frame, before the cut, is used")
    caption, maps, message = CaptionerDemo(str(trained_run / "checkpoints" / "best.ckpt")).caption(
        str(tmp_path / "cut.gif"), decode="greedy")
    assert caption and maps is not None and re.fullmatch(note, message), message
    caption, maps, message = a2a.image2text(str(tmp_path / "cut.gif"))
    assert maps is not None and re.fullmatch(note, message), message
    assert a2a.image2text(str(tmp_path / "clip.gif"))[2] == ""  # whole: no note


def test_the_a2a_page_says_a_gif_is_cut_short_and_continues_it_at_its_own_pace(tmp_path):
    """As generate does: a GIF cut short was only "too short" (upload a longer one), and every continued clip
    played at 400 ms a frame, whatever its input's times."""
    torch.manual_seed(0)
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    net = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=300, n_layers=1, d_model=16, n_heads=2, d_mlp=32))
    demo = A2ADemo(str(save_a2a_release(tmp_path / "a2a", net, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)))
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], loop=0, duration=[30, 90, 60])
    data = (tmp_path / "clip.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: int(len(data) * 0.8)])  # cut inside the third frame
    gif, message = demo.video2video(str(tmp_path / "cut.gif"), given=3, new=1)
    assert gif is None and re.fullmatch(r"⚠️ cut\.gif is cut short \(the file is cut inside the block at byte \d+, "
                                        r"after 2 frames\): its 2 frames before the cut are fewer than the 3 the model "
                                        r"needs to continue it; upload the whole GIF", message), message
    gif, message = demo.video2video(str(tmp_path / "cut.gif"), given=2, new=2)
    assert message.startswith("ℹ️ cut.gif is cut short (") and message.endswith(
        "its first 2 frames, before the cut, are continued")
    with Image.open(gif) as continued:
        assert [(continued.seek(i), continued.info["duration"])[1] for i in range(continued.n_frames)] == [30, 90, 30, 30]
    gif, message = demo.video2video(str(tmp_path / "cut.gif"), given=1, new=1)  # "its first 1 frames ... are"
    assert gif is not None and message.endswith("after 2 frames): its first 1 frame, before the cut, is continued")
