"""The release card's roadmap as config (docs/architectures.md): every encoder x fusion trains, decodes
with a cache exactly as without, and searches beams in a batch exactly as one image at a time; a
pretrained tower loads from a weights file on disk the way a user's CLIP ViT-B/32 would; the data follows
the tower's size and normalisation; the release architecture alone keeps the release format."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from safetensors.torch import save_file

from supra.artifacts.captioner_release import load_captioner
from supra.data.captioning.shapes import ShapesDataModule
from supra.models.vlm_generation import beam_search, beam_search_recompute
from supra.models.vlm_nano import VLMNano
from supra.runner.evaluation import evaluate
from supra.runner.training import train
from supra.tasks.captioning import CaptioningTask
from supra.utils.errors import SupraUserError
from tests.conftest import ROOT, TINY_RUN, command_lines, compose_config, run_command
from tests.peaked_captioner import BOS, EOS, peaked

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENCODERS = ["cnn", "vit", "pretrained"]
FUSIONS = ["prefix", "cross_attention"]
TINY_NET = {"D_MODEL": 32, "N_HEADS": 2, "N_LAYERS": 2, "D_FF": 64, "VIS_CH": 16, "VOCAB_SIZE": 24, "MAX_SEQ": 10,
            "IMG_SIZE": 32}
TINY_VIT = {"patch_size": 8, "width": 16, "layers": 1, "heads": 2}
TIMM_MODEL = "test_vit"  # timm's own tiny test ViT: 160 px, mean/std 0.5, a class token


@pytest.fixture(scope="module")
def tower_weights(tmp_path_factory) -> Path:
    """A tiny timm ViT's weights in a file, as a user's downloaded CLIP ViT-B/32 weights lie on disk."""
    torch.manual_seed(1)
    tower = timm.create_model(TIMM_MODEL, pretrained=False)
    path = tmp_path_factory.mktemp("weights") / "tower.safetensors"
    save_file({k: v.contiguous() for k, v in tower.state_dict().items()}, path)
    return path


def captioner(encoder: str, fusion: str, weights: Path, **overrides) -> VLMNano:
    torch.manual_seed(0)
    settings = {"cnn": {}, "vit": {"vit": TINY_VIT}, "pretrained": {"pretrained": {"model": TIMM_MODEL, "weights": str(weights)}}}
    return VLMNano(**{**TINY_NET, **settings[encoder], **overrides}, encoder=encoder, fusion=fusion)


def decoding_test_net(encoder: str, fusion: str, weights: Path, **overrides) -> VLMNano:
    """peaked (tests/peaked_captioner.py), and the decoder's attention sharpened so that each image gets
    its own caption (at GPT init a tiny decoder attends almost uniformly and every image reads alike)."""
    net = peaked(captioner(encoder, fusion, weights, **overrides))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith(("blocks.", "xattn.")) and p.dim() == 2:
                p.mul_(20.0)
    return net


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("resampler_layers", [0, 1])
def test_cached_generation_equals_recomputation(encoder, fusion, resampler_layers, tower_weights):
    net = decoding_test_net(encoder, fusion, tower_weights, resampler_layers=resampler_layers)
    size = net.image_input.size
    images, idx = torch.randn(3, 3, size, size, dtype=torch.double), torch.randint(3, 24, (3, 7))
    idx[:, 0] = BOS
    with torch.no_grad():
        full, _ = net(images, idx)
        first, cache = net.prefill(images, BOS)
        steps = [first] + [net.decode_step(idx[:, t], cache) for t in range(1, idx.shape[1])]
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=0, atol=1e-10)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_batched_beam_search_equals_per_image_search(encoder, fusion, tower_weights):
    net = decoding_test_net(encoder, fusion, tower_weights)
    torch.manual_seed(0)
    images = torch.randn(6, 3, net.image_input.size, net.image_input.size, dtype=torch.double)
    batched = beam_search(net, images, BOS, EOS, beam_width=3)
    assert batched == [beam_search_recompute(net, image, BOS, EOS, beam_width=3) for image in images]
    assert len({tuple(c) for c in batched}) > 1  # each image its own caption: the visual path counts


def test_cross_attention_reads_each_images_visual_tokens_once_per_search(tower_weights):
    net = decoding_test_net("cnn", "cross_attention", tower_weights)
    calls = []
    for layer in net.xattn.values():
        compute = layer.context_kv
        layer.context_kv = lambda visual, compute=compute: calls.append(len(visual)) or compute(visual)
    beam_search(net, torch.randn(4, 3, 32, 32, dtype=torch.double), BOS, EOS, beam_width=3)
    assert calls == [4] * len(net.xattn)  # once per gated layer, for the 4 images, not per step or beam


def test_gated_cross_attention_starts_as_the_decoder_alone():
    """tanh gates at 0: before training, the image cannot change the caption's logits (Flamingo's start)."""
    torch.manual_seed(0)
    net = VLMNano(**TINY_NET, fusion="cross_attention").eval()
    idx = torch.tensor([[BOS, 5, 6]])
    a, _ = net(torch.randn(1, 3, 32, 32), idx)
    b, _ = net(torch.randn(1, 3, 32, 32), idx)
    assert torch.equal(a, b)


@pytest.mark.parametrize(("encoder", "n_vis", "resampler_layers"), [
    ("cnn", 1, 0), ("cnn", 4, 0), ("vit", 16, 0), ("vit", 7, 1), ("pretrained", 9, 0), ("pretrained", 5, 2)])
def test_every_encoder_gives_n_vis_visual_tokens(encoder, n_vis, resampler_layers, tower_weights):
    net = captioner(encoder, "prefix", tower_weights, N_VIS=n_vis, resampler_layers=resampler_layers)
    size = net.image_input.size
    assert net.encode_images(torch.randn(2, 3, size, size)).shape == (2, n_vis, 32)


def test_the_resampler_knows_where_each_token_lies():
    """Attention alone is blind to order: without grid positions, shuffling the encoder's tokens would give
    the same latents, and captions could not say "left" or "top"."""
    from supra.models.resampler import PerceiverResampler

    torch.manual_seed(0)
    resampler, tokens = PerceiverResampler(width=16, n_latents=4, n_layers=1, n_heads=2), torch.randn(2, 9, 16)
    shuffled = tokens[:, torch.tensor([8, 7, 6, 5, 4, 3, 2, 1, 0])]
    assert not torch.allclose(resampler(tokens), resampler(shuffled), atol=1e-3)


def test_n_vis_not_square_needs_a_resampler():
    with pytest.raises(SupraUserError, match=r"^model.net.N_VIS=7 must be a square number .* a resampler, "
                                             r"model.net.resampler_layers > 0, takes any number\)$"):
        VLMNano(**TINY_NET, N_VIS=7)


@pytest.mark.parametrize(("encoder", "setting", "message"), [
    ("cnn", {"IMG_SIZE": 8}, r"^model.net.N_VIS=16 \(4x4\) is more than the 1x1 map of the cnn encoder at IMG_SIZE=8: "
                             r"pooling would repeat its cells, not average them; choose a square model.net.N_VIS <= 1, "
                             r"or model.net.resampler_layers=1, whose N_VIS latents read the whole map$"),
    ("cnn", {"N_VIS": 25}, r"N_VIS=25 \(5x5\) is more than the 4x4 map of the cnn encoder at IMG_SIZE=32: .*model.net.N_VIS <= 16,"),
    ("vit", {"N_VIS": 25}, r"N_VIS=25 \(5x5\) is more than the 4x4 map of the vit encoder \(IMG_SIZE=32, "
                           r"vit.patch_size=8\): .*model.net.N_VIS <= 16,"),
    ("pretrained", {"N_VIS": 121}, r"N_VIS=121 \(11x11\) is more than the 10x10 map of test_vit \(160 px\): .* <= 100,"),
])
def test_more_pooled_visual_tokens_than_the_encoders_grid_has_are_refused(encoder, setting, message, tower_weights):
    """Adaptive pooling does not refuse to upsample: IMG_SIZE=8 gave the CNN a 1x1 map and the decoder 16 copies of
    it, N_VIS=256 spread a 14x14 map over 16x16. A resampler reads any grid into any N_VIS, and a saved model of
    such a grid (rebuilt to load its weights) still loads as it was trained."""
    with pytest.raises(SupraUserError, match=message):
        captioner(encoder, "prefix", tower_weights, **setting)
    captioner(encoder, "prefix", tower_weights, **setting, resampler_layers=1)
    if encoder != "pretrained":
        VLMNano(**{**TINY_NET, **setting}, encoder=encoder, **({"vit": TINY_VIT} if encoder == "vit" else {}), rebuilt=True)


@pytest.mark.parametrize(("setting", "message"), [
    ({"N_VIS": 0}, r"model.net.N_VIS=0 must be >= 1: the visual tokens are all the decoder sees"),
    ({"N_VIS": -4, "resampler_layers": 1}, r"model.net.N_VIS=-4 must be >= 1"),
    ({"resampler_layers": -1}, r"model.net.resampler_layers=-1 must be >= 0 \(0: pool"),
    ({"encoder": "vit", "resampler_layers": -2}, r"model.net.resampler_layers=-2 must be >= 0"),
])
def test_no_visual_tokens_or_a_negative_resampler_depth_is_refused(setting, message):
    """N_VIS=0 trained a decoder blind to the image and resampler_layers=-1 pooled without a word."""
    with pytest.raises(SupraUserError, match=message):
        VLMNano(**{**TINY_NET, **setting})


@pytest.mark.parametrize(("setting", "message"), [
    # N_LAYERS=0 trained, then failed to caption; with cross-attention it scored CIDEr 0.0 without a word
    ({"N_LAYERS": 0}, r"model.net.N_LAYERS=0 must be >= 1: a decoder of no blocks never reads the image$"),
    ({"N_LAYERS": -1, "fusion": "cross_attention"}, r"model.net.N_LAYERS=-1 must be >= 1"),
    ({"VIS_CH": 0}, r"model.net.VIS_CH=0 must be >= 4"),
    ({"MAX_SEQ": 1}, r"model.net.MAX_SEQ=1 must be >= 3: BOS, a token and EOS$"),
    ({"cross_attention_every": 0}, r"model.net.cross_attention_every=0 must be >= 1$"),
    ({"encoder": "vit", "vit": {**TINY_VIT, "patch_size": 0}}, r"model.net.vit.patch_size=0 must be >= 1$"),
    ({"encoder": "vit", "vit": {**TINY_VIT, "width": 0}}, r"model.net.vit.width=0 must be >= 1$"),
    ({"encoder": "vit", "vit": {**TINY_VIT, "patch_size": 7}},
     r"model.net.IMG_SIZE=32 must be a multiple of model.net.vit.patch_size=7: e.g. model.net.vit.patch_size=4$"),
    # a patch larger than the image: the image itself is the patch that fits, found without counting to 10**12
    ({"encoder": "vit", "vit": {**TINY_VIT, "patch_size": 10**12}}, r"model.net.IMG_SIZE=32 must be a multiple of "
     r"model.net.vit.patch_size=1000000000000: e.g. model.net.vit.patch_size=32$"),
    ({"dropout": 1.5}, r"model.net.dropout=1.5 must be a number >= 0 and < 1 \(0: none\)$"),
    ({"N_VIS": 2.5}, r"model.net.N_VIS=2.5 must be a whole number$"),
    ({"N_VIS": 16.0}, r"model.net.N_VIS=16.0 \(write 16, not 16.0\) must be a whole number$"),
    ({"resampler_layers": True}, r"model.net.resampler_layers=True must be a whole number$"),  # was taken as 1
    ({"encoder": "vit", "vit": {**TINY_VIT, "layers": "2", "width": 16.0}},
     r"model.net.vit.width=16.0 \(write 16, not 16.0\), model.net.vit.layers='2' must be whole numbers$"),
    ({"encoder": "vit", "vit": None}, r"model.net.vit=None must be a mapping of vit's settings \(patch_size, layers, "
                                      r"width, heads\)$"),
    ({"channels_last": "yes"}, r"model.net.channels_last='yes' must be true or false$"),
    # each by the key typed, as the others (a bare "N_VIS=10" given back to the command line is no key of it)
    ({"encoder_activation": "tanh"}, r"^model.net.encoder_activation='tanh' is unknown: choose one of relu, gelu$"),
    ({"encoder": "rnn"}, r"^model.net.encoder='rnn' is unknown: choose one of cnn, vit, pretrained$"),
    ({"fusion": "sum"}, r"^model.net.fusion='sum' is unknown: choose one of prefix, cross_attention$"),
    ({"VIS_CH": 10}, r"^model.net.VIS_CH=10 must be divisible by 4 \(stages use VIS_CH/4, VIS_CH/2\)$"),
])
def test_a_setting_no_model_can_be_built_or_trained_with_is_one_line_naming_it(setting, message):
    """They ended in ZeroDivisionError, a torch error or a negative dimension, some only after training."""
    with pytest.raises(SupraUserError, match=message):
        VLMNano(**{**TINY_NET, **setting})


BASE_DECODER = {"D_MODEL": 768, "N_HEADS": 12, "N_LAYERS": 1, "D_FF": 64, "VOCAB_SIZE": 24}  # model/decoder=base's heads


@pytest.mark.parametrize(("setting", "message", "fixed"), [
    ({**BASE_DECODER, "resampler_layers": 1}, r"model.net.VIS_CH=64 must be divisible by 12 with resampler_layers=1: .*"
     r"N_HEADS=12 heads .* e.g. model.net.VIS_CH=72$", {"VIS_CH": 72}),
    ({"encoder": "vit", "vit": {"width": 130, "heads": 4}}, r"model.net.vit.width=130 must be divisible by "
     r"model.net.vit.heads=4: e.g. model.net.vit.heads=2, or model.net.vit.width=132$", {"vit": {"width": 132, "heads": 4}}),
    # fewer heads, not only a width of one channel a head (vit.heads=256 named vit.width=256 alone)
    ({"encoder": "vit", "vit": {"heads": 256}}, r"model.net.vit.width=128 must be divisible by model.net.vit.heads=256: "
     r"e.g. model.net.vit.heads=128, or model.net.vit.width=256$", {"vit": {"heads": 128}}),
    # the decoder's own heads, named as the options are typed (it said "D_MODEL=128 must be divisible by N_HEADS=5")
    ({"N_HEADS": 5}, r"^model.net.D_MODEL=128 must be divisible by model.net.N_HEADS=5: e.g. model.net.N_HEADS=4, or "
     r"model.net.D_MODEL=130$", {"N_HEADS": 4}),
    ({"fusion": "cross_attention", "N_HEADS": 3}, r"^model.net.D_MODEL=128 must be divisible by model.net.N_HEADS=3: "
     r"e.g. model.net.N_HEADS=2, or model.net.D_MODEL=129$", {"D_MODEL": 129}),
    ({"encoder": "vit", "vit": {"width": 18, "heads": 3}, "resampler_layers": 1}, r"model.net.vit.width=18 must be "
     r"divisible by 12 with resampler_layers=1: .* e.g. model.net.vit.width=24$", {"vit": {"width": 24, "heads": 3}}),
    ({"N_HEADS": 0}, r"model.net.N_HEADS=0 must be >= 1$", {"N_HEADS": 4}),
])
def test_a_width_its_heads_cannot_split_is_refused_naming_both_options_and_values_that_work(setting, message, fixed):
    """The resampler borrows the decoder's N_HEADS for the encoder's width: model/decoder=base with a resampler
    failed with `d_model=64 must be divisible by n_heads=12`, naming neither option."""
    with pytest.raises(SupraUserError, match=message):
        VLMNano(**{**setting, "VOCAB_SIZE": 24})
    VLMNano(**{**setting, **fixed, "VOCAB_SIZE": 24})  # the width named builds


def test_a_towers_width_its_resampler_heads_cannot_split_is_refused(tower_weights):
    with pytest.raises(SupraUserError, match=r"model.net.pretrained.model=test_vit gives 64 channels, which the "
                                             r"resampler \(resampler_layers=1\) cannot split into model.net.N_HEADS=3 heads"):
        captioner("pretrained", "prefix", tower_weights, D_MODEL=96, N_HEADS=3, resampler_layers=1)


@pytest.mark.parametrize(("group", "settings", "message"), [
    ("vit", {"patch": 8}, r"model.net.vit.patch is not a setting: model.net.vit has patch_size, layers, width, heads$"),
    ("pretrained", {"model": TIMM_MODEL, "weight": "w.pth"},
     r"model.net.pretrained.weight is not a setting: model.net.pretrained has model, weights, trainable_blocks$"),
])
def test_an_unknown_encoder_setting_is_one_line_naming_those_there_are(group, settings, message):
    with pytest.raises(SupraUserError, match=message):  # was a TypeError from the settings' dataclass
        VLMNano(**TINY_NET | {group: settings})


# -- the pretrained tower ---------------------------------------------------------------------------


def test_pretrained_tower_holds_the_files_weights_frozen_in_eval_mode(tower_weights):
    from safetensors.torch import load_file

    net = captioner("pretrained", "prefix", tower_weights).train()
    tower = net.vis_enc.features.backbone
    saved = load_file(tower_weights)
    assert all(torch.equal(value, saved[name]) for name, value in tower.state_dict().items())  # not re-initialised
    assert not any(p.requires_grad for p in tower.parameters()) and not tower.training
    trainable = {id(p) for group in net.optimizer_groups(0.01) for p in group["params"]}
    assert trainable and not trainable & {id(p) for p in tower.parameters()}


def test_reading_the_towers_weights_file_prints_no_line_of_timms(tower_weights, caplog):
    """timm said "Loaded  from checkpoint '<file>'" at INFO: the user's own file, nothing to act on."""
    from supra.models.pretrained_encoder import PretrainedEncoder

    with caplog.at_level(logging.INFO):
        PretrainedEncoder(TIMM_MODEL, str(tower_weights))
    assert [record.getMessage() for record in caplog.records if record.name.startswith("timm")] == []


