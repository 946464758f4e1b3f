"""The captioning LightningModule: teacher-forced training of an image->caption net, and evaluation
that captions every image of the split and scores it with the COCO caption metrics."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence
from typing import Any

import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn
from torch.nn import functional as F

from supra.artifacts.captioner_release import (
    CHOSEN_BY_GROUP,
    load_release_weights,
    model_differences,
    saved_net_config,
    settings_of_their_choices,
)
from supra.artifacts.checkpoints import refuse_changed_model
from supra.artifacts.kinds import CAPTIONER_CHECKPOINT
from supra.data.captioning.datamodule import CaptionDataModule
from supra.metrics.attr_acc import SCENE_SCORES
from supra.metrics.caption_scores import (
    EmptyReferences,
    caption_metric_names,
    check_metric_families,
    score_captions,
    start_meteor,
)
from supra.models.vlm_generation import DecodeConfig, generate
from supra.models.vlm_nano import VLMNanoConfig
from supra.tasks.base import OptimizerFactory, SchedulerFactory, SupraTask, warn_of_replaced_bytes
from supra.tokens.caption_bpe import PAD_ID, CaptionTokenizer
from supra.utils.cli import check_option_types, check_switches
from supra.utils.distributed import gather_mappings
from supra.utils.errors import SupraUserError
from supra.utils.private_apis import is_last_batch_of_epoch

SANITY_CHECK_IMAGES = 8


def caption_targets(tokens: torch.Tensor) -> torch.Tensor:
    """The next-token targets of caption rows `tokens` [B, T]: [B, T-1], no loss on padding (-100)."""
    return tokens[:, 1:].masked_fill(tokens[:, 1:] == PAD_ID, -100)


def first_images(batch: dict[str, Any], count: int) -> dict[str, Any]:
    """An evaluation batch (data/captioning/datamodule.py) cut to its first `count` images and their reference
    captions."""
    keep = batch["caption_image"] < count
    cut = {"images": batch["images"][:count], "image_ids": batch["image_ids"][:count],
           "tokens": batch["tokens"][keep], "caption_image": batch["caption_image"][keep]}
    if "repeated" in batch:
        cut["repeated"] = batch["repeated"][:count]
    return {**batch, **cut}


def fuses_on_auto(device_type: str, mixed_precision: bool, clipping: bool) -> bool:
    """Whether model.fused_optimizer=auto fuses AdamW: on CUDA, except under mixed precision with gradient
    clipping, where Lightning refuses to clip the gradients of an optimizer that unscales them itself (fused ones
    do). benchmarks/train_throughput.py's plain loop follows it too, so that both loops time the same step."""
    return device_type == "cuda" and not (mixed_precision and clipping)


