"""vqvae_f8 (stage 1 of Supra-A2A-Nano): shapes, size, straight-through gradients, EMA and dead-code restarts."""

import re

import pytest
import torch

from supra.models.vqvae import VQVAE


def images(n: int = 4, side: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_a_64px_image_is_an_8x8_grid_of_256_codes_and_back():
    model = VQVAE().eval()
    codes = model.encode(images())
    assert codes.shape == (4, 8, 8) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() < 256
    assert model.decode(codes).shape == (4, 3, 64, 64)


def test_parameter_count_is_about_the_cards_0_22m():
    assert 200_000 < VQVAE().get_num_params() < 240_000


def test_other_sides_that_are_multiples_of_8_work_and_others_are_refused():
    model = VQVAE().eval()
    assert model.encode(images(1, 96)).shape == (1, 12, 12)
    with pytest.raises(ValueError, match="multiple of 8"):
        model.encode(images(1, 60))


@pytest.mark.parametrize(("option", "message"), [
    ({"beta": -1}, "model.net.beta=-1 must be a number >= 0.0"),
    ({"beta": "abc"}, "model.net.beta='abc' must be a number >= 0.0"),
    ({"ema_decay": 1.0}, "model.net.ema_decay=1.0 must be a number >= 0.0 and < 1.0"),
    ({"num_codes": 1}, "model.net.num_codes=1 must be a whole number >= 2"),
    ({"beta": float("nan")}, "model.net.beta=nan must be a number >= 0.0"),  # it trained to a NaN loss
    ({"hidden": [32]}, "model.net.hidden=[32] must be two whole numbers >= 1"),
    ({"hidden": [0, 64]}, "model.net.hidden=[0, 64] must be two whole numbers >= 1"),
    ({"ema": "maybe"}, "model.net.ema='maybe' must be true or false"),
])
def test_a_setting_it_cannot_train_with_is_one_line(option, message):
    from supra.utils.errors import SupraUserError

    with pytest.raises(SupraUserError, match=re.escape(message)):
        VQVAE(**option)


def test_decode_of_encode_matches_the_forward_reconstruction_in_eval():
    model = VQVAE().eval()
    x = images()
    reconstruction, _, codes, _ = model(x)
    assert torch.equal(codes, model.encode(x))
    assert torch.allclose(model.decode(codes), reconstruction, atol=1e-6)


def test_gradients_pass_the_quantiser_straight_through_to_the_encoder():
    model = VQVAE()
    reconstruction, vq_loss, _, _ = model(images())
    (torch.nn.functional.mse_loss(reconstruction, images()) + vq_loss).backward()
    assert model.encoder[0].weight.grad is not None and model.encoder[0].weight.grad.abs().sum() > 0


def test_ema_moves_the_codebook_without_gradients():
    model = VQVAE(ema=True)
    assert not model.quantizer.codebook.requires_grad
    before = model.quantizer.codebook.detach().clone()
    model.train()
    model(images())
    assert not torch.equal(before, model.quantizer.codebook)


def test_without_ema_the_codebook_learns_by_gradient():
    model = VQVAE(ema=False)
    _, vq_loss, _, _ = model(images())
    vq_loss.backward()
    assert model.quantizer.codebook.grad.abs().sum() > 0


def test_dead_codes_are_reseeded_from_encoder_outputs():
    # No EMA and no optimizer step: the codebook can only change through restarts.
    model = VQVAE(ema=False, restart_dead_after=1).train()
    before = model.quantizer.codebook.detach().clone()
    x = images(8)
    _, _, codes, _ = model(x)
    dead = sorted(set(range(256)) - set(codes.flatten().tolist()))
    assert dead, "a random init leaves codes unused"
    z = model.encoder(x).detach().permute(0, 2, 3, 1).reshape(-1, 64)
    after = model.quantizer.codebook.detach()
    for code in dead:
        assert torch.cdist(after[code][None], z).min() < 1e-3  # now an encoder output (codes sit ~0.3 apart)
    used = sorted(set(codes.flatten().tolist()))
    assert torch.equal(after[used], before[used])


def test_restarts_can_be_switched_off():
    model = VQVAE(ema=False, restart_dead_after=0).train()
    before = model.quantizer.codebook.detach().clone()
    model(images(8))
    assert torch.equal(model.quantizer.codebook.detach(), before)


def test_decode_refuses_codes_outside_the_codebook():
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        VQVAE().decode(torch.full((1, 8, 8), 256))
