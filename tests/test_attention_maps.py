"""A look inside: the attention weights explain shows are real softmax rows over what each position may
see, they leave the fused path untouched, explain's caption is the caption command's, and a map picks out
the one visual token that differs."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from supra.models.a2a_nano import A2AConfig, A2ANano
from supra.models.attention_maps import explain_caption, explain_image2text, explain_text2image
from supra.models.gpt import kept_weights, recorded_attention
from supra.models.vlm_generation import DecodeConfig
from supra.models.vlm_nano import VLMNano
from supra.pictures.attention import (
    CODES_ON_WORD,
    TILE,
    explain_page,
    heat_colours,
    heatmap_tile,
    probability_text,
)
from supra.tokens.a2a_layout import TokenLayout
from tests.conftest import run_command


def assert_rows_are_causal_softmax(weights: torch.Tensor, past: int) -> None:
    """weights [B, H, T, past + T]: query i sees keys 0..past+i; each row sums to 1 there and is 0 after."""
    T, S = weights.shape[-2:]
    allowed = torch.ones(T, S, dtype=torch.bool).tril(diagonal=past)
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5)
    assert (weights[..., ~allowed] == 0).all() and (weights >= 0).all()


def test_every_row_sums_to_one_over_what_it_may_see_and_is_zero_elsewhere():
    torch.manual_seed(0)
    net = VLMNano(VOCAB_SIZE=50, MAX_SEQ=10).eval()
    with recorded_attention(net) as maps:
        net(torch.randn(2, 3, 112, 112), torch.randint(0, 50, (2, 7)))
    assert len(maps) == 3 and all(len(layer) == 1 for layer in maps)
    for layer in maps:
        assert layer[0].shape == (2, 4, 16 + 7, 16 + 7)
        assert_rows_are_causal_softmax(layer[0], past=0)
    gpt = A2ANano(A2AConfig(vocab_size=40, context=24, n_layers=2, d_model=32, n_heads=2, d_mlp=64)).eval()
    idx = torch.randint(0, 40, (1, 12))
    cache = gpt.new_cache(1)
    with recorded_attention(gpt) as maps:  # with a KV cache: a chunk of 5 after 0, then 4 after 5, then 1 after 9
        for start, end in ((0, 5), (5, 9), (9, 10)):
            gpt.forward_cached(idx[:, start:end], cache)
    for layer in maps:
        for weights, past in zip(layer, (0, 5, 9), strict=True):
            assert_rows_are_causal_softmax(weights, past)


def test_recording_gives_the_fused_paths_outputs_and_is_off_outside_the_block():
    torch.manual_seed(0)
    net = VLMNano(VOCAB_SIZE=50, MAX_SEQ=10).eval()
    images, idx = torch.randn(2, 3, 112, 112), torch.randint(0, 50, (2, 7))
    fused, _ = net(images, idx)
    with recorded_attention(net):
        explicit, _ = net(images, idx)
    assert torch.allclose(fused, explicit, atol=1e-5)
    assert all(kept_weights(m) is None for m in net.modules())


def test_callers_sharing_one_model_at_once_each_record_their_own_maps():
    """A demo page's requests run in threads over one model: each explanation holds its own weights only."""
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(0)
    net = VLMNano(VOCAB_SIZE=50, MAX_SEQ=10).eval()
    images = torch.randn(1, 3, 112, 112)

    def recorded(length: int) -> list[list[torch.Tensor]]:
        with torch.no_grad(), recorded_attention(net) as maps:
            for _ in range(20):  # long enough for the threads to interleave
                net(images, torch.randint(0, 50, (1, length), generator=torch.Generator().manual_seed(length)))
        return maps

    with ThreadPoolExecutor(2) as pool:
        short, long = pool.map(recorded, (3, 9))
    for maps, length in ((short, 3), (long, 9)):
        assert {tuple(w.shape[-2:]) for layer in maps for w in layer} == {(length + net.config.N_VIS,) * 2}
        assert all(len(layer) == 20 for layer in maps)


