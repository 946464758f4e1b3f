"""SupraVL-Nano-900k: a CNN image encoder feeding 16 visual tokens to a 3-layer GPT captioner, and the
release card's roadmap around it (docs/architectures.md), each one config choice.

At the defaults every layer shape and state-dict name follows the release (docs/releases.md,
SupraVL-Nano-900k), so a checkpoint of this module loads into the release's inference code and back.
The roadmap: `encoder` cnn | vit | pretrained (timm, local weights), `resampler_layers` (a Perceiver
resampler to N_VIS tokens instead of pooling), `fusion` prefix | cross_attention (Flamingo's gated
layers), and the decoder's size through the release keys themselves. Read top to bottom: config,
encoder, model; the GPT blocks are models/gpt.py's.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from supra.models.cross_attention import GatedCrossAttentionBlock
from supra.models.gpt import (
    DROPOUT_RANGE,
    Block,
    BlockConfig,
    init_gpt_weights,
    run_blocks,
    weight_decay_groups,
)
from supra.models.image_input import ImageInput
from supra.models.kv_cache import KVCache
from supra.models.pretrained_encoder import PretrainedEncoder
from supra.models.resampler import PerceiverResampler
from supra.models.visual_tokens import VisualTokens
from supra.models.vit_encoder import ViTEncoder
from supra.utils.errors import SupraUserError
from supra.utils.numbers import is_number, is_whole, whole_hint

ENCODERS = ("cnn", "vit", "pretrained")
FUSIONS = ("prefix", "cross_attention")


@dataclass
class ViTSettings:
    """encoder=vit: patch side in pixels, blocks, width and heads of the patch encoder."""

    patch_size: int = 16
    layers: int = 2
    width: int = 128
    heads: int = 4


@dataclass
class PretrainedSettings:
    """encoder=pretrained: a timm architecture name and its local weights file (required, unless the model is
    rebuilt from a saved captioner, which brings the weights itself); trainable_blocks 0 frozen, -1 all, N the
    last N."""

    model: str = "vit_base_patch32_clip_224"
    weights: str | None = None
    trainable_blocks: int = 0


@dataclass
class VLMNanoConfig:
    """The release's config.json keys (upper case, as published) plus the choices the card leaves open."""

    D_MODEL: int = 128
    N_HEADS: int = 4
    N_LAYERS: int = 3
    D_FF: int = 256
    VIS_CH: int = 64
    N_VIS: int = 16
    VOCAB_SIZE: int = 2048
    MAX_SEQ: int = 48  # text positions, BOS and EOS included
    IMG_SIZE: int = 112
    # The card's diagram says GELU, its code ReLU; the code made the weights, so ReLU is the default.
    encoder_activation: str = "relu"
    dropout: float = 0.0
    # NHWC weights for the encoder: GPU tensor cores like it, CPUs gain nothing (README "Speed"). No effect
    # on values.
    channels_last: bool = False
    # The roadmap (docs/architectures.md). Any of these off its default is not the release architecture.
    encoder: str = "cnn"
    vit: ViTSettings = field(default_factory=ViTSettings)
    pretrained: PretrainedSettings = field(default_factory=PretrainedSettings)
    resampler_layers: int = 0  # 0: pool the encoder's grid to sqrt(N_VIS) a side; > 0: a Perceiver resampler
    fusion: str = "prefix"
    cross_attention_every: int = 1  # fusion=cross_attention: a gated layer before every k-th decoder block

    def __post_init__(self) -> None:
        check_settings({f.name: getattr(self, f.name) for f in fields(self)})
        self.vit = _settings(ViTSettings, self.vit, "vit")
        self.pretrained = _settings(PretrainedSettings, self.pretrained, "pretrained")
        if self.resampler_layers:  # the resampler works at the encoder's width, with the decoder's N_HEADS heads
            width, option = (self.vit.width, "vit.width") if self.encoder == "vit" else (self.VIS_CH, "VIS_CH")
            need = math.lcm(4, self.N_HEADS, self.vit.heads if self.encoder == "vit" else 1)
            if self.encoder != "pretrained" and width % need:  # a tower's width is checked once it is built
                raise SupraUserError(
                    f"model.net.{option}={width} must be divisible by {need} with resampler_layers="
                    f"{self.resampler_layers}: the resampler attends over the encoder's channels with the decoder's "
                    f"model.net.N_HEADS={self.N_HEADS} heads and gives them 2D positions in 4 parts; e.g. "
                    f"model.net.{option}={_multiple_above(width, need)}")
        # settings of an encoder or fusion not chosen, off their defaults: no part of this model would read them, so
        # the run would differ from the one asked for (and record them)
        unread = [("encoder", name, [f"model.net.{name}.{key}={value}" for key, value in asdict(getattr(self, name)).items()
                                     if value != getattr(default, key)])
                  for name, default in (("vit", ViTSettings()), ("pretrained", PretrainedSettings()))]
        unread += [(choice, owner, [f"model.net.{key}={json.dumps(value) if isinstance(value, bool) else value}"
                                    for key in keys if (value := getattr(self, key)) != getattr(VLMNanoConfig, key)])
                   for (choice, owner), keys in UNREAD_UNLESS.items()]
        for choice, owner, changed in unread:
            if getattr(self, choice) != owner and changed:
                them = "it" if len(changed) == 1 else "them"
                raise SupraUserError(f"{' '.join(changed)}: a setting of {choice}={owner}, but the {choice} is "
                                     f"{getattr(self, choice)}: choose model/{choice}={owner}, or leave {them} out")

    @property
    def release_config(self) -> dict[str, int]:
        """The keys of the release's config.json, exactly."""
        return {k: v for k, v in asdict(self).items() if k.isupper()}

    @property
    def is_release_architecture(self) -> bool:
        """The release's layers (any sizes of its keys): saved in the release format, else a Supra folder."""
        return (self.encoder == "cnn" and self.fusion == "prefix" and not self.resampler_layers
                and self.encoder_activation == "relu")  # the published code's (the inference snippet builds ReLU)

    @property
    def architecture(self) -> dict[str, object]:
        """The roadmap choices that differ from the release's, as plain data (config.json of a folder)."""
        default = VLMNanoConfig()
        keys = ["encoder", "encoder_activation", "resampler_layers", "fusion", "cross_attention_every"]
        choices = {k: getattr(self, k) for k in keys if getattr(self, k) != getattr(default, k)}
        if self.encoder == "vit":
            choices["vit"] = asdict(self.vit)
        if self.encoder == "pretrained":  # the tower's architecture: its weights come with the model, and how
            choices["pretrained"] = {"model": self.pretrained.model}  # many blocks train is a training choice
        return choices

    @property
    def n_prefix(self) -> int:
        """Positions before BOS in the decoder's sequence: the visual tokens with prefix fusion, else none."""
        return self.N_VIS if self.fusion == "prefix" else 0

    @property
    def block(self) -> BlockConfig:
        """The release's decoder block: no biases in attention, D_FF-wide exact-GELU MLP."""
        return BlockConfig(d_model=self.D_MODEL, n_heads=self.N_HEADS, d_mlp=self.D_FF, activation="gelu",
                           dropout=self.dropout, attn_bias=False, decode_with_matmul=True)


