"""Sampling from A2ANano: modality constraints hold whatever the logits, the KV cache changes nothing,
top-k/top-p/temperature behave, and a seed fixes the output."""

import re

import pytest
import torch

from supra.models.a2a_generation import (
    PromptState,
    SamplingConfig,
    TextInCodeBlock,
    caption_log_likelihood,
    generate_image,
    generate_images,
    generate_texts,
    generate_video,
    prompt_caption,
    prompt_state,
    run_schedule,
    sample_next,
    unconditional_image_prompt,
    video_schedule,
)
from supra.models.a2a_nano import A2AConfig, A2ANano
from supra.tokens.a2a_layout import TokenLayout
from supra.utils.errors import SupraUserError

LAYOUT = TokenLayout(text_size=40, num_codes=16)  # 63 ids: 0-39 text, 40-46 control, 47-62 codes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_model(seed: int, bias_scale: float = 8.0) -> A2ANano:
    """An untrained GPT whose head adds large random per-token offsets: random, spiky logits that often
    prefer tokens of the wrong modality."""
    torch.manual_seed(seed)
    model = A2ANano(A2AConfig(vocab_size=LAYOUT.vocab_size, context=160, n_layers=1, d_model=16, n_heads=2,
                              d_mlp=32)).eval()
    model.lm_head.bias = torch.nn.Parameter(torch.randn(LAYOUT.vocab_size) * bias_scale)
    return model


def random_prompt(gen: torch.Generator) -> list[int]:
    """Random text, optionally a whole image before it, ending outside any block or after an opener."""
    words = torch.randint(0, LAYOUT.text_size, (int(torch.randint(0, 6, (1,), generator=gen)),), generator=gen)
    prompt = [LAYOUT.text_open, *words.tolist(), LAYOUT.text_close]
    if torch.rand(1, generator=gen) < 0.5:
        prompt = LAYOUT.image_block(torch.randint(0, 16, (2, 2), generator=gen)) + prompt
    return prompt


def test_sample_next_never_draws_outside_the_allowed_set_for_random_logits():
    for seed in range(200):
        gen = torch.Generator().manual_seed(seed)
        logits = torch.randn(4, LAYOUT.vocab_size, generator=gen) * 20
        allowed = torch.rand(4, LAYOUT.vocab_size, generator=gen) < 0.1
        allowed[:, int(torch.randint(0, LAYOUT.vocab_size, (1,), generator=gen))] = True
        top_k = [None, 1, 5][seed % 3]
        top_p = [None, 0.5, 0.99][seed % 3]
        tok = sample_next(logits, temperature=[0.0, 0.7, 2.0][seed % 3], top_k=top_k, top_p=top_p, generator=gen,
                          allowed=allowed)
        assert allowed[torch.arange(4), tok].all(), seed


def test_constrained_decoding_never_emits_a_wrong_modality_token():
    for seed in range(40):
        model, gen = random_model(seed), torch.Generator().manual_seed(seed)
        prompts = [random_prompt(gen) for _ in range(3)]
        for text in generate_texts(model, LAYOUT, prompts, max_new_tokens=12, temperature=2.0, generator=gen):
            assert all(0 <= t < LAYOUT.text_size for t in text), (seed, text)
        codes = generate_images(model, LAYOUT, prompts, grid=(4, 4), temperature=2.0, generator=gen)
        assert codes.shape == (3, 4, 4) and codes.min() >= 0 and codes.max() < 16
        # The video's raw stream: <FRAME> then 4 codes, twice, then </VIDEO>, and nothing else.
        raw = run_schedule(model, torch.tensor([[*prompts[0], LAYOUT.video_open]]),
                           video_schedule(LAYOUT, 2, (2, 2)), SamplingConfig(temperature=2.0), gen)[0].tolist()
        assert [t == LAYOUT.frame for t in raw] == [True, False, False, False, False] * 2 + [False]
        assert raw[-1] == LAYOUT.video_close
        assert all(LAYOUT.code_offset <= t for i, t in enumerate(raw[:-1]) if i % 5)


