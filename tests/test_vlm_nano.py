"""VLMNano matches the SupraVL-Nano-900k release (docs/releases.md): shapes, names, count, behaviour."""

import pytest
import torch

from supra.models.vlm_nano import VLMNano, VLMNanoConfig

RELEASE_CONFIG = {"D_MODEL": 128, "N_HEADS": 4, "N_LAYERS": 3, "D_FF": 256, "VIS_CH": 64, "N_VIS": 16,
                  "VOCAB_SIZE": 2048, "MAX_SEQ": 48, "IMG_SIZE": 112}


def release_state_dict_names() -> set[str]:
    """The tensor names docs/releases.md lists for the release's model.safetensors (without the optional mask)."""
    names = {"vis_enc.proj.weight", "vis_enc.proj.bias", "tok_emb.weight", "pos_emb.weight",
             "ln_f.weight", "ln_f.bias", "lm_head.weight"}
    for i in (1, 2, 3):
        names |= {f"vis_enc.conv{i}.0.weight", f"vis_enc.conv{i}.0.bias"}
        names |= {f"vis_enc.conv{i}.1.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    for i in range(3):
        names |= {f"blocks.{i}.{k}" for k in ("ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.proj.weight",
                                              "ln2.weight", "ln2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                                              "mlp.fc2.weight", "mlp.fc2.bias")}
    return names


def test_defaults_are_the_release_config():
    assert VLMNanoConfig().release_config == RELEASE_CONFIG


def test_parameter_count_matches_the_release_card():
    model = VLMNano()
    assert model.get_num_params() == 698_624
    with_tied_head_again = sum(v.numel() for k, v in model.named_parameters()) + model.lm_head.weight.numel()
    assert with_tied_head_again == 960_768


def test_state_dict_names_and_shapes_match_the_release():
    state = VLMNano().state_dict()
    assert set(state) == release_state_dict_names()
    assert state["vis_enc.conv1.0.weight"].shape == (16, 3, 3, 3)
    assert state["vis_enc.conv3.0.weight"].shape == (64, 32, 3, 3)
    assert state["vis_enc.proj.weight"].shape == (128, 64)
    assert state["blocks.0.attn.qkv.weight"].shape == (384, 128)
    assert state["blocks.2.mlp.fc1.weight"].shape == (256, 128)
    assert state["pos_emb.weight"].shape == (64, 128)
    assert torch.equal(state["lm_head.weight"], state["tok_emb.weight"])


def test_head_is_tied_to_the_token_embedding():
    model = VLMNano()
    assert model.lm_head.weight is model.tok_emb.weight


def test_forward_returns_text_logits_and_loss():
    model = VLMNano()
    images, idx = torch.randn(2, 3, 112, 112), torch.randint(0, 2048, (2, 10))
    logits, loss = model(images, idx, targets=idx)
    assert logits.shape == (2, 10, 2048)
    # At init the prediction is near uniform (the tied head favours the input token a little).
    assert loss.ndim == 0 and 0.75 * 7.625 < loss.item() < 1.05 * 7.625  # ln(2048) = 7.625


def test_attention_is_causal_over_the_whole_sequence():
    """Changing a later caption token leaves earlier logits untouched; the image changes all of them."""
    model = VLMNano().eval()
    images, idx = torch.randn(1, 3, 112, 112), torch.randint(0, 2048, (1, 8))
    changed = idx.clone()
    changed[0, 5] = (idx[0, 5] + 1) % 2048
    a, _ = model(images, idx)
    b, _ = model(images, changed)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_image_index_lets_captions_share_an_encoder_pass():
    model = VLMNano().eval()
    images, idx = torch.randn(2, 3, 112, 112), torch.randint(0, 2048, (3, 6))
    shared, _ = model(images, idx, image_index=torch.tensor([0, 0, 1]))
    separate, _ = model(images[[0, 0, 1]], idx)
    assert torch.allclose(shared, separate, atol=1e-5)


def test_optimizer_groups_decay_only_conv_and_linear_weights():
    model = VLMNano()
    decay, no_decay = model.optimizer_groups(weight_decay=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert all(n.endswith("weight") and ("conv" in n or "proj" in n or "qkv" in n or "fc" in n) for n in decayed)
    assert "tok_emb.weight" not in decayed and "vis_enc.conv1.1.weight" not in decayed
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_kv_cache_steps_match_a_full_forward():
    torch.manual_seed(0)
    model = VLMNano().eval()
    images, idx = torch.randn(2, 3, 112, 112), torch.randint(3, 2048, (2, 6))
    idx[:, 0] = 1
    full, _ = model(images, idx)
    logits, cache = model.prefill(images, bos_id=1)
    assert torch.allclose(logits, full[:, 0], atol=1e-5)
    for t in range(1, 6):
        logits = model.decode_step(idx[:, t], cache)
        assert torch.allclose(logits, full[:, t], atol=1e-5)


def test_gelu_encoder_is_a_config_option():
    model = VLMNano(encoder_activation="gelu")
    assert isinstance(model.vis_enc.conv1[2], torch.nn.GELU)
    with pytest.raises(ValueError, match="encoder_activation"):
        VLMNano(encoder_activation="tanh")


def test_caption_longer_than_max_seq_is_refused():
    model = VLMNano()
    with pytest.raises(ValueError, match="MAX_SEQ=48"):
        model(torch.randn(1, 3, 112, 112), torch.zeros(1, 49, dtype=torch.long))
