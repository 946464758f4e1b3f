"""The release's published inference code, re-implemented independently of supra.models as the model
card describes it: modules named as in its state dict, a registered causal-mask buffer and explicit
softmax attention, the model built from config.json, model.safetensors loaded with strict=False,
the head re-tied, and per-image beam search of width 3 that re-runs the whole sequence each step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn


class Attn(nn.Module):
    def __init__(self, d: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(max_len, max_len)).view(1, 1, max_len, max_len))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.heads)
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf")).softmax(-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, d: int, ff: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, d, heads, ff, max_len):
        super().__init__()
        self.ln1, self.attn, self.ln2, self.mlp = nn.LayerNorm(d), Attn(d, heads, max_len), nn.LayerNorm(d), MLP(d, ff)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class VisEnc(nn.Module):
    def __init__(self, ch, d, n_vis):
        super().__init__()
        def stage(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.ReLU())
        self.conv1, self.conv2, self.conv3 = stage(3, ch // 4), stage(ch // 4, ch // 2), stage(ch // 2, ch)
        self.pool = nn.AdaptiveAvgPool2d(int(math.sqrt(n_vis)))
        self.proj = nn.Linear(ch, d)

    def forward(self, x):
        x = self.pool(self.conv3(self.conv2(self.conv1(x))))
        return self.proj(x.flatten(2).transpose(1, 2))


class SupraVLNano(nn.Module):
    def __init__(self, D_MODEL, N_HEADS, N_LAYERS, D_FF, VIS_CH, N_VIS, VOCAB_SIZE, MAX_SEQ, IMG_SIZE, **_):
        super().__init__()
        self.n_vis = N_VIS
        self.vis_enc = VisEnc(VIS_CH, D_MODEL, N_VIS)
        self.tok_emb = nn.Embedding(VOCAB_SIZE, D_MODEL)
        self.pos_emb = nn.Embedding(N_VIS + MAX_SEQ, D_MODEL)
        self.blocks = nn.ModuleList(Block(D_MODEL, N_HEADS, D_FF, N_VIS + MAX_SEQ) for _ in range(N_LAYERS))
        self.ln_f = nn.LayerNorm(D_MODEL)
        self.lm_head = nn.Linear(D_MODEL, VOCAB_SIZE, bias=False)

    def forward(self, img, idx):
        x = torch.cat([self.vis_enc(img), self.tok_emb(idx)], dim=1)
        x = x + self.pos_emb(torch.arange(x.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def load(folder: Path) -> tuple[SupraVLNano, dict]:
    config = json.loads((folder / "config.json").read_text())
    model = SupraVLNano(**config)
    model.load_state_dict(load_file(folder / "model.safetensors"), strict=False)
    model.lm_head.weight = model.tok_emb.weight
    return model.eval(), config


@torch.no_grad()
def beam_caption(model: SupraVLNano, img: torch.Tensor, config: dict, width: int = 3) -> list[int]:
    bos, eos = config.get("bos_token_id", 1), config.get("eos_token_id", 2)
    beams = [([bos], 0.0, False)]
    for _ in range(config["MAX_SEQ"] - 1):
        candidates = []
        for seq, score, done in beams:
            if done:
                candidates.append((seq, score, True))
                continue
            logp = model(img[None], torch.tensor([seq]))[0, -1].log_softmax(-1)
            values, indices = logp.topk(width)
            candidates += [(seq + [t], score + v, t == eos) for v, t in zip(values.tolist(), indices.tolist(), strict=True)]
        beams = sorted(candidates, key=lambda c: -c[1])[:width]
        if all(done for _, _, done in beams):
            break
    seq = max(beams, key=lambda b: b[1])[0][1:]
    return seq[: seq.index(eos)] if eos in seq else seq
