"""The a2a_nano LightningModule (stage 2 of Supra-A2A-Nano): next-token training over mixed sequences,
and evaluation that also generates: image2text captions (BLEU/METEOR/ROUGE_L/CIDEr, as the captioner),
text2image pictures (prompt fidelity by the shapes judge), video next frames (PSNR against the truth).

The stage-1 VQ-VAE (model.vqvae_ckpt, loaded once by the runner and handed to this task and to the data)
is frozen: no gradients, not in the optimizer, and kept in eval mode whatever Lightning switches (its EMA
codebook only moves in train mode). It is saved in the checkpoint ("vqvae.*") so the file alone turns
codes back into pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from omegaconf import ListConfig
from torch import nn
from torchmetrics.image import PeakSignalNoiseRatio

from supra.artifacts.a2a_release import (
    a2a_init_from_folder,
    check_release_vqvae,
    gpt_config_of,
    gpt_differences,
    load_release_gpt,
)
from supra.artifacts.checkpoints import refuse_changed_model
from supra.artifacts.kinds import A2A_CHECKPOINT
from supra.data.a2a.mixture import A2AMixtureDataModule
from supra.data.media.codes import decode_codes
from supra.metrics.attr_acc import attribute_accuracy
from supra.metrics.caption_scores import (
    EmptyReferences,
    caption_metric_names,
    check_metric_families,
    score_captions,
)
from supra.metrics.shape_fidelity import matches
from supra.models.a2a_generation import (
    GENERATION_KEYS,
    SamplingConfig,
    generate_images,
    generate_texts,
    generation_setting_problem,
    prompts_by_length,
    run_schedule,
    video_schedule,
)
from supra.models.a2a_nano import A2AConfig, A2ANano
from supra.tasks.base import OptimizerFactory, SchedulerFactory, SupraTask, warn_of_replaced_bytes
from supra.tokens.a2a_sequences import TASKS
from supra.utils.cli import check_switches
from supra.utils.distributed import gather_mappings
from supra.utils.errors import SupraUserError
from supra.utils.numbers import counted


class A2ATask(SupraTask):
    """Trains `net` (A2ANano, or a factory taking vocab_size: Hydra `_partial_: true`, built at setup
    once the vocabulary is known) on batches of an A2AMixtureDataModule.

    optimizer / scheduler are factories (Hydra `_partial_: true`), as in the other tasks.
    vqvae: the frozen stage-1 VQ-VAE (nn.Module), which the runner loads from `vqvae_ckpt` (recorded
    here for messages and the checkpoint's hyperparameters).
    generation: sampling of validation/test (text_temperature, image_temperature, image_top_k,
    image_guidance, image_best_of, video_temperature, max_caption_tokens, seed).
    code_softmax: where the next token is a visual code, the loss normalises over the codes only, as
    sampling does (inside an image or frame only codes may be drawn); the head then runs over the 256 code
    rows there instead of the whole vocabulary. Off: plain next-token prediction over every id, as the
    release trains.
    init_from: an a2a release folder (or Hub id) whose GPT the run starts from: model.net must have its
    settings (dropout aside), `vqvae` must be its VQ-VAE (the runner hands that over when vqvae_ckpt is
    unset) and the data its vocabulary (the runner hands that over too).
    """

    checkpoint_kind = A2A_CHECKPOINT
    reads_data = A2AMixtureDataModule
    data_choices = "data=a2a_mixture (its sources: shapes, clips, folders, captioned photos, shards)"
    callbacks_choice = "a2a"
    data_settings_from = {"vqvae": "model.vqvae_ckpt", "context": "model.net.context"}

    def __init__(
        self,
        net: nn.Module | Callable[..., nn.Module],
        optimizer: OptimizerFactory | None,
        scheduler: SchedulerFactory | None = None,
        vqvae: nn.Module | None = None,
        vqvae_ckpt: str | None = None,
        weight_decay: float = 0.1,
        generation: dict[str, Any] | None = None,
        val_metrics: Sequence[str] = ("Bleu", "ROUGE_L", "CIDEr"),
        test_metrics: Sequence[str] = ("Bleu", "METEOR", "ROUGE_L", "CIDEr"),
        code_softmax: bool = False,
        init_from: str | None = None,
        run_config: dict | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler, run_config)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "vqvae", "run_config"], logger=False)
        # here, not at setup or the first step: `code_softmax=no` would train with it, `net.bias=no` build biases
        factory = {} if isinstance(net, nn.Module) else getattr(net, "keywords", {})  # model.net, built at setup
        check_switches({"model.code_softmax": code_softmax,
                        **{f"model.net.{key}": factory[key] for key in ("tie_head", "bias") if key in factory}})
        check_metric_families(val_metrics, "model.val_metrics")
        check_metric_families(test_metrics, "model.test_metrics")
        if getattr(net, "func", None) == A2ANano.from_kwargs:  # model.net's values: before the data is encoded
            gpt_config_of(factory)
        if vqvae is None:
            raise SupraUserError("model.vqvae_ckpt is not set: give the stage-1 VQ-VAE checkpoint, e.g. "
                                 "model.vqvae_ckpt=logs/train/runs/<run>/checkpoints/best.ckpt "
                                 "(from `python train.py experiment=vqvae_shapes`), or fine-tune an a2a release "
                                 "with model.init_from=FOLDER")
        self.vqvae = vqvae.eval()
        self.vqvae.requires_grad_(False)
        if init_from:  # fine-tune: the release's GPT now, at its vocabulary, over its own VQ-VAE
            check_release_vqvae(self.vqvae, init_from, vqvae_ckpt)
            net = load_release_gpt(net, a2a_init_from_folder(init_from))
        self.net: nn.Module | None = net if isinstance(net, nn.Module) else None
        self.net_factory = None if isinstance(net, nn.Module) else net
        self.generation = {"text_temperature": 0.0, "image_temperature": 1.0, "image_top_k": None,
                           "image_guidance": 1.0, "image_best_of": 1, "video_temperature": 0.0,
                           "max_caption_tokens": 32, "seed": 0, **(generation or {})}
        for key, value in self.generation.items():  # here, not at the first validation's sampling
            problem = (generation_setting_problem(key, value) if key in GENERATION_KEYS
                       else f"is no sampling setting (they are {', '.join(GENERATION_KEYS)})")
            if problem:
                raise SupraUserError(f"model.generation.{key}={value} {problem}")
        self.vocab = None  # the data's, taken at setup
        self.psnr = nn.ModuleDict({s: PeakSignalNoiseRatio(data_range=1.0) for s in ("val", "test")})
        self.psnr_copy = nn.ModuleDict({s: PeakSignalNoiseRatio(data_range=1.0) for s in ("val", "test")})
        self._reset_epoch()

    # -- set-up -----------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        super().setup(stage)  # the data's context and VQ-VAE: this GPT's
        self.vocab = self.trainer.datamodule.vocab
        layout = self.vocab.layout
        num_codes = self.vqvae.config.num_codes
        if num_codes != layout.num_codes:
            raise SupraUserError(
                f"the VQ-VAE (model.vqvae_ckpt={self.hparams.vqvae_ckpt}) has a codebook of {num_codes} codes but the "
                f"GPT's vocabulary has {layout.num_codes} visual codes: use the VQ-VAE the vocabulary was built for")
        if self.net is None:
            self.net = self.net_factory(vocab_size=layout.vocab_size)
        if self.net.config.vocab_size != layout.vocab_size:
            raise SupraUserError(f"the GPT has {self.net.config.vocab_size} token ids but the vocabulary "
                                 f"{layout.vocab_size}: use the vocabulary saved with the model")
        if self.trainer.datamodule.context > self.net.config.context:  # a factory whose context data_settings missed
            raise SupraUserError(f"data.context={self.trainer.datamodule.context} is longer than the GPT's context "
                                 f"{self.net.config.context} (model.net.context)")
        if stage == "fit":  # once, before any step: a scoring run's codes are the model's, whatever they are
            self._warn_of_a_collapsed_vqvae(self.trainer.datamodule.train_codes_used())

    def _warn_of_a_collapsed_vqvae(self, codes: list[int]) -> None:
        """One line when the frozen VQ-VAE gave every train picture one code (a VQ-VAE trained a few steps): the
        GPT would learn nothing of pictures, its image tasks one token, without a word otherwise."""
        if len(codes) != 1:
            return
        given = (f"model.vqvae_ckpt={self.hparams.vqvae_ckpt}" if self.hparams.vqvae_ckpt
                 else f"model.init_from={self.hparams.init_from}")
        rank_zero_warn(f"the VQ-VAE ({given}) gives every train picture the one code {codes[0]}: it has collapsed "
                       "(too few training steps?), so the GPT learns nothing of the pictures; train the VQ-VAE longer "
                       "(python train.py experiment=vqvae_shapes) and give its checkpoint")

    @property
    def context(self) -> int:
        """The GPT's context in tokens (read from its factory until it is built)."""
        if self.net is not None:
            return self.net.config.context
        return int(getattr(self.net_factory, "keywords", {}).get("context", A2AConfig.context))

    def data_settings(self) -> dict[str, Any]:
        # The data encodes its images with this very VQ-VAE and builds sequences that fit this GPT.
        return {"vqvae": self.vqvae, "context": self.context}

    def metric_names(self, data: Any = None) -> dict[str, int]:
        """The metrics a fit may log, each at every validation (1): the names a callback may monitor (the runner
        checks them before training). Which of them a run logs depends on its data's tasks and sources."""
        families = self.hparams.val_metrics
        captions = caption_metric_names(families)
        losses = ["loss", *(f"loss_{task}" for task in TASKS)]
        scores = [*captions, "image2text_attr_acc", *FIDELITY_SCORES, "video_psnr", "video_psnr_copy_baseline"]
        return dict.fromkeys([*(f"train/{name}" for name in losses), *(f"val/{name}" for name in losses + scores)], 1)

    def parameter_groups(self) -> list[dict[str, Any]]:
        # Only the GPT: the VQ-VAE is frozen and never reaches the optimizer.
        return self.net.optimizer_groups(self.hparams.weight_decay)

    def optimizer_kwargs(self) -> dict[str, Any]:
        # an optimizer that treats the hidden matrices apart (tasks/optimizers.py) is told which they are
        if self.optimizer_takes("hidden_matrices"):
            return {"hidden_matrices": self.net.hidden_matrices()}
        return {}

    def train(self, mode: bool = True) -> A2ATask:
        super().train(mode)
        self.vqvae.eval()  # frozen: Lightning's train() must not switch it (EMA codebook updates)
        return self

    def on_train_epoch_start(self) -> None:
        self.vqvae.eval()

    # -- the loss ---------------------------------------------------------------------------------

    def _token_losses(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy float [B, T] (0 where the target is -100)."""
        if not self.hparams.code_softmax:
            logits, _ = self.net(ids)
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                                   reduction="none").view(targets.shape)
        layout = self.vocab.layout
        hidden = self.net.hidden_states(ids)
        is_code = targets >= layout.code_offset
        losses = hidden.new_zeros(targets.shape, dtype=torch.float32)
        codes = slice(layout.code_offset, layout.vocab_size)
        losses[is_code] = F.cross_entropy(self.net.head(hidden[is_code], codes).float(),
                                          targets[is_code] - layout.code_offset, reduction="none")
        other = ~is_code & (targets != -100)
        losses[other] = F.cross_entropy(self.net.head(hidden[other]).float(), targets[other], reduction="none")
        return losses

    def _losses(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean next-token loss over every target position, and the same per task of the rows."""
        targets = batch["targets"]
        token_losses = self._token_losses(batch["ids"], targets)
        counts = (targets != -100).sum(1)
        loss = token_losses.sum() / counts.sum().clamp(min=1)
        per_task = {}
        tasks = batch["tasks"]
        for task in sorted(set(tasks)):
            rows = torch.tensor([t == task for t in tasks], device=targets.device)
            per_task[task] = token_losses[rows].sum() / counts[rows].sum().clamp(min=1)
        return loss, per_task

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, per_task = self._losses(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["tasks"]))
        for task, value in per_task.items():
            self.log(f"train/loss_{task}", value, batch_size=len(batch["tasks"]))
        return loss

    # -- generation (also used by the sample grids) -------------------------------------------------

    def _generator(self, offset: int = 0) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(self.generation["seed"]) + 1000 * self.global_rank + offset)
        return generator

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [..., h, w] -> uint8 pictures [..., 3, 8h, 8w] through the frozen VQ-VAE."""
        return decode_codes(self.vqvae, codes)

    @torch.no_grad()
    def images_for(self, prompts: list[list[int]], grid: tuple[int, int], generator: torch.Generator | None = None) -> torch.Tensor:
        """Prompt ids (ending with <IMAGE>) -> codes int64 [B, h, w]."""
        g = self.generation
        return generate_images(self.net, self.vocab.layout, prompts, grid, temperature=g["image_temperature"],
                               top_k=g["image_top_k"], generator=generator, guidance=g["image_guidance"],
                               best_of=g["image_best_of"])

    @torch.no_grad()
    def captions_for(self, prompts: list[list[int]], generator: torch.Generator | None = None) -> list[str]:
        """Prompt ids (an image block, then <TEXT>) -> captions."""
        g = self.generation
        ids = generate_texts(self.net, self.vocab.layout, prompts, g["max_caption_tokens"],
                             temperature=g["text_temperature"], generator=generator)
        return [self.vocab.decode_generated(row).strip() for row in ids]

    @torch.no_grad()
    def frames_for(self, prompts: list[list[int]], frames: int, grid: tuple[int, int], first_frame_open: bool,
                   temperature: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Prompts ending inside a video block (after <VIDEO>, or after whole frames and the next <FRAME>
        when first_frame_open) -> `frames` new frames' codes int64 [B, F, h, w]. Prompts run in groups
        of equal length."""
        layout = self.vocab.layout
        temperature = self.generation["video_temperature"] if temperature is None else temperature
        schedule = video_schedule(layout, frames, grid, first_frame_open, self.device)[:-1]
        out = torch.empty(len(prompts), frames, *grid, dtype=torch.long)
        for rows in prompts_by_length(prompts).values():
            ids = torch.tensor([prompts[r] for r in rows], device=self.device)
            new = run_schedule(self.net, ids, schedule, SamplingConfig(temperature), generator)
            codes = new[new != layout.frame].view(len(rows), frames * grid[0] * grid[1])
            out[rows] = layout.to_codes(codes).view(len(rows), frames, *grid).cpu()
        return out

    # -- evaluation -------------------------------------------------------------------------------

    def _reset_epoch(self) -> None:
        self._captions: dict[str, str] = {}
        self._references: dict[str, list[str]] = {}
        self._files: dict[str, str | None] = {}  # item key -> its file relative to its source's root
        self._objects: dict[str, list[tuple[str, str]]] = {}
        self._fidelity: dict[str, Judged] = {}  # item key -> how its generated picture was judged
        self._said_no_video_pixels = False  # once per evaluation
        self._unscored_clips: dict[str, int] = {}  # clip key -> frames given: every frame after them padding
        self._scored_clips: dict[str, bool] = {}  # clip key -> True: a clip video_psnr scores frames of
        self._item_counts: dict[str, int] = {}  # what each score was scored over (_score_epoch): metrics.json's n_*

    def _log_eval_losses(self, batch: dict[str, Any], stage: str) -> None:
        """The batch's mean token loss (and its task's, the same: an evaluation batch is of one task), weighted
        by its rows; under DDP by the rank's share (EvalBatches' loss_weight), so the ranks log one process's."""
        task = batch["task"]
        loss, per_task = self._losses(batch)
        weight = float(batch.get("loss_weight", len(batch["tasks"])))
        self.log(f"{stage}/loss", loss, batch_size=weight, sync_dist=True)
        self.log(f"{stage}/loss_{task}", per_task[task], batch_size=weight, sync_dist=True)

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        task, n = batch["task"], len(batch["tasks"])
        self._log_eval_losses(batch, stage)
        if self.trainer.sanity_checking:
            return  # an untrained model's samples: not worth generating
        prompts = [row[:length].tolist() for row, length in zip(batch["ids"].cpu(), batch["prompt_lengths"].tolist(), strict=True)]
        if task == "text2image":
            self._score_images(batch, prompts)
        elif task == "image2text":
            captions = self.captions_for(prompts, self._generator(len(self._captions)))
            files = batch.get("files") or [None] * n
            for key, caption, refs, objects, file in zip(batch["keys"], captions, batch["references"], batch["objects"],
                                                          files, strict=True):
                self._captions[key], self._references[key], self._files[key] = caption, refs, file
                if objects is not None:
                    self._objects[key] = objects
        elif task == "video":
            self._score_video(batch, prompts, stage)

    def _score_images(self, batch: dict[str, Any], prompts: list[list[int]]) -> None:
        known = [i for i, objects in enumerate(batch["objects"]) if objects is not None]
        if not known:
            return
        grid = tuple(batch["codes"].shape[-2:])
        codes = self.images_for([prompts[i] for i in known], grid, self._generator(len(self._fidelity)))
        wanted = [batch["objects"][i] for i in known]
        captions = [batch["prompts_text"][i] for i in known]  # the places the prompt states are judged too
        judged = matches(self.decode_codes(codes), wanted, captions)
        ceiling = matches(self.decode_codes(batch["codes"][known]), wanted)  # the true codes, decoded
        for j, i in enumerate(known):
            self._fidelity[batch["keys"][i]] = Judged(float(judged[j].exact), float(judged[j].colours),
                                                      float(ceiling[j].exact), float(judged[j].placed), len(wanted[j]))

    def _score_video(self, batch: dict[str, Any], prompts: list[list[int]], stage: str) -> None:
        if "pixels" not in batch:  # the train split's clips: their pixels are not kept (sources.py)
            if not self._said_no_video_pixels:
                self._said_no_video_pixels = True
                rank_zero_info("video PSNR is not scored on the train split: its clips' pixels are kept for val and "
                               "test only (data.split=val or test scores it)")
            return
        codes = batch["codes"]  # [B, T, h, w]
        layout = self.vocab.layout
        given = sum(1 for t in prompts[0] if t == layout.frame) - 1  # the prompt ends with the next <FRAME>
        frames = codes.shape[1] - given
        predicted = self.frames_for(prompts, frames, tuple(codes.shape[-2:]), first_frame_open=True)
        pictures = self.decode_codes(predicted).float() / 255  # [B, F, 3, S, S]
        truth = batch["pixels"][:, given:].float().cpu() / 255
        last_given = batch["pixels"][:, given - 1 : given].float().cpu() / 255
        # under DDP a batch smaller than the world repeats clips on some ranks: each clip counts once
        own = torch.tensor([not repeated for repeated in batch.get("repeated", [False] * len(codes))])
        pictures, truth, last_given = pictures[own], truth[own], last_given[own]
        predicted_frames, true_frames = pictures.flatten(0, 1), truth.flatten(0, 1)
        copied_frames = last_given.expand_as(truth).flatten(0, 1)
        own_keys = [key for key, mine in zip(batch["keys"], own.tolist(), strict=True) if mine]
        if "real_frames" in batch:  # clips padded from a short GIF: their repeats are no truth
            real = real_continuation(batch["real_frames"][own] - given, frames)
            for key, clip_real in zip(own_keys, real.view(-1, frames).any(dim=1).tolist(), strict=True):
                if clip_real:
                    self._scored_clips[key] = True
                else:
                    self._unscored_clips[key] = given
            predicted_frames, true_frames, copied_frames = predicted_frames[real], true_frames[real], copied_frames[real]
            if not len(true_frames):
                return
        else:
            self._scored_clips.update(dict.fromkeys(own_keys, True))
        self.psnr[stage].update(predicted_frames.to(self.device), true_frames.to(self.device))
        self.psnr_copy[stage].update(copied_frames.to(self.device), true_frames.to(self.device))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._reset_epoch()

    on_test_epoch_start = on_validation_epoch_start

    def _score_epoch(self, stage: str, metrics: Sequence[str]) -> dict[str, float]:
        captions = gather_mappings(self._captions)
        references = gather_mappings(self._references)
        objects = gather_mappings(self._objects)

        def score() -> dict[str, float]:
            if not captions:
                return {}
            try:
                scores = score_captions(captions, references, metrics)
            except EmptyReferences as err:  # keys are "<source>/<item>"
                split = "val" if stage == "val" else self.trainer.datamodule.split
                sources = ", ".join(f"data.sources.{s}" for s in sorted({str(k).split("/", 1)[0] for k in captions}))
                raise SupraUserError(f"the image2text references of the {split} split ({sources}): {err}") from None
            if objects:
                scores["image2text_attr_acc"] = attribute_accuracy(captions, {k: objects[k] for k in captions if k in objects})
            return scores

        scores = self.scores_from_rank_zero(score)
        fidelity = gather_mappings(self._fidelity)
        self._item_counts = {}
        if fidelity:
            judged = [Judged(*row) for row in fidelity.values()]
            scores.update(_fidelity_scores(judged))
            self._item_counts = _fidelity_counts(judged)
        scored_clips = gather_mappings(self._scored_clips)
        if self.psnr[stage].update_count:
            scores["video_psnr"] = float(self.psnr[stage].compute())
            scores["video_psnr_copy_baseline"] = float(self.psnr_copy[stage].compute())
            self._item_counts["n_video_clips"] = len(scored_clips)
        unscored = gather_mappings(self._unscored_clips)
        if unscored:
            say_unscored_clips(unscored, scored="video_psnr" in scores)
        self.psnr[stage].reset()
        self.psnr_copy[stage].reset()
        self.log_rank_equal(stage, scores, prog_bar=("CIDEr", "text2image_fidelity"))
        self._captions, self._unscored_clips = captions, unscored
        return scores

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self._score_epoch("val", self.hparams.val_metrics)

    def on_test_epoch_end(self) -> None:
        split = self.trainer.datamodule.split
        scores = self._score_epoch("test", self.hparams.test_metrics)
        predictions = dict(sorted(self._captions.items()))
        warn_of_replaced_bytes(split, predictions.values())
        files = gather_mappings(self._files)
        # how many items each score was scored over, so that a score is read against its sample size; the losses are
        # over the first test_items items of each task (null: all)
        details: dict[str, Any] = {"n_captions": len(predictions), **self._item_counts,
                                   "test_items": self.trainer.datamodule.test_items}
        if self._unscored_clips:  # gathered by _score_epoch: how many clips video_psnr left out, if any
            details["video_clips_unscored"] = len(self._unscored_clips)
        self.test_results = {
            "split": split, "scores": scores, "details": details,
            # image_id: "<source>/<item>" (a GIF's frames and clips carry "#frame i" / "#clip k")
            "predictions": [{"image_id": key, "file": files.get(key), "caption": caption} for key, caption in predictions.items()],
        }

    # -- checkpoints ------------------------------------------------------------------------------

    def check_resumes(self, saved_net: dict[str, Any], source: str, given: Collection[str] = ()) -> None:
        # n_heads, activation, tie_head give weights of the same shapes; the GPT may still be its factory here
        ours = self.net.config if self.net is not None else gpt_config_of(getattr(self.net_factory, "keywords", {}))
        refuse_changed_model(source, gpt_differences(gpt_config_of(saved_net), ours), given)

    def checkpoint_metadata(self) -> dict[str, Any]:
        return {
            "a2a_vocab": self.vocab.to_json() if self.vocab else None,
            "net_config": self.net.config.to_dict() if self.net is not None else None,
            "vqvae_config": {k: list(v) if isinstance(v, tuple | list | ListConfig) else v for k, v in vars(self.vqvae.config).items()},
        }