def test_pretrained_tower_fine_tunes_all_or_its_last_blocks(tower_weights):
    last_two = captioner("pretrained", "prefix", tower_weights, pretrained={"model": TIMM_MODEL, "weights": str(tower_weights),
                                                                          "trainable_blocks": 2})
    tower = last_two.vis_enc.features.backbone
    n_blocks = len(tower.blocks)
    trainable_blocks = {i for i, block in enumerate(tower.blocks) if all(p.requires_grad for p in block.parameters())}
    assert trainable_blocks == {n_blocks - 2, n_blocks - 1}
    assert not tower.patch_embed.proj.weight.requires_grad
    everything = captioner("pretrained", "prefix", tower_weights,
                           pretrained={"model": TIMM_MODEL, "weights": str(tower_weights), "trainable_blocks": -1})
    assert all(p.requires_grad for p in everything.parameters())


@pytest.mark.parametrize(("blocks", "message"), [
    (-3, r"trainable_blocks=-3: choose -1 \(fine-tune all of test_vit\), 0 \(frozen\) or N > 0 \(its last N blocks\)$"),
    (7, r"trainable_blocks=7 but test_vit has 6 blocks: choose -1 \(all\), 0 \(frozen\) or 1..6$"),
])
def test_trainable_blocks_outside_the_towers_blocks_are_refused(blocks, message, tower_weights):
    """-3 fine-tuned the whole tower and 7 (of 6) as well, without a word."""
    with pytest.raises(SupraUserError, match=message):
        captioner("pretrained", "prefix", tower_weights,
                  pretrained={"model": TIMM_MODEL, "weights": str(tower_weights), "trainable_blocks": blocks})


