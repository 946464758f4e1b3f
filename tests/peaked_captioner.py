"""Random captioners whose decoding is worth comparing: a freshly initialised tied model only repeats its
input token, so these untie and sharpen the head, make the image matter and favour EOS, in float64 (cached
and recomputed paths then agree to ~1e-15 and no near-tie flips). Some captions end early, others run to
MAX_SEQ, and the beams really compete."""

import torch
from torch import nn

from supra.models.vlm_nano import VLMNano

BOS, EOS = 1, 2


def peaked(model: VLMNano) -> VLMNano:
    model = model.double().eval()
    d_model, vocab = model.config.D_MODEL, model.config.VOCAB_SIZE
    model.lm_head = nn.Linear(d_model, vocab).double()
    with torch.no_grad():
        nn.init.normal_(model.lm_head.weight, std=3.0)
        model.lm_head.bias.zero_()
        model.lm_head.bias[EOS] = 6.0
        nn.init.normal_(model.vis_enc.proj.weight, std=1.0)
        for name, p in model.named_parameters():
            if name.endswith("_gate"):  # cross-attention gates start closed: open them so the image counts
                p.fill_(1.0)
    return model