# Settings only one encoder or fusion reads: (choice, its value that reads them) -> them. The CNN's stages alone
# have an activation and a memory format; only gated cross-attention layers have a spacing.
UNREAD_UNLESS = {("encoder", "cnn"): ("encoder_activation", "channels_last"),
                 ("fusion", "cross_attention"): ("cross_attention_every",)}


# The least value of each whole-number setting, and why where it is not plain: below it a setting builds no
# model (a zero width divides by zero deep in torch) or one that never reads the image (no decoder block, no
# visual token: it trains, and captions every image alike).
_LEAST = {
    "D_MODEL": (1, ""), "N_HEADS": (1, ""),
    "N_LAYERS": (1, ": a decoder of no blocks never reads the image"), "D_FF": (1, ""),
    "VIS_CH": (4, " (stages use VIS_CH/4, VIS_CH/2)"),
    "N_VIS": (1, ": the visual tokens are all the decoder sees of the image (the release's: 16)"),
    "VOCAB_SIZE": (1, ""), "MAX_SEQ": (3, ": BOS, a token and EOS"), "IMG_SIZE": (1, ""),
    "resampler_layers": (0, " (0: pool the encoder's grid; N > 0: a Perceiver resampler of N layers)"),
    "cross_attention_every": (1, ""),
}
_VIT_LEAST = {"patch_size": (1, ""), "layers": (0, " (0: patch embeddings and positions alone)"), "width": (1, ""),
              "heads": (1, "")}