def one_different_visual_token(k: int) -> VLMNano:
    """A 1-layer captioner whose visual tokens are all the same except token k, which every text query
    (embedded the same way as token k) is drawn to: q = k = the normed input."""
    torch.manual_seed(0)
    net = VLMNano(VOCAB_SIZE=20, MAX_SEQ=8, N_LAYERS=1).eval()
    d = net.config.D_MODEL
    v = torch.randn(d)
    with torch.no_grad():
        net.vis_enc.proj.weight.zero_()
        net.vis_enc.proj.bias.zero_()  # every visual token is its position embedding alone
        net.pos_emb.weight.zero_()
        net.pos_emb.weight[k] = v  # ... and only token k's is not zero
        net.tok_emb.weight[:] = v  # text looks like token k
        qkv = net.blocks[0].attn.qkv.weight
        qkv.zero_()
        qkv[:d] = torch.eye(d) * 3  # queries and keys: the normed input itself
        qkv[d : 2 * d] = torch.eye(d) * 3
    return net


@pytest.mark.parametrize("k", [0, 5, 15])
def test_the_map_picks_out_the_one_visual_token_that_differs(k):
    net = one_different_visual_token(k)
    _, tokens = explain_caption(net, torch.randn(3, 112, 112), 1, 2, lambda ids: str(ids), DecodeConfig(strategy="greedy"))
    assert tokens
    for token in tokens:
        assert int(token.mean_map.argmax()) == k
        assert token.maps.shape == (1, 4, 16)


def test_explain_gives_a_training_model_back_with_each_part_in_its_own_mode():
    """Explained in eval mode, then each module put back as it was: a part kept in eval stays in eval."""
    torch.manual_seed(0)
    net = VLMNano(VOCAB_SIZE=50, MAX_SEQ=10).train()
    frozen = next(module for module in net.children() if list(module.children()))
    frozen.eval()
    explain_caption(net, torch.randn(3, 112, 112), 1, 2, str, DecodeConfig(strategy="greedy"))
    assert net.training and not any(module.training for module in frozen.modules())


def test_a_diverged_models_nan_map_is_drawn_dark_without_numpys_cast_warning():
    """heat_colours cast NaN positions to int: "invalid value encountered in cast", and an arbitrary colour."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tile = heatmap_tile(torch.full((3, 32, 32), 255, dtype=torch.uint8), torch.full((16,), float("nan")), (4, 4))
        assert heat_colours(np.array([float("nan")])).tolist() == heat_colours(np.array([0.0])).tolist()
    assert tile.size == (TILE, TILE)


def test_small_probabilities_are_printed_so_they_read_not_as_zero():
    """At two decimals an early model's tokens and alternatives all read p=0.00 (0.0031 in explain.json)."""
    assert [probability_text(p) for p in (0.93, 0.1, 0.0531, 0.0031, 0.001, 0.0004, 0.0)] == \
        ["0.93", "0.10", "0.053", "0.0031", "0.001", "<0.001", "0"]
    image = torch.full((3, 8, 8), 128, dtype=torch.uint8)
    row = {"token": "large", "probability": 0.0031, "alternatives": [("blue", 0.0042), ("red", 0.00002)],
           "maps": torch.full((1, 1, 4), 0.25)}
    page = explain_page("t", "s", Image.new("RGB", (4, 4)), image, (2, 2), [row])
    assert "<td>0.0031</td>" in page and "&#x27;blue&#x27; 0.0042, &#x27;red&#x27; &lt;0.001" in page