def test_text_stops_at_its_close_and_an_image_is_exactly_one_grid_even_against_the_odds():
    model = random_model(0)
    with torch.no_grad():
        model.lm_head.bias[LAYOUT.text_close] = 50.0  # the model wants to close the text at once
        model.lm_head.bias[LAYOUT.image_close] = 50.0  # ... and to close the image at once
    assert generate_texts(model, LAYOUT, [[LAYOUT.text_open]], max_new_tokens=10)[0] == []
    codes = generate_image(model, LAYOUT, [LAYOUT.text_open, 3, LAYOUT.text_close], grid=(3, 5))
    assert codes.shape == (3, 5)


def test_video_continues_after_whole_prompt_frames():
    model, gen = random_model(1), torch.Generator().manual_seed(1)
    given = LAYOUT.video_block(torch.randint(0, 16, (2, 2, 2)))[:-1]  # two frames, video still open
    assert prompt_state(LAYOUT, given) == PromptState("video", codes=4, frames=1, frame_open=True)
    new = generate_video(model, LAYOUT, given, frames=2, grid=(2, 2), generator=gen)
    assert new.shape == (2, 2, 2)
    with pytest.raises(ValueError, match="after 3 of 4 codes"):
        generate_video(model, LAYOUT, given[:-1], frames=1, grid=(2, 2))


@pytest.mark.parametrize("block, prompt", [
    ("image", [LAYOUT.text_open, 3, LAYOUT.text_close, LAYOUT.image_open, 5, 6]),  # "<IMAGE>hello world"
    ("video", [LAYOUT.text_open, 3, LAYOUT.text_close, LAYOUT.video_open, 5]),  # text before the first <FRAME>
    ("video", [LAYOUT.video_open, LAYOUT.frame, 5]),  # text in a frame
])
def test_text_inside_an_image_or_video_block_is_refused_before_sampling(block, prompt):
    """Text ids where only codes belong: a sequence the model never trains on, sampled on without a word
    (prompt_state counted only codes and markers); every sampler refuses it, naming the block."""
    model = random_model(2)
    samplers = [lambda: generate_texts(model, LAYOUT, [prompt], max_new_tokens=2)]
    if block == "image":
        samplers.append(lambda: generate_image(model, LAYOUT, prompt, grid=(2, 2)))
    else:
        samplers.append(lambda: generate_video(model, LAYOUT, prompt, frames=1, grid=(2, 2)))
    for sample in samplers:
        with pytest.raises(TextInCodeBlock, match=rf"^text inside an? {block} block, which holds only codes$"):
            sample()
    opener = LAYOUT.image_open if block == "image" else LAYOUT.video_open
    assert prompt_state(LAYOUT, prompt[: prompt.index(opener) + 1]).block == block  # the opener alone is fine


@pytest.mark.parametrize("mode", ["text", "image", "video"])
def test_kv_cache_sampling_equals_recompute_sampling_under_a_fixed_seed(mode):
    model = random_model(3, bias_scale=1.0)
    prompt = [LAYOUT.text_open, 5, 6, LAYOUT.text_close]
    outputs = []
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(7)
        if mode == "text":
            outputs.append(generate_texts(model, LAYOUT, [[LAYOUT.text_open, 5]], 30, generator=gen, use_cache=use_cache)[0])
        elif mode == "image":
            outputs.append(generate_image(model, LAYOUT, prompt, (4, 4), generator=gen, use_cache=use_cache).tolist())
        else:
            outputs.append(generate_video(model, LAYOUT, prompt, 3, (3, 3), generator=gen, use_cache=use_cache).tolist())
    assert outputs[0] == outputs[1]
    assert len(str(outputs[0])) > 10


def test_guidance_mixes_the_prompted_and_the_empty_caption_streams():
    """uncond + g * (cond - uncond): g = 1 is plain sampling, g = 0 samples as if the caption were empty,
    and any g keeps the cache equal to recompute (both streams are continued with the same codes)."""
    model = random_model(8, bias_scale=1.0)
    prompt = [LAYOUT.text_open, 5, 6, 7, LAYOUT.text_close]

    def image(p, **kwargs):
        return generate_image(model, LAYOUT, p, (3, 3), generator=torch.Generator().manual_seed(11), **kwargs)

    plain = image(prompt)
    assert torch.equal(image(prompt, guidance=1.0), plain)
    assert torch.equal(image(prompt, guidance=0.0), image(unconditional_image_prompt(LAYOUT)))
    guided = image(prompt, guidance=20.0)  # a random model barely reads its prompt: a large g shows it
    assert not torch.equal(guided, plain)
    assert torch.equal(image(prompt, guidance=20.0, use_cache=False), guided)
    assert ((guided >= 0) & (guided < LAYOUT.num_codes)).all()
    greedy = generate_image(model, LAYOUT, prompt, (3, 3), temperature=0.0, guidance=2.0)
    batched = generate_images(model, LAYOUT, [prompt, prompt[:2] + prompt[3:]], (3, 3), temperature=0.0, guidance=2.0)
    assert torch.equal(batched[0], greedy)  # each row is guided against its own unconditional stream