_PRETRAINED_WHOLE = {"trainable_blocks": (None, "")}  # the tower's blocks bound it (PretrainedEncoder checks)


def check_settings(settings: Mapping[str, object], prefix: str = "model.net.") -> None:
    """The types and least values of VLMNano's settings (a run's model.net, or with prefix "" a folder's
    config.json; a key left out keeps its default): one line naming `prefix` + the key otherwise, rather than a
    TypeError or ZeroDivisionError from deep inside the model, or a model that trains but cannot caption."""
    groups = {"": (settings, _LEAST)}
    for name, cls, least in (("vit", ViTSettings, _VIT_LEAST), ("pretrained", PretrainedSettings, _PRETRAINED_WHOLE)):
        given = settings.get(name, {})
        given = asdict(given) if is_dataclass(given) and not isinstance(given, type) else given
        if not isinstance(given, Mapping):
            raise SupraUserError(f"{prefix}{name}={given!r} must be a mapping of {name}'s settings "
                                 f"({', '.join(f.name for f in fields(cls))})")
        groups[f"{name}."] = (given, least)
    not_whole = [(f"{prefix}{group}{key}", value) for group, (given, least) in groups.items()
                 for key, value in given.items() if key in least and not is_whole(value)]
    if not_whole:  # 2.5, "2", true, 128.0: Python would take some of them, and torch fail on others far from here
        named = ", ".join(f"{key}={value!r}{whole_hint(value)}" for key, value in not_whole)
        raise SupraUserError(f"{named} must be {'a whole number' if len(not_whole) == 1 else 'whole numbers'}")
    for group, (given, least) in groups.items():
        for key, value in given.items():
            if key in least and least[key][0] is not None and value < least[key][0]:
                raise SupraUserError(f"{prefix}{group}{key}={value} must be >= {least[key][0]}{least[key][1]}")
    patch, image = groups["vit."][0].get("patch_size", ViTSettings.patch_size), settings.get("IMG_SIZE", VLMNanoConfig.IMG_SIZE)
    if settings.get("encoder") == "vit" and image % patch:  # the ViT cuts the image into whole patches
        # the largest divisor of the image up to the patch given, searched no further than the image: a patch
        # given as 10**12 was a search of 10**12 numbers
        fits = max(d for d in range(1, min(patch, image) + 1) if image % d == 0)
        raise SupraUserError(f"{prefix}IMG_SIZE={image} must be a multiple of {prefix}vit.patch_size={patch}: e.g. "
                             f"{prefix}vit.patch_size={fits}")
    _check_heads_split(settings, groups["vit."][0], prefix)
    _check_choices(settings, prefix)
    dropout = settings.get("dropout", 0.0)
    if not is_number(dropout) or not 0 <= dropout < 1:
        raise SupraUserError(f"{prefix}dropout={dropout!r} {DROPOUT_RANGE}")
    if not isinstance(settings.get("channels_last", False), bool):
        raise SupraUserError(f"{prefix}channels_last={settings['channels_last']!r} must be true or false")
    pretrained = groups["pretrained."][0]
    if not isinstance(pretrained.get("model", ""), str):
        raise SupraUserError(f"{prefix}pretrained.model={pretrained['model']!r} must be a timm architecture's name")
    if not isinstance(pretrained.get("weights"), (str, os.PathLike, type(None))):
        raise SupraUserError(f"{prefix}pretrained.weights={pretrained['weights']!r} must be a file's path")


def _check_choices(settings: Mapping[str, object], prefix: str) -> None:
    """The encoder, fusion and activation among those built, VIS_CH split into the CNN's stages and N_VIS a square
    where the encoder's grid is pooled to it; else one line naming `prefix` + the key."""
    for key, choices in (("encoder", ENCODERS), ("fusion", FUSIONS), ("encoder_activation", ("relu", "gelu"))):
        value = settings.get(key, getattr(VLMNanoConfig, key))
        if value not in choices:
            raise SupraUserError(f"{prefix}{key}={value!r} is unknown: choose one of {', '.join(choices)}")
    vis_ch = settings.get("VIS_CH", VLMNanoConfig.VIS_CH)
    if vis_ch % 4:
        raise SupraUserError(f"{prefix}VIS_CH={vis_ch} must be divisible by 4 (stages use VIS_CH/4, VIS_CH/2)")
    n_vis = settings.get("N_VIS", VLMNanoConfig.N_VIS)
    if not settings.get("resampler_layers", 0) and math.isqrt(n_vis) ** 2 != n_vis:
        raise SupraUserError(f"{prefix}N_VIS={n_vis} must be a square number (the encoder pools to a square grid; "
                             f"a resampler, {prefix}resampler_layers > 0, takes any number)")