def test_the_page_says_each_maps_share_of_the_attention_which_its_own_scaling_hides():
    """Each tile is scaled to its own brightest cell, so that its shape reads: a head with 2% of a token's attention
    on the image was drawn as bright as one with 80%, and the page did not say so."""
    image = torch.full((3, 8, 8), 128, dtype=torch.uint8)
    faint = torch.tensor([0.01, 0.002, 0.002, 0.006])  # 2% of the token's attention on the 2x2 grid
    maps = torch.stack([faint, faint * 40])[None]  # [1 layer, 2 heads, 4]: the same shape, 2% and 80%
    assert heatmap_tile(image, maps[0, 0], (2, 2)).tobytes() == heatmap_tile(image, maps[0, 1], (2, 2)).tobytes()
    row = {"token": "red", "probability": 0.9, "alternatives": [], "maps": maps}
    page = explain_page("t", "s", Image.new("RGB", (4, 4)), image, (2, 2), [row])
    assert "scaled to its own brightest cell" in page and "how much of that token&#x27;s attention is on the image" in page
    assert [re.search(f"head {h}: ([^']*)'", page)[1] for h in (0, 1)] == ["2%", "80%"]
    assert "mean of layers and heads: 41%" in page
    # text2image: each code's attention to the word, averaged over the codes
    page = explain_page("t", "s", Image.new("RGB", (4, 4)), image, (2, 2), [row], CODES_ON_WORD)
    assert [re.search(f"head {h}: ([^']*)'", page)[1] for h in (0, 1)] == ["&lt;1%", "20%"]
    assert "<span class='small'>&lt;1%</span>" in page  # printed under the tile too


def test_a2a_maps_cover_the_image_codes_and_the_prompt_words():
    torch.manual_seed(0)
    layout = TokenLayout(text_size=30, num_codes=16)
    gpt = A2ANano(A2AConfig(vocab_size=layout.vocab_size, context=48, n_layers=2, d_model=32, n_heads=2, d_mlp=64)).eval()
    ids, tokens = explain_image2text(gpt, layout, torch.arange(16).view(4, 4) % 16, [], 5, lambda i: str(i))
    assert len(tokens) == len(ids) and all(t.maps.shape == (2, 2, 16) for t in tokens)
    assert all(0 < float(t.maps.sum(-1).max()) <= 1 + 1e-5 for t in tokens)  # a share of each row, on the codes
    drawn = explain_text2image(gpt, layout, [3, 4, 5], (4, 4), lambda i: str(i), temperature=0.0)
    assert drawn.codes.shape == (4, 4) and drawn.maps.shape == (2, 2, 3, 16) and drawn.words == ["3", "4", "5"]


def checkpoint_with(trained_run: Path, path: Path, net: dict | None = None, **decode: object) -> Path:
    """trained_run's best.ckpt as a run with these model.decode settings (and model.net keys, random weights
    of that net) wrote it."""
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["decode"] |= decode
    if net:
        net_config = checkpoint["supra"]["run_config"]["model"]["net"] | net
        checkpoint["supra"]["run_config"]["model"]["net"] = net_config
        weights = VLMNano(**{k: v for k, v in net_config.items() if not k.startswith("_")}).state_dict()
        checkpoint["state_dict"] = {f"net.{k}": v for k, v in weights.items()}
    torch.save(checkpoint, path)
    return path