def test_a_tower_whose_feature_map_is_channels_last_gives_its_cells_in_raster_order(tmp_path):
    """Swin, SwinV2, MambaOut, Hiera-Det give [B, H, W, C] (timm's output_fmt NHWC): read as [B, C, H, W],
    the first step failed with 'not a square grid: use a resampler'. timm's tiny test MambaOut is one."""
    torch.manual_seed(1)
    weights = tmp_path / "mambaout.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("test_mambaout", pretrained=False).state_dict().items()},
              weights)
    net = captioner("pretrained", "prefix", weights, N_VIS=4, pretrained={"model": "test_mambaout", "weights": str(weights)})
    images = torch.randn(2, 3, 160, 160)
    grid = net.vis_enc.features.backbone.forward_features(images)
    assert grid.shape == (2, 5, 5, 64)  # rows, columns, channels
    assert torch.equal(net.vis_enc.features(images), grid.reshape(2, 25, 64))  # cell 5 * row + column
    idx = torch.randint(3, 24, (2, 5))
    _, loss = net(images, idx, idx)
    assert torch.isfinite(loss)


def test_pretrained_tower_errors_name_the_file_and_the_fix(tower_weights, tmp_path):
    def build(model: str, weights: Path) -> None:
        VLMNano(**TINY_NET, encoder="pretrained", pretrained={"model": model, "weights": str(weights)})

    with pytest.raises(SupraUserError, match=r"missing.pth not found: give the local file .*nothing is downloaded"):
        build(TIMM_MODEL, tmp_path / "missing.pth")
    with pytest.raises(SupraUserError, match=r"tower.safetensors does not fit test_resnet: missing \['bn1.bias'.*give the file of that model"):
        build("test_resnet", tower_weights)  # timm itself would only warn and keep random weights
    torch.jit.script(torch.nn.Linear(2, 2)).save(tmp_path / "ViT-B-32.pt")  # OpenAI's CLIP files are TorchScript
    with pytest.raises(SupraUserError, match="ViT-B-32.pt are a TorchScript archive, not a state dict: give open_clip's"):
        build(TIMM_MODEL, tmp_path / "ViT-B-32.pt")
    with pytest.raises(SupraUserError, match="pretrained encoder 'no_such_net'"):
        build("no_such_net", tower_weights)


def test_a_folder_given_as_the_weights_file_is_named_a_folder_with_the_files_it_holds(tower_weights, tmp_path):
    """Hugging Face and open_clip downloads are folders: it was "not found"."""
    download = tmp_path / "clip download"
    download.mkdir()
    with pytest.raises(SupraUserError, match=r"clip download is a folder: give the weights file of test_vit inside it, "
                                             r"e.g. model.net.pretrained.weights=\S+clip download/model.safetensors$"):
        VLMNano(**TINY_NET, encoder="pretrained", pretrained={"model": TIMM_MODEL, "weights": str(download)})
    (download / "open_clip_pytorch_model.bin").write_bytes(tower_weights.read_bytes())
    (download / "config.json").write_text("{}")
    with pytest.raises(SupraUserError, match=r"clip download is a folder \(it holds open_clip_pytorch_model.bin\): "
                                             r".* e.g. model.net.pretrained.weights=\S+clip download/open_clip_pytorch_model.bin$"):
        VLMNano(**TINY_NET, encoder="pretrained", pretrained={"model": TIMM_MODEL, "weights": str(download)})


@pytest.mark.parametrize(("name", "content"), [
    ("garbage.bin", b"garbage\n"),  # torch blamed "non-allowlisted pickle globals" and advised weights_only=False
    ("corrupt.pth", b"not a checkpoint"),
    ("cut.safetensors", b"\x08\x00"),  # a download cut short
])
def test_a_file_that_is_no_weights_file_is_one_line_saying_what_to_give(name, content, tmp_path):
    """Not the library's advice (weights_only=False is no Supra setting): the file, and what it must be."""
    (tmp_path / name).write_bytes(content)
    with pytest.raises(SupraUserError, match=rf"^pretrained weights \S+{name} are not a readable weights file: give "
                                             r"test_vit's weights as timm or open_clip publish them \(a .safetensors, "
                                             r"or a .bin/.pth state dict\), copied whole$"):
        VLMNano(**TINY_NET, encoder="pretrained", pretrained={"model": TIMM_MODEL, "weights": str(tmp_path / name)})


@pytest.mark.parametrize(("other", "message"), [
    ({"patch_size": 8}, r"patch8.pt are not of test_vit \(patch size 8x8 there, 16x16 here, positions for a 20x20 grid "
                        r"of patches there, 10x10 here\): give the file of that model, or the model.net.pretrained.model"),
    ({"img_size": 192}, r"img192.pt are not of test_vit \(positions for a 12x12 grid of patches there, 10x10 here\)"),
])
def test_weights_of_a_vit_of_another_patch_size_or_grid_are_refused_not_resampled(other, message, tmp_path):
    """timm's checkpoint filter resampled the file's patch embedding and positions to the model's sizes, so the
    strict load passed and a ViT of other patches trained as if it were the one named."""
    path = tmp_path / ("patch8.pt" if "patch_size" in other else "img192.pt")
    torch.save(timm.create_model(TIMM_MODEL, pretrained=False, num_classes=0, **other).state_dict(), path)
    with pytest.raises(SupraUserError, match=message):
        VLMNano(**TINY_NET, encoder="pretrained", pretrained={"model": TIMM_MODEL, "weights": str(path)})


def test_a_pretrained_encoder_without_its_weights_file_is_refused_unless_rebuilt_from_saved_weights(tmp_path):
    """model.net.encoder=pretrained set by key (not the model/encoder group, whose weights are ???) trained a
    frozen, randomly initialised tower without a word."""
    message = r"encoder=pretrained needs the tower's weights file: choose model/encoder=pretrained model.net.pretrained.weights="
    with pytest.raises(SupraUserError, match=message):  # train.py says it too (test_train_and_evaluate.py)
        VLMNano(**TINY_NET, encoder="pretrained", pretrained={"model": TIMM_MODEL})
    # a saved captioner's weights are loaded into the rebuilt model: the file is not needed, nor read if named
    for pretrained in ({"model": TIMM_MODEL}, {"model": TIMM_MODEL, "weights": str(tmp_path / "moved.safetensors")}):
        VLMNano(**TINY_NET, encoder="pretrained", pretrained=pretrained, rebuilt=True)


@pytest.mark.parametrize(("setting", "message"), [
    ({"vit": {"layers": 4}}, r"model.net.vit.layers=4: a setting of encoder=vit, but the encoder is cnn: choose "
                             r"model/encoder=vit, or leave it out$"),
    ({"encoder": "vit", "pretrained": {"weights": "/data/clip.bin", "trainable_blocks": 2}},
     r"model.net.pretrained.weights=/data/clip.bin model.net.pretrained.trainable_blocks=2: a setting of "
     r"encoder=pretrained, but the encoder is vit: choose model/encoder=pretrained, or leave them out$"),
    ({"encoder": "vit", "vit": TINY_VIT, "encoder_activation": "gelu", "channels_last": True},
     r"^model.net.encoder_activation=gelu model.net.channels_last=true: a setting of encoder=cnn, but the encoder is "
     r"vit: choose model/encoder=cnn, or leave them out$"),
    ({"cross_attention_every": 2}, r"^model.net.cross_attention_every=2: a setting of fusion=cross_attention, but the "
                                   r"fusion is prefix: choose model/fusion=cross_attention, or leave it out$"),
])
def test_a_setting_of_an_encoder_or_fusion_not_chosen_is_refused(setting, message):
    """It changed nothing: `+model.net.vit.layers=4` trained the CNN as if it had not been given; a ViT's
    `encoder_activation=gelu` was recorded in its folder, and a fine-tune from it with the default refused."""
    with pytest.raises(SupraUserError, match=message):
        VLMNano(**TINY_NET, **setting)


def test_learned_positions_held_as_plain_parameters_decay_and_embedding_tables_do_not(tower_weights):
    """What conf/model/vlm_nano.yaml says of weight_decay, exactly (the trained results have it so: not changed)."""
    def decayed(net: VLMNano) -> set[str]:
        names = {id(p): n for n, p in net.named_parameters()}
        return {names[id(p)] for p in net.optimizer_groups(0.01)[0]["params"]}

    vit = decayed(captioner("vit", "cross_attention", tower_weights, resampler_layers=1))
    assert {"vis_enc.features.pos", "vis_enc.resampler.latents"} <= vit
    assert not {"tok_emb.weight", "pos_emb.weight", "vis_pos.weight"} & vit
    tower = captioner("pretrained", "prefix", tower_weights,
                      pretrained={"model": TIMM_MODEL, "weights": str(tower_weights), "trainable_blocks": -1})
    assert {"vis_enc.features.backbone.pos_embed", "vis_enc.features.backbone.cls_token"} <= decayed(tower)


def test_data_follow_the_towers_input_size_and_normalisation(tower_weights):
    task = CaptioningTask(captioner("pretrained", "prefix", tower_weights), optimizer=None)
    settings = task.data_settings()
    assert (settings["image_size"], settings["image_mean"], settings["image_std"]) == (160, [0.5] * 3, [0.5] * 3)
    data = ShapesDataModule(num_train=8, num_val=4, num_test=4, batch_size=4, **{**settings, "vocab_size": 2048})
    data.setup("fit")
    batch = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert batch["images"].shape[-2:] == (160, 160)
    assert batch["images"].min() >= -1.0 and batch["images"].max() <= 1.0  # (x - 0.5) / 0.5, not ImageNet's


# -- training and saving ----------------------------------------------------------------------------

SMALL_RUN = [*TINY_RUN, "model.net.D_MODEL=32", "model.net.N_HEADS=2", "model.net.N_LAYERS=2", "model.net.D_FF=64",
             "model.net.VIS_CH=16", "model.test_metrics=[Bleu,CIDEr]"]