def _check_heads_split(settings: Mapping[str, object], vit: Mapping[str, object], prefix: str) -> None:
    """The decoder's D_MODEL, and a ViT's width, split whole into their heads; else one line naming both
    settings (as `prefix` spells them) and a value of each that works."""
    splits = [("D_MODEL", settings.get("D_MODEL", VLMNanoConfig.D_MODEL), "N_HEADS",
               settings.get("N_HEADS", VLMNanoConfig.N_HEADS))]
    if settings.get("encoder") == "vit":
        splits.append(("vit.width", vit.get("width", ViTSettings.width), "vit.heads", vit.get("heads", ViTSettings.heads)))
    for width_key, width, heads_key, heads in splits:
        if width % heads:
            # the most heads below these that split the width: raising the width to the heads may leave heads of
            # one channel (vit.heads=256 gave vit.width=256)
            fewer_heads = max(d for d in range(1, min(heads, width + 1)) if width % d == 0)
            raise SupraUserError(f"{prefix}{width_key}={width} must be divisible by {prefix}{heads_key}={heads}: e.g. "
                                 f"{prefix}{heads_key}={fewer_heads}, or {prefix}{width_key}={_multiple_above(width, heads)}")


def _settings(cls: type, given: object, name: str) -> object:
    """model.net.<name>'s dict as `cls` (ViTSettings, PretrainedSettings); a key it lacks is one line naming
    the keys it has (not a TypeError from the dataclass)."""
    if not isinstance(given, Mapping):  # already a `cls` (check_settings refused anything else)
        return given
    known = [f.name for f in fields(cls)]
    unknown = [key for key in given if key not in known]
    if unknown:
        raise SupraUserError(f"model.net.{name}.{unknown[0]} is not a setting: model.net.{name} has "
                             f"{', '.join(known)}")
    return cls(**given)


