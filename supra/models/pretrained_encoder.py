"""A pretrained vision tower from timm (encoder=pretrained), its weights read from a local file.

Nothing is downloaded: timm builds the named architecture untrained and `weights` is read from disk
through the architecture's own timm checkpoint filter, so a timm checkpoint and, for timm's CLIP models
(e.g. vit_base_patch32_clip_224), open_clip's published CLIP state dicts load the same way. The
load is strict (timm's own pretrained loading only warns on a file of another architecture and keeps
random weights: a silent wrong result). The tower's input size and
normalisation come from its timm config (`image_input`), which the data pipeline applies.
"""

from __future__ import annotations

import logging
import math
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from supra.models.image_input import ImageInput
from supra.utils.errors import SupraUserError, first_line
from supra.utils.state_dicts import check_state_fits


def _is_torchscript(path: str) -> bool:
    """A TorchScript archive is a zip holding the program's code/ beside its tensors."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


# timm logs "Loaded  from checkpoint '<file>'" at INFO as it reads the weights file: the file is the user's own
# model.net.pretrained.weights, the key it names (none, for a plain state dict) says nothing to act on, and a file
# that does not fit the tower is refused in one line (load_backbone_weights)
logging.getLogger("timm.models._helpers").addFilter(lambda record: " from checkpoint '" not in record.getMessage())

# open_clip's names of what timm's filter converts to a ViT's patch embedding and positions (prefixes dropped)
_CLIP_NAMES = {"visual.conv1.weight": "patch_embed.proj.weight", "visual.positional_embedding": "pos_embed"}


def _grid_side(pos_embed: torch.Tensor, prefix_tokens: int) -> int | None:
    """The side of the square patch grid a position embedding [(1,) prefix + side^2, width] is for, None if none."""
    tokens = pos_embed.shape[-2] if pos_embed.dim() >= 2 else 0
    for prefix in (0, prefix_tokens, 1):  # a file may hold a class token's position the model keeps apart (DINOv2)
        side = math.isqrt(max(tokens - prefix, 0))
        if side and side * side == tokens - prefix:
            return side
    return None


def _other_geometry(state: dict[str, torch.Tensor], backbone: nn.Module) -> list[str]:
    """What of the file's tensors timm's checkpoint filter would resample to fit `backbone` (another patch size,
    grid of positions, or any other tensor of its own name and another size), as "file's vs model's" phrases."""
    expected = backbone.state_dict()
    prefix_tokens = getattr(backbone, "num_prefix_tokens", 1)
    differ = []
    for key, value in state.items():
        name = key.removeprefix("module.").removeprefix("visual.trunk.")
        name = _CLIP_NAMES.get(name, name)
        if name not in expected or not isinstance(value, torch.Tensor):
            continue
        ours = expected[name]
        if name.endswith("patch_embed.proj.weight") and value.dim() == 4 and value.shape[-2:] != ours.shape[-2:]:
            differ.append(f"patch size {'x'.join(map(str, value.shape[-2:]))} there, {'x'.join(map(str, ours.shape[-2:]))} here")
        elif name == "pos_embed":
            theirs_side, our_side = _grid_side(value, prefix_tokens), _grid_side(ours, prefix_tokens)
            if theirs_side != our_side:
                differ.append(f"positions for a {theirs_side}x{theirs_side} grid of patches there, "
                              f"{our_side}x{our_side} here" if theirs_side else
                              f"pos_embed of shape {tuple(value.shape)} there, {tuple(ours.shape)} here")
        elif value.numel() != ours.numel():  # e.g. a Swin's relative position table of another window
            differ.append(f"{name} of shape {tuple(value.shape)} there, {tuple(ours.shape)} here")
    return sorted(differ, key=lambda phrase: not phrase.startswith("patch size"))  # the cause first


WEIGHTS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def require_weights_file(weights: Path, model_name: str) -> None:
    """`weights` is a file, or one line: a folder (Hugging Face and open_clip downloads are folders) is named as
    one, with the weights files it holds; anything else is not found."""
    if weights.is_dir():
        inside = sorted(p.name for p in weights.iterdir() if p.suffix in WEIGHTS_SUFFIXES and p.is_file())[:3]
        example = weights / (inside[0] if inside else "model.safetensors")
        holds = f" (it holds {', '.join(inside)})" if inside else ""
        raise SupraUserError(f"pretrained weights {weights} is a folder{holds}: give the weights file of {model_name} "
                             f"inside it, e.g. model.net.pretrained.weights={example}")
    if not weights.is_file():
        raise SupraUserError(f"pretrained weights {weights} not found: give the local file of {model_name}'s "
                             "weights (model.net.pretrained.weights=/path/to/file; nothing is downloaded)")


def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    """The file's tensors into `backbone`, every one of its parameters and no others, or one clear line."""
    import timm.models

    if _is_torchscript(path):  # OpenAI's original CLIP .pt files are: a program, not a state dict
        raise SupraUserError(f"pretrained weights {path} are a TorchScript archive, not a state dict: give open_clip's "
                             "or timm's file of these weights (e.g. open_clip_pytorch_model.bin)")
    architecture = backbone.pretrained_cfg.get("architecture", "the tower")
    try:
        state = timm.models.load_state_dict(path)
    except Exception:  # torch and safetensors raise many kinds on a file that is not one
        # not their message: torch's (on a text file too) blames "pickle globals" and advises weights_only=False,
        # which no Supra setting does
        raise SupraUserError(f"pretrained weights {path} are not a readable weights file: give {architecture}'s "
                             "weights as timm or open_clip publish them (a .safetensors, or a .bin/.pth state dict), "
                             "copied whole") from None
    filter_fn = getattr(sys.modules[type(backbone).__module__], "checkpoint_filter_fn", None)
    differ = _other_geometry(state, backbone)
    if filter_fn is not None and differ:  # the filter would resample them to fit, and the strict check then pass
        raise SupraUserError(f"pretrained weights {path} are not of {architecture} ({', '.join(differ[:3])}): give the "
                             "file of that model, or the model.net.pretrained.model it belongs to")
    if filter_fn is not None:  # e.g. OpenAI CLIP's `visual.*` names -> timm's
        state = filter_fn(state, backbone)
    expected = backbone.state_dict()
    classifier = backbone.pretrained_cfg.get("classifier") or "head"
    # The tower is built without its classifier: a head in the file is not ours to load.
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(f"{classifier}.")}
    check_state_fits(backbone, state, f"pretrained weights {path}", architecture,
                     hint=": give the file of that model, or the model.net.pretrained.model it belongs to")
    backbone.load_state_dict(state)