class CaptioningTask(SupraTask):
    """Trains `net` (a VLMNano-like module) on caption batches of a CaptionDataModule.

    optimizer / scheduler are factories (Hydra `_partial_: true`): optimizer(param_groups) and
    scheduler(optimizer, total_steps=...). `decode` configures validation/test generation.
    `init_from` names a release folder whose weights the net starts from.

    Speed switches (benchmarks/train_throughput.py measures them):
    - `compile`: torch.compile the net's forward (training and validation loss) in place, so
      state-dict names stay the release's; generation keeps the eager KV-cache path.
    - `fused_optimizer`: "auto" passes fused=True to the optimizer on CUDA when it accepts it
      (AdamW: one kernel for all parameters instead of several per tensor), except under mixed
      precision with gradient clipping, which Lightning refuses for fused optimizers; true/false
      force it.
    - `score_every_n_val`: caption metrics (pycocoevalcap, Java for METEOR) on the 1st, (n+1)th, ...
      and the last validation of a fit; val/loss every time. Skipped validations log no scores, so
      a checkpoint monitor keeps the last scored value, which never beats itself: no new best. The
      count is kept in checkpoints, so a resumed run scores the validations the whole run would.
    - `loss_in_progress_bar`: "auto" shows train/loss in the progress bar except on CUDA, where
      Lightning reads every progress-bar value with .item(), a GPU sync each step.
    """

    checkpoint_kind = CAPTIONER_CHECKPOINT
    data_settings_from = {"image_size": "model.net.IMG_SIZE, or a pretrained tower's own",
                          "image_mean": "model.net's encoder: a pretrained tower's own", "image_std":
                          "model.net's encoder: a pretrained tower's own", "max_caption_tokens": "model.net.MAX_SEQ",
                          "vocab_size": "model.net.VOCAB_SIZE"}
    reads_data = CaptionDataModule
    data_choices = "data=shapes, flickr8k, coco, flickr30k, caption_folder, hf_disk or shards"

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None,
        scheduler: SchedulerFactory | None = None,
        weight_decay: float = 0.01,
        decode: dict[str, Any] | None = None,
        val_metrics: Sequence[str] = ("Bleu", "ROUGE_L", "CIDEr"),
        test_metrics: Sequence[str] = ("Bleu", "METEOR", "ROUGE_L", "CIDEr"),
        init_from: str | None = None,
        compile: bool = False,
        fused_optimizer: bool | str = "auto",
        score_every_n_val: int = 1,
        loss_in_progress_bar: bool | str = "auto",
        run_config: dict | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler, run_config)
        # here, not at the first step: `compile=no` would compile, `fused_optimizer=off` fuse
        check_switches({"model.compile": compile, "model.fused_optimizer": fused_optimizer,
                        "model.loss_in_progress_bar": loss_in_progress_bar},
                       auto=("model.fused_optimizer", "model.loss_in_progress_bar"))
        check_option_types({"model.score_every_n_val": score_every_n_val}, whole=["model.score_every_n_val"])
        check_metric_families(val_metrics, "model.val_metrics")
        check_metric_families(test_metrics, "model.test_metrics")
        if score_every_n_val < 1:
            raise SupraUserError(f"model.score_every_n_val={score_every_n_val} must be >= 1: caption scores every "
                                 "n-th validation (1: every one)")
        # Factories stay out of hparams so checkpoints hold plain data and load with weights_only=True.
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "run_config"], logger=False)
        self.net = net
        if init_from:  # fine-tune from a release folder (the runner hands its tokenizer to the data)
            load_release_weights(self.net, init_from)
        self.decode = DecodeConfig(**(decode or {}))
        self.decode.check_vocabulary(net.config.VOCAB_SIZE)  # model.decode.beam_width: refused before any work
        self.tokenizer: CaptionTokenizer | None = None  # the data's, taken at setup
        self._predictions: dict[int, str] = {}
        self._validations = 0  # finished (non-sanity) validations of the run, resumes included: score_every_n_val

    # -- set-up -----------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.tokenizer = self.trainer.datamodule.tokenizer
        if stage == "fit":
            self._validations = 0
            if self.hparams.compile:
                self.net.compile()  # nn.Module.compile: in place, state-dict names unchanged

    def metric_names(self, data: Any = None) -> dict[str, int]:
        """The metrics a fit logs, each with how many validations apart it is computed: the names a callback may
        monitor (the runner checks them before training). The caption scores come every score_every_n_val-th
        validation only (Lightning keeps the last in between); attr_acc and relation_acc with data that knows
        each image's objects (the shapes data's `scene_scores`): all of them when `data` is not given."""
        families = self.hparams.val_metrics
        scores = caption_metric_names(families)
        scene = [name for name in SCENE_SCORES if data is None or name in getattr(data, "scene_scores", ())]
        every = self.hparams.score_every_n_val
        return {"train/loss": 1, "val/loss": 1, **{f"val/{name}": every for name in [*scores, *scene]}}

    def data_settings(self) -> dict[str, Any]:
        config, pixels = self.net.config, self.net.image_input  # a pretrained tower's own size and statistics
        return {"image_size": pixels.size, "image_mean": list(pixels.mean), "image_std": list(pixels.std),
                "max_caption_tokens": config.MAX_SEQ, "vocab_size": config.VOCAB_SIZE}

    def parameter_groups(self) -> list[dict[str, Any]]:
        return self.net.optimizer_groups(self.hparams.weight_decay)

    def optimizer_kwargs(self) -> dict[str, bool]:
        fused = self.hparams.fused_optimizer
        if fused == "auto":
            if not self.optimizer_takes("fused") or self.device.type != "cuda":  # off CUDA: no trainer to ask
                return {}
            trainer = self.trainer
            clipping = bool(trainer.gradient_clip_val) and trainer.gradient_clip_val > 0
            mixed = isinstance(trainer.precision_plugin, MixedPrecision)
            return {"fused": True} if fuses_on_auto(self.device.type, mixed, clipping) else {}
        return {"fused": bool(fused)}

    # -- training ---------------------------------------------------------------------------------

    def _caption_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = batch["tokens"]
        _, loss = self.net(batch["images"], tokens[:, :-1], caption_targets(tokens), batch.get("caption_image"))
        return loss

    def _image_losses(self, batch: dict[str, torch.Tensor]) -> dict[int, tuple[float, int]]:
        """Each image's caption-token cross-entropies, summed exactly (math.fsum), and their count, by image id: over
        the split, a mean that data.eval_batch_size and the ranks do not move (a float32 mean per batch, averaged by
        Lightning, moved in the 7th digit with the batching)."""
        tokens, rows = batch["tokens"], batch.get("caption_image")
        targets = caption_targets(tokens)
        logits, _ = self.net(batch["images"], tokens[:, :-1], None, rows)
        losses = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction="none")
        per_row = [[loss for loss, target in zip(row_losses, row_targets, strict=True) if target != -100]
                   for row_losses, row_targets in zip(losses.view_as(targets).tolist(), targets.tolist(), strict=True)]
        images = batch["image_ids"].tolist()
        of_image: dict[int, list[float]] = {image: [] for image in images}
        for row, row_losses in enumerate(per_row):
            of_image[images[rows[row] if rows is not None else row]].extend(row_losses)
        return {image: (math.fsum(found), len(found)) for image, found in of_image.items()}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._caption_loss(batch)
        self.log("train/loss", loss, prog_bar=self._loss_in_bar())
        return loss

    def _loss_in_bar(self) -> bool:
        show = self.hparams.loss_in_progress_bar
        return self.device.type != "cuda" if show == "auto" else bool(show)

    # -- evaluation -------------------------------------------------------------------------------

    @torch.no_grad()
    def generate_captions(self, images: torch.Tensor, decode: DecodeConfig | None = None) -> list[str]:
        """Normalised images float [B, 3, H, W] -> B captions, with this task's decoding by default."""
        ids = generate(self.net, images, self.tokenizer.bos_id, self.tokenizer.eos_id, decode or self.decode)
        return self.tokenizer.decode_batch(ids)

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        if self.trainer.sanity_checking:  # it proves the path runs, its outputs unused: a few images do (not 250)
            batch = first_images(batch, SANITY_CHECK_IMAGES)
        # Under DDP a rank's share of a batch may be one image another rank scores (data/base.py RankBatches):
        # its loss logged with no weight (every rank logs the same names, their reductions stay in step), and
        # its caption not generated.
        repeat = any(batch.get("repeated", ()))  # a rank's share is its own rows or one repeat (rank_rows)
        # the loss is a mean over the batch's caption tokens, so the epoch's mean weighs each batch by its tokens:
        # weighed by its images, it moved with data.eval_batch_size (a batch of short captions counting as one of
        # long ones). A float weight: under DDP Lightning averages the ranks' summed weights in the tensor's own
        # dtype (int: 941 tokens / 2 ranks -> 470 on gloo), which made the loss 941/940 of one process's
        if stage == "test":  # summed over the split exactly (on_test_epoch_end): the batching does not move it
            if not repeat:
                self._test_losses.update(self._image_losses(batch))
        else:
            tokens = 0.0 if repeat else float((batch["tokens"][:, 1:] != PAD_ID).sum())
            self.log(f"{stage}/loss", self._caption_loss(batch), sync_dist=True, batch_size=tokens)
        if repeat:
            return
        decode = self.decode
        if self.trainer.sanity_checking:
            # The sanity check only proves the path runs; an untrained model never emits EOS, so a full
            # search would cost MAX_SEQ steps of start-up time for captions nobody scores.
            decode = dataclasses.replace(decode, max_new_tokens=4)
        captions = self.generate_captions(batch["images"], decode)
        self._predictions.update(zip(batch["image_ids"].tolist(), captions, strict=True))

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._predictions = {}
        if not self.trainer.sanity_checking and self._scores_validation(self._validations + 1):
            self._start_scorers(self.hparams.val_metrics)

    def on_test_epoch_start(self) -> None:
        self._predictions = {}
        self._test_losses: dict[int, tuple[float, int]] = {}  # image id: its caption tokens' summed loss, count
        self._start_scorers(self.hparams.test_metrics)

    def _start_scorers(self, metrics: Sequence[str]) -> None:
        """METEOR's Java process started now, on the rank that scores: it loads while the captions are decoded."""
        if "METEOR" in metrics and self.trainer.is_global_zero:
            start_meteor()

    def _score_epoch(self, stage: str, split: str, metrics: Sequence[str]) -> dict[str, float]:
        """Gather every rank's captions, score once on rank 0, share the numbers, log them."""
        predictions = gather_mappings(self._predictions)
        datamodule = self.trainer.datamodule

        def score() -> dict[str, float]:
            references = datamodule.references(split)
            try:
                scores = score_captions(predictions, {i: references[i] for i in predictions}, metrics)
            except EmptyReferences as err:
                raise SupraUserError(f"{datamodule.split_source(split)}: {err}") from None
            return {**scores, **datamodule.extra_caption_scores(split, predictions)}

        scores = self.scores_from_rank_zero(score)
        self.log_rank_equal(stage, scores, prog_bar=("CIDEr", "attr_acc"))
        self._predictions = predictions
        return scores

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # two batches of an untrained model: not worth a Java start-up
            return
        self._validations += 1
        if self._scores_validation(self._validations):
            self._score_epoch("val", "val", self.hparams.val_metrics)

    def _scores_validation(self, validation: int) -> bool:
        """Whether the run's `validation`-th validation (from 1) scores its captions: every score_every_n_val-th,
        the fit's last, and any outside a fit."""
        every_n = self.hparams.score_every_n_val
        return self.trainer.state.fn != "fit" or (validation - 1) % every_n == 0 or self._is_last_validation()

    def _is_last_validation(self) -> bool:
        """The fit's final validation (max_steps reached, or the last batch of the last epoch)."""
        trainer = self.trainer
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            return True
        last_epoch = trainer.max_epochs is not None and 0 < trainer.max_epochs <= trainer.current_epoch + 1
        return last_epoch and is_last_batch_of_epoch(trainer)

    def on_test_epoch_end(self) -> None:
        split = self.trainer.datamodule.split
        scores = self._score_epoch("test", split, self.hparams.test_metrics)
        losses = gather_mappings(self._test_losses).values()
        count = sum(tokens for _, tokens in losses)
        scores["loss"] = math.fsum(summed for summed, _ in losses) / count if count else float("nan")
        self.log_rank_equal("test", {"loss": scores["loss"]})
        predictions = dict(sorted(self._predictions.items()))
        warn_of_replaced_bytes(split, predictions.values())
        images = self.trainer.datamodule.image_records(split)  # each row's own id and file
        references = self.trainer.datamodule.references(split)
        self.test_results = {
            "split": split, "scores": scores,
            # decode_settings: every setting the captions were made with (evaluate.py takes the run's own)
            "details": {"n_images": len(predictions), "n_references": sum(len(references[row]) for row in predictions),
                        "decode": self.decode.strategy,
                        "decode_settings": self.decode.settings_used(self.net)},
            "predictions": [{**images[row], "caption": caption} for row, caption in predictions.items()],
        }

    # -- checkpoints ------------------------------------------------------------------------------

    def check_resumes(self, saved_net: dict[str, Any], source: str, given: Collection[str] = ()) -> None:
        theirs, ours = VLMNanoConfig(**saved_net_config(saved_net)), self.net.config
        # N_HEADS, vit.heads, encoder_activation...
        refuse_changed_model(source, model_differences(theirs, ours), given, CHOSEN_BY_GROUP,
                             settings_of_their_choices(theirs, ours))  # vit.* sizes, given with model/encoder=vit
        before, now = theirs.pretrained.trainable_blocks, ours.pretrained.trainable_blocks
        if ours.encoder == "pretrained" and before != now:  # else torch: "parameter group doesn't match"
            raise SupraUserError(
                f"{source} was trained with model.net.pretrained.trainable_blocks={before}, this run sets {now}: the "
                "checkpoint's optimizer state is that of the parameters it trained and cannot follow others; to train "
                f"frozen, then unfreeze, export it (python -m supra.export ckpt=... out=DIR) and start a new run from "
                f"it: model.init_from=DIR model.net.pretrained.trainable_blocks={now}")

    def checkpoint_metadata(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.to_json() if self.tokenizer else None}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["supra"]["validations"] = self._validations

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        # after setup("fit") set it to 0: a resumed run counts on, else its first validation was always scored and
        # the later n-th ones shifted (best.ckpt's val/CIDEr taken at other steps). A checkpoint written before
        # the count was kept counts from the resume.
        self._validations = (checkpoint.get("supra") or {}).get("validations", 0)
