"""Batched, KV-cached decoding gives the same captions as the plain per-image recompute search."""

import copy
import re

import pytest
import torch

from supra.models.sampling import filter_logits, sample_next
from supra.models.vlm_generation import (
    DecodeConfig,
    beam_search,
    beam_search_recompute,
    generate,
    image_draws,
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


def test_a_sampled_caption_depends_on_its_image_and_the_seed_not_on_the_batch(peaked_model):
    torch.manual_seed(1)
    images = torch.randn(4, 3, 112, 112, dtype=torch.double)
    decode = DecodeConfig(strategy="sample", temperature=1.5, top_k=None, seed=7)
    together = generate(peaked_model, images, BOS, EOS, decode)
    alone = [generate(peaked_model, image[None], BOS, EOS, decode)[0] for image in images]
    reversed_batch = generate(peaked_model, images.flip(0), BOS, EOS, decode)[::-1]
    assert together == alone == reversed_batch
    assert len({tuple(c) for c in alone}) > 1  # each image its own draws: not one stream for every batch of one
    other_seed = generate(peaked_model, images, BOS, EOS, DecodeConfig(strategy="sample", temperature=1.5, seed=8))
    assert other_seed != together


def test_two_different_images_draw_different_random_streams_and_one_image_the_same():
    first, second = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    second[0, 0, 0, 0] = 1e-3  # one pixel apart
    assert not torch.equal(image_draws(first, 0, 5), image_draws(second, 0, 5))
    assert torch.equal(image_draws(first, 0, 5), image_draws(first.double(), 0, 5))  # the image, not its dtype
    assert not torch.equal(image_draws(first, 0, 5), image_draws(first, 1, 5))
    draws = image_draws(torch.cat([first, second]), 0, 5)
    assert draws.shape == (2, 5) and float(draws.min()) >= 0 and float(draws.max()) < 1


def test_drawing_a_token_from_its_own_uniform_follows_the_distribution_and_never_a_filtered_token():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(20_000, 4)
    drawn = sample_next(logits, 1.0, uniforms=torch.rand(20_000, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(torch.bincount(drawn, minlength=4) / 20_000, probs, atol=0.01)
    top2 = sample_next(logits, 1.0, top_k=2, uniforms=torch.linspace(0, 0.9999999, 20_000))
    assert set(top2.tolist()) == {0, 1}


def test_settings_used_with_the_model_records_the_caption_length_limit_actually_used(peaked_model):
    # null: all MAX_SEQ - 1 (12 - 1) text positions after BOS; more than that is cut to it
    assert DecodeConfig(strategy="greedy").settings_used(peaked_model) == {"strategy": "greedy", "max_new_tokens": 11}
    assert DecodeConfig(strategy="greedy", max_new_tokens=5).settings_used(peaked_model)["max_new_tokens"] == 5
    assert DecodeConfig(strategy="greedy", max_new_tokens=99).settings_used(peaked_model)["max_new_tokens"] == 11


def test_settings_used_names_what_each_decoding_reads():
    assert DecodeConfig(beam_width=6, length_penalty=1.0).settings_used() == {
        "strategy": "beam", "beam_width": 6, "length_penalty": 1.0, "max_new_tokens": None}
    assert DecodeConfig(strategy="greedy", max_new_tokens=5).settings_used() == {"strategy": "greedy", "max_new_tokens": 5}
    assert DecodeConfig(strategy="sample", seed=3).settings_used() == {
        "strategy": "sample", "temperature": 0.8, "top_k": 50, "top_p": None, "seed": 3, "max_new_tokens": None}


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
    # the range every command takes (train.py's seed=, explain's, the demo's field): one a run trained with, its
    # demo refused
    for seed in (-4, 2**32):
        with pytest.raises(SupraUserError, match=f"^seed={seed} must be from 0 to 4294967295$"):
            DecodeConfig(strategy="sample", seed=seed)
    DecodeConfig(strategy="sample", seed=2**32 - 1)


@pytest.mark.parametrize(("setting", "error"), [
    # 0 new tokens wrote empty captions that scored 0.0; top_k 0 / top_p 0 drew from no token at all
    ({"max_new_tokens": 0}, "max_new_tokens=0 must be >= 1 (or null: as long as the model allows)"),
    ({"max_new_tokens": -1}, "max_new_tokens=-1 must be >= 1"),
    ({"top_k": 0}, "top_k=0 must be a whole number >= 1 (or null: every token)"),
    ({"top_k": -1}, "top_k=-1 must be a whole number >= 1"),
    ({"top_k": 2.5}, "top_k=2.5 must be a whole number >= 1"),
    ({"top_p": 0}, "top_p=0 must be a number > 0 and <= 1 (or null: no nucleus filter)"),
    ({"top_p": 1.5}, "top_p=1.5 must be a number > 0 and <= 1"),
    ({"top_p": "abc"}, "top_p='abc' must be a number > 0 and <= 1"),
    ({"length_penalty": "abc"}, "length_penalty='abc' must be a number (0: rank beams by score)"),
    ({"length_penalty": float("nan")}, "length_penalty=nan must be a number"),
])
def test_decode_settings_that_would_caption_nothing_or_fail_midway_are_refused_in_one_line(setting, error):
    with pytest.raises(SupraUserError, match=re.escape(error)):
        DecodeConfig(strategy="sample", **setting)


def test_the_edges_of_the_decode_settings_are_allowed():
    DecodeConfig(strategy="sample", top_k=1, top_p=1.0, max_new_tokens=1, length_penalty=-0.5)
    DecodeConfig(strategy="sample", top_k=None, top_p=None, max_new_tokens=None)


def test_a_beam_wider_than_the_vocabulary_is_refused_in_one_line(peaked_model):
    images = torch.randn(1, 3, 112, 112, dtype=torch.double)
    assert len(generate(peaked_model, images, BOS, EOS, DecodeConfig(beam_width=24, max_new_tokens=2))) == 1  # a beam per token
    with pytest.raises(SupraUserError, match="beam_width=25 is more than the model's 24 tokens: give beam_width <= 24"):
        generate(peaked_model, images, BOS, EOS, DecodeConfig(beam_width=25))
    DecodeConfig(strategy="greedy", beam_width=25).check_vocabulary(24)  # read by beam search only


@pytest.mark.parametrize("images, said", [
    (torch.zeros(1, 3, 112, 112, dtype=torch.uint8), "got uint8 [1, 3, 112, 112]"),
    (torch.zeros(3, 112, 112, dtype=torch.double), "got float64 [3, 112, 112]"),
    (torch.zeros(1, 112, 112, 3, dtype=torch.double), "got float64 [1, 112, 112, 3]"),
    (torch.zeros(1, 1, 112, 112, dtype=torch.double), "got float64 [1, 1, 112, 112]"),
])
def test_images_the_encoder_cannot_take_are_refused_in_one_line_naming_their_shape_and_dtype(peaked_model, images,
                                                                                             said):
    # before: torch's conv errors, or "required rank 4 tensor to use channels_last format" for one unbatched image
    with pytest.raises(SupraUserError, match=rf"^images must be float \[B, 3, H, W\], normalised .*; {re.escape(said)}$"):
        generate(peaked_model, images, BOS, EOS, DecodeConfig(strategy="greedy"))


@pytest.mark.parametrize("token", [24, 30, -1, -100])
def test_a_caption_token_id_outside_the_vocabulary_is_named_not_an_index_error_of_the_embedding(peaked_model, token):
    """As a2a names a prompt id it has no row for; -100 is the targets' ignore index, given as ids by mistake."""
    said = (f"caption token id {token} is outside the model's vocabulary 0..23 (model.net.VOCAB_SIZE=24): give ids "
            "of the caption tokenizer the model was built for")
    images = torch.zeros(1, 3, 112, 112, dtype=torch.double)
    with pytest.raises(SupraUserError) as raised:
        peaked_model(images, torch.tensor([[BOS, 3, token]]))
    assert str(raised.value) == said
    with pytest.raises(SupraUserError) as raised:  # the start token a caller gives decoding
        generate(peaked_model, images, token, EOS, DecodeConfig(strategy="greedy"))
    assert str(raised.value) == said


def test_images_of_another_float_dtype_than_the_weights_are_refused_naming_both(peaked_model):
    with pytest.raises(SupraUserError, match=r"^images are float32 but the model's weights are float64"):
        generate(peaked_model, torch.zeros(1, 3, 112, 112), BOS, EOS, DecodeConfig(strategy="greedy"))


@pytest.mark.parametrize("strategy", ["beam", "greedy", "sample"])
def test_a_model_in_training_mode_decodes_as_in_eval_and_is_given_back_unchanged_in_its_modes(peaked_model, strategy):
    """As after a fine-tuning cell in a notebook, or on task.net during training: no BatchNorm statistic moves,
    the captions are the eval model's, and every module is back in its own mode (a frozen part stays frozen)."""
    images = torch.randn(3, 3, 112, 112, dtype=torch.double)
    decode = DecodeConfig(strategy=strategy)
    in_eval = generate(peaked_model, images, BOS, EOS, decode)
    training = copy.deepcopy(peaked_model).train()
    training.vis_enc.conv3.eval()  # a part the caller keeps frozen
    before = {name: value.clone() for name, value in training.state_dict().items()}
    modes = {name: module.training for name, module in training.named_modules()}
    assert generate(training, images, BOS, EOS, decode) == in_eval
    assert all(torch.equal(value, before[name]) for name, value in training.state_dict().items())
    assert {name: module.training for name, module in training.named_modules()} == modes


def test_images_of_another_size_than_the_models_are_refused_in_one_line_naming_its_size(peaked_model):
    """The CNN's adaptive pool would take them: captions of pictures unlike those the model was trained on."""
    with pytest.raises(SupraUserError) as refused:
        generate(peaked_model, torch.zeros(1, 3, 119, 96, dtype=torch.double), BOS, EOS, DecodeConfig(strategy="greedy"))
    assert str(refused.value) == ("images are 119x96 but the model takes 112x112 (net.image_input.size=112): resize "
                                  "them, e.g. image_to_uint8(picture, net.image_input.size)")
