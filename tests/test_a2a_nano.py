"""A2ANano: the card's shapes and sizes, forward/loss, the KV cache path and the optimiser groups."""

import math

import pytest
import torch

from supra.models.a2a_nano import A2AConfig, A2ANano
from supra.utils.errors import SupraUserError
from tests.conftest import CONF

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = {"vocab_size": 300, "context": 32, "n_layers": 2, "d_model": 32, "n_heads": 2, "d_mlp": 64}


def test_defaults_are_the_cards_and_the_release_count_is_documented():
    cfg = A2AConfig()
    assert (cfg.vocab_size, cfg.context, cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_mlp, cfg.activation) == (
        50_520, 384, 4, 256, 4, 1024, "gelu")
    untied = A2ANano(cfg)
    assert untied.get_num_params() == 29_124_096  # the card says ~29.7M (module docstring: why not exactly)
    tied = A2ANano(A2AConfig(tie_head=True))
    assert tied.get_num_params() == 16_190_976
    assert tied.lm_head.weight is tied.tok_emb.weight


def test_the_model_conf_comment_gives_the_count_an_untied_head_builds():
    tie_head = next(line for line in (CONF / "model" / "a2a_nano.yaml").read_text().splitlines()
                    if line.strip().startswith("tie_head:"))
    assert tie_head == ("  tie_head: false     # untied: 29.1M at the 50,520-id vocabulary, "
                        "the nearest to the card's ~29.7M (docs/a2a_nano.md)")
    assert f"{A2ANano(A2AConfig(tie_head=False)).get_num_params() / 1e6:.1f}M" == "29.1M"


def test_state_dict_shapes_follow_the_spec():
    state = A2ANano(A2AConfig(vocab_size=1000)).state_dict()
    assert state["tok_emb.weight"].shape == (1000, 256)
    assert state["pos_emb.weight"].shape == (384, 256)
    assert state["blocks.3.attn.qkv.weight"].shape == (768, 256)  # fused QKV
    assert state["blocks.0.mlp.fc1.weight"].shape == (1024, 256)
    assert state["lm_head.weight"].shape == (1000, 256)
    assert "blocks.4.ln1.weight" not in state


def test_head_count_and_activation_are_config_choices():
    model = A2ANano(A2AConfig(**TINY | {"n_heads": 4, "activation": "relu"}))
    assert model.blocks[0].attn.n_heads == 4
    assert isinstance(model.blocks[0].mlp.act, torch.nn.ReLU)
    with pytest.raises(SupraUserError, match=r"^model.net.d_model=256 must be divisible by model.net.n_heads=3"):
        A2AConfig(d_model=256, n_heads=3)
    with pytest.raises(SupraUserError, match=r"^model.net.activation='swish' is unknown: choose one of gelu, "):
        A2AConfig(activation="swish")
    for dropout in (-0.1, 1, "0.1"):  # torch refused the first two when the model was built, the text at a step
        with pytest.raises(SupraUserError, match=r"^model.net.dropout=.* must be a number >= 0 and < 1"):
            A2AConfig(dropout=dropout)
    with pytest.raises(SupraUserError, match=r"^model.net.n_heads=0 must be a whole number >= 1$"):
        A2AConfig(n_heads=0)  # was a ZeroDivisionError


def test_loss_at_init_is_near_uniform_and_ignores_minus_100():
    torch.manual_seed(0)
    model = A2ANano(A2AConfig(**TINY))
    idx = torch.randint(0, 300, (2, 16))
    targets = idx.clone()
    targets[:, :8] = -100
    logits, loss = model(idx, targets)
    assert logits.shape == (2, 16, 300)
    assert abs(loss.item() - math.log(300)) < 0.2
    assert model(idx)[1] is None


def test_longer_than_the_context_is_refused():
    model = A2ANano(A2AConfig(**TINY))
    with pytest.raises(ValueError, match="exceeds the context of 32"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_cached_forward_matches_full_forward_token_by_token_and_in_chunks():
    torch.manual_seed(0)
    model = A2ANano(A2AConfig(**TINY)).eval()
    idx = torch.randint(0, 300, (3, 20))
    full, _ = model(idx)
    torch.testing.assert_close(model.next_logits(idx), full[:, -1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.next_logits(idx, slice(10, 20)), full[:, -1, 10:20], atol=1e-5, rtol=1e-5)
    cache = model.new_cache(3)
    got = [model.forward_cached(idx[:, :5], cache)]
    got += [model.forward_cached(idx[:, t : t + 1], cache) for t in range(5, 12)]
    got.append(model.forward_cached(idx[:, 12:20], cache))  # several tokens onto a non-empty cache
    assert cache.length == 20
    torch.testing.assert_close(torch.stack(got[:-1], 1), full[:, 4:12], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[-1], full[:, 19], atol=1e-5, rtol=1e-5)


def test_optimizer_decays_only_linear_weights_and_sees_a_tied_table_once():
    for tie in (False, True):
        model = A2ANano(A2AConfig(**TINY | {"tie_head": tie}))
        decay, no_decay = torch.optim.AdamW(model.optimizer_groups(0.1), lr=1e-3).param_groups
        assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
        assert all(p.dim() == 2 for p in decay["params"])
        decayed = {id(p) for p in decay["params"]}
        not_decayed = {id(p) for p in no_decay["params"]}
        assert {id(model.tok_emb.weight), id(model.pos_emb.weight)} <= not_decayed
        assert (id(model.lm_head.weight) in decayed) is (not tie)
        total = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
        assert total == model.get_num_params()