def test_explains_caption_is_the_caption_commands(trained_run, tmp_path):
    from PIL import Image

    from supra.data.captioning.shapes import ShapesDataModule

    (tmp_path / "photos").mkdir()
    for n, image in enumerate(ShapesDataModule(num_test=2, image_size=112).load_split("test").images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "photos" / f"scene{n}.png")
    # a run that decoded otherwise than DecodeConfig's defaults: explain decodes as it did, as caption does
    ckpt = checkpoint_with(trained_run, tmp_path / "wide.ckpt", beam_width=5, length_penalty=1.0, seed=4)
    for decode in (None, "sample"):  # None: the run's (beam, width 5)
        given = [f"decode={decode}"] if decode else []
        captioned = run_command("caption", f"ckpt={ckpt}", f"images={tmp_path / 'photos'}",
                                f"out={tmp_path / f'caption_{decode}'}", *given)  # the images in one batch
        for n in range(2):
            explained = run_command("explain", f"ckpt={ckpt}", f"image={tmp_path / 'photos' / f'scene{n}.png'}",
                                    f"out={tmp_path / f'explain_{decode}'}", *given)
            assert explained["caption"] == captioned[f"scene{n}.png"], (decode, n)
    record = json.loads((tmp_path / "explain_None" / "explain.json").read_text())
    # the caption length limit used, as evaluate.py's metrics.json records it: null decodes MAX_SEQ - 1 (48 - 1)
    assert record["decode_settings"] == {"strategy": "beam", "beam_width": 5, "length_penalty": 1.0, "max_new_tokens": 47}
    assert json.loads((tmp_path / "explain_sample" / "explain.json").read_text())["decode_settings"]["seed"] == 4
    assert len(record["tokens"][0]["mean_map"]) == 16 and record["grid"] == [4, 4]
    page = (tmp_path / "explain_None" / "attention.html").read_text()
    assert page.count("data:image/png;base64,") > 16 and "src='http" not in page  # self-contained
    assert (tmp_path / "explain_None" / "attention.png").is_file()


def test_caption_takes_explains_seed_and_beam_width_so_a_sampled_caption_is_drawn_again_in_bulk(trained_run, tmp_path,
                                                                                               capsys):
    from supra.data.captioning.shapes import ShapesDataModule

    (tmp_path / "photos").mkdir()
    for n, image in enumerate(ShapesDataModule(num_test=2, image_size=112).load_split("test").images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "photos" / f"scene{n}.png")
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    drawn = {seed: run_command("caption", f"ckpt={ckpt}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'c'}",
                               "decode=sample", f"seed={seed}") for seed in (7, 8)}
    explained = run_command("explain", f"ckpt={ckpt}", f"image={tmp_path / 'photos' / 'scene0.png'}",
                            f"out={tmp_path / 'e'}", "decode=sample", "seed=7")
    assert explained["caption"] == drawn[7]["scene0.png"]  # the seed the explain page shows draws it again
    assert drawn[7] != drawn[8]
    wide = run_command("caption", f"ckpt={ckpt}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'c'}", "beam_width=1")
    assert wide == run_command("caption", f"ckpt={ckpt}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'c'}",
                               "decode=greedy")  # a beam of one is greedy decoding
    capsys.readouterr()
    for options, error in ((["decode=greedy", "beam_width=5"], "beam_width=5: decode=greedy does not read it"),
                           (["seed=5"], "seed=5: decode=beam (the model's run's) does not read it"),
                           (["decode=sample", "seed=-1"], "seed=-1"), (["decode=sample", "seed=abc"], "seed='abc'")):
        with pytest.raises(SystemExit):
            run_command("caption", f"ckpt={ckpt}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'x'}", *options)
        err = capsys.readouterr().err
        assert err.startswith(f"error: {error}") and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("net", "why"), [
    ({"resampler_layers": 1, "N_VIS": 8}, "a resampler's latent tokens are not places on the image"),
    # a 1x1 map drew every word at full heat, whatever its weight
    ({"N_VIS": 1}, "its one visual token (N_VIS=1) is the whole image, not a place on it"),
])
def test_a_refused_explain_of_a_captioner_without_places_leaves_no_out_folder(trained_run, tmp_path, capsys, net, why):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    ckpt = checkpoint_with(trained_run, tmp_path / "placeless.ckpt", net=net)
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={ckpt}", f"image={tmp_path / 'red.png'}", f"out={tmp_path / 'out' / 'run'}")
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_training_skips_the_maps_of_one_visual_token_with_a_warning(tmp_path):
    """One token is a 1x1 grid: the callback drew every word's tile at full heat; it draws nothing now, and says why."""
    from types import SimpleNamespace

    from supra.callbacks.attention_maps import AttentionMapsCallback

    callback = AttentionMapsCallback(output_dir=str(tmp_path))
    captioner = SimpleNamespace(net=VLMNano(VOCAB_SIZE=20, MAX_SEQ=8, N_LAYERS=1, N_VIS=1))
    with pytest.warns(UserWarning, match=r"attention_maps: not drawn, as its one visual token \(N_VIS=1\)"):
        callback._write(None, captioner, "val", 0)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("use", [["mode=image2text", "image=red.png"], ["mode=text2image", "prompt=a red square"]])