def test_caption_log_likelihood_is_each_captions_own_log_probability_whatever_the_padding():
    model = random_model(9, bias_scale=1.0)
    codes = torch.randint(0, LAYOUT.num_codes, (3, 2, 2), generator=torch.Generator().manual_seed(0))
    captions = [[5], [6, 7, 8, 9], []]
    scores = caption_log_likelihood(model, LAYOUT, codes, captions)
    for c, caption, score in zip(codes, captions, scores, strict=True):
        row = torch.tensor([LAYOUT.image_block(c) + [LAYOUT.text_open, *caption, LAYOUT.text_close]])
        logp = model(row)[0][0, :-1].log_softmax(-1).gather(-1, row[0, 1:, None]).squeeze(-1)
        assert torch.allclose(score, logp[-len(caption) - 1 :].sum(), atol=1e-5)  # caption ids and </TEXT>


def test_best_of_keeps_the_candidate_the_model_reads_its_caption_back_from_best():
    model = random_model(10, bias_scale=1.0)
    prompt = [LAYOUT.text_open, 5, 6, LAYOUT.text_close]
    assert prompt_caption(LAYOUT, prompt + [LAYOUT.image_open]) == [5, 6]
    best = generate_images(model, LAYOUT, [prompt, prompt[:2] + prompt[3:]], (2, 2), best_of=4,
                           generator=torch.Generator().manual_seed(3))
    # the same draws, made as 8 plain samples: the kept one is each prompt's best-scoring candidate
    candidates = generate_images(model, LAYOUT, [prompt] * 4 + [prompt[:2] + prompt[3:]] * 4, (2, 2),
                                 generator=torch.Generator().manual_seed(3)).view(2, 4, 2, 2)
    for row, caption in enumerate(([5, 6], [5])):
        scores = caption_log_likelihood(model, LAYOUT, candidates[row], [caption] * 4)
        assert len(set(scores.tolist())) > 1  # the choice is a real one
        assert torch.equal(best[row], candidates[row, scores.argmax()])
    with pytest.raises(ValueError, match="best_of needs a prompt with a caption"):
        generate_images(model, LAYOUT, [[LAYOUT.image_open]], (2, 2), best_of=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_guidance_and_best_of_give_codes_as_on_the_cpu():
    """Sampling on the GPU (its generator there), the codes gathered on the CPU: best_of picked its
    candidate with CUDA scores from CPU codes, which failed on a GPU before."""
    model = random_model(10, bias_scale=1.0).cuda()
    prompt = [LAYOUT.text_open, 5, 6, LAYOUT.text_close]
    codes = generate_images(model, LAYOUT, [prompt, prompt], (2, 2), best_of=3, guidance=2.0,
                            generator=torch.Generator("cuda").manual_seed(3))
    assert codes.shape == (2, 2, 2) and codes.device.type == "cpu"
    assert ((codes >= 0) & (codes < LAYOUT.num_codes)).all()


def test_same_seed_same_output_and_another_seed_another():
    model = random_model(4, bias_scale=1.0)
    runs = [generate_image(model, LAYOUT, [LAYOUT.text_open, 1, LAYOUT.text_close], (4, 4),
                           generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_top_k_1_and_tiny_top_p_are_greedy_and_top_k_keeps_the_k_best_allowed():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, LAYOUT.vocab_size, generator=gen)
    greedy = sample_next(logits, temperature=0.0)
    assert torch.equal(sample_next(logits, 1.0, top_k=1, generator=gen), greedy)
    assert torch.equal(sample_next(logits, 1.0, top_p=1e-6, generator=gen), greedy)
    allowed = torch.zeros(LAYOUT.vocab_size, dtype=torch.bool)
    allowed[LAYOUT.code_offset :] = True
    best3 = logits.masked_fill(~allowed, float("-inf")).topk(3).indices
    for _ in range(20):
        tok = sample_next(logits, 5.0, top_k=3, generator=gen, allowed=allowed)
        assert (tok[:, None] == best3).any(1).all()


def test_top_p_keeps_the_smallest_set_reaching_p_and_temperature_sharpens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits, 1.0, top_p=0.7, generator=gen) for _ in range(400)])
    assert set(draws.flatten().tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.7; 0.15 and 0.05 are cut
    cold = torch.stack([sample_next(logits, 0.1, generator=gen) for _ in range(200)])
    assert (cold == 0).float().mean() > 0.95


def test_batched_prompts_of_unequal_length_match_one_at_a_time_when_greedy():
    model = random_model(5, bias_scale=1.0)
    prompts = [[LAYOUT.text_open, 1, 2, 3], [LAYOUT.text_open, 4], [LAYOUT.text_open, 7, 8, 9]]
    together = generate_texts(model, LAYOUT, prompts, max_new_tokens=8, temperature=0.0)
    assert together == [generate_texts(model, LAYOUT, [p], 8, temperature=0.0)[0] for p in prompts]
    images = generate_images(model, LAYOUT, [p + [LAYOUT.text_close] for p in prompts], (2, 2), temperature=0.0)
    assert torch.equal(images[1], generate_image(model, LAYOUT, prompts[1] + [LAYOUT.text_close], (2, 2),
                                                 temperature=0.0))


def test_a_request_beyond_the_context_says_by_how_much():
    model = random_model(6)
    with pytest.raises(ValueError, match="exceeds the context of 160 by 38"):
        generate_video(model, LAYOUT, [LAYOUT.text_open, LAYOUT.text_close], frames=3, grid=(8, 8))


def test_no_new_tokens_asked_for_is_named_as_such_not_as_a_full_context():
    with pytest.raises(SupraUserError, match=r"^max_new_tokens=0 must be >= 1$"):
        generate_texts(random_model(7), LAYOUT, [[LAYOUT.text_open]], max_new_tokens=0)


@pytest.mark.parametrize("arguments, refused", [
    ({"top_k": 2.5}, "top_k=2.5 must be a whole number >= 1 (or None for no limit)"),
    ({"top_k": True}, "top_k=True must be a whole number >= 1"),
    ({"max_new_tokens": 2.5}, "max_new_tokens=2.5 must be a whole number >= 1"),
    ({"temperature": "0.5"}, "temperature='0.5' must be a number >= 0 (0 = greedy)"),
    ({"top_p": "0.9"}, "top_p='0.9' must be in (0, 1]"),
])
def test_sampling_arguments_of_another_type_are_refused_in_one_line_as_decode_config_refuses_them(arguments, refused):
    # before: torch's TypeErrors from topk() or the schedule, naming neither the argument nor what to give
    with pytest.raises(SupraUserError, match=rf"^{re.escape(refused)}"):
        generate_texts(random_model(8), LAYOUT, [[LAYOUT.text_open]], **{"max_new_tokens": 2, **arguments})


def test_image_search_arguments_of_another_type_are_refused_in_one_line():
    with pytest.raises(SupraUserError, match=r"^best_of=2\.5 must be a whole number >= 1 \(1 = off\)$"):
        generate_images(random_model(8), LAYOUT, [[LAYOUT.text_open]], (2, 2), best_of=2.5)
    with pytest.raises(SupraUserError, match=r"^guidance='2' must be a number >= 0"):
        generate_images(random_model(8), LAYOUT, [[LAYOUT.text_open]], (2, 2), guidance="2")


@pytest.mark.parametrize("generate, refused", [
    (lambda model: generate_video(model, LAYOUT, [], frames=-1, grid=(2, 2)), "frames=-1 must be >= 1"),
    (lambda model: generate_video(model, LAYOUT, [], frames=0, grid=(2, 2)), "frames=0 must be >= 1"),
    (lambda model: generate_video(model, LAYOUT, [], frames=1.5, grid=(2, 2)), "frames=1.5 must be a whole number"),
    (lambda model: generate_video(model, LAYOUT, [], frames=1, grid=(0, 2)), "grid=(0, 2) must be two whole numbers"),
    (lambda model: generate_images(model, LAYOUT, [[]], grid=(0, 0)), "grid=(0, 0) must be two whole numbers >= 1"),
    (lambda model: generate_image(model, LAYOUT, [], grid=(4,)), "grid=(4,) must be two whole numbers >= 1"),
])
def test_no_frame_or_an_empty_grid_is_refused_not_answered_with_an_empty_tensor(generate, refused):
    with pytest.raises(SupraUserError, match=rf"^{re.escape(refused)}"):
        generate(random_model(9))


@pytest.mark.parametrize("token", [LAYOUT.vocab_size + 5, -1])
def test_a_prompt_id_outside_the_vocabulary_is_named_not_an_index_error_of_the_embedding(token):
    prompt = [LAYOUT.text_open, 3, token, LAYOUT.text_close]
    said = rf"^prompt id {token} is outside the model's vocabulary 0\.\.{LAYOUT.vocab_size - 1}$"
    with pytest.raises(SupraUserError, match=said):
        generate_texts(random_model(10), LAYOUT, [prompt], max_new_tokens=2)
    with pytest.raises(SupraUserError, match=said):
        generate_images(random_model(10), LAYOUT, [prompt], grid=(2, 2))


def test_a_model_in_training_mode_generates_as_in_eval_with_dropout_off_and_is_left_in_training_mode():
    """As vlm_generation.generate: generating is inference, on task.net during training or after a notebook cell
    that trained it; the caller's mode is put back."""
    torch.manual_seed(0)
    model = A2ANano(A2AConfig(vocab_size=LAYOUT.vocab_size, context=160, n_layers=1, d_model=16, n_heads=2,
                              d_mlp=32, dropout=0.5)).eval()
    prompt = [LAYOUT.text_open, 3, 4, LAYOUT.text_close]
    codes = generate_images(model, LAYOUT, [prompt] * 2, (3, 3), temperature=0.0)
    text = generate_texts(model, LAYOUT, [LAYOUT.image_block(codes[0])] * 2, max_new_tokens=8, temperature=0.0)
    likelihood = caption_log_likelihood(model, LAYOUT, codes, [[3, 4]] * 2)
    model.train()
    assert torch.equal(generate_images(model, LAYOUT, [prompt] * 2, (3, 3), temperature=0.0), codes)
    assert generate_texts(model, LAYOUT, [LAYOUT.image_block(codes[0])] * 2, max_new_tokens=8, temperature=0.0) == text
    assert torch.equal(caption_log_likelihood(model, LAYOUT, codes, [[3, 4]] * 2), likelihood)
    assert all(module.training for module in model.modules())


MAKE_IDS = "text_block(layout, vocab.encode_text(text)) (supra.tokens.a2a_sequences), layout.image_block(codes)"


@pytest.mark.parametrize("prompts, said", [
    (["a red circle"], "prompts[0] is a str: give token ids, text_block(layout, vocab.encode_text('a red circle'))"),
    ("a red circle", "prompts is a str: give a list of prompts of token ids, "
                     "[text_block(layout, vocab.encode_text('a red circle'))]"),
    ([[LAYOUT.text_open, 3.0, LAYOUT.text_close]], f"prompts[0] holds 3.0, not a token id: give whole-number ids, as "
                                                   f"{MAKE_IDS} make them"),
    ([LAYOUT.text_open, LAYOUT.text_close], f"prompts[0] is 40, not a list of token ids: give whole-number ids, as "
                                            f"{MAKE_IDS} make them"),  # one prompt not in a list
])
def test_a_prompt_given_as_text_or_not_as_token_ids_is_refused_in_one_line_saying_how_to_make_ids(prompts, said):
    model = random_model(0)
    with pytest.raises(SupraUserError) as refused:
        generate_images(model, LAYOUT, prompts, (2, 2), temperature=0.0)
    assert str(refused.value) == said
    with pytest.raises(SupraUserError) as refused:
        generate_texts(model, LAYOUT, prompts, max_new_tokens=2, temperature=0.0)
    assert str(refused.value) == said


def test_prompt_ids_as_a_torch_integer_row_are_taken_as_the_ints_they_hold():
    model = random_model(0)
    prompt = [LAYOUT.text_open, 3, 4, LAYOUT.text_close]
    codes = generate_images(model, LAYOUT, [prompt], (2, 2), temperature=0.0)
    assert torch.equal(generate_images(model, LAYOUT, [torch.tensor(prompt)], (2, 2), temperature=0.0), codes)