def architecture(encoder: str, fusion: str, weights: Path) -> list[str]:
    """The overrides that choose an encoder and a fusion, the encoder small (a timm test tower for pretrained)."""
    sizes = {"cnn": [], "vit": ["model.net.vit.width=16", "model.net.vit.layers=1", "model.net.vit.heads=2"],
             "pretrained": [f"model.net.pretrained.model={TIMM_MODEL}", f"model.net.pretrained.weights={weights}"]}
    return [f"model/encoder={encoder}", f"model/fusion={fusion}", *sizes[encoder]]


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_encoder_and_fusion_trains_with_fast_dev_run(encoder, fusion, tower_weights, tmp_path):
    cfg = compose_config("train", tmp_path / "run", [*SMALL_RUN, *architecture(encoder, fusion, tower_weights),
                                                     "debug=fast_dev_run"])
    _, metrics = train(cfg)
    assert {"train/loss", "val/loss", "test/CIDEr", "test/attr_acc", "test/relation_acc"} <= set(metrics)
    assert (tmp_path / "run" / "attention_maps.png").is_file()  # cross-attention maps too


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory) -> Path:
    """A few steps of a non-release architecture (ViT, resampler, cross-attention) with its checkpoint."""
    out = tmp_path_factory.mktemp("vit") / "run"
    train(compose_config("train", out, [*SMALL_RUN, *architecture("vit", "cross_attention", Path()),
                                        "model.net.resampler_layers=1", "callbacks.attention_maps=null"]))
    return out


def test_a_non_release_architecture_saves_a_folder_that_reads_back(vit_run, tmp_path):
    ckpt = vit_run / "checkpoints" / "best.ckpt"
    run_command("export", f"ckpt={ckpt}", f"out={tmp_path / 'folder'}")
    folder = tmp_path / "folder"
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "config.json").read_text())
    assert (config["encoder"], config["fusion"], config["resampler_layers"]) == ("vit", "cross_attention", 1)
    assert "vit encoder, 16 resampled visual tokens, cross_attention fusion" in (folder / "README.md").read_text()
    from_ckpt, tokenizer, _ = load_captioner(ckpt)
    from_folder, _, _ = load_captioner(folder)
    images = torch.randn(4, 3, 112, 112)
    assert beam_search(from_folder, images, BOS, EOS) == beam_search(from_ckpt, images, BOS, EOS)
    evaluate(compose_config("eval", tmp_path / "eval", [f"ckpt={folder}", "data=shapes", "data.num_test=15",
                                                         "data.num_train=96", "data.num_val=24"]))
    from_folder, from_run = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "eval", vit_run))
    assert round(from_folder["CIDEr"], 6) == round(from_run["CIDEr"], 6)
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "photos" / "red.jpg")
    run_command("caption", f"ckpt={folder}", f"images={tmp_path / 'photos'}", f"out={tmp_path / 'out'}")
    assert json.loads((tmp_path / "out" / "captions.jsonl").read_text())["file"].endswith("red.jpg")


def test_a_gelu_encoder_exports_as_a_supra_folder_that_reads_back_as_gelu(trained_run, tmp_path):
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["net"]["encoder_activation"] = "gelu"  # same weights, other model
    torch.save(checkpoint, tmp_path / "gelu.ckpt")
    run_command("export", f"ckpt={tmp_path / 'gelu.ckpt'}", f"out={tmp_path / 'folder'}")
    assert json.loads((tmp_path / "folder" / "config.json").read_text())["encoder_activation"] == "gelu"
    card = (tmp_path / "folder" / "README.md").read_text()
    assert "SupraVL-Nano-900k" not in card  # the published inference code would build it with ReLU
    (from_ckpt, _, _), (from_folder, _, _) = load_captioner(tmp_path / "gelu.ckpt"), load_captioner(tmp_path / "folder")
    assert from_folder.config.encoder_activation == "gelu"
    images = torch.randn(2, 3, 112, 112)
    tokens = torch.full((2, 1), BOS)
    assert torch.equal(from_folder(images, tokens)[0], from_ckpt(images, tokens)[0])
    # fine-tuning a ReLU model from it names the setting that differs, not two identical descriptions
    cfg = compose_config("train", tmp_path / "run", [*SMALL_RUN, f"model.init_from={tmp_path / 'folder'}"])
    with pytest.raises(SupraUserError, match=r"encoder_activation=gelu there, relu here\): choose the same model.net"):
        train(cfg)


def test_settings_of_an_encoder_or_fusion_not_chosen_that_an_older_supra_saved_are_dropped_on_loading(vit_run, tmp_path):
    """A ViT run given encoder_activation=gelu or channels_last=true (read only by the CNN) was saved with them: its
    checkpoint and folder load as the model they are, and compare equal to one without them."""
    from supra.artifacts.captioner_release import architecture_differences, release_net_config

    checkpoint = torch.load(vit_run / "checkpoints" / "best.ckpt", weights_only=False)
    checkpoint["supra"]["run_config"]["model"]["net"] |= {"encoder_activation": "gelu", "channels_last": True}
    torch.save(checkpoint, tmp_path / "older.ckpt")
    (older, _, _), (plain, _, _) = load_captioner(tmp_path / "older.ckpt"), load_captioner(vit_run / "checkpoints" / "best.ckpt")
    assert older.config == plain.config
    folder_config = {**TINY_NET, "encoder": "vit", "vit": TINY_VIT, "encoder_activation": "gelu",
                     "cross_attention_every": 2}  # a prefix ViT's config.json as an older export wrote it
    fresh = VLMNano(**TINY_NET, encoder="vit", vit=TINY_VIT).config
    assert architecture_differences(release_net_config(folder_config), fresh) == []


def test_a_folder_given_to_another_architecture_is_one_line(vit_run, tmp_path):
    run_command("export", f"ckpt={vit_run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'folder'}")
    cfg = compose_config("train", tmp_path / "run", [*SMALL_RUN, f"model.init_from={tmp_path / 'folder'}"])
    with pytest.raises(SupraUserError, match=r"holds a captioner with vit encoder, 16 resampled visual tokens, "
                                             r"cross_attention fusion.*this model has cnn encoder, 16 pooled visual "
                                             r"tokens, prefix fusion"):
        train(cfg)
    # a size that differs too is named with the rest, not on the next try
    cfg = compose_config("train", tmp_path / "run2", [*SMALL_RUN, f"model.init_from={tmp_path / 'folder'}",
                                                       "model.net.N_VIS=4"])
    with pytest.raises(SupraUserError, match=r"\(N_VIS=16 there, 4 here, encoder=vit there, cnn here, "):
        train(cfg)


def test_a_folder_of_another_architecture_names_every_setting_to_give_in_one_try(vit_run, tmp_path):
    """The ViT's sizes off model/encoder=vit's (vit_run's: width 16, 1 layer, 2 heads) are named with the group: the
    line named the group alone, which brings the ViT's default sizes, and the next try then named the sizes."""
    from omegaconf import OmegaConf

    from supra.artifacts.captioner_release import build_captioner, load_release_weights

    run_command("export", f"ckpt={vit_run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'folder'}")
    cfg = compose_config("train", tmp_path / "run", [*SMALL_RUN, f"model.init_from={tmp_path / 'folder'}"])
    with pytest.raises(SupraUserError, match=r"choose the same model.net settings: give model/encoder=vit "
                                             r"model/fusion=cross_attention model.net.resampler_layers=1 "
                                             r"model.net.vit.heads=2 model.net.vit.layers=1 model.net.vit.width=16, "
                                             r"or a folder of this architecture$") as refused:
        load_release_weights(build_captioner(OmegaConf.to_container(cfg.model.net)), tmp_path / "folder")  # a CNN
    given = str(refused.value).partition(": give ")[2].removesuffix(", or a folder of this architecture").split()
    again = compose_config("train", tmp_path / "again", [*SMALL_RUN, *given, f"model.init_from={tmp_path / 'folder'}"])
    load_release_weights(build_captioner(OmegaConf.to_container(again.model.net)), tmp_path / "folder")  # one try


def test_a_setting_that_only_one_of_two_models_reads_is_not_named_among_their_differences():
    """init_from a cross-attention folder into a prefix run named "cross_attention_every=2 there, 1 here": a
    setting the prefix model cannot have; `fusion` says what differs. Where both read it, it is named."""
    from supra.artifacts.captioner_release import model_differences
    from supra.models.vlm_nano import VLMNanoConfig

    every_2 = VLMNanoConfig(**TINY_NET, fusion="cross_attention", cross_attention_every=2)
    assert model_differences(every_2, VLMNanoConfig(**TINY_NET)) == [("fusion", "cross_attention", "prefix")]
    assert model_differences(every_2, VLMNanoConfig(**TINY_NET, fusion="cross_attention")) == [
        ("cross_attention_every", 2, 1)]


def test_resuming_a_checkpoint_of_another_architecture_is_one_line_naming_every_setting_to_give(vit_run, tmp_path):
    """The ViT's sizes off model/encoder=vit's (vit_run's: width 16, 1 layer, 2 heads) are named with it: the line
    named the group alone, and the next try then named the sizes."""
    from omegaconf import OmegaConf

    from supra.artifacts.captioner_release import model_differences, saved_net_config
    from supra.models.vlm_nano import VLMNanoConfig

    ckpt = vit_run / "checkpoints" / "last.ckpt"
    cfg = compose_config("train", tmp_path / "run", [*SMALL_RUN, f"ckpt_path={ckpt}"])
    with pytest.raises(SupraUserError, match=r"last.ckpt was trained with model.net.encoder=vit model.net.fusion="
                                             r"cross_attention model.net.resampler_layers=1, this run sets "
                                             r"model.net.encoder=cnn model.net.fusion=prefix model.net.resampler_layers=0: "
                                             r"a resumed run goes on with its checkpoint's model, so resume with its "
                                             r"settings: give model/encoder=vit model/fusion=cross_attention "
                                             r"model.net.resampler_layers=1 model.net.vit.heads=2 model.net.vit.layers=1 "
                                             r"model.net.vit.width=16 \(or the study= variant it ran\)$") as refused:
        train(cfg)  # no override to drop: the CNN is the default config's
    given = str(refused.value).partition(": give ")[2].removesuffix(" (or the study= variant it ran)").split()
    again = compose_config("train", tmp_path / "again", [*SMALL_RUN, *given, f"ckpt_path={ckpt}"])
    saved = torch.load(ckpt, weights_only=False)["supra"]["run_config"]["model"]["net"]
    assert model_differences(VLMNanoConfig(**saved_net_config(saved)),
                             VLMNanoConfig(**saved_net_config(OmegaConf.to_container(again.model.net)))) == []  # one try