def _multiple_above(value: int, step: int) -> int:
    """The least multiple of `step` at or above `value` (and at least `step`): a valid choice to name."""
    return max(step, -(-value // step) * step)


class VisualEncoder(nn.Module):
    """3 x (Conv 3x3 stride 2 -> BatchNorm -> act), pool to a sqrt(N_VIS) grid (or a resampler's
    N_VIS latents read the whole map), project to D_MODEL."""

    def __init__(self, cfg: VLMNanoConfig) -> None:
        super().__init__()
        act = nn.ReLU if cfg.encoder_activation == "relu" else nn.GELU
        channels = [3, cfg.VIS_CH // 4, cfg.VIS_CH // 2, cfg.VIS_CH]
        for i in range(3):
            # nn.Sequential indices 0/1 give the release's names conv{i}.0 (conv) and conv{i}.1 (bn).
            stage = nn.Sequential(
                nn.Conv2d(channels[i], channels[i + 1], kernel_size=3, stride=2, padding=1),
                nn.BatchNorm2d(channels[i + 1]),
                act(),
            )
            self.add_module(f"conv{i + 1}", stage)
        if cfg.resampler_layers:
            self.resampler = PerceiverResampler(cfg.VIS_CH, cfg.N_VIS, cfg.resampler_layers, cfg.N_HEADS)
        else:
            self.pool = nn.AdaptiveAvgPool2d(math.isqrt(cfg.N_VIS))
        self.proj = nn.Linear(cfg.VIS_CH, cfg.D_MODEL)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        for stage in (self.conv1, self.conv2, self.conv3):
            stage.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images float [B, 3, H, W] (normalised) -> visual tokens [B, N_VIS, D_MODEL]."""
        # Without gradients (captioning) NHWC input is faster on CPU whatever the weights' format;
        # with them, oneDNN's NHWC backward is the slow part, so training keeps the configured format.
        memory_format = self.memory_format if torch.is_grad_enabled() else torch.channels_last
        x = self.conv3(self.conv2(self.conv1(images.contiguous(memory_format=memory_format))))
        if hasattr(self, "resampler"):
            return self.proj(self.resampler(x.flatten(2).transpose(1, 2)))
        x = self.pool(x).flatten(2).transpose(1, 2)  # [B, N_VIS, VIS_CH], raster order
        return self.proj(x)


def check_images(images: torch.Tensor, weights_dtype: torch.dtype, size: int) -> None:
    """One line for images the encoders cannot take, naming what was given: uint8 pixels, one unbatched image,
    channels last or grey failed in a conv with torch's words (or "channels_last format", never asked for).
    Images of another side than `size`, the model's, too: the CNN's adaptive pool took them without a word,
    captioning pictures unlike any it was trained on. Shape and dtype only: no device sync per step."""
    shape = list(images.shape)
    if images.dim() != 4 or shape[1] != 3 or not images.is_floating_point():
        raise SupraUserError(f"images must be float [B, 3, H, W], normalised (normalize_images of uint8 [B, 3, H, W] "
                             f"pixels); got {str(images.dtype).removeprefix('torch.')} {shape}")
    if images.dtype != weights_dtype:
        raise SupraUserError(f"images are {str(images.dtype).removeprefix('torch.')} but the model's weights are "
                             f"{str(weights_dtype).removeprefix('torch.')}: give images.to(that dtype)")
    if shape[2:] != [size, size]:
        raise SupraUserError(f"images are {shape[2]}x{shape[3]} but the model takes {size}x{size} "
                             f"(net.image_input.size={size}): resize them, e.g. image_to_uint8(picture, "
                             "net.image_input.size)")


def cnn_grid(image_size: int) -> int:
    """The side of the CNN encoder's map: 3 stages of stride 2 (padding 1) halve it, rounding up (112 -> 14)."""
    for _ in range(3):
        image_size = (image_size - 1) // 2 + 1
    return image_size


def check_pooled_grid(cfg: VLMNanoConfig, side: int | None, source: str) -> None:
    """Pooling averages the encoder's side x side grid down to sqrt(N_VIS) a side; asked for more, adaptive pooling
    repeats cells (a 1x1 map gave 16 identical tokens) and the model trains without a word. None: not known."""
    want = math.isqrt(cfg.N_VIS)
    if cfg.resampler_layers or side is None or want <= side:
        return
    raise SupraUserError(
        f"model.net.N_VIS={cfg.N_VIS} ({want}x{want}) is more than the {side}x{side} map of {source}: pooling would "
        f"repeat its cells, not average them; choose a square model.net.N_VIS <= {side * side}, "
        "or model.net.resampler_layers=1, whose N_VIS latents read the whole map"
    )


def build_encoder(cfg: VLMNanoConfig, rebuilt: bool = False) -> nn.Module:
    """The configured image encoder: images [B, 3, S, S] -> visual tokens [B, N_VIS, D_MODEL]. `rebuilt`: a
    pretrained tower is built untrained, its weights file neither needed nor read (see VLMNano); a grid smaller
    than N_VIS is refused for a new model only (a saved one keeps loading as it was trained)."""
    if cfg.encoder == "cnn":
        if not rebuilt:
            check_pooled_grid(cfg, cnn_grid(cfg.IMG_SIZE), f"the cnn encoder at IMG_SIZE={cfg.IMG_SIZE}")
        return VisualEncoder(cfg)
    if cfg.encoder == "vit":
        v = cfg.vit
        features = ViTEncoder(cfg.IMG_SIZE, v.patch_size, v.width, v.layers, v.heads)
        if not rebuilt:
            check_pooled_grid(cfg, features.grid, f"the vit encoder (IMG_SIZE={cfg.IMG_SIZE}, vit.patch_size={v.patch_size})")
    else:
        p = cfg.pretrained
        if p.weights is None and not rebuilt:  # a frozen random tower would train without a word
            raise SupraUserError(f"encoder=pretrained needs the tower's weights file: choose model/encoder=pretrained "
                                 f"model.net.pretrained.weights=/path/to/{p.model}'s weights (a local file; nothing "
                                 "is downloaded)")
        features = PretrainedEncoder(p.model, None if rebuilt else p.weights, p.trainable_blocks)
        if not rebuilt:
            check_pooled_grid(cfg, features.grid, f"{p.model} ({features.image_input.size} px)")
        if cfg.resampler_layers and features.width % math.lcm(4, cfg.N_HEADS):  # as the config checks the others'
            raise SupraUserError(
                f"model.net.pretrained.model={p.model} gives {features.width} channels, which the resampler "
                f"(resampler_layers={cfg.resampler_layers}) cannot split into model.net.N_HEADS={cfg.N_HEADS} heads "
                f"and 2D positions in 4 parts: choose N_HEADS dividing both {features.width} and D_MODEL={cfg.D_MODEL}, "
                "or resampler_layers=0")
    return VisualTokens(features, cfg.N_VIS, cfg.D_MODEL, cfg.resampler_layers, cfg.N_HEADS)


class VLMNano(nn.Module):
    """Image -> caption tokens. prefix fusion: sequence = N_VIS visual tokens, then BOS, caption, EOS;
    cross_attention fusion: BOS, caption, EOS, reading the visual tokens through gated layers.

    All config keys are constructor arguments with the release values as defaults. `rebuilt`: every weight
    is loaded afterwards from a saved model (a checkpoint, a release folder), so a pretrained tower is built
    untrained and its weights file is neither needed nor read.
    """

    config_class = VLMNanoConfig  # what **config takes (a config's keys are checked against its fields)

    def __init__(self, *, rebuilt: bool = False, **config: object) -> None:
        super().__init__()
        cfg = VLMNanoConfig(**config)  # type: ignore[arg-type]
        self.vis_enc = build_encoder(cfg, rebuilt)
        tower = self.vis_enc.features if cfg.encoder == "pretrained" else None
        if tower is not None:  # a pretrained tower decides its input size and normalisation
            cfg = replace(cfg, IMG_SIZE=tower.image_input.size)
        self.config = cfg
        self.image_input: ImageInput = tower.image_input if tower is not None else ImageInput(cfg.IMG_SIZE)
        self.tok_emb = nn.Embedding(cfg.VOCAB_SIZE, cfg.D_MODEL)
        self.pos_emb = nn.Embedding(cfg.n_prefix + cfg.MAX_SEQ, cfg.D_MODEL)
        if cfg.fusion == "cross_attention":
            self.vis_pos = nn.Embedding(cfg.N_VIS, cfg.D_MODEL)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.block) for _ in range(cfg.N_LAYERS))
        if cfg.fusion == "cross_attention":
            # keyed by the decoder block each one precedes (Flamingo interleaves them before LM blocks)
            self.xattn = nn.ModuleDict({str(i): GatedCrossAttentionBlock(cfg.block)
                                        for i in range(0, cfg.N_LAYERS, cfg.cross_attention_every)})
        self.ln_f = nn.LayerNorm(cfg.D_MODEL)
        self.lm_head = nn.Linear(cfg.D_MODEL, cfg.VOCAB_SIZE, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying, as the release
        init_gpt_weights(self, cfg.N_LAYERS, keep=tower)  # a pretrained tower keeps its weights

    # -- sizes and optimiser groups -------------------------------------------------------------

    def get_num_params(self) -> int:
        """Distinct parameters (the tied head counted once): 698,624 at the release config."""
        return sum(p.numel() for p in self.parameters())

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """Two AdamW groups (gpt.weight_decay_groups): conv and linear weights and learned positions held as
        plain parameters (vit pos, resampler latents, a timm tower's pos_embed / cls_token) decay; biases, norms
        and nn.Embedding tables (tok_emb, pos_emb, vis_pos; hence the tied head) do not."""
        return weight_decay_groups(self, weight_decay)

    # -- forward ----------------------------------------------------------------------------------

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """images float [B, 3, IMG_SIZE, IMG_SIZE] -> visual tokens [B, N_VIS, D_MODEL] (embedded, with positions)."""
        check_images(images, self.tok_emb.weight.dtype, self.image_input.size)
        visual = self.vis_enc(images)
        positions = self.pos_emb.weight[: self.config.N_VIS] if self.config.fusion == "prefix" else self.vis_pos.weight
        return visual + positions

    def embed_tokens(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """idx int64 [B, T] of text positions start..start+T-1 -> embeddings [B, T, D_MODEL]."""
        T = idx.shape[1]
        if start + T > self.config.MAX_SEQ:
            raise ValueError(f"caption of {start + T} tokens exceeds MAX_SEQ={self.config.MAX_SEQ}")
        first = self.config.n_prefix + start
        try:
            tokens = self.tok_emb(idx)
        except IndexError:
            # The CPU embedding checks its bounds: its error is named here, at no cost to the steps whose ids are
            # right. A CUDA embedding asserts on the device, asynchronously: naming it there would need a host
            # sync every step, so the entry points that take ids from a caller (prefill's bos_id) check them first.
            outside = idx[(idx < 0) | (idx >= self.config.VOCAB_SIZE)]
            if not outside.numel():
                raise
            raise SupraUserError(self.outside_vocabulary(int(outside[0]))) from None
        return tokens + self.pos_emb.weight[first : first + T]

    def outside_vocabulary(self, token: int) -> str:
        """The one line for a caption token id the model has no embedding for (a2a's prompt ids are said alike)."""
        vocab = self.config.VOCAB_SIZE
        return (f"caption token id {token} is outside the model's vocabulary 0..{vocab - 1} (model.net.VOCAB_SIZE="
                f"{vocab}): give ids of the caption tokenizer the model was built for")

    def visual_context(self, visual: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention fusion: every gated layer's keys and values of the visual tokens, computed once."""
        return [layer.context_kv(visual) for layer in self.xattn.values()] if self.config.fusion == "cross_attention" else []

    def transformer(self, x: torch.Tensor, cache: KVCache | None = None,
                    context: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        """The decoder over x [B, T, D]; `context` (cross-attention fusion) defaults to the cache's."""
        context = cache.context if context is None and cache is not None else context
        gated = {int(i): partial(xattn, kv=kv) for (i, xattn), kv in zip(self.xattn.items(), context, strict=True)} if context else None
        return self.ln_f(run_blocks(self.blocks, self.drop(x), cache, gated))

    def forward(
        self,
        images: torch.Tensor,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        image_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced pass.

        images float [B_img, 3, H, W]; idx int64 [B, T] text tokens starting with BOS; targets int64
        [B, T] (ignore_index -100) or None; image_index int64 [B] maps each caption row to its image
        (default: row i uses image i), so several captions share one encoder pass.
        Returns logits [B, T, VOCAB_SIZE] over the text positions only, and the mean cross-entropy.
        """
        visual = self.encode_images(images)
        if image_index is not None:
            visual = visual[image_index]
        if self.config.fusion == "prefix":
            h = self.transformer(torch.cat([visual, self.embed_tokens(idx)], dim=1))[:, self.config.N_VIS :]
        else:  # the head only runs where text is predicted
            h = self.transformer(self.embed_tokens(idx), context=self.visual_context(visual))
        logits = self.lm_head(h)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    # -- incremental decoding (used by supra.models.vlm_generation) ---------------------------

    def new_cache(self, batch_size: int, device: torch.device | None = None) -> KVCache:
        cfg = self.config
        p = self.tok_emb.weight
        return KVCache(
            n_layers=cfg.N_LAYERS, batch_size=batch_size, n_heads=cfg.N_HEADS,
            max_len=cfg.n_prefix + cfg.MAX_SEQ, head_dim=cfg.D_MODEL // cfg.N_HEADS,
            device=device or p.device, dtype=p.dtype,
        )

    def prefill(self, images: torch.Tensor, bos_id: int) -> tuple[torch.Tensor, KVCache]:
        """Run visual prefix + BOS; returns next-token logits [B, VOCAB_SIZE] and the filled cache."""
        if not 0 <= bos_id < self.config.VOCAB_SIZE:  # a Python int: checked without a device sync
            raise SupraUserError(self.outside_vocabulary(bos_id))
        B = images.shape[0]
        bos = torch.full((B, 1), bos_id, dtype=torch.long, device=images.device)
        cache = self.new_cache(B, images.device)
        visual = self.encode_images(images)
        if self.config.fusion == "prefix":
            x = torch.cat([visual, self.embed_tokens(bos)], dim=1)
        else:  # the visual keys and values are computed here, once per image, and kept in the cache
            x, cache.context = self.embed_tokens(bos), self.visual_context(visual)
        h = self.transformer(x, cache)
        return self.lm_head(h[:, -1]), cache

    def decode_step(self, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """tokens int64 [B] at the next text position -> next-token logits [B, VOCAB_SIZE]."""
        text_pos = cache.length - self.config.n_prefix
        x = self.embed_tokens(tokens[:, None], start=text_pos)
        return self.lm_head(self.transformer(x, cache)[:, -1])