def real_continuation(real_after_given: torch.Tensor, frames: int) -> torch.Tensor:
    """bool [B * frames]: which predicted frames of B clips have a real frame to be scored against, given how many
    real frames each clip has after the given ones (int [B]; 0 or below: none, the rest is its last frame
    repeated)."""
    return (torch.arange(frames)[None] < real_after_given[:, None]).flatten()


def say_unscored_clips(unscored: dict[str, int], scored: bool) -> None:
    """One warning for the clips left out of the video scores (key -> frames given): a GIF shorter than a clip,
    padded with its last frame, may have no real frame after the given ones to score a prediction against."""
    clips = f"{counted(len(unscored), 'clip')} (e.g. {', '.join(list(unscored)[:3])})"
    what = (f"video_psnr and video_psnr_copy_baseline leave out {clips}" if scored else
            f"video_psnr and video_psnr_copy_baseline are not scored: no frame of the {clips} is real after the given")
    rank_zero_warn(f"{what}: their GIFs have no frame after the {max(unscored.values())} given "
                   "(data.video_given_frames), the rest of each clip repeats its last one; give GIFs of more frames, "
                   "or fewer given frames")


# every score _fidelity_scores may give
FIDELITY_SCORES = ("text2image_fidelity", "text2image_colour_fidelity", "text2image_fidelity_ceiling",
                   "text2image_relation_fidelity", *(f"text2image_{score}_{objects}" for score in ("fidelity", "relation_fidelity")
                                                     for objects in ("one_object", "two_objects")))