def test_a_refused_resume_says_to_drop_what_the_command_line_set_and_give_what_a_config_chose():
    """"Drop the override" only for a setting the command line holds; the encoder and fusion that the default config
    (or a study= variant) chose are given back by their config group, which brings their settings along."""
    from supra.artifacts.captioner_release import model_differences, settings_of_their_choices
    from supra.artifacts.checkpoints import refuse_changed_model
    from supra.models.vlm_nano import VLMNanoConfig
    from supra.tasks.captioning import CHOSEN_BY_GROUP

    differ = [("N_HEADS", 4, 8), ("encoder", "vit", "cnn")]
    with pytest.raises(SupraUserError, match=r"so resume with its settings: drop model.net.N_HEADS=8, give "
                                             r"model/encoder=vit \(or the study= variant it ran\)$"):
        refuse_changed_model("ckpt_path=x.ckpt", differ, given={"N_HEADS"}, groups=CHOSEN_BY_GROUP)
    with pytest.raises(SupraUserError, match=r"so resume with its settings: give model.net.N_HEADS=4$"):
        refuse_changed_model("ckpt_path=x.ckpt", differ[:1], groups=CHOSEN_BY_GROUP)
    with pytest.raises(SupraUserError, match=r"so resume with its settings \(drop the overrides\)$"):
        refuse_changed_model("ckpt_path=x.ckpt", differ, given={"N_HEADS", "encoder"}, groups=CHOSEN_BY_GROUP)
    # a setting only the checkpoint's choice reads, off what that choice's config gives, is given along with it
    theirs, ours = VLMNanoConfig(fusion="cross_attention", cross_attention_every=2), VLMNanoConfig()
    with pytest.raises(SupraUserError, match=r"give model/fusion=cross_attention model.net.cross_attention_every=2 "
                                             r"\(or the study= variant it ran\)$"):
        refuse_changed_model("ckpt_path=x.ckpt", model_differences(theirs, ours), groups=CHOSEN_BY_GROUP,
                             along=settings_of_their_choices(theirs, ours))


@pytest.mark.parametrize(("trained_with", "override"), [("model.net.N_HEADS=4", "model.net.N_HEADS=8"),
                                                        ("model.net.encoder_activation=relu", "model.net.encoder_activation=gelu")])
def test_resuming_with_settings_that_make_another_model_of_the_same_shapes_is_one_line(trained_run, trained_with, override,
                                                                                      tmp_path):
    """The weights' shapes let these through: the run went on training the checkpoint's weights as another model."""
    cfg = compose_config("train", tmp_path / "run", [*TINY_RUN, f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
                                                      "trainer.max_steps=31", override])
    with pytest.raises(SupraUserError, match=rf"last.ckpt was trained with {trained_with}, this run sets {override}: a "
                                             r"resumed run goes on with its checkpoint's model, so resume with its "
                                             r"settings \(drop the override\)$"):
        train(cfg)


def test_resuming_a_vit_run_with_other_vit_heads_is_one_line(vit_run, tmp_path):
    cfg = compose_config("train", tmp_path / "run", [*SMALL_RUN, *architecture("vit", "cross_attention", Path()),
                                                      "model.net.resampler_layers=1", "model.net.vit.heads=4",
                                                      f"ckpt_path={vit_run / 'checkpoints' / 'last.ckpt'}"])
    with pytest.raises(SupraUserError, match=r"was trained with model.net.vit.heads=2, this run sets model.net.vit.heads=4"):
        train(cfg)


def test_resuming_a_tower_run_with_other_trainable_blocks_is_one_line_pointing_to_init_from(tower_run, tmp_path):
    """The optimizer's state is that of the parameters the checkpoint trained: torch refused with a traceback
    ('parameter group doesn't match'). Train frozen, then unfreeze, is a new run from the exported folder."""
    cfg = compose_config("train", tmp_path / "run", [*TOWER_RUN, f"ckpt_path={tower_run / 'run' / 'checkpoints' / 'last.ckpt'}",
                                                      "trainer.max_steps=4", "model.net.pretrained.trainable_blocks=1"])
    with pytest.raises(SupraUserError, match=r"last.ckpt was trained with model.net.pretrained.trainable_blocks=0, this "
                                             r"run sets 1: the checkpoint's optimizer state .* start a new run from it: "
                                             r"model.init_from=DIR model.net.pretrained.trainable_blocks=1$"):
        train(cfg)


TOWER_RUN = [*SMALL_RUN, "model/encoder=pretrained", f"model.net.pretrained.model={TIMM_MODEL}", "test=false",
             "callbacks.attention_maps=null", "trainer.val_check_interval=2"]


@pytest.fixture(scope="module")
def tower_run(tmp_path_factory, tower_weights) -> Path:
    """Two steps of a captioner over a frozen test_vit tower, exported to a folder; then the tower's weights
    file is gone (moved, deleted), as it may be by the time a run is resumed or fine-tuned."""
    out = tmp_path_factory.mktemp("tower")
    weights = out / "tower.safetensors"
    weights.write_bytes(tower_weights.read_bytes())
    train(compose_config("train", out / "run", [*TOWER_RUN, f"model.net.pretrained.weights={weights}", "trainer.max_steps=2"]))
    run_command("export", f"ckpt={out / 'run' / 'checkpoints' / 'last.ckpt'}", f"out={out / 'folder'}")
    weights.unlink()
    return out


def test_a_tower_run_resumes_and_fine_tunes_without_the_towers_file_and_may_unfreeze_it(tower_run, tmp_path):
    """The checkpoint and the folder hold the tower: its original file was demanded (???) and read again. How
    many of its blocks train is a training choice, not the architecture: train frozen, then unfreeze."""
    resumed, tuned = command_lines(
        [str(ROOT / "train.py"), *TOWER_RUN, f"ckpt_path={tower_run / 'run' / 'checkpoints' / 'last.ckpt'}",
         "trainer.max_steps=4", f"hydra.run.dir={tmp_path / 'resumed'}"],
        [str(ROOT / "train.py"), *TOWER_RUN, f"model.init_from={tower_run / 'folder'}", "trainer.max_steps=2",
         "model.net.pretrained.trainable_blocks=1", f"hydra.run.dir={tmp_path / 'tuned'}"], cwd=tmp_path)
    assert resumed.returncode == 0 and tuned.returncode == 0, (resumed.stderr[-1500:], tuned.stderr[-1500:])
    before = load_captioner(tower_run / "folder")[0].vis_enc.features.backbone
    after = load_captioner(tmp_path / "tuned" / "checkpoints" / "last.ckpt")[0].vis_enc.features.backbone
    assert torch.equal(after.patch_embed.proj.weight, before.patch_embed.proj.weight)  # the folder's, still frozen
    assert not torch.equal(after.blocks[-1].mlp.fc1.weight, before.blocks[-1].mlp.fc1.weight)  # unfrozen: trained
    assert json.loads((tower_run / "folder" / "config.json").read_text())["pretrained"] == {"model": TIMM_MODEL}


def test_a_folder_of_another_tower_setup_names_what_differs_and_not_the_weights_file(tower_run, tower_weights, tmp_path):
    cfg = compose_config("train", tmp_path / "run", [*TOWER_RUN, f"model.init_from={tower_run / 'folder'}",
                                                      f"model.net.pretrained.weights={tower_weights}",
                                                      "model.net.resampler_layers=1"])
    with pytest.raises(SupraUserError, match=r"\(resampler_layers=0 there, 1 here\): choose the same model.net") as err:
        train(cfg)
    assert "weights" not in str(err.value)  # never compared: the folder holds them


def test_release_architecture_exports_exactly_the_release_keys(trained_run, tmp_path):
    run_command("export", f"ckpt={trained_run / 'checkpoints' / 'best.ckpt'}", f"out={tmp_path / 'release'}")
    config = json.loads((tmp_path / "release" / "config.json").read_text())
    assert set(config) == {"D_MODEL", "N_HEADS", "N_LAYERS", "D_FF", "VIS_CH", "N_VIS", "VOCAB_SIZE", "MAX_SEQ", "IMG_SIZE",
                           "bos_token_id", "eos_token_id"}


@pytest.mark.parametrize("variants", [1, 2, 7])
def test_the_study_plots_legends_clear_of_the_axis_numbers_and_scores_from_zero(variants):
    """With two variants the legends sat on the x-axis numbers, and a study scoring 0 everywhere had axes
    from -0.06 to 0.06: negative scores, no bars."""
    import matplotlib.pyplot as plt

    from supra.sweeps.study import StudyRow, study_figure

    rows = [StudyRow(f"variant{i}", "cnn", 1000, 1000, 0.0, 0.0, 0.0, 0.0, 50.0 + i, 30.0, 3) for i in range(variants)]
    fig = study_figure(rows)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        page = fig.bbox
        for ax in fig.axes:
            assert ax.get_xlim()[0] == 0, ax.get_title()
            legend = ax.get_legend()
            if legend is None:
                continue
            box = legend.get_window_extent(renderer)
            numbers = [label.get_window_extent(renderer) for label in ax.get_xticklabels() if label.get_text()]
            assert numbers and not any(box.overlaps(number) for number in numbers), ax.get_title()
            assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0, ax.get_title()  # on the page
    finally:
        plt.close(fig)


