"""The VQ-VAE LightningModule (stage 1 of Supra-A2A-Nano): reconstruction training of an image tokenizer,
and evaluation by PSNR, SSIM, codebook usage and code perplexity over the whole split.

Batches come from a MediaDataModule: pixels float in [-1, 1], [B, 3, S, S] or clips [B, T, 3, S, S]
(a clip's frames are tokenized one by one, as stage 2 sees them).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from supra.artifacts.checkpoints import refuse_changed_model
from supra.artifacts.kinds import VQVAE_CHECKPOINT
from supra.data.images import as_images
from supra.data.media.datamodule import MediaDataModule
from supra.metrics.codebook_usage import CodebookUsage
from supra.tasks.base import OptimizerFactory, SchedulerFactory, SupraTask, computed_over_ranks
from supra.utils.errors import SupraUserError

RECON_LOSSES = ("mse", "l1", "mse+l1")


class VQAutoencodingTask(SupraTask):
    """Trains `net` (a VQVAE) to reconstruct its input through the codebook.

    optimizer / scheduler are factories (Hydra `_partial_: true`), as in the captioning task.
    `recon_loss`: "mse" (the default), "l1", or "mse+l1".
    """

    checkpoint_kind = VQVAE_CHECKPOINT
    reads_data = MediaDataModule
    data_choices = "data=shapes_images, shapes_video or media_folder"
    callbacks_choice = "vqvae"

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None,
        scheduler: SchedulerFactory | None = None,
        recon_loss: str = "mse",
        run_config: dict | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler, run_config)
        if recon_loss not in RECON_LOSSES:
            raise SupraUserError(f"model.recon_loss={recon_loss!r} is unknown: choose one of {', '.join(RECON_LOSSES)}")
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "run_config"], logger=False)
        self.net = net
        num_codes = net.config.num_codes
        # [0, 1] images, so PSNR reads as usual (a mean-colour guess scores ~20.5 dB on shapes)
        self.psnr = nn.ModuleDict({s: PeakSignalNoiseRatio(data_range=1.0) for s in ("val", "test")})
        self.ssim = nn.ModuleDict({s: StructuralSimilarityIndexMeasure(data_range=1.0) for s in ("val", "test")})
        self.usage = nn.ModuleDict({s: CodebookUsage(num_codes) for s in ("val", "test")})

    def check_resumes(self, saved_net: dict[str, Any], source: str, given: Collection[str] = ()) -> None:
        # ema decides whether the codebook is the optimiser's: its state cannot follow (torch: "parameter group
        # doesn't match"); the other settings show in the weights' shapes or only steer training
        before, now = saved_net.get("ema", True), self.net.config.ema
        refuse_changed_model(source, [("ema", before, now)] if before != now else [], given)

    def metric_names(self, data: Any = None) -> dict[str, int]:
        """The metrics a fit logs, each at every validation (1): the names a callback may monitor (the runner
        checks them before training)."""
        names = ["train/loss", "train/recon_loss", "train/perplexity", "val/loss", "val/psnr", "val/ssim",
                 "val/codebook_usage", "val/perplexity"]
        return dict.fromkeys(names, 1)

    def parameter_groups(self) -> list[torch.nn.Parameter]:
        # With EMA the codebook is no parameter of the optimiser: it follows the encoder by averages.
        return [p for p in self.net.parameters() if p.requires_grad]

    def _recon_loss(self, reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        kind = self.hparams.recon_loss
        loss = reconstruction.new_zeros(())
        if "mse" in kind:
            loss = loss + F.mse_loss(reconstruction, images)
        if "l1" in kind:
            loss = loss + F.l1_loss(reconstruction, images)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images = as_images(batch["pixels"])
        reconstruction, vq_loss, _, stats = self.net(images)
        recon_loss = self._recon_loss(reconstruction, images)
        loss = recon_loss + vq_loss
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/recon_loss", recon_loss)
        self.log("train/perplexity", stats["perplexity"])
        return loss

    @torch.no_grad()
    def reconstruct(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels in [-1, 1] ([B, 3, S, S] or [B, T, 3, S, S]) -> their reconstructions, same shape."""
        reconstruction = self.net.decode(self.net.encode(as_images(pixels)))
        return reconstruction.view(pixels.shape)

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        images = as_images(batch["pixels"])
        reconstruction, vq_loss, codes, _ = self.net(images)
        # Under DDP a rank may be handed a row another rank scores (data/base.py RankBatches): logged with no
        # weight, so every rank logs the same names and their epoch-end reductions stay in step. A float weight:
        # Lightning averages the ranks' summed weights in the tensor's own dtype (int: 7.5 -> 7 on gloo).
        scored = not any(batch.get("repeated", ()))  # a rank's share is its own rows or one repeat (rank_rows)
        loss = self._recon_loss(reconstruction, images) + vq_loss
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=float(len(images)) if scored else 0.0)
        if not scored:
            return
        original, reconstruction = (images + 1) / 2, ((reconstruction + 1) / 2).clamp(0, 1)
        self.psnr[stage].update(reconstruction, original)
        self.ssim[stage].update(reconstruction, original)
        # the quantiser's loss is NaN where the latents (or the codebook) are: their codes then mean nothing
        self.usage[stage].update(codes, torch.isfinite(vq_loss))

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _log_epoch(self, stage: str) -> dict[str, torch.Tensor]:
        # Computed over the whole split (all ranks' states are summed first), then reset.
        scores = {"psnr": computed_over_ranks(self.psnr[stage]), "ssim": computed_over_ranks(self.ssim[stage]),
                  **computed_over_ranks(self.usage[stage])}
        self.log_rank_equal(stage, scores, prog_bar=("psnr", "codebook_usage"))
        for metric in (self.psnr[stage], self.ssim[stage], self.usage[stage]):
            metric.reset()
        return scores

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        scores = self._log_epoch("test")
        datamodule = self.trainer.datamodule
        self.test_results = {
            "split": datamodule.split, "scores": {name: float(value) for name, value in scores.items()},
            "details": {"n_items": len(datamodule.items(datamodule.split))}, "predictions": [],
        }