def _trainable_groups(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's blocks in order (ViTs: `blocks`; ConvNets: `stages` or ResNet's `layer1..4`)."""
    for name in ("blocks", "stages"):
        if isinstance(getattr(backbone, name, None), nn.Sequential | nn.ModuleList):
            return list(getattr(backbone, name))
    layers = [getattr(backbone, f"layer{i}") for i in range(1, 5) if hasattr(backbone, f"layer{i}")]
    if layers:
        return layers
    raise SupraUserError(f"{type(backbone).__name__} has no blocks/stages to fine-tune in part: "
                         "use trainable_blocks 0 (frozen) or -1 (all)")


class PretrainedEncoder(nn.Module):
    """images [B, 3, S, S] -> the backbone's patch tokens (or feature-map cells, NCHW or NHWC) [B, N, width].

    trainable_blocks: 0 freezes the whole tower (kept in eval mode, so its norms and dropout never
    change), -1 fine-tunes all of it, N > 0 only its last N blocks. weights None builds the architecture
    untrained: a saved captioner brings the tower's weights itself.
    """

    def __init__(self, model_name: str, weights: str | None, trainable_blocks: int = 0) -> None:
        super().__init__()
        import timm  # only this encoder needs it; importing it costs a second

        if trainable_blocks < -1:  # was taken as -1: the whole tower fine-tuned
            raise SupraUserError(f"model.net.pretrained.trainable_blocks={trainable_blocks}: choose -1 (fine-tune all of "
                                 f"{model_name}), 0 (frozen) or N > 0 (its last N blocks)")
        if weights is not None:
            require_weights_file(Path(weights), model_name)
        try:
            self.backbone = timm.create_model(model_name, pretrained=False, num_classes=0)
        except RuntimeError as err:  # an unknown name
            raise SupraUserError(f"pretrained encoder {model_name!r}: {first_line(err)} (timm.list_models() names "
                                 "them)") from None
        if weights is not None:
            load_backbone_weights(self.backbone, str(weights))
        data = timm.data.resolve_data_config({}, model=self.backbone)
        _, height, width = data["input_size"]
        if height != width:
            raise SupraUserError(f"{model_name} takes {height}x{width} images: only square inputs are supported")
        self.image_input = ImageInput(height, tuple(data["mean"]), tuple(data["std"]))
        self.width = self.backbone.num_features
        # the side of its last feature map (timm's reduction of the input), None where timm does not say
        reduction = (getattr(self.backbone, "feature_info", None) or [{}])[-1].get("reduction")
        self.grid = -(-height // reduction) if reduction else None
        self.prefix_tokens = getattr(self.backbone, "num_prefix_tokens", 0)  # class / register tokens
        # timm names the layout of a tower's feature map: NCHW (ConvNets) or NHWC (Swin, MambaOut, Hiera-Det...)
        self.channels_last_map = getattr(self.backbone, "output_fmt", "NCHW") == "NHWC"
        self.frozen: list[nn.Module] = []
        if trainable_blocks >= 0:
            self.backbone.requires_grad_(False)
            self.frozen = [self.backbone]
            if trainable_blocks:
                groups = _trainable_groups(self.backbone)
                if trainable_blocks > len(groups):  # was taken as all of them
                    raise SupraUserError(f"model.net.pretrained.trainable_blocks={trainable_blocks} but {model_name} has "
                                         f"{len(groups)} blocks: choose -1 (all), 0 (frozen) or 1..{len(groups)}")
                tail = groups[-trainable_blocks:]
                for group in tail:
                    group.requires_grad_(True)
                tail_ids = {id(m) for g in tail for m in g.modules()}
                self.frozen = [m for m in self.backbone.modules()  # the leaves outside the tail
                               if id(m) not in tail_ids and next(m.children(), None) is None]
        self.train()

    def train(self, mode: bool = True) -> PretrainedEncoder:
        super().train(mode)
        for module in self.frozen:  # frozen parts never leave eval mode (BatchNorm statistics, dropout)
            module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(images)
        if features.dim() == 4 and self.channels_last_map:  # [B, H, W, C] -> cells in raster order
            return features.flatten(1, 2)
        if features.dim() == 4:  # a ConvNet's map [B, C, H, W] -> cells in raster order
            return features.flatten(2).transpose(1, 2)
        return features[:, self.prefix_tokens :]