def test_the_study_plots_accuracies_on_one_axis_from_0_to_1_whatever_they_are():
    """Plots of two studies compare: a study whose accuracies were all 0 got an axis of 0..0.06, one near 1 of 0..1.14."""
    import matplotlib.pyplot as plt

    from supra.sweeps.study import StudyRow, study_figure

    spans = []
    for accuracy in (0.0, 0.3, 0.994):
        fig = study_figure([StudyRow("release", "cnn", 1000, 1000, 5.0, 0.5, accuracy, accuracy, 50.0, 30.0, 3)])
        spans.append(fig.axes[1].get_xlim())
        plt.close(fig)
    assert spans[0] == spans[1] == spans[2] and spans[0][0] == 0 and spans[0][1] > 1  # 1 and room for the labels


def test_the_study_is_one_command_that_writes_a_table_and_a_plot(tmp_path):
    """`python train.py experiment=vlm_study` (two of its variants, a few steps), run where a user runs it:
    without a hydra.sweep.dir, so the sweep directory resolves from paths.* as in a real run. A study of
    fewer steps is another study: its table goes into its sweep directory, and docs/ is left alone."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "experiment=vlm_study", "study=release,nvis1", *TINY_RUN[:5],
         "trainer.max_steps=2", "trainer.val_check_interval=2", "model.test_metrics=[Bleu,CIDEr]",
         "callbacks.caption_grid=null", "callbacks.progress_bar=null"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (sweep,) = (tmp_path / "logs" / "study").iterdir()  # the sweep went where paths.log_dir says
    assert (sweep / "1" / "metrics.json").is_file() and not (tmp_path / "docs").exists()
    table = (sweep / "study.md").read_text()
    assert "| release | cnn encoder, 16 pooled visual tokens, prefix fusion, 3 x 128 decoder | 698,624 |" in table
    assert "| nvis1 | cnn encoder, 1 pooled visual tokens" in table
    assert "python train.py experiment=vlm_study study=release,nvis1 data.num_train=96" in table  # what ran
    rows = (sweep / "study.csv").read_text().splitlines()
    assert rows[0].startswith("variant,architecture,params,trainable_params,CIDEr,Bleu_4,attr_acc,relation_acc,")
    assert len(rows) == 3
    assert (sweep / "study.png").read_bytes()[:4] == b"\x89PNG"
    assert "docs/ left as it is, since data.num_train=96" in result.stdout + result.stderr
    # each job names the machine it measured its speeds on, and the table says it: rebuilt here later (another
    # thread count), the table still names the jobs' machine, and the command in the order the sweep was given
    machine = json.loads((sweep / "0" / "time_accounting.json").read_text())["machine"]
    assert f"Measured on: {machine}. " in table
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)  # the machine building the table is not the one the jobs ran on
    try:
        run_command("study_report", f"dir={sweep}", f"out={tmp_path / 'rebuilt'}")
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "rebuilt" / "study.csv").read_text() == (sweep / "study.csv").read_text()
    assert "`python train.py experiment=vlm_study study=release,nvis1 data.num_train=96" in (
        tmp_path / "rebuilt" / "study.md").read_text()


def test_only_the_study_as_documented_replaces_the_one_in_docs():
    from supra.sweeps.study import other_settings

    assert other_settings(["experiment=vlm_study", "study=pretrained", "model.net.pretrained.weights=/w.bin"]) == []
    assert other_settings(["experiment=vlm_study", "trainer.max_steps=2", "study=release"]) == ["trainer.max_steps=2"]


def test_settings_that_change_no_result_leave_a_study_the_documented_one():
    """Where caches and logs go and what is printed or logged change no score; anything that may (the worker
    count changes the shuffle: README, "What else a run depends on") still makes it another study."""
    from supra.sweeps.study import RECIPE, study_command

    harmless = ["paths.cache_dir=/fast", "callbacks.progress_bar=null", "~callbacks.model_summary", "logger=many",
                "logger.wandb.project=p", "paths.log_dir=/logs", "tags=[a]", "data.show_progress=false",
                "hydra.sweep.dir=/data/study", "paths=kaggle", "paths.data_dir=/d"]  # the study reads no data file
    for setting in harmless:
        assert study_command(["experiment=vlm_study", setting]) == (RECIPE, []), setting
    # a setting given counts even at the recipe's own value (seed=0): the command line is read, not the results
    for setting in ["data.num_workers=2", "callbacks.caption_grid=null", "data.eval_batch_size=4",
                    "callbacks.model_summary_extra=1", "hydra.sweep.subdir=x", "seed=0", "trainer.max_steps=1500"]:
        assert study_command(["experiment=vlm_study", setting])[1] == [setting]


def recipe_config(net: dict, **settings: Any) -> dict:
    """A study job's run config as Hydra records it: the recipe's settings (the release variant's; `settings`,
    by dotted key, in their place) and the model `net`."""
    from supra.sweeps.study import recipe_settings

    config: dict = {"model": {"net": net}}
    for key, value in {**recipe_settings("release"), **settings}.items():
        *parents, name = key.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = value
    return config


RECIPE_DECODING = {"strategy": "beam", "beam_width": 3, "length_penalty": 0.0, "max_new_tokens": None}


def write_study_job(job_dir: Path, overrides: list[str], net: dict, machine: str | None = None,
                    tested: bool = True, decoding: dict = RECIPE_DECODING, **settings: Any) -> None:
    """A finished study job as it lies on disk: its overrides, run config (the recipe's but for `settings`: see
    recipe_config), test metrics (captioned as `decoding` says) and step times (with the machine they were
    measured on; None: a run from before runs recorded it). `tested=False`: a job that stopped before its test
    (no metrics.json)."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job_dir / ".hydra" / "config.yaml").write_text(json.dumps(recipe_config(net, **settings)))
    if tested:
        (job_dir / "metrics.json").write_text(json.dumps({"CIDEr": 1.5, "Bleu_4": 0.5, "n_images": 15,
                                                          "decode": decoding["strategy"], "decode_settings": decoding}))
    times = {"seconds": {"train_steps": 2.0, "test_steps": 1.0}, "counts": {"train_steps": 30}}
    (job_dir / "time_accounting.json").write_text(json.dumps(times | ({"machine": machine} if machine else {})))


CAPTIONER_NET = {"_target_": "supra.models.vlm_nano.VLMNano", **TINY_NET}


def test_study_report_names_the_command_its_jobs_ran_and_says_when_it_is_not_the_documented_study(tmp_path, capsys):
    quick = ["data.num_train=96", "trainer.max_steps=30"]
    for job, variant in enumerate(("release", "nvis1")):
        write_study_job(tmp_path / "quick" / str(job), [f"study={variant}", *quick], CAPTIONER_NET)
    run_command("study_report", f"dir={tmp_path / 'quick'}", f"out={tmp_path / 'out'}")
    table = (tmp_path / "out" / "study.md").read_text()
    assert "`python train.py study=release,nvis1 data.num_train=96 trainer.max_steps=30`" in table
    assert ("Not the documented study (`python train.py experiment=vlm_study`): other settings "
            "(without experiment=vlm_study data.num_train=96 trainer.max_steps=30)") in table
    assert capsys.readouterr().err.startswith(f"warning: dir={tmp_path / 'quick'} is not the documented study")
    # the recipe itself, whichever variants ran, is named as the recipe, without a warning
    for job, variant in enumerate(("release", "nvis1")):
        write_study_job(tmp_path / "recipe" / str(job), ["experiment=vlm_study", f"study={variant}"], CAPTIONER_NET)
    run_command("study_report", f"dir={tmp_path / 'recipe'}", f"out={tmp_path / 'out'}")
    table = (tmp_path / "out" / "study.md").read_text()
    assert "same data, steps and seed: `python train.py experiment=vlm_study`" in table and "Not the" not in table
    assert capsys.readouterr().err == ""


