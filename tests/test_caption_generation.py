"""Batched, KV-cached decoding gives the same captions as the plain per-image recompute search."""

import pytest
import torch

from supra.models.sampling import filter_logits
from supra.models.vlm_generation import (
    DecodeConfig,
    beam_search,
    beam_search_recompute,
    generate,
    sample,
)
from supra.models.vlm_nano import VLMNano
from supra.utils.errors import SupraUserError
from tests.peaked_captioner import BOS, EOS, peaked


@pytest.fixture(scope="module")
def peaked_model() -> VLMNano:
    """The release architecture, random but peaked (tests/peaked_captioner.py)."""
    torch.manual_seed(0)
    return peaked(VLMNano(VOCAB_SIZE=24, MAX_SEQ=12))


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_with_cache_matches_recompute(peaked_model, length_penalty):
    torch.manual_seed(0)
    images = torch.randn(8, 3, 112, 112, dtype=torch.double)
    batched = beam_search(peaked_model, images, BOS, EOS, beam_width=3, length_penalty=length_penalty)
    plain = [beam_search_recompute(peaked_model, im, BOS, EOS, 3, length_penalty) for im in images]
    assert batched == plain



def test_beam_search_equivalence_covers_early_eos_and_full_length(peaked_model):
    torch.manual_seed(0)
    images = torch.randn(8, 3, 112, 112, dtype=torch.double)
    lengths = [len(c) for c in beam_search(peaked_model, images, BOS, EOS, beam_width=3)]
    assert min(lengths) < 11 and max(lengths) == 11


def test_beam_width_one_is_greedy(peaked_model):
    images = torch.randn(4, 3, 112, 112, dtype=torch.double)
    assert beam_search(peaked_model, images, BOS, EOS, beam_width=1) == sample(peaked_model, images, BOS, EOS, greedy=True)


def test_greedy_with_cache_matches_argmax_recompute(peaked_model):
    images = torch.randn(3, 3, 112, 112, dtype=torch.double)
    cached = sample(peaked_model, images, BOS, EOS, greedy=True)
    for image, caption in zip(images, cached, strict=True):
        idx = torch.tensor([[BOS]])
        out = []
        for _ in range(11):
            logits, _ = peaked_model(image[None], idx)
            tok = int(logits[0, -1].argmax())
            if tok == EOS:
                break
            out.append(tok)
            idx = torch.cat([idx, torch.tensor([[tok]])], dim=1)
        assert caption == out


def test_sampling_is_reproducible_with_a_seed(peaked_model):
    images = torch.randn(4, 3, 112, 112, dtype=torch.double)
    decode = DecodeConfig(strategy="sample", temperature=1.5, top_k=10, seed=7)
    assert generate(peaked_model, images, BOS, EOS, decode) == generate(peaked_model, images, BOS, EOS, decode)


def test_filter_logits_keeps_top_k_and_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.9)).tolist() == [[False, False, False, True]]


def test_generated_captions_never_exceed_max_seq(peaked_model):
    images = torch.randn(2, 3, 112, 112, dtype=torch.double)
    for caption in beam_search(peaked_model, images, BOS, EOS) + sample(peaked_model, images, BOS, EOS, greedy=True):
        assert len(caption) <= peaked_model.config.MAX_SEQ - 1


def test_decode_settings_from_the_command_line_are_checked_as_one_line_naming_the_option():
    with pytest.raises(SupraUserError, match="decode='nucleus' is unknown: choose beam, greedy or sample"):
        DecodeConfig(strategy="nucleus")
    with pytest.raises(SupraUserError, match="beam_width=0 must be >= 1"):
        DecodeConfig(beam_width=0)
    with pytest.raises(SupraUserError, match="seed='abc' must be a whole number"):
        DecodeConfig(strategy="sample", seed="abc")
    with pytest.raises(SupraUserError, match="temperature=-1"):
        DecodeConfig(strategy="sample", temperature=-1)
