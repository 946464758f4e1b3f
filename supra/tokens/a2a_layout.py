"""Where each kind of token lives in a2a_nano's one vocabulary (docs/releases.md).

    [text ids][<TEXT> </TEXT> <IMAGE> </IMAGE> <VIDEO> </VIDEO> <FRAME>][num_codes visual codes]

Pure arithmetic on ids, no tokenizer: models, generation and data share it. With GPT-2's text part
(50,257 ids) and 256 codes the total is 50,520, the release's vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The VQ-VAE's downsampling (models/vqvae.py: three stride-2 convolutions): an S x S image is an (S/8) x (S/8)
# grid of codes. Its one copy lives here, the lowest layer of all that use it: data may not import models.
VQVAE_DOWNSAMPLE = 8
# a2a_nano's context in tokens, as its card states: the model's default (A2AConfig), and the task's and the data's
A2A_CONTEXT = 384


def is_image_side(size: int) -> bool:
    """Whether an S x S image is one the VQ-VAE takes whole: S a positive multiple of VQVAE_DOWNSAMPLE."""
    return size >= VQVAE_DOWNSAMPLE and size % VQVAE_DOWNSAMPLE == 0


# In this order right after the text ids; the release names these seven.
CONTROL_TOKENS = ("<TEXT>", "</TEXT>", "<IMAGE>", "</IMAGE>", "<VIDEO>", "</VIDEO>", "<FRAME>")
NUM_CONTROL = len(CONTROL_TOKENS)


class _ControlId:
    """A layout's id of one control token (`layout.text_open`, ...): right after the text ids, in
    CONTROL_TOKENS order."""

    def __init__(self, token: str) -> None:
        self.offset = CONTROL_TOKENS.index(token)

    def __get__(self, layout: TokenLayout | None, owner: type) -> int | _ControlId:
        return self if layout is None else layout.text_size + self.offset


@dataclass(frozen=True)
class TokenLayout:
    text_size: int  # number of text ids: 50,257 for GPT-2, the trained BPE's real size otherwise
    num_codes: int = 256

    def __post_init__(self) -> None:
        if self.text_size < 1 or self.num_codes < 1:
            raise ValueError(f"TokenLayout needs text_size >= 1 and num_codes >= 1, got {self.text_size}, {self.num_codes}")

    # -- control ids ----------------------------------------------------------------------------

    text_open = _ControlId("<TEXT>")
    text_close = _ControlId("</TEXT>")
    image_open = _ControlId("<IMAGE>")
    image_close = _ControlId("</IMAGE>")
    video_open = _ControlId("<VIDEO>")
    video_close = _ControlId("</VIDEO>")
    frame = _ControlId("<FRAME>")

    @property
    def control_ids(self) -> dict[str, int]:
        """Control token name ("<TEXT>", ...) -> id."""
        return {name: self.text_size + i for i, name in enumerate(CONTROL_TOKENS)}

    @property
    def code_offset(self) -> int:
        return self.text_size + NUM_CONTROL

    @property
    def vocab_size(self) -> int:
        return self.text_size + NUM_CONTROL + self.num_codes

    # -- codes <-> ids --------------------------------------------------------------------------

    def code_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """codes int [...] in [0, num_codes) -> token ids int64 [...]."""
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.num_codes):
            raise ValueError(f"codes must lie in [0, {self.num_codes}); got {int(codes.min())}..{int(codes.max())}")
        return codes + self.code_offset

    def to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids int [...] that are all codes -> codes int64 [...]; ValueError on any other id."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        if not bool(self.is_code(ids).all()):
            bad = ids[~self.is_code(ids)][0]
            raise ValueError(f"id {int(bad)} is not a visual code (codes are {self.code_offset}..{self.vocab_size - 1})")
        return ids - self.code_offset

    def is_code(self, ids: torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids)
        return (ids >= self.code_offset) & (ids < self.vocab_size)

    # -- blocks ---------------------------------------------------------------------------------

    def image_block(self, codes: torch.Tensor) -> list[int]:
        """codes [h, w] -> <IMAGE> + h*w code ids in raster order + </IMAGE>."""
        codes = torch.as_tensor(codes)
        if codes.dim() != 2:
            raise ValueError(f"image codes must be [h, w], got shape {tuple(codes.shape)}")
        return [self.image_open, *self.code_ids(codes).flatten().tolist(), self.image_close]

    def video_block(self, codes: torch.Tensor) -> list[int]:
        """codes [T, h, w] -> <VIDEO> (<FRAME> + h*w code ids) * T </VIDEO>."""
        codes = torch.as_tensor(codes)
        if codes.dim() != 3:
            raise ValueError(f"video codes must be [T, h, w], got shape {tuple(codes.shape)}")
        ids = [self.video_open]
        for frame in self.code_ids(codes):
            ids += [self.frame, *frame.flatten().tolist()]
        return [*ids, self.video_close]

    @staticmethod
    def video_block_len(frames: int, grid_tokens: int) -> int:
        """Tokens in a video block of `frames` frames of `grid_tokens` codes: 2 + frames * (1 + grid_tokens)."""
        return 2 + frames * (1 + grid_tokens)

    @staticmethod
    def frames_that_fit(grid_tokens: int, context: int = A2A_CONTEXT, prefix: int = 0) -> int:
        """How many frames of `grid_tokens` codes fit in a video block after `prefix` tokens within `context`.

        64 codes (a 64x64 image): (384 - 2) // 65 = 5; 4 frames take 262 tokens.
        """
        room = context - prefix - 2  # <VIDEO> ... </VIDEO>
        return max(0, room // (1 + grid_tokens))