@pytest.fixture
def committed_docs(tmp_path, monkeypatch) -> Path:
    """A working folder whose docs/ holds the committed study (7 variants, 1,500 steps), where a user runs."""
    import shutil

    (tmp_path / "docs").mkdir()
    for name in ("study.md", "study.csv", "study.png"):
        shutil.copy(ROOT / "docs" / name, tmp_path / "docs" / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "docs"


def docs_bytes(docs: Path) -> dict[str, bytes]:
    return {name: (docs / name).read_bytes() for name in ("study.md", "study.csv", "study.png")}


def test_study_report_writes_a_quick_study_into_its_own_folder_and_leaves_docs_alone(committed_docs, tmp_path, capsys):
    """As the end of the study does: without out=, another study than the documented one goes into dir=."""
    before = docs_bytes(committed_docs)
    for job, variant in enumerate(("release", "resampler")):
        write_study_job(tmp_path / "quick" / str(job), ["experiment=vlm_study", f"study={variant}",
                                                        "trainer.max_steps=4"], CAPTIONER_NET)
    run_command("study_report", f"dir={tmp_path / 'quick'}")
    assert docs_bytes(committed_docs) == before
    assert "Not the documented study" in (tmp_path / "quick" / "study.md").read_text()
    assert (tmp_path / "quick" / "study.csv").read_text().count("\n") == 3
    assert capsys.readouterr().err == (
        f"dir={tmp_path / 'quick'} is not the documented study (python train.py experiment=vlm_study): it ran with "
        f"trainer.max_steps=4; its table is in {tmp_path / 'quick' / 'study.md'} and docs/ is left as it is\n")
    # out=docs, too, leaves the documented table as it is: its rows would pass for the study's
    with pytest.raises(SystemExit):
        run_command("study_report", f"dir={tmp_path / 'quick'}", "out=docs")
    assert docs_bytes(committed_docs) == before
    assert capsys.readouterr().err == (
        "error: out=docs holds the documented study's table, which a study run with trainer.max_steps=4 would "
        "replace: choose another out=DIR (or leave it out: dir=)\n")


def test_a_study_whose_jobs_ran_other_settings_than_the_recipe_leaves_docs_alone_whatever_its_command_line(
        committed_docs, tmp_path, capsys):
    """A recipe edited in the user's clone (3 steps, beam width 2) reaches no command line: what the jobs ran, their
    .hydra/config.yaml, is compared with the recipe, and a study that differs is another study, named as such."""
    before = docs_bytes(committed_docs)
    sweep = tmp_path / "edited"
    for job, variant in enumerate(("release", "nvis1")):
        write_study_job(sweep / str(job), ["experiment=vlm_study", f"study={variant}"], CAPTIONER_NET,
                        **{"trainer.max_steps": 3, "model.decode.beam_width": 2})
    given = ["experiment=vlm_study", "study=release,nvis1"]
    (sweep / "multirun.yaml").write_text(json.dumps({"hydra": {"overrides": {"hydra": [], "task": given}}}))
    run_command("study_report", f"dir={sweep}")
    assert docs_bytes(committed_docs) == before
    assert capsys.readouterr().err == (
        f"dir={sweep} is not the documented study (python train.py experiment=vlm_study): it ran with "
        f"trainer.max_steps=3 model.decode.beam_width=2; its table is in {sweep / 'study.md'} and docs/ is left "
        "as it is\n")
    assert ("Not the documented study (`python train.py experiment=vlm_study`): other settings "
            "(trainer.max_steps=3 model.decode.beam_width=2).") in (sweep / "study.md").read_text()


def test_the_end_of_a_study_whose_jobs_ran_other_settings_than_the_recipe_warns_and_leaves_docs_alone(
        tmp_path, caplog):
    from omegaconf import OmegaConf

    from supra.sweeps.study import StudyReport

    sweep = tmp_path / "sweep"
    write_study_job(sweep / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET, **{"data.num_train": 32})
    config = OmegaConf.create({"hydra": {"overrides": {"task": ["experiment=vlm_study", "study=release"]},
                                         "sweep": {"dir": str(sweep)}}})
    with caplog.at_level(logging.WARNING):
        StudyReport(str(tmp_path / "docs")).on_multirun_end(config)
    assert not (tmp_path / "docs").exists() and (sweep / "study.md").is_file()
    assert [r.getMessage() for r in caplog.records] == [
        f"study (1 variant) in {sweep / 'study.md'}; {tmp_path / 'docs'}/ left as it is, since data.num_train=32 "
        "changes the study (its rows are no rows of the documented table)"]


def test_study_report_names_the_machine_each_job_measured_its_speeds_on_not_the_one_building_it(tmp_path):
    """A study trained on one machine and reported on another (or with other threads) says where it trained,
    read from each job's time_accounting.json; a run that recorded none is said to be of an unknown machine."""
    import csv

    from supra.utils.hardware import cpu_description

    trained_on = "AMD EPYC, AVX-512, bf16 native, 2 threads"
    assert cpu_description() != trained_on  # this test's own threads: one (its conftest fixture) or the machine's
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET, trained_on)
    write_study_job(tmp_path / "sweep" / "1", ["experiment=vlm_study", "study=nvis1"], CAPTIONER_NET)  # an old run
    run_command("study_report", f"dir={tmp_path / 'sweep'}", f"out={tmp_path / 'out'}")
    with (tmp_path / "out" / "study.csv").open(newline="") as file:
        assert [(r["variant"], r["measured_on"]) for r in csv.DictReader(file)] == [("release", trained_on),
                                                                                   ("nvis1", "")]
    assert (f"Measured on: {trained_on} (release); an unknown machine (its run recorded none) (nvis1). "
            in (tmp_path / "out" / "study.md").read_text())


def test_study_md_names_the_decoding_each_job_recorded_and_each_variants_where_they_differ(tmp_path):
    """The scores' decoding was always said to be "beam search, width 3", whatever the jobs ran."""
    import csv

    narrow = {**RECIPE_DECODING, "beam_width": 2}
    greedy = {"strategy": "greedy", "max_new_tokens": None}
    for job, (variant, used) in enumerate([("release", narrow), ("nvis1", greedy), ("vit", narrow)]):
        write_study_job(tmp_path / "mixed" / str(job), ["experiment=vlm_study", f"study={variant}"], CAPTIONER_NET,
                        decoding=used)
    run_command("study_report", f"dir={tmp_path / 'mixed'}", f"out={tmp_path / 'out'}")
    assert "Scores are the test split's (beam search, width 2: release, vit; greedy: nvis1). " in (
        tmp_path / "out" / "study.md").read_text()
    with (tmp_path / "out" / "study.csv").open(newline="") as file:
        assert [r["decoding"] for r in csv.DictReader(file)] == ["beam search, width 2", "greedy",
                                                                "beam search, width 2"]
    write_study_job(tmp_path / "narrow" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET,
                    decoding={**narrow, "length_penalty": 0.6})
    run_command("study_report", f"dir={tmp_path / 'narrow'}", f"out={tmp_path / 'narrow'}")
    assert "Scores are the test split's (beam search, width 2, length penalty 0.6). " in (
        tmp_path / "narrow" / "study.md").read_text()


def test_a_study_stopped_half_way_names_the_variants_without_results_and_the_command_as_given(tmp_path):
    """Hydra saves the command's overrides in multirun.yaml, while each job's own list puts the sweeper's
    parameters (study=) first: the table names the command as it was typed, and the variants whose jobs have
    no test results (failed, interrupted or still running) rather than leaving them out silently."""
    sweep = tmp_path / "sweep"
    given = ["experiment=vlm_study", "study=release,nvis1,vit,resampler", "trainer.max_steps=4"]
    for job, variant in enumerate(("release", "nvis1", "vit", "resampler")):
        write_study_job(sweep / str(job), [f"study={variant}", "experiment=vlm_study", "trainer.max_steps=4"],
                        CAPTIONER_NET, tested=variant != "nvis1")
    (sweep / "3" / "metrics.json").write_text('{"CIDEr": ')  # its test stopped while writing it
    (sweep / "multirun.yaml").write_text(json.dumps({"hydra": {"overrides": {"hydra": [], "task": given}}}))
    run_command("study_report", f"dir={sweep}")
    table = (sweep / "study.md").read_text()
    assert "`python train.py experiment=vlm_study study=release,nvis1,vit,resampler trainer.max_steps=4`" in table
    assert ("No test results (failed, interrupted or still running): nvis1 (no metrics.json), resampler "
            "(metrics.json cut short).") in table  # what each job's folder holds
    assert "| release |" in table and "| vit |" in table and "| nvis1 |" not in table and "| resampler |" not in table


def test_a_documented_study_of_some_variants_updates_their_rows_in_docs_and_keeps_the_others(committed_docs, tmp_path):
    """A study of some variants (here the release's and the tower's) replaces their rows and adds the new one:
    the committed rows of the variants it did not run stay, in their order, with their machine."""
    import csv

    def table() -> list[dict[str, str]]:
        with (committed_docs / "study.csv").open(newline="") as file:
            return list(csv.DictReader(file))

    before = table()
    trained_on = "Intel Xeon, AVX2 only (no AVX-512), bf16 emulated, 4 threads"
    for job, variant in enumerate(("release", "pretrained")):
        write_study_job(tmp_path / "some" / str(job), ["experiment=vlm_study", f"study={variant}",
                                                       "paths.cache_dir=/fast"], CAPTIONER_NET, trained_on)
    run_command("study_report", f"dir={tmp_path / 'some'}")
    after = table()
    assert [r["variant"] for r in after] == [r["variant"] for r in before] + ["pretrained"]
    assert after[1:7] == before[1:7]
    assert after[0]["CIDEr"] == after[7]["CIDEr"] == "1.5" and after[0]["measured_on"] == trained_on
    md = (committed_docs / "study.md").read_text()
    assert ("Rows run by the latest study: release, pretrained; kept from the table before it: nvis1, nvis4, vit, "
            "cross_attention, resampler, decoder6.") in md
    assert md.count("\n| ") == 9 and "Not the documented" not in md  # header and 8 rows
    measured = next(line for line in md.splitlines() if line.startswith("Measured on: "))
    assert trained_on in measured and before[1]["measured_on"] in measured  # each row's machine


def test_the_end_of_a_documented_study_run_with_harmless_settings_updates_docs(tmp_path):
    """StudyReport, as Hydra calls it when the multirun ends: a study of the documented settings (a cache
    elsewhere, no progress bar) is the documented one, so docs/ gets it; one of fewer steps does not."""
    from omegaconf import OmegaConf

    from supra.sweeps.study import StudyReport

    sweep = tmp_path / "sweep"
    write_study_job(sweep / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)

    def end(*overrides: str, out: str) -> None:
        config = OmegaConf.create({"hydra": {"overrides": {"task": ["experiment=vlm_study", "study=release",
                                                                    *overrides]}, "sweep": {"dir": str(sweep)}}})
        StudyReport(str(tmp_path / out)).on_multirun_end(config)

    end("paths.cache_dir=/fast", "callbacks.progress_bar=null", out="docs")
    assert "`python train.py experiment=vlm_study`" in (tmp_path / "docs" / "study.md").read_text()
    end("trainer.max_steps=4", out="quick_docs")
    assert not (tmp_path / "quick_docs").exists()