def test_explain_refuses_an_a2a_image_of_one_code_before_out_is_made(tmp_path, capsys, monkeypatch, use):
    """image_size=8 is one VQ-VAE code, a 1x1 grid: every token's map was one cell, drawn at full heat whatever its
    weight (the captioner's one visual token is refused alike)."""
    from supra.artifacts.a2a_release import save_a2a_release
    from supra.models.vqvae import VQVAE
    from supra.tokens.a2a_vocab import A2AVocab

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8), (200, 30, 30)).save("red.png")
    vocab = A2AVocab.train(["a red square", "a blue circle"], vocab_size=270, num_codes=16)
    gpt = A2ANano(A2AConfig(vocab_size=vocab.layout.vocab_size, context=48, n_layers=1, d_model=16, n_heads=2, d_mlp=32))
    save_a2a_release(tmp_path / "a2a", gpt, VQVAE(num_codes=16, code_dim=4, hidden=(4, 4)), vocab)
    with pytest.raises(SystemExit):
        run_command("explain", "ckpt=a2a", "image_size=8", *use, "out=out/run")
    assert capsys.readouterr().err == (
        "error: image_size=8: attention maps show where on the image each token looked, but its one VQ-VAE code (a 1x1 "
        "grid) is the whole image, not a place on it: give image_size=16 or more (a grid of 2x2 codes or more)\n")
    assert not (tmp_path / "out").exists()


def test_training_skips_the_maps_of_one_code_images_with_a_warning(tmp_path):
    """An a2a run on 8 px pictures: each is one code, so the callback drew every word's tile at full heat."""
    from types import SimpleNamespace

    from supra.callbacks.attention_maps import AttentionMapsCallback

    callback = AttentionMapsCallback(output_dir=str(tmp_path))
    callback.needs = "sample_batch"  # an a2a task's, as _write sets it
    data = SimpleNamespace(sample_batch=lambda split, task, n: {"codes": torch.zeros(n, 1, 1, dtype=torch.long)})
    with pytest.warns(UserWarning, match=r"attention_maps: not drawn, as its one VQ-VAE code \(a 1x1 grid\)"):
        assert callback.draw(SimpleNamespace(datamodule=data), SimpleNamespace(vocab=None), "val", 0) == []


def test_explain_given_a_checkpoint_of_an_unknown_model_names_the_models_it_explains(tmp_path, capsys):
    torch.save({"state_dict": {}, "supra": {"kind": "supra.diffusion"}}, tmp_path / "later.ckpt")
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={tmp_path / 'later.ckpt'}", "prompt=a red square", f"out={tmp_path / 'out'}")
    # not a VQ-VAE checkpoint, which explain refuses next
    assert capsys.readouterr().err == (f"error: ckpt={tmp_path / 'later.ckpt'} is a supra.diffusion checkpoint, which "
                                       "this version of Supra does not know: give a captioner checkpoint, an a2a_nano "
                                       "checkpoint\n")


