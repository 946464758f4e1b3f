"""A tiny ViT patch encoder (encoder=vit): a strided convolution cuts the image into patches, learned
positions are added, and a few pre-norm transformer blocks in which every patch sees every other."""

from __future__ import annotations

import torch
from torch import nn

from supra.models.gpt import Block, BlockConfig
from supra.utils.errors import SupraUserError


class ViTEncoder(nn.Module):
    """images [B, 3, S, S] -> patch tokens [B, (S / patch_size)^2, width], raster order."""

    def __init__(self, image_size: int, patch_size: int, width: int, n_layers: int, n_heads: int) -> None:
        super().__init__()
        if image_size % patch_size:
            raise SupraUserError(f"IMG_SIZE={image_size} must be a multiple of the ViT's patch_size={patch_size}")
        self.width = width
        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        self.pos = nn.Parameter(torch.randn(self.grid * self.grid, width) * 0.02)
        block = BlockConfig(d_model=width, n_heads=n_heads, d_mlp=4 * width, causal=False)
        self.blocks = nn.ModuleList(Block(block) for _ in range(n_layers))
        self.ln = nn.LayerNorm(width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.ln(x)