def test_a_study_with_a_failed_variant_still_has_the_table_of_the_finished_ones_and_says_how_to_put_it_in_docs(
        tmp_path, caplog):
    """A grid stops after a batch with a failed job, raising its error, so the multirun's end never comes: the
    table is written after every job, so the finished variants' rows are there, the failed one named."""
    from hydra.core.utils import JobReturn, JobStatus

    from supra.sweeps.study import StudyReport

    sweep = tmp_path / "sweep"
    write_study_job(sweep / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    write_study_job(sweep / "1", ["experiment=vlm_study", "study=vit"], CAPTIONER_NET, tested=False)
    given = ["experiment=vlm_study", "study=release,vit"]
    (sweep / "multirun.yaml").write_text(json.dumps({"hydra": {"overrides": {"hydra": [], "task": given}}}))
    config = compose_config("train", sweep / "1", [*given[:1], "study=vit", f"hydra.sweep.dir={sweep}"])
    with caplog.at_level(logging.WARNING):
        StudyReport("docs").on_job_end(config, JobReturn(status=JobStatus.FAILED, _return_value=ValueError("heads")))
    table = (sweep / "study.md").read_text()
    assert "| release |" in table and "No test results (failed, interrupted or still running): vit (no metrics.json)." \
        in table
    assert caplog.messages == [
        f"a study job failed: the study so far (1 variant) is in {sweep / 'study.md'}; docs/ is left as it is until "
        f"the study ends, or `python -m supra.study_report dir={sweep}` puts its rows there"]


def test_study_report_of_the_documented_study_run_outside_the_repository_root_is_refused_not_a_new_docs(
        tmp_path, monkeypatch, capsys):
    """Run from a folder without docs/study.md, it made a docs/ there without a word, and the repository's table
    stayed as it was."""
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(SystemExit):
        run_command("study_report", f"dir={tmp_path / 'sweep'}")
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'elsewhere'} has no docs/study.md, where the documented study's rows are merged: run "
        "this from the repository's root (the folder holding train.py), or give out=DIR\n")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_study_report_ends_with_a_line_saying_where_it_wrote_the_table(committed_docs, tmp_path, capsys):
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    run_command("study_report", f"dir={tmp_path / 'sweep'}")
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote study.csv, study.md, study.png into {committed_docs}"
    write_study_job(tmp_path / "quick" / "0", ["experiment=vlm_study", "study=release", "seed=1"], CAPTIONER_NET)
    run_command("study_report", f"dir={tmp_path / 'quick'}")
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote study.csv, study.md, study.png into {tmp_path / 'quick'}"


def test_a_table_that_is_no_study_csv_is_named_in_one_line_rather_than_merged(committed_docs, tmp_path, capsys):
    (committed_docs / "study.csv").write_text("name,score\nx,1\n")
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    with pytest.raises(SystemExit):
        run_command("study_report", f"dir={tmp_path / 'sweep'}")
    assert capsys.readouterr().err == (
        "error: docs/study.csv: cannot read the study table there (column 'name' is not one of study.csv's); the "
        "documented study's rows are merged into it by variant: move it away to write a new table\n")


def refused_study_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> str:
    """study_report of tmp_path/sweep, which must refuse it and write nothing: what it printed."""
    with pytest.raises(SystemExit):
        run_command("study_report", f"dir={tmp_path / 'sweep'}", f"out={tmp_path / 'out'}")
    assert not (tmp_path / "out").exists()
    return capsys.readouterr().err


def test_study_report_refuses_a_sweep_holding_a_job_that_is_no_captioner_in_one_line(tmp_path, capsys):
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    write_study_job(tmp_path / "sweep" / "1", ["experiment=a2a_shapes"],
                    {"_target_": "supra.models.a2a_nano.A2ANano.from_kwargs", "context": 48})
    assert refused_study_report(tmp_path, capsys) == (
        f"error: job {tmp_path / 'sweep' / '1'} is not a captioner run (model.net is supra.models.a2a_nano.A2ANano"
        ".from_kwargs): study_report reads the jobs of a captioner study (python train.py experiment=vlm_study); "
        "give that sweep as dir=\n")


def test_study_report_refuses_a_sweep_whose_jobs_ran_no_study_variant_in_one_line(tmp_path, capsys):
    """A grid over another setting (-m model.net.dropout=0.0,0.1) is no study: its job numbers are no variants."""
    for job, dropout in enumerate(("0.0", "0.1")):
        write_study_job(tmp_path / "sweep" / str(job), [f"model.net.dropout={dropout}"], CAPTIONER_NET)
    assert refused_study_report(tmp_path, capsys) == (
        f"error: job {tmp_path / 'sweep' / '0'} has no study= override: study_report reads the jobs of a study's "
        "sweep (python train.py experiment=vlm_study, or python train.py -m study=release,nvis1 ...); give that "
        "sweep as dir=\n")


@pytest.mark.parametrize(("name", "content", "holds"), [
    ("metrics.json", "[1]", "list [1]"), ("time_accounting.json", '"x"', 'str "x"'),
    (".hydra/config.yaml", "- 1\n", "list [1]"),
])
def test_study_report_names_a_damaged_job_file_in_one_line(tmp_path, capsys, name, content, holds):
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    (tmp_path / "sweep" / "0" / name).write_text(content)
    error = refused_study_report(tmp_path, capsys)
    assert error.startswith(f"error: {tmp_path / 'sweep' / '0' / name} is not ") and error.count("\n") == 1
    assert f"(it holds {holds}): move it away to report the job without it, or restore it\n" in error


@pytest.mark.parametrize(("key", "value"), [("CIDEr", "n/a"), ("attr_acc", [0.5]), ("n_images", "15")])
def test_study_report_names_a_score_that_is_no_number_in_one_line_and_writes_nothing(tmp_path, capsys, key, value):
    """A score edited to "n/a" went into study.csv and study.md, then stopped the plot with a traceback."""
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    write_study_job(tmp_path / "sweep" / "1", ["experiment=vlm_study", "study=nvis1"], CAPTIONER_NET)
    metrics = tmp_path / "sweep" / "1" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "relation_acc": None, key: value}))
    error = refused_study_report(tmp_path, capsys)
    assert error == (f"error: {metrics} is not a test's scores (a JSON object, as the run writes them) (its {key} is "
                     f"{json.dumps(value)}, not a number): move it away to report the job without it, or restore it\n")


@pytest.mark.parametrize(("key", "value"), [("seconds.train_steps", "2 s"), ("seconds.test_steps", [1.0]),
                                            ("counts.train_steps", "30"), ("seconds", [2.0])],
                         ids=["a unit", "a list", "a string", "no object"])
def test_study_report_names_a_step_time_that_is_no_number_in_one_line_and_writes_nothing(tmp_path, capsys, key, value):
    """A time edited to "2 s" stopped the report with a traceback where the speeds are divided out."""
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    times_file = tmp_path / "sweep" / "0" / "time_accounting.json"
    times = json.loads(times_file.read_text())
    part, _, entry = key.partition(".")
    if entry:
        times[part][entry] = value
    else:
        times[part] = value
    times_file.write_text(json.dumps(times))
    kind = "a number" if entry else "an object"
    assert refused_study_report(tmp_path, capsys) == (
        f"error: {times_file} is not a run's step times (a JSON object, as the run writes them) (its {key} is "
        f"{json.dumps(value)}, not {kind}): move it away to report the job without it, or restore it\n")


@pytest.mark.parametrize(("data", "why"), [
    ({"batch_size": "16x"}, 'its data.batch_size is "16x", not a number'),
    ({"batch_size": [16]}, "its data.batch_size is [16], not a number"),
    ({"batch_size": True}, "its data.batch_size is true, not a number"),
    (None, "it has no data: section"),
    ("shapes", "it has no data: section"),
], ids=["a unit", "a list", "a switch", "no data section", "data as a word"])
def test_study_report_names_a_batch_size_that_is_no_number_in_one_line_and_writes_nothing(tmp_path, capsys, data, why):
    """The job's data.batch_size goes into the training speed: "16x" or [16] stopped the report with a traceback in
    its division, true was taken as a batch of 1, and a config without its data: section was a bare KeyError."""
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    config_file = tmp_path / "sweep" / "0" / ".hydra" / "config.yaml"
    config = {"model": {"net": CAPTIONER_NET}} | ({"data": data} if data is not None else {})
    config_file.write_text(json.dumps(config))
    assert refused_study_report(tmp_path, capsys) == (
        f"error: {config_file} is not a job's config (a YAML mapping, as Hydra writes it) ({why}): move it away to "
        "report the job without it, or restore it\n")


def test_the_study_table_and_plot_are_replaced_together_or_not_at_all(tmp_path, capsys):
    """study.csv, study.md and study.png describe one study: a folder where one of them goes is named in one line
    before anything is written (it was a traceback), and leaves the earlier table whole, not a new table beside an
    old plot."""
    out = tmp_path / "out"
    (out / "study.md").mkdir(parents=True)
    (out / "study.csv").write_text("the earlier table\n")
    (out / "study.png").write_bytes(b"the earlier plot")
    write_study_job(tmp_path / "sweep" / "0", ["experiment=vlm_study", "study=release"], CAPTIONER_NET)
    with pytest.raises(SystemExit):
        run_command("study_report", f"dir={tmp_path / 'sweep'}", f"out={out}")
    assert capsys.readouterr().err == (f"error: out={out} holds a folder study.md where this run writes its file "
                                       "study.md: move the folder away or give another out= folder\n")
    assert (out / "study.csv").read_text() == "the earlier table\n"
    assert (out / "study.png").read_bytes() == b"the earlier plot"
    assert sorted(p.name for p in out.iterdir()) == ["study.csv", "study.md", "study.png"]  # no temp left


def test_a_release_config_json_names_its_settings_as_the_file_spells_them():
    """A release's config.json is checked with no prefix: its keys, not the command line's model.net.X."""
    from supra.models.vlm_nano import check_settings

    with pytest.raises(SupraUserError, match=r"^N_VIS=10 must be a square number .* resampler_layers > 0, takes"):
        check_settings({"N_VIS": 10}, prefix="")