def test_explain_of_a_captioner_notes_a_gif_cut_short_and_explains_its_first_frame(trained_run, tmp_path, capsys):
    """A GIF cut after its first frame was explained without a word, though generate's video2video notes one."""
    from PIL import Image

    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = (tmp_path / "clip.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) - 10])  # cut inside the last frame
    run_command("explain", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"image={tmp_path / 'cut.gif'}",
                f"out={tmp_path / 'out'}")
    err = capsys.readouterr().err
    assert re.fullmatch(rf"note: image={re.escape(str(tmp_path / 'cut.gif'))} is cut short \(the file is cut inside "
                        r"the block at byte \d+, after 2 frames\): its first frame, before the cut, is used\n", err), err
    assert (tmp_path / "out" / "explain.json").is_file()


def test_explain_names_a_bad_picture_in_one_line(trained_run, tmp_path, capsys):
    from PIL import Image

    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "good.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "good.jpg").read_bytes()[:300])
    # in plain words, those caption and the demo use: not Pillow's class names
    for name, why in (("broken.png", "not a picture file"), ("empty.png", "empty file (0 bytes)"),
                      ("cut.jpg", "damaged or cut short")):
        with pytest.raises(SystemExit):
            run_command("explain", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"image={tmp_path / name}",
                        f"out={tmp_path / 'out'}")
        assert capsys.readouterr().err == (f"error: image={tmp_path / name} cannot be read as a picture: {why}; give a "
                                           "PNG, JPEG, ...\n")
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"image={tmp_path}",
                    f"out={tmp_path / 'out'}")
    assert f"image={tmp_path} is a folder: give one image file in it" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", "prompt=a red square",
                    f"out={tmp_path / 'out'}")
    assert "is a captioner: it explains the caption of image=PICTURE; prompt= and mode=text2image" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an a2a sampling option would change nothing: said, not ignored
        run_command("explain", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"image={tmp_path / 'broken.png'}",
                    "temperature=0.5", f"out={tmp_path / 'out'}")
    assert ("temperature=0.5: explaining a captioner does not read it (it reads image, decode, beam_width, seed); leave it out"
            in capsys.readouterr().err)
    Image.new("1", (12000, 10000)).save(tmp_path / "huge.png")  # 120 million pixels: refused from its header
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"image={tmp_path / 'huge.png'}",
                    f"out={tmp_path / 'out'}")
    assert capsys.readouterr().err == (f"error: image={tmp_path / 'huge.png'} is too large (12000x10000 = 120,000,000 "
                                       "pixels; explain reads up to 100,000,000 pixels): resize the picture and give "
                                       "the smaller copy\n")  # not "cannot be read as a picture": it can
    Image.new("F", (40, 40), 0.5).save(tmp_path / "float.tif")  # read, but of no known range: what to do said
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"image={tmp_path / 'float.tif'}",
                    f"out={tmp_path / 'out'}")
    assert capsys.readouterr().err == (f"error: image={tmp_path / 'float.tif'}: float pixels (mode F), of no known "
                                       "range: convert the picture to 8 or 16-bit\n")
    for mode in ("bogus", "image2text"):  # a captioner has one use: mode= would change nothing
        with pytest.raises(SystemExit):
            run_command("explain", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"image={tmp_path / 'broken.png'}",
                        f"mode={mode}", f"out={tmp_path / 'out'}")
        assert capsys.readouterr().err == (f"error: mode={mode}: explaining a captioner does not read it (it reads image, "
                                           "decode, beam_width, seed); leave it out\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("options", "error"), [
    # the run's beam search reads no seed, greedy decoding no beam width: said, not ignored
    (["seed=5"], "seed=5: decode=beam (the model's run's) does not read it (it reads beam_width); leave it out"),
    (["decode=greedy", "beam_width=5"], "beam_width=5: decode=greedy does not read it; leave it out"),
    # a beam per vocabulary token at most: wider ran out of memory, or captioned every image ''
    (["beam_width=200000"], "beam_width=200000 is more than the model's 2048 tokens: give beam_width <= 2048"),
])
def test_explain_refuses_a_captioners_decoding_options_it_would_ignore_or_cannot_use(trained_run, tmp_path, capsys,
                                                                                    options, error):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    with pytest.raises(SystemExit):
        run_command("explain", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"image={tmp_path / 'red.png'}",
                    *options, f"out={tmp_path / 'out'}")
    assert capsys.readouterr().err == f"error: {error}\n"
    assert not (tmp_path / "out").exists()