class Judged(NamedTuple):
    """How the judge found one text2image picture, each 1.0 (yes) or 0.0 (no), and its prompt's object count."""

    exact: float  # the prompt's objects, colours and shapes, and no other
    colours: float  # the colours right, the shapes aside
    ceiling: float  # exact, on the VQ-VAE's reconstruction of the true picture
    placed: float  # exact, and in the places the prompt states
    objects: int  # objects in the prompt


def _fidelity_counts(items: list[Judged]) -> dict[str, int]:
    """The pictures the fidelity scores are shares of: all (n_text2image), and those of one- and two-object
    prompts (n_one_object, n_two_objects), each where its scores are given."""
    counts = {"n_text2image": len(items)}
    for n, name in ((1, "one_object"), (2, "two_objects")):
        if rows := sum(row.objects == n for row in items):
            counts[f"n_{name}"] = rows
    return counts


def _fidelity_scores(items: list[Judged]) -> dict[str, float]:
    """Shares over the judged pictures: colour+shape fidelity, colour only, the ceiling (the judge on the
    VQ-VAE's reconstructions of the true pictures: what a perfect GPT could reach), and the relation-aware
    fidelity (objects and the places the prompt states); the two fidelities also per one- and two-object
    prompts."""

    def share(rows: list[Judged], field: str) -> float:
        return sum(getattr(row, field) for row in rows) / len(rows)

    scores = {"text2image_fidelity": share(items, "exact"), "text2image_colour_fidelity": share(items, "colours"),
              "text2image_fidelity_ceiling": share(items, "ceiling"),
              "text2image_relation_fidelity": share(items, "placed")}
    for n, name in ((1, "one_object"), (2, "two_objects")):
        rows = [row for row in items if row.objects == n]
        if rows:
            scores[f"text2image_fidelity_{name}"] = share(rows, "exact")
            scores[f"text2image_relation_fidelity_{name}"] = share(rows, "placed")
    return scores
